"""Shared pieces of the daemon's fault tests (tests/integration/test_faults_*.py).

The fault tests run the real daemon against the platform double and a real RabbitMQ node
and break something while a run publishes: the broker is killed, is down, raises a memory
alarm, loses the push queue, the daemon gets SIGTERM, a message is above the broker's
limit. A run of the three small datasets is over in a fraction of a second, so most
scenarios import one large generated bundle instead (bench/gen_stix.py, served as a
file:// URL as CONFIG_SECTORS_FILE_URL, the other two datasets disabled): 60,000 objects
take several seconds to publish here, long enough to be interrupted on purpose.

With the platform's worker off the push queue keeps every message, and read_queue()
reads it back (lighter than Platform.drain for tens of thousands of messages: only the
action_sequence, the work id and the object id are kept).
"""

import base64
import collections
import importlib.util
import json
import os
import re
import signal
import tempfile
import time

from daemon_scenarios import check, eq, run_tests, to_processed
from harness.broker import Broker
import mq_helpers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GEN_STIX = os.path.join(ROOT, "bench", "gen_stix.py")

# log messages (regexes searched in the message)
CONNECTED = r"^Connected to the message broker$"
CONNECT_FAILED = r"^Cannot connect to the message broker; retrying$"
LOST = r"^Lost the connection or channel to the message broker; reopening it"
BLOCKED = r"^The message broker blocked publishing"
UNBLOCKED = r"^The message broker resumed publishing$"
UNROUTABLE = r"^Messages came back unroutable"
RETURNED = r"^A message came back unroutable$"
MSG_FAILED = r"^A message could not be published$"
LIMIT_LEARNED = r"^The message broker's size limit is lower than MQ_MAX_MESSAGE_SIZE$"
PING_ERROR = r"^Error pinging the API$"
RUN_POSTPONED = r"^Cannot ping the platform before the run; it is postponed"
SENDING = r" sending bundle to queue$"
# a failed run, whether it is retried or (run-and-terminate) not
RUN_NOT_COMPLETE = r"^The run did not complete; last_run is not advanced"

WINDOW = 256  # MQ_CONFIRM_WINDOW's default, set explicitly by the tests that rely on it


def dataset_done_rx(name):
    """ "Dataset <name>: N/M messages confirmed[: why]" """
    return r"^Dataset %s: (\d+)/(\d+) messages confirmed" % re.escape(name)


_generated = {}
_gen_dir = None


def big_dataset(n, seed=1):
    """Path of a generated STIX bundle of n objects (bench/gen_stix.py), made once per
    process in a temporary directory (removed at exit)."""
    global _gen_dir
    key = (n, seed)
    if key in _generated:
        return _generated[key]
    if _gen_dir is None:
        import atexit
        import shutil
        _gen_dir = tempfile.mkdtemp(prefix="ods-faults-")
        atexit.register(shutil.rmtree, _gen_dir, True)
    spec = importlib.util.spec_from_file_location("gen_stix", GEN_STIX)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    path = os.path.join(_gen_dir, "bundle-%d-%d.json" % (n, seed))
    with open(path, "w") as f:
        gen.generate(n, f, seed)
    _generated[key] = path
    return path


def bundle_ids(path):
    """The ids of the objects of a bundle file."""
    with open(path, encoding="utf-8") as f:
        return [o["id"] for o in json.load(f)["objects"]]


def big_env(s, path, **over):
    """The scenario's environment importing only the bundle at `path` (as the sectors
    dataset, through a file:// URL), with a two-minute give-up so that a broker restart
    on a slow machine cannot end the run."""
    kw = {"CONFIG_SECTORS_FILE_URL": "file://" + path, "MQ_PUBLISH_TIMEOUT": "PT120S"}
    kw.update(over)
    return s.env(datasets=(), **kw)


def read_queue(broker, queue, idle=2.0):
    """Consumes (and removes) every message of a queue; returns one dict per message in
    queue order: seq (action_sequence), work_id, oid (the id of the bundle's object),
    problems (list of what is wrong with the message, empty when fine)."""
    conn = mq_helpers.connect(broker)
    out = []
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=2000)
        for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=idle):
            if method is None:
                break
            problems = []
            rec = {"seq": None, "work_id": None, "oid": None, "problems": problems}
            if props.delivery_mode != 2 or props.content_encoding != "utf-8":
                problems.append("properties %r/%r" % (props.delivery_mode, props.content_encoding))
            try:
                env = json.loads(body)
                rec["seq"] = env["action_sequence"]
                rec["work_id"] = env["work_id"]
                bundle = json.loads(base64.b64decode(env["content"], validate=True))
                objs = bundle["objects"]
                if len(objs) != 1:
                    problems.append("%d objects in the bundle" % len(objs))
                rec["oid"] = objs[0]["id"]
            except (ValueError, KeyError, TypeError, IndexError) as e:
                problems.append("malformed message: %r" % (e,))
            out.append(rec)
        ch.cancel()
    finally:
        conn.close()
    return out


def seq_counts(records):
    return collections.Counter(r["seq"] for r in records)


def duplicates(records):
    return sum(c - 1 for c in seq_counts(records).values())


def check_messages(records, work_id):
    """Every message is well formed and belongs to the run's work."""
    bad = [r for r in records if r["problems"] or r["work_id"] != work_id]
    check(not bad, "every message in the queue is well formed and carries the run's work id",
          bad[:3])


