"""The daemon's first run against the platform double and a real broker, and what follows.

* test_first_run: the 723 messages reach the push queue (the double's worker consumes them
  like OpenCTI's), decoded bundles equal pycti's reference split per dataset and in order,
  envelopes and AMQP properties are pycti's, the work completes (expectations == messages
  == 723, processed, not in error, named after the run), the platform keeps
  {"last_run": <int>}; HTTP headers (User-Agent, Bearer, OPENCTI_CUSTOM_HEADERS, and no
  token sent to the dataset server), the registration input, the pings (state as a JSON
  string, connectorInfo), no schema violation, no ERROR log.
* test_no_second_run_within_period: later checks within the period do nothing ("will not
  run"; pings every CONNECTOR_PING_INTERVAL), also after a restart of the daemon (the state
  comes back from registration).
* test_due_when_the_period_elapses: a last_run a period minus 5 s ago runs 5 s later,
  keeping the state's other keys.
* test_custom_registration: name, scope, flags, trailing slash in OPENCTI_URL,
  CONNECTOR_DURATION_PERIOD as the period.
"""

import datetime
import re
import signal
import sys
import time

from daemon_scenarios import (DATASETS, DEFAULT_SCOPE, RUN_STORED, RUN_SUCCESS, REGISTERED, STOPPED,
                              TOTAL, WILL_NOT_RUN, assert_json_logs, assert_no_error_logs,
                              assert_reference_run, assert_work_success, check, count_logs, eq,
                              reference_split, run_tests, scenario, version, wait_until)

CUSTOM_HEADERS = "X-Ods-Test:first value; X-Other :two"


