"""The request pipeline of the OpenCTI 6.x GraphQL endpoint (Apollo Server 4 + OpenCTI's
plugins), over the gql module. Sources are listed at the top of gql.py.

Order, as in Apollo Server 4's requestPipeline: transport checks (400 BAD_REQUEST) ->
parse (GRAPHQL_PARSE_FAILED) -> validate (GRAPHQL_VALIDATION_FAILED, plus graphql-no-alias
limits) -> operation resolution (OPERATION_RESOLUTION_FAILURE) -> graphql-constraint-
directive plugin (BAD_USER_INPUT, only when the variables coerce) -> execute: variable
coercion (BAD_USER_INPUT, no `data`), then resolvers guarded by @auth. Every response that
carries GraphQL errors is sent with HTTP 200 (OpenCTI's httpResponsePlugin), every error
gets `name` = its code and BAD_USER_INPUT errors become VALIDATION_ERROR (OpenCTI's
formatError).
"""

from . import gql

# graphql-no-alias permissions configured by OpenCTI (graphql.js batchPermissions defaults).
BATCH_LIMITS = {"Query": {"*": 2, "subTypes": 4}, "Mutation": {"*": 1, "token": 1}}

# Stages whose errors mean "the real schema rejects this request".
REJECTION_STAGES = ("parse", "validation", "operation", "constraint", "coercion")


class Outcome:
    """What the pipeline made of one request.

    status: HTTP status; body: the JSON response (dict); stage: where it stopped ("http",
    "parse", "validation", "operation", "constraint", "coercion", "execution" or "ok");
    errors: the formatted errors; operation: the OperationDefinition (or None);
    root_fields: names of the root fields selected; variables: the coerced variables."""

    def __init__(self, status, body, stage, operation=None, variables=None):
        self.status, self.body, self.stage = status, body, stage
        self.errors = body.get("errors", []) if isinstance(body, dict) else []
        self.operation = operation
        self.variables = variables
        self.root_fields = []
        if operation is not None:
            self.root_fields = [s.name for s in operation.selection_set.selections if s.kind == "Field"]

    @property
    def rejected(self):
        """True when the real schema would reject the request (parse, validation,
        constraint or variable-coercion error)."""
        return self.stage in REJECTION_STAGES

    @property
    def messages(self):
        return [e.get("message") for e in self.errors]

    @property
    def operation_name(self):
        return self.operation.name if self.operation is not None else None

    @property
    def operation_type(self):
        return self.operation.operation if self.operation is not None else None


def opencti_format_error(formatted):
    """OpenCTI's formatError applied to an Apollo-formatted error dict."""
    ext = formatted.get("extensions") or {}
    if ext.get("code") == "BAD_USER_INPUT":
        data = {"http_status": 500, "genre": "BUSINESS"}
        if ext.get("field") is not None:
            data["field"] = ext["field"]
        for k, v in ext.items():
            if k != "http":
                data[k] = v
        formatted = {"message": formatted["message"],
                     "extensions": {"code": "VALIDATION_ERROR", "data": data}}
    out = dict(formatted)
    out["name"] = (out.get("extensions") or {}).get("code", "GraphQLError")
    return out


def _format(errors):
    out = []
    for e in errors:
        f = e.formatted() if isinstance(e, gql.GraphQLError) else dict(e)
        f.setdefault("extensions", {}).setdefault("code", "INTERNAL_SERVER_ERROR")
        out.append(opencti_format_error(f))
    return out


def bad_request(message):
    return Outcome(400, {"errors": [opencti_format_error(
        {"message": message, "extensions": {"code": "BAD_REQUEST"}})]}, "http")


# -- graphql-constraint-directive (apollo4 plugin + QueryValidationVisitor) -----------------

def _js_length(value):
    """validator.js isLength: UTF-16 length minus surrogate pairs and VS15/VS16."""
    return len(value) - value.count("\ufe0e") - value.count("\ufe0f")


