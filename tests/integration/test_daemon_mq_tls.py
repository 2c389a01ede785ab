"""The real daemon publishing over TLS (AMQPS) to a real broker's TLS listener.

One private broker for the file (tests/harness/broker.py, tls=True, verify_peer=True): its
TLS listener presents a certificate for localhost signed by a CA made for the test and
requires a client certificate signed by the same CA. The platform double and its worker use
the broker's plain port; the daemon is pointed at the TLS port through its settings.

Successful runs are run-and-terminate runs that must exit 0 with all 723 messages consumed
by the double's worker (the reference split, the work complete) and say "TLS on" for each
dataset's connection:
* test_settings_ca_file_client_cert_files: MQ_USE_SSL=true, MQ_HOST, MQ_PORT=<tls port>,
  MQ_USE_SSL_CA, MQ_USE_SSL_CERT and MQ_USE_SSL_KEY as file paths.
* test_inline_pem_and_encrypted_key: CA, certificate and an encrypted key as inline PEM,
  MQ_USE_SSL_PASSPHRASE: no temporary PEM file left in TMPDIR, neither the passphrase nor
  the key in the output.
* test_encrypted_key_file_and_wrong_passphrase: the encrypted key as a file with its
  passphrase; a wrong passphrase fails the run clearly (exit 1, the setting named, nothing
  published, the passphrase never echoed).
* test_registration_hands_out_use_ssl: the platform's config.connection says use_ssl=true
  (and the TLS port): no MQ_USE_SSL/MQ_PORT/MQ_HOST at all; and MQ_USE_SSL=false overrides a
  registration's use_ssl=true (plain AMQP to the plain port).
* test_reject_unauthorized_false: no CA, MQ_USE_SSL_REJECT_UNAUTHORIZED=false, the
  registration's 127.0.0.1 (not a name in the certificate): succeeds, "TLS on (not
  verified)".

Failures (MQ_USE_SSL_REJECT_UNAUTHORIZED defaults to true):
* test_no_ca_fails_and_is_retried: no MQ_USE_SSL_CA (the system store does not know the
  test CA): the daemon keeps running, logs the certificate problem naming MQ_USE_SSL_CA,
  marks the work in error, does not store a last_run and retries the run later (a second
  work, failing the same way); SIGTERM then ends it with 0.
* test_wrong_ca_fails_run_and_terminate: another CA: exit 1 (no crash), the same clear
  error at once (no waiting for MQ_PUBLISH_TIMEOUT), nothing published, work in error.
* test_missing_client_certificate: the broker refuses a client without a certificate: the
  run gives up after MQ_PUBLISH_TIMEOUT with a hint at MQ_USE_SSL_CERT/MQ_USE_SSL_KEY. This
  also shows that the other runs really presented their client certificate.
* test_bad_tls_settings_refused_at_start: a CA path that is neither a file nor PEM, and a
  certificate without its key, are configuration errors (exit 78) naming the setting.
"""

import os
import re
import shutil
import sys
import tempfile
import time

from daemon_scenarios import (COUNTS, TOTAL, Broker, Daemon, assert_no_error_logs,
                              assert_reference_run, assert_work_success, check, eq, fast_env,
                              run_tests, scenario, to_processed)
from harness.broker import make_test_pki

PASS = "test-pass"  # the harness's passphrase for client-enc.key
CONNECTED = r"^Connected to the message broker$"
CONNECT_FAILED = r"^Cannot connect to the message broker; retrying$"
RUN_NOT_COMPLETE = r"^The run did not complete; last_run is not advanced"
RUN_RETRIED = r"^The run did not complete; last_run is not advanced and the run is retried in "
VERIFY_FAILED = r"TLS certificate verify failed for localhost:%d"

_broker = None


def broker():
    """The file's TLS broker (started once, stopped in main)."""
    global _broker
    if _broker is None:
        _broker = Broker(tls=True, verify_peer=True).start()
    return _broker


def pem(name):
    with open(broker().pki[name]) as f:
        return f.read()


def tls_env(**over):
    """The daemon's MQ_* settings for the TLS listener (files), run-and-terminate (None
    removes one)."""
    b = broker()
    env = {"MQ_USE_SSL": "true", "MQ_HOST": "localhost", "MQ_PORT": b.tls_port,
           "MQ_USE_SSL_CA": b.pki["ca"], "MQ_USE_SSL_CERT": b.pki["client_cert"],
           "MQ_USE_SSL_KEY": b.pki["client_key"], "CONNECTOR_RUN_AND_TERMINATE": "true",
           # a broken TLS set-up gives up after 20 s instead of 5 min
           "MQ_PUBLISH_TIMEOUT": "PT20S"}
    env.update(over)
    return env


def broker_detail_rx(host, port, tls):
    """The `broker` attribute of "Connected to the message broker"."""
    return r"^%s:%d vhost /, heartbeat \d+s, TLS %s$" % (re.escape(host), port, re.escape(tls))


