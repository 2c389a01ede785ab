"""Small helpers shared by the integration tests.

* wait_until(fn, timeout, interval): poll a condition with a deadline (never a fixed sleep
  for readiness).
* temp_dir(): a temporary directory removed afterwards (context manager).
* shared_broker(): the suite's broker when the test script started one (env
  ODS_TEST_AMQP_PORT), else a private node for this test process, stopped at exit.
* free_port(), tests_dir(), data_dir(), add_paths().
* check(cond, what, *show), eq(actual, expected, what): assertions that say what failed.
* run_tests(tests): the runner every integration test file uses (PASS/FAIL per test, a
  summary line, the exit status).
"""

import atexit
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback

HARNESS_DIR = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(HARNESS_DIR)


def add_paths():
    """Makes `harness.*` and `fakes.*` importable (tests/ on sys.path)."""
    if TESTS_DIR not in sys.path:
        sys.path.insert(0, TESTS_DIR)


add_paths()

from harness.broker import Broker, free_port  # noqa: E402,F401


class Timeout(AssertionError):
    """wait_until ran out of time."""


def wait_until(fn, timeout=30.0, interval=0.05, message=None):
    """Calls fn() until it returns a truthy value, which is returned. Raises Timeout
    after `timeout` seconds (the message says what was awaited and the last value or
    exception). Exceptions raised by fn count as "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except Exception as e:          # noqa: BLE001 - "not ready yet"
            last = e
        if time.monotonic() >= deadline:
            what = message or getattr(fn, "__name__", "condition")
            raise Timeout("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(interval)


@contextlib.contextmanager
def temp_dir(prefix="ods-test-"):
    """Yields a new temporary directory and removes it afterwards."""
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tests_dir():
    return TESTS_DIR


def data_dir():
    """tests/data (or $ODS_TEST_DATA)."""
    return os.environ.get("ODS_TEST_DATA") or os.path.join(TESTS_DIR, "data")


class ExternalBroker:
    """A broker started by someone else (the test script); same attributes tests use."""

    def __init__(self, port, node=None):
        self.port = port
        self.node = node
        self.tls = False
        self.tls_port = None

    def ctl(self, *args, **kw):
        raise RuntimeError("the shared broker is not controlled by this test process")


_private_broker = None


def shared_broker():
    """The broker for this test process.

    With ODS_TEST_BROKER_STATE set (scripts/test started one node for the whole suite with
    `broker.py start STATE_FILE`), returns that node. With ODS_TEST_AMQP_PORT set,
    returns an ExternalBroker for it: do not kill or stop it, and use connector ids of your
    own so tests do not see each other's queues. Otherwise starts a private Broker once per
    process and stops it at exit. Tests that kill or restart the broker must start their own
    Broker instead."""
    global _private_broker
    state = os.environ.get("ODS_TEST_BROKER_STATE")
    if state and os.path.exists(state):
        from harness import broker as broker_mod
        return broker_mod.attach(state)  # ctl() works; never stop or kill it
    port = os.environ.get("ODS_TEST_AMQP_PORT")
    if port:
        return ExternalBroker(int(port), os.environ.get("ODS_TEST_AMQP_NODE"))
    if _private_broker is None:
        _private_broker = Broker().start()
        atexit.register(_private_broker.stop)
    return _private_broker


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


# ---- assertions and the runner --------------------------------------------------------------

# The exit status of a test that cannot run here (ctest's SKIP_RETURN_CODE): it shows as
# "Not Run (Skipped)", never as passed.
SKIP = 77

def check(cond, what, *show):
    """Fails with `what` and each of `show` (repr, one a line) unless cond is truthy."""
    if not cond:
        raise AssertionError(what + "".join("\n    %r" % (s,) for s in show))


def eq(actual, expected, what):
    if actual != expected:
        raise AssertionError("%s:\n    expected %r\n    actual   %r" % (what, expected, actual))


def run_tests(tests, only=None):
    """Runs tests and returns the exit status (1 when one failed). tests is a module's
    globals() (its test_* functions, in source order) or a list of functions. Only those
    named in `only`, argv or ODS_ONLY (comma-separated) run when one of them is given.
    Prints PASS/FAIL with timings, the traceback of each failure, and a summary line."""
    if isinstance(tests, dict):
        tests = sorted((f for n, f in tests.items() if n.startswith("test_") and callable(f)),
                       key=lambda f: f.__code__.co_firstlineno)
    named = [(f.__name__, f) for f in tests]
    wanted = only or sys.argv[1:] or [x for x in os.environ.get("ODS_ONLY", "").split(",") if x]
    if wanted:
        named = [(n, f) for n, f in named if n in wanted]
        if not named:
            print("no test matches %s" % wanted)
            return 1
    t0 = time.monotonic()
    failed = []
    for name, fn in named:
        t = time.monotonic()
        print("---- %s" % name, flush=True)
        try:
            fn()
            print("PASS %s (%.1fs)" % (name, time.monotonic() - t))
        except Exception:  # noqa: BLE001 - report every failure, go on
            failed.append(name)
            traceback.print_exc(file=sys.stdout)
            print("FAIL %s (%.1fs)" % (name, time.monotonic() - t))
        sys.stdout.flush()
    print("%d passed, %d failed (%.1fs)%s" % (len(named) - len(failed), len(failed),
                                            time.monotonic() - t0,
                                            (": " + ", ".join(failed)) if failed else ""))
    return 1 if failed else 0
