"""Resets of the connector state from the platform side (the UI's "reset state").

* test_reset_while_idle: after a first complete run, reset_state makes the daemon run again
  at once: a second complete work with all 723 messages (the reference split again), and
  the state ends with a new last_run (not swallowed by the reset flag).
* test_reset_during_run: with a stored (old) last_run, a reset while a run is fetching
  aborts that run (its work is told, in error) and runs again; the state ends with the
  re-run's last_run.
* test_reset_during_first_run: the same while the connector has never run (no local
  state): the reset must still be noticed and the run re-done.
* test_reset_purging_a_first_run: a reset while the first run is publishing purges the
  push queue under it; the daemon must notice it (pings go on during publishing) and
  import the datasets again, instead of storing last_run over a half-purged import.
"""

import datetime
import sys
import time

from daemon_scenarios import (RESET_SEEN, RUN_STORED, WORK_NAME_RX, Checks, assert_no_error_logs, big_bundle,
                              assert_reference_run, assert_work_success, check, eq, run_tests,
                              scenario, to_processed, wait_until)


def register_only(s):
    """Registers the connector with a quick first run (companies only, run-and-terminate,
    so that no request of it is in flight afterwards); returns after the daemon exited."""
    d = s.daemon(CONFIG_SECTORS_FILE_URL="false", CONFIG_GEOGRAPHY_FILE_URL="false",
                 CONNECTOR_RUN_AND_TERMINATE="true")
    eq(d.wait_exit(60), 0, "preparing daemon exit status")


def test_reset_while_idle():
    # a long check interval: the re-run must come from the reset itself, not the next check
    with scenario() as s:
        p = s.platform
        d = s.daemon(CONNECTOR_CHECK_INTERVAL=300)
        d.wait_for_log(RUN_STORED, 60)
        w1 = s.wait_work_done(0, 60)
        first = assert_work_success(s, w1)
        eq(s.last_run(), first, "first last_run stored")
        wait_until(lambda: int(time.time()) > first, 5)   # the re-run starts in a later second
        mark = d.mark()
        p.reset_state(s.cid)
        t = time.monotonic()
        rec = d.wait_for_log(RESET_SEEN, 15, start=mark)
        eq(rec["level"], "WARNING", "the reset is a warning")
        d.wait_for_log(r"^Fetching OpenCTI datasets", 10, start=mark)
        check(time.monotonic() - t < 6, "the re-run starts at once (within a ping interval)",
              time.monotonic() - t)
        d.wait_for_log(RUN_STORED, 60, start=mark)
        w2 = s.wait_work_done(1, 60)
        eq(len(s.works()), 2, "exactly one more work")
        second = assert_work_success(s, w2)
        check(second > first, "a new last_run", first, second)
        assert_reference_run(s, w2["id"])
        # the state survives the reset flag: it is stored, and the flag is consumed
        wait_until(lambda: s.state() == '{"last_run": %d}' % second, 15, message="new state stored")
        eq(p.connector(s.cid)["connector_state_reset"], False, "reset flag consumed")
        # and it stays: later pings keep it, no third run
        n = len(p.pings)
        wait_until(lambda: len(p.pings) >= n + 2, 15, message="two more pings")
        eq(s.last_run(), second, "state kept")
        eq(len(s.works()), 2, "no third run")
        assert_no_error_logs(d)
        p.assert_no_violations()


def _reset_during_fetch(s, d):
    """Resets while geography (slow) is being fetched; checks the abort and the re-run."""
    p = s.platform
    d.wait_for_log(r"^Dataset sectors fetched and split$", 60)
    wait_until(lambda: p.dataset_requests("geography.json"), 10, message="geography requested")
    p.reset_state(s.cid)
    t_reset = time.time()
    d.wait_for_log(RESET_SEEN, 10)
    p.clear_dataset("geography.json")
    d.wait_for_log(RUN_STORED, 90)
    works = s.wait_works(2, 30)
    w1 = s.wait_work_done(len(works) - 2, 30, complete=False)
    args = to_processed(s, w1)
    eq(args["inError"], True, "the aborted run's work is in error")
    check("reset" in args["message"], "the aborted work says why", args["message"])
    # nothing was published by the aborted run, so no expectation may be reported to it
    # beyond those it was given (reportExpectation on a work without expectations corrupts
    # its counters on the platform)
    added = sum(e["args"]["expectations"] for e in s.work_events(w1["id"], "addExpectations"))
    reported = len(s.work_events(w1["id"], "reportExpectation"))
    check(reported <= added, "the aborted work gets no more reports than expectations",
          "added %d, reported %d" % (added, reported))
    w2 = s.wait_work_done(len(works) - 1, 60)
    last = assert_work_success(s, w2)
    check(last >= int(t_reset), "the re-run's last_run is after the reset", last, t_reset)
    assert_reference_run(s, w2["id"])
    wait_until(lambda: s.state() == '{"last_run": %d}' % last, 15, message="the re-run's state stored")
    p.assert_no_violations()


def test_reset_during_run():
    with scenario() as s:
        register_only(s)
        n0 = len(s.works())
        s.set_stored_state('{"last_run": %d}' % (time.time() - 8 * 86400))
        s.platform.set_dataset("geography.json", delay=6)
        d = s.daemon()
        d.wait_for_log(r"^Connector last run: ", 30)
        _reset_during_fetch(s, d)
        eq(len(s.works()), n0 + 2, "the aborted run and the re-run")


def test_reset_during_first_run():
    with scenario() as s:
        s.platform.set_dataset("geography.json", delay=6)
        d = s.daemon()
        d.wait_for_log(r"^Connector has never run$", 30)
        _reset_during_fetch(s, d)
        eq(len(s.works()), 2, "the aborted run and the re-run")


def test_reset_purging_a_first_run():
    # no worker: what the first run published stays in the queue until the reset purges it
    with scenario(worker=False) as s:
        p = s.platform
        p.set_dataset("sectors.json", body=big_bundle(100000))
        d = s.daemon()
        d.wait_for_log(r"sending bundle to queue$", 60)
        q = p.queue_name("push", s.cid)
        wait_until(lambda: (p.queue_depth(q) or 0) > 500, 30, message="messages in the push queue")
        p.reset_state(s.cid)
        # some run ends stored: with the bug the purged one, otherwise the re-run
        d.wait_for_log(RUN_STORED, 180)
        s.quiesce()
        last = s.last_run()
        first_start = WORK_NAME_RX.match(s.works()[0]["name"]).group(1)
        stored = datetime.datetime.fromtimestamp(last, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        with Checks() as c:
            c.check(d.find_logs(RESET_SEEN), "the reset made while publishing was noticed "
                    "(pings go on every 2 s during publishing)")
            c.check(stored != first_start, "the stored last_run is not that of the run whose "
                    "queue was purged", "last_run %s, purged run started %s" % (stored, first_start))
            c.check(len(s.works()) >= 2, "the datasets were imported again", len(s.works()))


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
