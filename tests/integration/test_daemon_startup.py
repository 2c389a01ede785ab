"""Start-up against platforms that are not quite ready, old, or misconfigured.

* test_wrong_token: a token the platform refuses gives the clear error (no crash, no exit,
  no token in the log, slow retries); once the platform accepts it, the daemon registers
  and runs.
* test_late_platform: the platform comes up a few seconds after the daemon; the daemon
  retries quickly ("not reachable") and the run completes.
* test_platform_goes_away: pings fail while the platform answers 502 ("Error pinging the
  API"), then recover ("API Ping back to normal"); the daemon keeps running.
* test_token_without_connector_capability: a user without the connector capability is
  refused the same way (FORBIDDEN_ACCESS), and SIGTERM still stops it at once.
* test_platform_down_at_run_time: the ping right before a retried run fails: the run is
  postponed to the next check, then done.
* test_old_platform_6_5 / test_old_platform_6_0: registration and pings succeed after
  dropping the fields an older schema does not know, each drop logged once; only those
  rejections are tolerated.
* test_mq_overrides: the platform hands out a broker address that does not work here;
  MQ_HOST/MQ_PORT point at the real broker and the run completes.
* test_mq_unreachable: without the overrides, the run fails cleanly: the work is told (in
  error) and every unsent message reported, so it does not stay "in progress"; last_run
  is not stored.
"""

import re
import signal
import sys
import time

from daemon_scenarios import expectation_calls, taken_off  # noqa: E402
from daemon_scenarios import (REGISTERED, RUN_FAILED, RUN_STORED, TOTAL, Platform,
                              assert_no_error_logs, assert_reference_run, assert_work_success, check,
                              count_logs, datasets_dir, eq, fast_env, free_port, new_id, run_tests,
                              scenario, shared_broker, to_processed, wait_until, Daemon)

TOKEN_REFUSED = r"^The platform refused the token \(.*\); retrying in (.+)$"
NOT_REACHABLE = r"^OpenCTI API is not reachable at (\S+); retrying in (.+)$"


def seconds(text):
    """"22 s", "1 min 5 s", "1.5 s" -> seconds (float)."""
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)\s*(ms|s|min|h)\b", text):
        total += float(num) * {"ms": 0.001, "s": 1, "min": 60, "h": 3600}[unit]
    check(total > 0, "a duration in %r" % text)
    return total


def test_wrong_token():
    with scenario() as s:
        p = s.platform
        bad = "0b7c8c1e-bad0-4bad-8bad-tokentoken01"
        d = s.daemon(OPENCTI_TOKEN=bad)
        rec = d.wait_for_log(TOKEN_REFUSED, 20)
        eq(rec["level"], "ERROR", "level of the refusal")
        check("AUTH_REQUIRED" in rec["attributes"]["reason"] or "logged in" in rec["attributes"]["reason"],
              "the reason is the platform's", rec["attributes"])
        delay = seconds(re.match(TOKEN_REFUSED, rec.message).group(1))
        check(10 <= delay <= 35, "slow retry after a refused token", delay)
        time.sleep(2)   # observation window: it must neither exit nor hammer the platform
        check(d.running(), "still running after a refused token")
        eq(count_logs(d, TOKEN_REFUSED), 1, "one refusal in the first seconds")
        eq(len(p.registrations), 0, "not registered")
        # the operator fixes the token on the platform side
        p.token = bad
        d.wait_for_log(REGISTERED, delay + 15)
        d.wait_for_log(RUN_STORED, 60)
        w = s.wait_work_done(0, 60)
        assert_work_success(s, w)
        check(bad not in d.output(), "the token is never logged")
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        # schema violations: none (the refused requests were valid, only unauthenticated)
        p.assert_no_violations()


