"""mq_publish() against a broker that is down when the call starts, and one that is
SIGKILLed mid-publish and restarted: the run completes, at-least-once, with duplicates
bounded by the window. One broker node (its data kept across kill/start) for the file."""

import collections
import time

import mq_helpers as m
from mq_helpers import check

BROKER = None
# A restarted node takes 8-15 s here; leave room for a slow machine.
RETRY_ARGS = ["--give-up-ms", 120000, "--backoff-initial-ms", 200, "--backoff-max-ms", 2000]


def test_broker_down_at_start():
    ex, key, q = m.declare(BROKER, "down")
    BROKER.kill()  # the durable topology survives in the node's directory
    n = 500
    run = m.Run(BROKER, ex, key, n, "--window", 64, *RETRY_ARGS)
    try:
        run.wait_event("CONNECT_FAILED", timeout=30)
        time.sleep(3)
        check(run.proc.poll() is None, "still trying while the broker is down")
    finally:
        BROKER.start()
    res = run.result(timeout=180)
    m.check_all_confirmed(res, n)
    names = [e["event"] for e in res["events"]]
    check(names.count("CONNECT_FAILED") >= 2, "retried with backoff", names[:10])
    check(names.index("CONNECTED") > names.index("CONNECT_FAILED"), "connected at last")
    check(m.drain(BROKER, q, expect=n) == list(range(1, n + 1)), "all once, in order")


def test_broker_killed_mid_publish():
    ex, key, q = m.declare(BROKER, "crash")
    n, window = 20000, 256
    run = m.Run(BROKER, ex, key, n, "--window", window, "--render-delay-us", 200,
                *RETRY_ARGS)
    try:
        run.wait_event("CONNECTED", timeout=30)
        time.sleep(1.5)
        check(run.proc.poll() is None, "killed mid-publish, not after it")
        BROKER.kill()
        run.wait_event("LOST", timeout=30)
    finally:
        BROKER.start()
    res = run.result(timeout=240)
    m.check_all_confirmed(res, n)
    st = res["stats"]
    check(st["reconnects"] >= 1, "reconnected", st)
    check(st["republished"] <= window * st["reconnects"], "republished at most the window "
          "per loss", st)
    seqs = m.drain(BROKER, q, expect=n)
    counts = collections.Counter(seqs)
    missing = set(range(1, n + 1)) - set(counts)
    check(not missing, "every message is in the queue", sorted(missing)[:20])
    dups = sum(c - 1 for c in counts.values())
    check(dups <= window, "duplicates at most the window", dups)
    check(set(counts) == set(range(1, n + 1)), "nothing foreign in the queue")


def main():
    global BROKER
    BROKER = m.Broker().start()
    try:
        m.main([test_broker_down_at_start, test_broker_killed_mid_publish])
    finally:
        BROKER.stop()


if __name__ == "__main__":
    main()
