"""SIGTERM while a run publishes.

* test_sigterm_mid_publish: SIGTERM while a 60,000-object dataset is being published
  (worker off). The daemon exits 0 within seconds, logs "Connector stop", stores no
  last_run; the dataset's "C/N messages confirmed: interrupted: the connector is
  stopping" line never claims more than the queue holds: messages 1..C are all in the
  queue, and the queue holds at most one window more (published, unconfirmed, persisted
  anyway), no duplicate; the unsent messages reported to the work never exceed N - C
  (nothing is counted both sent and unsent). Last, the work is told processed in error
  with that reason within the shutdown budget, so that it does not stay in progress.
* test_sigterm_mid_publish_run_and_terminate: the same in run-and-terminate mode (exit 0
  there too: the operator asked for the stop).
"""

import sys
import signal
import time

from daemon_scenarios import taken_off  # noqa: E402
from daemon_scenarios import (RUN_SUCCESS, STOPPED, check, eq, run_tests, scenario, shared_broker,
                              to_processed)
from fault_scenarios import (WINDOW, check_confirmed_in_queue,
                             CONNECTED, big_dataset, big_env, check_messages, dataset_result,
                             duplicates, error_reports, read_queue, wait_depth)

N = 60000
EXIT_WITHIN_S = 15  # drain 2 s + reports to the work bounded by 5 s + toProcessed


def sigterm_mid_publish(**extra_env):
    path = big_dataset(N)
    broker = shared_broker()
    with scenario(broker=broker, worker=False) as s:
        p = s.platform
        q = p.queue_name("push", s.cid)
        try:
            d = s.daemon(env=big_env(s, path, MQ_CONFIRM_WINDOW=WINDOW, **extra_env))
            d.wait_for_log(CONNECTED, 60)
            wait_depth(p, q, N // 6, 60, daemon=d)
            t0 = time.monotonic()
            d.signal(signal.SIGTERM)
            eq(d.wait_exit(EXIT_WITHIN_S + 15), 0, "exit status after SIGTERM")
            took = time.monotonic() - t0
            check(took <= EXIT_WITHIN_S, "exits within %d s of SIGTERM" % EXIT_WITHIN_S, took)
            d.wait_for_log(STOPPED, 1)
            check(not d.find_logs(RUN_SUCCESS), "the run is not reported successful")
            c, expected, rec = dataset_result(d)
            eq(expected, N, "expected messages")
            check(0 < c < N, "interrupted mid-publish", c)
            check("interrupted: the connector is stopping" in rec.message, "the reason", rec.message)
            eq(rec["attributes"]["confirmed"], c, "confirmed attribute")
            check(s.state() in (None, "null"), "no last_run stored", s.state())

            works = s.works()
            eq(len(works), 1, "one work")
            w = works[0]
            off = taken_off(s, w["id"])
            eq(w["import_expected_number"] + off, N,
               "the work's expectations, with those taken off in bulk")
            reported = len(error_reports(s, w["id"]))
            check(reported + off + c <= N,
                  "unsent reports + taken off + confirmed never exceed the expectations",
                  reported, off, c)

            records = read_queue(broker, q)
            check_messages(records, w["id"])
            seqs = check_confirmed_in_queue(records, c)
            eq(duplicates(records), 0, "no duplicate")
            print("  exited %.1fs after SIGTERM: %d confirmed, %d in the queue, %d of %d unsent "
                  "reported to the work" % (took, c, len(seqs), reported, N - c))

            # The run's end is reported to the work within the shutdown budget (connector.c:
            # SHUTDOWN_REQUEST_TIMEOUT_MS, SHUTDOWN_REPORT_BUDGET_MS): toProcessed in error
            # with the reason, so that the work does not stay "in progress" for ever.
            check(not d.find_logs(r"^Cannot mark the work as processed$"),
                  "the work is told processed while stopping",
                  [r["attributes"] for r in d.find_logs(r"^Cannot mark the work as processed$")])
            args = to_processed(s, w)
            eq(args["inError"], True, "the work is in error")
            check("connector is stopping" in args["message"], "the work's message", args["message"])
            p.assert_no_violations()
        finally:
            p.delete_queue(q)


def test_sigterm_mid_publish():
    sigterm_mid_publish()


def test_sigterm_mid_publish_run_and_terminate():
    """The same with CONNECTOR_RUN_AND_TERMINATE: a stop asked for is a normal end (exit 0),
    not a failed run; the work and the state say the run did not complete."""
    sigterm_mid_publish(CONNECTOR_RUN_AND_TERMINATE="true")


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
