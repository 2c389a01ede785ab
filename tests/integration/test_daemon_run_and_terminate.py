"""CONNECTOR_RUN_AND_TERMINATE (and CONNECTOR_DURATION_PERIOD=0).

* test_run_and_terminate: one run then exit 0 with the state stored (the worker completes
  the work); a reset made on the platform while the connector was not running is consumed
  before the next run-and-terminate's run, which runs although a last_run was stored before
  the reset; a third one within the period exits 0 without a run; DURATION_PERIOD=PT0S
  means run-and-terminate too. connectorInfo says run_and_terminate.
* test_run_and_terminate_failure: a dataset that cannot be imported makes it exit 1, the
  others imported, last_run not stored, the work in error.
"""

import sys
import time

from daemon_scenarios import (COUNTS, RUN_STORED, STOPPED, TOTAL, WILL_NOT_RUN,
                              assert_no_error_logs, assert_reference_run, assert_work_success,
                              check, count_logs, eq, run_tests, scenario, to_processed, wait_until)


def test_run_and_terminate():
    with scenario() as s:
        p = s.platform
        d1 = s.daemon(CONNECTOR_RUN_AND_TERMINATE="true")
        eq(d1.wait_exit(90), 0, "first run-and-terminate exit status")
        d1.wait_for_log(RUN_STORED, 1)
        d1.wait_for_log(STOPPED, 1)
        assert_no_error_logs(d1)
        w1 = s.wait_work_done(0, 60)
        first = assert_work_success(s, w1)
        eq(s.last_run(), first, "state stored before exiting")
        assert_reference_run(s, w1["id"])
        pings = [x for x in p.pings if x["connector_id"] == s.cid]
        check(pings, "pinged")
        for x in pings:
            eq(x["connector_info"]["run_and_terminate"], True, "connectorInfo.run_and_terminate")
            eq(x["connector_info"]["next_run_datetime"], None, "no next run for run-and-terminate")
        eq(pings[-1]["state"], '{"last_run": %d}' % first, "the final ping carries the new state")

        # a reset while nothing runs: the next run-and-terminate must run
        wait_until(lambda: int(time.time()) > first, 5)
        p.reset_state(s.cid)
        eq(p.connector(s.cid)["connector_state_reset"], True, "reset flag pending")
        d2 = s.daemon(CONNECTOR_RUN_AND_TERMINATE="true")
        eq(d2.wait_exit(90), 0, "second run-and-terminate exit status")
        eq(count_logs(d2, r"^Fetching OpenCTI datasets"), 1, "the second one ran")
        w2 = s.wait_work_done(1, 60)
        second = assert_work_success(s, w2)
        check(second > first, "a new last_run", first, second)
        eq(s.last_run(), second, "the new state survived the reset flag")
        eq(p.connector(s.cid)["connector_state_reset"], False, "reset flag consumed")
        assert_no_error_logs(d2)

        # within the period: exits 0 without a run
        d3 = s.daemon(CONNECTOR_RUN_AND_TERMINATE="true")
        eq(d3.wait_exit(60), 0, "third run-and-terminate exit status")
        d3.wait_for_log(WILL_NOT_RUN, 1)
        eq(count_logs(d3, r"^Fetching OpenCTI datasets"), 0, "no run")
        eq(len(s.works()), 2, "no third work")
        eq(s.last_run(), second, "state unchanged")
        assert_no_error_logs(d3)

        # CONNECTOR_DURATION_PERIOD=0 is run-and-terminate too
        d4 = s.daemon(CONNECTOR_DURATION_PERIOD="PT0S")
        eq(d4.wait_exit(60), 0, "DURATION_PERIOD=PT0S exit status")
        d4.wait_for_log(WILL_NOT_RUN, 1)
        eq(len(s.works()), 2, "still no third work")
        eq(s.last_run(), second, "state still unchanged")
        p.assert_no_violations()


def test_run_and_terminate_failure():
    with scenario() as s:
        p = s.platform
        p.set_dataset("sectors.json", status=404)
        d = s.daemon(CONNECTOR_RUN_AND_TERMINATE="true")
        eq(d.wait_exit(90), 1, "a failed run exits 1")
        d.wait_for_log(r"^Dataset sectors cannot be imported$", 1)
        d.wait_for_log(STOPPED, 1)
        w = s.wait_work_done(0, 60)
        args = to_processed(s, w)
        eq(args["inError"], True, "work in error")
        check("sectors" in args["message"] and "404" in args["message"], "message names the cause",
              args["message"])
        expected = TOTAL - COUNTS["sectors"]
        eq(w["import_expected_number"], expected, "expectations of the imported datasets")
        eq(w["completed_number"], expected, "the other datasets were imported")
        assert_reference_run(s, w["id"], datasets=("geography", "companies"))
        eq(s.state(), "null", "no last_run stored")
        p.assert_no_violations()


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
