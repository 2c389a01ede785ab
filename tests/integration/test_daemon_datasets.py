"""Dataset sources: faults, retries, file:// URLs, disabled datasets, CONFIG_REMOVE_CREATOR.

* test_dataset_404 / test_dataset_500 / test_dataset_not_json / test_dataset_truncated:
  one dataset cannot be imported: the work ends in error (toProcessed inError, a message
  naming the dataset and the cause), the other datasets are imported (the reference
  split), last_run is left alone, the run is retried after CONFIG_RETRY_INTERVAL (not
  before), and once the dataset is fixed the run succeeds and last_run is stored.
* test_file_url_and_disabled: a file:// dataset is imported like an http one, a disabled
  one (`false`, `FALSE`, empty) is neither fetched nor sent.
* test_missing_file_url: a file:// URL naming no file is a dataset failure like the others.
* test_size_limit_and_fetch_timeout: CONFIG_MAX_DATASET_SIZE and CONFIG_FETCH_TIMEOUT.
* test_oversized_message: one message above MQ_MAX_MESSAGE_SIZE fails alone, is reported.
* test_redirects: a redirect is followed, a redirect to file:// is refused.
* test_remove_creator: CONFIG_REMOVE_CREATOR=true: no object has created_by_ref, the
  objects are the reference ones otherwise.
"""

import datetime
import os
import re
import signal
import sys

from daemon_scenarios import (COUNTS, DATASETS, RUN_FAILED, RUN_STORED, TOTAL, assert_envelopes,
                              assert_no_error_logs, assert_reference_run, assert_work_success, check,
                              datasets_dir, eq, reference_split, run_tests, scenario, split_by_dataset,
                              to_processed, wait_until)


def iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def _fault(name, cause_rx, **fault):
    others = tuple(n for n in DATASETS if n != name)
    with scenario() as s:
        p = s.platform
        p.set_dataset(name + ".json", **fault)
        d = s.daemon()
        failed = d.wait_for_log(RUN_FAILED, 60)
        check("retried in 3 s" in failed.message, "the retry delay is CONFIG_RETRY_INTERVAL", failed.message)
        rec = d.find_logs(r"^Dataset %s cannot be imported$" % name)
        eq(len(rec), 1, "the failed dataset is logged")
        eq(rec[0]["attributes"]["url"], p.dataset_url(name + ".json"), "url attribute")
        check(re.search(cause_rx, rec[0]["attributes"]["reason"]), "reason attribute names the cause",
              rec[0]["attributes"]["reason"])

        w1 = s.wait_work_done(0, 30, complete=False)
        args = to_processed(s, w1)
        eq(args["inError"], True, "toProcessed inError")
        check(args["message"].startswith(name + ":") and re.search(cause_rx, args["message"]),
              "the work's message names the dataset and the cause", args["message"])
        check(not re.match(r"^Connector successfully run", args["message"]), "no success message")
        expected = TOTAL - COUNTS[name]
        eq(w1["import_expected_number"], expected, "expectations of the imported datasets only")
        w1 = s.wait_work_done(0, 30)
        eq(w1["completed_number"], expected, "the other datasets were processed")
        assert_reference_run(s, w1["id"], datasets=others)
        eq(s.state(), "null", "last_run left alone")

        # retried after CONFIG_RETRY_INTERVAL (3 s), not at the next 2 s check
        w2 = s.wait_works(2, 30)[1]
        done1 = iso(s.work_events(w1["id"], "toProcessed")[0]["time"])
        check(iso(w2["timestamp"]) - done1 >= 2.8, "the retry waits CONFIG_RETRY_INTERVAL",
              iso(w2["timestamp"]) - done1)
        check(iso(w2["timestamp"]) - done1 <= 12, "the retry comes soon after", iso(w2["timestamp"]) - done1)
        s.wait_work_done(1, 30, complete=False)
        eq(to_processed(s, w2)["inError"], True, "the retry failed too")
        eq(s.state(), "null", "still no last_run")

        # fixed: the next retry imports everything and stores last_run
        p.clear_dataset(name + ".json")
        mark = d.mark()
        d.wait_for_log(RUN_STORED, 60, start=mark)
        ws = s.works()
        w = s.wait_work_done(len(ws) - 1, 60)
        last = assert_work_success(s, w)
        assert_reference_run(s, w["id"])
        wait_until(lambda: s.state() == '{"last_run": %d}' % last, 10, message="last_run stored")
        check(len(ws) in (3, 4), "two or three retries at most", len(ws))
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        p.assert_no_violations()


def test_dataset_404():
    _fault("geography", r"\b404\b", status=404)


def test_dataset_500():
    _fault("sectors", r"\b500\b", status=500)


def test_dataset_not_json():
    _fault("companies", r"(?i)json", body="<html><body>Rate limited</body></html>",
           content_type="text/html")