def _string_constraint_error(args, value):
    if args.get("minLength") and _js_length(value) < args["minLength"]:
        return "Must be at least %d characters in length" % args["minLength"], "minLength"
    if args.get("maxLength") and _js_length(value) > args["maxLength"]:
        return "Must be no more than %d characters in length" % args["maxLength"], "maxLength"
    if args.get("startsWith") and not value.startswith(args["startsWith"]):
        return "Must start with %s" % args["startsWith"], "startsWith"
    if args.get("endsWith") and not value.endswith(args["endsWith"]):
        return "Must end with %s" % args["endsWith"], "endsWith"
    if args.get("notContains") and args["notContains"] in value:
        return "Must not contain %s" % args["notContains"], "notContains"
    fmt = args.get("format")
    if fmt == "not-blank":
        # OpenCTI's custom format (graphql.js)
        if len(value) > 0 and value.strip() == "":
            return "Value cannot have only whitespace(s)", "format"
    elif fmt:
        return "Invalid format type %s" % fmt, "format"
    return None


def _check_constraints(schema, operation, variables):
    errors = []

    def scalar(ivd, value, variable_name, arg_name, field_node, name_for_error, at):
        args = ivd.directives.get("constraint")
        if not args or not isinstance(value, str):
            return
        found = _string_constraint_error(args, value)
        if found is None:
            return
        text, which = found
        if variable_name:
            message = 'Variable "$%s" got invalid value "%s"%s. %s' % (variable_name, value, at, text)
        else:
            message = 'Argument "%s" of "%s" got invalid value "%s"%s. %s' % (
                arg_name, field_node.name, value, at, text)
        errors.append((message, name_for_error, [{"arg": which, "value": args[which]}]))

    def input_object(type_ref, value, variable_name, arg_name, field_node, parent_names):
        t = schema.named(type_ref)
        for fname, fdef in t.fields.items():
            full = parent_names + "." + fname if parent_names else fname
            v = value.get(fname, gql.UNDEFINED) if isinstance(value, dict) else gql.UNDEFINED
            ft = fdef.type.nullable
            if ft.kind == "NAMED" and schema.named(ft).kind == "INPUT_OBJECT":
                if v:
                    input_object(ft, v, variable_name, arg_name, field_node, full)
            elif ft.kind == "LIST":
                if isinstance(v, list):
                    for i, item in enumerate(v):
                        if ft.of.kind != "LIST" and schema.named(ft.of).kind == "INPUT_OBJECT":
                            input_object(ft.of, item, variable_name, arg_name, field_node,
                                         "%s[%d]" % (full, i))
            else:
                if v is gql.UNDEFINED or (not v and v != "" and v != 0) or v is False:
                    continue
                scalar(fdef, v, variable_name, arg_name, field_node, full, ' at "%s"' % full)

    def walk(sel_set, parent):
        for sel in sel_set.selections:
            if sel.kind != "Field" or sel.name == "__typename":
                continue
            fdef = parent.fields.get(sel.name)
            if fdef is None:
                continue
            for arg in sel.arguments:
                adef = fdef.args.get(arg.name)
                if adef is None:
                    continue
                value = gql.value_from_ast(schema, arg.value, adef.type, variables)
                variable_name = arg.value.name if arg.value.kind == "Variable" else None
                vt = adef.type.nullable
                if vt.kind == "NAMED" and schema.named(vt).kind == "INPUT_OBJECT":
                    if value:
                        input_object(vt, value, variable_name, arg.name, sel, variable_name)
                elif vt.kind == "NAMED":
                    if value is gql.UNDEFINED or (not value and value != "" and value != 0):
                        continue
                    scalar(adef, value, variable_name, arg.name, sel,
                           variable_name or sel.name + "." + arg.name, "")
            if sel.selection_set is not None:
                sub = schema.named(fdef.type)
                if sub.is_composite:
                    walk(sel.selection_set, sub)

    root = schema.query_type if operation.operation == "query" else schema.mutation_type
    walk(operation.selection_set, root)
    if not errors:
        return []
    if len(errors) == 1:
        message, field, context = errors[0]
        return [{"message": message, "extensions": {"field": field, "context": context,
                                                    "code": "BAD_USER_INPUT"}}]
    return [{"message": "Query is invalid, for details see extensions.validationErrors",
             "extensions": {"code": "BAD_USER_INPUT",
                            "validationErrors": [{"message": m, "extensions": {
                                "field": f, "context": c, "code": "BAD_USER_INPUT"}}
                                for m, f, c in errors]}}]


# -- @auth ------------------------------------------------------------------------------------

