"""A memory alarm on the broker during a run (rabbitmqctl set_vm_memory_high_watermark 0,
then 0.4 to lift it). One private rabbitmq-server node for the file: an alarm would block
every other test's publishers on a shared one.

* test_memory_alarm_mid_publish: while a 60,000-object dataset is being published (the
  platform's worker off) the alarm is raised and held for longer than one heartbeat
  period (10 s). The daemon logs that the broker blocked publishing; the queue stops
  growing; the daemon keeps pinging the platform all along (the publisher's service hook
  runs while blocked) and does not give up, fail or reconnect. Once the alarm is lifted it
  logs that publishing resumed and the run completes: every message once (no reconnection,
  so no duplicate), the work's expectations equal the messages, the work completes once
  the queue is processed.
* test_sigterm_while_blocked: SIGTERM while the broker blocks publishing: the daemon exits
  0 within seconds (it does not wait on a broker that does not read), and its "C/N
  messages confirmed" line never claims more than the queue holds.
"""

import sys
import time

from daemon_scenarios import (RUN_FAILED, RUN_SUCCESS, check, eq, scenario)
from fault_scenarios import (check_clean_run, main_with_own_broker, sigterm_while,
                             BLOCKED, CONNECTED, LOST, UNBLOCKED, big_dataset, big_env,
                             dataset_done_rx, dataset_result, duplicates,
                             report_like_worker, seq_counts,
                             wait_depth)

BROKER = None
N = 60000
ALARM_S = 14  # longer than the 10 s heartbeat: the blocked connection must survive it


def test_memory_alarm_mid_publish():
    path = big_dataset(N)
    with scenario(broker=BROKER, worker=False) as s:
        p = s.platform
        q = p.queue_name("push", s.cid)
        d = s.daemon(env=big_env(s, path, CONNECTOR_RUN_AND_TERMINATE="true"))
        d.wait_for_log(CONNECTED, 60)
        wait_depth(p, q, N // 6, 60, daemon=d)
        mark = d.mark()
        BROKER.memory_alarm(True)
        try:
            blocked = d.wait_for_log(BLOCKED, 30, start=mark)
            t_blocked = time.monotonic()
            check(not d.find_logs(dataset_done_rx("sectors")), "blocked mid-publish")
            time.sleep(1.0)  # what was already on the wire lands
            depth1 = p.queue_depth(q)
            pings1 = len([x for x in p.pings if x["connector_id"] == s.cid])
            time.sleep(max(0.0, ALARM_S - (time.monotonic() - t_blocked)))
            depth2 = p.queue_depth(q)
            pings2 = len([x for x in p.pings if x["connector_id"] == s.cid])
            eq(depth2, depth1, "the queue does not grow while publishing is blocked")
            check(depth2 < N, "the run is paused, not over", depth2)
            check(d.running(), "still running while blocked")
            check(pings2 - pings1 >= (ALARM_S - 1) // 2 - 2,
                  "the daemon keeps pinging the platform while blocked (2 s interval)",
                  pings1, pings2)
            check(not d.find_logs(LOST, mark), "the blocked connection is kept (no loss)")
            check(not d.find_logs(RUN_FAILED, mark), "no failure while blocked")
        finally:
            BROKER.memory_alarm(False)
        d.wait_for_log(UNBLOCKED, 30, start=mark)
        eq(d.wait_exit(120), 0, "exit status")
        d.wait_for_log(RUN_SUCCESS, 1)
        confirmed, expected, rec = dataset_result(d)
        eq((confirmed, expected), (N, N), "every message confirmed")
        eq(rec["attributes"]["reconnects"], 0, "no reconnection")
        check("reason" in blocked["attributes"], "the broker's reason is logged", blocked)

        w = s.works()[0]
        records = check_clean_run(s, w, N, BROKER, q)
        eq(set(seq_counts(records)), set(range(1, N + 1)), "every message is in the queue")
        eq(duplicates(records), 0, "no duplicate without a reconnection")
        report_like_worker(p, w["id"], records)
        eq(p.work(w["id"])["status"], "complete", "the work completes once the queue is processed")
        p.assert_no_violations()
        print("  blocked at %d queued messages for %.0f s; %d pings meanwhile"
              % (depth1, ALARM_S, pings2 - pings1))


def test_sigterm_while_blocked():
    path = big_dataset(N)
    with scenario(broker=BROKER, worker=False) as s:
        p = s.platform
        q = p.queue_name("push", s.cid)
        d = s.daemon(env=big_env(s, path))
        d.wait_for_log(CONNECTED, 60)
        wait_depth(p, q, N // 6, 60, daemon=d)
        mark = d.mark()

        def alarm():
            BROKER.memory_alarm(True)
            d.wait_for_log(BLOCKED, 30, start=mark)
        sigterm_while(BROKER, d, q, alarm, lambda: BROKER.memory_alarm(False), "blocked", N)


def main():
    return main_with_own_broker(sys.modules[__name__])


if __name__ == "__main__":
    sys.exit(main())
