"""The `check` command, secrets, and the plain-text log format.

* test_check_bad_configuration: several bad settings at once (a bad boolean, a non-UUID
  CONNECTOR_ID, a bad duration, out-of-range numbers, bad URLs, a bad log level) make
  `check` exit 78 and name every variable; the token never appears; `run` refuses the same
  configuration with 78 too, before contacting anything; missing required settings are
  all named.
* test_check_good_env_file: `check --env-file` with a good file prints "configuration OK"
  and exits 0; config.example.env is refused for its placeholders, and accepted once real
  environment variables override them (the environment wins over the file).
* test_token_not_exposed_while_running: with the token in an env file and debug level, the
  token appears neither in the log nor in /proc/<pid>/cmdline (nor in its environ); with
  the token in the real environment, it is scrubbed from /proc/<pid>/environ.
* test_plain_text_logging: OPENCTI_JSON_LOGGING=false gives plain text lines
  ("<timestamp> <LEVEL> <message> key=value..."), the harness can wait for messages in
  them, and a run completes without an ERROR line.
"""

import os
import re
import signal
import sys

from daemon_scenarios import (TESTS, Daemon, assert_work_success, check, eq, new_id, run_tests,
                              scenario, temp_dir)

TOKEN = "ods-S3cr3t-T0ken-7f0c2b9e"
BAD = {
    "OPENCTI_URL": "ftp://opencti.example",
    "CONNECTOR_ID": "not-a-uuid",
    "CONNECTOR_RUN_AND_TERMINATE": "maybe",
    "OPENCTI_JSON_LOGGING": "yes please",
    "CONNECTOR_PING_INTERVAL": "soon",
    "CONFIG_INTERVAL": "0",
    "MQ_PORT": "70000",
    "CONNECTOR_LOG_LEVEL": "loud",
    "CONFIG_SECTORS_FILE_URL": "gopher://datasets.example/sectors.json",
    "CONFIG_REMOVE_CREATOR": "2",
    "CONNECTOR_DURATION_PERIOD": "every week",
}
EXAMPLE_ENV = os.path.join(os.path.dirname(TESTS), "config.example.env")


def _check(env, env_file=None, args=("check",)):
    d = Daemon(env, env_file=env_file, args=list(args), name="check")
    d.start()
    try:
        rc = d.wait_exit(20)
    finally:
        d.cleanup()
    return rc, d


def test_check_bad_configuration():
    env = dict(BAD, OPENCTI_TOKEN=TOKEN)
    rc, d = _check(env)
    out = d.output()
    eq(rc, 78, "check exit status")
    for var in BAD:
        check(re.search(r"\b%s\b" % var, out), "%s is named" % var, out)
    m = re.search(r"(\d+) configuration errors", out)
    check(m, "a summary line", out)
    eq(int(m.group(1)), len(BAD), "one error per bad setting")
    check(TOKEN not in out, "the token never appears", out)
    eq(d.stdout_lines, [], "nothing on stdout for a bad configuration")

    # the same in an env file
    rc, d = _check({}, env_file=env)
    eq(rc, 78, "check --env-file exit status")
    for var in BAD:
        check(var in d.output(), "%s is named (env file)" % var, d.output())
    check(TOKEN not in d.output(), "the token never appears (env file)")

    # a file with bad lines: they are reported with the settings' problems, in one go
    with temp_dir() as tmp:
        path = os.path.join(tmp, "bad.env")
        with open(path, "w") as f:
            f.write("this is not a setting\n")
            for k, v in env.items():
                f.write("%s=%s\n" % (k, v))
            f.write("'QUOTED=1\n")
        rc, d = _check({}, env_file=path)
        out = d.output()
        eq(rc, 78, "check --env-file exit status with bad lines")
        check(re.search(r"--env-file: .*line 1: expected KEY=VALUE", out), "the bad line is named", out)
        for var in BAD:
            check(var in out, "%s is named too (file with bad lines)" % var, out)
        m = re.search(r"(\d+) configuration errors", out)
        check(m and int(m.group(1)) == len(BAD) + 2, "bad lines count as errors", out)
        check(TOKEN not in out, "the token never appears (file with bad lines)")
        # a file that cannot be read stops there
        rc, d = _check({}, env_file=os.path.join(tmp, "missing.env"))
        eq(rc, 78, "check --env-file exit status with a missing file")
        check("cannot open" in d.output(), "the file is named as unreadable", d.output())

    # `run` refuses it too, at once
    rc, d = _check(env, args=())
    eq(rc, 78, "run exit status with a bad configuration")
    check(TOKEN not in d.output(), "the token never appears (run)")
    check("CONNECTOR_ID" in d.output(), "run names the problems", d.output())

    # nothing set: every required variable is named
    rc, d = _check({})
    eq(rc, 78, "check exit status with nothing set")
    for var in ("OPENCTI_URL", "OPENCTI_TOKEN", "CONNECTOR_ID"):
        check(var in d.output(), "%s is named as required" % var, d.output())

    # a token with a space is refused without being echoed
    rc, d = _check(dict(env, OPENCTI_TOKEN=TOKEN + " x"))
    eq(rc, 78, "check exit status with a bad token")
    check(TOKEN not in d.output(), "a refused token is not echoed", d.output())