def expand_capabilities(capabilities):
    """OpenCTI users hold every prefix of their capability names (KNOWLEDGE_KNUPDATE
    implies KNOWLEDGE)."""
    out = set()
    for cap in capabilities:
        parts = cap.split("_")
        for i in range(1, len(parts) + 1):
            out.add("_".join(parts[:i]))
    return out


def auth_hook(user):
    """A gql field hook enforcing @auth like OpenCTI's authDirective: no user ->
    AUTH_REQUIRED; a `for` list none of whose capabilities the user holds (BYPASS holds
    all) -> FORBIDDEN_ACCESS."""
    def hook(info):
        auth = info.field_def.directives.get("auth")
        if auth is None:
            auth = info.parent_type.directives.get("auth")
        if auth is None:
            return
        if user is None:
            raise gql.ResolverError("You must be logged in to do this.", "AUTH_REQUIRED",
                                    {"http_status": 401, "genre": "TECHNICAL"})
        required = auth.get("for") or []
        if not required:
            return
        caps = user["capabilities"]
        if "BYPASS" in caps:
            return
        held = [c for c in required if c in caps]
        if auth.get("and") and len(held) != len(required) or not held:
            raise gql.ResolverError("You are not allowed to do this.", "FORBIDDEN_ACCESS",
                                    {"http_status": 403, "genre": "TECHNICAL"})
    return hook


# -- the pipeline -------------------------------------------------------------------------------

def handle(schema, request, resolvers, user=None, context=None, batch_limits=BATCH_LIMITS):
    """Runs one GraphQL POST body (already JSON-decoded) through the pipeline.

    schema: gql.Schema; request: the decoded body; resolvers: see gql.execute; user: None
    (not authenticated) or {"id": ..., "capabilities": set}; context: passed to resolvers
    as info.context. Returns an Outcome."""
    if not isinstance(request, dict) or not request:
        return bad_request("POST body missing, invalid Content-Type, or JSON object has no keys.")
    query = request.get("query")
    if not isinstance(query, str) or not query:
        return bad_request("GraphQL operations must contain a non-empty `query` or a "
                            "`persistedQuery` extension.")
    variables = request.get("variables")
    if variables is not None and not isinstance(variables, dict):
        return bad_request("`variables` in a POST body should be provided as an object.")
    operation_name = request.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        return bad_request("`operationName` in a POST body must be a string if provided.")
    extensions = request.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        return bad_request("`extensions` in a POST body must be an object if provided.")
    variables = variables or {}

    try:
        document = gql.parse(query)
    except gql.GraphQLError as e:
        e.extensions["code"] = "GRAPHQL_PARSE_FAILED"
        return Outcome(200, {"errors": _format([e])}, "parse")

    errors = gql.validate(schema, document, batch_limits)
    operations = [d for d in document.definitions if d.kind == "OperationDefinition"]
    if errors:
        return Outcome(200, {"errors": _format(errors)}, "validation",
                       operations[0] if len(operations) == 1 else None)

    if operation_name is None:
        if len(operations) != 1:
            return Outcome(200, {"errors": _format([gql.GraphQLError(
                "Must provide operation name if query contains multiple operations.",
                extensions={"code": "OPERATION_RESOLUTION_FAILURE"})])}, "operation")
        operation = operations[0]
    else:
        found = [o for o in operations if o.name == operation_name]
        if not found:
            return Outcome(200, {"errors": _format([gql.GraphQLError(
                'Unknown operation named "%s".' % operation_name,
                extensions={"code": "OPERATION_RESOLUTION_FAILURE"})])}, "operation")
        operation = found[0]

    coerced, coercion_errors = gql.coerce_variable_values(schema, operation, variables)
    if not coercion_errors:
        constraint_errors = _check_constraints(schema, operation, coerced)
        if constraint_errors:
            return Outcome(200, {"errors": _format(constraint_errors)}, "constraint", operation, coerced)
    else:
        return Outcome(200, {"errors": _format(coercion_errors)}, "coercion", operation)

    data, exec_errors = gql.execute(schema, operation, coerced, resolvers, context,
                                    field_hook=auth_hook(user))
    body = {}
    if exec_errors:
        body["errors"] = _format(exec_errors)
    body["data"] = data
    return Outcome(200, body, "execution" if exec_errors else "ok", operation, coerced)
