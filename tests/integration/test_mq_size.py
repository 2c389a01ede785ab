"""Message size limits against a broker configured with a small max_message_size: a body
above the broker's limit makes RabbitMQ close the channel with PRECONDITION_FAILED; the
publisher learns the limit, fails that message alone, reopens the channel and republishes
the rest. A body above our own limit fails without being sent."""

import collections

import mq_helpers as m
from mq_helpers import check

BROKER = None
BROKER_LIMIT = 10000


def test_broker_limit_learned():
    ex, key, q = m.declare(BROKER, "brokerlimit")
    n, window = 300, 64
    # message 50 is above the broker's limit (our own is the 16 MiB default); message 200
    # is too, and must then fail here without costing another channel
    res = m.run(BROKER, ex, key, n, "--window", window, "--big", "50:20000",
                "--big", "200:30000")
    check(res["rc"] == -33, "E_MQ_PARTIAL", res["rc"], res["error"])
    status = res["status"]
    check([i for i, c in enumerate(status) if c != "C"] == [50, 200],
          "only the two big messages failed", [i for i, c in enumerate(status) if c != "C"])
    st = res["stats"]
    check(st["learned_max_message_size"] == BROKER_LIMIT, "limit learned", st)
    ev = res["events"]
    learned = [e for e in ev if e["event"] == "LIMIT_LEARNED"]
    check(len(learned) == 1 and learned[0]["detail"].startswith(str(BROKER_LIMIT)),
          "one LIMIT_LEARNED with the size", learned)
    lost = [e for e in ev if e["event"] == "LOST"]
    check(len(lost) == 1 and "PRECONDITION_FAILED" in lost[0]["detail"],
          "one channel lost, by the broker's refusal", lost)
    check(not any(e["event"] == "CONNECTED" for e in ev[1:]), "same connection throughout")
    failed = {e["i"]: e["detail"] for e in ev if e["event"] == "MSG_FAILED"}
    check(sorted(failed) == [50, 200], "MSG_FAILED for both", failed)
    check("exceeds the limit of %d bytes" % BROKER_LIMIT in failed[50], failed[50])
    counts = collections.Counter(m.drain(BROKER, q, expect=n - 2))
    expected = set(range(1, n + 1)) - {51, 201}
    check(set(counts) == expected, "every other message is in the queue",
          sorted(expected - set(counts))[:10])
    check(sum(c - 1 for c in counts.values()) <= window, "duplicates at most the window")


def test_own_limit_below_broker():
    ex, key, q = m.declare(BROKER, "ownlimit")
    n = 40
    res = m.run(BROKER, ex, key, n, "--max-message-size", 5000, "--big", "7:8000")
    check(res["rc"] == -33, "E_MQ_PARTIAL", res["rc"], res["error"])
    check(res["status"] == "C" * 7 + "F" + "C" * (n - 8), "message 7 alone failed")
    check(res["stats"]["published"] == n - 1, "never sent", res["stats"])
    check(res["stats"]["learned_max_message_size"] == 0, "nothing to learn", res["stats"])
    check(not any(e["event"] == "LOST" for e in res["events"]), "no channel lost")
    check(m.drain(BROKER, q, expect=n - 1) == [s for s in range(1, n + 1) if s != 8],
          "the others, once, in order")


def main():
    global BROKER
    BROKER = m.Broker(max_message_size=BROKER_LIMIT).start()
    try:
        m.main([test_broker_limit_learned, test_own_limit_below_broker])
    finally:
        BROKER.stop()


if __name__ == "__main__":
    main()
