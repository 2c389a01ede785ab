"""Shared pieces of the daemon's integration tests (tests/integration/test_daemon_*.py).

Each test_daemon_*.py script runs the real binary (env ODS_BINARY) against the platform
double (tests/fakes/platform.py) and a real RabbitMQ broker (tests/harness), one scenario
per `test_*` function, each with a fresh CONNECTOR_ID so that queues never collide.

    from daemon_scenarios import *
    def test_something():
        with scenario() as s:                  # platform (worker on) + connector id
            d = s.daemon()                     # started with the fast settings below
            d.wait_for_log(RUN_STORED, 60)
            work = s.wait_work_done()
            ...
    if __name__ == "__main__":
        sys.exit(run_tests(globals()))

Typed assertions print both sides (eq, check). Nothing sleeps for readiness: every wait
polls a condition with a deadline (wait_until, Daemon.wait_for_log).
"""

import base64
import contextlib
import datetime
import json
import os
import re
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from harness import common  # noqa: E402
from harness.common import (Broker, check, data_dir, eq, free_port, shared_broker, temp_dir,  # noqa: E402,F401
                            wait_until)
from harness.daemon import Daemon, daemon_binary  # noqa: E402,F401
from fakes.platform import DEFAULT_TOKEN, DEFAULT_USER_ID, Platform  # noqa: E402,F401

DATASETS = ("sectors", "geography", "companies")
COUNTS = {"sectors": 121, "geography": 539, "companies": 63}
TOTAL = sum(COUNTS.values())          # 723
URL_VARS = {"sectors": "CONFIG_SECTORS_FILE_URL", "geography": "CONFIG_GEOGRAPHY_FILE_URL",
            "companies": "CONFIG_COMPANIES_FILE_URL"}
DEFAULT_SCOPE = "marking-definition,identity,location"
ENVELOPE_KEYS = ["bundle_type", "applicant_id", "action_sequence", "entities_types", "content",
                 "update", "draft_id", "work_id"]
WORK_NAME_RX = re.compile(r"^OpenCTI datasets run @ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$")

# log messages (regexes searched in the message)
RUN_STORED = r"^Last_run stored, next run in: "
RUN_SUCCESS = r"^Connector successfully run, storing last_run as (\d+)$"
RUN_FAILED = r"^The run did not complete; last_run is not advanced and the run is retried in "
WILL_NOT_RUN = r"^Connector will not run, next run in: "
REGISTERED = r'^Connector registered as "'
STOPPED = r"^Connector stop$"
RESET_SEEN = r"^Connector state has been reset on the platform; the datasets will be imported again"


# ---- assertions ---------------------------------------------------------------------------

class Checks:
    """Collects independent assertion failures and raises them all at the end, so that one
    run shows every broken expectation:

        with Checks() as c:
            c.check(cond, "what", shown...)
            c.eq(actual, expected, "what")
    """

    def __init__(self):
        self.failures = []

    def check(self, cond, what, *show):
        try:
            check(cond, what, *show)
        except AssertionError as e:
            self.failures.append(str(e))
        return bool(cond)

    def eq(self, actual, expected, what):
        try:
            eq(actual, expected, what)
        except AssertionError as e:
            self.failures.append(str(e))
        return actual == expected

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self.failures:
            raise AssertionError("%d failed check(s):\n  - %s" % (
                len(self.failures), "\n  - ".join(f.replace("\n", "\n    ") for f in self.failures)))
        return False


def new_id():
    return str(uuid.uuid4())


def version():
    """The daemon's version, from --version ("opencti-datasets 0.1.0")."""
    out = subprocess.run([daemon_binary(), "--version"], capture_output=True, text=True,
                         timeout=10).stdout.split()
    check(len(out) == 2 and out[0] == "opencti-datasets", "--version output", out)
    return out[1]


# ---- reference data ------------------------------------------------------------------------

def datasets_dir():
    return os.path.join(data_dir(), "datasets")


_reference = {}


def reference_split(name):
    """pycti's split of a dataset: the list of bundles (parsed), in send order."""
    if name not in _reference:
        with open(os.path.join(data_dir(), "split", name + ".jsonl"), encoding="utf-8") as f:
            _reference[name] = [json.loads(line) for line in f if line.strip()]
    return _reference[name]


