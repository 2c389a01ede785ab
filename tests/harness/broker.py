"""A private, real rabbitmq-server node for tests.

Each Broker runs its own node (own name, ports, directories) in a temporary directory, so
tests never touch a system broker or each other. The node runs in its own process group;
stop() kills the group and removes the directory, kill() simulates a crash (SIGKILL) and
keeps the data so that start() brings the same node back with its durable queues.

Facts this relies on (Debian 12, rabbitmq-server 3.10): the wrapper switches from root to
the `rabbitmq` user, so the directory must belong to that user; start-up takes 8-15 s;
`rabbitmqctl -n <node>` with the same environment drives the node.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline, host="127.0.0.1"):
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _chown_tree(path, uid, gid):
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_test_pki(directory, client=True):
    """Creates ca.pem, server.pem/server.key (localhost, 127.0.0.1) and optionally
    client.pem/client.key plus an encrypted client key (client-enc.key, passphrase
    'test-pass') in `directory`. Returns a dict of absolute paths."""
    d = directory
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=ods-test-ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    paths = {k: os.path.join(d, v) for k, v in
             {"ca": "ca.pem", "server_cert": "server.pem", "server_key": "server.key"}.items()}
    if client:
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=ods-client",
                 "-keyout", "client.key", "-out", "client.csr", cwd=d)
        _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", "client.pem", cwd=d)
        _openssl("pkey", "-in", "client.key", "-aes256", "-passout", "pass:test-pass",
                 "-out", "client-enc.key", cwd=d)
        paths.update({k: os.path.join(d, v) for k, v in
                      {"client_cert": "client.pem", "client_key": "client.key",
                       "client_key_enc": "client-enc.key"}.items()})
    # the broker (user rabbitmq) must read the server files
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)
    return paths


class Broker:
    """A private rabbitmq-server node on loopback.

    tls: also open a TLS listener (self.tls_port) with a CA made for the test (self.pki).
    verify_peer: the TLS listener requires a client certificate signed by that CA.
    max_message_size: the broker's max_message_size setting, in bytes.
    """

    def __init__(self, tls=False, verify_peer=False, max_message_size=None):
        self.tls = tls
        self.verify_peer = verify_peer
        self.max_message_size = max_message_size
        self.port = free_port()
        self.dist_port = free_port()
        self.tls_port = free_port() if tls else None
        self.node = "t%d@localhost" % self.port
        self.dir = tempfile.mkdtemp(prefix="ods-broker-")
        os.chmod(self.dir, 0o755)
        self.proc = None
        self.pki = None
        self._write_config()

    # -- configuration -------------------------------------------------------------
    def _write_config(self):
        lines = ["listeners.tcp.default = 127.0.0.1:%d" % self.port,
                 "loopback_users = none"]
        if self.max_message_size:
            lines.append("max_message_size = %d" % self.max_message_size)
        if self.tls:
            pki_dir = os.path.join(self.dir, "pki")
            os.mkdir(pki_dir)
            self.pki = make_test_pki(pki_dir)
            lines += ["listeners.ssl.default = 127.0.0.1:%d" % self.tls_port,
                      "ssl_options.cacertfile = %s" % self.pki["ca"],
                      "ssl_options.certfile = %s" % self.pki["server_cert"],
                      "ssl_options.keyfile = %s" % self.pki["server_key"]]
            if self.verify_peer:
                lines += ["ssl_options.verify = verify_peer",
                          "ssl_options.fail_if_no_peer_cert = true"]
            else:
                lines.append("ssl_options.verify = verify_none")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(self.dir, "plugins"), "w") as f:
            f.write("[].\n")
        for sub in ("mnesia", "log"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)

    def env(self):
        env = dict(os.environ)
        env.update({
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "plugins"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq.conf"),
        })
        return env

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout=90):
        """Starts (or restarts) the node and waits until the AMQP port accepts."""
        pw = pwd.getpwnam("rabbitmq")
        _chown_tree(self.dir, pw.pw_uid, pw.pw_gid)
        out = open(os.path.join(self.dir, "server.out"), "ab")
        self.proc = subprocess.Popen(["rabbitmq-server"], env=self.env(), stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        ports = [self.port] + ([self.tls_port] if self.tls else [])
        for port in ports:
            if not wait_port(port, deadline):
                log = self.server_output()
                self.stop()
                raise RuntimeError("rabbitmq-server did not open port %d within %ds:\n%s"
                                   % (port, timeout, log[-4000:]))
        return self

    def server_output(self):
        try:
            with open(os.path.join(self.dir, "server.out"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _node_pids(self):
        """Pids of this node's processes. The Debian wrapper runs the node through `su`,
        which starts a new session, so beam and its helpers are outside our process group;
        they are recognised by the RABBITMQ_NODENAME (unique per node) in their environment."""
        marker = ("RABBITMQ_NODENAME=%s" % self.node).encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % entry, "rb") as f:
                    if marker in f.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                continue
        return pids

    def _signal_group(self, sig):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        for pid in self._node_pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _wait_node_gone(self, timeout):
        deadline = time.monotonic() + timeout
        while self._node_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        return not self._node_pids()

    def kill(self):
        """Simulates a crash: SIGKILL to the whole node; data stays for start()."""
        self._signal_group(signal.SIGKILL)
        if self.proc:
            self.proc.wait(timeout=30)
        self._wait_node_gone(30)
        # beam may have children outside the wait; make sure the port is closed
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.3).close()
                time.sleep(0.2)
            except OSError:
                break
        self.proc = None

    def stop(self):
        """Stops the node and removes its directory."""
        if (self.proc and self.proc.poll() is None) or self._node_pids():
            self._signal_group(signal.SIGTERM)
            try:
                if self.proc:
                    self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            if not self._wait_node_gone(20):
                self._signal_group(signal.SIGKILL)
                if self.proc:
                    self.proc.wait(timeout=20)
                self._wait_node_gone(20)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- control ---------------------------------------------------------------------
    def ctl(self, *args, check=True, timeout=60):
        """Runs rabbitmqctl against this node; returns its stdout."""
        r = subprocess.run(["rabbitmqctl", "-n", self.node, *args], env=self.env(),
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("rabbitmqctl %s failed: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r.stdout

    def queue_depths(self):
        """Returns {queue name: ready messages} for the default vhost."""
        out = self.ctl("list_queues", "-q", "--no-table-headers", "name", "messages")
        depths = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 2 and parts[1].strip().isdigit():
                depths[parts[0]] = int(parts[1])
        return depths

    def memory_alarm(self, on):
        self.ctl("set_vm_memory_high_watermark", "0" if on else "0.4")


# -- a broker for a whole test suite ---------------------------------------------------------
# scripts/test starts one node before ctest and stops it afterwards:
#   python3 tests/harness/broker.py start STATE_FILE   (prints the AMQP port)
#   python3 tests/harness/broker.py stop STATE_FILE
# Tests find it through ODS_TEST_BROKER_STATE (Broker.attach).

def _state(b):
    return {"port": b.port, "dist_port": b.dist_port, "tls_port": b.tls_port, "node": b.node,
            "dir": b.dir, "pid": b.proc.pid if b.proc else None}


def attach(state_file):
    """A Broker object for a node another process started (ctl() and queue_depths() work;
    do not kill or stop it)."""
    import json
    with open(state_file) as f:
        st = json.load(f)
    b = Broker.__new__(Broker)
    b.tls = st["tls_port"] is not None
    b.verify_peer = False
    b.max_message_size = None
    b.port, b.dist_port, b.tls_port = st["port"], st["dist_port"], st["tls_port"]
    b.node, b.dir, b.pki = st["node"], st["dir"], None
    b.proc = None
    b.shared = True
    return b


def _main(argv):
    import json
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: broker.py start|stop STATE_FILE", file=sys.stderr)
        return 64
    if argv[1] == "start":
        b = Broker().start()
        with open(argv[2], "w") as f:
            json.dump(_state(b), f)
        print(b.port)
        return 0
    attach(argv[2]).stop()  # finds the node's processes by name, then removes its directory
    os.unlink(argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