def test_late_platform():
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    cid = new_id()
    d = Daemon(fast_env(None, cid, url=url))
    d.start()
    p = None
    try:
        first = d.wait_for_log(NOT_REACHABLE, 15)
        eq(first["level"], "ERROR", "level of 'not reachable'")
        m = re.match(NOT_REACHABLE, first.message)
        eq(m.group(1), url, "the URL in the message")
        first_delay = seconds(m.group(2))
        check(0.9 <= first_delay <= 2.1, "a quick first retry (1-2 s)", m.group(2))
        second = d.wait_for_log(NOT_REACHABLE, 15, start=d.mark())   # it retries
        second_delay = seconds(re.match(NOT_REACHABLE, second.message).group(2))
        check(1.9 <= second_delay <= 4.1, "the delay doubles (2-4 s)", second.message)
        p = Platform(shared_broker(), worker=True, datasets_dir=datasets_dir(), port=port).start()
        d.wait_for_log(REGISTERED, 30)
        d.wait_for_log(RUN_STORED, 60)
        w = wait_until(lambda: [x for x in p.works_for(cid) if x["status"] == "complete"], 60)[0]
        eq(w["completed_number"], TOTAL, "all messages processed")
        check(d.running(), "still running")
        p.assert_no_violations()
    except BaseException:
        d.print_log("test_late_platform failed")
        raise
    finally:
        d.stop()
        d.cleanup()
        if p is not None:
            if p.connector(cid) is not None:
                p.delete_connector(cid)
            p.stop()


def test_platform_goes_away():
    with scenario() as s:
        p = s.platform
        d = s.daemon()
        d.wait_for_log(RUN_STORED, 60)
        s.wait_work_done(0, 60)
        mark = d.mark()
        p.set_down(True)
        rec = d.wait_for_log(r"^Error pinging the API$", 10, start=mark)
        check("502" in rec["attributes"]["reason"], "the reason says 502", rec["attributes"])
        d.wait_for_log(r"^Error pinging the API$", 10, start=d.mark())
        p.set_down(False)
        d.wait_for_log(r"^API Ping back to normal$", 10, start=mark)
        check(d.running(), "still running")
        eq(len(s.works()), 1, "no new run because of the outage")
        d.wait_for_log(r"^Connector will not run", 10, start=d.mark())
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        p.assert_no_violations()


def test_token_without_connector_capability():
    with scenario(capabilities=("KNOWLEDGE",)) as s:
        d = s.daemon()
        rec = d.wait_for_log(TOKEN_REFUSED, 20)
        check("FORBIDDEN_ACCESS" in rec["attributes"]["reason"], "the platform's reason", rec["attributes"])
        time.sleep(1)
        check(d.running(), "still running")
        eq(len(s.platform.registrations), 0, "not registered")
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(10), 0, "SIGTERM during the slow retry")
        s.platform.assert_no_violations()


def test_platform_down_at_run_time():
    """The ping right before a (retried) run fails: the run is postponed, then done."""
    with scenario() as s:
        p = s.platform
        p.set_dataset("sectors.json", status=404)
        d = s.daemon()
        d.wait_for_log(RUN_FAILED, 60)
        s.wait_work_done(0, 30)
        p.set_down(True)
        p.clear_dataset()
        mark = d.mark()
        d.wait_for_log(r"^Cannot ping the platform before the run; it is postponed to the next check$", 20,
                       start=mark)
        eq(len(s.works()), 1, "no work while the platform is down")
        p.set_down(False)
        d.wait_for_log(RUN_STORED, 30, start=mark)
        w = s.wait_work_done(1, 60)
        assert_work_success(s, w)
        eq(len(s.works()), 2, "one retried run")
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        p.assert_no_violations()


