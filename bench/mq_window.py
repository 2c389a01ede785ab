#!/usr/bin/python3
"""Publisher throughput by confirm window, against a private broker (not a ctest test).

Publishes 21,600 persistent messages of about 2.3 KB (the daemon's envelope shape) to a
durable queue with windows 1, 64, 256 and 1024 and prints messages per second, the median
of --repeat runs. Needs a build: pass the driver with --driver or ODS_MQ_DRIVER, default
./build/tests/integration/mq_driver.

    /usr/bin/python3 bench/mq_window.py [--count 21600] [--size 2300] [--repeat 3]
"""

import argparse
import os
import resource
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import mq_helpers as m  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=21600)
    ap.add_argument("--size", type=int, default=2300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--windows", default="1,64,256,1024")
    ap.add_argument("--driver", default=os.environ.get(
        "ODS_MQ_DRIVER", os.path.join(HERE, "..", "build", "tests", "integration", "mq_driver")))
    args = ap.parse_args()
    os.environ["ODS_MQ_DRIVER"] = os.path.abspath(args.driver)

    broker = m.Broker().start()
    try:
        ex, key, q = m.declare(broker, "bench")
        print("%d messages of ~%d bytes, persistent, durable queue, median of %d"
              % (args.count, args.size, args.repeat))
        print("%8s %12s %12s %14s" % ("window", "msg/s", "MB/s", "driver CPU s"))
        for w in [int(x) for x in args.windows.split(",")]:
            rates, cpus = [], []
            for _ in range(args.repeat):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                res = m.run(broker, ex, key, args.count, "--window", w, "--size", args.size,
                            "--give-up-ms", 60000, timeout=600)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                m.check_all_confirmed(res, args.count)
                secs = res["elapsed_ms"] / 1000.0
                rates.append(args.count / secs)
                cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
                broker.ctl("purge_queue", q)
            r = statistics.median(rates)
            print("%8d %12.0f %12.1f %14.2f"
                  % (w, r, r * args.size / 1e6, statistics.median(cpus)), flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
