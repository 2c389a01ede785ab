"""HTTPS to the platform, CA bundles and HTTP(S) proxies, through the real daemon.

The platform double serves HTTPS (Platform(tls=...)) with a certificate from a CA made for
the test (harness.broker.make_test_pki: valid for 127.0.0.1); a second, unrelated CA is the
"wrong bundle". A tiny forward proxy (ForwardProxy, below) forwards absolute-URI requests
for http:// and tunnels CONNECT for https://, recording each request. Every daemon gets an
explicit environment (no proxy or CA variable leaks from the outer one).

* test_https_default_verify_refuses_test_ca: default OPENCTI_SSL_VERIFY: the handshake is
  refused, the error carries the hint (connector.c tls_hint), the daemon does not register
  and keeps retrying; SIGTERM stops it with 0.
* test_ssl_verify_ca_path: OPENCTI_SSL_VERIFY=<the CA> registers and imports everything
  (run-and-terminate, 723 messages); an unrelated CA there is refused like the default; the
  path wins over SSL_CERT_FILE for the platform.
* test_ca_bundle_env: SSL_CERT_FILE, CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE (each alone, with
  the default verify) verify the platform and the HTTPS dataset URLs; an unrelated CA in
  SSL_CERT_FILE is refused; the first one set wins.
* test_ssl_verify_false: OPENCTI_SSL_VERIFY=false imports from the test-CA platform; the
  downloads are still verified (an HTTPS dataset fails, its error says to set
  SSL_CERT_FILE), as documented (OPENCTI_SSL_VERIFY is about the platform).
* test_http_proxy_upper_case / test_http_proxy_lower_case: HTTP_PROXY / http_proxy routes
  every request to the http:// platform (GraphQL and downloads) through the proxy; the
  HTTPS proxy set at the same time is not used for http://.
* test_no_proxy: NO_PROXY=127.0.0.1 / no_proxy=localhost,127.0.0.1 bypasses the proxy.
* test_https_proxy_connect: HTTPS_PROXY tunnels the https:// platform and downloads with
  CONNECT (also the GraphQL API alone, and URLs spelt HTTPS://); the HTTP proxy set at the
  same time is not used for https://.
* test_proxy_credentials: HTTP_PROXY=http://user:pass@... sends Proxy-Authorization to
  the proxy (which answers 407 without it); the password never appears in the log.
"""

import atexit
import base64
import http.client
import http.server
import os
import re
import select
import shutil
import signal
import socket
import socketserver
import sys
import tempfile
import threading
import urllib.parse

from daemon_scenarios import (COUNTS, DATASETS, REGISTERED, RUN_STORED, TOTAL, URL_VARS,
                              assert_no_error_logs, assert_reference_run, assert_work_success,
                              check, datasets_dir, eq, run_tests, scenario,
                              wait_until)
from harness.broker import free_port, make_test_pki
from fakes.platform import Platform

# connector.c startup() and tls_hint()
TLS_ERROR = r"^Cannot verify the platform's TLS certificate"
NOT_REACHABLE = r"^OpenCTI API is not reachable at "
TLS_HINT = ("certificates are verified by default here, unlike pycti: set OPENCTI_SSL_VERIFY "
            "to the path of the CA bundle that signed the platform's certificate, or to false "
            "to skip verification")
# connector.c fetch_one(): a download refused for its certificate
DOWNLOAD_TLS_HINT = "(set SSL_CERT_FILE to a CA bundle that signs this server)"

PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
              "ALL_PROXY", "all_proxy")
CA_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")

_pki = {}


def pki():
    """{"ca", "server_cert", "server_key", "other_ca"}: the platform's PKI, and the CA of
    another one (which did not sign the platform's certificate). Made once per process."""
    if not _pki:
        root = tempfile.mkdtemp(prefix="ods-tls-proxy-")
        atexit.register(shutil.rmtree, root, True)
        main, other = os.path.join(root, "main"), os.path.join(root, "other")
        os.mkdir(main)
        os.mkdir(other)
        _pki.update(make_test_pki(main, client=False))
        _pki["other_ca"] = make_test_pki(other, client=False)["ca"]
    return _pki


