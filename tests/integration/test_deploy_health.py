"""`opencti-datasets health` (the container HEALTHCHECK) against a running daemon.

* no status file configured, or no daemon ever ran: exit 1 with a sentence saying so;
* the daemon registered (status file from RUNTIME_DIRECTORY, as under systemd; health finds
  it through CONNECTOR_STATUS_FILE as in the image): exit 0, "healthy: ...";
* the platform double stopped for longer than the ping grace (4 ping intervals + 30 s; 1 s
  pings here): exit 1, "the last successful ping was N s ago (last error: ...)";
* the platform back: healthy again;
* the daemon stopped: exit 1, "the daemon (pid N) is not running".
"""

import os
import re
import signal
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness.common import check, data_dir, run_tests, shared_broker, temp_dir, wait_until  # noqa: E402
from harness.daemon import Daemon, daemon_binary  # noqa: E402
from fakes.platform import Platform  # noqa: E402

PING_S = 1
# status.c: STATUS_PING_GRACE_INTERVALS * interval + 30 s
GRACE_S = 4 * PING_S + 30


def health(env):
    """Runs `opencti-datasets health` with exactly env; returns (status, stdout + stderr)."""
    r = subprocess.run([daemon_binary(), "health"], env=dict(env, PATH=os.environ.get("PATH", "")),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    return r.returncode, (r.stdout + r.stderr).strip()


def test_without_daemon():
    rc, out = health({})
    check(rc == 1, "no status file configured: exit 1", (rc, out))
    check("CONNECTOR_STATUS_FILE" in out, "and it says to set CONNECTOR_STATUS_FILE", out)
    with temp_dir() as tmp:
        rc, out = health({"CONNECTOR_STATUS_FILE": os.path.join(tmp, "status.json")})
        check(rc == 1, "no daemon ever ran: exit 1", (rc, out))
        check("is the daemon running?" in out, "and it asks whether the daemon runs", out)
        rc2, out2 = health({"RUNTIME_DIRECTORY": tmp})
        check((rc2, out2) == (rc, out), "RUNTIME_DIRECTORY/status.json is the same file")


def test_running_daemon():
    broker = shared_broker()
    with temp_dir() as tmp, Platform(broker, worker=True,
                                     datasets_dir=os.path.join(data_dir(), "datasets")) as p:
        status = os.path.join(tmp, "status.json")
        henv = {"CONNECTOR_STATUS_FILE": status}
        env = {"OPENCTI_URL": p.url, "OPENCTI_TOKEN": p.token, "CONNECTOR_ID": str(uuid.uuid4()),
               "CONFIG_SECTORS_FILE_URL": p.dataset_url("sectors.json"),
               "CONFIG_GEOGRAPHY_FILE_URL": p.dataset_url("geography.json"),
               "CONFIG_COMPANIES_FILE_URL": p.dataset_url("companies.json"),
               "CONNECTOR_LOG_LEVEL": "info", "CONNECTOR_PING_INTERVAL": "PT%dS" % PING_S,
               "CONNECTOR_CHECK_INTERVAL": "PT2S", "RUNTIME_DIRECTORY": tmp}
        with Daemon(env) as d:
            rc, out = wait_until(lambda: (lambda r: r if r[0] == 0 else None)(health(henv)), 60,
                                 message="health exit 0")
            check(out.startswith("healthy: last ping"), "registered: healthy", out)
            d.wait_for_log(r"Last_run stored", timeout=60)
            check(health(henv)[0] == 0, "still healthy after the run")

            p.stop()
            t0 = time.monotonic()
            rc, out = health(henv)
            check(rc == 0, "platform just stopped: still healthy within the grace", out)
            rc, out = wait_until(lambda: (lambda r: r if r[0] == 1 else None)(health(henv)),
                                 GRACE_S + 30, interval=0.5, message="health exit 1")
            waited = time.monotonic() - t0
            print("     unhealthy after %.0f s: %s" % (waited, out))
            check(re.match(r"the last successful ping was \d+ s ago \(last error: .+\)$", out),
                  "platform gone: exit 1, the last ping's age and the last error", out)
            check(waited >= GRACE_S - 2 - PING_S, "not before the grace (%d s)" % GRACE_S, waited)

            p.start()  # same port, state kept
            rc, out = wait_until(lambda: (lambda r: r if r[0] == 0 else None)(health(henv)),
                                 30, interval=0.5, message="health exit 0 again")
            check(out.startswith("healthy"), "platform back: healthy again", out)

            pid = d.pid
            d.signal(signal.SIGTERM)
            check(d.wait_exit(30) == 0, "SIGTERM: exit status 0")
        rc, out = health(henv)
        check(rc == 1 and out == "the daemon (pid %d) is not running" % pid,
              "daemon stopped: exit 1, not running", (rc, out))
        p.assert_no_violations()


def main():
    return run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
