"""The `split` command as an operator runs it: exit statuses (0, 64, 65, 66), the message
on stderr naming what is wrong, the one-line summary, nothing half-written on stdout for a
bad bundle, and the output of a file, of standard input and of the --max-size cap.
The expected bundles are the pycti 6.8.10 reference outputs in tests/data/split."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from harness.common import check, eq, run_tests  # noqa: E402

BINARY = os.environ.get("ODS_BINARY", "build/opencti-datasets")
DATA = os.environ.get("ODS_TEST_DATA", os.path.join(HERE, "..", "data"))
SECTORS = os.path.join(DATA, "datasets", "sectors.json")


def split(*args, stdin=None):
    p = subprocess.run([BINARY, "split", *args], input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8")


def reference(name):
    with open(os.path.join(DATA, "split", name + ".jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_file_and_stdin():
    want = reference("sectors")
    rc, out, err = split(SECTORS)
    eq(rc, 0, "exit status")
    eq([json.loads(line) for line in out.splitlines()], want, "the reference split, in order")
    eq(err.strip(), "opencti-datasets: split: 121 objects, %d expectations, 0 incompatible"
       % len(want), "the summary on stderr")
    with open(SECTORS, "rb") as f:
        rc2, out2, err2 = split("-", stdin=f.read())
    eq((rc2, out2, err2), (rc, out, err), "standard input gives the same")


def test_usage_and_missing_file():
    rc, out, err = split()
    eq(rc, 64, "no argument: usage error")
    check("needs a file name" in err, "says what is missing", err)
    rc, out, err = split("/nonexistent/bundle.json")
    eq(rc, 66, "missing file")
    check("/nonexistent/bundle.json" in err, "names the file", err)
    eq(out, "", "nothing on stdout")


BAD = [
    (b"this is not json", "not JSON"),
    (b'{"type": "bundle", "id": "bundle--1", "objects": [', "truncated"),
    (b"[1, 2]", "not an object"),
    (b'{"type": "bundle", "id": "bundle--1"}', "no objects"),
    (b'{"type": "bundle", "id": "bundle--1", "objects": {}}', "objects not an array"),
    (b'{"type": "bundle", "objects": [{"type": "identity"}]}', "object without id"),
    (b'{"type": "bundle", "objects": [{"id": "identity--1"}]}', "object without type"),
    (b'{"type": "bundle", "objects": [{"type": "identity", "id": 7}]}', "id not a string"),
    (b'{"type": "bundle", "objects": [{"type": "identity", "id": "identity--1"},'
     b' {"type": "identity", "id": "identity--1"}]}', "duplicate id"),
    (b'{"type": "bundle", "objects": [{"type": "identity", "id": "identity--\xff"}]}',
     "invalid UTF-8"),
    (b'{"type": "bundle", "objects": [{"type": "identity", "id": "identity--\\u0000"}]}',
     "escaped NUL"),
    (b'{"type": "bundle", "objects": [' + b"[" * 100000 + b"]" * 100000 + b"]}", "too deep"),
]


def test_bad_bundles():
    for body, what in BAD:
        rc, out, err = split("-", stdin=body)
        eq(rc, 65, "%s: exit status" % what)
        eq(out, "", "%s: nothing on stdout" % what)
        lines = err.strip().splitlines()
        eq(len(lines), 1, "%s: one line on stderr" % what)
        check(lines[0].startswith("opencti-datasets: split: stdin: "),
              "%s: the message names the input" % what, lines[0])


def test_max_size():
    size = os.path.getsize(SECTORS)
    rc, out, err = split("--max-size", str(size - 1), SECTORS)
    eq(rc, 65, "over --max-size: data error")
    check("--max-size" in err, "says how to raise the cap", err)
    eq(out, "", "nothing on stdout")
    rc, out, err = split("--max-size", str(size), SECTORS)
    eq(rc, 0, "exactly --max-size is accepted")


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