def wait_depth(platform, queue, at_least, timeout=60, daemon=None):
    """Waits until the queue holds at least `at_least` messages; returns the depth. With a
    daemon, fails at once (printing its log) when the daemon exits first."""
    deadline = time.monotonic() + timeout
    while True:
        n = platform.queue_depth(queue)
        if n is not None and n >= at_least:
            return n
        if daemon is not None and not daemon.running():
            daemon.print_log("exited while waiting for %d messages in %s" % (at_least, queue))
            raise AssertionError("the daemon exited before %d messages were in %s (%r)"
                                 % (at_least, queue, n))
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %d messages in %s (last %r)"
                                 % (at_least, queue, n))
        time.sleep(0.02)


def dataset_result(d, name="sectors", start=0):
    """(confirmed, expected, record) of the dataset's last "N/M messages confirmed" line."""
    recs = d.find_logs(dataset_done_rx(name), start)
    check(recs, "a \"Dataset %s: N/M messages confirmed\" line" % name)
    m = re.match(dataset_done_rx(name), recs[-1].message)
    return int(m.group(1)), int(m.group(2)), recs[-1]


def split_messages(d, name="sectors"):
    """The number of messages the daemon made of a dataset (its "fetched and split" log)."""
    recs = d.find_logs(r"^Dataset %s fetched and split$" % re.escape(name))
    check(recs, "the dataset was fetched and split")
    return int(recs[-1]["attributes"]["messages"])


def error_reports(s, work_id):
    """The reportExpectation calls carrying an error (the daemon's unsent messages)."""
    return [e for e in s.work_events(work_id, "reportExpectation")
            if (e["args"] or {}).get("error")]


def check_clean_run(s, work, total, broker, queue):
    """What a run that recovered from the fault must leave: the work expects `total`
    messages, is told processed not in error, and has no message reported unsent.
    Returns the queue's records, each checked by check_messages."""
    eq(work["import_expected_number"], total, "the work's expectations")
    eq(to_processed(s, work)["inError"], False, "the work is not in error")
    eq(error_reports(s, work["id"]), [], "no message reported as unsent")
    records = read_queue(broker, queue)
    check_messages(records, work["id"])
    return records


def report_like_worker(platform, work_id, records):
    """Reports one expectation per message read from the queue, as the worker would have
    (duplicates included)."""
    for _ in records:
        platform.report_expectation(work_id, None)


def timed(fn, *a, **kw):
    t = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t


# The double's AMQP helper (Platform._amqp) turns connection failures into the GraphQL
# error the platform would answer, but only for pika.exceptions.AMQPError and OSError:
# a handshake that times out (a node that accepts TCP but does not answer yet, as while it
# boots or is frozen) raises pika's AMQPConnectorStackTimeout, which is neither, so the
# double answers HTTP 500 and records a "double" violation. The daemon treats both answers
# alike (a failed ping); the tests that restart the broker tolerate that one violation.
_OUTAGE_RX = re.compile(r"the platform double failed on this request: "
                        r"AMQPConnector\w*(Timeout|Error)")


def assert_no_violations_but_outage(platform):
    """Platform.assert_no_violations(), except for the double's own failure to reach a
    broker that is starting (see above)."""
    with platform.lock:
        kept = [v for v in platform.violations
                if not (v["kind"] == "double" and _OUTAGE_RX.search(v["message"]))]
        ignored = len(platform.violations) - len(kept)
        platform.violations[:] = kept
    if ignored:
        print("  (ignored %d double failure(s) reaching the restarting broker)" % ignored)
    platform.assert_no_violations()


def check_confirmed_in_queue(records, confirmed, window=WINDOW):
    """What a run interrupted mid-publish must leave: every message counted as confirmed
    (action_sequence 1..confirmed) is in the queue, and at most one window more (published,
    not yet confirmed, persisted anyway). Returns the set of sequences in the queue."""
    seqs = set(seq_counts(records))
    missing = set(range(1, confirmed + 1)) - seqs
    check(not missing, "every message counted as confirmed is in the queue",
          len(missing), sorted(missing)[:10])
    check(len(seqs) <= confirmed + window, "at most one window beyond the confirmed",
          confirmed, len(seqs))
    return seqs


def main_with_own_broker(module, **broker_kw):
    """main() of a fault test that stops, kills or reconfigures its broker: starts a
    private node (Broker(**broker_kw)) as module.BROKER, runs the module's tests, stops it."""
    module.BROKER = Broker(**broker_kw).start()
    try:
        return run_tests(vars(module))
    finally:
        module.BROKER.stop()


def sigterm_while(broker, d, queue, break_it, mend_it, what, total):
    """SIGTERM once break_it() has broken something under a publishing daemon (and waited
    until the daemon noticed); mend_it() runs in any case. The daemon must exit 0 within
    15 s, say the dataset was interrupted mid-publish, and have counted nothing as
    confirmed that the queue does not hold (check_confirmed_in_queue)."""
    try:
        break_it()
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(30), 0, "exit status after SIGTERM")
        took = time.monotonic() - t0
    finally:
        mend_it()
    check(took <= 15, "exits within 15 s of SIGTERM although %s" % what, took)
    c, _, rec = dataset_result(d)
    check(0 < c < total and "interrupted: the connector is stopping" in rec.message,
          "interrupted mid-publish", rec.message)
    seqs = check_confirmed_in_queue(read_queue(broker, queue), c)
    print("  exited %.1fs after SIGTERM while %s; %d confirmed, %d in the queue"
          % (took, what, c, len(seqs)))
