"""Stopping the daemon (SIGTERM, SIGINT) while idle and in the middle of a run.

* test_sigterm_while_idle / test_sigint_while_idle: exit 0 at once, "Connector stop", the
  stored state kept, no ERROR.
* test_sigterm_while_fetching: a slow dataset download is interrupted: exit 0 within a few
  seconds, "Connector stop", the run's work is told (toProcessed in error, saying the
  connector stopped), no expectation is reported that was never added, last_run not
  stored. A restart then runs the datasets.
* test_sigterm_while_publishing: the same while messages are being published (a big
  dataset): the work is told in error, and the messages published but not confirmed or
  not sent are accounted for (reported on the work), never lost silently.
"""

import signal
import sys
import time

from daemon_scenarios import taken_off  # noqa: E402
from daemon_scenarios import (RUN_STORED, STOPPED, Checks, Daemon, assert_no_error_logs,
                              assert_work_success, big_bundle, check, fast_env, free_port, new_id,
                              eq, run_tests, scenario, wait_until)


def _idle_stop(sig):
    with scenario() as s:
        d = s.daemon()
        d.wait_for_log(RUN_STORED, 60)
        s.wait_work_done(0, 60)
        last = s.last_run()
        d.wait_for_log(r"^Connector will not run", 15, start=d.mark())
        t = time.monotonic()
        d.signal(sig)
        eq(d.wait_exit(10), 0, "exit status after %s" % sig.name)
        took = time.monotonic() - t
        check(took < 3, "stops at once when idle", took)
        d.wait_for_log(STOPPED, 1)
        eq(d.logs[-1].message, "Connector stop", "the last log line")
        eq(s.last_run(), last, "state kept")
        assert_no_error_logs(d)
        s.platform.assert_no_violations()


def test_sigterm_while_idle():
    _idle_stop(signal.SIGTERM)


def test_sigint_while_idle():
    _idle_stop(signal.SIGINT)


def _told_in_error(c, s, w):
    """The work of an interrupted run got toProcessed(inError) naming the stop."""
    tp = s.work_events(w["id"], "toProcessed")
    if c.check(tp, "the interrupted run's work is told (toProcessed), so that it does not stay "
               "in progress", [(e["event"], e["ok"], e["error"]) for e in s.work_events(w["id"])
                               if e["event"] != "reportExpectation"]):
        c.eq(tp[0]["args"]["inError"], True, "toProcessed in error")
        c.check("stop" in tp[0]["args"]["message"], "the message says the connector stopped",
                tp[0]["args"]["message"])


def _reports(s, w):
    added = sum(e["args"]["expectations"] for e in s.work_events(w["id"], "addExpectations"))
    reported = [e for e in s.work_events(w["id"], "reportExpectation")]
    return added, reported


def test_sigterm_while_fetching():
    with scenario() as s:
        p = s.platform
        p.set_dataset("geography.json", delay=30)
        d = s.daemon()
        d.wait_for_log(r"^Dataset sectors fetched and split$", 60)
        wait_until(lambda: p.dataset_requests("geography.json"), 10, message="geography requested")
        t = time.monotonic()
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(10), 0, "exit status")
        check(time.monotonic() - t < 6, "stops within a few seconds", time.monotonic() - t)
        d.wait_for_log(STOPPED, 1)
        s.quiesce()   # judge what reached the platform, requests in flight included
        ws = s.works()
        eq(len(ws), 1, "one work")
        w = ws[0]
        with Checks() as c:
            _told_in_error(c, s, w)
            added, reported = _reports(s, w)
            c.check(len(reported) <= added, "no expectation reported beyond those added (the run "
                    "stopped before addExpectations)", "added %d, reported %d" % (added, len(reported)))
            c.eq(s.state(), "null", "no last_run")
            c.eq(len(s.messages()), 0, "nothing was published")
        # a restart does the run
        p.clear_dataset()
        d2 = s.daemon()
        d2.wait_for_log(RUN_STORED, 60)
        w2 = s.wait_work_done(1, 60)
        assert_work_success(s, w2)
        d2.signal(signal.SIGTERM)
        eq(d2.wait_exit(15), 0, "exit status")


def test_sigterm_while_publishing():
    n = 60000
    with scenario() as s:
        p = s.platform
        p.set_dataset("geography.json", body=big_bundle(n))
        d = s.daemon()
        d.wait_for_log(lambda r: r.message == "Connected to the message broker"
                       and (r.get("attributes") or {}).get("dataset") == "geography", 60)
        wait_until(lambda: len(s.messages()) > 200, 30, message="geography being published")
        t = time.monotonic()
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        took = time.monotonic() - t
        check(took < 10, "stops within a few seconds", took)
        d.wait_for_log(STOPPED, 1)
        s.quiesce()
        rec = d.find_logs(r"^Dataset geography: \d+/%d messages confirmed" % n)
        eq(len(rec), 1, "the interrupted dataset is logged")
        confirmed = rec[0]["attributes"]["confirmed"]
        check(0 < confirmed < n, "interrupted in the middle", confirmed)
        w = s.works()[0]
        expected = w["import_expected_number"] + taken_off(s, w["id"])
        eq(expected, 121 + n + 63, "expectations of the run (with those taken off in bulk)")
        # the worker processes what was confirmed
        wait_until(lambda: len(s.messages()) >= 121 + confirmed, 60, message="the worker drains the queue")
        with Checks() as c:
            _told_in_error(c, s, w)
            added, reported = _reports(s, w)
            errors = [e for e in reported if e["args"]["error"]]
            # what was not confirmed is reported on the work (as far as the shutdown budget
            # allows), and the work's final message says how much was left out
            tp = s.work_events(w["id"], "toProcessed")
            unsent = expected - 121 - confirmed
            c.check(len(errors) + taken_off(s, w["id"]) >= unsent or (tp and "%d/%d" % (confirmed, n) in tp[0]["args"]["message"]),
                    "the unsent messages are accounted for on the work",
                    "confirmed %d of %d, %d reported, final message %r"
                    % (confirmed, n, len(errors), tp[0]["args"]["message"] if tp else None))
            c.eq(s.state(), "null", "no last_run")


def test_sigterm_while_waiting_for_the_platform():
    """Stopping during the start-up retries (nothing listens at OPENCTI_URL)."""
    port = free_port()
    d = Daemon(fast_env(None, new_id(), url="http://127.0.0.1:%d" % port))
    d.start()
    try:
        d.wait_for_log(r"^OpenCTI API is not reachable at ", 15)
        t = time.monotonic()
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(10), 0, "exit status")
        check(time.monotonic() - t < 3, "stops at once", time.monotonic() - t)
        d.wait_for_log(STOPPED, 1)
    finally:
        d.stop()
        d.cleanup()


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
