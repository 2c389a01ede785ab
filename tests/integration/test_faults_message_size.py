"""A message larger than the broker's limit, or than MQ_MAX_MESSAGE_SIZE: that object's
failure, not a crash and not a dead connection. One private rabbitmq-server node with a
small max_message_size (32 KiB) for the file; the three datasets are the real ones, with
one sector made huge (a 60,000-character description: about 80 KB once in its message).

* test_broker_limit: the broker closes the channel on the huge message (PRECONDITION_FAILED);
  the daemon learns the limit (one warning), fails that message alone (logged with its
  object id and the limit), reopens a channel on the same connection (no reconnection)
  and republishes what was in flight. Every other object of the three datasets reaches
  the worker (duplicates at most one window); the run fails: the work is told processed
  in error with a message naming the dataset and the limit, the failed message is
  reported to it, so the work completes (in error) rather than staying in progress;
  last_run is not stored; the work's message numbers the message as its action_sequence
  and the report names the object as its source. The retry (CONFIG_RETRY_INTERVAL) uses the learned limit: the
  message fails there without being sent, no channel is lost again.
* test_own_limit: MQ_MAX_MESSAGE_SIZE (16 KiB) below the broker's limit: the huge message
  is never sent (no channel lost, nothing learned), every other message arrives exactly
  once, in the reference order, the work ends in error naming the limit.
"""

import json
import os
import sys

from daemon_scenarios import (COUNTS, DATASETS, RUN_FAILED, RUN_SUCCESS, TOTAL,
                              assert_envelopes, check, datasets_dir, eq, reference_split,
                              scenario, split_by_dataset, to_processed, wait_until)
from fault_scenarios import (WINDOW, main_with_own_broker,
                             LIMIT_LEARNED, LOST, MSG_FAILED, RUN_NOT_COMPLETE, dataset_result,
                             error_reports)

BROKER = None
BROKER_LIMIT = 32768
OWN_LIMIT = 16384
HUGE_INDEX = 4  # a sector (identity) of sectors.json


def huge_sectors():
    """sectors.json with one sector's description inflated; returns (body, object id)."""
    with open(os.path.join(datasets_dir(), "sectors.json"), encoding="utf-8") as f:
        bundle = json.load(f)
    obj = bundle["objects"][HUGE_INDEX]
    check(obj["type"] == "identity", "the object to inflate is a sector", obj["type"])
    obj["description"] = ("A very long description. " * 2400)[:60000]
    return json.dumps(bundle).encode(), obj["id"]


def reference_ids(exclude):
    ids = []
    for name in DATASETS:
        ids += [b["objects"][0]["id"] for b in reference_split(name)]
    return [i for i in ids if i != exclude]


def received_ids(s, work_id):
    return [m["object"]["id"] for m in s.messages(work_id) if m["object"]]


def check_failed_run(s, d, huge_id, limit, start=0):
    """The common part: one message failed with its object and the limit, the datasets'
    lines, the work in error and complete. Returns the work."""
    failed = d.find_logs(MSG_FAILED, start)
    eq(len(failed), 1, "one message failed")
    attrs = failed[0]["attributes"]
    eq(attrs["object"], huge_id, "the failure names the object")
    check("exceeds the limit of %d bytes" % limit in attrs["reason"], "the reason names the limit",
          attrs["reason"])
    c, n, rec = dataset_result(d, "sectors", start)
    eq((c, n), (COUNTS["sectors"] - 1, COUNTS["sectors"]), "sectors: all but one confirmed")
    eq(rec["attributes"]["failed"], 1, "one failed")
    eq(rec["attributes"]["reconnects"], 0, "the connection is kept")
    for name in ("geography", "companies"):
        eq(dataset_result(d, name, start)[:2], (COUNTS[name], COUNTS[name]),
           "%s: every message confirmed" % name)
    d.wait_for_log(RUN_NOT_COMPLETE, 10, start=start)
    return rec


def huge_seq(huge_id):
    """The huge object's action_sequence (its place in the reference split, from 1)."""
    return [b["objects"][0]["id"] for b in reference_split("sectors")].index(huge_id) + 1


def check_failed_work(s, w, limit, huge_id):
    args = to_processed(s, w)
    eq(args["inError"], True, "the work is in error")
    check(args["message"].startswith("sectors:") and
          "exceeds the limit of %d bytes" % limit in args["message"],
          "the work's message names the dataset and the limit", args["message"])
    check("first: message %d:" % huge_seq(huge_id) in args["message"],
          "the work's message numbers the message as its action_sequence", args["message"])
    eq(w["import_expected_number"], TOTAL, "the work's expectations")
    reports = error_reports(s, w["id"])
    eq(len(reports), 1, "the failed message is reported to the work")
    eq(reports[0]["args"]["error"].get("source"), huge_id,
       "the report names the object as its source")
    w = s.wait_work_done(s.works().index(next(x for x in s.works() if x["id"] == w["id"])), 30)
    eq(w["completed_number"], TOTAL, "the work completes (in error)")
    return args["message"]