def tls_scenario():
    p = pki()
    return scenario(tls=(p["server_cert"], p["server_key"]))


def file_datasets():
    """The dataset variables as file:// URLs (for runs whose downloads must not use HTTP)."""
    return {URL_VARS[n]: "file://" + os.path.join(os.path.abspath(datasets_dir()), n + ".json")
            for n in DATASETS}


def start(s, **over):
    """A daemon of the scenario with exactly the scenario's environment plus `over`: no
    proxy or CA variable unless given here (the harness passes only PATH, LANG and the
    like through)."""
    d = s.daemon(start=False, **over)
    for k in PROXY_VARS + CA_VARS:
        check(k in over or k not in d.env, "%s does not leak into the daemon's environment" % k,
              d.env.get(k))
    return d.start()


# ---- a forward proxy ------------------------------------------------------------------------

HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authorization",
              "proxy-authenticate", "te", "trailers", "transfer-encoding", "upgrade"}


class _ProxyServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _record(self):
        rec = {"method": self.command, "target": self.path,
               "proxy_authorization": self.headers.get("Proxy-Authorization"),
               "status": None, "bytes_up": 0, "bytes_down": 0}
        proxy = self.server.proxy
        with proxy.lock:
            proxy.requests.append(rec)
        return rec

    def _reply(self, rec, status, body=b"", headers=()):
        rec["status"] = status
        self.send_response_only(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _authorized(self, rec):
        want = self.server.proxy.auth
        if want is None:
            return True
        expected = "Basic " + base64.b64encode(("%s:%s" % want).encode()).decode()
        if rec["proxy_authorization"] == expected:
            return True
        self._reply(rec, 407, b"proxy authentication required\n",
                    [("Proxy-Authenticate", 'Basic realm="ods-test-proxy"')])
        return False

    def do_CONNECT(self):
        rec = self._record()
        if not self._authorized(rec):
            return
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except (OSError, ValueError):
            self._reply(rec, 502, b"cannot connect\n")
            return
        rec["status"] = 200
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        # the client sends nothing before the 200, so rfile holds no buffered bytes here
        client = self.connection
        stop = self.server.proxy.stopping
        try:
            while not stop.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                done = False
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        done = True
                        break
                    if sock is client:
                        upstream.sendall(data)
                        rec["bytes_up"] += len(data)
                    else:
                        client.sendall(data)
                        rec["bytes_down"] += len(data)
                if done:
                    break
        except OSError:
            pass
        finally:
            upstream.close()
        self.close_connection = True

    def _forward(self):
        rec = self._record()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not self._authorized(rec):
            return
        u = urllib.parse.urlsplit(self.path)
        if u.scheme != "http" or not u.hostname:
            self._reply(rec, 400, b"absolute http:// URI expected\n")
            return
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._reply(rec, 501, b"chunked request bodies are not supported\n")
            return
        path = u.path or "/"
        if u.query:
            path += "?" + u.query
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
        try:
            conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    conn.putheader(k, v)
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
            headers = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
        except OSError as e:
            self._reply(rec, 502, ("upstream: %s\n" % e).encode())
            return
        finally:
            conn.close()
        rec["bytes_down"] = len(data)
        self._reply(rec, resp.status, data, headers)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _forward


class ForwardProxy:
    """A forward HTTP proxy on 127.0.0.1: absolute-URI requests for http:// are forwarded
    (the upstream answer read whole, then sent with a Content-Length), CONNECT host:port is
    tunnelled. auth=(user, password) requires that Basic Proxy-Authorization (407
    otherwise). `requests`: one dict per request received (method, target,
    proxy_authorization, status, bytes_up, bytes_down)."""

    def __init__(self, auth=None):
        self.auth = auth
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.proxy = self
        self._thread = None

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, name="proxy",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def seen(self, method=None):
        with self.lock:
            return [r for r in self.requests if method is None or r["method"] == method]


# ---- assertions ------------------------------------------------------------------------------

def first_outcome(d, timeout=30):
    """The first registration outcome of d: the "registered", certificate error or
    "not reachable" record (so that a test expecting another one fails at once)."""
    return d.wait_for_log(lambda r: any(re.search(rx, r.message or "")
                                        for rx in (REGISTERED, TLS_ERROR, NOT_REACHABLE)), timeout)


def assert_complete_run(s, d, timeout=120):
    """A run-and-terminate daemon registered, imported the 723 messages of the reference
    split (the worker completing the work), stored last_run and exited 0 without an error
    line."""
    rec = first_outcome(d)
    check(re.search(REGISTERED, rec.message), "registered", rec.get("raw"))
    eq(d.wait_exit(timeout), 0, "run-and-terminate exit status")
    d.wait_for_log(RUN_STORED, 1)
    assert_no_error_logs(d)
    w = s.wait_work_done(0, 60)
    last = assert_work_success(s, w)
    eq(len(s.messages(w["id"])), TOTAL, "messages imported")
    assert_reference_run(s, w["id"])
    eq(s.last_run(), last, "last_run stored")
    s.platform.assert_no_violations()
    return w


def assert_tls_refused(s, d, what):
    """d fails to register for the platform's certificate with the hint, and keeps
    running; then it is stopped with SIGTERM (exit 0)."""
    rec = first_outcome(d)
    check(re.search(TLS_ERROR, rec.message), "%s: the certificate is refused" % what,
          rec.get("raw"))
    eq(rec.get("level"), "ERROR", "%s: the certificate error is an ERROR line" % what)
    check(TLS_HINT in rec.message, "%s: the error carries the hint" % what, rec.message)
    reason = (rec.get("attributes") or {}).get("reason") or ""
    check(s.platform.graphql_url in reason and "TLS failure" in reason
          and re.search(r"(?i)certificate", reason),
          "%s: the reason names the URL and the certificate problem" % what, reason)
    check(d.running(), "%s: the daemon does not exit on a certificate error" % what)
    eq(d.find_logs(REGISTERED), [], "%s: not registered" % what)
    d.signal(signal.SIGTERM)
    eq(d.wait_exit(20), 0, "%s: SIGTERM while retrying: exit 0" % what)
    return rec


# ---- TLS -------------------------------------------------------------------------------------

def test_https_default_verify_refuses_test_ca():
    with tls_scenario() as s:
        p = s.platform
        check(p.url.startswith("https://127.0.0.1:"), "the double serves HTTPS", p.url)
        d = start(s)
        first = first_outcome(d)
        check(re.search(TLS_ERROR, first.message), "the certificate is refused", first.get("raw"))
        eq(first["attributes"].get("attempt"), 1, "first attempt")
        # still retrying: a second attempt after the 2 s backoff, and the process runs on
        second = wait_until(lambda: d.find_logs(TLS_ERROR)[1:], 30,
                            message="a second registration attempt")[0]
        eq(second["attributes"].get("attempt"), 2, "second attempt")
        check(d.running(), "the daemon keeps running")
        assert_tls_refused(s, d, "default OPENCTI_SSL_VERIFY")
        eq(p.registrations, [], "the platform saw no registration")
        eq(p.graphql_requests(), [], "no GraphQL request got through the handshake")
        check(len(p.tls_failures) >= 2, "the daemon reached the server and refused the "
              "handshake at each attempt", p.tls_failures)
        eq(p.works_for(s.cid), [], "no work")


def test_ssl_verify_ca_path():
    ca, other = pki()["ca"], pki()["other_ca"]
    with tls_scenario() as s:
        # a CA that did not sign the certificate: refused (the path is really used)
        assert_tls_refused(s, start(s, OPENCTI_SSL_VERIFY=other, **file_datasets()),
                           "OPENCTI_SSL_VERIFY=<another CA>")
        # the path wins over SSL_CERT_FILE for the platform
        refused = len(s.platform.tls_failures)
        check(refused >= 1, "the other CA's handshake was refused by the daemon")
        d = start(s, OPENCTI_SSL_VERIFY=ca, SSL_CERT_FILE=other, CONNECTOR_RUN_AND_TERMINATE="true",
                  **file_datasets())
        assert_complete_run(s, d)
        eq(s.platform.dataset_requests(), [], "datasets read from files")
        eq(len(s.platform.tls_failures), refused, "no refused handshake with the right CA")
    with tls_scenario() as s:
        d = start(s, OPENCTI_SSL_VERIFY=ca, CONNECTOR_RUN_AND_TERMINATE="true", **file_datasets())
        assert_complete_run(s, d)
        check(len(s.platform.graphql_requests()) >= 3, "the GraphQL traffic went over HTTPS",
              len(s.platform.graphql_requests()))


def test_ca_bundle_env():
    ca, other = pki()["ca"], pki()["other_ca"]
    for var in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        with tls_scenario() as s:
            p = s.platform
            check(all(s.env()[URL_VARS[n]].startswith(p.url + "/datasets/") for n in DATASETS),
                  "the datasets are https:// URLs of the double")
            d = start(s, CONNECTOR_RUN_AND_TERMINATE="true", **{var: ca})
            assert_complete_run(s, d)
            eq(sorted(r.path for r in p.dataset_requests() if r.status == 200),
               sorted("/datasets/%s.json" % n for n in DATASETS),
               "%s: the HTTPS datasets were downloaded (verified with it)" % var)
            eq(p.tls_failures, [], "%s: no refused handshake" % var)
    with tls_scenario() as s:
        assert_tls_refused(s, start(s, SSL_CERT_FILE=other), "SSL_CERT_FILE=<another CA>")
        # "the first one set": SSL_CERT_FILE before CURL_CA_BUNDLE
        assert_tls_refused(s, start(s, SSL_CERT_FILE=other, CURL_CA_BUNDLE=ca),
                           "SSL_CERT_FILE=<another CA>, CURL_CA_BUNDLE=<the CA>")
        # and the other way round: the platform and the HTTPS downloads verify
        d = start(s, SSL_CERT_FILE=ca, CURL_CA_BUNDLE=other, CONNECTOR_RUN_AND_TERMINATE="true")
        assert_complete_run(s, d)


def test_ssl_verify_false():
    with tls_scenario() as s:
        d = start(s, OPENCTI_SSL_VERIFY="false", CONNECTOR_RUN_AND_TERMINATE="true",
                  **file_datasets())
        assert_complete_run(s, d)
    # the downloads keep being verified: an HTTPS dataset of the same server fails
    with tls_scenario() as s:
        p = s.platform
        over = file_datasets()
        over.pop(URL_VARS["sectors"])
        d = start(s, OPENCTI_SSL_VERIFY="false", CONNECTOR_RUN_AND_TERMINATE="true", **over)
        eq(d.wait_exit(120), 1, "a dataset refused for its certificate: exit 1")
        d.wait_for_log(REGISTERED, 1)
        rec = d.wait_for_log(r"^Dataset sectors cannot be imported$", 1)
        reason = rec["attributes"]["reason"]
        check(DOWNLOAD_TLS_HINT in reason and "TLS failure" in reason,
              "the download error says to set SSL_CERT_FILE", reason)
        w = s.wait_work_done(0, 60)
        eq(w["completed_number"], TOTAL - COUNTS["sectors"], "the other datasets were imported")
        eq(p.dataset_requests(), [], "the sectors download never got through the handshake")
        check(p.tls_failures, "the download's handshake was refused")


# ---- proxies ---------------------------------------------------------------------------------

def _http_proxy_run(var):
    with scenario() as s, ForwardProxy() as proxy, ForwardProxy() as unused:
        p = s.platform
        check(p.url.startswith("http://"), "plain HTTP platform", p.url)
        https_var = "HTTPS_PROXY" if var.isupper() else "https_proxy"
        d = start(s, CONNECTOR_RUN_AND_TERMINATE="true", **{var: proxy.url, https_var: unused.url})
        assert_complete_run(s, d)
        seen = proxy.seen()
        eq(len(seen), len(p.requests), "%s: every request the platform received came through "
           "the proxy" % var)
        for r in seen:
            check(r["target"].startswith(p.url + "/") and r["method"] in ("GET", "POST"),
                  "%s: an absolute-URI request for the platform" % var, r)
        eq(sorted(r["target"] for r in seen if r["method"] == "GET"),
           sorted(p.dataset_url(n + ".json") for n in DATASETS),
           "%s: the three downloads went through the proxy" % var)
        check(len([r for r in seen if r["target"] == p.graphql_url]) >= 3,
              "%s: the GraphQL requests went through the proxy" % var, len(seen))
        eq(proxy.seen("CONNECT"), [], "%s: no CONNECT for http://" % var)
        eq(unused.seen(), [], "%s: the HTTPS proxy is not used for http://" % var)


def test_http_proxy_upper_case():
    _http_proxy_run("HTTP_PROXY")


def test_http_proxy_lower_case():
    _http_proxy_run("http_proxy")


def test_no_proxy():
    for proxy_var, no_var, value in (("HTTP_PROXY", "NO_PROXY", "127.0.0.1"),
                                     ("http_proxy", "no_proxy", "localhost,127.0.0.1")):
        with scenario() as s, ForwardProxy() as proxy:
            d = start(s, CONNECTOR_RUN_AND_TERMINATE="true",
                      **{proxy_var: proxy.url, no_var: value})
            assert_complete_run(s, d)
            check(s.platform.requests, "the platform was used")
            eq(proxy.seen(), [], "%s=%s: the proxy was bypassed" % (no_var, value))


def test_https_proxy_connect():
    ca = pki()["ca"]
    size = sum(os.path.getsize(os.path.join(datasets_dir(), n + ".json")) for n in DATASETS)
    for what in ("https:// platform and downloads", "the GraphQL API alone (file datasets)",
                 "HTTPS:// in upper case"):
        with tls_scenario() as s, ForwardProxy() as proxy, ForwardProxy() as unused:
            p = s.platform
            over = {"SSL_CERT_FILE": ca, "HTTPS_PROXY": proxy.url, "HTTP_PROXY": unused.url}
            downloads = not what.startswith("the GraphQL")
            if not downloads:
                over.update(file_datasets())
            if what.startswith("HTTPS://"):
                over["OPENCTI_URL"] = p.url.replace("https://", "HTTPS://")
                over.update({URL_VARS[n]: p.dataset_url(n + ".json").replace("https://", "HTTPS://")
                             for n in DATASETS})
            d = start(s, CONNECTOR_RUN_AND_TERMINATE="true", **over)
            assert_complete_run(s, d)
            seen = proxy.seen()
            check(seen, "%s: the HTTPS proxy was used" % what)
            for r in seen:
                eq((r["method"], r["target"], r["status"]),
                   ("CONNECT", "127.0.0.1:%d" % p.port, 200), "%s: a CONNECT tunnel to the platform" % what)
            check(sum(r["bytes_up"] for r in seen) > 0, "%s: requests went through the tunnels" % what)
            down = sum(r["bytes_down"] for r in seen)
            if downloads:
                check(down > size, "%s: the downloads came through the tunnels" % what, down, size)
                eq(sorted(r.path for r in p.dataset_requests() if r.status == 200),
                   sorted("/datasets/%s.json" % n for n in DATASETS), "%s: the HTTPS downloads" % what)
            else:
                eq(p.dataset_requests(), [], "%s: no download" % what)
            eq(p.tls_failures, [], "%s: the tunnelled handshakes verified with SSL_CERT_FILE" % what)
            eq(unused.seen(), [], "%s: the HTTP proxy is not used for https://" % what)


def test_proxy_credentials():
    user, password = "ods-user", "Pr0xy-S3cret-9d1c"
    with scenario() as s, ForwardProxy(auth=(user, password)) as proxy:
        p = s.platform
        url = "http://%s:%s@127.0.0.1:%d" % (user, password, proxy.port)
        d = start(s, CONNECTOR_RUN_AND_TERMINATE="true", CONNECTOR_LOG_LEVEL="debug",
                  HTTP_PROXY=url)
        assert_complete_run(s, d)
        seen = proxy.seen()
        eq(len(seen), len(p.requests), "every request came through the proxy")
        expected = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        for r in seen:
            eq((r["proxy_authorization"], r["status"] != 407), (expected, True),
               "%s %s carried the proxy credentials" % (r["method"], r["target"]))
        check(password not in d.output(), "the proxy password is not logged (debug level)")


def test_redirect_takes_the_proxy_of_its_scheme():
    """An http:// dataset URL redirected to https://: the first hop goes through
    HTTP_PROXY, the second through HTTPS_PROXY (curl, left to follow the redirect itself,
    would keep the first hop's proxy)."""
    ca = pki()["ca"]
    with tls_scenario() as s, Platform(None) as plain, ForwardProxy() as hp, \
            ForwardProxy() as sp:
        p = s.platform
        target = p.dataset_url("sectors.json")
        plain.set_dataset("sectors.json", status=302, headers=[("Location", target)])
        over = file_datasets()
        origin = plain.dataset_url("sectors.json")
        over[URL_VARS["sectors"]] = origin
        d = start(s, CONNECTOR_RUN_AND_TERMINATE="true", SSL_CERT_FILE=ca,
                  HTTP_PROXY=hp.url, HTTPS_PROXY=sp.url, **over)
        assert_complete_run(s, d)
        eq([(r["method"], r["target"], r["status"]) for r in hp.seen()],
           [("GET", origin, 302)], "the http:// hop, and only it, went through HTTP_PROXY")
        size = os.path.getsize(os.path.join(datasets_dir(), "sectors.json"))
        tunnels = sp.seen()
        check(all(r["method"] == "CONNECT" for r in tunnels), "HTTPS_PROXY saw tunnels only",
              tunnels)
        check(any(r["bytes_down"] > size for r in tunnels),
              "the redirected https:// download came through HTTPS_PROXY", tunnels, size)
        eq([(r.method, r.path, r.status) for r in p.dataset_requests()],
           [("GET", "/datasets/sectors.json", 200)], "the redirect target served it")


def test_unreachable_proxy_is_named():
    """A proxy that does not answer: the error says the request went through it, without
    the proxy's credentials."""
    password = "Pr0xy-S3cret-unreachable"
    port = free_port()
    with scenario() as s:
        d = start(s, HTTP_PROXY="http://ods:%s@127.0.0.1:%d" % (password, port))
        rec = first_outcome(d)
        check(re.search(NOT_REACHABLE, rec.message), "not reachable", rec.get("raw"))
        reason = (rec.get("attributes") or {}).get("reason") or rec.message
        check("(proxy for http URLs: http://127.0.0.1:%d)" % port in reason,
              "the error names the proxy", reason)
        check(password not in d.output(), "the proxy password is not shown")
        check(d.running(), "the daemon keeps trying")
        d.signal(signal.SIGTERM)
        eq(d.wait_exit(20), 0, "SIGTERM: exit 0")


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
