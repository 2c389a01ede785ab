"""Differential test: the C splitter (`opencti-datasets split`) against the reference
model in tests/tools/split_model.py, on random bundles built to hit every rule (cycles of
every length, re-entrant visits, internal ids, unsupported and missing targets,
duplicates, odd values, escaped strings). The model is itself checked here against the
pycti 6.8.10 reference outputs in tests/data/split before it is trusted."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))

import gen_bundles  # noqa: E402
import split_model  # noqa: E402

BINARY = os.environ.get("ODS_BINARY", "build/opencti-datasets")
DATA = os.environ.get("ODS_TEST_DATA", os.path.join(HERE, "..", "data"))
SEEDS = int(os.environ.get("ODS_DIFF_SEEDS", "400"))


def c_split(text):
    p = subprocess.run([BINARY, "split", "-"], input=text.encode("utf-8"), capture_output=True,
                       timeout=120)
    if p.returncode != 0:
        raise AssertionError("split failed (%d): %s" % (p.returncode, p.stderr.decode()))
    return [json.loads(line) for line in p.stdout.decode("utf-8").splitlines()], p.stderr.decode()


def main():
    # 1. the model reproduces the reference (pycti mode, no deviations)
    for name, src in [("sectors", "datasets/sectors.json"), ("geography", "datasets/geography.json"),
                      ("companies", "datasets/companies.json"), ("mixed-small", "split/mixed-small.json")]:
        text = open(os.path.join(DATA, src), encoding="utf-8").read()
        ref = [json.loads(l) for l in open(os.path.join(DATA, "split", name + ".jsonl"), encoding="utf-8")]
        model, _ = split_model.split_text(text, deviations=False)
        assert model == ref, "the model disagrees with the reference on %s" % name
    # 2. the C splitter equals the model on random bundles
    failures = []
    for seed in range(SEEDS):
        text = gen_bundles.gen(seed, 20 + seed % 60)
        want, incompatible = split_model.split_text(text)
        want = json.loads(json.dumps(want))
        got, summary = c_split(text)
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            failures.append("seed %d: %d bundles vs %d expected, first difference at %d"
                            % (seed, len(got), len(want), first))
        elif "%d expectations, %d incompatible" % (len(want), len(incompatible)) not in summary:
            failures.append("seed %d: summary %r" % (seed, summary.strip()))
    if failures:
        print("\n".join(failures[:20]))
        print("%d of %d random bundles differ" % (len(failures), SEEDS))
        return 1
    print("%d random bundles: identical to the model" % SEEDS)
    # 3. on bundles pycti can split (no input that makes it raise, no documented deviation
    # but "never twice"), ours equals pycti's own algorithm with its later duplicates
    # dropped: same bundles, same content, same order, same incompatible objects
    dups = 0
    for seed in range(SEEDS):
        text = gen_bundles.gen(seed, 20 + seed % 60, pycti_safe=True)
        ref, incompatible = split_model.split_text(text, deviations=False)
        seen, want = set(), []
        for b in ref:
            oid = b["objects"][0]["id"]
            if oid not in seen:
                seen.add(oid)
                want.append(b)
        dups += len(ref) - len(want)
        want = json.loads(json.dumps(want))
        got, summary = c_split(text)
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            failures.append("seed %d (pycti-safe): %d bundles vs pycti's %d without duplicates, first "
                            "difference at %d" % (seed, len(got), len(want), first))
        elif "%d incompatible" % len(set(incompatible)) not in summary:
            failures.append("seed %d (pycti-safe): summary %r, pycti %d incompatible"
                            % (seed, summary.strip(), len(set(incompatible))))
    if failures:
        print("\n".join(failures[:20]))
        print("%d of %d pycti-safe bundles differ from pycti's algorithm" % (len(failures), SEEDS))
        return 1
    print("%d pycti-safe bundles: identical to pycti's algorithm minus its %d duplicate emissions"
          % (SEEDS, dups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
