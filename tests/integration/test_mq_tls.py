"""mq_publish() over TLS against a broker that verifies client certificates (verify_peer,
fail_if_no_peer_cert), with the test PKI from tests/harness/broker.py: CA as a file and
inline, client key plain or encrypted (file or inline) with a passphrase, and the clear
errors for a wrong CA, a wrong host name and a wrong passphrase. Inline PEM goes through
private temporary files that must be gone afterwards; no secret may appear in the output."""

import json
import os
import shutil
import tempfile

import mq_helpers as m
from mq_helpers import check

BROKER = None
PASS = "test-pass"  # the harness's passphrase for client-enc.key


def _pem(name):
    with open(BROKER.pki[name]) as f:
        return f.read()


def _run(key_, n, *args, **kw):
    tmp = tempfile.mkdtemp(prefix="ods-mq-tls-")
    try:
        ex, key, q = key_
        res = m.run(BROKER, ex, key, n, "--tls", "--tmp-dir", tmp, "--give-up-ms", 20000,
                    *args, port=BROKER.tls_port, **kw)
        check(os.listdir(tmp) == [], "no temporary PEM file left behind", os.listdir(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(res)
    check(PASS not in text and "wrong-pass" not in text, "no passphrase in the output")
    return res


def _client(enc=False, inline=False):
    cert, key = "client_cert", "client_key_enc" if enc else "client_key"
    if inline:
        return ["--cert", _pem(cert), "--key", _pem(key)]
    return ["--cert", BROKER.pki[cert], "--key", BROKER.pki[key]]


def test_verify_with_ca_file():
    topo = m.declare(BROKER, "tls-cafile")
    res = _run(topo, 20, "--host", "localhost", "--ca", BROKER.pki["ca"], *_client())
    m.check_all_confirmed(res, 20)
    check("TLS on" in res["events"][0]["detail"], "connected with TLS", res["events"][0])
    check(m.drain(BROKER, topo[2], expect=20) == list(range(1, 21)), "all in the queue")


def test_verify_with_inline_ca_and_inline_client_pem():
    topo = m.declare(BROKER, "tls-inline")
    res = _run(topo, 20, "--host", "localhost", "--ca", _pem("ca"), *_client(inline=True))
    m.check_all_confirmed(res, 20)


def test_encrypted_key_file_with_passphrase():
    topo = m.declare(BROKER, "tls-enc")
    res = _run(topo, 20, "--host", "localhost", "--ca", BROKER.pki["ca"],
               *_client(enc=True), "--passphrase", PASS)
    m.check_all_confirmed(res, 20)


def test_encrypted_key_inline_with_passphrase():
    topo = m.declare(BROKER, "tls-enc-inline")
    res = _run(topo, 20, "--host", "localhost", "--ca", _pem("ca"),
               *_client(enc=True, inline=True), "--passphrase", PASS)
    m.check_all_confirmed(res, 20)


def test_wrong_passphrase_is_a_clear_error():
    topo = m.declare(BROKER, "tls-badpass")
    res = _run(topo, 5, "--host", "localhost", "--ca", BROKER.pki["ca"],
               *_client(enc=True, inline=True), "--passphrase", "wrong-pass")
    check(res["rc"] == -12, "E_TLS", res["rc"], res["error"])
    check("MQ_USE_SSL_PASSPHRASE" in res["error"], "names the setting", res["error"])


def test_wrong_ca_is_a_clear_error():
    topo = m.declare(BROKER, "tls-wrongca")
    other = tempfile.mkdtemp(prefix="ods-other-ca-")
    try:
        wrong = m.make_test_pki(other, client=False)["ca"]
        res = _run(topo, 5, "--host", "localhost", "--ca", wrong, *_client())
    finally:
        shutil.rmtree(other, ignore_errors=True)
    check(res["rc"] == -12, "E_TLS", res["rc"], res["error"])
    err = res["error"]
    check("certificate verify failed" in err, "says verify failed", err)
    check("MQ_USE_SSL_CA" in err and "MQ_USE_SSL_REJECT_UNAUTHORIZED" in err,
          "names the settings", err)
    check(res["elapsed_ms"] < 5000, "fails at once, no pointless retries", res["elapsed_ms"])
    check(res["stats"]["pending"] == 5, "nothing sent", res["stats"])


def test_host_name_mismatch_is_a_clear_error():
    topo = m.declare(BROKER, "tls-host")
    # the certificate names localhost (and IP 127.0.0.1, which rabbitmq-c 0.11 ignores)
    res = _run(topo, 5, "--host", "127.0.0.1", "--ca", BROKER.pki["ca"], *_client())
    check(res["rc"] == -12, "E_TLS", res["rc"], res["error"])
    check("host name verification failed" in res["error"], res["error"])


def test_no_verify_connects():
    topo = m.declare(BROKER, "tls-noverify")
    res = _run(topo, 10, "--host", "127.0.0.1", "--no-verify", *_client())
    m.check_all_confirmed(res, 10)
    check("not verified" in res["events"][0]["detail"], "says so", res["events"][0])


def test_missing_client_certificate_retries_then_gives_up():
    topo = m.declare(BROKER, "tls-nocert")
    res = _run(topo, 5, "--host", "localhost", "--ca", BROKER.pki["ca"],
               "--give-up-ms", 2000, "--backoff-initial-ms", 200, "--backoff-max-ms", 500)
    check(res["rc"] == -32, "E_MQ_GIVE_UP", res["rc"], res["error"])
    check("client certificate" in res["error"], "hints at the client certificate",
          res["error"])


def main():
    global BROKER
    BROKER = m.Broker(tls=True, verify_peer=True).start()
    try:
        m.main([test_verify_with_ca_file, test_verify_with_inline_ca_and_inline_client_pem,
                test_encrypted_key_file_with_passphrase,
                test_encrypted_key_inline_with_passphrase,
                test_wrong_passphrase_is_a_clear_error, test_wrong_ca_is_a_clear_error,
                test_host_name_mismatch_is_a_clear_error, test_no_verify_connects,
                test_missing_client_certificate_retries_then_gives_up])
    finally:
        BROKER.stop()


if __name__ == "__main__":
    main()
