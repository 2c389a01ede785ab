#!/usr/bin/python3
"""Peak resident memory of the daemon for one run, to size MemoryMax= in the systemd unit.

    ODS_BINARY=build/opencti-datasets /usr/bin/python3 contrib/measure-rss.py [N ...]

Without arguments: one run of the three fixture datasets (tests/data/datasets, the official
files). Each N: one run of a generated bundle of N objects (bench/gen_stix.py, ~600 bytes an
object) served as the companies dataset, the other two disabled. The daemon runs against
the platform double and a real RabbitMQ node (tests/harness); the figure is VmHWM from
/proc/<pid>/status once the run's state is stored, and the cgroup-independent RSS of the
process (shared library pages included, as the kernel counts them). Not a test: it prints
one line per run.
"""

import os
import signal
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from harness.common import shared_broker  # noqa: E402
from harness.daemon import Daemon  # noqa: E402
from fakes.platform import Platform  # noqa: E402


def proc_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def one_run(broker, datasets_dir, names, label):
    with Platform(broker, worker=False, datasets_dir=datasets_dir) as p:
        cid = str(uuid.uuid4())
        env = {"OPENCTI_URL": p.url, "OPENCTI_TOKEN": p.token, "CONNECTOR_ID": cid,
               "CONNECTOR_LOG_LEVEL": "info", "CONNECTOR_PING_INTERVAL": "PT5S",
               "CONFIG_MAX_DATASET_SIZE": str(1 << 30), "MQ_PUBLISH_TIMEOUT": "PT30M"}
        for var, name in names.items():
            env[var] = p.dataset_url(name) if name else "false"
        total = sum(os.path.getsize(os.path.join(datasets_dir, n)) for n in names.values() if n)
        d = Daemon(env).start()
        try:
            t0 = time.monotonic()
            d.wait_for_log(r"Last_run stored|The run did not complete", timeout=3600)
            secs = time.monotonic() - t0
            hwm, rss = proc_kb(d.pid, "VmHWM"), proc_kb(d.pid, "VmRSS")
            ok = bool(d.find_logs(r"Last_run stored"))
        finally:
            d.signal(signal.SIGTERM)
            rc = d.wait_exit(60)
            d.cleanup()
        print("%-28s input %8.1f MB  peak RSS %8.1f MB  after run %7.1f MB  %6.1f s  %s rc=%s"
              % (label, total / 1e6, hwm / 1024, rss / 1024, secs, "ok" if ok else "FAILED", rc),
              flush=True)


def main(argv):
    broker = shared_broker()
    fixtures = os.path.join(ROOT, "tests", "data", "datasets")
    one_run(broker, fixtures, {"CONFIG_SECTORS_FILE_URL": "sectors.json",
                               "CONFIG_GEOGRAPHY_FILE_URL": "geography.json",
                               "CONFIG_COMPANIES_FILE_URL": "companies.json"},
            "fixtures (3 datasets)")
    import gen_stix  # bench/gen_stix.py
    for n in [int(a) for a in argv[1:]]:
        with tempfile.TemporaryDirectory(prefix="ods-rss-") as tmp:
            path = os.path.join(tmp, "big.json")
            with open(path, "w") as f:
                gen_stix.generate(n, f)
            one_run(broker, tmp, {"CONFIG_SECTORS_FILE_URL": None,
                                  "CONFIG_GEOGRAPHY_FILE_URL": None,
                                  "CONFIG_COMPANIES_FILE_URL": "big.json"},
                    "generated, %d objects" % n)


if __name__ == "__main__":
    main(sys.argv)
