"""systemd notifications (sd_notify): the daemon runs with a NOTIFY_SOCKET of the test's own
(a unix datagram socket it reads) and WATCHDOG_USEC, against the platform double and a real
RabbitMQ broker. Checks that READY=1, STATUS= lines (waiting for the platform, running, last
run failed with its error, idle with the last and next run), WATCHDOG=1 and STOPPING=1 arrive,
in that order, and that the watchdog is fed often enough for systemd's WatchdogSec.

Skipped (exit 0 with a message) when the binary was built without libsystemd.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness.common import SKIP, check, data_dir, run_tests, shared_broker, temp_dir, wait_until  # noqa: E402
from harness.daemon import Daemon, daemon_binary  # noqa: E402
from fakes.platform import Platform  # noqa: E402

# systemd's WatchdogSec for this test. The daemon sends WATCHDOG=1 from every wait of its
# loop, at most once a second, and the loop wakes at least every ping interval (2 s here),
# so the gaps stay near 2 s; 8 s leaves room for a slow machine.
WATCHDOG_S = 8.0


def built_with_libsystemd(binary):
    out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True).stdout
    return "libsystemd.so" in out


class NotifySocket:
    """A unix datagram socket like systemd's notify socket; records (monotonic time,
    [lines]) for every datagram."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode("utf-8", "replace").split("\n")))

    def close(self):
        self._stop = True
        self.thread.join(timeout=5)
        self.sock.close()

    def lines(self):
        """Every line received, in order: (time, "KEY=value")."""
        with self.lock:
            return [(t, line) for t, lines in self.messages for line in lines if line]

    def find(self, pattern):
        rx = re.compile(pattern)
        return [(t, l) for t, l in self.lines() if rx.search(l)]


def index_of(lines, pattern, start=0):
    rx = re.compile(pattern)
    for i in range(start, len(lines)):
        if rx.search(lines[i][1]):
            return i
    return -1