def assert_connections(d, host, port, tls):
    """One connection per dataset, each to host:port with the given TLS mode."""
    conns = d.find_logs(CONNECTED)
    eq(len(conns), len(COUNTS), "one broker connection per dataset")
    rx = broker_detail_rx(host, port, tls)
    for r in conns:
        check(re.match(rx, r["attributes"]["broker"]), "connected to %s:%d with TLS %s"
              % (host, port, tls), r["attributes"]["broker"])


def assert_tls_success(s, d, host="localhost", port=None, tls="on"):
    """A run-and-terminate run that published everything over the expected connection."""
    eq(d.wait_exit(120), 0, "run-and-terminate exit status")
    w = s.wait_work_done(0, 60)
    last = assert_work_success(s, w, TOTAL)
    assert_reference_run(s, w["id"])
    eq(s.last_run(), last, "last_run stored")
    eq(len(s.works()), 1, "one work")
    assert_connections(d, host, broker().tls_port if port is None else port, tls)
    assert_no_error_logs(d)
    s.platform.assert_no_violations()


def assert_tls_failure(s, d, reason_rx, work_index=0):
    """The run's first dataset could not be published because of TLS (reason_rx, searched in
    the dataset's log line); the others were not attempted; the work is in error; nothing
    reached the queue; no last_run. Returns the dataset's log record."""
    rec = d.wait_for_log(r"^Dataset sectors: 0/%d messages confirmed: publishing failed: "
                         % COUNTS["sectors"], 60)
    eq(rec["level"], "ERROR", "the failed dataset is an error")
    check(re.search(reason_rx, rec.message), "the dataset's log names the TLS problem",
          rec.message)
    rec_fail = d.wait_for_log(RUN_NOT_COMPLETE, 30)
    eq(rec_fail["level"], "ERROR", "the failed run is an error")
    reason = rec_fail["attributes"]["reason"]
    check(re.search(reason_rx, reason), "the run's failure reason names the TLS problem", reason)
    for name in ("geography", "companies"):
        check(re.search(r"%s: not published: the message broker was unreachable" % name, reason),
              "%s was not attempted after the broker could not be reached" % name, reason)
    works = s.wait_works(work_index + 1, 30)
    w = s.wait_work_done(work_index, 60, complete=False)
    args = to_processed(s, w)
    eq(args["inError"], True, "the work is marked in error")
    check(re.search(reason_rx, args["message"]), "the work's message names the TLS problem",
          args["message"])
    eq(s.messages(works[work_index]["id"]), [], "nothing reached the push queue")
    check(not d.find_logs(CONNECTED), "never connected to the broker")
    return rec


# ---- successes ---------------------------------------------------------------------------------

def test_settings_ca_file_client_cert_files():
    with scenario(broker=broker()) as s:
        d = s.daemon(**tls_env())
        assert_tls_success(s, d)
        # the registration still said plain AMQP on the plain port: the settings won
        eq(s.platform.connection["use_ssl"], False, "the registration handed out use_ssl=false")
        eq(s.platform.connection["port"], broker().port, "... and the plain port")


def test_inline_pem_and_encrypted_key():
    tmp = tempfile.mkdtemp(prefix="ods-tls-tmp-")
    try:
        key = pem("client_key_enc")
        with scenario(broker=broker()) as s:
            d = s.daemon(**tls_env(MQ_USE_SSL_CA=pem("ca"), MQ_USE_SSL_CERT=pem("client_cert"),
                                   MQ_USE_SSL_KEY=key, MQ_USE_SSL_PASSPHRASE=PASS, TMPDIR=tmp))
            assert_tls_success(s, d)
            eq(os.listdir(tmp), [], "no temporary PEM file left behind in TMPDIR")
            out = d.output()
            check(PASS not in out, "the passphrase never appears in the output")
            body = [ln for ln in key.splitlines() if ln and not ln.startswith("-----")]
            check(body and not any(ln in out for ln in body), "no line of the key in the output")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_encrypted_key_file_and_wrong_passphrase():
    with scenario(broker=broker()) as s:
        d = s.daemon(**tls_env(MQ_USE_SSL_KEY=broker().pki["client_key_enc"],
                               MQ_USE_SSL_PASSPHRASE=PASS))
        assert_tls_success(s, d)
    with scenario(broker=broker()) as s:
        d = s.daemon(**tls_env(MQ_USE_SSL_KEY=broker().pki["client_key_enc"],
                               MQ_USE_SSL_PASSPHRASE="wrong-pass"))
        eq(d.wait_exit(60), 1, "a failed run-and-terminate run exits 1")
        assert_tls_failure(s, d, r"cannot load the TLS client certificate and key.*"
                                 r"MQ_USE_SSL_PASSPHRASE")
        check("wrong-pass" not in d.output(), "the wrong passphrase is not echoed")
        eq(s.state(), "null", "no last_run stored")


