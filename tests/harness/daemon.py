"""Runs the connector daemon (env ODS_BINARY) as a subprocess and reads its log.

    d = Daemon({"OPENCTI_URL": platform.url, ...}).start()
    d.wait_for_log(r"Connector has never run", timeout=30)
    d.signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0

stderr lines are parsed as pycti-style JSON log records (timestamp, level, name, message,
attributes); other lines are kept as {"raw": line}. On a failed wait, or when a `with
Daemon(...)` block raises, the captured output is printed to stderr.
"""

import json
import os
import re
import signal as _signal
import subprocess
import sys
import tempfile
import threading
import time

# Environment variables passed through to the daemon even though the test gives its own
# environment: sanitizer settings and the like, never OPENCTI_/CONNECTOR_/MQ_ settings.
PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "ASAN_OPTIONS", "UBSAN_OPTIONS",
               "LSAN_OPTIONS", "MSAN_OPTIONS", "VALGRIND_OPTS")


def daemon_binary():
    """Path of the daemon binary from ODS_BINARY; raises RuntimeError when unusable."""
    path = os.environ.get("ODS_BINARY")
    if not path:
        raise RuntimeError("ODS_BINARY is not set (ctest sets it to the built opencti-datasets)")
    if not os.access(path, os.X_OK):
        raise RuntimeError("ODS_BINARY=%s is not an executable file" % path)
    return path


class LogRecord(dict):
    """A parsed log line. Keys as logged; `raw` is the original line; missing keys read
    as None through .get()."""

    @property
    def message(self):
        return self.get("message") if "message" in self else self.get("raw")


def parse_log_line(line):
    """Returns a LogRecord for one stderr line (JSON object, else {"raw": line})."""
    text = line.rstrip("\r\n")
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        rec = LogRecord(obj)
    else:
        rec = LogRecord()
    rec["raw"] = text
    return rec


class Daemon:
    """One daemon process.

    env: the daemon's environment (PASSTHROUGH variables are added unless given);
    env_file: None, a path, or a dict written to a temporary KEY=VALUE file, passed as
    `--env-file FILE`; args: extra arguments after that (e.g. ["check"]); binary: defaults
    to daemon_binary(); cwd: working directory."""

    def __init__(self, env, env_file=None, args=(), binary=None, cwd=None, name="daemon"):
        self.binary = binary or daemon_binary()
        self.env = {k: os.environ[k] for k in PASSTHROUGH if k in os.environ}
        self.env.update({k: str(v) for k, v in env.items()})
        self.args = list(args)
        self.cwd = cwd
        self.name = name
        self._env_file_tmp = None
        if isinstance(env_file, dict):
            fd, path = tempfile.mkstemp(prefix="ods-env-", suffix=".env")
            with os.fdopen(fd, "w") as f:
                for k, v in env_file.items():
                    f.write("%s=%s\n" % (k, v))
            self._env_file_tmp = env_file = path
        self.env_file = env_file
        self.proc = None
        self.lines = []          # every stderr line (str), in order
        self.logs = []           # parsed stderr records (LogRecord), same order
        self.stdout_lines = []
        self._cond = threading.Condition()
        self._readers = []
        self.started_at = None

    # -- lifecycle ---------------------------------------------------------------------------
    def command(self):
        cmd = [self.binary]
        if self.env_file:
            cmd += ["--env-file", self.env_file]
        return cmd + self.args

    def start(self):
        """Starts the process (own process group) and the output readers. Returns self."""
        self.proc = subprocess.Popen(self.command(), env=self.env, cwd=self.cwd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.started_at = time.monotonic()
        for stream, sink in ((self.proc.stderr, "stderr"), (self.proc.stdout, "stdout")):
            t = threading.Thread(target=self._read, args=(stream, sink),
                                 name="%s-%s" % (self.name, sink), daemon=True)
            t.start()
            self._readers.append(t)
        return self

    def _read(self, stream, sink):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            with self._cond:
                if sink == "stderr":
                    self.lines.append(line.rstrip("\r\n"))
                    self.logs.append(parse_log_line(line))
                else:
                    self.stdout_lines.append(line.rstrip("\r\n"))
                self._cond.notify_all()
        stream.close()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self):
        return self.proc.poll() if self.proc else None

    def signal(self, sig=_signal.SIGTERM):
        """Sends a signal to the daemon process (not its group)."""
        if self.running():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=30.0):
        """Waits for the process to end; returns its exit status (negative: signal).
        Raises TimeoutError (after printing the log) if it is still running."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.print_log("still running after %.1fs" % timeout)
            raise TimeoutError("%s did not exit within %.1fs" % (self.name, timeout))
        for t in self._readers:
            t.join(timeout=5)
        return rc

    def stop(self, timeout=15.0):
        """SIGTERM, then SIGKILL to the process group if it does not exit in time.
        Returns the exit status."""
        if self.proc is None:
            return None
        if self.running():
            self.proc.send_signal(_signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, _signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        for t in self._readers:
            t.join(timeout=5)
        return self.proc.returncode

    def cleanup(self):
        if self._env_file_tmp:
            try:
                os.unlink(self._env_file_tmp)
            except OSError:
                pass
            self._env_file_tmp = None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is not None:
            self.print_log("test failed: %s: %s" % (exc_type.__name__, exc))
        self.cleanup()

    # -- log access ------------------------------------------------------------------------------
    @staticmethod
    def _matcher(pred):
        if callable(pred):
            return pred
        rx = re.compile(pred) if isinstance(pred, str) else pred
        return lambda rec: bool(rx.search(rec.message or ""))

    def find_logs(self, pred, start=0):
        """The records from index `start` on that match pred (callable(record) or regex,
        searched in the message, or in the raw line for non-JSON lines)."""
        match = self._matcher(pred)
        with self._cond:
            return [r for r in self.logs[start:] if match(r)]

    def wait_for_log(self, pred, timeout=30.0, start=0):
        """Waits until a record (from index `start`) matches pred and returns it. Raises
        TimeoutError after printing the captured log, also when the daemon exits first."""
        match = self._matcher(pred)
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self.logs):
                    rec = self.logs[index]
                    index += 1
                    if match(rec):
                        return rec
                exited = self.proc.poll() is not None and all(not t.is_alive() for t in self._readers)
                remaining = deadline - time.monotonic()
                if exited or remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.5))
        why = "exited with status %s" % self.proc.returncode if exited else "timed out after %.1fs" % timeout
        self.print_log("waiting for log %r: %s" % (getattr(pred, "pattern", pred), why))
        raise TimeoutError("%s: no log record matching %r (%s)" % (self.name, getattr(pred, "pattern", pred), why))

    def mark(self):
        """The current number of records; pass as `start` to wait for what comes next."""
        with self._cond:
            return len(self.logs)

    def output(self):
        """All captured stderr and stdout, as text."""
        with self._cond:
            return "\n".join(self.lines + (["--- stdout ---"] + self.stdout_lines if self.stdout_lines else []))

    def print_log(self, reason=""):
        """Prints the captured output to stderr (used on failures)."""
        sys.stderr.write("===== %s log (%s) pid=%s rc=%s =====\n%s\n===== end of %s log =====\n"
                         % (self.name, reason, self.pid, self.returncode, self.output(), self.name))
        sys.stderr.flush()