def test_notifications():
    broker = shared_broker()
    with temp_dir() as tmp, Platform(broker, worker=True,
                                     datasets_dir=os.path.join(data_dir(), "datasets")) as p:
        notify = NotifySocket(os.path.join(tmp, "notify"))
        cid = str(uuid.uuid4())
        # sectors fails on the first run (HTTP 500): the STATUS line must carry the error;
        # the retry after CONFIG_RETRY_INTERVAL then succeeds.
        p.set_dataset("sectors.json", status=500)
        env = {"OPENCTI_URL": p.url, "OPENCTI_TOKEN": p.token, "CONNECTOR_ID": cid,
               "CONFIG_SECTORS_FILE_URL": p.dataset_url("sectors.json"),
               "CONFIG_GEOGRAPHY_FILE_URL": p.dataset_url("geography.json"),
               "CONFIG_COMPANIES_FILE_URL": p.dataset_url("companies.json"),
               "CONFIG_RETRY_INTERVAL": "PT3S",
               "CONNECTOR_LOG_LEVEL": "info", "CONNECTOR_PING_INTERVAL": "PT2S",
               "CONNECTOR_CHECK_INTERVAL": "PT2S",
               "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
        try:
            with Daemon(env) as d:
                wait_until(lambda: notify.find(r"^STATUS=Last run failed"), 60,
                           message="STATUS=Last run failed")
                p.clear_dataset("sectors.json")
                wait_until(lambda: notify.find(r"^STATUS=Idle; last run \d{4}-\d\d-\d\d"), 60,
                           message="STATUS=Idle; last run <date>")
                ready_at = notify.find(r"^READY=1$")[0][0]
                # three watchdog periods after READY, to see the gaps
                wait_until(lambda: time.monotonic() - ready_at > 3 * WATCHDOG_S, 60)
                d.signal(signal.SIGTERM)
                rc = d.wait_exit(30)
                check(rc == 0, "SIGTERM: exit status 0", rc)
                wait_until(lambda: notify.find(r"^STOPPING=1$"), 5, message="STOPPING=1")
            notify.close()
            lines = notify.lines()
            print("     received: %s" % [l for _, l in lines if l != "WATCHDOG=1"])

            check(len(notify.find(r"^READY=1$")) == 1, "READY=1 exactly once")
            check(len(notify.find(r"^STOPPING=1$")) == 1, "STOPPING=1 exactly once")
            ready = index_of(lines, r"^READY=1$")
            check(index_of(lines, r"^STATUS=Starting") < ready, "STATUS=Starting before READY=1")
            failed = index_of(lines, r"^STATUS=Last run failed", ready)
            check(failed > ready, "STATUS=Last run failed ... after READY=1", failed)
            check("sectors" in lines[failed][1] and "500" in lines[failed][1],
                  "the failure STATUS carries the error (sectors, HTTP 500)", lines[failed][1])
            check(index_of(lines, r"^STATUS=Running", ready) > ready, "STATUS=Running after READY=1")
            idle = index_of(lines, r"^STATUS=Idle; last run \d{4}-\d\d-\d\d .*; next run in \S",
                            failed)
            check(idle > failed, "then STATUS=Idle; last run <date> UTC; next run in <duration>",
                  idle)
            stopping = index_of(lines, r"^STOPPING=1$")
            check(stopping > idle, "STOPPING=1 last", stopping)
            after = [l for _, l in lines[stopping + 1:]]
            check(all(l.startswith("STATUS=") for l in after),
                  "only STATUS lines after STOPPING=1", after)

            dogs = [t for t, l in lines if l == "WATCHDOG=1"]
            check(len(dogs) >= 3, "WATCHDOG=1 sent repeatedly", len(dogs))
            ready_t = lines[ready][0]
            stop_t = lines[stopping][0]
            points = [ready_t] + [t for t in dogs if ready_t < t < stop_t] + [stop_t]
            gaps = [b - a for a, b in zip(points, points[1:])]
            print("     watchdog gaps: %s s" % ", ".join("%.1f" % g for g in gaps))
            check(max(gaps) < WATCHDOG_S, "no gap of %.0f s (WatchdogSec) without WATCHDOG=1"
                  % WATCHDOG_S, max(gaps))
            check(min(b - a for a, b in zip(dogs, dogs[1:])) >= 0.9,
                  "at most one WATCHDOG=1 a second")
            p.assert_no_violations()
        finally:
            notify.close()


def test_no_watchdog_without_usec():
    """Without WATCHDOG_USEC the daemon sends READY/STATUS/STOPPING and no WATCHDOG."""
    broker = shared_broker()
    with temp_dir() as tmp, Platform(broker, worker=True,
                                     datasets_dir=os.path.join(data_dir(), "datasets")) as p:
        notify = NotifySocket(os.path.join(tmp, "notify"))
        env = {"OPENCTI_URL": p.url, "OPENCTI_TOKEN": p.token, "CONNECTOR_ID": str(uuid.uuid4()),
               "CONFIG_SECTORS_FILE_URL": p.dataset_url("sectors.json"),
               "CONFIG_GEOGRAPHY_FILE_URL": "false", "CONFIG_COMPANIES_FILE_URL": "false",
               "CONNECTOR_LOG_LEVEL": "info", "CONNECTOR_PING_INTERVAL": "PT1S",
               "NOTIFY_SOCKET": notify.path}
        try:
            with Daemon(env) as d:
                wait_until(lambda: notify.find(r"^STATUS=Idle; last run"), 60,
                           message="STATUS=Idle; last run")
                time.sleep(3)  # a few loop turns (1 s pings) in which no WATCHDOG may come
                d.signal(signal.SIGTERM)
                check(d.wait_exit(30) == 0, "exit status 0")
            wait_until(lambda: notify.find(r"^STOPPING=1$"), 5, message="STOPPING=1")
            check(notify.find(r"^READY=1$"), "READY=1")
            check(not notify.find(r"^WATCHDOG="), "no WATCHDOG=1 without WATCHDOG_USEC")
        finally:
            notify.close()


def main():
    binary = daemon_binary()
    if not built_with_libsystemd(binary):
        print("SKIP: %s was built without libsystemd (no sd_notify); install libsystemd-dev "
              "and rebuild to run this test" % binary)
        return SKIP
    return run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