def test_broker_limit():
    body, huge_id = huge_sectors()
    with scenario(broker=BROKER) as s:
        p = s.platform
        p.set_dataset("sectors.json", body=body)
        d = s.daemon(MQ_CONFIRM_WINDOW=WINDOW)
        d.wait_for_log(RUN_FAILED, 60)
        check(d.running(), "no crash")
        learned = d.find_logs(LIMIT_LEARNED)
        eq(len(learned), 1, "the broker's limit is learned once")
        check(learned[0]["attributes"]["limit"].startswith(str(BROKER_LIMIT)), "the limit",
              learned[0]["attributes"])
        lost = d.find_logs(LOST)
        eq(len(lost), 1, "one channel lost, by the broker's refusal")
        check("PRECONDITION_FAILED" in lost[0]["attributes"]["reason"], "the broker's reason",
              lost[0]["attributes"])
        check_failed_run(s, d, huge_id, BROKER_LIMIT)
        check(not d.find_logs(RUN_SUCCESS), "the run is not successful")
        w = s.wait_works(1)[0]
        wait_until(lambda: s.works()[0]["status"] == "complete", 30, message="work 0 complete")
        message = check_failed_work(s, s.works()[0], BROKER_LIMIT, huge_id)
        expected = set(reference_ids(huge_id))
        # The republished duplicates count on the work too, so it can complete while the
        # worker still has some originals in the queue: wait for them, not for the work.
        try:
            wait_until(lambda: set(received_ids(s, w["id"])) >= expected, 30,
                       message="every other object at the worker")
        except Exception:  # noqa: BLE001 - the eq below says what is missing
            pass
        ids = received_ids(s, w["id"])
        eq(set(ids), expected, "every other object reached the worker")
        check(len(ids) - len(expected) <= WINDOW, "duplicates at most the window",
              len(ids) - len(expected))
        check(huge_id not in ids, "the huge object never arrived")
        check(s.state() in (None, "null"), "no last_run stored", s.state())

        # the retry knows the limit: the message fails without being sent
        mark = d.mark()
        d.wait_for_log(RUN_FAILED, 60, start=mark)
        check_failed_run(s, d, huge_id, BROKER_LIMIT, start=mark)
        check(not d.find_logs(LOST, mark), "no channel lost on the retry")
        check(not d.find_logs(LIMIT_LEARNED, mark), "nothing new to learn")
        p.assert_no_violations()
        print("  work message: %s" % message)


def test_own_limit():
    body, huge_id = huge_sectors()
    with scenario(broker=BROKER) as s:
        p = s.platform
        p.set_dataset("sectors.json", body=body)
        d = s.daemon(MQ_MAX_MESSAGE_SIZE=OWN_LIMIT, CONNECTOR_RUN_AND_TERMINATE="true")
        eq(d.wait_exit(90), 1, "a failed run-and-terminate run exits 1")
        check_failed_run(s, d, huge_id, OWN_LIMIT)
        check(not d.find_logs(LOST), "no channel lost")
        check(not d.find_logs(LIMIT_LEARNED), "nothing learned")
        w = s.wait_work_done(0, 30)
        message = check_failed_work(s, w, OWN_LIMIT, huge_id)
        records = s.messages(w["id"])
        assert_envelopes(s, records, w["id"])
        counts = dict(COUNTS)
        counts["sectors"] -= 1
        # the huge one left out, the others in order: action_sequence keeps counting past it
        seqs = [r["envelope"]["action_sequence"] for r in records[:counts["sectors"]]]
        ref = [b["objects"][0]["id"] for b in reference_split("sectors")]
        skipped = huge_seq(huge_id)
        eq(seqs, [k for k in range(1, COUNTS["sectors"] + 1) if k != skipped],
           "sectors: every sequence number but the huge one's, in order")
        eq([r["object"]["id"] for r in records[:counts["sectors"]]], [i for i in ref if i != huge_id],
           "sectors: the other objects, in the reference order")
        split_by_dataset(records[counts["sectors"]:], ("geography", "companies"), counts)
        p.assert_no_violations()
        print("  work message: %s" % message)


def main():
    return main_with_own_broker(sys.modules[__name__], max_message_size=BROKER_LIMIT)


if __name__ == "__main__":
    sys.exit(main())
