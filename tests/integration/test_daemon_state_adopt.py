"""A ping that answers a *different non-empty* state (connector.c, adopt_remote_state).

The platform answers every ping with the state it holds after the ping's write. It holds
something else than what the daemon sent only when another writer (an operator's tool,
another instance with the same id) wrote between the ping's write and its read-back, or
when the read-back is stale (Elasticsearch read-after-write lag, opencti#16612 and
#17472: the answer is the document from before the write). The double stores what the
ping sends and reads it back at once, so PingTap (below) wraps its pingConnector resolver
to play both: write(text) makes the next ping's read-back see another writer's `text`
(the platform keeps it), answer(text) makes the next ping answer `text` without storing
it (a stale read), stale=True makes every ping answer the value stored before its own
write (a platform under constant latency).

The rules under test: a different object state is adopted (logged "Connector state
differs on the platform; adopting it" with the state) and drives the run checks,
connectorInfo and the following pings; except the state the daemon held just before its
last change (prev_state_text), which is taken as a late echo of its own previous write:
it is ignored, so the daemon keeps its newer state and its next pings write that back, so
the platform never ends up with the stale value nor re-runs because of it.

* test_adopt_old_last_run_runs_again (a): after a first import another writer sets an old
  last_run: adopted, and the next check runs (a second complete import of the 723
  messages); the pings in between carry the adopted state, never the replaced one.
* test_adopt_recent_last_run_no_run (b): a recent last_run that differs (with another
  key): adopted as is (the other key kept), no run, connectorInfo's last/next run follow
  it, every later ping sends it.
* test_stale_echo_after_run_is_ignored (c): with a stored old last_run and a lagging
  platform, the ping carrying the run's new last_run is answered the old one: ignored (no
  adoption, no second run) and the platform ends with the new value.
* test_stale_echo_after_adoption_is_ignored (c): after adopting another writer's state, a
  stale answer with the daemon's own replaced state is ignored (the platform's newer
  value is kept and written back), while a genuinely different state is still adopted
  afterwards (the exception covers exactly the previous state).
* test_stale_echo_after_first_run_is_ignored (c): the same lag after a *first* run: the
  previous state was "none" (the pings sent "null"), so the late echo is "null". It must
  not count as an operator reset (which re-imports everything and wipes the state).
* test_adopt_iso_last_run (d): last_run as an ISO-8601 string, as connectors-sdk's state
  manager (pydantic, "…T…:…:….ffffffZ") and datetime.isoformat() ("+02:00") write it:
  adopted, read as the right instant (no run while recent; run when old), and the run's new
  state has the integer last_run.
"""

import datetime
import re
import sys
import threading
import time

from daemon_scenarios import (RESET_SEEN, RUN_STORED, RUN_SUCCESS, WILL_NOT_RUN, Checks,
                              assert_no_error_logs, assert_reference_run, assert_work_success,
                              check, eq, run_tests, scenario, wait_until)

ADOPTING = r"^Connector state differs on the platform; adopting it$"
STALE_ECHO = r"^Ignoring a stale echo of the previous state: "
LAST_RUN = r"^Connector (last run: |has never run$)"
CHECK_DONE = r"^(Connector will not run, next run in: |Fetching OpenCTI datasets)"
PERIOD_S = 7 * 86400   # CONFIG_INTERVAL's default
CHECK_S = 2            # CONNECTOR_CHECK_INTERVAL and CONNECTOR_PING_INTERVAL (fast_env)


def st(last_run):
    """The daemon's (Python-style) state text for an integer last_run."""
    return '{"last_run": %d}' % last_run