def test_registration_hands_out_use_ssl():
    b = broker()
    conn = {"use_ssl": True, "host": "localhost", "port": b.tls_port}
    with scenario(broker=b, connection=conn) as s:
        d = s.daemon(**tls_env(MQ_USE_SSL=None, MQ_HOST=None, MQ_PORT=None))
        assert_tls_success(s, d)
    # MQ_USE_SSL=false wins over the registration's use_ssl=true
    with scenario(broker=b, connection=conn) as s:
        d = s.daemon(**tls_env(MQ_USE_SSL="false", MQ_PORT=b.port))
        assert_tls_success(s, d, port=b.port, tls="off")


def test_reject_unauthorized_false():
    with scenario(broker=broker()) as s:
        # the registration's host is 127.0.0.1: neither the CA nor the name can be verified
        d = s.daemon(**tls_env(MQ_USE_SSL_CA=None, MQ_HOST=None,
                               MQ_USE_SSL_REJECT_UNAUTHORIZED="false"))
        assert_tls_success(s, d, host="127.0.0.1", tls="on (not verified)")


# ---- failures ----------------------------------------------------------------------------------

def test_no_ca_fails_and_is_retried():
    with scenario(broker=broker()) as s:
        d = s.daemon(**tls_env(MQ_USE_SSL_CA=None, CONNECTOR_RUN_AND_TERMINATE=None))
        t0 = time.monotonic()
        rec = assert_tls_failure(s, d, (VERIFY_FAILED % broker().tls_port) + r".*MQ_USE_SSL_CA")
        check("MQ_USE_SSL_REJECT_UNAUTHORIZED" in rec.message, "names the way out too",
              rec.message)
        check(time.monotonic() - t0 < 30, "fails at once (a certificate problem is not retried "
              "until MQ_PUBLISH_TIMEOUT)", time.monotonic() - t0)
        d.wait_for_log(RUN_RETRIED, 5)
        # retried: a second run, failing the same way, and the daemon is still there
        mark = d.mark()
        d.wait_for_log(r"^Fetching OpenCTI datasets", 30, start=mark)
        d.wait_for_log(r"^Dataset sectors: 0/%d messages confirmed: publishing failed: TLS "
                       r"certificate verify failed" % COUNTS["sectors"], 30, start=mark)
        w2 = s.wait_work_done(1, 60, complete=False)
        eq(to_processed(s, w2)["inError"], True, "the retried run's work is in error too")
        check(d.running(), "the daemon is still running")
        eq(s.state(), "null", "no last_run stored")
        eq(d.stop(), 0, "exit status after SIGTERM")


def test_wrong_ca_fails_run_and_terminate():
    other = tempfile.mkdtemp(prefix="ods-other-ca-")
    try:
        wrong = make_test_pki(other, client=False)["ca"]
        with scenario(broker=broker()) as s:
            d = s.daemon(**tls_env(MQ_USE_SSL_CA=wrong))
            t0 = time.monotonic()
            eq(d.wait_exit(60), 1, "a failed run-and-terminate run exits 1 (no crash)")
            check(time.monotonic() - t0 < 30, "fails at once", time.monotonic() - t0)
            rec = assert_tls_failure(s, d, (VERIFY_FAILED % broker().tls_port) +
                                     r".*MQ_USE_SSL_CA")
            check("MQ_USE_SSL_REJECT_UNAUTHORIZED" in rec.message, "names the way out too",
                  rec.message)
            eq(s.state(), "null", "no last_run stored")
            d.wait_for_log(r"^Connector stop$", 1)
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_missing_client_certificate():
    with scenario(broker=broker()) as s:
        d = s.daemon(**tls_env(MQ_USE_SSL_CERT=None, MQ_USE_SSL_KEY=None,
                               MQ_PUBLISH_TIMEOUT="PT3S"))
        eq(d.wait_exit(90), 1, "a failed run-and-terminate run exits 1")
        fails = d.find_logs(CONNECT_FAILED)
        check(fails, "connection attempts failed")
        check(all("client certificate" in r["attributes"]["reason"] for r in fails),
              "the failures hint at the client certificate",
              *[r["attributes"]["reason"] for r in fails[:3]])
        assert_tls_failure(s, d, r"client certificate")
        eq(s.state(), "null", "no last_run stored")


def test_bad_tls_settings_refused_at_start():
    bad = [({"MQ_USE_SSL_CA": "/nonexistent/ca.pem"}, "MQ_USE_SSL_CA"),
           ({"MQ_USE_SSL_CERT": broker().pki["client_cert"]}, "MQ_USE_SSL_KEY")]
    for over, name in bad:
        env = fast_env(None, "00000000-0000-4000-8000-000000000000", url="http://127.0.0.1:9",
                       MQ_USE_SSL="true", **over)
        d = Daemon(env).start()
        try:
            eq(d.wait_exit(30), 78, "exit status with %s" % over)
        finally:
            d.stop()
        check(name in d.output(), "%s is named" % name, d.output())


def main():
    try:
        return run_tests(globals())
    finally:
        if _broker is not None:
            _broker.stop()


if __name__ == "__main__":
    sys.exit(main())