def bundle_for_compare(bundle):
    """A bundle without its random id (checked separately), for equality."""
    b = dict(bundle)
    bid = b.pop("id", None)
    check(isinstance(bid, str) and re.match(r"^bundle--[0-9a-f-]{36}$", bid), "bundle id", bid)
    return b


def assert_bundles_equal(actual, expected, what):
    """Semantic comparison of two lists of one-object bundles (parsed JSON)."""
    eq(len(actual), len(expected), "%s: number of messages" % what)
    for i, (a, e) in enumerate(zip(actual, expected)):
        a, e = bundle_for_compare(a), bundle_for_compare(e)
        if a != e:
            oid = (e.get("objects") or [{}])[0].get("id")
            raise AssertionError("%s: message %d (object %s) differs from the reference:\n"
                                 "    expected %s\n    actual   %s"
                                 % (what, i + 1, oid, json.dumps(e, sort_keys=True)[:1500],
                                    json.dumps(a, sort_keys=True)[:1500]))


def big_bundle(n):
    """A valid STIX bundle of n identities (one message each): publishing it takes seconds."""
    objs = [{"type": "identity", "spec_version": "2.1", "id": "identity--%s" % uuid.UUID(int=i + 1, version=4),
             "name": "Org %d" % i, "identity_class": "organization",
             "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z"}
            for i in range(n)]
    return json.dumps({"type": "bundle", "id": "bundle--%s" % uuid.uuid4(), "objects": objs})


# ---- the platform side -------------------------------------------------------------------

def fast_env(platform, cid, datasets=DATASETS, **over):
    """The daemon's environment for quick tests: info logs, 2 s ping and check, 3 s retry,
    the datasets served by the double (the others disabled). Keyword arguments override
    (None removes a variable)."""
    env = {"OPENCTI_URL": platform.url if platform is not None else over.pop("url"),
           "OPENCTI_TOKEN": platform.token if platform is not None else DEFAULT_TOKEN,
           "CONNECTOR_ID": cid, "CONNECTOR_LOG_LEVEL": "info",
           "CONNECTOR_PING_INTERVAL": "2", "CONNECTOR_CHECK_INTERVAL": "2",
           "CONFIG_RETRY_INTERVAL": "3"}
    base = platform.url if platform is not None else env["OPENCTI_URL"]
    for name in DATASETS:
        env[URL_VARS[name]] = ("%s/datasets/%s.json" % (base, name)) if name in datasets else "false"
    for k, v in over.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


class Scenario:
    """A platform double, a connector id and the daemons started for it."""

    def __init__(self, platform, cid):
        self.platform = platform
        self.cid = cid
        self.daemons = []

    def env(self, **over):
        return fast_env(self.platform, self.cid, **over)

    def daemon(self, start=True, env=None, env_file=None, args=(), **over):
        d = Daemon(env if env is not None else self.env(**over), env_file=env_file, args=args,
                   name="daemon%d" % (len(self.daemons) + 1))
        self.daemons.append(d)
        return d.start() if start else d

    def works(self):
        return self.platform.works_for(self.cid)

    def wait_works(self, n, timeout=60):
        return wait_until(lambda: len(self.works()) >= n and self.works(), timeout,
                          message="%d work(s) for the connector" % n)

    def wait_work_done(self, index=0, timeout=60, complete=True):
        """Waits until work `index` was told processed (and, with complete, reached
        status complete), then returns it."""
        def done():
            ws = self.works()
            if len(ws) <= index:
                return None
            w = ws[index]
            if w["processed_time"] is None:
                return None
            if complete and w["status"] != "complete":
                return None
            return w
        return wait_until(done, timeout, message="work %d processed%s" % (index, " and complete" if complete else ""))

    def work_events(self, work_id, event=None):
        with self.platform.lock:
            evs = list(self.platform.work_events)
        return [e for e in evs if e["work_id"] == work_id and (event is None or e["event"] == event)]

    def quiesce(self, timeout=10):
        """Waits until the double answered every GraphQL request it received (a request of
        a daemon that exited may still be in progress, e.g. a ping about to store a state).
        Dataset downloads are not waited for (a test may have made them slow)."""
        def answered():
            with self.platform.lock:
                return all(r.status is not None for r in self.platform.requests if r.path == "/graphql")
        wait_until(answered, timeout, message="every request answered")

    def set_stored_state(self, text):
        """Sets the connector's state on the platform, as if an earlier run stored it
        (after waiting for in-flight requests)."""
        self.quiesce()
        with self.platform.lock:
            self.platform.connectors[self.cid]["connector_state"] = text

    def state(self):
        rec = self.platform.connector(self.cid)
        return rec["connector_state"] if rec else None

    def last_run(self):
        """The stored last_run (int), asserting the exact Python-style state text."""
        text = self.state()
        m = re.match(r'^\{"last_run": (\d+)\}$', text or "")
        check(m, "the stored state is {\"last_run\": <int>}", text)
        return int(m.group(1))

    def messages(self, work_id=None):
        msgs = self.platform.messages_for(self.cid)
        if work_id is not None:
            msgs = [m for m in msgs if (m["envelope"] or {}).get("work_id") == work_id]
        return msgs

    def stop_all(self):
        for d in self.daemons:
            d.stop()


