"""Split benchmark (not a test): generated bundles of 10k, 100k and 1M objects, and one
report with 50,000 object_refs, split by the C splitter (bench/split_bench, one process
per size so each peak RSS is its own); for comparison, in the same run, the Python
reference model of pycti's algorithm (tests/tools/split_model.py: recursive, list-based
like pycti 6.8.10) on the sizes it can handle. pycti itself cannot be installed here
(no PyPI); the model keeps its data structures, so its scaling is pycti's.

usage: run_split_bench.py BUILD_DIR [--quick]
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tools"))
import split_model  # noqa: E402


def c_split(bench, path, repeat):
    out = subprocess.run([bench, path, str(repeat)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def model_split(path):
    """Runs the Python model in a child process; returns (seconds, peak RSS KiB)."""
    code = ("import sys,time,json,resource; sys.path.insert(0,%r); import split_model;"
            "t=open(%r).read(); t0=time.perf_counter(); split_model.split_text(t);"
            "print(json.dumps([time.perf_counter()-t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))"
            % (os.path.join(HERE, "..", "tests", "tools"), path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    quick = "--quick" in sys.argv
    bench = os.path.join(build, "bench", "split_bench")
    gen = os.path.join(HERE, "gen_stix.py")
    sizes = [10_000, 100_000] + ([] if quick else [1_000_000])
    rows = []
    with tempfile.TemporaryDirectory(prefix="ods-bench-") as tmp:
        for n in sizes:
            path = os.path.join(tmp, "b%d.json" % n)
            subprocess.run([sys.executable, gen, str(n), path], check=True)
            r = c_split(bench, path, 5 if n <= 100_000 else 3)
            py = model_split(path) if n <= 100_000 else None
            rows.append((n, r, py))
        rep = os.path.join(tmp, "report50k.json")
        subprocess.run([sys.executable, gen, "50000", rep, "report"], check=True)
        rr = c_split(bench, rep, 15)
        rpy = model_split(rep)

    print("Split benchmark: C splitter vs the Python reference model of pycti's algorithm "
          "(same machine, same run)")
    print("%-9s %9s %9s %10s %12s %10s %9s %12s %8s" % ("objects", "input MB", "split s",
          "render s", "objects/s", "peak MB", "xinput", "python s", "speedup"))
    for n, r, py in rows:
        mb = r["bytes"] / 1e6
        rss = r["peak_rss_kib"] / 1024
        print("%-9d %9.1f %9.3f %10.3f %12.0f %10.1f %9.2f %12s %8s" % (
            r["objects"], mb, r["split_s"], r["render_s"], r["objects"] / r["split_s"], rss,
            rss / (r["bytes"] / 1048576), "%.2f" % py[0] if py else "-",
            "%.0fx" % (py[0] / r["split_s"]) if py else "-"))
    t = {n: r["split_s"] for n, r, _ in rows}
    if 1_000_000 in t:
        print("time ratio 1M/100k: %.2f (linear would be 10; goal <= 11)" % (t[1_000_000] / t[100_000]))
    print("report with 50,000 object_refs: C %.1f ms (goal < 50 ms), Python model %.0f ms (%.0fx)"
          % (rr["split_s"] * 1000, rpy[0] * 1000, rpy[0] / rr["split_s"]))


if __name__ == "__main__":
    main()