def utc(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_first_run():
    ver = version()
    with scenario() as s:
        p = s.platform
        d = s.daemon(OPENCTI_CUSTOM_HEADERS=CUSTOM_HEADERS)
        d.wait_for_log(r"^Connected to OpenCTI 6\.8\.10$", 30)
        d.wait_for_log(REGISTERED, 30)
        d.wait_for_log(r"^Connector has never run$", 30)
        d.wait_for_log(r"^Fetching OpenCTI datasets\.\.\.$", 30)
        for name in DATASETS:
            rec = d.wait_for_log(r"^Dataset %s fetched and split$" % name, 30)
            eq(rec["attributes"]["messages"], len(reference_split(name)),
               "%s: messages in the fetch log" % name)
        success = d.wait_for_log(RUN_SUCCESS, 60)
        d.wait_for_log(RUN_STORED, 30)
        last_run = int(re.match(RUN_SUCCESS, success.message).group(1))

        work = s.wait_work_done(0, timeout=60)
        eq(len(s.works()), 1, "one work")
        eq(assert_work_success(s, work, TOTAL), last_run, "success message's last_run")
        eq(work["event_type"], "EXTERNAL_IMPORT", "work event type")
        eq(work["user_id"], p.user_id, "work user")

        # messages: all 723, the reference split per dataset, in order
        assert_reference_run(s, work["id"])
        records = s.messages(work["id"])
        eq(sum(r["reported"] for r in records), TOTAL, "the worker reported every message")

        # the state on the platform (Python json.dumps format), and the pings
        eq(s.last_run(), last_run, "stored last_run")
        check(abs(last_run - int(datetime.datetime.now().timestamp())) < 120, "last_run is now", last_run)
        pings = [x for x in p.pings if x["connector_id"] == s.cid]
        check(len(pings) >= 2, "pinged after registration and after the run", len(pings))
        eq(pings[0]["state"], "null", "first ping carries the absent state as the string 'null'")
        for x in pings:
            check(isinstance(x["state"], str), "ping state is a JSON string", x["state"])
            ci = x["connector_info"]
            eq(sorted(ci), sorted(["run_and_terminate", "buffering", "queue_threshold",
                                   "queue_messages_size", "next_run_datetime", "last_run_datetime"]),
               "connectorInfo keys")
            eq((ci["run_and_terminate"], ci["buffering"], ci["queue_threshold"], ci["queue_messages_size"]),
               (False, False, 500, 0), "connectorInfo constants")
        stored = [x for x in pings if x["state"] == '{"last_run": %d}' % last_run]
        check(stored, "a ping carried the new state", [x["state"] for x in pings])
        eq(stored[0]["connector_info"]["last_run_datetime"], utc(last_run), "last_run_datetime")
        check(stored[0]["connector_info"]["next_run_datetime"] is not None, "next_run_datetime")
        nxt = datetime.datetime.strptime(stored[0]["connector_info"]["next_run_datetime"],
                                         "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        check(abs(nxt.timestamp() - (last_run + 7 * 86400)) <= 2, "next run a period later", nxt)
        # the ping that stored the state was sent right after the run, not a ping interval later
        tp = s.work_events(work["id"], "toProcessed")[0]
        check(stored[0]["time"] >= tp["time"], "state pushed after toProcessed", stored[0]["time"], tp["time"])

        # registration input
        regs = [r for r in p.registrations if r["connector_id"] == s.cid]
        eq(len(regs), 1, "registered once")
        eq(regs[0]["input"], {"id": s.cid, "name": "OpenCTI Datasets", "type": "EXTERNAL_IMPORT",
                              "scope": DEFAULT_SCOPE.split(","), "auto": False, "auto_update": False,
                              "enrichment_resolution": "none", "only_contextual": False,
                              "playbook_compatible": False, "listen_callback_uri": None},
           "registration input")
        rec = p.connector(s.cid)
        eq(rec["connector_scope"], DEFAULT_SCOPE, "stored scope")

        # HTTP: every GraphQL request carries the User-Agent, the token and the custom headers
        gql = p.graphql_requests()
        check(gql, "GraphQL requests seen")
        for r in gql:
            eq(r.header("User-Agent"), "opencti-datasets/%s" % ver, "User-Agent")
            eq(r.header("Authorization"), "Bearer " + p.token, "Authorization")
            eq(r.header("X-Ods-Test"), "first value", "custom header 1")
            eq(r.header("X-Other"), "two", "custom header 2 (trimmed)")
            eq(r.status, 200, "GraphQL status of %r" % r)
        ops = [r.root_fields for r in gql]
        eq(ops[0], ["about"], "the health check comes first")
        check(["registerConnector"] in ops and ["workAdd"] in ops, "register and workAdd", ops)
        eq(ops[ops.index(["registerConnector"]) + 1], ["pingConnector"], "a ping right after registering")
        eq(ops[ops.index(["workAdd"]) - 1], ["pingConnector"], "a ping right before the run")
        ds = p.dataset_requests()
        eq(sorted(r.path for r in ds), sorted("/datasets/%s.json" % n for n in DATASETS),
           "each dataset fetched once")
        for r in ds:
            eq(r.method, "GET", "dataset method")
            eq(r.header("User-Agent"), "opencti-datasets/%s" % ver, "dataset User-Agent")
            eq(r.header("Authorization"), None, "the platform token is not sent to the dataset server")
            eq(r.header("X-Ods-Test"), None, "the platform's custom headers are not sent to the dataset server")

        p.assert_no_violations()
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status after SIGTERM")
        d.wait_for_log(STOPPED, 5)
        assert_no_error_logs(d)
        assert_json_logs(d)
        check(p.token not in d.output(), "the token is never logged")


def test_no_second_run_within_period():
    with scenario() as s:
        p = s.platform
        d = s.daemon()
        d.wait_for_log(RUN_STORED, 60)
        s.wait_work_done(0, timeout=60)
        last_run = s.last_run()
        mark = d.mark()
        # two more checks (2 s apart) within the period: nothing happens
        d.wait_for_log(WILL_NOT_RUN, 15, start=mark)
        d.wait_for_log(WILL_NOT_RUN, 15, start=d.mark())
        rec = d.find_logs(WILL_NOT_RUN, mark)[0]
        check(re.search(r"6 days", rec.message), "the next run is about 7 days away", rec.message)
        eq(len(s.works()), 1, "no second work")
        eq(count_logs(d, r"^Fetching OpenCTI datasets"), 1, "fetched once")
        # idle pings every CONNECTOR_PING_INTERVAL (2 s)
        n0 = len([x for x in p.pings if x["connector_id"] == s.cid])
        t0 = time.monotonic()
        d.wait_for_log(WILL_NOT_RUN, 15, start=d.mark())
        d.wait_for_log(WILL_NOT_RUN, 15, start=d.mark())
        d.wait_for_log(WILL_NOT_RUN, 15, start=d.mark())
        took = time.monotonic() - t0
        n = len([x for x in p.pings if x["connector_id"] == s.cid]) - n0
        check(took / 2 - 1.5 <= n <= took / 2 + 1.5, "a ping every 2 s while idle",
              "%d pings in %.1f s" % (n, took))
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "first daemon exit status")
        assert_no_error_logs(d)

        # a restart: the state comes back with the registration, and nothing runs
        n_requests = len(p.dataset_requests())
        d2 = s.daemon()
        d2.wait_for_log(REGISTERED, 30)
        rec = d2.wait_for_log(r"^Connector last run: ", 30)
        eq(rec.message, "Connector last run: %s" % datetime.datetime.fromtimestamp(
            last_run, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), "last run logged")
        d2.wait_for_log(WILL_NOT_RUN, 20)
        d2.wait_for_log(WILL_NOT_RUN, 20, start=d2.mark())
        eq(len(s.works()), 1, "no work after the restart")
        eq(len(p.dataset_requests()), n_requests, "no dataset fetched after the restart")
        eq(s.last_run(), last_run, "state unchanged")
        check(count_logs(d2, r"^Connector has never run$") == 0, "the restarted daemon knows its last run")
        # its pings keep the state
        pings = [x for x in p.pings if x["connector_id"] == s.cid]
        eq(pings[-1]["state"], '{"last_run": %d}' % last_run, "the restarted daemon pings the same state")
        d2.signal(signal.SIGTERM)
        eq(d2.wait_exit(15), 0, "second daemon exit status")
        assert_no_error_logs(d2)
        p.assert_no_violations()


def test_due_when_the_period_elapses():
    """A stored last_run a period minus 5 s ago: not due at first ("next run in" a few
    seconds), due right after; the run then happens by itself. Other keys of the state are
    kept."""
    with scenario() as s:
        p = s.platform
        # register the connector (a run-and-terminate with nothing to import: it exits by
        # itself, so no request of it is still in flight when the state is set below)
        d0 = s.daemon(CONFIG_SECTORS_FILE_URL="false", CONFIG_GEOGRAPHY_FILE_URL="false",
                      CONFIG_COMPANIES_FILE_URL="false", CONNECTOR_RUN_AND_TERMINATE="true")
        eq(d0.wait_exit(30), 0, "exit status")
        n0 = len(s.works())
        old = int(time.time()) - 7 * 86400 + 5
        s.set_stored_state('{"last_run": %d, "note": "kept \\u00e9"}' % old)
        d = s.daemon()
        d.wait_for_log(r"^Connector last run: ", 30)
        rec = d.wait_for_log(WILL_NOT_RUN, 15)
        check(re.search(r"next run in: [1-6] s$", rec.message), "due in a few seconds", rec.message)
        eq(len(s.works()), n0, "not run before the period elapsed")
        d.wait_for_log(RUN_STORED, 30)
        w = s.wait_work_done(len(s.works()) - 1, 60)
        last = assert_work_success(s, w)
        check(last - old > 7 * 86400, "run strictly after the period", last - old)
        # other keys of the state are kept, written back the way Python's json.dumps does
        wait_until(lambda: s.state() == '{"last_run": %d, "note": "kept \\u00e9"}' % last, 10,
                   message="the new state with the other key")
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        assert_no_error_logs(d)
        p.assert_no_violations()


def test_custom_registration():
    """Name, scope (split on commas without trimming, like pycti), flags; a trailing slash
    in OPENCTI_URL."""
    with scenario() as s:
        p = s.platform
        scope = "identity, location,marking-definition"
        d = s.daemon(OPENCTI_URL=p.url + "/", CONNECTOR_NAME="Datasets (lab)", CONNECTOR_SCOPE=scope,
                     CONNECTOR_AUTO="true", CONNECTOR_AUTO_UPDATE="yes", CONNECTOR_ONLY_CONTEXTUAL="True",
                     CONNECTOR_ENRICHMENT_RESOLUTION="tlp", CONNECTOR_DURATION_PERIOD="PT12H")
        rec = d.wait_for_log(r'^Connector registered as "Datasets \(lab\)"$', 30)
        eq(rec["name"], "Datasets (lab)", "the log records carry the connector name")
        rec = d.wait_for_log(RUN_STORED, 60)
        check(re.search(r"next run in: 12 ?h$", rec.message), "CONNECTOR_DURATION_PERIOD sets the period",
              rec.message)
        w = s.wait_work_done(0, 60)
        last = assert_work_success(s, w)
        wait_until(lambda: [x for x in p.pings if x["state"] == '{"last_run": %d}' % last], 10)
        stored = [x for x in p.pings if x["state"] == '{"last_run": %d}' % last][0]
        eq(stored["connector_info"]["next_run_datetime"], utc(last + 12 * 3600 + 1),
           "next_run_datetime a period (strictly) later")
        reg = [r for r in p.registrations if r["connector_id"] == s.cid]
        eq(len(reg), 1, "registered once")
        eq(reg[0]["input"], {"id": s.cid, "name": "Datasets (lab)", "type": "EXTERNAL_IMPORT",
                             "scope": ["identity", " location", "marking-definition"], "auto": True,
                             "auto_update": True, "enrichment_resolution": "tlp", "only_contextual": True,
                             "playbook_compatible": False, "listen_callback_uri": None},
           "registration input")
        from daemon_scenarios import assert_envelopes
        assert_envelopes(s, s.messages(w["id"]), w["id"], scope=scope)
        for r in p.graphql_requests():
            eq(r.path, "/graphql", "no double slash from the trailing slash")
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        assert_no_error_logs(d)
        p.assert_no_violations()


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
