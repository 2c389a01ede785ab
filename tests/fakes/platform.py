"""A double of the OpenCTI platform, for the daemon's integration tests.

It serves the GraphQL API a connector uses (POST /graphql), validated against a model of the
real schema (schema_opencti.py, one profile per platform line) and answered the way OpenCTI
6.x under Apollo Server 4 answers (graphql_server.py; sources in gql.py). It declares the
connector topology on a *real* RabbitMQ broker (tests/harness/broker.py) exactly as the
platform's registerConnectorQueues does, keeps connectors, the reset flag and works like
PROTOCOL.md sections 2-3 describe, and optionally runs a worker that consumes the push
queues like the OpenCTI worker, checking every message strictly. It also serves dataset
files (GET /datasets/<name>) with per-file faults.

Any request the active schema profile would reject is recorded in `violations` (unless the
test set `expect_rejections`), as are malformed queue messages and HTTP requests pycti
would never send; `assert_no_violations()` fails the test on them.

Typical use::

    broker = shared_broker()
    with Platform(broker, worker=True, datasets_dir=data) as platform:
        ... start the daemon with OPENCTI_URL=platform.url, OPENCTI_TOKEN=platform.token ...
        wait_until(lambda: platform.works_for(CONNECTOR_ID), 30)
        platform.assert_no_violations()

Approximations (documented where they are made): connector_queue_details.messages_size is
always 0 (the platform asks the management API, which the test broker does not run); the
errors of operations on unknown works and connectors reproduce the JavaScript TypeError the
6.x code would throw (inferred from work.js, not observed); stixBundlePush is modelled
from PROTOCOL.md 2.7 only.
"""

import base64
import binascii
import datetime
import http.server
import json
import os
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
import uuid

import pika
import pika.exceptions
# pika's connection workflow raises its own exceptions (a handshake timeout, for one),
# outside pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from . import gql, graphql_server, schema_opencti

DEFAULT_TOKEN = "d434ce02-e58e-4cac-8b4c-42bf16748e84"
DEFAULT_USER_ID = "88ec0c6a-13ce-5e39-b486-354fe4a7084f"
DEFAULT_USER_NAME = "admin"
OPENCTI_NAMESPACE = uuid.UUID("b639ff3b-00eb-42ed-aa36-a8dd6f8fb4cf")

# 6.x: a connector is "active" when updated less than 5 minutes ago (repository.js).
ACTIVE_WINDOW_S = 300
# OpenCTI keeps at most 100 errors per work (work.js reportExpectation).
MAX_WORK_ERRORS = 100

BAD_GATEWAY_HTML = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
                    b"</body>\r\n</html>\r\n")