def test_check_good_env_file():
    good = {"OPENCTI_URL": "http://opencti.example:8080/", "OPENCTI_TOKEN": TOKEN,
            "CONNECTOR_ID": new_id(), "CONNECTOR_RUN_AND_TERMINATE": "FALSE",
            "OPENCTI_JSON_LOGGING": "true", "CONNECTOR_PING_INTERVAL": "PT30S",
            "CONFIG_INTERVAL": "7", "CONFIG_REMOVE_CREATOR": "no", "MQ_PORT": "5672",
            "CONNECTOR_LOG_LEVEL": "warning", "CONFIG_GEOGRAPHY_FILE_URL": "false",
            "CONFIG_COMPANIES_FILE_URL": "file:///srv/datasets/companies.json",
            "OPENCTI_CUSTOM_HEADERS": "X-A:1;X-B:2"}
    rc, d = _check({}, env_file=good)
    eq(rc, 0, "check exit status for a good file")
    eq(d.stdout_lines, ["configuration OK"], "stdout")
    check(TOKEN not in d.output(), "the token never appears")

    # the shipped example: refused for its placeholders, accepted once they are overridden
    rc, d = _check({}, env_file=EXAMPLE_ENV)
    eq(rc, 78, "config.example.env as shipped")
    check("OPENCTI_TOKEN" in d.output() and "CONNECTOR_ID" in d.output(), "placeholders named", d.output())
    rc, d = _check({"OPENCTI_TOKEN": TOKEN, "CONNECTOR_ID": new_id()}, env_file=EXAMPLE_ENV)
    eq(rc, 0, "config.example.env with real values from the environment")
    eq(d.stdout_lines, ["configuration OK"], "stdout")


def test_token_not_exposed_while_running():
    with scenario() as s:
        p = s.platform
        env = s.env(CONNECTOR_LOG_LEVEL="debug")
        token = env.pop("OPENCTI_TOKEN")
        d = s.daemon(env=env, env_file={"OPENCTI_TOKEN": token})
        d.wait_for_log(r"^Last_run stored", 60)
        w = s.wait_work_done(0, 60)
        assert_work_success(s, w)
        with open("/proc/%d/cmdline" % d.pid, "rb") as f:
            cmdline = f.read()
        check(token.encode() not in cmdline, "the token is not on the command line", cmdline)
        check(b"--env-file" in cmdline, "the env file is", cmdline)
        with open("/proc/%d/environ" % d.pid, "rb") as f:
            check(token.encode() not in f.read(), "the daemon did not put the token in its environment")
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        check(token not in d.output(), "the token is never logged")

        # with the token in the real environment, the daemon scrubs it from its own
        # environment block (what /proc/<pid>/environ and `ps e` show)
        d2 = s.daemon()
        d2.wait_for_log(r"^Connector registered", 30)
        with open("/proc/%d/environ" % d2.pid, "rb") as f:
            environ = f.read()
        with open("/proc/%d/cmdline" % d2.pid, "rb") as f:
            cmdline = f.read()
        check(b"OPENCTI_TOKEN=" in environ, "the variable is still there", environ[:200])
        check(token.encode() not in environ, "the token is scrubbed from /proc/<pid>/environ")
        check(token.encode() not in cmdline, "nor on the command line")
        d2.signal(signal.SIGTERM)
        eq(d2.wait_exit(15), 0, "exit status")
        check(token not in d2.output(), "the token is never logged")
        p.assert_no_violations()


PLAIN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (DEBUG|INFO|WARNING|ERROR) +\S")


def test_plain_text_logging():
    with scenario() as s:
        d = s.daemon(OPENCTI_JSON_LOGGING="false")
        d.wait_for_log(r"INFO +Connector registered as \"OpenCTI Datasets\" connector_id=%s" % s.cid, 30)
        rec = d.wait_for_log(r"INFO +Dataset geography fetched and split .*\bmessages=539\b", 60)
        check(rec.get("level") is None, "a plain line, not a JSON record", rec)
        d.wait_for_log(r"INFO +Last_run stored, next run in: 7 days", 60)
        w = s.wait_work_done(0, 60)
        assert_work_success(s, w)
        d.wait_for_log(r"INFO +Connector will not run", 15, start=d.mark())
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        d.wait_for_log(r"INFO +Connector stop$", 1)
        for line in d.lines:
            check(PLAIN.match(line), "a plain text log line", line)
            check(not line.startswith("{"), "not JSON", line)
        check(not [x for x in d.lines if PLAIN.match(x).group(1) == "ERROR"], "no ERROR line",
              [x for x in d.lines if " ERROR " in x])
        s.platform.assert_no_violations()


def test_health_command():
    """CONNECTOR_STATUS_FILE and `health`: 0 while the daemon runs, 1 once it stopped."""
    import subprocess
    from daemon_scenarios import daemon_binary, temp_dir
    with temp_dir() as td, scenario() as s:
        path = os.path.join(td, "status.json")

        def health():
            r = subprocess.run([daemon_binary(), "health"], env={"CONNECTOR_STATUS_FILE": path},
                               capture_output=True, text=True, timeout=10)
            return r.returncode, r.stdout.strip()
        d = s.daemon(CONNECTOR_STATUS_FILE=path)
        d.wait_for_log(r"^Last_run stored", 60)
        rc, out = health()
        eq(rc, 0, "health while running (%s)" % out)
        check(out.startswith("healthy"), "health says healthy", out)
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(15), 0, "exit status")
        rc, out = health()
        eq(rc, 1, "health once stopped (%s)" % out)
        rc = subprocess.run([daemon_binary(), "health"], env={}, capture_output=True, timeout=10).returncode
        eq(rc, 1, "health without a status file")


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
