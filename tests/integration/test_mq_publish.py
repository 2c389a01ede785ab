"""mq_publish() against one private broker: confirms and order, a memory alarm, a queue
deleted mid-run (with and without the unroutable hook re-declaring it), our own size limit,
and a cancel through the service hook. The broker is started once for the whole file."""

import os
import re
import signal
import time

import mq_helpers as m
from mq_helpers import check

BROKER = None


def test_all_confirmed_in_order():
    ex, key, q = m.declare(BROKER, "order")
    n = 2000
    res = m.run(BROKER, ex, key, n, "--window", 64, "--connection-name", "ods-test-order")
    m.check_all_confirmed(res, n)
    check(res["stats"]["published"] == n, "no republish", res["stats"])
    seqs = m.drain(BROKER, q, expect=n)
    check(seqs == list(range(1, n + 1)), "queue holds 1..N once, in order",
          len(seqs), seqs[:10])


def test_window_of_one():
    ex, key, q = m.declare(BROKER, "window1")
    n = 300
    res = m.run(BROKER, ex, key, n, "--window", 1)
    m.check_all_confirmed(res, n)
    check(m.drain(BROKER, q, expect=n) == list(range(1, n + 1)), "in order")


def test_memory_alarm_pauses_then_completes():
    ex, key, q = m.declare(BROKER, "alarm")
    n = 6000
    # 1 ms per message: the run lasts long enough for rabbitmqctl to raise the alarm. A 1 s
    # heartbeat: the blocked wait (3 s and more) must keep servicing it.
    run = m.Run(BROKER, ex, key, n, "--window", 64, "--render-delay-us", 1000,
                "--heartbeat", 1, "--give-up-ms", 120000)
    try:
        run.wait_event("CONNECTED", timeout=30)
        BROKER.memory_alarm(True)
        blocked = run.wait_event("BLOCKED", timeout=60)
        # while blocked nothing more reaches the queue
        d1 = BROKER.queue_depths().get(q, 0)
        time.sleep(3)
        d2 = BROKER.queue_depths().get(q, 0)
        check(d1 == d2, "no progress while blocked", d1, d2)
        check(run.proc.poll() is None, "still running while blocked")
    finally:
        BROKER.memory_alarm(False)
    res = run.result(timeout=240)
    m.check_all_confirmed(res, n)
    names = [e["event"] for e in res["events"]]
    check("UNBLOCKED" in names and names.index("BLOCKED") < names.index("UNBLOCKED"),
          "BLOCKED then UNBLOCKED", names)
    check("LOST" not in names and res["stats"]["reconnects"] == 0,
          "the connection survived the alarm (heartbeats serviced)", names)
    check("heartbeat 1s" in res["events"][0]["detail"], "heartbeat negotiated",
          res["events"][0])
    check(blocked["detail"], "the broker's reason is reported", blocked)
    check(m.drain(BROKER, q, expect=n) == list(range(1, n + 1)), "all once, in order")


def test_queue_deleted_hook_redeclares():
    name = "deleted"
    ex, key, q = m.declare(BROKER, name)
    n, window = 800, 32
    run = m.Run(BROKER, ex, key, n, "--window", window, "--render-delay-us", 2000,
                "--give-up-ms", 60000,
                "--on-confirmed", "100:" + m.delete_command(BROKER, q),
                "--on-unroutable", m.declare_command(BROKER, name))
    res = run.result(timeout=240)
    m.check_all_confirmed(res, n)
    st = res["stats"]
    check(st["returned"] > 0, "returns were detected", st)
    check(st["republished"] >= st["returned"], "returned messages were republished", st)
    names = [e["event"] for e in res["events"]]
    check("RETURNED" in names and "UNROUTABLE_HOOK" in names, "return events and hook", names)
    check(names.index("RETURNED") < names.index("UNROUTABLE_HOOK"), "hook after a return")
    hooks = names.count("UNROUTABLE_HOOK")
    check(hooks <= 3, "the hook runs once per burst of returns, not per message", hooks)
    # The deletion dropped what the old queue held: everything published after it (at
    # most confirmed-at-deletion + window) must be in the new queue.
    at = int(run.wait_event("ON_CONFIRMED")["detail"])
    seqs = m.drain(BROKER, q)
    missing = set(range(at + window + 1, n + 1)) - set(seqs)
    check(not missing, "messages after the deletion are in the new queue", sorted(missing)[:20])
    check(len(seqs) == len(set(seqs)), "returned messages are not duplicated")


