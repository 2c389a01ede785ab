"""Self-test of the platform double (tests/fakes) against a real RabbitMQ broker.

Drives the double directly with urllib and pika, without the daemon binary: GraphQL
validation and coercion per schema profile, register/ping/reset semantics and the declared
topology, works with the worker thread, drain, authentication, HTTP-level rules and the
dataset faults. Exit status 0 when every check passes.
"""

import base64
import http.client
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from harness.common import (Broker, check, data_dir, eq, free_port, run_tests, shared_broker,  # noqa: E402
                            temp_dir, wait_until)
from fakes import gql, schema_opencti  # noqa: E402
from fakes.platform import Platform  # noqa: E402

import pika  # noqa: E402

# The operation texts pycti sends (PROTOCOL.md 2.1, 2.2, 2.5, 2.6), as the daemon will.
REGISTER = ("mutation RegisterConnector($input: RegisterConnectorInput) { registerConnector(input: $input) "
            "{ id connector_state config { connection { host vhost use_ssl port user pass } listen "
            "listen_routing listen_exchange push push_routing push_exchange } connector_user_id } }")
PING = ("mutation PingConnector($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput ) "
        "{ pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) { id connector_state "
        "connector_info { run_and_terminate buffering queue_threshold queue_messages_size "
        "next_run_datetime last_run_datetime } } }")
PING_OLD = ("mutation PingConnector($id: ID!, $state: String) { pingConnector(id: $id, state: $state) "
            "{ id connector_state } }")
HEALTH = "query healthCheck { about { version } }"
WORK_ADD = ("mutation workAdd($connectorId: String!, $friendlyName: String) { workAdd(connectorId: "
            "$connectorId, friendlyName: $friendlyName) { id } }")
ADD_EXPECTATIONS = ("mutation addExpectations($id: ID!, $expectations: Int) { workEdit(id: $id) "
                    "{ addExpectations(expectations: $expectations) } }")
TO_RECEIVED = ("mutation workToReceived($id: ID!, $message: String) { workEdit(id: $id) "
               "{ toReceived (message: $message) } }")
TO_PROCESSED = ("mutation workToProcessed($id: ID!, $message: String, $inError: Boolean) { workEdit(id: $id) "
                "{ toProcessed (message: $message, inError: $inError) } }")
REPORT = ("mutation reportExpectation($id: ID!, $error: WorkErrorInput) { workEdit(id: $id) "
          "{ reportExpectation(error: $error) } }")
PING_WORK = "mutation pingWork($id: ID!) { workEdit(id: $id) { ping } }"
WORK_ALIVE = "query WorkAliveQuery($id: ID!) { isWorkAlive(id: $id) }"
GET_CONNECTOR = ("query GetConnector($id: String!) { connector(id: $id) { id name active auto only_contextual "
                 "connector_type connector_scope connector_state connector_queue_details { messages_number "
                 "messages_size } updated_at created_at config { listen listen_exchange push push_exchange "
                 "push_routing } built_in } }")
DELETE_CONNECTOR = "mutation ConnectorDeletionMutation($id: ID!) { deleteConnector(id: $id) }"

CONNECTOR_INFO = {"run_and_terminate": False, "buffering": False, "queue_threshold": 500.0,
                  "queue_messages_size": 0.0, "next_run_datetime": None, "last_run_datetime": None}

BROKER = None


def register_input(cid, **over):
    """RegisterConnectorInput as pycti 6.8.10 sends it."""
    inp = {"id": cid, "name": "OpenCTI Datasets", "type": "EXTERNAL_IMPORT",
           "scope": ["marking-definition", "identity", "location"], "auto": False, "auto_update": False,
           "enrichment_resolution": "none", "only_contextual": False, "playbook_compatible": False,
           "listen_callback_uri": None}
    inp.update(over)
    return inp