def now_iso(ts=None):
    """UTC timestamp with milliseconds, as JavaScript's Date#toISOString prints it."""
    dt = datetime.datetime.fromtimestamp(time.time() if ts is None else ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def _parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def _reject_constant(name):
    raise ValueError("Unexpected token %s in JSON" % name[0])


def js_json_loads(text):
    """json.loads that, like JSON.parse, refuses NaN and Infinity."""
    return json.loads(text, parse_constant=_reject_constant)


class RecordedRequest:
    """One HTTP request the double received, and what it answered.

    Attributes: index, time (ISO), monotonic, method, path, headers (list of (name, value)
    as received), body (bytes), json (decoded body or None), status, response (decoded JSON
    response or bytes), stage (pipeline stage, see graphql_server.Outcome), operation_name,
    operation_type, root_fields, variables (as sent), errors (error messages)."""

    def __init__(self, index, method, path, headers, body):
        self.index, self.method, self.path = index, method, path
        self.headers, self.body = headers, body
        self.time, self.monotonic = now_iso(), time.monotonic()
        self.json = None
        self.status = None
        self.response = None
        self.stage = None
        self.operation_name = None
        self.operation_type = None
        self.root_fields = []
        self.variables = None
        self.errors = []

    def header(self, name, default=None):
        """The value of a header (case-insensitive name), or default."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def __repr__(self):
        return "<%s #%d %s %s %s %s -> %s>" % (type(self).__name__, self.index, self.method, self.path,
                                               self.operation_name, self.root_fields, self.status)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Threaded HTTP server that can also drop its open keep-alive connections, so that a
    stopped platform really stops answering."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.open_sockets = set()
        self.sockets_lock = threading.Lock()

    def get_request(self):
        sock, addr = super().get_request()
        # http.server writes the headers and the body of a response separately; without
        # TCP_NODELAY, Nagle plus the client's delayed ACK stalls every response ~40 ms
        # (Node, which OpenCTI runs on, sets no-delay on its sockets)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        ctx = getattr(self, "ssl_context", None)
        if ctx is not None:
            # the handshake is made in the request's thread (_Handler.handle), so that a
            # client that fails it, or is slow, does not hold up the accept loop
            sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.sockets_lock:
            self.open_sockets.add(sock)
        return sock, addr

    def shutdown_request(self, request):
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        """Clients that go away (the daemon killed, a dropped connection, a TLS session cut)
        are normal here; anything else is a bug of the double and is printed."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)

    def drop_connections(self):
        with self.sockets_lock:
            socks = list(self.open_sockets)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "opencti-double"
    sys_version = ""

    def log_message(self, fmt, *args):   # keep test output clean; requests are recorded
        pass

    def handle(self):
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.settimeout(10)
                self.connection.do_handshake()
                self.connection.settimeout(None)
            except (ssl.SSLError, OSError) as e:   # a client that does not trust us: normal
                with self.server.platform.lock:
                    self.server.platform.tls_failures.append(
                        {"time": now_iso(), "error": "%s: %s" % (type(e).__name__, e)})
                self.close_connection = True
                return
        super().handle()

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_bytes(self, status, body, content_type="text/plain; charset=utf-8", headers=(),
                   declared_length=None, close=False):
        """Sends a full response; `declared_length` > len(body) fakes a truncated body."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if declared_length is None else declared_length))
        for k, v in headers:
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _dispatch(self):
        body = self._read_body()
        self.server.platform._handle_http(self, body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class Platform:
    """The platform double. See the module docstring.

    broker: a tests/harness/broker.Broker (or None: no topology is declared and the push
      queues are not consumed; useful for GraphQL-only tests).
    token: the API token accepted in `Authorization: Bearer <token>` (settable later).
    schema: schema profile, "6.8", "6.5" or "6.0".
    version: what `about { version }` answers (default per profile, e.g. "6.8.10").
    queue_prefix: the platform's rabbitmq:queue_prefix setting; names get `<prefix>_`.
    connection: overrides of the RabbitMQ connection handed out in config.connection
      (keys host, port, vhost, user, pass, use_ssl); defaults 127.0.0.1, the broker's port,
      "/", guest, guest, false. The double itself always uses the broker's real address.
    worker: run a worker thread consuming the push queues (see _handle_push_message).
    datasets_dir: directory served under GET /datasets/<name>.
    port: TCP port on 127.0.0.1 (0 = pick a free one; a fixed one lets a test start the
      platform after the daemon).
    user_id: the id of the token's user (connector_user_id / applicant_id).
    capabilities: the user's capabilities (default BYPASS, i.e. all).
    queue_type: the x-queue-type argument of the declared queues ("classic").
    strict_message_properties: also flag queue messages whose AMQP properties differ from
      pycti's (delivery_mode 2, content_encoding utf-8).
    tls: None (plain HTTP), or (certfile, keyfile): serve HTTPS with that certificate
      (e.g. harness.broker.make_test_pki's server_cert/server_key, valid for 127.0.0.1);
      `url` and `dataset_url` are then https://. Failed handshakes are recorded in
      `tls_failures` (time, error).

    Settable attributes: `token`; `expect_rejections` (False; True tolerates every schema
    rejection; a list of regexes tolerates the rejections all of whose messages match one).
    stop() then start() again serves on the same port with the state kept (a platform
    restart); stop() also drops open keep-alive connections.
    """

    def __init__(self, broker=None, token=DEFAULT_TOKEN, schema="6.8", version=None,
                 queue_prefix="", connection=None, worker=False, datasets_dir=None, port=0,
                 user_id=DEFAULT_USER_ID, capabilities=("BYPASS",), queue_type="classic",
                 strict_message_properties=True, tls=None):
        self.broker = broker
        self.tls = tuple(tls) if tls else None
        self.profile = schema
        self.schema = schema_opencti.schema_for(schema)
        self.version = version or schema_opencti.DEFAULT_VERSIONS[schema]
        self.prefix = queue_prefix + "_" if queue_prefix else ""
        self.connection = {"host": "127.0.0.1", "vhost": "/", "use_ssl": False,
                           "port": broker.port if broker is not None else 5672,
                           "user": "guest", "pass": "guest"}
        self.connection.update(connection or {})
        self.datasets_dir = datasets_dir
        self.user_id = user_id
        self.capabilities = set(capabilities)
        self.queue_type = queue_type
        self.strict_message_properties = strict_message_properties
        self._port = port
        self._token = token
        self._down = False
        # True, or a list of regexes matching the rejections a compatibility test expects
        self.expect_rejections = False

        self.lock = threading.RLock()
        self.connectors = {}        # id -> record (dict)
        self.works = {}             # id -> Elasticsearch-like work document (dict)
        self.redis = {}             # work id -> {import_expected_number, import_processed_number, ...}
        self.work_events = []       # every work operation, in order
        self.registrations = []     # every registerConnector, in order
        self.pings = []             # every pingConnector, in order
        self.resets = []            # every reset_state
        self.requests = []          # every HTTP request (RecordedRequest)
        self.violations = []        # see assert_no_violations
        self.rejections = []        # every schema rejection, expected or not
        self.messages = []          # every queue message consumed or drained
        self.worker_errors = []     # AMQP errors seen by the worker thread
        self.dataset_overrides = {}
        self.tls_failures = []      # failed TLS handshakes (tls mode)

        self._server = None
        self._thread = None
        self._stopping = threading.Event()
        self._want_worker = worker
        self._worker = None
        self.resolvers = self._make_resolvers()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self):
        """Binds 127.0.0.1:port and serves; starts the worker if asked. Returns self."""
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.platform = self
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            # a client closing without close_notify is a closed connection, not an error
            ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
            self._server.ssl_context = ctx
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="platform-http",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        if self._want_worker and self.broker is not None:
            self._worker = _Worker(self)
            self._worker.start()
        return self

    def stop(self):
        """Stops serving and the worker (state is kept for assertions)."""
        self._stopping.set()
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.drop_connections()
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._port

    @property
    def url(self):
        """The base URL to give the daemon as OPENCTI_URL."""
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self._port)

    @property
    def graphql_url(self):
        return self.url + "/graphql"

    def dataset_url(self, name):
        return "%s/datasets/%s" % (self.url, name)

    # -- control ---------------------------------------------------------------------------
    @property
    def token(self):
        with self.lock:
            return self._token

    @token.setter
    def token(self, value):
        with self.lock:
            self._token = value

    def set_down(self, down=True):
        """While down, /graphql answers 502 Bad Gateway like a reverse proxy would."""
        with self.lock:
            self._down = bool(down)

    def set_dataset(self, name, body=None, status=None, delay=0.0, truncate_at=None, size=None,
                    content_type=None, headers=()):
        """Overrides GET /datasets/<name>.

        body: bytes or str to serve instead of the file; size: serve a valid JSON value of
        exactly `size` bytes (an array padded with spaces); status: HTTP status (the body
        defaults to a short text for non-200); delay: seconds to wait before answering;
        truncate_at: send only that many bytes of the body but announce the full length,
        then close the connection; content_type, headers: response headers."""
        with self.lock:
            self.dataset_overrides[name] = {"body": body, "status": status, "delay": delay,
                                            "truncate_at": truncate_at, "size": size,
                                            "content_type": content_type, "headers": list(headers)}

    def clear_dataset(self, name=None):
        """Removes the override of one dataset, or of all."""
        with self.lock:
            if name is None:
                self.dataset_overrides.clear()
            else:
                self.dataset_overrides.pop(name, None)

    def reset_state(self, connector_id):
        """What the UI's resetStateConnector does (PROTOCOL.md 2.3): state '', reset flag
        set, both queues purged."""
        with self.lock:
            rec = self.connectors[connector_id]
            rec["connector_state"] = ""
            rec["connector_state_reset"] = True
            rec["connector_state_timestamp"] = now_iso()
            self.resets.append({"time": now_iso(), "connector_id": connector_id})
        for q in (self.queue_name("push", connector_id), self.queue_name("listen", connector_id)):
            self._amqp(lambda ch, q=q: ch.queue_purge(q), ignore_missing=True)
        return self.connector(connector_id)

    def delete_connector(self, connector_id):
        """What the UI's deleteConnector does: works, queues and the connector go away."""
        with self.lock:
            for wid in [w for w, doc in self.works.items() if doc["connector_id"] == connector_id]:
                self._delete_work(wid, "deleteConnector")
            existed = self.connectors.pop(connector_id, None) is not None
        for q in (self.queue_name("listen", connector_id), self.queue_name("push", connector_id)):
            self._amqp(lambda ch, q=q: ch.queue_delete(q), ignore_missing=True)
        return existed

    def delete_queue(self, name):
        """Deletes a queue on the broker (e.g. to check that the next ping re-creates it)."""
        self._amqp(lambda ch: ch.queue_delete(name), ignore_missing=True)

    def queue_depth(self, name):
        """Ready messages in a queue, or None when the queue does not exist."""
        try:
            r = self._amqp(lambda ch: ch.queue_declare(name, passive=True))
        except _AmqpMissing:
            return None
        return r.method.message_count

    def assert_no_violations(self):
        """Fails (AssertionError listing them) when anything was recorded in violations."""
        with self.lock:
            found = list(self.violations)
        if found:
            lines = ["%d violation(s) recorded by the platform double:" % len(found)]
            for v in found:
                lines.append("  [%s] %s" % (v["kind"], v["message"]))
                if v.get("request") is not None:
                    req = self.requests[v["request"]]
                    lines.append("      request #%d: %s" % (req.index, _short(req.body)))
            raise AssertionError("\n".join(lines))

    # -- queries for tests -------------------------------------------------------------------
    def queue_name(self, which, connector_id):
        """`push`/`listen` queue name of a connector (with the prefix)."""
        return "%s%s_%s" % (self.prefix, which, connector_id)

    def connector_config(self, connector_id, listen_callback_uri=None):
        """connectorConfig(id): what register returns in `config`."""
        p = self.prefix
        return {"connection": dict(self.connection),
                "listen": "%slisten_%s" % (p, connector_id),
                "listen_routing": "%slisten_routing_%s" % (p, connector_id),
                "listen_exchange": p + "amqp.connector.exchange",
                "listen_callback_uri": listen_callback_uri,
                "push": "%spush_%s" % (p, connector_id),
                "push_routing": "%spush_routing_%s" % (p, connector_id),
                "push_exchange": p + "amqp.worker.exchange",
                "dead_letter_routing": p + "listen_routing_too-large-bundle"}

    def connector(self, connector_id):
        """A copy of the stored connector record, or None."""
        with self.lock:
            rec = self.connectors.get(connector_id)
            return json.loads(json.dumps(rec)) if rec is not None else None

    def work(self, work_id):
        """A copy of a work document with its Redis counters under "redis", or None."""
        with self.lock:
            doc = self.works.get(work_id)
            if doc is None:
                return None
            out = json.loads(json.dumps(doc))
            out["redis"] = dict(self.redis[work_id]) if work_id in self.redis else None
            return out

    def works_for(self, connector_id):
        """Copies of the works of a connector, oldest first."""
        with self.lock:
            ids = [w for w, d in self.works.items() if d["connector_id"] == connector_id]
        return [self.work(w) for w in ids]

    def graphql_requests(self, field=None):
        """Recorded /graphql requests, optionally only those selecting root field `field`."""
        with self.lock:
            reqs = [r for r in self.requests if r.path == "/graphql"]
        return [r for r in reqs if field is None or field in r.root_fields]

    def dataset_requests(self, name=None):
        with self.lock:
            reqs = [r for r in self.requests if r.path.startswith("/datasets/")]
        return [r for r in reqs if name is None or r.path == "/datasets/" + name]

    def messages_for(self, connector_id):
        with self.lock:
            return [m for m in self.messages if m["connector_id"] == connector_id]

    # -- violations ----------------------------------------------------------------------------
    def _violation(self, kind, message, request=None, detail=None):
        with self.lock:
            self.violations.append({"kind": kind, "message": message,
                                    "request": request.index if request is not None else None,
                                    "detail": detail, "time": now_iso()})

    # -- HTTP ----------------------------------------------------------------------------------
    def _handle_http(self, handler, body):
        path = handler.path.split("?", 1)[0]
        with self.lock:
            req = RecordedRequest(len(self.requests), handler.command, path,
                                  list(handler.headers.items()), body)
            self.requests.append(req)
        try:
            if path == "/graphql" and handler.command == "POST":
                self._handle_graphql(handler, req)
            elif path.startswith("/datasets/") and handler.command in ("GET", "HEAD"):
                self._handle_dataset(handler, req, path[len("/datasets/"):])
            else:
                req.status = 404
                handler.send_bytes(404, b"Not Found\n")
        except (ConnectionError, TimeoutError):
            raise
        except Exception as e:          # a bug of the double: make it loud, answer anyway
            self._violation("double", "the platform double failed on this request: %r" % (e,), req,
                            detail=traceback.format_exc())
            req.status = 500
            handler.send_bytes(500, b"platform double internal error\n", close=True)

    def _handle_graphql(self, handler, req):
        with self.lock:
            down, token = self._down, self._token
        if down:
            req.status = 502
            handler.send_bytes(502, BAD_GATEWAY_HTML, "text/html")
            return
        ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._violation("http", "POST /graphql without Content-Type: application/json (got %r)"
                            % req.header("Content-Type"), req)
            return self._answer(handler, req, graphql_server.bad_request(
                "POST body missing, invalid Content-Type, or JSON object has no keys."))
        try:
            req.json = js_json_loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            self._violation("http", "request body is not JSON: %s" % e, req)
            req.status = 400
            handler.send_bytes(400, b"Bad Request", "text/html; charset=utf-8")
            return
        if isinstance(req.json, dict):
            req.variables = req.json.get("variables")
            keys = sorted(req.json)
            if keys != ["query", "variables"]:
                self._violation("protocol", "request body keys are %s, pycti sends exactly "
                                "['query', 'variables']" % keys, req)
        auth = req.header("Authorization") or ""
        user = None
        if token and auth == "Bearer " + token:
            user = {"id": self.user_id, "name": DEFAULT_USER_NAME,
                    "capabilities": graphql_server.expand_capabilities(self.capabilities)}
        outcome = graphql_server.handle(self.schema, req.json, self.resolvers, user,
                                        context={"request": req, "user": user})
        if outcome.stage == "http":
            self._violation("http", "; ".join(outcome.messages), req)
        if outcome.rejected:
            with self.lock:
                self.rejections.append({"request": req.index, "stage": outcome.stage,
                                        "messages": outcome.messages})
            if not self._rejection_expected(outcome.messages):
                self._violation("schema", "schema %s rejects the request (%s): %s"
                                % (self.profile, outcome.stage, " | ".join(outcome.messages)), req)
        self._answer(handler, req, outcome)

    def _rejection_expected(self, messages):
        """expect_rejections: False (none), True (all), or a list of regular expressions of
        which one must match each rejection message."""
        expected = self.expect_rejections
        if expected is True or expected is False or expected is None:
            return bool(expected)
        return all(any(re.search(rx, m) for rx in expected) for m in messages)

    def _answer(self, handler, req, outcome):
        req.status = outcome.status
        req.response = outcome.body
        req.stage = outcome.stage
        req.operation_name = outcome.operation_name
        req.operation_type = outcome.operation_type
        req.root_fields = outcome.root_fields
        req.errors = outcome.messages
        data = gql.js_json(outcome.body).encode("utf-8")     # JSON.stringify: compact, UTF-8
        handler.send_bytes(outcome.status, data, "application/json; charset=utf-8")

    def _handle_dataset(self, handler, req, name):
        with self.lock:
            ov = dict(self.dataset_overrides.get(name) or {})
        if ov.get("delay"):
            self._stopping.wait(ov["delay"])
        status = ov.get("status") or 200
        body = ov.get("body")
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body is None and ov.get("size") is not None:
            n = ov["size"]
            body = (b"[" + b" " * (n - 2) + b"]") if n >= 2 else b"0" * n
        if body is None and status == 200:
            path = os.path.join(self.datasets_dir, name) if self.datasets_dir else None
            if path is None or "/" in name or not os.path.isfile(path):
                status, body = 404, b"404: Not Found"
            else:
                with open(path, "rb") as f:
                    body = f.read()
        if body is None:
            body = ("%d: %s" % (status, http.server.BaseHTTPRequestHandler.responses.get(
                status, ("Error",))[0])).encode()
        ctype = ov.get("content_type") or ("text/plain; charset=utf-8" if status != 200
                                           else "application/json; charset=utf-8")
        req.status = status
        truncate = ov.get("truncate_at")
        if truncate is not None and truncate < len(body):
            handler.send_bytes(status, body[:truncate], ctype, ov.get("headers", ()),
                               declared_length=len(body), close=True)
        else:
            handler.send_bytes(status, body, ctype, ov.get("headers", ()))

    # -- AMQP (the platform's own connection, like amqpExecute: one per operation) ----------
    def _amqp_params(self):
        return pika.ConnectionParameters(
            host="127.0.0.1", port=self.broker.port, virtual_host="/",
            credentials=pika.PlainCredentials("guest", "guest"),
            connection_attempts=1, socket_timeout=5, blocked_connection_timeout=10)

    def _amqp(self, fn, ignore_missing=False):
        """Runs fn(channel) on a fresh connection. Raises _AmqpMissing on 404 unless
        ignore_missing, ResolverError (amqplib-style text) on other failures."""
        if self.broker is None:
            return None
        try:
            conn = pika.BlockingConnection(self._amqp_params())
        except (pika.exceptions.AMQPError, AMQPConnectorException, OSError):
            raise gql.ResolverError("connect ECONNREFUSED 127.0.0.1:%d" % self.broker.port)
        try:
            ch = conn.channel()
            return fn(ch)
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code == 404:
                if ignore_missing:
                    return None
                raise _AmqpMissing(e.reply_text)
            raise gql.ResolverError('Operation failed; %d (%s) with message "%s"'
                                    % (e.reply_code, e.reply_text.split(" - ")[0], e.reply_text))
        except (pika.exceptions.AMQPError, OSError) as e:
            raise gql.ResolverError("AMQP error: %r" % (e,))
        finally:
            try:
                conn.close()
            except Exception:
                pass

    def _declare_topology(self, connector_id, name, ctype, scope):
        """registerConnectorQueues (PROTOCOL.md 3.1)."""
        p = self.prefix
        args = {"name": name, "config": {"id": connector_id, "type": ctype, "scope": scope},
                "x-queue-type": self.queue_type}

        def declare(ch):
            for ex in (p + "amqp.connector.exchange", p + "amqp.worker.exchange"):
                ch.exchange_declare(ex, exchange_type="direct", durable=True)
            for which, ex, routing in (("listen", p + "amqp.connector.exchange", "listen_routing_"),
                                       ("push", p + "amqp.worker.exchange", "push_routing_")):
                q = "%s%s_%s" % (p, which, connector_id)
                ch.queue_declare(q, durable=True, exclusive=False, auto_delete=False, arguments=args)
                ch.queue_bind(q, ex, routing_key=p + routing + connector_id)
        self._amqp(declare)

    def _queue_details(self, connector_id):
        try:
            depth = self.queue_depth(self.queue_name("push", connector_id))
        except gql.ResolverError:
            depth = None
        return {"messages_number": float(depth or 0), "messages_size": 0.0}

    # -- GraphQL resolvers -----------------------------------------------------------------------
    def _make_resolvers(self):
        r = {
            "Query.about": self._about,
            "Query.connector": lambda p, a, i: self._connector_view(a["id"]),
            "Query.connectors": lambda p, a, i: self._all_connector_views(),
            "Query.connectorsForWorker": lambda p, a, i: self._all_connector_views(),
            "Query.work": lambda p, a, i: self._work_view(a["id"]),
            "Query.isWorkAlive": lambda p, a, i: self._is_work_alive(a["id"]),
            "Mutation.registerConnector": self._register,
            "Mutation.pingConnector": self._ping,
            "Mutation.resetStateConnector": lambda p, a, i: self._reset_mutation(a["id"]),
            "Mutation.deleteConnector": lambda p, a, i: (self.delete_connector(a["id"]), a["id"])[1],
            "Mutation.workAdd": self._work_add,
            "Mutation.workEdit": lambda p, a, i: {"_work_id": a["id"]},
            "Mutation.workDelete": self._work_delete,
            "Mutation.stixBundlePush": self._stix_bundle_push,
        }
        for name in ("delete", "ping", "reportExpectation", "addExpectations", "addDraftContext",
                     "toReceived", "toProcessed"):
            r["WorkEditMutations." + name] = (lambda n: lambda p, a, i: self._work_edit(n, p["_work_id"], a))(name)
        return r

    def _about(self, parent, args, info):
        return {"version": self.version,
                "memory": {"rss": 1.0e8, "heapTotal": 5.0e7, "heapUsed": 4.0e7},
                "dependencies": [{"name": "Search engine", "version": "8.19.0"},
                                 {"name": "RabbitMQ", "version": "3.10.8"},
                                 {"name": "Redis", "version": "7.4.0"}],
                "debugStats": None}

    def _user_view(self, user_id):
        return {"id": user_id, "standard_id": "user--" + str(uuid.uuid5(OPENCTI_NAMESPACE, user_id)),
                "entity_type": "User", "parent_types": ["Basic-Object", "Internal-Object"],
                "user_email": "admin@opencti.io", "name": DEFAULT_USER_NAME,
                "representative": {"main": DEFAULT_USER_NAME, "secondary": None},
                "created_at": now_iso(0), "updated_at": now_iso(0)}

    def _connector_view(self, connector_id):
        with self.lock:
            rec = self.connectors.get(connector_id)
            if rec is None:
                return None
            rec = dict(rec)
        cid = rec["id"]
        active = (time.time() - _parse_iso(rec["updated_at"])) < ACTIVE_WINDOW_S
        scope = rec["connector_scope"].split(",") if rec["connector_scope"] else []
        view = dict(rec)
        view.update({
            "standard_id": "connector--" + str(uuid.uuid5(OPENCTI_NAMESPACE, cid)),
            "entity_type": "Connector", "parent_types": ["Basic-Object", "Internal-Object"],
            "metrics": None, "title": rec["name"], "active": active,
            "connector_scope": scope, "connector_schema": None, "connector_schema_ui": None,
            "connector_trigger_filters": None,
            "connector_user": (lambda a, i, u=rec["connector_user_id"]: self._user_view(u) if u else None),
            "connector_queue_details": lambda a, i: self._queue_details(cid),
            "refreshed_at": rec["updated_at"],
            "config": self.connector_config(cid, rec.get("listen_callback_uri")),
            "works": lambda a, i: [self._work_view(w["id"]) for w in self.works_for(cid)
                                   if a.get("status") in (None, w["status"])],
            "is_managed": False, "manager_current_status": None, "manager_requested_status": None,
            "manager_contract_image": None, "manager_contract_definition": None,
            "manager_contract_excerpt": None, "manager_contract_configuration": None,
            "manager_connector_logs": None, "manager_contract_hash": None,
            "manager_health_metrics": None, "manager_connector_uptime": None,
            "configurations": None,
        })
        return view

    def _all_connector_views(self):
        with self.lock:
            ids = list(self.connectors)
        return [v for v in (self._connector_view(c) for c in ids) if v is not None]

    def _register(self, parent, args, info):
        inp = args.get("input")
        if inp is None:
            raise gql.ResolverError("Cannot read properties of %s (reading 'id')"
                                    % ("null" if "input" in args else "undefined"))
        cid = inp["id"]
        user = info.context["user"]
        scope = inp.get("scope")
        self._declare_topology(cid, inp["name"], inp["type"], scope)
        now = now_iso()
        patch = {"name": inp["name"], "connector_type": inp["type"],
                 "connector_scope": ",".join(scope) if scope else None,
                 "auto": inp.get("auto"), "auto_update": inp.get("auto_update"),
                 "enrichment_resolution": inp.get("enrichment_resolution"),
                 "only_contextual": inp.get("only_contextual"),
                 "playbook_compatible": inp.get("playbook_compatible"),
                 "listen_callback_uri": inp.get("listen_callback_uri"),
                 "connector_user_id": user["id"], "built_in": False, "updated_at": now}
        with self.lock:
            rec = self.connectors.get(cid)
            created = rec is None
            if created:
                rec = {"id": cid, "internal_id": cid, "connector_state": None,
                       "connector_state_reset": False, "connector_state_timestamp": now,
                       "connector_info": None, "connector_priority_group": "DEFAULT",
                       "created_at": now}
                self.connectors[cid] = rec
            rec.update(patch)
            self.registrations.append({"time": now, "connector_id": cid, "created": created,
                                       "input": json.loads(json.dumps(inp)),
                                       "request": info.context["request"].index})
        return self._connector_view(cid)

    def _reset_mutation(self, connector_id):
        if self.connector(connector_id) is None:
            raise gql.ResolverError("Cannot read properties of undefined (reading 'name')")
        self.reset_state(connector_id)
        return self._connector_view(connector_id)

    def _ping(self, parent, args, info):
        cid = args["id"]
        with self.lock:
            rec = self.connectors.get(cid)
            if rec is None:
                raise gql.ResolverError("No connector found with the specified ID", "FUNCTIONAL_ERROR",
                                        {"http_status": 400, "genre": "BUSINESS", "id": cid})
            name, ctype, scope = rec["name"], rec["connector_type"], rec["connector_scope"]
        self._declare_topology(cid, name, ctype, scope.split(",") if scope else [])
        state = args.get("state")
        conn_info = args.get("connectorInfo")
        with self.lock:
            rec = self.connectors.get(cid)
            if rec is None:
                raise gql.ResolverError("No connector found with the specified ID", "FUNCTIONAL_ERROR",
                                        {"http_status": 400, "genre": "BUSINESS", "id": cid})
            was_reset = bool(rec["connector_state_reset"])
            if was_reset:
                rec["connector_state_reset"] = False
            else:
                rec["connector_state"] = state
                rec["updated_at"] = now_iso()
            if conn_info:
                rec["connector_info"] = {k: conn_info.get(k) for k in (
                    "run_and_terminate", "buffering", "queue_threshold", "queue_messages_size",
                    "next_run_datetime", "last_run_datetime")}
            self.pings.append({"time": now_iso(), "connector_id": cid, "state": state,
                               "connector_info": conn_info, "discarded": was_reset,
                               "stored_state": rec["connector_state"],
                               "request": info.context["request"].index})
        return self._connector_view(cid)

    # -- works ------------------------------------------------------------------------------------
    def _work_event(self, work_id, event, args, ok=True, error=None):
        with self.lock:
            doc = self.works.get(work_id)
            self.work_events.append({
                "time": now_iso(), "work_id": work_id, "event": event, "args": args, "ok": ok,
                "error": error,
                "status": doc["status"] if doc else None,
                "expected": doc["import_expected_number"] if doc else None,
                "redis": dict(self.redis[work_id]) if work_id in self.redis else None})

    def _fail(self, work_id, event, args, message):
        self._work_event(work_id, event, args, ok=False, error=message)
        raise gql.ResolverError(message)

    def _work_view(self, work_id):
        with self.lock:
            doc = self.works.get(work_id)
            if doc is None:
                return None
            doc = json.loads(json.dumps(doc))
            counters = dict(self.redis[work_id]) if work_id in self.redis else None
        if doc["status"] == "complete":
            tracking = {"import_processed_number": doc["completed_number"],
                        "import_expected_number": doc["import_expected_number"]}
        elif counters is not None:
            tracking = dict(counters)
        else:
            tracking = {"import_processed_number": None, "import_expected_number": None}
        tracking.setdefault("import_last_processed", None)

        def messages(items):
            return [{"timestamp": m.get("timestamp"), "message": m.get("message"),
                     "sequence": None, "source": m.get("source")} for m in items]
        view = dict(doc)
        view.update({"user": self._user_view(doc["user_id"]),
                     "connector": lambda a, i, c=doc["connector_id"]: self._connector_view(c),
                     "messages": messages(doc["messages"]), "errors": messages(doc["errors"]),
                     "tracking": tracking})
        return view

    def _is_work_alive(self, work_id):
        with self.lock:
            return work_id in self.works

    def _new_work(self, connector_id, friendly_name, user_id, received=True):
        with self.lock:
            ts = time.time()
            while True:
                timestamp = now_iso(ts)
                work_id = "work_%s_%s" % (connector_id, timestamp)
                if work_id not in self.works:
                    break
                ts += 0.001          # two works in the same millisecond: keep ids unique
            now = now_iso()
            self.works[work_id] = {
                "id": work_id, "internal_id": work_id, "timestamp": timestamp, "updated_at": now,
                "name": friendly_name, "entity_type": "Work", "event_type": "EXTERNAL_IMPORT",
                "event_source_id": connector_id, "user_id": user_id, "connector_id": connector_id,
                "status": "progress" if received else "wait", "import_expected_number": 0,
                "received_time": now if received else None, "processed_time": None,
                "completed_time": None, "completed_number": 0, "messages": [], "errors": [],
                "draft_context": None}
        self._work_event(work_id, "workAdd", {"connectorId": connector_id, "friendlyName": friendly_name})
        return work_id

    def _work_add(self, parent, args, info):
        cid = args["connectorId"]
        with self.lock:
            rec = self.connectors.get(cid)
        if rec is None:
            # createWork dereferences the missing connector (generateWorkId(connector.internal_id))
            raise gql.ResolverError("Cannot read properties of undefined (reading 'internal_id')")
        return self._work_view(self._new_work(cid, args.get("friendlyName"), info.context["user"]["id"]))

    def _work_delete(self, parent, args, info):
        cid = args["connectorId"]
        with self.lock:
            if cid not in self.connectors:
                raise gql.ResolverError("Already deleted elements", "ALREADY_DELETED_ERROR",
                                        {"http_status": 400, "genre": "BUSINESS", "connectorId": cid})
            for wid in [w for w, d in self.works.items() if d["connector_id"] == cid]:
                self._delete_work(wid, "workDelete")
        return True

    def _delete_work(self, work_id, event):
        with self.lock:
            self.works.pop(work_id, None)
            self.redis.pop(work_id, None)
        self._work_event(work_id, event, {})

    def _work_edit(self, name, work_id, args):
        """The WorkEditMutations members (PF domain/work.js, 6.x)."""
        with self.lock:
            doc = self.works.get(work_id)
            now = now_iso()
            if name == "delete":
                if doc is not None:
                    self._delete_work(work_id, "delete")
                else:
                    self._work_event(work_id, "delete", {}, ok=True, error="no such work")
                return work_id
            if name == "reportExpectation":
                return self.report_expectation(work_id, args.get("error"))
            if doc is None:
                field = "import_expected_number" if name == "toProcessed" else "_index"
                self._fail(work_id, name, args, "Cannot read properties of undefined (reading '%s')" % field)
            if name == "ping":
                doc["updated_at"] = now
            elif name == "addExpectations":
                n = args.get("expectations") or 0
                doc["updated_at"] = now
                doc["import_expected_number"] += n
                counters = self.redis.setdefault(work_id, {"import_expected_number": 0,
                                                           "import_processed_number": 0,
                                                           "import_last_processed": None})
                counters["import_expected_number"] += n
            elif name == "addDraftContext":
                doc["draft_context"] = args.get("draftContext")
            elif name == "toReceived":
                doc["status"] = "progress"
                doc["received_time"] = now
                if args.get("message"):
                    doc["messages"].append({"timestamp": now, "message": args["message"]})
            elif name == "toProcessed":
                doc["processed_time"] = now
                counters = self.redis.get(work_id)
                complete = counters is not None and \
                    counters["import_processed_number"] == counters["import_expected_number"]
                if doc["import_expected_number"] == 0 or complete:
                    doc["status"] = "complete"
                    doc["completed_number"] = counters["import_processed_number"] if counters else 0
                    doc["completed_time"] = now
                if args.get("message"):
                    target = "errors" if args.get("inError") else "messages"
                    doc[target].append({"timestamp": now, "message": args["message"]})
                if complete:
                    self.redis.pop(work_id, None)
            self._work_event(work_id, name, args)
            return work_id

    def report_expectation(self, work_id, error=None):
        """reportExpectation as the worker calls it: Redis processed += 1; complete when
        processed == expected; an error is appended (at most 100 kept)."""
        with self.lock:
            doc = self.works.get(work_id)
            counters = self.redis.get(work_id)
            complete = False
            if counters is not None:
                counters["import_processed_number"] += 1
                counters["import_last_processed"] = now_iso()
                complete = counters["import_processed_number"] == counters["import_expected_number"]
            if complete or error:
                if doc is None:
                    self._fail(work_id, "reportExpectation", {"error": error},
                               "Cannot read properties of undefined (reading '_index')")
                now = now_iso()
                if complete:
                    doc["status"] = "complete"
                    doc["completed_number"] = counters["import_processed_number"]
                    doc["completed_time"] = now
                if error and len(doc["errors"]) < MAX_WORK_ERRORS:
                    doc["errors"].append({"timestamp": now, "message": error.get("error"),
                                          "source": error.get("source")})
            self._work_event(work_id, "reportExpectation", {"error": error})
            return work_id

    # -- stixBundlePush (queue protocol "api", PROTOCOL.md 2.7) -----------------------------------
    def _stix_bundle_push(self, parent, args, info):
        cid = args["connectorId"]
        with self.lock:
            rec = self.connectors.get(cid)
        if rec is None:
            raise gql.ResolverError("Cannot read properties of undefined (reading 'internal_id')")
        try:
            bundle = json.loads(args["bundle"])
        except ValueError:
            raise gql.ResolverError("Invalid bundle", "FUNCTIONAL_ERROR",
                                    {"http_status": 400, "genre": "BUSINESS"})
        if not isinstance(bundle, dict) or bundle.get("type") != "bundle" or not bundle.get("objects"):
            raise gql.ResolverError("Invalid bundle", "FUNCTIONAL_ERROR",
                                    {"http_status": 400, "genre": "BUSINESS"})
        work_id = args.get("work_id")
        if not work_id:
            work_id = self._new_work(cid, "%s run @ %s" % (rec["name"], now_iso()), info.context["user"]["id"])
            if len(bundle["objects"]) == 1:
                self._work_edit("addExpectations", work_id, {"expectations": 1})
        message = {"type": "bundle", "applicant_id": info.context["user"]["id"],
                   "content": base64.b64encode(args["bundle"].encode("utf-8")).decode(),
                   "work_id": work_id, "update": True}
        cfg = self.connector_config(cid)
        self._amqp(lambda ch: ch.basic_publish(cfg["push_exchange"], cfg["push_routing"],
                                               json.dumps(message).encode(),
                                               pika.BasicProperties(delivery_mode=2)))
        return True

    # -- the worker side -------------------------------------------------------------------------
    def _push_queues(self):
        with self.lock:
            return [(self.queue_name("push", c), c) for c in self.connectors]

    def drain(self, connector_id, report=False):
        """Reads (basic_get, then ack) every message now in the connector's push queue,
        checks and records each like the worker, and returns the records. With report=True
        the expectations are reported on the works as the worker would."""
        queue = self.queue_name("push", connector_id)
        records = []

        def get_all(ch):
            while True:
                method, props, body = ch.basic_get(queue, auto_ack=False)
                if method is None:
                    return
                records.append(self._handle_push_message(connector_id, queue, method, props, body,
                                                         report=report, via="drain"))
                ch.basic_ack(method.delivery_tag)
        self._amqp(get_all, ignore_missing=True)
        return records

    def _handle_push_message(self, connector_id, queue, method, props, body, report=True, via="worker"):
        """Checks one push-queue message strictly (PROTOCOL.md 3.3-3.6), records it in
        `messages` (and its problems in `violations`), and reports its expectation like the
        OpenCTI worker. Returns the record; record["ack"] tells whether to ack (True) or
        nack without requeue (False)."""
        problems = []
        record = {"connector_id": connector_id, "queue": queue, "via": via, "time": now_iso(),
                  "exchange": method.exchange, "routing_key": method.routing_key,
                  "redelivered": method.redelivered,
                  "properties": {"delivery_mode": props.delivery_mode,
                                 "content_encoding": props.content_encoding,
                                 "content_type": props.content_type, "headers": props.headers,
                                 "priority": props.priority},
                  "body": body, "envelope": None, "bundle": None, "object": None,
                  "problems": problems, "reported": 0, "ack": True}
        with self.lock:
            rec = self.connectors.get(connector_id)
            applicant = rec["connector_user_id"] if rec else None
        try:
            envelope = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            envelope = None
            problems.append("body is not UTF-8 JSON: %s" % e)
        record["envelope"] = envelope
        platform_made = isinstance(envelope, dict) and "type" in envelope and "bundle_type" not in envelope
        if isinstance(envelope, dict) and not platform_made:
            self._check_envelope(envelope, applicant, problems)
            if self.strict_message_properties:
                if props.delivery_mode != 2:
                    problems.append("delivery_mode is %r, pycti publishes persistent messages (2)"
                                    % props.delivery_mode)
                if props.content_encoding != "utf-8":
                    problems.append("content_encoding is %r, pycti sets 'utf-8'" % props.content_encoding)
        elif envelope is not None and not platform_made:
            problems.append("envelope is not a JSON object")
        bundle = None
        if isinstance(envelope, dict) and isinstance(envelope.get("content"), str):
            bundle = _decode_content(envelope["content"], problems, strict=not platform_made)
        record["bundle"] = bundle
        if isinstance(bundle, dict) and isinstance(bundle.get("objects"), list) and bundle["objects"]:
            record["object"] = bundle["objects"][0]
        work_id = envelope.get("work_id") if isinstance(envelope, dict) else None
        if work_id is not None:
            with self.lock:
                work = self.works.get(work_id)
            if work is None:
                problems.append("work_id %r is not a known work (the worker drops such messages)" % work_id)
            elif work["connector_id"] != connector_id:
                problems.append("work_id %r belongs to connector %s" % (work_id, work["connector_id"]))
        if bundle is None:
            record["ack"] = False        # the worker fails on it: nack, no expectation
        elif report and work_id is not None and self._is_work_alive(work_id):
            n = len(bundle.get("objects") or []) if platform_made else 1
            if platform_made and n > 1:
                self._work_edit("addExpectations", work_id, {"expectations": n})
            for _ in range(n):
                try:
                    self.report_expectation(work_id, None)
                    record["reported"] += 1
                except gql.ResolverError:
                    break
        with self.lock:
            self.messages.append(record)
        for p in problems:
            self._violation("envelope", "%s message on %s: %s" % (via, queue, p), detail=record)
        return record

    @staticmethod
    def _check_envelope(env, applicant, problems):
        required = ["bundle_type", "applicant_id", "action_sequence", "entities_types", "content",
                    "update", "draft_id"]
        for k in required:
            if k not in env:
                problems.append("missing key %r" % k)
        extra = sorted(set(env) - set(required) - {"work_id"})
        if extra:
            problems.append("unexpected keys %s" % extra)
        if "work_id" not in env:
            problems.append("missing key 'work_id' (pycti sends it whenever the run has a work)")
        if "bundle_type" in env and env["bundle_type"] != "QUEUE_BUNDLE":
            problems.append("bundle_type is %r, not 'QUEUE_BUNDLE'" % (env["bundle_type"],))
        if "applicant_id" in env and env["applicant_id"] != applicant:
            problems.append("applicant_id is %r, the connector user id is %r" % (env["applicant_id"], applicant))
        seq = env.get("action_sequence")
        if "action_sequence" in env and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1):
            problems.append("action_sequence is %r, not an integer >= 1" % (seq,))
        et = env.get("entities_types")
        if "entities_types" in env and not (isinstance(et, str) or (
                isinstance(et, list) and all(isinstance(x, str) for x in et))):
            problems.append("entities_types is %r, not a string or a list of strings" % (et,))
        if "content" in env and not isinstance(env["content"], str):
            problems.append("content is not a string")
        if "update" in env and not isinstance(env["update"], bool):
            problems.append("update is %r, not a boolean" % (env["update"],))
        if "draft_id" in env and env["draft_id"] is not None:
            problems.append("draft_id is %r, not null" % (env["draft_id"],))
        if "work_id" in env and not isinstance(env["work_id"], str):
            problems.append("work_id is %r, not a string" % (env["work_id"],))


def _decode_content(content, problems, strict=True):
    """Decodes standard base64 (padded, no line breaks) of a one-object JSON bundle."""
    try:
        raw = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as e:
        problems.append("content is not valid standard base64: %s" % e)
        return None
    if base64.b64encode(raw).decode("ascii") != content:
        problems.append("content is not canonical standard base64 (padding or line breaks)")
    try:
        bundle = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        problems.append("content does not decode to UTF-8 JSON: %s" % e)
        return None
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        problems.append("content is not a STIX bundle")
        return None
    objects = bundle.get("objects")
    if not isinstance(objects, list) or not objects:
        problems.append("bundle has no objects")
        return None
    if strict and len(objects) != 1:
        problems.append("bundle has %d objects, pycti sends exactly one per message" % len(objects))
    return bundle


class _AmqpMissing(Exception):
    """A queue or exchange does not exist (AMQP 404)."""


def _short(body, limit=300):
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return text if len(text) <= limit else text[:limit] + "..."


class _Worker(threading.Thread):
    """Consumes the push queues of registered connectors like the OpenCTI worker:
    prefetch 1, manual acks, one consumer per queue; re-subscribes after a queue was deleted
    and re-created, and reconnects after the broker went away."""

    def __init__(self, platform):
        super().__init__(name="platform-worker", daemon=True)
        self.platform = platform
        self._stop_event = threading.Event()

    def stop(self):
        self._stop_event.set()
        self.join(timeout=15)

    def run(self):
        while not self._stop_event.is_set():
            conn = None
            try:
                conn = pika.BlockingConnection(self.platform._amqp_params())
                self._serve(conn)
            except (pika.exceptions.AMQPError, OSError) as e:
                with self.platform.lock:
                    self.platform.worker_errors.append("%s: %r" % (now_iso(), e))
                self._stop_event.wait(0.5)        # broker down: retry shortly
            finally:
                if conn is not None and conn.is_open:
                    try:
                        conn.close()
                    except Exception:
                        pass

    RETRY_S = 0.3   # how often a missing queue is tried again

    def _serve(self, conn):
        channels = {}        # queue -> channel
        cancelled = set()
        next_try = {}        # queue -> monotonic time of the next subscription attempt
        while not self._stop_event.is_set():
            for queue, cid in self.platform._push_queues():
                ch = channels.get(queue)
                if ch is not None and ch.is_open and queue not in cancelled:
                    continue
                if time.monotonic() < next_try.get(queue, 0):
                    continue
                next_try[queue] = time.monotonic() + self.RETRY_S
                if ch is not None and ch.is_open:
                    try:
                        ch.close()
                    except Exception:
                        pass
                channels.pop(queue, None)
                cancelled.discard(queue)
                ch = conn.channel()
                try:
                    ch.basic_qos(prefetch_count=1)
                    ch.add_on_cancel_callback(lambda _frame, q=queue: cancelled.add(q))
                    ch.basic_consume(queue, self._callback(cid, queue), auto_ack=False)
                    channels[queue] = ch
                except pika.exceptions.ChannelClosedByBroker:
                    pass                             # queue not there (yet); retried next loop
            conn.process_data_events(time_limit=0.1)
            for queue in list(channels):
                if not channels[queue].is_open:
                    channels.pop(queue)

    def _callback(self, connector_id, queue):
        def on_message(ch, method, props, body):
            record = self.platform._handle_push_message(connector_id, queue, method, props, body)
            if record["ack"]:
                ch.basic_ack(method.delivery_tag)
            else:
                ch.basic_nack(method.delivery_tag, requeue=False)
        return on_message