@contextlib.contextmanager
def scenario(broker=None, platform=None, **platform_kw):
    """A started platform double (worker on, datasets served from tests/data) and a fresh
    connector id. On failure the daemons' logs are printed."""
    broker = broker if broker is not None else shared_broker()
    kw = {"worker": True, "datasets_dir": datasets_dir()}
    kw.update(platform_kw)
    p = platform if platform is not None else Platform(broker, **kw).start()
    s = Scenario(p, new_id())
    try:
        yield s
    except BaseException as e:
        for d in s.daemons:
            if d.proc is not None:
                d.print_log("scenario failed: %s: %s" % (type(e).__name__, e))
        with p.lock:
            viol = list(p.violations)
        if viol:
            sys.stderr.write("platform violations: %s\n" % json.dumps(
                [{"kind": v["kind"], "message": v["message"]} for v in viol], indent=1)[:6000])
        raise
    finally:
        s.stop_all()
        for d in s.daemons:
            d.cleanup()
        # leave no queue behind on a shared broker
        try:
            if p.broker is not None and p.connector(s.cid) is not None:
                p.delete_connector(s.cid)
        except Exception as e:          # noqa: BLE001 - cleanup only
            sys.stderr.write("cleanup: cannot delete the connector's queues: %r\n" % (e,))
        if platform is None:
            p.stop()


# ---- messages ------------------------------------------------------------------------------

def expectation_calls(s, work_id):
    """The `expectations` argument of every addExpectations on the work, in order."""
    return [e["args"]["expectations"] for e in s.work_events(work_id, "addExpectations")]


def taken_off(s, work_id):
    """How many messages the daemon took off the work's expectations in bulk (its negative
    addExpectations for messages that cannot reach the queue: never published, or failed)."""
    return -sum(n for n in expectation_calls(s, work_id) if n < 0)


def ordered_envelope(body):
    """The envelope's (key, value) pairs in the order they were sent."""
    return json.loads(body.decode("utf-8"), object_pairs_hook=lambda pairs: pairs)


def split_by_dataset(records, datasets=DATASETS, counts=None):
    """Cuts the queue records of one run into {dataset: [records]}, in publish order,
    using action_sequence (1..n per dataset) and the expected counts."""
    counts = counts or COUNTS
    out, i = {}, 0
    for name in datasets:
        n = counts[name]
        chunk = records[i:i + n]
        i += n
        seqs = [(r["envelope"] or {}).get("action_sequence") for r in chunk]
        eq(seqs, list(range(1, n + 1)), "%s: action_sequence 1..%d" % (name, n))
        out[name] = chunk
    eq(len(records), i, "no message beyond the datasets' ones")
    return out


