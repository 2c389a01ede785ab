"""The connector's push queue is deleted on the broker in the middle of a run (an operator,
or a platform clean-up). Messages are published with mandatory set, so the broker returns
them (312 NO_ROUTE) instead of dropping them and confirming them all the same, as it does
with pycti's mandatory=false.

* test_push_queue_deleted_mid_publish: while a 60,000-object dataset is being published
  (worker off) the push queue is deleted (the double's declares held until the first
  return is logged, so that a ping in flight cannot bring the queue back before any
  message came back). The daemon sees the returns ("Messages came back unroutable", at
  most three per-message lines), pings the platform, which declares the queue again, and
  republishes: the run completes, the work is not in error, nothing is reported unsent. What the deleted queue held is gone (the platform's doing, like a
  reset), but nothing published after the deletion is lost: the new queue holds exactly
  the messages from the first one that was returned to the last (a contiguous suffix of
  action_sequence), with at most one window of duplicates.
* test_push_queue_gone_for_good: the queue is deleted and the platform no longer declares
  it (its declare step is switched off in the double): every message comes back 5 times
  and fails alone; the run fails cleanly within seconds (no hang, exit 1 for a
  run-and-terminate run): the work ends in error with a message naming the cause, every
  message is reported to it as not imported, so the work completes (in error) instead of
  staying in progress.
"""

import sys
import threading
import time

from daemon_scenarios import taken_off  # noqa: E402
from daemon_scenarios import (RUN_SUCCESS, TOTAL, check, eq, run_tests, scenario, shared_broker,
                              to_processed)
from fault_scenarios import (check_clean_run, WINDOW, CONNECTED, MSG_FAILED, RETURNED, UNROUTABLE, big_dataset, big_env,
                             dataset_result, duplicates, error_reports,
                             seq_counts, wait_depth)

N = 60000


def hold_declares(platform):
    """Makes the double skip its topology declares (the ping's) until the threading.Event
    returned is cleared."""
    hold = threading.Event()
    hold.set()
    declare = platform._declare_topology

    def maybe_declare(*a, **kw):
        if not hold.is_set():
            return declare(*a, **kw)
        return None
    platform._declare_topology = maybe_declare
    return hold


def test_push_queue_deleted_mid_publish():
    path = big_dataset(N)
    broker = shared_broker()
    with scenario(broker=broker, worker=False) as s:
        p = s.platform
        q = p.queue_name("push", s.cid)
        try:
            d = s.daemon(env=big_env(s, path, CONNECTOR_RUN_AND_TERMINATE="true",
                                     MQ_CONFIRM_WINDOW=WINDOW))
            d.wait_for_log(CONNECTED, 60)
            seen = wait_depth(p, q, N // 6, 60, daemon=d)
            mark = d.mark()
            # The double declares the queue on every ping; a ping running at the moment of
            # the deletion would bring it back before a single message came back. Hold the
            # declares until the daemon has seen a return.
            hold = hold_declares(p)
            p.delete_queue(q)
            t0 = time.monotonic()
            try:
                d.wait_for_log(RETURNED, 30, start=mark)
            finally:
                hold.clear()
            eq(d.wait_exit(120), 0, "exit status: the run recovered")
            took = time.monotonic() - t0
            d.wait_for_log(UNROUTABLE, 1, start=mark)
            check(len(d.find_logs(RETURNED, mark)) <= 3, "per-message return lines are capped")
            d.wait_for_log(RUN_SUCCESS, 1)
            confirmed, expected, rec = dataset_result(d)
            eq((confirmed, expected), (N, N), "every message confirmed in the end")

            w = s.works()[0]
            records = check_clean_run(s, w, N, broker, q)
            seqs = set(seq_counts(records))
            check(seqs, "the re-declared queue received messages")
            first = min(seqs)
            eq(seqs, set(range(first, N + 1)),
               "nothing published after the deletion is lost (a contiguous suffix)")
            check(first - 1 >= seen, "the messages lost are those the deleted queue held",
                  first, seen)
            dups = duplicates(records)
            check(dups <= WINDOW, "duplicates at most the window", dups)
            p.assert_no_violations()
            print("  deleted at >= %d queued messages; %d lost with the queue, %d duplicates, "
                  "%d republished; run over %.1fs after the deletion"
                  % (seen, first - 1, dups, rec["attributes"]["republished"], took))
        finally:
            p.delete_queue(q)


def test_push_queue_gone_for_good():
    broker = shared_broker()
    with scenario(broker=broker) as s:
        p = s.platform
        q = p.queue_name("push", s.cid)
        p.set_dataset("sectors.json", delay=2)  # time to delete the queue before publishing
        d = s.daemon(CONNECTOR_RUN_AND_TERMINATE="true", MQ_PUBLISH_TIMEOUT="PT60S")
        d.wait_for_log(r"^Fetching OpenCTI datasets", 60)
        p._declare_topology = lambda *a, **k: None  # a platform that no longer declares it
        p.delete_queue(q)
        t0 = time.monotonic()
        eq(d.wait_exit(90), 1, "exit status of a failed run-and-terminate run")
        took = time.monotonic() - t0
        check(took < 60, "failed before the give-up time (each message failed alone)", took)
        d.wait_for_log(UNROUTABLE, 1)
        failed = d.find_logs(MSG_FAILED)
        check(1 <= len(failed) <= TOTAL, "the failed messages are logged", len(failed))
        check(all("returned as unroutable 5 times" in r["attributes"]["reason"] and
                  r["attributes"]["object"] for r in failed), "with the reason and the object",
              failed[0])
        for name, n in (("sectors", 121), ("geography", 539), ("companies", 63)):
            eq(dataset_result(d, name)[:2], (0, n), "%s: nothing confirmed" % name)
        w = s.wait_work_done(0, 30)  # complete: every expectation reported
        args = to_processed(s, w)
        eq(args["inError"], True, "the work is in error")
        check("returned as unroutable" in args["message"], "the work's message names the cause",
              args["message"])
        reports = error_reports(s, w["id"])
        off = taken_off(s, w["id"])
        eq(len(reports) + off, TOTAL,
           "every message reported as not imported, or taken off the expectations in bulk")
        check(len(reports) <= 3 * 20, "at most 20 per dataset one by one", len(reports))
        check(all("returned as unroutable" in r["args"]["error"]["error"] for r in reports),
              "each report says why", reports[0]["args"])
        eq(w["completed_number"], TOTAL - off, "the work's counters reached its expectations")
        eq(p.queue_depth(q), None, "the queue is still gone")
        p.assert_no_violations()
        print("  failed cleanly %.1fs after the deletion" % took)


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