def test_dataset_truncated():
    size = os.path.getsize(os.path.join(datasets_dir(), "sectors.json"))
    _fault("sectors", r"(?i)download failed", truncate_at=size // 2)


def test_file_url_and_disabled():
    for disabled in ("false", "FALSE", ""):
        with scenario() as s:
            p = s.platform
            path = os.path.join(os.path.abspath(datasets_dir()), "companies.json")
            d = s.daemon(CONFIG_GEOGRAPHY_FILE_URL=disabled, CONFIG_COMPANIES_FILE_URL="file://" + path)
            d.wait_for_log(RUN_STORED, 60)
            w = s.wait_work_done(0, 60)
            n = COUNTS["sectors"] + COUNTS["companies"]
            assert_work_success(s, w, expected=n)
            assert_reference_run(s, w["id"], datasets=("sectors", "companies"))
            eq(sorted(r.path for r in p.dataset_requests()), ["/datasets/sectors.json"],
               "only sectors fetched over HTTP (geography disabled by %r, companies from a file)" % disabled)
            check(not d.find_logs(r"geography"), "geography is not mentioned (disabled by %r)" % disabled)
            d.signal(signal.SIGTERM)
            eq(d.wait_exit(15), 0, "exit status")
            assert_no_error_logs(d)
            p.assert_no_violations()


def test_missing_file_url():
    with scenario() as s:
        url = "file:///nonexistent/ods-%s/companies.json" % s.cid
        d = s.daemon(CONFIG_COMPANIES_FILE_URL=url)
        d.wait_for_log(RUN_FAILED, 60)
        rec = d.find_logs(r"^Dataset companies cannot be imported$")
        eq(len(rec), 1, "the failed dataset is logged")
        eq(rec[0]["attributes"]["url"], url, "url attribute")
        w = s.wait_work_done(0, 30)
        args = to_processed(s, w)
        eq(args["inError"], True, "work in error")
        check(args["message"].startswith("companies:"), "message names companies", args["message"])
        assert_reference_run(s, w["id"], datasets=("sectors", "geography"))
        eq(s.state(), "null", "last_run left alone")
        s.platform.assert_no_violations()


def _strip(obj, *keys):
    return {k: v for k, v in obj.items() if k not in keys}


def test_remove_creator():
    with scenario() as s:
        p = s.platform
        d = s.daemon(CONFIG_REMOVE_CREATOR="true")
        d.wait_for_log(RUN_STORED, 60)
        w = s.wait_work_done(0, 60)
        assert_work_success(s, w)
        records = s.messages(w["id"])
        assert_envelopes(s, records, w["id"])
        per = split_by_dataset(records)
        n_creator = 0
        for name in DATASETS:
            ref = {b["objects"][0]["id"]: b["objects"][0] for b in reference_split(name)}
            n_creator += sum(1 for o in ref.values() if "created_by_ref" in o)
            got = [r["bundle"]["objects"][0] for r in per[name]]
            eq(sorted(o["id"] for o in got), sorted(ref), "%s: the same objects" % name)
            for o in got:
                check("created_by_ref" not in o, "no created_by_ref", o["id"], o.get("created_by_ref"))
                eq(_strip(o, "nb_deps"), _strip(ref[o["id"]], "nb_deps", "created_by_ref"),
                   "%s: object %s otherwise unchanged" % (name, o["id"]))
        check(n_creator > 600, "the reference objects do have creators (the test is not vacuous)", n_creator)
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        assert_no_error_logs(d)
        p.assert_no_violations()


def test_size_limit_and_fetch_timeout():
    """CONFIG_MAX_DATASET_SIZE and CONFIG_FETCH_TIMEOUT fail one dataset each, the rest runs."""
    with scenario() as s:
        p = s.platform
        p.set_dataset("sectors.json", delay=6)
        d = s.daemon(CONFIG_MAX_DATASET_SIZE=200000, CONFIG_FETCH_TIMEOUT=2, CONFIG_RETRY_INTERVAL=600)
        d.wait_for_log(RUN_FAILED, 60)
        reasons = {r["attributes"]["dataset"]: r["attributes"]["reason"]
                   for r in d.find_logs(r"^Dataset \w+ cannot be imported$")}
        eq(sorted(reasons), ["geography", "sectors"], "the failed datasets")
        check(re.search(r"(?i)timed? ?out", reasons["sectors"]), "sectors: the timeout", reasons["sectors"])
        check("200000" in reasons["geography"], "geography: the size limit", reasons["geography"])
        w = s.wait_work_done(0, 30)
        args = to_processed(s, w)
        eq(args["inError"], True, "work in error")
        check("sectors" in args["message"] and "geography" in args["message"], "both named", args["message"])
        assert_reference_run(s, w["id"], datasets=("companies",))
        eq(s.state(), "null", "last_run left alone")
        p.assert_no_violations()


def test_oversized_message():
    """An object whose message exceeds MQ_MAX_MESSAGE_SIZE fails alone: the others are
    imported, the failed one is reported on the work, which completes in error."""
    import json
    import uuid
    objs = [{"type": "identity", "spec_version": "2.1", "id": "identity--%s" % uuid.uuid4(),
             "name": "Org %d" % i, "identity_class": "organization",
             "description": "x" * (10000 if i == 1 else 10)} for i in range(3)]
    big_id = objs[1]["id"]
    with scenario() as s:
        p = s.platform
        p.set_dataset("companies.json", body=json.dumps({"type": "bundle", "id": "bundle--%s" % uuid.uuid4(),
                                                         "objects": objs}))
        d = s.daemon(MQ_MAX_MESSAGE_SIZE=4096, CONFIG_RETRY_INTERVAL=600)
        d.wait_for_log(RUN_FAILED, 60)
        rec = d.find_logs(r"^A message could not be published$")
        eq([r["attributes"]["object"] for r in rec], [big_id], "the oversized object is named")
        expected = COUNTS["sectors"] + COUNTS["geography"] + 3
        w = s.wait_work_done(0, 30)
        eq(w["import_expected_number"], expected, "expectations")
        eq(w["completed_number"], expected, "every expectation accounted for")
        errors = [e for e in s.work_events(w["id"], "reportExpectation") if e["args"]["error"]]
        eq(len(errors), 1, "the failed message is reported")
        eq(to_processed(s, w)["inError"], True, "work in error")
        sent = [r["object"]["id"] for r in s.messages(w["id"])]
        eq(len(sent), expected - 1, "the other messages were sent")
        check(big_id not in sent, "the oversized one was not")
        eq(s.state(), "null", "last_run left alone")
        p.assert_no_violations()


def test_redirects():
    """A dataset URL that redirects (as raw.githubusercontent.com may) is followed; a
    redirect to a file:// URL is not (the server must not make the daemon read local files)."""
    with scenario() as s:
        p = s.platform
        p.set_dataset("moved-sectors.json", status=302, headers=[("Location", "/datasets/sectors.json")])
        p.set_dataset("evil-companies.json", status=302, headers=[("Location", "file:///etc/passwd")])
        d = s.daemon(CONFIG_SECTORS_FILE_URL=p.dataset_url("moved-sectors.json"),
                     CONFIG_COMPANIES_FILE_URL=p.dataset_url("evil-companies.json"),
                     CONFIG_RETRY_INTERVAL=600)
        d.wait_for_log(RUN_FAILED, 60)
        w = s.wait_work_done(0, 30)
        assert_reference_run(s, w["id"], datasets=("sectors", "geography"))
        rec = d.find_logs(r"^Dataset companies cannot be imported$")
        eq(len(rec), 1, "the redirect to a local file is refused")
        check(re.search(r"(?i)protocol.*file|file.*(not supported|disabled)", rec[0]["attributes"]["reason"]),
              "refused for its protocol", rec[0]["attributes"]["reason"])
        check("root:" not in json_dumps(s.messages()), "no local file content was sent")
        eq([r.path for r in p.dataset_requests("sectors.json")], ["/datasets/sectors.json"],
           "the redirect was followed")
        p.assert_no_violations()


def test_redirect_credentials():
    """A dataset URL with a user and password, redirected with an absolute Location: the
    credentials go along while scheme, host and port stay the same (as curl does), and not
    to another host."""
    import base64
    with scenario() as s:
        p = s.platform
        auth = "Basic " + base64.b64encode(b"mirror:S3cr3t-m1rror").decode()
        same = p.dataset_url("sectors.json")
        other = same.replace("127.0.0.1", "localhost").replace("sectors.json", "companies.json")
        p.set_dataset("a-sectors.json", status=301, headers=[("Location", same)])
        p.set_dataset("a-companies.json", status=302, headers=[("Location", other)])
        with_creds = lambda name: p.dataset_url(name).replace("http://", "http://mirror:S3cr3t-m1rror@")
        d = s.daemon(CONFIG_SECTORS_FILE_URL=with_creds("a-sectors.json"),
                     CONFIG_COMPANIES_FILE_URL=with_creds("a-companies.json"),
                     CONNECTOR_RUN_AND_TERMINATE="true", CONNECTOR_LOG_LEVEL="debug")
        eq(d.wait_exit(90), 0, "exit status")
        got = {r.path: r.header("Authorization") for r in p.dataset_requests()}
        eq(got.get("/datasets/a-sectors.json"), auth, "the first request carries the credentials")
        eq(got.get("/datasets/sectors.json"), auth, "and the same-origin redirect target too")
        eq(got.get("/datasets/a-companies.json"), auth, "the other first request")
        check("/datasets/companies.json" in got, "the cross-host redirect was followed", got)
        eq(got["/datasets/companies.json"], None, "no credentials for another host")
        check("S3cr3t-m1rror" not in d.output(), "the password is not logged")
        p.assert_no_violations()


def json_dumps(records):
    import base64
    return " ".join(base64.b64decode((r["envelope"] or {}).get("content") or "").decode("utf-8", "replace")
                    for r in records)


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