def assert_envelopes(s, records, work_id, scope=DEFAULT_SCOPE):
    """Every record: the exact envelope (keys in order, compact JSON), the properties and
    no problem found by the double."""
    applicant = s.platform.user_id
    for r in records:
        check(not r["problems"], "the double found no problem in the message", r["problems"])
        pairs = ordered_envelope(r["body"])
        eq([k for k, _ in pairs], ENVELOPE_KEYS, "envelope keys in pycti's order")
        env = dict(pairs)
        eq(env["bundle_type"], "QUEUE_BUNDLE", "bundle_type")
        eq(env["applicant_id"], applicant, "applicant_id is the token user's id")
        eq(env["entities_types"], scope, "entities_types is the raw scope string")
        eq(env["update"], True, "update")
        eq(env["draft_id"], None, "draft_id")
        eq(env["work_id"], work_id, "work_id")
        eq(r["body"], json.dumps(env, separators=(",", ":")).encode(), "compact JSON body")
        raw = base64.b64decode(env["content"], validate=True)
        eq(json.loads(raw), r["bundle"], "content decodes to the bundle")
        eq(r["properties"]["delivery_mode"], 2, "delivery_mode")
        eq(r["properties"]["content_encoding"], "utf-8", "content_encoding")
        eq(r["exchange"], "amqp.worker.exchange", "published to the worker exchange")
        eq(r["routing_key"], "push_routing_" + s.cid, "routing key")


def assert_reference_run(s, work_id, datasets=DATASETS):
    """The messages of one run equal the reference split, dataset by dataset, in order."""
    records = s.messages(work_id)
    counts = {n: COUNTS[n] for n in datasets}
    eq(len(records), sum(counts.values()), "messages of the run")
    assert_envelopes(s, records, work_id)
    per = split_by_dataset(records, datasets, counts)
    for name in datasets:
        assert_bundles_equal([r["bundle"] for r in per[name]], reference_split(name), name)
    return per


def assert_work_success(s, work, expected=TOTAL):
    """A work that completed: all expectations processed, no error, success message."""
    check(WORK_NAME_RX.match(work["name"] or ""), "work name", work["name"])
    eq(work["status"], "complete", "work status")
    eq(work["import_expected_number"], expected, "expectations added")
    eq(work["completed_number"], expected, "expectations processed")
    eq(work["errors"], [], "work errors")
    msgs = [m["message"] for m in work["messages"]]
    eq(len(msgs), 1, "one work message")
    m = re.match(RUN_SUCCESS, msgs[0])
    check(m, "success message", msgs[0])
    adds = s.work_events(work["id"], "addExpectations")
    eq([e["args"]["expectations"] for e in adds], [expected], "addExpectations called once with the total")
    tp = s.work_events(work["id"], "toProcessed")
    eq(len(tp), 1, "toProcessed called once")
    eq(tp[0]["args"].get("inError"), False, "toProcessed inError")
    # the work's name is the run's start time, which is the stored last_run
    t = int(m.group(1))
    name_time = WORK_NAME_RX.match(work["name"]).group(1)
    eq(name_time, datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
       "work name time == last_run")
    return t


def to_processed(s, work):
    tp = s.work_events(work["id"], "toProcessed")
    eq(len(tp), 1, "toProcessed called once")
    return tp[0]["args"]


# ---- logs ----------------------------------------------------------------------------------

def errors_logged(d):
    return [r for r in d.logs if r.get("level") == "ERROR"
            or (r.get("level") is None and re.search(r"^\S+ ERROR ", r.get("raw") or ""))]


def assert_no_error_logs(d):
    errs = errors_logged(d)
    check(not errs, "no ERROR log line in the happy path", *[e.get("raw") for e in errs[:5]])


def assert_json_logs(d):
    """Every stderr line is a pycti-style JSON record."""
    for r in d.logs:
        raw = r.get("raw")
        check("message" in r and "level" in r and "timestamp" in r and "name" in r,
              "a JSON log record", raw)
        check(r["level"] in ("DEBUG", "INFO", "WARNING", "ERROR"), "log level", raw)
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", r["timestamp"]), "timestamp", raw)


def count_logs(d, rx, start=0):
    return len(d.find_logs(rx, start))


# ---- runner --------------------------------------------------------------------------------

def run_tests(namespace, only=None):
    """common.run_tests, after making sure the daemon binary exists."""
    daemon_binary()
    return common.run_tests(namespace, only)