def test_queue_deleted_without_hook_fails_individually():
    name = "deleted-nohook"
    ex, key, q = m.declare(BROKER, name)
    n, window = 120, 32
    res = m.run(BROKER, ex, key, n, "--window", window, "--render-delay-us", 2000,
                "--give-up-ms", 60000,
                "--on-confirmed", "40:" + m.delete_command(BROKER, q), timeout=240)
    check(res["rc"] == -33, "E_MQ_PARTIAL", res["rc"], res["error"])
    st = res["stats"]
    check(st["failed"] > 0 and st["confirmed"] >= 40, "some failed, the first confirmed", st)
    check(st["pending"] == 0, "every message has an outcome", st)
    check(st["confirmed"] + st["failed"] == n, "counts add up", st)
    status = res["status"]
    first_f = status.index("F")
    check(status[:first_f] == "C" * first_f, "confirmed before the deletion")
    failed = [e for e in res["events"] if e["event"] == "MSG_FAILED"]
    check(len(failed) == st["failed"], "one MSG_FAILED per failed message")
    check(all("returned as unroutable 5 times" in e["detail"] for e in failed),
          "bounded returns", failed[:2])
    per_msg = {}
    for e in res["events"]:
        if e["event"] == "RETURNED":
            per_msg[e["i"]] = per_msg.get(e["i"], 0) + 1
    check(all(per_msg.get(i, 0) == 5 for i, c in enumerate(status) if c == "F"),
          "each failed message was returned exactly 5 times")
    check("error" in res and "returned as unroutable" in res["error"], "err names the cause",
          res["error"])


# A queue that refuses to grow: RabbitMQ nacks what it cannot take.
FULL_QUEUE = {"x-max-length": 50, "x-overflow": "reject-publish"}


def test_nacked_messages_retry_then_fail():
    ex, key, q = m.declare(BROKER, "nack", arguments=FULL_QUEUE)
    n = 80
    res = m.run(BROKER, ex, key, n, "--window", 64, "--give-up-ms", 60000)
    check(res["rc"] == -33, "E_MQ_PARTIAL", res["rc"], res["error"])
    st = res["stats"]
    check(st["confirmed"] == 50 and st["failed"] == 30, "50 fit, 30 failed", st)
    check(st["nacked"] == 30 * 5, "each failed message was nacked 5 times", st)
    check(st["republished"] == 30 * 4, "and republished 4 times", st)
    failed = [e for e in res["events"] if e["event"] == "MSG_FAILED"]
    check(len(failed) == 30 and all("nacked by the broker 5 times" in e["detail"]
                                    for e in failed), "bounded nack retries", failed[:2])
    nacks = [e["t_ms"] for e in res["events"] if e["event"] == "NACKED"]
    # backoff 200, 400, 800, 1600 ms between the five attempts
    check(nacks[-1] - nacks[0] >= 2500, "retries were spaced out", nacks[0], nacks[-1])
    check(sorted(m.drain(BROKER, q)) == list(range(1, 51)), "the queue took the first 50")


def test_nacked_messages_recover():
    ex, key, q = m.declare(BROKER, "nack-recover", arguments=FULL_QUEUE)
    n = 80
    run = m.Run(BROKER, ex, key, n, "--window", 64, "--give-up-ms", 60000)
    run.wait_event("NACKED", timeout=30)
    m.purge_queue(BROKER, q)  # a worker drained the queue: the retries now fit
    res = run.result(timeout=120)
    m.check_all_confirmed(res, n)
    check(res["stats"]["nacked"] > 0 and res["stats"]["republished"] > 0, "retried",
          res["stats"])


def test_long_alarm_gives_up():
    ex, key, q = m.declare(BROKER, "alarm-giveup")
    BROKER.memory_alarm(True)
    try:
        res = m.run(BROKER, ex, key, 100, "--give-up-ms", 4000, timeout=120)
    finally:
        BROKER.memory_alarm(False)
    check(res["rc"] == -32, "E_MQ_GIVE_UP", res["rc"], res["error"])
    check("BLOCKED" in [e["event"] for e in res["events"]], "blocked reported")
    check("blocked" in res["error"], "the error says why", res["error"])
    check(res["stats"]["confirmed"] == 0 and res["stats"]["pending"] == 100, res["stats"])
    check(res["elapsed_ms"] < 4000 + 3000, "gave up in time", res["elapsed_ms"])


def test_forced_close_reconnects():
    ex, key, q = m.declare(BROKER, "forced")
    n, window = 6000, 128
    run = m.Run(BROKER, ex, key, n, "--window", window, "--render-delay-us", 500,
                "--backoff-initial-ms", 100, "--give-up-ms", 60000)
    run.wait_event("CONNECTED", timeout=30)
    time.sleep(1.0)
    BROKER.ctl("close_all_connections", "test says bye")
    lost = run.wait_event("LOST", timeout=30)
    res = run.result(timeout=120)
    m.check_all_confirmed(res, n)
    check("CONNECTION_FORCED" in lost["detail"], "the broker's reason", lost)
    check(res["stats"]["reconnects"] >= 1, "reconnected", res["stats"])
    seqs = m.drain(BROKER, q, expect=n)
    check(set(seqs) == set(range(1, n + 1)), "every message in the queue")
    check(len(seqs) - n <= window, "duplicates at most the window", len(seqs) - n)