def _old_platform(profile, dropped, ping_dropped):
    with scenario(schema=profile) as s:
        p = s.platform
        fields = "|".join(dropped)
        rx = [r'Field "(%s)" is not defined by type "RegisterConnectorInput"' % fields]
        if ping_dropped:
            rx += [r'Unknown type "ConnectorInfoInput"', r'Unknown argument "connectorInfo" on field',
                   r'Cannot query field "connector_info" on type "Connector"']
        p.expect_rejections = rx
        d = s.daemon()
        d.wait_for_log(r"^Connected to OpenCTI %s\." % profile.replace(".", r"\."), 30)
        d.wait_for_log(REGISTERED, 30)
        d.wait_for_log(RUN_STORED, 60)
        w = s.wait_work_done(0, 60)
        assert_work_success(s, w)
        assert_reference_run(s, w["id"])
        # a few more pings
        n = len(p.pings)
        wait_until(lambda: len(p.pings) >= n + 2, 15, message="more pings")
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        for f in dropped + (["connectorInfo"] if ping_dropped else []):
            recs = d.find_logs(r'^The platform does not know "%s" \(an older OpenCTI\); retrying without it$' % f)
            eq(len(recs), 1, "the drop of %s logged once" % f)
            eq(recs[0]["level"], "WARNING", "level of the drop of %s" % f)
        eq(len(d.find_logs(r"^The platform does not know")), len(dropped) + (1 if ping_dropped else 0),
           "no other drop")
        reg = [r for r in p.registrations if r["connector_id"] == s.cid]
        eq(len(reg), 1, "registered once")
        for f in dropped:
            check(f not in reg[0]["input"], "%s not sent any more" % f, reg[0]["input"])
        eq(reg[0]["input"]["scope"], ["marking-definition", "identity", "location"], "scope")
        pings = [x for x in p.pings if x["connector_id"] == s.cid]
        check(len(pings) >= 3, "pings accepted", len(pings))
        for x in pings:
            eq(x["connector_info"] is None, ping_dropped, "connectorInfo %s" % ("dropped" if ping_dropped else "sent"))
        eq(pings[-1]["state"], '{"last_run": %d}' % s.last_run(), "state pinged")
        # rejections: registration attempts (and the first ping on 6.0), nothing else
        rejected_fields = [r["messages"] for r in p.rejections]
        eq(len(p.rejections), len(dropped) + (1 if ping_dropped else 0), "number of rejected requests")
        check(rejected_fields, "rejections happened")
        p.expect_rejections = False
        p.assert_no_violations()
        assert_no_error_logs(d)


def test_old_platform_6_5():
    _old_platform("6.5", ["auto_update", "enrichment_resolution"], False)


def test_old_platform_6_0():
    _old_platform("6.0", ["auto_update", "enrichment_resolution", "listen_callback_uri"], True)


def test_mq_overrides():
    broker = shared_broker()
    with scenario(connection={"host": "rabbitmq", "port": 1}) as s:
        p = s.platform
        d = s.daemon(MQ_HOST="127.0.0.1", MQ_PORT=broker.port)
        d.wait_for_log(RUN_STORED, 60)
        w = s.wait_work_done(0, 60)
        assert_work_success(s, w)
        assert_reference_run(s, w["id"])
        rec = d.find_logs(r"^Connected to the message broker$")
        eq(len(rec), 3, "one broker connection per dataset")
        for r in rec:
            check(r["attributes"]["broker"].startswith("127.0.0.1:%d " % broker.port), "the override is used",
                  r["attributes"])
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        assert_no_error_logs(d)
        p.assert_no_violations()


def test_mq_unreachable():
    with scenario(connection={"host": "127.0.0.1", "port": free_port()}) as s:
        p = s.platform
        d = s.daemon(MQ_PUBLISH_TIMEOUT="3", MQ_CONNECT_TIMEOUT="2", CONFIG_RETRY_INTERVAL="600")
        d.wait_for_log(RUN_FAILED, 90)
        w = s.wait_work_done(0, 60, complete=False)
        args = to_processed(s, w)
        eq(args["inError"], True, "work in error")
        for name in ("sectors", "geography", "companies"):
            check(name in args["message"], "the message names %s" % name, args["message"])
        off = taken_off(s, w["id"])
        eq(expectation_calls(s, w["id"])[0], TOTAL, "expectations added once for the run")
        eq(w["import_expected_number"] + off, TOTAL, "expectations, less those taken off")
        reports = s.work_events(w["id"], "reportExpectation")
        eq(len(reports) + off, TOTAL, "every unsent message reported or taken off")
        check(len(reports) <= 3 * 20, "at most 20 per dataset reported one by one", len(reports))
        check(all(r["args"]["error"] for r in reports), "reported as errors")
        eq(p.work(w["id"])["status"], "complete", "the work completes (in error) instead of staying in progress")
        check(p.work(w["id"])["errors"], "the work lists errors")
        eq(s.state(), "null", "last_run not stored")
        check(d.running(), "still running")
        eq(len(s.messages()), 0, "nothing reached the queue")
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        p.assert_no_violations()


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
