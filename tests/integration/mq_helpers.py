"""Shared pieces of the publisher's integration tests (tests/integration/test_mq_*.py).

The tests play the platform's part: they declare the topology with pika (a durable direct
exchange and a durable queue bound with the routing key), run tests/integration/mq_driver
(one mq_publish() series) against a private rabbitmq-server from tests/harness/broker.py,
and read the queue back with pika. The broker is never mocked.
"""

import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: harness.* as tests/harness/common.py does

import pika  # noqa: E402  (Debian's python3-pika, for /usr/bin/python3)

from harness.broker import Broker, free_port, make_test_pki  # noqa: E402,F401
from harness.common import check, run_tests  # noqa: E402,F401

PUSH_EXCHANGE = "amqp.worker.exchange"


def driver_path():
    """The mq_driver binary: ODS_MQ_DRIVER, else <build>/tests/integration/mq_driver next
    to the daemon ctest passes in ODS_BINARY."""
    path = os.environ.get("ODS_MQ_DRIVER")
    if not path:
        binary = os.environ.get("ODS_BINARY")
        if not binary:
            raise RuntimeError("set ODS_MQ_DRIVER or ODS_BINARY (ctest sets ODS_BINARY)")
        path = os.path.join(os.path.dirname(binary), "tests", "integration", "mq_driver")
    if not os.access(path, os.X_OK):
        raise RuntimeError("mq_driver not found at %s" % path)
    return path


def connect(broker):
    params = pika.ConnectionParameters(host="127.0.0.1", port=broker.port,
                                       credentials=pika.PlainCredentials("guest", "guest"),
                                       heartbeat=30, blocked_connection_timeout=None)
    deadline = time.monotonic() + 30
    while True:
        try:
            return pika.BlockingConnection(params)
        except pika.exceptions.AMQPConnectionError:
            # the port opens a little before the node accepts logins
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def declare(broker, name, exchange=PUSH_EXCHANGE, arguments=None):
    """Declares what registerConnector declares for the push side: a durable direct
    exchange, a durable queue push_<name> bound with push_routing_<name>. Returns
    (exchange, routing key, queue)."""
    queue, key = "push_" + name, "push_routing_" + name
    conn = connect(broker)
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange=exchange, exchange_type="direct", durable=True)
        ch.queue_declare(queue=queue, durable=True, arguments=arguments)
        ch.queue_bind(queue=queue, exchange=exchange, routing_key=key)
    finally:
        conn.close()
    return exchange, key, queue


def purge_queue(broker, queue):
    conn = connect(broker)
    try:
        conn.channel().queue_purge(queue=queue)
    finally:
        conn.close()


def delete_queue(broker, queue):
    conn = connect(broker)
    try:
        conn.channel().queue_delete(queue=queue)
    finally:
        conn.close()


def declare_command(broker, name, exchange=PUSH_EXCHANGE):
    """A shell command that re-declares the topology (the unroutable hook's job)."""
    code = ("import sys; sys.path.insert(0, %r); import mq_helpers as m; "
            "b = m.Broker.__new__(m.Broker); b.port = %d; m.declare(b, %r, %r)"
            % (HERE, broker.port, name, exchange))
    return "%s -c %s" % (sys.executable, _shquote(code))


def delete_command(broker, queue):
    code = ("import sys; sys.path.insert(0, %r); import mq_helpers as m; "
            "b = m.Broker.__new__(m.Broker); b.port = %d; m.delete_queue(b, %r)"
            % (HERE, broker.port, queue))
    return "%s -c %s" % (sys.executable, _shquote(code))


def _shquote(s):
    return "'" + s.replace("'", "'\"'\"'") + "'"


def drain(broker, queue, expect=None, idle=2.0):
    """Consumes every message of queue; returns the list of action_sequence values in
    queue order. Stops after `idle` seconds without a message (or at `expect`)."""
    conn = connect(broker)
    seqs = []
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1000)
        for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=idle):
            if method is None:
                break
            assert props.delivery_mode == 2, props
            assert props.content_encoding == "utf-8", props
            seqs.append(json.loads(body)["action_sequence"])
            if expect is not None and len(seqs) >= expect:
                # take what may still be there, briefly
                idle = 0.5
        ch.cancel()
    finally:
        conn.close()
    return seqs


SERVICE_GAP_MAX_MS = 200  # mq.h: the service hook runs at least this often


class Run:
    """One mq_driver process. Events (stderr JSON lines) are collected as they arrive;
    wait_event() blocks until one shows up. result() also checks that the service hook
    never waited more than SERVICE_GAP_MAX_MS."""

    def __init__(self, broker, exchange, key, count, *args, port=None, env=None):
        self.argv = [driver_path(), "--host", "127.0.0.1",
                     "--port", str(port if port is not None else broker.port),
                     "--exchange", exchange, "--routing-key", key, "--count", str(count)]
        self.argv += [str(a) for a in args]
        self.events = []
        self.other_stderr = []
        self._cond = threading.Condition()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self):
        for line in self.proc.stderr:
            line = line.strip()
            try:
                ev = json.loads(line)
            except ValueError:
                ev = None
            with self._cond:
                if isinstance(ev, dict) and "event" in ev:
                    self.events.append(ev)
                else:
                    self.other_stderr.append(line)
                self._cond.notify_all()

    def wait_event(self, name, timeout=60):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events:
                    if ev["event"] == name:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError("no %s event within %ss; events: %s"
                                         % (name, timeout, self.event_names()))
                self._cond.wait(min(left, 0.2))

    def event_names(self):
        with self._cond:
            return [e["event"] for e in self.events]

    def result(self, timeout=300):
        # stdout only: stderr belongs to the reader thread
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            out = self.proc.stdout.read()
            self.proc.wait()
        finally:
            timer.cancel()
        self._reader.join(timeout=10)
        self.elapsed = time.monotonic() - self.started
        if self.proc.returncode != 0:
            raise AssertionError("mq_driver exited %d: %s %s"
                                 % (self.proc.returncode, out, self.other_stderr))
        res = json.loads(out)
        res["events"] = list(self.events)
        check(res["max_service_gap_ms"] <= SERVICE_GAP_MAX_MS,
              "the service hook ran at least every %d ms" % SERVICE_GAP_MAX_MS,
              res["max_service_gap_ms"])
        return res


def run(broker, exchange, key, count, *args, timeout=300, **kw):
    return Run(broker, exchange, key, count, *args, **kw).result(timeout=timeout)


def check_all_confirmed(res, count):
    check(res["rc"] == 0, "rc 0", res["rc_name"], res["error"])
    check(res["stats"]["confirmed"] == count, "all confirmed", res["stats"])
    check(res["status"] == "C" * count, "status all C")


def main(tests):
    """Runs the test functions in order (common.run_tests) and exits with its status."""
    sys.exit(run_tests(tests))