def post(platform, query, variables=None, token=None, body=None, headers=None):
    """POSTs like pycti; returns (status, decoded JSON)."""
    data = json.dumps(body if body is not None else {"query": query, "variables": variables or {}}).encode()
    hdrs = {"Content-Type": "application/json", "User-Agent": "pycti/6.8.10",
            "Authorization": "Bearer " + (platform.token if token is None else token)}
    hdrs.update(headers or {})
    req = urllib.request.Request(platform.graphql_url, data, hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw


def messages(resp):
    return [e["message"] for e in resp.get("errors", [])]


def new_id():
    return str(uuid.uuid4())


def register(platform, cid, **over):
    status, resp = post(platform, REGISTER, {"input": register_input(cid, **over)})
    eq(status, 200, "register status")
    check("errors" not in resp, "register failed", resp)
    return resp["data"]["registerConnector"]


def ping(platform, cid, state, connector_info=CONNECTOR_INFO):
    status, resp = post(platform, PING, {"id": cid, "state": state, "connectorInfo": connector_info})
    eq(status, 200, "ping status")
    check("errors" not in resp, "ping failed", resp)
    return resp["data"]["pingConnector"]


def amqp_channel():
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", BROKER.port))
    return conn, conn.channel()


def envelope(applicant, work_id, obj, seq=1, **over):
    """A queue message shaped like pycti's (PROTOCOL.md 3.4)."""
    bundle = {"type": "bundle", "id": "bundle--" + new_id(), "spec_version": "2.1", "x_opencti_seq": 1,
              "objects": [obj]}
    env = {"bundle_type": "QUEUE_BUNDLE", "applicant_id": applicant, "action_sequence": seq,
           "entities_types": "marking-definition,identity,location",
           "content": base64.b64encode(json.dumps(bundle).encode()).decode(), "update": True,
           "draft_id": None, "work_id": work_id}
    env.update(over)
    return env


def identity(name):
    return {"type": "identity", "spec_version": "2.1", "id": "identity--" + new_id(), "name": name,
            "identity_class": "class", "nb_deps": 1}


def publish(config, body, delivery_mode=2, content_encoding="utf-8"):
    conn, ch = amqp_channel()
    try:
        ch.confirm_delivery()
        ch.basic_publish(config["push_exchange"], config["push_routing"],
                         body if isinstance(body, bytes) else json.dumps(body).encode(),
                         pika.BasicProperties(delivery_mode=delivery_mode, content_encoding=content_encoding))
    finally:
        conn.close()


def ctl_json(*args):
    """rabbitmqctl ... --formatter json, keeping duplicate keys (AMQP arrays) as pairs."""
    return json.loads(BROKER.ctl(*args, "--formatter", "json"), object_pairs_hook=lambda pairs: pairs)


def amqp_table(entries):
    """rabbitmqctl's [[name, type, value], ...] argument rendering -> Python values."""
    def conv(kind, value):
        if kind == "table":
            return amqp_table(value)
        if kind == "array":
            return [conv(k, v) for k, v in value]
        return value
    return {name: conv(kind, value) for name, kind, value in entries}


# ---------------------------------------------------------------------------------------------
# GraphQL front end, without HTTP
# ---------------------------------------------------------------------------------------------

def test_protocol_operations_validate():
    ops = [REGISTER, PING, PING_OLD, HEALTH, WORK_ADD, ADD_EXPECTATIONS, TO_RECEIVED, TO_PROCESSED,
           REPORT, PING_WORK, WORK_ALIVE, GET_CONNECTOR, DELETE_CONNECTOR]
    for profile in schema_opencti.PROFILES:
        schema = schema_opencti.schema_for(profile)
        for op in ops:
            errors = [e.message for e in gql.validate(schema, gql.parse(op))]
            if profile == "6.0" and op == PING:
                check(errors, "6.0 must reject the connectorInfo ping")
            else:
                eq(errors, [], "%s validates %s" % (profile, op[:40]))


def test_validation_messages():
    s = schema_opencti.schema_for("6.8")

    def msgs(q):
        return [e.message for e in gql.validate(s, gql.parse(q), {"Mutation": {"*": 1}})]
    eq(msgs('query { about { version x } }'),
       ['Cannot query field "x" on type "AppInfo".'], "unknown field")
    eq(msgs('mutation M($x: Boolean) { workEdit(id: "w") { toProcessed(inError: $x) } }'), [],
       "nullable variable in nullable position")
    eq(msgs('mutation M($id: ID) { workEdit(id: $id) { ping } }'),
       ['Variable "$id" of type "ID" used in position expecting type "ID!".'], "nullability")
    eq(msgs('mutation M($id: [ID!]!) { workEdit(id: $id) { ping } }'),
       ['Variable "$id" of type "[ID!]!" used in position expecting type "ID!".'], "list")
    got = msgs('mutation M($i: ConnectorInfoInputs) { pingConnector(id: "a", connectorInfo: $i) { id } }')
    # the suggestions come from the modelled type map, a subset of the real one
    check(len(got) == 1 and got[0].startswith('Unknown type "ConnectorInfoInputs". Did you mean '
                                              '"ConnectorInfoInput"'), "unknown type", got)
    eq(msgs('mutation { workAdd(friendlyName: "x") { id } }'),
       ['Field "workAdd" argument "connectorId" of type "String!" is required, but it was not provided.'],
       "missing required argument")
    eq(msgs('mutation M($a: ID!) { workEdit(id: $b) { ping } }'),
       ['Variable "$b" is not defined by operation "M".', 'Variable "$a" is never used in operation "M".'],
       "undefined and unused variables")
    eq(msgs('mutation { registerConnector(input: {id: "1", name: "nn", type: EXTERNAL_IMPORT}) { config } }'),
       ['Field "config" of type "ConnectorConfig" must have a selection of subfields. '
        'Did you mean "config { ... }"?'], "missing selection")
    eq(msgs('query { about { version { v } } }'),
       ['Field "version" must not have a selection since type "String!" has no subfields.'], "leaf selection")
    eq(msgs('mutation { registerConnector(input: {id: "1", name: "nn", type: EXTERNAL_IMPORT, auto: "1"}) { id } }'),
       ['Boolean cannot represent a non boolean value: "1"'], "literal Boolean")
    eq(msgs('mutation { a: pingConnector(id: "1") { id } b: pingConnector(id: "2") { id } }'),
       ["Allowed number of calls for Mutation->pingConnector has been exceeded (max: 1)"], "no-alias batching")
    # comments, aliases and block strings parse
    eq(msgs('# c\nmutation W($id: ID!) { # c\n e: workEdit(id: $id) { p: toReceived(message: """x\n y""") } }'),
       [], "comments and aliases")
    try:
        gql.parse("query { about { version }")
        raise AssertionError("syntax error expected")
    except gql.GraphQLError as e:
        eq(e.message, "Syntax Error: Expected Name, found <EOF>.", "syntax error")


def test_variable_coercion_messages():
    s = schema_opencti.schema_for("6.8")

    def coerce(q, v):
        op = gql.parse(q).definitions[0]
        return [e.message for e in gql.coerce_variable_values(s, op, v)[1]]
    eq(coerce(TO_PROCESSED, {"id": "w", "message": "m", "inError": "1"}),
       ['Variable "$inError" got invalid value "1"; Boolean cannot represent a non boolean value: "1"'],
       "Boolean from a string")
    eq(coerce(ADD_EXPECTATIONS, {"id": "w", "expectations": 2 ** 31}),
       ['Variable "$expectations" got invalid value 2147483648; Int cannot represent non 32-bit signed '
        'integer value: 2147483648'], "Int range")
    eq(coerce(ADD_EXPECTATIONS, {"id": "w", "expectations": 1.5}),
       ['Variable "$expectations" got invalid value 1.5; Int cannot represent non-integer value: 1.5'], "Int")
    eq(coerce(ADD_EXPECTATIONS, {"id": "w", "expectations": 3.0}), [], "3.0 is an Int in JavaScript")
    eq(coerce(ADD_EXPECTATIONS, {"id": 12, "expectations": 3}), [], "ID from an integer")
    eq(coerce(ADD_EXPECTATIONS, {"id": 1.5}),
       ['Variable "$id" got invalid value 1.5; ID cannot represent value: 1.5'], "ID from a float")
    eq(coerce(ADD_EXPECTATIONS, {}), ['Variable "$id" of required type "ID!" was not provided.'], "missing")
    eq(coerce(ADD_EXPECTATIONS, {"id": None}), ['Variable "$id" of non-null type "ID!" must not be null.'], "null")
    eq(coerce(PING, {"id": "c", "state": 5, "connectorInfo": {"run_and_terminate": False}}),
       ['Variable "$state" got invalid value 5; String cannot represent a non string value: 5',
        'Variable "$connectorInfo" got invalid value { run_and_terminate: false }; Field "buffering" of '
        'required type "Boolean!" was not provided.',
        'Variable "$connectorInfo" got invalid value { run_and_terminate: false }; Field "queue_threshold" of '
        'required type "Float!" was not provided.',
        'Variable "$connectorInfo" got invalid value { run_and_terminate: false }; Field "queue_messages_size" of '
        'required type "Float!" was not provided.'], "input object required fields")
    info = dict(CONNECTOR_INFO, next_run_datetime="2025-01-01 00:00:00", queue_threshold="500")
    eq(coerce(PING, {"id": "c", "state": "null", "connectorInfo": info}),
       ['Variable "$connectorInfo" got invalid value "500" at "connectorInfo.queue_threshold"; Float cannot '
        'represent non numeric value: "500"',
        'Variable "$connectorInfo" got invalid value "2025-01-01 00:00:00" at "connectorInfo.next_run_datetime"; '
        'DateTime cannot represent an invalid date-time-string 2025-01-01 00:00:00.'], "Float and DateTime")
    eq(coerce(PING, {"id": "c", "state": "null", "connectorInfo": dict(CONNECTOR_INFO, last_run_datetime="2025-01-01T00:00:00Z")}),
       [], "DateTime accepted")
    eq(coerce(REGISTER, {"input": register_input("c", type="EXTERNAL", scope="a")}),
       ['Variable "$input" got invalid value "EXTERNAL" at "input.type"; Value "EXTERNAL" does not exist in '
        '"ConnectorType" enum.'], "enum by name; a string is a list of one")
    s65 = schema_opencti.schema_for("6.5")
    op = gql.parse(REGISTER).definitions[0]
    got = [e.message for e in gql.coerce_variable_values(s65, op, {"input": register_input("abc")})[1]]
    shown = ('{ id: "abc", name: "OpenCTI Datasets", type: "EXTERNAL_IMPORT", scope: ["marking-definition", '
             '"identity", "location"], auto: false, auto_update: false, enrichment_resolution: "none", '
             'only_contextual: false, playbook_compatible: false, listen_callback_uri: null }')
    eq(got, ['Variable "$input" got invalid value %s; Field "auto_update" is not defined by type '
             '"RegisterConnectorInput".' % shown,
             'Variable "$input" got invalid value %s; Field "enrichment_resolution" is not defined by type '
             '"RegisterConnectorInput".' % shown], "6.5 rejects the 6.8.9 input fields")


# ---------------------------------------------------------------------------------------------
# The HTTP double against the broker
# ---------------------------------------------------------------------------------------------

def test_register_declares_topology():
    cid = new_id()
    with Platform(BROKER, queue_prefix="octi", connection={"host": "rabbitmq"}) as p:
        out = register(p, cid)
        eq(out["id"], cid, "id")
        eq(out["connector_state"], None, "a new connector has no state")
        eq(out["connector_user_id"], p.user_id, "connector_user_id is the token's user")
        cfg = out["config"]
        eq(cfg["connection"], {"host": "rabbitmq", "vhost": "/", "use_ssl": False, "port": BROKER.port,
                               "user": "guest", "pass": "guest"}, "connection handed out")
        eq((cfg["push"], cfg["push_routing"], cfg["push_exchange"]),
           ("octi_push_" + cid, "octi_push_routing_" + cid, "octi_amqp.worker.exchange"), "push names")
        eq((cfg["listen"], cfg["listen_routing"], cfg["listen_exchange"]),
           ("octi_listen_" + cid, "octi_listen_routing_" + cid, "octi_amqp.connector.exchange"), "listen names")
        rec = p.connector(cid)
        eq(rec["connector_scope"], "marking-definition,identity,location", "scope stored joined")
        eq(rec["connector_type"], "EXTERNAL_IMPORT", "type stored")
        # The topology exists on the real broker: publishing on push_exchange/push_routing lands in push_<id>.
        publish(cfg, {"probe": 1})
        eq(p.queue_depth(cfg["push"]), 1, "push binding routes to the push queue")
        conn, ch = amqp_channel()
        try:
            ch.basic_publish(cfg["listen_exchange"], cfg["listen_routing"], b"{}")
        finally:
            conn.close()
        wait_until(lambda: p.queue_depth(cfg["listen"]) == 1, 10, message="listen binding")
        # Same arguments re-declare fine; another x-queue-type is refused: x-queue-type=classic.
        conn, ch = amqp_channel()
        try:
            args = {"name": "OpenCTI Datasets", "config": {"id": cid, "type": "EXTERNAL_IMPORT",
                                                           "scope": ["marking-definition", "identity", "location"]},
                    "x-queue-type": "classic"}
            ch.queue_declare(cfg["push"], durable=True, arguments=args)
            try:
                ch.queue_declare(cfg["push"], durable=True, arguments=dict(args, **{"x-queue-type": "quorum"}))
                raise AssertionError("re-declaring as quorum should fail")
            except pika.exceptions.ChannelClosedByBroker as e:
                eq(e.reply_code, 406, "PRECONDITION_FAILED")
        finally:
            if conn.is_open:
                conn.close()
        if isinstance(BROKER, Broker):
            queues = {q[0][1]: dict(q) for q in ctl_json("list_queues", "name", "durable", "auto_delete",
                                                        "exclusive", "arguments")}
            for name in (cfg["push"], cfg["listen"]):
                q = queues[name]
                eq((q["durable"], q["auto_delete"], q["exclusive"]), (True, False, False), name + " flags")
                eq(amqp_table(q["arguments"]), args, name + " arguments")
            bindings = {(dict(b)["source_name"], dict(b)["destination_name"], dict(b)["routing_key"])
                        for b in ctl_json("list_bindings", "source_name", "destination_name", "routing_key")}
            check((cfg["push_exchange"], cfg["push"], cfg["push_routing"]) in bindings, "push binding", bindings)
            check((cfg["listen_exchange"], cfg["listen"], cfg["listen_routing"]) in bindings, "listen binding")
            exchanges = {dict(e)["name"]: dict(e) for e in ctl_json("list_exchanges", "name", "type", "durable")}
            for ex in (cfg["push_exchange"], cfg["listen_exchange"]):
                eq((exchanges[ex]["type"], exchanges[ex]["durable"]), ("direct", True), ex)
        else:
            print("    (shared broker: argument-level checks through rabbitmqctl skipped)")
        # Registering again updates, keeps the state.
        ping(p, cid, '{"last_run": 1}')
        again = register(p, cid, name="Renamed", scope=None)
        eq(again["connector_state"], '{"last_run": 1}', "re-register keeps the state")
        eq(p.connector(cid)["connector_scope"], None, "empty scope stored as null")
        eq(len(p.registrations), 2, "registrations recorded")
        p.delete_connector(cid)
        p.assert_no_violations()


def test_ping_and_reset():
    cid = new_id()
    with Platform(BROKER) as p:
        cfg = register(p, cid)["config"]
        eq(ping(p, cid, "null")["connector_state"], "null", "first ping stores what is sent")
        out = ping(p, cid, '{"last_run": 1700000000}')
        eq(out["connector_state"], '{"last_run": 1700000000}', "state stored")
        eq(out["connector_info"], CONNECTOR_INFO, "connectorInfo stored")
        publish(cfg, {"probe": "before reset"})
        eq(p.queue_depth(cfg["push"]), 1, "one message queued")
        p.reset_state(cid)
        rec = p.connector(cid)
        eq((rec["connector_state"], rec["connector_state_reset"]), ("", True), "reset: state '' and flag set")
        eq(p.queue_depth(cfg["push"]), 0, "reset purges the push queue")
        out = ping(p, cid, '{"last_run": 1700000000}')
        eq(out["connector_state"], "", "the ping after a reset returns ''")
        eq(p.connector(cid)["connector_state_reset"], False, "the ping consumed the flag")
        eq(p.pings[-1]["discarded"], True, "the sent state was discarded")
        eq(ping(p, cid, '{"last_run": 1700000100}')["connector_state"], '{"last_run": 1700000100}',
           "the next ping stores again")
        # A deleted push queue comes back with the next ping.
        p.delete_queue(cfg["push"])
        eq(p.queue_depth(cfg["push"]), None, "push queue deleted")
        ping(p, cid, "null")
        eq(p.queue_depth(cfg["push"]), 0, "ping re-declared the push queue")
        # Old platforms: the ping without connectorInfo is valid too.
        status, resp = post(p, PING_OLD, {"id": cid, "state": "null"})
        check("errors" not in resp, "old ping", resp)
        # Unknown connector.
        status, resp = post(p, PING, {"id": new_id(), "state": "null", "connectorInfo": CONNECTOR_INFO})
        eq(status, 200, "errors come with HTTP 200")
        eq(messages(resp), ["No connector found with the specified ID"], "unknown connector")
        eq(resp["errors"][0]["extensions"]["code"], "FUNCTIONAL_ERROR", "code")
        eq(resp["data"], {"pingConnector": None}, "data")
        # The UI's read of the connector.
        status, resp = post(p, GET_CONNECTOR, {"id": cid})
        c = resp["data"]["connector"]
        eq((c["active"], c["connector_scope"], c["connector_queue_details"]["messages_number"]),
           (True, ["marking-definition", "identity", "location"], 0.0), "connector read")
        p.delete_connector(cid)
        status, resp = post(p, PING, {"id": cid, "state": "null", "connectorInfo": CONNECTOR_INFO})
        eq(messages(resp), ["No connector found with the specified ID"], "deleted connector")
        p.assert_no_violations()


def test_schema_rejections_recorded():
    cid = new_id()
    with Platform(BROKER, schema="6.5") as p:
        eq(p.version, "6.5.10", "default version per profile")
        status, resp = post(p, REGISTER, {"input": register_input(cid)})
        eq(status, 200, "rejections come with HTTP 200")
        check(resp["errors"][0]["message"].endswith(
            '; Field "auto_update" is not defined by type "RegisterConnectorInput".'), "message", resp)
        eq(resp["errors"][0]["extensions"]["code"], "VALIDATION_ERROR", "OpenCTI turns BAD_USER_INPUT into this")
        eq(resp["errors"][0]["name"], "VALIDATION_ERROR", "name")
        check("data" not in resp, "no data for coercion errors", resp)
        eq(len(p.violations), 1, "recorded as a violation")
        check("auto_update" in p.violations[0]["message"], "violation text", p.violations)
        p.violations.clear()
        # The daemon's compatibility retry: the rejection is expected, the retry valid.
        p.expect_rejections = [r'Field "(auto_update|enrichment_resolution)" is not defined']
        post(p, REGISTER, {"input": register_input(cid)})
        inp = register_input(cid)
        del inp["auto_update"], inp["enrichment_resolution"]
        status, resp = post(p, REGISTER, {"input": inp})
        check("errors" not in resp, "6.5 accepts the older input", resp)
        eq(p.violations, [], "expected rejections are not violations")
        eq(len(p.rejections), 2, "but they are kept")
        post(p, REGISTER, {"input": register_input(cid, auto="yes")})
        eq(len(p.violations), 1, "a rejection the list does not cover is still a violation")
        p.violations.clear()
        p.delete_connector(cid)

    with Platform(BROKER, schema="6.0") as p:
        status, resp = post(p, PING, {"id": cid, "state": "null", "connectorInfo": CONNECTOR_INFO})
        got = messages(resp)
        eq(len(got), 3, "three validation errors")
        check(got[0].startswith('Unknown type "ConnectorInfoInput".'), "unknown type", got)
        eq(got[1], 'Unknown argument "connectorInfo" on field "Mutation.pingConnector".', "unknown argument")
        check(got[2].startswith('Cannot query field "connector_info" on type "Connector".'), "unknown field", got)
        eq(resp["errors"][1]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "validation code")
        check(resp["errors"][1]["locations"], "validation errors keep locations", resp)
        inp = register_input(cid)
        del inp["auto_update"], inp["enrichment_resolution"]
        status, resp = post(p, REGISTER, {"input": inp})
        check(messages(resp)[0].endswith('Field "listen_callback_uri" is not defined by type '
                                         '"RegisterConnectorInput".'), "6.0 input", resp)
        eq([v["kind"] for v in p.violations], ["schema", "schema"], "both recorded")
        del inp["listen_callback_uri"]
        check("errors" not in post(p, REGISTER, {"input": inp})[1], "6.0 register")
        check("errors" not in post(p, PING_OLD, {"id": cid, "state": "null"})[1], "6.0 ping")
        p.violations.clear()
        status, resp = post(p, "query healthCheck { about { version }", {})
        eq(resp["errors"][0]["extensions"]["code"], "GRAPHQL_PARSE_FAILED", "parse error code")
        eq(resp["errors"][0]["message"], "Syntax Error: Expected Name, found <EOF>.", "parse error")
        eq(len(p.violations), 1, "parse errors are violations")
        p.delete_connector(cid)


def test_constraints_and_auth():
    cid = new_id()
    with Platform(BROKER) as p:
        status, resp = post(p, REGISTER, {"input": register_input(cid, name=" ")})
        eq(messages(resp), ['Variable "$input" got invalid value " " at "input.name". Must be at least 2 '
                            'characters in length'], "name constraint")
        status, resp = post(p, REGISTER, {"input": register_input(cid, name="   ")})
        eq(messages(resp), ['Variable "$input" got invalid value "   " at "input.name". Value cannot have '
                            'only whitespace(s)'], "not-blank")
        eq(resp["errors"][0]["extensions"]["data"]["field"], "input.name", "field")
        p.violations.clear()
        # Wrong, missing and changed tokens.
        for token in ("wrong", ""):
            status, resp = post(p, HEALTH, token=token)
            eq(status, 200, "auth errors come with HTTP 200")
            eq(messages(resp), ["You must be logged in to do this."], "auth message")
            eq(resp["errors"][0]["extensions"], {"code": "AUTH_REQUIRED",
                                                 "data": {"http_status": 401, "genre": "TECHNICAL"}}, "auth ext")
            eq(resp["data"], {"about": None}, "auth data")
        old = p.token
        p.token = "rotated"
        eq(messages(post(p, HEALTH, token=old)[1]), ["You must be logged in to do this."], "old token refused")
        eq(post(p, HEALTH, token="rotated")[1], {"data": {"about": {"version": "6.8.10"}}}, "new token works")
        eq(len(p.violations), 0, "auth failures are not violations")
        check(p.requests[-1].header("user-agent") == "pycti/6.8.10", "headers recorded")
    with Platform(BROKER, capabilities=["CONNECTORAPI"]) as p:
        register(p, cid)
        status, resp = post(p, DELETE_CONNECTOR, {"id": cid})
        eq(messages(resp), ["You are not allowed to do this."], "least-privilege token cannot delete")
        eq(resp["data"], None, "ID! field: data is null")
        p.delete_connector(cid)


def test_works_with_worker():
    cid = new_id()
    with Platform(BROKER, worker=True) as p:
        cfg = register(p, cid)["config"]
        status, resp = post(p, WORK_ADD, {"connectorId": cid, "friendlyName": "OpenCTI datasets run @ x"})
        wid = resp["data"]["workAdd"]["id"]
        check(re.fullmatch(r"work_%s_\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z" % cid, wid), "work id", wid)
        w = p.work(wid)
        eq((w["status"], w["import_expected_number"], w["name"]), ("progress", 0, "OpenCTI datasets run @ x"),
           "new work")
        post(p, ADD_EXPECTATIONS, {"id": wid, "expectations": 2})
        eq(p.work(wid)["redis"]["import_expected_number"], 2, "expected in Redis")
        for seq in (1, 2):
            publish(cfg, envelope(p.user_id, wid, identity("Sector %d" % seq), seq))
        wait_until(lambda: p.work(wid)["status"] == "complete", 20, message="work completed by the worker")
        w = p.work(wid)
        eq((w["completed_number"], w["redis"]["import_processed_number"]), (2, 2), "counters")
        eq([m["object"]["name"] for m in p.messages_for(cid)], ["Sector 1", "Sector 2"], "messages recorded")
        text = "Connector successfully run, storing last_run as 1700000000"
        post(p, TO_PROCESSED, {"id": wid, "message": text, "inError": False})
        w = p.work(wid)
        eq((w["status"], [m["message"] for m in w["messages"]], w["redis"]), ("complete", [text], None),
           "toProcessed completes, appends, clears Redis")
        eq([e["event"] for e in p.work_events if e["work_id"] == wid],
           ["workAdd", "addExpectations", "reportExpectation", "reportExpectation", "toProcessed"], "history")
        p.assert_no_violations()

        # A run with nothing expected completes at toProcessed; errors go to `errors`.
        wid2 = post(p, WORK_ADD, {"connectorId": cid, "friendlyName": "run 2"})[1]["data"]["workAdd"]["id"]
        post(p, TO_RECEIVED, {"id": wid2, "message": "received"})
        post(p, PING_WORK, {"id": wid2})
        post(p, TO_PROCESSED, {"id": wid2, "message": "failed", "inError": True})
        w = p.work(wid2)
        eq((w["status"], [e["message"] for e in w["errors"]], [m["message"] for m in w["messages"]]),
           ("complete", ["failed"], ["received"]), "expected 0 completes")
        eq(post(p, WORK_ALIVE, {"id": wid2})[1], {"data": {"isWorkAlive": True}}, "alive")

        # reportExpectation with an error (what the worker sends after retries).
        wid3 = post(p, WORK_ADD, {"connectorId": cid, "friendlyName": "run 3"})[1]["data"]["workAdd"]["id"]
        post(p, ADD_EXPECTATIONS, {"id": wid3, "expectations": 1})
        post(p, REPORT, {"id": wid3, "error": {"error": "boom", "source": "{}"}})
        w = p.work(wid3)
        eq((w["status"], w["errors"][0]["message"], w["errors"][0]["source"]), ("complete", "boom", "{}"),
           "reported error")

        # Operations on unknown works fail; delete answers the id.
        ghost = "work_%s_2020-01-01T00:00:00.000Z" % cid
        for q, v in ((ADD_EXPECTATIONS, {"id": ghost, "expectations": 1}), (TO_PROCESSED, {"id": ghost}),
                     (TO_RECEIVED, {"id": ghost}), (PING_WORK, {"id": ghost})):
            status, resp = post(p, q, v)
            check(resp.get("errors") and resp["data"] == {"workEdit": None}, "unknown work fails", q, resp)
        eq(post(p, WORK_ALIVE, {"id": ghost})[1], {"data": {"isWorkAlive": False}}, "not alive")
        status, resp = post(p, WORK_ADD, {"connectorId": new_id(), "friendlyName": "x"})
        eq(resp["data"], None, "workAdd on an unknown connector (Work! field)")

        # Malformed messages are violations; a message without decodable content is nacked.
        publish(cfg, envelope("someone-else", wid3, identity("X"), 0, draft_id="d"), delivery_mode=1)
        publish(cfg, dict(envelope(p.user_id, wid3, identity("Y")), content="not base64!"))
        two = {"type": "bundle", "id": "bundle--1", "objects": [identity("A"), identity("B")]}
        publish(cfg, dict(envelope(p.user_id, wid3, identity("Z")),
                          content=base64.b64encode(json.dumps(two).encode()).decode()))
        wait_until(lambda: len(p.messages_for(cid)) == 5, 20, message="three more messages")
        found = " | ".join(v["message"] for v in p.violations)
        for needle in ("applicant_id", "action_sequence", "draft_id", "delivery_mode",
                       "not valid standard base64", "exactly one"):
            check(needle in found, "violation about " + needle, found)
        eq([m["ack"] for m in p.messages_for(cid)][2:], [True, False, True], "acks")
        p.violations.clear()
        p.delete_connector(cid)


def test_worker_resubscribes():
    cid = new_id()
    with Platform(BROKER, worker=True) as p:
        cfg = register(p, cid)["config"]
        wid = post(p, WORK_ADD, {"connectorId": cid, "friendlyName": "w"})[1]["data"]["workAdd"]["id"]
        post(p, ADD_EXPECTATIONS, {"id": wid, "expectations": 2})
        publish(cfg, envelope(p.user_id, wid, identity("before")))
        wait_until(lambda: len(p.messages_for(cid)) == 1, 20, message="first message")
        p.delete_queue(cfg["push"])          # the broker cancels the worker's consumer
        ping(p, cid, "null")                 # ... and the ping re-creates the queue
        publish(cfg, envelope(p.user_id, wid, identity("after"), 2))
        wait_until(lambda: p.work(wid)["status"] == "complete", 20, message="worker consumed again")
        p.assert_no_violations()
        p.delete_connector(cid)


def test_worker_survives_broker_restart():
    cid = new_id()
    with Broker() as own:
        with Platform(own, worker=True) as p:
            cfg = register(p, cid)["config"]
            wid = post(p, WORK_ADD, {"connectorId": cid, "friendlyName": "w"})[1]["data"]["workAdd"]["id"]
            post(p, ADD_EXPECTATIONS, {"id": wid, "expectations": 1})
            own.kill()
            status, resp = post(p, PING, {"id": cid, "state": "null", "connectorInfo": CONNECTOR_INFO})
            check(messages(resp) and messages(resp)[0].startswith("connect ECONNREFUSED"),
                  "ping fails while RabbitMQ is down", resp)
            own.start()
            ping(p, cid, "null")
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", own.port))
            try:
                ch = conn.channel()
                ch.basic_publish(cfg["push_exchange"], cfg["push_routing"],
                                 json.dumps(envelope(p.user_id, wid, identity("x"))).encode(),
                                 pika.BasicProperties(delivery_mode=2, content_encoding="utf-8"))
            finally:
                conn.close()
            wait_until(lambda: p.work(wid)["status"] == "complete", 30, message="worker reconnected")
            check(p.worker_errors, "the outage was seen by the worker")
            p.assert_no_violations()


def test_drain_without_worker():
    cid = new_id()
    with Platform(BROKER) as p:
        cfg = register(p, cid)["config"]
        wid = post(p, WORK_ADD, {"connectorId": cid, "friendlyName": "drain"})[1]["data"]["workAdd"]["id"]
        post(p, ADD_EXPECTATIONS, {"id": wid, "expectations": 3})
        for i in range(3):
            publish(cfg, envelope(p.user_id, wid, identity("D%d" % i), i + 1))
        records = p.drain(cid)
        eq([r["object"]["name"] for r in records], ["D0", "D1", "D2"], "drained in order")
        eq(p.queue_depth(cfg["push"]), 0, "queue empty after drain")
        eq(p.work(wid)["status"], "progress", "drain does not report by default")
        eq(p.drain(cid), [], "nothing left")
        p.assert_no_violations()
        p.delete_connector(cid)


def test_http_rules():
    with Platform(BROKER) as p:
        for method, path in (("GET", "/graphql"), ("POST", "/other"), ("PUT", "/graphql")):
            conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
            conn.request(method, path, body=b"{}" if method != "GET" else None)
            eq(conn.getresponse().status, 404, "%s %s" % (method, path))
            conn.close()
        status, resp = post(p, None, body={"query": HEALTH, "variables": {}}, headers={"Content-Type": "text/plain"})
        eq(status, 400, "wrong content type")
        eq(messages(resp), ["POST body missing, invalid Content-Type, or JSON object has no keys."], "message")
        status, resp = post(p, None, body={"query": HEALTH, "variables": {}, "operationName": "healthCheck"})
        eq((status, resp), (200, {"data": {"about": {"version": "6.8.10"}}}), "operationName accepted")
        status, resp = post(p, None, body={"query": HEALTH, "variables": []})
        eq(status, 400, "variables must be an object")
        kinds = [v["kind"] for v in p.violations]
        eq(kinds, ["http", "protocol", "http"], "recorded")
        p.violations.clear()
        p.set_down(True)
        status, body = post(p, HEALTH)
        eq(status, 502, "platform down")
        p.set_down(False)
        eq(post(p, HEALTH)[0], 200, "back up")
        p.assert_no_violations()


def test_stop_and_restart():
    cid = new_id()
    p = Platform(BROKER).start()
    try:
        register(p, cid)
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
        body = json.dumps({"query": HEALTH, "variables": {}})
        hdrs = {"Content-Type": "application/json", "Authorization": "Bearer " + p.token}
        for _ in range(2):                        # one keep-alive connection, two requests
            conn.request("POST", "/graphql", body, hdrs)
            eq(conn.getresponse().read(), b'{"data":{"about":{"version":"6.8.10"}}}', "keep-alive")
        p.stop()
        try:
            conn.request("POST", "/graphql", body, hdrs)
            conn.getresponse().read()
            raise AssertionError("a stopped platform must not answer on an old connection")
        except (OSError, http.client.HTTPException):
            pass
        conn.close()
        p.start()
        eq(post(p, PING, {"id": cid, "state": "null", "connectorInfo": CONNECTOR_INFO})[1]["data"]
           ["pingConnector"]["id"], cid, "restarted on the same port with the state kept")
        p.assert_no_violations()
    finally:
        p.delete_connector(cid)
        p.stop()


def test_late_start():
    port = free_port()
    with socket.socket() as s:
        check(s.connect_ex(("127.0.0.1", port)) != 0, "nothing listens yet")
    with Platform(BROKER, port=port) as p:
        eq(p.url, "http://127.0.0.1:%d" % port, "given port")
        eq(post(p, HEALTH)[1], {"data": {"about": {"version": "6.8.10"}}}, "serves on the given port")


def test_dataset_overrides():
    with temp_dir() as d:
        with open(os.path.join(d, "sectors.json"), "wb") as f:
            f.write(b'{"type": "bundle", "objects": []}')
        with Platform(BROKER, datasets_dir=d) as p:
            def get(name):
                with urllib.request.urlopen(p.dataset_url(name), timeout=30) as r:
                    return r.status, r.read()
            eq(get("sectors.json"), (200, b'{"type": "bundle", "objects": []}'), "file served")
            for name in ("missing.json", "../etc/passwd"):
                try:
                    get(name)
                    raise AssertionError("404 expected")
                except urllib.error.HTTPError as e:
                    eq(e.code, 404, name)
            p.set_dataset("sectors.json", status=500)
            try:
                get("sectors.json")
                raise AssertionError("500 expected")
            except urllib.error.HTTPError as e:
                eq(e.code, 500, "status override")
            p.set_dataset("sectors.json", delay=0.3)
            t0 = time.monotonic()
            get("sectors.json")
            check(time.monotonic() - t0 >= 0.3, "delay")
            p.set_dataset("sectors.json", truncate_at=5)
            try:
                get("sectors.json")
                raise AssertionError("truncated body expected")
            except http.client.IncompleteRead as e:
                eq(e.partial, b'{"typ', "partial body")
            p.set_dataset("big.json", size=1000)
            status, body = get("big.json")
            eq((len(body), json.loads(body)), (1000, []), "N-byte body")
            p.set_dataset("x.json", body='{"a": 1}')
            eq(get("x.json"), (200, b'{"a": 1}'), "body override")
            p.clear_dataset()
            eq(get("sectors.json")[0], 200, "overrides cleared")
            eq(len(p.dataset_requests("sectors.json")), 5, "dataset requests recorded")
        if os.path.isdir(data_dir()):
            with Platform(datasets_dir=data_dir()) as p2:
                eq(p2.dataset_url("x"), p2.url + "/datasets/x", "tests/data can be served")


def test_stix_bundle_push():
    cid = new_id()
    with Platform(BROKER, worker=True) as p:
        register(p, cid)
        bundle = {"type": "bundle", "id": "bundle--" + new_id(), "objects": [identity("P1"), identity("P2")]}
        q = ("mutation StixBundlePush($connectorId: String!, $bundle: String!, $work_id: String) "
             "{ stixBundlePush(connectorId: $connectorId, bundle: $bundle, work_id: $work_id) }")
        eq(post(p, q, {"connectorId": cid, "bundle": json.dumps(bundle), "work_id": None})[1],
           {"data": {"stixBundlePush": True}}, "bundle pushed")
        wid = wait_until(lambda: p.works_for(cid) and p.works_for(cid)[0]["id"], 10)
        wait_until(lambda: p.work(wid)["status"] == "complete", 20, message="worker splits and completes")
        eq(p.work(wid)["completed_number"], 2, "two objects")
        p.assert_no_violations()
        p.delete_connector(cid)


def main():
    global BROKER
    t0 = time.monotonic()
    BROKER = shared_broker()
    print("broker on port %d (%.1fs)" % (BROKER.port, time.monotonic() - t0))
    return run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