def human(t):
    """How "Connector last run: ..." shows an epoch."""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def iso(t):
    """connectorInfo's datetime format."""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_time(rec):
    return datetime.datetime.strptime(rec["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class PingTap:
    """Wraps the double's Mutation.pingConnector resolver for one connector (see the module
    docstring). `records` has one entry per ping: sent (the state the daemon sent), before
    (stored before the ping), stored (after it), answered, mode (write, answer, stale or
    None), info (connectorInfo)."""

    def __init__(self, s):
        self.p = s.platform
        self.cid = s.cid
        self.orig = self.p.resolvers["Mutation.pingConnector"]
        self.writes = []
        self.answers = []
        self.stale = False
        self.records = []
        self.consumed = None
        self.cond = threading.Condition(self.p.lock)
        self.p.resolvers["Mutation.pingConnector"] = self._ping

    def _ping(self, parent, args, info):
        if args.get("id") != self.cid:
            return self.orig(parent, args, info)
        with self.p.lock:
            rec = self.p.connectors.get(self.cid)
            before = rec["connector_state"] if rec else None
        view = self.orig(parent, args, info)
        with self.cond:
            rec = self.p.connectors[self.cid]
            mode = None
            index = len(self.records)
            if self.writes or self.answers:
                self.consumed = index
            if self.writes:
                mode = "write"
                rec["connector_state"] = view["connector_state"] = self.writes.pop(0)
            elif self.answers:
                mode = "answer"
                view["connector_state"] = self.answers.pop(0)
            elif self.stale:
                mode = "stale"
                view["connector_state"] = before
            self.records.append({"sent": args.get("state"), "before": before,
                                 "stored": rec["connector_state"],
                                 "answered": view["connector_state"], "mode": mode,
                                 "info": args.get("connectorInfo")})
            self.cond.notify_all()
        return view

    def _arm(self, queue, text, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            queue.append(text)
            while queue:
                left = deadline - time.monotonic()
                check(left > 0, "a ping within %.0fs" % timeout)
                self.cond.wait(left)
            return self.consumed

    def write(self, text, timeout=15):
        """Another writer's `text` lands in the next ping's read-back. Returns the index of
        that ping's record (after it happened)."""
        return self._arm(self.writes, text, timeout)

    def answer(self, text, timeout=15):
        """The next ping answers `text` (not stored). Returns that ping's record index."""
        return self._arm(self.answers, text, timeout)

    def after(self, index):
        with self.cond:
            return list(self.records[index + 1:])

    def wait_pings(self, index, n, timeout=20):
        """Waits for n pings after record `index`; returns them."""
        return wait_until(lambda: len(self.after(index)) >= n and self.after(index), timeout,
                          message="%d pings after ping %d" % (n, index))


def first_import(s, d):
    """Waits for the daemon's first complete import; returns its last_run, once stored."""
    d.wait_for_log(RUN_STORED, 60)
    first = assert_work_success(s, s.wait_work_done(0, 60))
    wait_until(lambda: s.state() == st(first), 15, message="first state stored")
    return first


def index_of(d, rec):
    """The index of a record in d.logs (by identity)."""
    with d._cond:
        for k, r in enumerate(d.logs):
            if r is rec:
                return k
    raise AssertionError("record not in the log")


def next_check(d, start, timeout=15):
    """The first run check from log index `start`: (what it logged about the state, "Connector
    last run: ..." or "Connector has never run", and its outcome record)."""
    done = d.wait_for_log(CHECK_DONE, timeout, start=start)
    with d._cond:
        upto = d.logs[start:index_of(d, done)]
    last = [r for r in upto if re.search(LAST_RUN, r.message or "")]
    check(last, "the check logged the last run", done.message)
    return last[-1].message, done


def register_only(s):
    """Registers the connector with a quick first run (companies only, run-and-terminate)."""
    d = s.daemon(CONFIG_SECTORS_FILE_URL="false", CONFIG_GEOGRAPHY_FILE_URL="false",
                 CONNECTOR_RUN_AND_TERMINATE="true")
    eq(d.wait_exit(60), 0, "preparing daemon exit status")
    s.quiesce()


# ---- (a), (b): adoption -------------------------------------------------------------------------

def test_adopt_old_last_run_runs_again():
    with scenario() as s:
        tap = PingTap(s)
        d = s.daemon()
        first = first_import(s, d)
        old = first - 30 * 86400
        mark = d.mark()
        i = tap.write(st(old))
        rec = d.wait_for_log(ADOPTING, 10, start=mark)
        eq(rec["level"], "INFO", "adoption log level")
        eq(rec["attributes"]["state"], st(old), "the adopted state is logged")
        msg, done = next_check(d, index_of(d, rec))
        eq(msg, "Connector last run: " + human(old), "the next check uses the adopted last_run")
        check(done.message.startswith("Fetching OpenCTI datasets"), "the next check runs",
              done.message)
        check(log_time(done) - log_time(rec) < CHECK_S + 4,
              "the run starts at the next check", log_time(done) - log_time(rec))
        d.wait_for_log(RUN_STORED, 60, start=mark)
        w2 = s.wait_work_done(1, 60)
        second = assert_work_success(s, w2)
        check(second > first, "a new last_run", first, second)
        assert_reference_run(s, w2["id"])
        wait_until(lambda: s.state() == st(second), 15, message="the new state stored")
        sent = [r["sent"] for r in tap.after(i)]
        eq(sent[0], st(old), "the ping after the adoption sends the adopted state")
        check(st(first) not in sent, "the replaced state is never written back", sent)
        eq(sent[-1], st(second), "then the new run's state")
        eq(len(s.works()), 2, "exactly one more run")
        assert_no_error_logs(d)
        s.platform.assert_no_violations()


def test_adopt_recent_last_run_no_run():
    with scenario() as s:
        tap = PingTap(s)
        d = s.daemon()
        first = first_import(s, d)
        recent = first - 3600
        text = '{"last_run": %d, "cursor": "set by another tool"}' % recent
        mark = d.mark()
        i = tap.write(text)
        rec = d.wait_for_log(ADOPTING, 10, start=mark)
        eq(rec["attributes"]["state"], text, "the adopted state is logged as is")
        start = index_of(d, rec)
        for _ in range(3):
            msg, done = next_check(d, start)
            eq(msg, "Connector last run: " + human(recent), "the checks use the adopted last_run")
            check(re.search(WILL_NOT_RUN, done.message), "no run", done.message)
            start = index_of(d, done) + 1
        pings = tap.wait_pings(i, 3)
        with Checks() as c:
            for r in pings:
                c.eq(r["sent"], text, "later pings send the adopted state (other key kept)")
                c.eq(r["info"]["last_run_datetime"], iso(recent), "connectorInfo.last_run_datetime")
                c.eq(r["info"]["next_run_datetime"], iso(recent + PERIOD_S + 1),
                     "connectorInfo.next_run_datetime (a period, strictly, after it)")
            c.eq(s.state(), text, "the platform keeps the adopted state")
            c.eq(len(s.works()), 1, "no second run")
            c.eq(len(d.find_logs(ADOPTING)), 1, "adopted once")
        assert_no_error_logs(d)
        s.platform.assert_no_violations()


# ---- (c): the stale-echo exception --------------------------------------------------------

def test_stale_echo_after_run_is_ignored():
    with scenario() as s:
        register_only(s)
        old = int(time.time()) - 30 * 86400
        s.set_stored_state(st(old))
        tap = PingTap(s)
        tap.stale = True
        d = s.daemon(CONNECTOR_LOG_LEVEL="debug")
        d.wait_for_log(RUN_STORED, 60)
        new = assert_work_success(s, s.wait_work_done(1, 60))
        try:
            k = wait_until(lambda: [k for k, r in enumerate(tap.after(-1))
                                    if r["sent"] == st(new) and r["answered"] == st(old)], 10)[0]
        except AssertionError:
            check(False, "precondition: the ping carrying the new state was answered the old one",
                  tap.records)
        mark = d.mark()
        tap.wait_pings(k, 3)
        checks = [next_check(d, mark)]
        checks.append(next_check(d, index_of(d, checks[0][1]) + 1))
        with Checks() as c:
            c.check(not d.find_logs(ADOPTING), "the echo is not adopted",
                    *[r.get("raw") for r in d.find_logs(ADOPTING)])
            c.check(d.find_logs(STALE_ECHO + re.escape(st(old)) + "$"), "logged as a stale echo")
            c.check(not d.find_logs(RESET_SEEN), "not taken for a reset")
            c.eq([r["sent"] for r in tap.after(k)], [st(new)] * len(tap.after(k)),
                 "every later ping writes the new state back, never the stale one")
            c.eq(s.state(), st(new), "the platform ends with the new state")
            for msg, done in checks:
                c.eq(msg, "Connector last run: " + human(new), "the checks use the new last_run")
                c.check(re.search(WILL_NOT_RUN, done.message), "no second run", done.message)
            c.eq(len(s.works()), 2, "one run (besides the registering one)")


def test_stale_echo_after_adoption_is_ignored():
    with scenario() as s:
        tap = PingTap(s)
        d = s.daemon(CONNECTOR_LOG_LEVEL="debug")
        first = first_import(s, d)
        other = first - 3600
        mark = d.mark()
        tap.write(st(other))
        d.wait_for_log(ADOPTING, 10, start=mark)
        # a late read-back of the daemon's own replaced state
        mark = d.mark()
        j = tap.answer(st(first))
        later = tap.wait_pings(j, 3)
        with Checks() as c:
            c.check(not d.find_logs(ADOPTING, mark), "the echo of the replaced state is ignored",
                    *[r.get("raw") for r in d.find_logs(ADOPTING, mark)])
            c.check(d.find_logs(STALE_ECHO + re.escape(st(first)) + "$", mark),
                    "logged as a stale echo")
            c.eq([r["sent"] for r in later], [st(other)] * len(later),
                 "the next pings keep the platform's newer state")
            c.eq(s.state(), st(other), "the platform keeps its newer state")
            msg, done = next_check(d, d.mark())
            c.eq(msg, "Connector last run: " + human(other), "the checks use the adopted state")
            c.check(re.search(WILL_NOT_RUN, done.message), "no run", done.message)
        # the exception is for that one state only: another different one is adopted
        third = first - 7200
        mark = d.mark()
        k = tap.write(st(third))
        rec = d.wait_for_log(ADOPTING, 10, start=mark)
        eq(rec["attributes"]["state"], st(third), "a genuinely different state is adopted")
        eq([r["sent"] for r in tap.wait_pings(k, 2)], [st(third)] * 2, "and sent afterwards")
        eq(len(s.works()), 1, "no second run")
        assert_no_error_logs(d)


def test_stale_echo_after_first_run_is_ignored():
    with scenario() as s:
        tap = PingTap(s)
        tap.stale = True
        d = s.daemon(CONNECTOR_LOG_LEVEL="debug")
        success = d.wait_for_log(RUN_SUCCESS, 60)
        new = int(re.match(RUN_SUCCESS, success.message).group(1))
        try:
            k = wait_until(lambda: [k for k, r in enumerate(tap.after(-1))
                                    if r["sent"] == st(new) and r["answered"] == "null"], 10)[0]
        except AssertionError:
            check(False, "precondition: the ping carrying the first state was answered \"null\"",
                  tap.records)
        mark = d.mark()
        tap.wait_pings(k, 4)
        with Checks() as c:
            c.check(not d.find_logs(RESET_SEEN), "the late echo of \"null\" is not a reset",
                    *[r.get("raw") for r in d.find_logs(RESET_SEEN)])
            c.check(d.find_logs(RUN_STORED), "the first run's state is kept")
            c.check(not d.find_logs(r"^Fetching OpenCTI datasets", mark),
                    "the datasets are not imported again")
            c.eq(len(s.works()), 1, "one run")
            sent = [r["sent"] for r in tap.after(k)]
            c.eq(sent, [st(new)] * len(sent), "the later pings send the first run's state")
            c.eq(s.state(), st(new), "the platform keeps the first run's state")


# ---- (d): ISO-8601 last_run ---------------------------------------------------------------------

def test_adopt_iso_last_run():
    with scenario() as s:
        tap = PingTap(s)
        d = s.daemon()
        first = first_import(s, d)
        utc = datetime.timezone.utc
        cases = [
            # connectors-sdk: pydantic's model_dump(mode="json") of an aware UTC datetime
            (first - 3600, datetime.datetime.fromtimestamp(first - 3600 + 0.25, utc)
             .strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
            # datetime.isoformat() with an offset
            (first - 7200, datetime.datetime.fromtimestamp(
                first - 7200, datetime.timezone(datetime.timedelta(hours=2))).isoformat()),
        ]
        for epoch, value in cases:
            text = '{"last_run": "%s"}' % value
            mark = d.mark()
            i = tap.write(text)
            rec = d.wait_for_log(ADOPTING, 10, start=mark)
            eq(rec["attributes"]["state"], text, "the ISO state is adopted as is")
            msg, done = next_check(d, index_of(d, rec))
            eq(msg, "Connector last run: " + human(epoch), "%s read as the right instant" % value)
            check(re.search(WILL_NOT_RUN, done.message), "recent: no run", value, done.message)
            ping = tap.wait_pings(i, 1)[0]
            eq(ping["sent"], text, "the ISO state is sent back unchanged")
            eq(ping["info"]["last_run_datetime"], iso(epoch), "connectorInfo.last_run_datetime")
        eq(len(s.works()), 1, "no run for a recent ISO last_run")
        # an old one: the next check runs, and the new state has an integer last_run
        old = first - 30 * 86400
        value = datetime.datetime.fromtimestamp(old + 0.5, utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        mark = d.mark()
        tap.write('{"last_run": "%s"}' % value)
        rec = d.wait_for_log(ADOPTING, 10, start=mark)
        msg, done = next_check(d, index_of(d, rec))
        eq(msg, "Connector last run: " + human(old), "old ISO last_run read")
        check(done.message.startswith("Fetching OpenCTI datasets"), "old: runs", done.message)
        d.wait_for_log(RUN_STORED, 60, start=mark)
        second = assert_work_success(s, s.wait_work_done(1, 60))
        wait_until(lambda: s.state() == st(second), 15, message="integer last_run stored")
        eq(s.last_run(), second, "the new state's last_run is an integer")
        assert_no_error_logs(d)
        s.platform.assert_no_violations()


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
