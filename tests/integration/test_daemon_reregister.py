"""A connector deleted on the platform (Connectors screen) while the daemon runs: the pings
fail with "No connector found", the daemon registers again (the platform creates the
connector and its queues anew, with no state) and imports the datasets again."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_scenarios import (RUN_STORED, TOTAL, check, run_tests, scenario,  # noqa: E402
                              wait_until)


def test_deleted_connector_registers_again():
    with scenario() as s:
        d = s.daemon()
        d.wait_for_log(RUN_STORED, 60)
        s.wait_work_done()  # the worker has consumed the first run before the deletion
        check(len(s.works()) == 1, "one work after the first run")
        s.platform.delete_connector(s.cid)
        d.wait_for_log(r"^The platform no longer knows this connector", 30)
        wait_until(lambda: s.platform.connector(s.cid) is not None, 30,
                   message="the connector to be registered again")
        wait_until(lambda: len(d.find_logs(RUN_STORED)) >= 2, 60, message="a second run")
        works = s.works()
        check(len(works) >= 1 and works[-1]["import_expected_number"] == TOTAL,
              "the second run's work holds the datasets", [w["import_expected_number"] for w in works])
        check(s.last_run() is not None, "the state is stored again")
        d.signal(signal.SIGTERM)
        check(d.wait_exit(20) == 0, "clean exit")
        s.platform.assert_no_violations()


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