def test_missing_exchange_gives_up():
    res = m.run(BROKER, "no-such-exchange", "k", 10, "--give-up-ms", 2500,
                "--backoff-initial-ms", 100, "--backoff-max-ms", 400)
    check(res["rc"] == -32, "E_MQ_GIVE_UP", res["rc"], res["error"])
    check("NOT_FOUND" in res["error"], "names the broker's refusal", res["error"])
    lost = [e for e in res["events"] if e["event"] == "LOST"]
    check(len(lost) >= 2, "the channel was reopened with backoff", len(lost))
    check(res["stats"]["confirmed"] == 0, res["stats"])


def test_own_size_limit():
    ex, key, q = m.declare(BROKER, "ownlimit")
    n = 50
    res = m.run(BROKER, ex, key, n, "--max-message-size", 10000, "--big", "10:20000")
    check(res["rc"] == -33, "E_MQ_PARTIAL", res["rc"], res["error"])
    check(res["status"] == "C" * 10 + "F" + "C" * (n - 11), "only message 10 failed",
          res["status"])
    st = res["stats"]
    check(st["published"] == n - 1, "the big one was never sent", st)
    failed = [e for e in res["events"] if e["event"] == "MSG_FAILED"]
    check(len(failed) == 1 and failed[0]["i"] == 10, "one MSG_FAILED for message 10", failed)
    check(re.fullmatch(r"message of \d+ bytes exceeds the limit of 10000 bytes",
                       failed[0]["detail"]), "the sentence gives both sizes", failed[0])
    check("LOST" not in [e["event"] for e in res["events"]], "no channel was lost")
    seqs = m.drain(BROKER, q, expect=n - 1)
    check(seqs == [s for s in range(1, n + 1) if s != 11], "all but the big one, once", seqs)


def _cancel_common(run, q, window):
    res = run.result(timeout=120)
    check(res["rc"] == -6, "E_CANCELED", res["rc"], res["error"])
    st = res["stats"]
    status = res["status"]
    check(status.count("C") == st["confirmed"], "status and stats agree", st)
    check(st["confirmed"] > 0 and st["pending"] > 0, "stopped mid-series", st)
    seqs = m.drain(BROKER, q)
    in_queue = set(seqs)
    confirmed = {i + 1 for i, c in enumerate(status) if c == "C"}
    check(confirmed <= in_queue, "every confirmed message is in the queue",
          sorted(confirmed - in_queue)[:10])
    # anything beyond the confirmed ones was in flight when we stopped
    check(len(in_queue - confirmed) <= window, "at most the window unconfirmed",
          len(in_queue - confirmed))
    return res


def test_cancel_on_sigterm_within_drain():
    ex, key, q = m.declare(BROKER, "cancel")
    window, drain_ms = 256, 2000
    run = m.Run(BROKER, ex, key, 5000, "--window", window, "--render-delay-us", 1000,
                "--drain-ms", drain_ms)
    run.wait_event("CONNECTED", timeout=30)
    time.sleep(1.0)
    t0 = time.monotonic()
    os.kill(run.proc.pid, signal.SIGTERM)
    run.proc.wait(timeout=30)
    took = time.monotonic() - t0
    check(took < drain_ms / 1000.0 + 1.0, "stopped within the drain time", took)
    _cancel_common(run, q, window)


def test_cancel_after_confirmed_counts_only_acks():
    ex, key, q = m.declare(BROKER, "cancel2")
    window = 512
    run = m.Run(BROKER, ex, key, 20000, "--window", window, "--cancel-after-confirmed", 3000,
                "--drain-ms", 0)
    res = _cancel_common(run, q, window)
    check(res["stats"]["confirmed"] >= 3000, "stopped after the threshold", res["stats"])


def main():
    global BROKER
    BROKER = m.Broker().start()
    try:
        m.main([test_all_confirmed_in_order, test_window_of_one,
                test_memory_alarm_pauses_then_completes, test_queue_deleted_hook_redeclares,
                test_queue_deleted_without_hook_fails_individually,
                test_nacked_messages_retry_then_fail, test_nacked_messages_recover,
                test_long_alarm_gives_up, test_forced_close_reconnects,
                test_missing_exchange_gives_up, test_own_size_limit,
                test_cancel_on_sigterm_within_drain,
                test_cancel_after_confirmed_counts_only_acks])
    finally:
        BROKER.stop()


if __name__ == "__main__":
    main()
