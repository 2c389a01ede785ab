"""The message broker crashes (SIGKILL) or is down around a run. One private rabbitmq-server
node for the file (tests/harness/broker.py); its data survives kill() and start().

* test_broker_killed_mid_publish: a 60,000-object dataset is being published (window 256,
  the platform's worker off so that the queue keeps everything) when the node is killed;
  it is started again. The run completes (exit 0, "60000/60000 messages confirmed",
  reconnected, success message on the work, no message reported unsent); every message
  (action_sequence 1..N) and every object of the bundle is in the push queue at least
  once, with at most one window of duplicates and nothing foreign; the work's
  expectations were added once and equal the number of distinct messages, and reporting
  the queue's messages as the worker would completes the work.
* test_broker_lost_before_publish: the node dies after the run's pre-run ping, while the
  datasets are being fetched: publishing finds no broker, retries (several "Cannot
  connect" lines, no failure, no give-up), and once the node is back the run completes
  with the reference messages, exactly once each (worker on), work complete.
* test_broker_down_at_run_check: the node is down when a (retried) run is due: the
  platform's ping fails (it declares the queues), so the run is postponed (no work is
  created while the broker is down); when the node is back the run takes place and
  completes.
* test_sigterm_while_broker_down: SIGTERM while the publisher waits for a killed node to
  come back: the daemon exits 0 within seconds (the reconnect backoff does not hold it),
  and what it logged as confirmed is in the queue once the node is back.
"""

import sys
import time

from daemon_scenarios import (DATASETS, RUN_FAILED, RUN_STORED, RUN_SUCCESS,
                              assert_reference_run, assert_work_success, check, count_logs, eq,
                              scenario, wait_until)
from fault_scenarios import (check_clean_run, WINDOW, main_with_own_broker, sigterm_while,
                             CONNECT_FAILED, CONNECTED, LOST, RUN_POSTPONED,
                             assert_no_violations_but_outage, big_dataset,
                             big_env, bundle_ids, dataset_done_rx, dataset_result,
                             duplicates, report_like_worker, seq_counts,
                             split_messages, wait_depth)

BROKER = None
N = 60000


def test_broker_killed_mid_publish():
    path = big_dataset(N)
    with scenario(broker=BROKER, worker=False) as s:
        p = s.platform
        q = p.queue_name("push", s.cid)
        d = s.daemon(env=big_env(s, path, CONNECTOR_RUN_AND_TERMINATE="true",
                                 MQ_CONFIRM_WINDOW=WINDOW))
        d.wait_for_log(CONNECTED, 60)
        seen = wait_depth(p, q, N // 6, 60, daemon=d)
        check(not d.find_logs(dataset_done_rx("sectors")), "the broker dies mid-publish")
        mark = d.mark()
        BROKER.kill()
        d.wait_for_log(LOST, 30, start=mark)
        d.wait_for_log(CONNECT_FAILED, 30, start=mark)  # it keeps trying while the node is down
        t_down = time.monotonic()
        BROKER.start()
        eq(d.wait_exit(180), 0, "exit status of the run-and-terminate run")
        back = time.monotonic() - t_down

        eq(split_messages(d), N, "messages made of the dataset")
        confirmed, expected, rec = dataset_result(d)
        eq((confirmed, expected), (N, N), "every message confirmed")
        attrs = rec["attributes"]
        check(attrs["reconnects"] >= 1, "reconnected", attrs)
        check(attrs["republished"] <= WINDOW * attrs["reconnects"],
              "republished at most one window per reconnection", attrs)
        d.wait_for_log(RUN_SUCCESS, 1)

        works = s.works()
        eq(len(works), 1, "one work")
        w = works[0]
        eq([e["args"]["expectations"] for e in s.work_events(w["id"], "addExpectations")], [N],
           "addExpectations once, with the dataset's message count")
        records = check_clean_run(s, w, N, BROKER, q)
        counts = seq_counts(records)
        missing = set(range(1, N + 1)) - set(counts)
        check(not missing, "every message is in the queue", len(missing), sorted(missing)[:20])
        extra = set(counts) - set(range(1, N + 1))
        check(not extra, "nothing foreign in the queue", sorted(extra)[:20])
        dups = duplicates(records)
        check(dups <= WINDOW, "duplicates at most the window", dups)
        eq(set(r["oid"] for r in records), set(bundle_ids(path)),
           "every object of the bundle is in the queue")
        eq(len(counts), w["import_expected_number"],
           "the work's expectations equal the distinct messages published")
        report_like_worker(p, w["id"], records)
        eq(p.work(w["id"])["status"], "complete", "the work completes once the queue is processed")
        assert_no_violations_but_outage(p)
        print("  killed at %d queued messages; back %.1fs after the restart began; %d "
              "republished, %d duplicates in the queue" % (seen, back, attrs["republished"], dups))


def test_broker_lost_before_publish():
    with scenario(broker=BROKER) as s:
        p = s.platform
        p.set_dataset("sectors.json", delay=3)  # time to kill the node during the fetch
        d = s.daemon(MQ_PUBLISH_TIMEOUT="PT120S")
        d.wait_for_log(r"^Fetching OpenCTI datasets", 60)
        BROKER.kill()
        wait_until(lambda: count_logs(d, CONNECT_FAILED) >= 3, 60,
                   message="three failed connection attempts")
        check(not d.find_logs(RUN_FAILED) and not d.find_logs(dataset_done_rx("sectors")),
              "no give-up while the broker is down")
        check(s.works()[0]["processed_time"] is None, "the work is still in progress")
        BROKER.start()
        d.wait_for_log(RUN_STORED, 120)
        w = s.wait_work_done(0, 60)
        assert_work_success(s, w)
        assert_reference_run(s, w["id"])
        eq(len(d.find_logs(dataset_done_rx("sectors"))), 1, "one publish of sectors")
        assert_no_violations_but_outage(p)


def test_broker_down_at_run_check():
    with scenario(broker=BROKER) as s:
        p = s.platform
        for name in DATASETS:
            p.set_dataset(name + ".json", status=404)
        d = s.daemon()
        d.wait_for_log(RUN_FAILED, 60)  # the retry is due 3 s later
        BROKER.kill()
        mark = d.mark()
        p.clear_dataset()
        d.wait_for_log(RUN_POSTPONED, 30, start=mark)
        wait_until(lambda: count_logs(d, RUN_POSTPONED, mark) >= 2, 30,
                   message="the run postponed twice")
        eq(len(s.works()), 1, "no work created while the broker is down")
        BROKER.start()
        d.wait_for_log(RUN_STORED, 120, start=mark)
        w = s.wait_work_done(1, 60)
        assert_work_success(s, w)
        assert_reference_run(s, w["id"])
        assert_no_violations_but_outage(p)


def test_sigterm_while_broker_down():
    path = big_dataset(N)
    with scenario(broker=BROKER, worker=False) as s:
        p = s.platform
        q = p.queue_name("push", s.cid)
        d = s.daemon(env=big_env(s, path, MQ_CONFIRM_WINDOW=WINDOW))
        d.wait_for_log(CONNECTED, 60)
        wait_depth(p, q, N // 6, 60, daemon=d)
        mark = d.mark()

        def kill():
            BROKER.kill()
            d.wait_for_log(LOST, 30, start=mark)
            wait_until(lambda: count_logs(d, CONNECT_FAILED, mark) >= 4, 60,
                       message="four failed connection attempts (backoff of seconds)")
        sigterm_while(BROKER, d, q, kill, BROKER.start, "the broker is down", N)


def main():
    return main_with_own_broker(sys.modules[__name__])


if __name__ == "__main__":
    sys.exit(main())
