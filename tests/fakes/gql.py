"""A small GraphQL front end for the platform double.

It parses the GraphQL an OpenCTI connector sends (one operation, variables, nested
selections, arguments given as variables or literals, aliases, directives @include and
@skip, comments), validates it against a schema model the way graphql-js does, coerces the
`variables` JSON the way graphql-js does, and executes it against Python resolvers. Error
texts copy graphql-js v16, which is what the OpenCTI 6.x platform runs under Apollo Server 4.

The schema model is read from SDL text (see schema_opencti.py), parsed by the same lexer.

What the real platform answers, as found in the sources (stored copies, read 2026-12)
------------------------------------------------------------------------------------
Citation keys: [OC] OpenCTI-Platform/opencti, opencti-platform/opencti-graphql/src/...;
[GJ] graphql/graphql-js; [AS] apollographql/apollo-server; [CD] confuser/graphql-constraint-directive;
[GS] Urigo/graphql-scalars.

* HTTP status: always 200 when the response carries GraphQL errors. OpenCTI installs
  `httpResponsePlugin` [OC graphql/httpResponsePlugin.js, both stored versions]:
  `willSendResponse({errors, response}) { if (errors) response.http.status = 200; }`.
  So although Apollo Server 4 alone would answer 400 for GRAPHQL_PARSE_FAILED and
  GRAPHQL_VALIDATION_FAILED [AS internalErrorClasses.js: SyntaxError/ValidationError carry
  http 400; discussion #7362] and 200 for variable-coercion errors unless the
  `status400ForVariableCoercionErrors` option is set (the "known regression", [AS] PR #7465,
  which OpenCTI's graphql.js does not set), OpenCTI answers 200 in every case.
  Transport-level errors raised before the request pipeline (no `query`, `variables` not an
  object, POST body missing or wrong Content-Type) keep Apollo's 400 with code BAD_REQUEST
  (inferred: they are answered before any plugin's willSendResponse runs).
* Error objects: OpenCTI's `formatError` [OC graphql/graphql.js, Apollo 4 version] adds
  `name` = `extensions.code` to every error ("to maintain compatibility with client in
  version 3"), and replaces every BAD_USER_INPUT error (variable coercion, and the
  @constraint plugin) by its own `ValidationError(message, extensions.field,
  extensions)`, i.e. `{message, extensions: {code: "VALIDATION_ERROR", data: {http_status:
  500, genre: "BUSINESS", field, ...original extensions}}, name: "VALIDATION_ERROR"}`
  (locations are lost in that conversion) [OC config/errors.ts: `error(type, message,
  data) = new GraphQLError(message, {extensions: {code: type, data}})`]. Validation errors
  keep `extensions.code` GRAPHQL_VALIDATION_FAILED and their locations; parse errors
  GRAPHQL_PARSE_FAILED.
* Field suggestions ("Did you mean ...?") are kept: graphql-armor's blockFieldSuggestion
  only runs when armor is enabled, and `app:graphql:armor_protection:disabled` defaults to
  true [OC config/conf.js GRAPHQL_ARMOR_DISABLED]. Suggestions are computed here with
  graphql-js's suggestionList over the *modelled* names, so for types that are modelled
  partially (Query, Mutation, and the type map used for "Unknown type") the suggestion
  list can differ from the real server's; the sentence before " Did you mean" is exact.
* Authentication: an invalid or missing token does not fail the HTTP request; the
  context is built without a user [OC http/httpAuthenticatedContext.js swallows the
  authentication error] and the @auth directive of each field throws `AuthRequired`:
  message "You must be logged in to do this.", extensions.code "AUTH_REQUIRED",
  extensions.data {http_status: 401, genre: "TECHNICAL"} [OC config/errors.ts], HTTP 200,
  with `data` holding null for the failed field (`{"about": null}`). A missing capability
  gives FORBIDDEN_ACCESS "You are not allowed to do this." (http_status 403).
* Other resolver errors used here: FUNCTIONAL_ERROR "No connector found with the specified
  ID" with data {http_status: 400, genre: "BUSINESS", id} [OC domain/connector.ts
  pingConnector]. Dereferencing a missing work or connector in work.js throws a plain
  JavaScript TypeError, which Apollo reports with code INTERNAL_SERVER_ERROR and the
  TypeError's text [OC domain/work.js, 6.x copy @ d7f0cf45].
* Input constraints: RegisterConnectorInput.name has `@constraint(minLength: 2, format:
  "not-blank")`, checked by graphql-constraint-directive's Apollo 4 plugin after
  validation and only when the variables coerce [CD apollo4.js, lib/query-validation-
  visitor.js]: `Variable "$input" got invalid value "x" at "input.name". Must be at least 2
  characters in length`; OpenCTI's not-blank format throws "Value cannot have only
  whitespace(s)" [OC graphql.js].
* DateTime is graphql-scalars' GraphQLDateTime [OC graphql/schema.js]: variables must be
  strings shaped YYYY-MM-DDThh:mm:ss(.s+)?(Z|+hh:mm) ("DateTime cannot represent non
  string or Date type <JSON>", "DateTime cannot represent an invalid date-time-string
  <value>.") [GS src/scalars/iso-date/DateTime.ts, validator.ts].
* Aliases: graphql-no-alias allows each Mutation root field once and each Query root field
  twice per document: "Allowed number of calls for Mutation->pingConnector has been
  exceeded (max: 1)" [OC graphql.js batchPermissions; graphql-no-alias createErrorMsg].
* graphql-js v16 wording [GJ src/execution/values.ts coerceVariableValues, src/utilities/
  coerceInputValue.ts, src/type/scalars.ts and its tests, src/validation/rules/*]:
  see the message templates in the code below; they were checked against stored copies
  for coerceVariableValues ("Variable "$x" got invalid value <inspect> at "x.path"; ..."),
  coerceInputValue ("Field "f" is not defined by type "T".", "Expected type "T" to be an
  object.", "Field "f" of required type "T!" was not provided."), scalar parseValue texts
  (Int/Float/String/Boolean/ID) and the rule texts; the remaining rule texts are from
  graphql-js v16 as remembered and may differ in detail.

Known gaps: fragments (named and inline) are parsed but reported as unsupported by this
double; OverlappingFieldsCanBeMerged only compares fields of one selection set (no deep
merge); source columns count code points where graphql-js counts UTF-16 units.
"""

import bisect
import math
import re

__all__ = [
    "GraphQLError", "GraphQLSyntaxError", "ResolverError", "UNDEFINED",
    "parse", "parse_sdl", "build_schema", "validate", "coerce_variable_values",
    "execute", "inspect", "print_value", "suggestion_list", "did_you_mean",
]


class _Undefined:
    """Marks 'no value' (JavaScript undefined), distinct from None (null)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "UNDEFINED"

    def __bool__(self):
        return False


UNDEFINED = _Undefined()


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

class GraphQLError(Exception):
    """An error with the fields graphql-js puts in a response: message, locations, path,
    extensions. `nodes` are AST nodes (or tokens) whose (line, column) become locations."""

    def __init__(self, message, nodes=None, path=None, extensions=None, locations=None):
        super().__init__(message)
        self.message = message
        if locations is None:
            locations = []
            for node in nodes or []:
                loc = getattr(node, "loc", None)
                if loc is not None:
                    locations.append({"line": loc[0], "column": loc[1]})
        self.locations = locations
        self.path = path
        self.extensions = dict(extensions or {})

    def formatted(self):
        """The error as graphql-js's toJSON would show it (keys with no value omitted)."""
        out = {"message": self.message}
        if self.locations:
            out["locations"] = list(self.locations)
        if self.path is not None:
            out["path"] = list(self.path)
        if self.extensions:
            out["extensions"] = dict(self.extensions)
        return out


class GraphQLSyntaxError(GraphQLError):
    """A lexer or parser error ("Syntax Error: ...")."""

    def __init__(self, description, line, column):
        super().__init__("Syntax Error: " + description,
                         locations=[{"line": line, "column": column}])


class ResolverError(Exception):
    """Raised by a resolver to fail its field; `payload` becomes the response error (its
    `locations` and `path` are filled in by the executor)."""

    def __init__(self, message, code="INTERNAL_SERVER_ERROR", data=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.data = data


# ---------------------------------------------------------------------------------------
# JavaScript-compatible text helpers (inspect, JSON.stringify, Number#toString)
# ---------------------------------------------------------------------------------------

def js_number(value):
    """Formats a number the way JavaScript's String(number) does."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if abs(value) < 10 ** 21:
            return str(value)
        value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    text = repr(abs(value))
    # Split Python's shortest round-trip repr into digits and decimal exponent.
    mantissa, _, exp = text.partition("e")
    exp = int(exp) if exp else 0
    if "." in mantissa:
        whole, frac = mantissa.split(".")
    else:
        whole, frac = mantissa, ""
    digits = (whole + frac).lstrip("0")
    # position of the decimal point relative to the start of `digits`
    point = len(whole) + exp - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        body = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + body


_JS_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n",
               "\r": "\\r", "\t": "\\t"}


def js_stringify_string(text):
    """JSON.stringify for a string (well-formed: lone surrogates become \\udxxx)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _JS_ESCAPES:
            out.append(_JS_ESCAPES[ch])
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            out.append("\\u%04x" % code)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def js_json(value):
    """JSON.stringify for a JSON-like Python value (compact, JavaScript number format)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number(value) if math.isfinite(value) else "null"
    if isinstance(value, str):
        return js_stringify_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(js_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(js_stringify_string(str(k)) + ":" + js_json(v) for k, v in value.items()) + "}"
    return js_stringify_string(str(value))


def inspect(value, _seen=()):
    """graphql-js jsutils/inspect: how error messages show a JSON value.

    Objects print as `{ key: value }`, arrays as `[a, b]`, both replaced by `[Object]` /
    `[Array]` below depth 2, arrays cut after 10 items."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, str):
        return js_stringify_string(value)
    if isinstance(value, (bool, int, float)):
        return js_number(value)
    if isinstance(value, TypeRef):
        return str(value)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if len(_seen) >= 2:   # graphql-js counts the value itself: seenValues.length > 2
            return "[Array]"
        seen = _seen + (id(value),)
        items = [inspect(v, seen) for v in value[:10]]
        rest = len(value) - 10
        if rest == 1:
            items.append("... 1 more item")
        elif rest > 1:
            items.append("... %d more items" % rest)
        return "[" + ", ".join(items) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        if len(_seen) >= 2:
            return "[Object]"
        seen = _seen + (id(value),)
        return "{ " + ", ".join("%s: %s" % (k, inspect(v, seen)) for k, v in value.items()) + " }"
    return str(value)


# ---------------------------------------------------------------------------------------
# Suggestions (graphql-js jsutils/suggestionList, didYouMean, naturalCompare)
# ---------------------------------------------------------------------------------------

def _lexical_distance(a_input, option, threshold):
    if a_input == option:
        return 0
    a_lower, o_lower = a_input.lower(), option.lower()
    if a_lower == o_lower:
        return 1
    a, b = list(o_lower), list(a_lower)
    if len(a) < len(b):
        a, b = b, a
    if len(a) - len(b) > threshold:
        return None
    rows = [[0] * (len(b) + 1) for _ in range(3)]
    for j in range(len(b) + 1):
        rows[0][j] = j
    for i in range(1, len(a) + 1):
        up, cur = rows[(i - 1) % 3], rows[i % 3]
        cur[0] = i
        smallest = i
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cell = min(up[j] + 1, cur[j - 1] + 1, up[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cell = min(cell, rows[(i - 2) % 3][j - 2] + 1)
            smallest = min(smallest, cell)
            cur[j] = cell
        if smallest > threshold:
            return None
    distance = rows[len(a) % 3][len(b)]
    return distance if distance <= threshold else None


def _natural_key(text):
    return [(0, int(part), part) if part.isdigit() else (1, 0, part)
            for part in re.findall(r"\d+|\D+", text)]


def suggestion_list(inp, options):
    """Options close to `inp`, best first (graphql-js suggestionList)."""
    threshold = len(inp) * 4 // 10 + 1
    found = {}
    for option in options:
        d = _lexical_distance(inp, option, threshold)
        if d is not None:
            found[option] = d
    return sorted(found, key=lambda o: (found[o], _natural_key(o)))


def did_you_mean(suggestions, sub_message=None):
    """graphql-js didYouMean: '' or ' Did you mean "a", "b", or "c"?' (at most 5)."""
    message = " Did you mean " + (sub_message + " " if sub_message else "")
    quoted = ['"%s"' % s for s in suggestions]
    if not quoted:
        return ""
    if len(quoted) == 1:
        return message + quoted[0] + "?"
    if len(quoted) == 2:
        return message + quoted[0] + " or " + quoted[1] + "?"
    selected = quoted[:5]
    last = selected.pop()
    return message + ", ".join(selected) + ", or " + last + "?"


# ---------------------------------------------------------------------------------------
# Lexer
# ---------------------------------------------------------------------------------------

PUNCTUATORS = set("!$&():=@[]{}|") | {"..."}


class Token:
    __slots__ = ("kind", "value", "start", "end", "line", "column")

    def __init__(self, kind, value, start, end, line, column):
        self.kind, self.value = kind, value
        self.start, self.end, self.line, self.column = start, end, line, column

    @property
    def loc(self):
        return (self.line, self.column)

    def desc(self):
        kind = '"%s"' % self.kind if self.kind in PUNCTUATORS else self.kind
        return kind + (' "%s"' % self.value if self.value is not None else "")


def _kind_desc(kind):
    return '"%s"' % kind if kind in PUNCTUATORS else kind


_NAME_START = re.compile(r"[_A-Za-z]")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


class Lexer:
    """Turns a source text into GraphQL tokens (graphql-js language/lexer.ts)."""

    def __init__(self, body):
        self.body = body
        self.pos = 1 if body.startswith("\ufeff") else 0
        # offsets where lines start ("\r\n", "\n" and "\r" end a line)
        self.line_starts = [0] + [m.end() for m in re.finditer(r"\r\n|\n|\r", body)]

    def _err(self, description, pos):
        return GraphQLSyntaxError(description, *self._loc(pos))

    def _loc(self, pos):
        line = bisect.bisect_right(self.line_starts, pos)
        return line, pos - self.line_starts[line - 1] + 1

    def _char_desc(self, pos):
        if pos >= len(self.body):
            return "<EOF>"
        ch = self.body[pos]
        code = ord(ch)
        if 0x20 <= code <= 0x7E:
            return '"\\""' if ch == '"' else '"%s"' % ch
        return "U+%04X" % code

    def _token(self, kind, start, end, value=None):
        line, column = self._loc(start)
        return Token(kind, value, start, end, line, column)

    def tokens(self):
        """Yields tokens up to and including <EOF> (comments are skipped)."""
        body = self.body
        n = len(body)
        while True:
            # whitespace, line terminators, commas, comments
            while self.pos < n:
                ch = body[self.pos]
                if ch in " \t,\ufeff\n\r":
                    self.pos += 1
                elif ch == "#":
                    while self.pos < n and body[self.pos] not in "\n\r":
                        self.pos += 1
                else:
                    break
            if self.pos >= n:
                yield self._token("<EOF>", n, n)
                return
            start = self.pos
            ch = body[start]
            if ch == "." :
                if body.startswith("...", start):
                    self.pos += 3
                    yield self._token("...", start, start + 3)
                    continue
                raise self._err("Unexpected character: %s." % self._char_desc(start), start)
            if ch in "!$&():=@[]{}|":
                self.pos += 1
                yield self._token(ch, start, start + 1)
                continue
            if _NAME_START.match(ch):
                m = _NAME.match(body, start)
                self.pos = m.end()
                yield self._token("Name", start, m.end(), m.group())
                continue
            if ch == "-" or ch.isdigit() and ch.isascii():
                yield self._read_number(start)
                continue
            if ch == '"':
                if body.startswith('"""', start):
                    yield self._read_block_string(start)
                else:
                    yield self._read_string(start)
                continue
            raise self._err("Unexpected character: %s." % self._char_desc(start), start)

    def _read_digits(self, pos):
        body = self.body
        if pos >= len(body) or not ("0" <= body[pos] <= "9"):
            raise self._err("Invalid number, expected digit but got: %s." % self._char_desc(pos), pos)
        while pos < len(body) and "0" <= body[pos] <= "9":
            pos += 1
        return pos

    def _read_number(self, start):
        body = self.body
        pos = start
        is_float = False
        if body[pos] == "-":
            pos += 1
        if pos < len(body) and body[pos] == "0":
            pos += 1
            if pos < len(body) and "0" <= body[pos] <= "9":
                raise self._err("Invalid number, unexpected digit after 0: %s." % self._char_desc(pos), pos)
        else:
            pos = self._read_digits(pos)
        if pos < len(body) and body[pos] == ".":
            is_float = True
            pos = self._read_digits(pos + 1)
        if pos < len(body) and body[pos] in "eE":
            is_float = True
            pos += 1
            if pos < len(body) and body[pos] in "+-":
                pos += 1
            pos = self._read_digits(pos)
        if pos < len(body) and (body[pos] == "." or _NAME_START.match(body[pos])):
            raise self._err("Invalid number, expected digit but got: %s." % self._char_desc(pos), pos)
        self.pos = pos
        return self._token("Float" if is_float else "Int", start, pos, body[start:pos])

    def _read_string(self, start):
        body = self.body
        pos = start + 1
        chunk = pos
        value = []
        while pos < len(body):
            ch = body[pos]
            if ch == '"':
                value.append(body[chunk:pos])
                self.pos = pos + 1
                return self._token("String", start, pos + 1, "".join(value))
            if ch == "\\":
                value.append(body[chunk:pos])
                esc = body[pos + 1] if pos + 1 < len(body) else ""
                simple = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f",
                          "n": "\n", "r": "\r", "t": "\t"}
                if esc in simple:
                    value.append(simple[esc])
                    pos += 2
                elif esc == "u":
                    if body.startswith("{", pos + 2):
                        end = body.find("}", pos + 3)
                        hexpart = body[pos + 3:end] if end > 0 else ""
                        if end < 0 or not re.fullmatch(r"[0-9A-Fa-f]{1,6}", hexpart) \
                                or int(hexpart, 16) > 0x10FFFF:
                            raise self._err('Invalid Unicode escape sequence: "%s".'
                                            % body[pos:(end + 1 if end > 0 else pos + 3)], pos)
                        value.append(chr(int(hexpart, 16)))
                        pos = end + 1
                    else:
                        hexpart = body[pos + 2:pos + 6]
                        if not re.fullmatch(r"[0-9A-Fa-f]{4}", hexpart):
                            raise self._err('Invalid Unicode escape sequence: "%s".'
                                            % body[pos:pos + 6], pos)
                        value.append(chr(int(hexpart, 16)))
                        pos += 6
                else:
                    raise self._err('Invalid character escape sequence: "%s".'
                                    % body[pos:pos + 2], pos)
                chunk = pos
                continue
            if ch in "\n\r":
                break
            if ord(ch) < 0x20 and ch != "\t":
                raise self._err("Invalid character within String: %s." % self._char_desc(pos), pos)
            pos += 1
        raise self._err("Unterminated string.", pos)

    def _read_block_string(self, start):
        body = self.body
        pos = start + 3
        raw = []
        chunk = pos
        while pos < len(body):
            if body.startswith('"""', pos):
                raw.append(body[chunk:pos])
                self.pos = pos + 3
                return self._token("BlockString", start, pos + 3,
                                   _dedent_block_string("".join(raw)))
            if body.startswith('\\"""', pos):
                raw.append(body[chunk:pos] + '"""')
                pos += 4
                chunk = pos
                continue
            pos += 1
        raise self._err("Unterminated string.", pos)


def _dedent_block_string(raw):
    """graphql-js dedentBlockStringLines."""
    lines = re.split(r"\r\n|[\n\r]", raw)
    common = None
    first_non_empty = None
    last_non_empty = -1
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip(" \t"))
        if indent == len(line):
            continue
        first_non_empty = i if first_non_empty is None else first_non_empty
        last_non_empty = i
        if i != 0 and (common is None or indent < common):
            common = indent
    if first_non_empty is None:
        return ""
    out = [line if i == 0 else line[common or 0:] for i, line in enumerate(lines)]
    return "\n".join(out[first_non_empty:last_non_empty + 1])


# ---------------------------------------------------------------------------------------
# AST
# ---------------------------------------------------------------------------------------

class Node:
    """Base AST node; `loc` is (line, column) of its first token."""

    kind = "Node"

    def __init__(self, loc, **fields):
        self.loc = loc
        for k, v in fields.items():
            setattr(self, k, v)

    def __repr__(self):
        fields = {k: v for k, v in self.__dict__.items() if k != "loc"}
        return "%s(%s)" % (self.kind, fields)


def _node_class(name):
    return type(name, (Node,), {"kind": name})


Document = _node_class("Document")
OperationDefinition = _node_class("OperationDefinition")
FragmentDefinition = _node_class("FragmentDefinition")
VariableDefinition = _node_class("VariableDefinition")
SelectionSet = _node_class("SelectionSet")
Field = _node_class("Field")
FragmentSpread = _node_class("FragmentSpread")
InlineFragment = _node_class("InlineFragment")
Argument = _node_class("Argument")
Directive = _node_class("Directive")
NamedTypeNode = _node_class("NamedType")
ListTypeNode = _node_class("ListType")
NonNullTypeNode = _node_class("NonNullType")
Variable = _node_class("Variable")
IntValue = _node_class("IntValue")
FloatValue = _node_class("FloatValue")
StringValue = _node_class("StringValue")
BooleanValue = _node_class("BooleanValue")
NullValue = _node_class("NullValue")
EnumValue = _node_class("EnumValue")
ListValue = _node_class("ListValue")
ObjectValue = _node_class("ObjectValue")
ObjectField = _node_class("ObjectField")


def print_type_node(node):
    """Prints a type AST node (`[String!]!`)."""
    if node.kind == "NonNullType":
        return print_type_node(node.type) + "!"
    if node.kind == "ListType":
        return "[" + print_type_node(node.type) + "]"
    return node.name


def _print_string(value):
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(code, "\\u%04X" % code))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def print_value(node):
    """graphql-js print() for value nodes."""
    k = node.kind
    if k == "Variable":
        return "$" + node.name
    if k in ("IntValue", "FloatValue", "EnumValue"):
        return node.value
    if k == "StringValue":
        if node.block:
            return '"""' + node.value.replace('"""', '\\"""') + '"""'
        return _print_string(node.value)
    if k == "BooleanValue":
        return "true" if node.value else "false"
    if k == "NullValue":
        return "null"
    if k == "ListValue":
        return "[" + ", ".join(print_value(v) for v in node.values) + "]"
    if k == "ObjectValue":
        return "{" + ", ".join(f.name + ": " + print_value(f.value) for f in node.fields) + "}"
    raise TypeError(k)


# ---------------------------------------------------------------------------------------
# Parser (executable documents and the SDL subset used for the schema model)
# ---------------------------------------------------------------------------------------

class Parser:
    """Recursive-descent parser over Lexer tokens (graphql-js language/parser.ts)."""

    def __init__(self, source):
        self.tokens = list(Lexer(source).tokens())
        self.i = 0

    @property
    def tok(self):
        return self.tokens[self.i]

    def peek(self, kind):
        return self.tok.kind == kind

    def advance(self):
        t = self.tok
        if t.kind != "<EOF>":
            self.i += 1
        return t

    def expect(self, kind):
        t = self.tok
        if t.kind == kind:
            return self.advance()
        raise GraphQLSyntaxError("Expected %s, found %s." % (_kind_desc(kind), t.desc()), t.line, t.column)

    def skip(self, kind):
        if self.tok.kind == kind:
            self.advance()
            return True
        return False

    def expect_keyword(self, value):
        t = self.tok
        if t.kind == "Name" and t.value == value:
            return self.advance()
        raise GraphQLSyntaxError('Expected "%s", found %s.' % (value, t.desc()), t.line, t.column)

    def unexpected(self, t=None):
        t = t or self.tok
        return GraphQLSyntaxError("Unexpected %s." % t.desc(), t.line, t.column)

    def name(self):
        return self.expect("Name").value

    # -- executable documents ------------------------------------------------------------
    def parse_document(self):
        start = self.tok
        definitions = []
        while True:
            definitions.append(self.parse_definition())
            if self.peek("<EOF>"):
                break
        return Document(start.loc, definitions=definitions)

    def parse_definition(self):
        t = self.tok
        if t.kind == "{":
            return self.parse_operation()
        if t.kind == "Name":
            if t.value in ("query", "mutation", "subscription"):
                return self.parse_operation()
            if t.value == "fragment":
                return self.parse_fragment_definition()
        raise self.unexpected()

    def parse_operation(self):
        start = self.tok
        if start.kind == "{":
            return OperationDefinition(start.loc, operation="query", name=None,
                                       variable_definitions=[], directives=[],
                                       selection_set=self.parse_selection_set())
        operation = self.advance().value
        name = self.name() if self.peek("Name") else None
        var_defs = []
        if self.skip("("):
            while True:
                var_defs.append(self.parse_variable_definition())
                if self.skip(")"):
                    break
        directives = self.parse_directives(const=False)
        return OperationDefinition(start.loc, operation=operation, name=name,
                                   variable_definitions=var_defs, directives=directives,
                                   selection_set=self.parse_selection_set())

    def parse_variable_definition(self):
        start = self.expect("$")
        name = self.name()
        self.expect(":")
        type_node = self.parse_type()
        default = self.parse_value(const=True) if self.skip("=") else None
        directives = self.parse_directives(const=True)
        return VariableDefinition(start.loc, name=name, type=type_node, default_value=default,
                                  directives=directives,
                                  variable=Variable(start.loc, name=name))

    def parse_selection_set(self):
        start = self.expect("{")
        selections = []
        while True:
            selections.append(self.parse_selection())
            if self.skip("}"):
                break
        return SelectionSet(start.loc, selections=selections)

    def parse_selection(self):
        if self.peek("..."):
            start = self.advance()
            if self.peek("Name") and self.tok.value != "on":
                name = self.name()
                return FragmentSpread(start.loc, name=name, directives=self.parse_directives(False))
            type_condition = None
            if self.peek("Name") and self.tok.value == "on":
                self.advance()
                type_condition = self.name()
            directives = self.parse_directives(False)
            return InlineFragment(start.loc, type_condition=type_condition, directives=directives,
                                  selection_set=self.parse_selection_set())
        start = self.tok
        first = self.name()
        alias, name = None, first
        if self.skip(":"):
            alias, name = first, self.name()
        arguments = self.parse_arguments(const=False)
        directives = self.parse_directives(const=False)
        selection_set = self.parse_selection_set() if self.peek("{") else None
        return Field(start.loc, alias=alias, name=name, arguments=arguments,
                     directives=directives, selection_set=selection_set)

    def parse_fragment_definition(self):
        start = self.expect_keyword("fragment")
        name = self.name()
        self.expect_keyword("on")
        type_condition = self.name()
        directives = self.parse_directives(False)
        return FragmentDefinition(start.loc, name=name, type_condition=type_condition,
                                  directives=directives, selection_set=self.parse_selection_set())

    def parse_arguments(self, const):
        args = []
        if self.skip("("):
            while True:
                start = self.tok
                name = self.name()
                self.expect(":")
                args.append(Argument(start.loc, name=name, value=self.parse_value(const)))
                if self.skip(")"):
                    break
        return args

    def parse_directives(self, const):
        directives = []
        while self.peek("@"):
            start = self.advance()
            name = self.name()
            directives.append(Directive(start.loc, name=name, arguments=self.parse_arguments(const)))
        return directives

    def parse_type(self):
        start = self.tok
        if self.skip("["):
            inner = self.parse_type()
            self.expect("]")
            node = ListTypeNode(start.loc, type=inner)
        else:
            node = NamedTypeNode(start.loc, name=self.name())
        if self.skip("!"):
            node = NonNullTypeNode(start.loc, type=node)
        return node

    def parse_value(self, const):
        t = self.tok
        k = t.kind
        if k == "[":
            self.advance()
            values = []
            while not self.skip("]"):
                values.append(self.parse_value(const))
            return ListValue(t.loc, values=values)
        if k == "{":
            self.advance()
            fields = []
            while not self.skip("}"):
                ft = self.tok
                fname = self.name()
                self.expect(":")
                fields.append(ObjectField(ft.loc, name=fname, value=self.parse_value(const)))
            return ObjectValue(t.loc, fields=fields)
        if k == "Int":
            self.advance()
            return IntValue(t.loc, value=t.value)
        if k == "Float":
            self.advance()
            return FloatValue(t.loc, value=t.value)
        if k in ("String", "BlockString"):
            self.advance()
            return StringValue(t.loc, value=t.value, block=(k == "BlockString"))
        if k == "Name":
            self.advance()
            if t.value in ("true", "false"):
                return BooleanValue(t.loc, value=(t.value == "true"))
            if t.value == "null":
                return NullValue(t.loc)
            return EnumValue(t.loc, value=t.value)
        if k == "$":
            if not const:
                self.advance()
                return Variable(t.loc, name=self.name())
            n = self.tokens[self.i + 1]
            if n.kind == "Name":
                raise GraphQLSyntaxError('Unexpected variable "$%s" in constant value.' % n.value,
                                         t.line, t.column)
        raise self.unexpected()

    # -- SDL subset ----------------------------------------------------------------------
    def parse_sdl(self):
        """Returns a list of (kind, name, payload) type-system definitions."""
        defs = []
        while not self.peek("<EOF>"):
            self._skip_description()
            kw = self.name()
            if kw == "scalar":
                name = self.name()
                defs.append(("scalar", name, {"directives": self._const_directives()}))
            elif kw == "enum":
                name = self.name()
                directives = self._const_directives()
                values = []
                self.expect("{")
                while not self.skip("}"):
                    self._skip_description()
                    values.append(self.name())
                    self._const_directives()
                defs.append(("enum", name, {"values": values, "directives": directives}))
            elif kw in ("type", "interface"):
                name = self.name()
                interfaces = []
                if self.peek("Name") and self.tok.value == "implements":
                    self.advance()
                    self.skip("&")
                    interfaces.append(self.name())
                    while self.skip("&"):
                        interfaces.append(self.name())
                directives = self._const_directives()
                fields = []
                self.expect("{")
                while not self.skip("}"):
                    fields.append(self._field_definition())
                defs.append((kw, name, {"fields": fields, "interfaces": interfaces,
                                        "directives": directives}))
            elif kw == "input":
                name = self.name()
                directives = self._const_directives()
                fields = []
                self.expect("{")
                while not self.skip("}"):
                    fields.append(self._input_value_definition())
                defs.append(("input", name, {"fields": fields, "directives": directives}))
            elif kw == "directive":
                self.expect("@")
                name = self.name()
                args = []
                if self.skip("("):
                    while not self.skip(")"):
                        args.append(self._input_value_definition())
                if self.peek("Name") and self.tok.value == "repeatable":
                    self.advance()
                self.expect_keyword("on")
                self.skip("|")
                locations = [self.name()]
                while self.skip("|"):
                    locations.append(self.name())
                defs.append(("directive", name, {"args": args, "locations": locations}))
            else:
                raise self.unexpected(self.tokens[self.i - 1])
        return defs

    def _skip_description(self):
        while self.peek("String") or self.peek("BlockString"):
            self.advance()

    def _const_directives(self):
        out = {}
        for d in self.parse_directives(const=True):
            out[d.name] = {a.name: value_from_ast_untyped(a.value) for a in d.arguments}
        return out

    def _field_definition(self):
        self._skip_description()
        start = self.tok
        name = self.name()
        args = []
        if self.skip("("):
            while not self.skip(")"):
                args.append(self._input_value_definition())
        self.expect(":")
        type_node = self.parse_type()
        return {"name": name, "type": type_node, "args": args,
                "directives": self._const_directives(), "loc": start.loc}

    def _input_value_definition(self):
        self._skip_description()
        name = self.name()
        self.expect(":")
        type_node = self.parse_type()
        default = self.parse_value(const=True) if self.skip("=") else None
        return {"name": name, "type": type_node, "default": default,
                "directives": self._const_directives()}


def parse(source):
    """Parses an executable document; raises GraphQLSyntaxError."""
    return Parser(source).parse_document()


def parse_sdl(source):
    """Parses the SDL subset used by the schema model."""
    return Parser(source).parse_sdl()


def value_from_ast_untyped(node, variables=None):
    """graphql-js valueFromASTUntyped (used for directive arguments in the SDL)."""
    k = node.kind
    if k == "NullValue":
        return None
    if k == "IntValue":
        return int(node.value)
    if k == "FloatValue":
        return float(node.value)
    if k in ("StringValue", "EnumValue"):
        return node.value
    if k == "BooleanValue":
        return node.value
    if k == "ListValue":
        return [value_from_ast_untyped(v, variables) for v in node.values]
    if k == "ObjectValue":
        return {f.name: value_from_ast_untyped(f.value, variables) for f in node.fields}
    if k == "Variable":
        return (variables or {}).get(node.name, UNDEFINED)
    raise TypeError(k)


# ---------------------------------------------------------------------------------------
# Schema model
# ---------------------------------------------------------------------------------------

class TypeRef:
    """A reference to a named type, possibly wrapped in List and NonNull."""

    def __init__(self, kind, of=None, name=None):
        self.kind, self.of, self.name = kind, of, name

    @classmethod
    def from_node(cls, node):
        if node.kind == "NonNullType":
            return cls("NON_NULL", of=cls.from_node(node.type))
        if node.kind == "ListType":
            return cls("LIST", of=cls.from_node(node.type))
        return cls("NAMED", name=node.name)

    @property
    def non_null(self):
        return self.kind == "NON_NULL"

    @property
    def nullable(self):
        """The type without its outer NonNull."""
        return self.of if self.kind == "NON_NULL" else self

    @property
    def named(self):
        t = self
        while t.kind != "NAMED":
            t = t.of
        return t.name

    def __eq__(self, other):
        return isinstance(other, TypeRef) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def __str__(self):
        if self.kind == "NON_NULL":
            return str(self.of) + "!"
        if self.kind == "LIST":
            return "[" + str(self.of) + "]"
        return self.name

    __repr__ = __str__


class InputValueDef:
    """An argument or input-object field: name, type, default (UNDEFINED if none),
    directives {name: {arg: value}}."""

    def __init__(self, name, type_ref, default=UNDEFINED, directives=None):
        self.name, self.type, self.default = name, type_ref, default
        self.directives = directives or {}

    @property
    def required(self):
        return self.type.non_null and self.default is UNDEFINED


class FieldDef:
    """An output field: name, type, args {name: InputValueDef}, directives."""

    def __init__(self, name, type_ref, args=None, directives=None):
        self.name, self.type = name, type_ref
        self.args = args or {}
        self.directives = directives or {}


class NamedType:
    """A named type. kind is SCALAR, ENUM, OBJECT, INTERFACE, UNION or INPUT_OBJECT."""

    def __init__(self, kind, name, fields=None, values=None, parse_value=None,
                 parse_literal=None, serialize=None, directives=None):
        self.kind, self.name = kind, name
        self.fields = fields if fields is not None else {}
        self.values = values or []
        self.parse_value = parse_value
        self.parse_literal = parse_literal
        self.serialize = serialize
        self.directives = directives or {}

    @property
    def is_leaf(self):
        return self.kind in ("SCALAR", "ENUM")

    @property
    def is_input(self):
        return self.kind in ("SCALAR", "ENUM", "INPUT_OBJECT")

    @property
    def is_composite(self):
        return self.kind in ("OBJECT", "INTERFACE", "UNION")


class DirectiveDef:
    def __init__(self, name, args, locations):
        self.name, self.args, self.locations = name, args, locations


class Schema:
    """A schema model: named types plus the root type names and directives."""

    def __init__(self, types, directives, query="Query", mutation="Mutation"):
        self.types = types
        self.directives = directives
        self.query_type = types.get(query)
        self.mutation_type = types.get(mutation)

    def get(self, name):
        return self.types.get(name)

    def named(self, type_ref):
        return self.types[type_ref.named]

    def is_input_type(self, type_ref):
        t = self.types.get(type_ref.named)
        return t is not None and t.is_input

    def copy(self):
        """A deep-enough copy for deriving profiles (types, fields and args are new)."""
        types = {}
        for name, t in self.types.items():
            nt = NamedType(t.kind, t.name, values=list(t.values), parse_value=t.parse_value,
                           parse_literal=t.parse_literal, serialize=t.serialize,
                           directives=dict(t.directives))
            if t.kind == "INPUT_OBJECT":
                nt.fields = dict(t.fields)
            else:
                nt.fields = {fname: FieldDef(f.name, f.type, dict(f.args), dict(f.directives))
                             for fname, f in t.fields.items()}
            types[name] = nt
        return Schema(types, dict(self.directives))

    def check(self):
        """Asserts every referenced type exists (catches modelling typos)."""
        for t in self.types.values():
            for f in t.fields.values():
                assert f.type.named in self.types, "%s.%s: unknown type %s" % (t.name, f.name, f.type)
                for a in getattr(f, "args", {}).values():
                    assert a.type.named in self.types, "%s.%s(%s): unknown type" % (t.name, f.name, a.name)
        return self


# -- built-in scalars (graphql-js type/scalars.ts) ------------------------------------------

MAX_INT, MIN_INT = 2147483647, -2147483648


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int_parse_value(v):
    if not _is_number(v) or (isinstance(v, float) and not (math.isfinite(v) and v.is_integer())):
        raise GraphQLError("Int cannot represent non-integer value: " + inspect(v))
    if v > MAX_INT or v < MIN_INT:
        raise GraphQLError("Int cannot represent non 32-bit signed integer value: " + js_number(v))
    return int(v)


def _int_parse_literal(node):
    if node.kind != "IntValue":
        raise GraphQLError("Int cannot represent non-integer value: " + print_value(node), [node])
    num = int(node.value)
    if num > MAX_INT or num < MIN_INT:
        raise GraphQLError("Int cannot represent non 32-bit signed integer value: " + node.value, [node])
    return num


def _float_parse_value(v):
    if not _is_number(v) or not math.isfinite(v):
        raise GraphQLError("Float cannot represent non numeric value: " + inspect(v))
    return v


def _float_parse_literal(node):
    if node.kind not in ("FloatValue", "IntValue"):
        raise GraphQLError("Float cannot represent non numeric value: " + print_value(node), [node])
    return float(node.value)


def _string_parse_value(v):
    if not isinstance(v, str):
        raise GraphQLError("String cannot represent a non string value: " + inspect(v))
    return v


def _string_parse_literal(node):
    if node.kind != "StringValue":
        raise GraphQLError("String cannot represent a non string value: " + print_value(node), [node])
    return node.value


def _boolean_parse_value(v):
    if not isinstance(v, bool):
        raise GraphQLError("Boolean cannot represent a non boolean value: " + inspect(v))
    return v


def _boolean_parse_literal(node):
    if node.kind != "BooleanValue":
        raise GraphQLError("Boolean cannot represent a non boolean value: " + print_value(node), [node])
    return node.value


def _id_parse_value(v):
    if isinstance(v, str):
        return v
    if _is_number(v) and (isinstance(v, int) or (math.isfinite(v) and v.is_integer())):
        return js_number(v)
    raise GraphQLError("ID cannot represent value: " + inspect(v))


def _id_parse_literal(node):
    if node.kind not in ("StringValue", "IntValue"):
        raise GraphQLError("ID cannot represent a non-string and non-integer value: "
                           + print_value(node), [node])
    return node.value


# -- DateTime (graphql-scalars GraphQLDateTime, as registered by OpenCTI) --------------------

_DATE_RE = re.compile(r"^(\d{4}-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01]))$")
_TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])(\.\d{1,})?(([Z])|([+|-]([01][0-9]|2[0-3]):[0-5][0-9]))$")


def _valid_date(text):
    if not _DATE_RE.match(text):
        return False
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0
    if month == 2:
        return day <= (29 if leap else 28)
    if month in (4, 6, 9, 11):
        return day <= 30
    return True


def valid_date_time(text):
    """graphql-scalars validateDateTime (Date.parse pre-check approximated by the regexes)."""
    index = text.find("T")
    if index < 0:
        return False
    return _valid_date(text[:index]) and bool(_TIME_RE.match(text[index + 1:]))


def _datetime_parse_value(v):
    if isinstance(v, str):
        if valid_date_time(v):
            return v
        raise GraphQLError("DateTime cannot represent an invalid date-time-string %s." % v)
    raise GraphQLError("DateTime cannot represent non string or Date type " + js_json(v))


def _datetime_parse_literal(node):
    if node.kind != "StringValue":
        shown = node.value if hasattr(node, "value") and node.kind != "NullValue" else "false"
        if node.kind == "BooleanValue":
            shown = "true" if node.value else "false"
        raise GraphQLError("DateTime cannot represent non string or Date type %s" % shown, [node])
    if valid_date_time(node.value):
        return node.value
    raise GraphQLError("DateTime cannot represent an invalid date-time-string %s." % node.value, [node])


def _any_parse_literal(node):
    return value_from_ast_untyped(node)


BUILTIN_SCALARS = {
    "Int": (_int_parse_value, _int_parse_literal),
    "Float": (_float_parse_value, _float_parse_literal),
    "String": (_string_parse_value, _string_parse_literal),
    "Boolean": (_boolean_parse_value, _boolean_parse_literal),
    "ID": (_id_parse_value, _id_parse_literal),
}

CUSTOM_SCALARS = {
    "DateTime": (_datetime_parse_value, _datetime_parse_literal),
}


def _enum_parse_value(enum):
    def parse_value(v):
        if not isinstance(v, str):
            shown = inspect(v)
            raise GraphQLError('Enum "%s" cannot represent non-string value: %s.' % (enum.name, shown)
                               + did_you_mean(suggestion_list(shown, enum.values), "the enum value"))
        if v not in enum.values:
            raise GraphQLError('Value "%s" does not exist in "%s" enum.' % (v, enum.name)
                               + did_you_mean(suggestion_list(v, enum.values), "the enum value"))
        return v
    return parse_value


def _enum_parse_literal(enum):
    def parse_literal(node):
        shown = print_value(node)
        if node.kind != "EnumValue":
            raise GraphQLError('Enum "%s" cannot represent non-enum value: %s.' % (enum.name, shown)
                               + did_you_mean(suggestion_list(shown, enum.values), "the enum value"),
                               [node])
        if node.value not in enum.values:
            raise GraphQLError('Value "%s" does not exist in "%s" enum.' % (shown, enum.name)
                               + did_you_mean(suggestion_list(shown, enum.values), "the enum value"),
                               [node])
        return node.value
    return parse_literal


BUILTIN_DIRECTIVES_SDL = """
directive @include(if: Boolean!) on FIELD | FRAGMENT_SPREAD | INLINE_FRAGMENT
directive @skip(if: Boolean!) on FIELD | FRAGMENT_SPREAD | INLINE_FRAGMENT
directive @deprecated(reason: String = "No longer supported") on FIELD_DEFINITION | ARGUMENT_DEFINITION | INPUT_FIELD_DEFINITION | ENUM_VALUE
"""


def build_schema(sdl):
    """Builds a Schema from SDL text (built-in scalars and directives are added)."""
    types = {}
    directives = {}
    for name, (pv, pl) in BUILTIN_SCALARS.items():
        types[name] = NamedType("SCALAR", name, parse_value=pv, parse_literal=pl)
    pending_defaults = []
    for kind, name, payload in parse_sdl(BUILTIN_DIRECTIVES_SDL) + parse_sdl(sdl):
        if kind == "scalar":
            pv, pl = CUSTOM_SCALARS.get(name, (lambda v: v, _any_parse_literal))
            types[name] = NamedType("SCALAR", name, parse_value=pv, parse_literal=pl,
                                    directives=payload["directives"])
        elif kind == "enum":
            t = NamedType("ENUM", name, values=payload["values"], directives=payload["directives"])
            t.parse_value, t.parse_literal = _enum_parse_value(t), _enum_parse_literal(t)
            types[name] = t
        elif kind in ("type", "interface"):
            fields = {}
            for f in payload["fields"]:
                args = {}
                for a in f["args"]:
                    args[a["name"]] = InputValueDef(a["name"], TypeRef.from_node(a["type"]),
                                                    directives=a["directives"])
                    if a["default"] is not None:
                        pending_defaults.append((args[a["name"]], a["default"]))
                fields[f["name"]] = FieldDef(f["name"], TypeRef.from_node(f["type"]), args,
                                             f["directives"])
            types[name] = NamedType("OBJECT" if kind == "type" else "INTERFACE", name,
                                    fields=fields, directives=payload["directives"])
        elif kind == "input":
            fields = {}
            for a in payload["fields"]:
                fields[a["name"]] = InputValueDef(a["name"], TypeRef.from_node(a["type"]),
                                                  directives=a["directives"])
                if a["default"] is not None:
                    pending_defaults.append((fields[a["name"]], a["default"]))
            types[name] = NamedType("INPUT_OBJECT", name, fields=fields,
                                    directives=payload["directives"])
        elif kind == "directive":
            args = {}
            for a in payload["args"]:
                args[a["name"]] = InputValueDef(a["name"], TypeRef.from_node(a["type"]))
                if a["default"] is not None:
                    pending_defaults.append((args[a["name"]], a["default"]))
            directives[name] = DirectiveDef(name, args, payload["locations"])
    schema = Schema(types, directives)
    for ivd, node in pending_defaults:
        ivd.default = value_from_ast(schema, node, ivd.type)
    return schema.check()


# ---------------------------------------------------------------------------------------
# Values: coercion of literals (valueFromAST) and of variables (coerceInputValue)
# ---------------------------------------------------------------------------------------

def value_from_ast(schema, node, type_ref, variables=None):
    """graphql-js valueFromAST: the coerced value, or UNDEFINED when invalid."""
    if node is None:
        return UNDEFINED
    if node.kind == "Variable":
        if variables is None or node.name not in variables:
            return UNDEFINED
        value = variables[node.name]
        if value is None and type_ref.non_null:
            return UNDEFINED
        return value
    if type_ref.non_null:
        if node.kind == "NullValue":
            return UNDEFINED
        return value_from_ast(schema, node, type_ref.of, variables)
    if node.kind == "NullValue":
        return None
    if type_ref.kind == "LIST":
        item = type_ref.of
        if node.kind == "ListValue":
            out = []
            for v in node.values:
                if v.kind == "Variable" and (variables is None or v.name not in variables):
                    if item.non_null:
                        return UNDEFINED
                    out.append(None)
                    continue
                iv = value_from_ast(schema, v, item, variables)
                if iv is UNDEFINED:
                    return UNDEFINED
                out.append(iv)
            return out
        iv = value_from_ast(schema, node, item, variables)
        return UNDEFINED if iv is UNDEFINED else [iv]
    t = schema.named(type_ref)
    if t.kind == "INPUT_OBJECT":
        if node.kind != "ObjectValue":
            return UNDEFINED
        given = {f.name: f.value for f in node.fields}
        out = {}
        for fname, fdef in t.fields.items():
            fnode = given.get(fname)
            if fnode is None or (fnode.kind == "Variable" and (variables is None or fnode.name not in variables)):
                if fdef.default is not UNDEFINED:
                    out[fname] = fdef.default
                elif fdef.type.non_null:
                    return UNDEFINED
                continue
            fv = value_from_ast(schema, fnode, fdef.type, variables)
            if fv is UNDEFINED:
                return UNDEFINED
            out[fname] = fv
        return out
    try:
        result = t.parse_literal(node)
    except GraphQLError:
        return UNDEFINED
    return result


def coerce_input_value(schema, value, type_ref, on_error, path=()):
    """graphql-js coerceInputValue: calls on_error(path, invalid_value, GraphQLError)."""
    if type_ref.non_null:
        if value is not None:
            return coerce_input_value(schema, value, type_ref.of, on_error, path)
        on_error(path, value, GraphQLError('Expected non-nullable type "%s" not to be null.' % type_ref))
        return UNDEFINED
    if value is None:
        return None
    if type_ref.kind == "LIST":
        if isinstance(value, list):
            return [coerce_input_value(schema, v, type_ref.of, on_error, path + (i,))
                    for i, v in enumerate(value)]
        return [coerce_input_value(schema, value, type_ref.of, on_error, path)]
    t = schema.named(type_ref)
    if t.kind == "INPUT_OBJECT":
        if isinstance(value, list):   # JavaScript arrays are objects with index keys
            value = {str(i): v for i, v in enumerate(value)}
        if not isinstance(value, dict):
            on_error(path, value, GraphQLError('Expected type "%s" to be an object.' % t.name))
            return UNDEFINED
        out = {}
        for fname, fdef in t.fields.items():
            if fname not in value:
                if fdef.default is not UNDEFINED:
                    out[fname] = fdef.default
                elif fdef.type.non_null:
                    on_error(path, value, GraphQLError('Field "%s" of required type "%s" was not provided.'
                                                       % (fname, fdef.type)))
                continue
            out[fname] = coerce_input_value(schema, value[fname], fdef.type, on_error, path + (fname,))
        for fname in value:
            if fname not in t.fields:
                on_error(path, value, GraphQLError('Field "%s" is not defined by type "%s".' % (fname, t.name)
                                                   + did_you_mean(suggestion_list(fname, list(t.fields)))))
        return out
    try:
        return t.parse_value(value)
    except GraphQLError as e:
        on_error(path, value, e)
        return UNDEFINED


def _print_path(path):
    return "".join("[%d]" % p if isinstance(p, int) else "." + p for p in path)


def coerce_variable_values(schema, operation, inputs):
    """graphql-js coerceVariableValues: returns (coerced, errors). Errors carry
    extensions.code BAD_USER_INPUT, as Apollo Server marks them."""
    coerced, errors = {}, []
    for vd in operation.variable_definitions:
        name = vd.name
        var_type = _type_from_node(schema, vd.type)
        if var_type is None or not schema.is_input_type(var_type):
            errors.append(GraphQLError('Variable "$%s" expected value of type "%s" which cannot be '
                                       'used as an input type.' % (name, print_type_node(vd.type)),
                                       [vd.type]))
            continue
        if name not in inputs:
            if vd.default_value is not None:
                coerced[name] = value_from_ast(schema, vd.default_value, var_type)
            elif var_type.non_null:
                errors.append(GraphQLError('Variable "$%s" of required type "%s" was not provided.'
                                           % (name, var_type), [vd]))
            continue
        value = inputs[name]
        if value is None and var_type.non_null:
            errors.append(GraphQLError('Variable "$%s" of non-null type "%s" must not be null.'
                                       % (name, var_type), [vd]))
            continue

        def on_error(path, invalid, error, name=name, vd=vd):
            prefix = 'Variable "$%s" got invalid value %s' % (name, inspect(invalid))
            if path:
                prefix += ' at "%s%s"' % (name, _print_path(path))
            errors.append(GraphQLError(prefix + "; " + error.message, [vd]))

        coerced[name] = coerce_input_value(schema, value, var_type, on_error)
    for e in errors:
        e.extensions["code"] = "BAD_USER_INPUT"
    return coerced, errors


def _type_from_node(schema, node):
    if node.kind == "NonNullType":
        inner = _type_from_node(schema, node.type)
        return inner and TypeRef("NON_NULL", of=inner)
    if node.kind == "ListType":
        inner = _type_from_node(schema, node.type)
        return inner and TypeRef("LIST", of=inner)
    return TypeRef("NAMED", name=node.name) if node.name in schema.types else None


# ---------------------------------------------------------------------------------------
# Validation (graphql-js specifiedRules, in their order, for the supported subset)
# ---------------------------------------------------------------------------------------

DIRECTIVE_LOCATIONS = {"query": "QUERY", "mutation": "MUTATION", "subscription": "SUBSCRIPTION"}


class _Validator:
    def __init__(self, schema, document, root_field_limits):
        self.schema = schema
        self.document = document
        self.errors = []
        self.usages = []          # (Variable node, expected TypeRef or None, location default)
        self.root_field_limits = root_field_limits or {}

    def report(self, message, nodes):
        self.errors.append(GraphQLError(message, nodes))

    # -- document ------------------------------------------------------------------------
    def run(self):
        ops = [d for d in self.document.definitions if d.kind == "OperationDefinition"]
        frags = [d for d in self.document.definitions if d.kind == "FragmentDefinition"]
        if len(ops) > 1 and any(o.name is None for o in ops):
            for o in ops:
                if o.name is None:
                    self.report("This anonymous operation must be the only defined operation.", [o])
        names = {}
        for o in ops:
            if o.name is not None:
                names.setdefault(o.name, []).append(o)
        for name, group in names.items():
            if len(group) > 1:
                self.report('There can be only one operation named "%s".' % name, group)
        for op in ops:
            self.operation(op)
        for f in frags:
            self.report('Fragment "%s" is never used.' % f.name, [f])
        return self.errors

    def operation(self, op):
        self.usages = []
        groups = {}
        for vd in op.variable_definitions:
            groups.setdefault(vd.name, []).append(vd)
        for name, group in groups.items():
            if len(group) > 1:
                self.report('There can be only one variable named "$%s".' % name,
                            [g.variable for g in group])
        defined = {}
        for vd in op.variable_definitions:
            defined.setdefault(vd.name, vd)
            self.variable_definition(vd)
        self.directives(op.directives, DIRECTIVE_LOCATIONS[op.operation])
        root = self.schema.query_type if op.operation == "query" else \
            self.schema.mutation_type if op.operation == "mutation" else None
        if root is None:
            self.report("Schema is not configured to execute %s operation." % op.operation, [op])
        else:
            self.root_field_counts(op, root)
            self.selection_set(op.selection_set, root)
        # leave OperationDefinition: NoUndefinedVariables, NoUnusedVariables,
        # VariablesInAllowedPosition (in that rule order)
        used = set()
        for var, _t, _d in self.usages:
            used.add(var.name)
            if var.name not in defined:
                if op.name:
                    self.report('Variable "$%s" is not defined by operation "%s".' % (var.name, op.name),
                                [var, op])
                else:
                    self.report('Variable "$%s" is not defined.' % var.name, [var, op])
        for vd in op.variable_definitions:
            if vd.name not in used and defined.get(vd.name) is vd:
                if op.name:
                    self.report('Variable "$%s" is never used in operation "%s".' % (vd.name, op.name), [vd])
                else:
                    self.report('Variable "$%s" is never used.' % vd.name, [vd])
        for var, expected, loc_default in self.usages:
            vd = defined.get(var.name)
            if vd is None or expected is None:
                continue
            var_type = _type_from_node(self.schema, vd.type)
            if var_type is None:
                continue
            if not self.allowed_variable_usage(var_type, vd.default_value, expected, loc_default):
                self.report('Variable "$%s" of type "%s" used in position expecting type "%s".'
                            % (var.name, var_type, expected), [vd, var])

    def root_field_counts(self, op, root):
        # graphql-no-alias batching protection as configured by OpenCTI
        counts = {}
        for sel in op.selection_set.selections:
            if sel.kind == "Field":
                counts[sel.name] = counts.get(sel.name, 0) + 1
        for name, count in counts.items():
            limit = self.root_field_limits.get(root.name, {}).get(
                name, self.root_field_limits.get(root.name, {}).get("*"))
            if limit is not None and count > limit:
                node = [s for s in op.selection_set.selections if s.kind == "Field" and s.name == name][limit]
                self.report("Allowed number of calls for %s->%s has been exceeded (max: %d)"
                            % (root.name, name, limit), [node])

    @staticmethod
    def allowed_variable_usage(var_type, var_default, location_type, location_default):
        if location_type.non_null and not var_type.non_null:
            has_non_null_default = var_default is not None and var_default.kind != "NullValue"
            has_location_default = location_default is not UNDEFINED
            if not has_non_null_default and not has_location_default:
                return False
            return _is_subtype(var_type, location_type.of)
        return _is_subtype(var_type, location_type)

    def variable_definition(self, vd):
        # VariablesAreInputTypes runs on the VariableDefinition node itself, KnownTypeNames on
        # its NamedType child, so the former reports first.
        var_type = _type_from_node(self.schema, vd.type)
        if var_type is not None and not self.schema.is_input_type(var_type):
            self.report('Variable "$%s" cannot be non-input type "%s".' % (vd.name, print_type_node(vd.type)),
                        [vd.type])
        self.known_type(vd.type)
        if vd.default_value is not None and var_type is not None and self.schema.is_input_type(var_type):
            self.value(vd.default_value, var_type)
        self.directives(vd.directives, "VARIABLE_DEFINITION")

    def known_type(self, node):
        while node.kind != "NamedType":
            node = node.type
        if node.name not in self.schema.types:
            self.report('Unknown type "%s".' % node.name
                        + did_you_mean(suggestion_list(node.name, list(self.schema.types))), [node])

    # -- selections ----------------------------------------------------------------------
    def selection_set(self, sel_set, parent):
        self.overlapping(sel_set, parent)
        for sel in sel_set.selections:
            if sel.kind == "Field":
                self.field(sel, parent)
            else:
                self.report("Fragments are not supported by the platform double.", [sel])

    def field(self, node, parent):
        fdef = self.field_def(parent, node.name)
        # ScalarLeafs
        if fdef is not None:
            named = self.schema.named(fdef.type)
            if named.is_leaf:
                if node.selection_set is not None:
                    self.report('Field "%s" must not have a selection since type "%s" has no subfields.'
                                % (node.name, fdef.type), [node.selection_set])
            elif node.selection_set is None:
                self.report('Field "%s" of type "%s" must have a selection of subfields. Did you mean '
                            '"%s { ... }"?' % (node.name, fdef.type, node.name), [node])
        else:
            # FieldsOnCorrectType
            self.report('Cannot query field "%s" on type "%s".' % (node.name, parent.name)
                        + did_you_mean(suggestion_list(node.name, list(parent.fields))), [node])
        # UniqueArgumentNames (Field enter)
        self.unique_args(node.arguments)
        # children: arguments, then directives
        for arg in node.arguments:
            adef = fdef.args.get(arg.name) if fdef is not None else None
            if fdef is not None and adef is None:
                self.report('Unknown argument "%s" on field "%s.%s".' % (arg.name, parent.name, fdef.name)
                            + did_you_mean(suggestion_list(arg.name, list(fdef.args))), [arg])
            self.value(arg.value, adef.type if adef else None,
                       adef.default if adef else UNDEFINED)
        self.directives(node.directives, "FIELD")
        if node.selection_set is not None:
            sub = self.schema.named(fdef.type) if fdef is not None else None
            if sub is not None and sub.is_composite:
                self.selection_set(node.selection_set, sub)
            else:
                self.selection_set_unknown(node.selection_set)
        # ProvidedRequiredArguments (Field leave)
        if fdef is not None:
            given = {a.name for a in node.arguments}
            for aname, adef in fdef.args.items():
                if aname not in given and adef.required:
                    self.report('Field "%s" argument "%s" of type "%s" is required, but it was not provided.'
                                % (fdef.name, aname, adef.type), [node])

    def selection_set_unknown(self, sel_set):
        """Visits a selection set under an unknown parent: only variable usages matter."""
        for sel in sel_set.selections:
            if sel.kind == "Field":
                for arg in sel.arguments:
                    self.value(arg.value, None)
                self.directives(sel.directives, "FIELD")
                if sel.selection_set is not None:
                    self.selection_set_unknown(sel.selection_set)

    def field_def(self, parent, name):
        if name == "__typename":
            return FieldDef("__typename", TypeRef("NON_NULL", of=TypeRef("NAMED", name="String")))
        return parent.fields.get(name)

    def unique_args(self, args):
        seen = {}
        for a in args:
            seen.setdefault(a.name, []).append(a)
        for name, group in seen.items():
            if len(group) > 1:
                self.report('There can be only one argument named "%s".' % name, group)

    def overlapping(self, sel_set, parent):
        by_key = {}
        for sel in sel_set.selections:
            if sel.kind != "Field":
                continue
            key = sel.alias or sel.name
            for other in by_key.get(key, []):
                if other.name != sel.name:
                    self.report('Fields "%s" conflict because "%s" and "%s" are different fields. Use '
                                'different aliases on the fields to fetch both if this was intentional.'
                                % (key, other.name, sel.name), [other, sel])
                elif _args_key(other.arguments) != _args_key(sel.arguments):
                    self.report('Fields "%s" conflict because they have differing arguments. Use '
                                'different aliases on the fields to fetch both if this was intentional.'
                                % key, [other, sel])
            by_key.setdefault(key, []).append(sel)

    def directives(self, directives, location):
        seen = set()
        for d in directives:
            ddef = self.schema.directives.get(d.name)
            if ddef is None:
                self.report('Unknown directive "@%s".' % d.name, [d])
            elif location not in ddef.locations:
                self.report('Directive "@%s" may not be used on %s.' % (d.name, location), [d])
            if d.name in seen and ddef is not None:
                self.report('The directive "@%s" can only be used once at this location.' % d.name, [d])
            seen.add(d.name)
            self.unique_args(d.arguments)
            for arg in d.arguments:
                adef = ddef.args.get(arg.name) if ddef else None
                if ddef is not None and adef is None:
                    self.report('Unknown argument "%s" on directive "@%s".' % (arg.name, d.name)
                                + did_you_mean(suggestion_list(arg.name, list(ddef.args))), [arg])
                self.value(arg.value, adef.type if adef else None,
                           adef.default if adef else UNDEFINED)
            if ddef is not None:
                given = {a.name for a in d.arguments}
                for aname, adef in ddef.args.items():
                    if aname not in given and adef.required:
                        self.report('Directive "@%s" argument "%s" of type "%s" is required, but it was '
                                    'not provided.' % (d.name, aname, adef.type), [d])

    # -- values (ValuesOfCorrectType, UniqueInputFieldNames, variable usages) --------------
    def value(self, node, expected, location_default=UNDEFINED):
        k = node.kind
        if k == "Variable":
            self.usages.append((node, expected, location_default))
            return
        if expected is None:
            # Unknown position: still collect variable usages below.
            for child in getattr(node, "values", []) or []:
                self.value(child, None)
            for f in getattr(node, "fields", []) or []:
                self.value(f.value, None)
            return
        if k == "NullValue":
            if expected.non_null:
                self.report('Expected value of type "%s", found %s.' % (expected, print_value(node)), [node])
            return
        nullable = expected.nullable
        if k == "ListValue":
            if nullable.kind != "LIST":
                self.leaf_value(node, expected)
                return
            for v in node.values:
                self.value(v, nullable.of)
            return
        named = self.schema.named(expected)
        if k == "ObjectValue":
            if named.kind != "INPUT_OBJECT" or nullable.kind == "LIST":
                self.leaf_value(node, expected)
                return
            seen = {}
            for f in node.fields:
                if f.name in seen:
                    self.report('There can be only one input field named "%s".' % f.name, [seen[f.name], f])
                seen.setdefault(f.name, f)
            for fname, fdef in named.fields.items():
                if fname not in seen and fdef.required:
                    self.report('Field "%s.%s" of required type "%s" was not provided.'
                                % (named.name, fname, fdef.type), [node])
            for f in node.fields:
                fdef = named.fields.get(f.name)
                if fdef is None:
                    self.report('Field "%s" is not defined by type "%s".' % (f.name, named.name)
                                + did_you_mean(suggestion_list(f.name, list(named.fields))), [f])
                    self.value(f.value, None)
                else:
                    self.value(f.value, fdef.type, fdef.default)
            return
        self.leaf_value(node, expected)

    def leaf_value(self, node, location_type):
        named = self.schema.named(location_type)
        if not named.is_leaf or location_type.nullable.kind == "LIST":
            self.report('Expected value of type "%s", found %s.' % (location_type, print_value(node)), [node])
            return
        try:
            named.parse_literal(node)
        except GraphQLError as e:
            self.errors.append(GraphQLError(e.message, [node]))


def _args_key(args):
    return tuple(sorted((a.name, print_value(a.value)) for a in args))


def _is_subtype(sub, sup):
    """graphql-js isTypeSubTypeOf for input types (no abstract types involved)."""
    if sub == sup:
        return True
    if sup.non_null:
        return sub.non_null and _is_subtype(sub.of, sup.of)
    if sub.non_null:
        return _is_subtype(sub.of, sup)
    if sup.kind == "LIST":
        return sub.kind == "LIST" and _is_subtype(sub.of, sup.of)
    return False


def validate(schema, document, root_field_limits=None):
    """Returns the list of validation errors (GraphQLError, code GRAPHQL_VALIDATION_FAILED)."""
    errors = _Validator(schema, document, root_field_limits).run()
    for e in errors:
        e.extensions["code"] = "GRAPHQL_VALIDATION_FAILED"
    return errors


# ---------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------

class _NullBubble(Exception):
    """A non-null field resolved to null: the nearest nullable parent becomes null."""


class ExecutionContext:
    """What resolvers get as `info`: schema, variables, the request context object, the
    field node, the parent type name and the response path."""

    def __init__(self, schema, variables, context):
        self.schema, self.variables, self.context = schema, variables, context
        self.errors = []
        self.field_node = None
        self.parent_type = None
        self.field_def = None
        self.path = ()
        self.field_hook = None


def get_argument_values(schema, fdef, node, variables):
    """graphql-js getArgumentValues (validation already ran, so errors are unexpected)."""
    out = {}
    given = {a.name: a.value for a in node.arguments}
    for aname, adef in fdef.args.items():
        vnode = given.get(aname)
        if vnode is None:
            if adef.default is not UNDEFINED:
                out[aname] = adef.default
            continue
        if vnode.kind == "Variable" and vnode.name not in variables:
            if adef.default is not UNDEFINED:
                out[aname] = adef.default
            continue
        value = value_from_ast(schema, vnode, adef.type, variables)
        if value is UNDEFINED:
            raise GraphQLError('Argument "%s" has invalid value %s.' % (aname, print_value(vnode)), [vnode])
        out[aname] = value
    return out


def _should_include(schema, node, variables):
    for d in node.directives:
        if d.name in ("skip", "include"):
            args = get_argument_values(schema, schema.directives[d.name], d, variables)
            if d.name == "skip" and args.get("if") is True:
                return False
            if d.name == "include" and args.get("if") is False:
                return False
    return True


def _collect_fields(schema, sel_set, variables):
    fields = {}
    for sel in sel_set.selections:
        if sel.kind == "Field" and _should_include(schema, sel, variables):
            fields.setdefault(sel.alias or sel.name, []).append(sel)
    return fields


def execute(schema, operation, variables, resolvers, context=None, root_value=None,
            field_hook=None):
    """Executes a validated operation. `resolvers` maps "Type.field" to a callable
    (parent, args, info) -> value; other fields read parent[field] (dict) or
    getattr(parent, field). `field_hook(info)`, if given, runs before each field is
    resolved and may raise ResolverError (used for @auth). Returns (data, errors) with
    errors as GraphQLError."""
    ctx = ExecutionContext(schema, variables, context)
    ctx.field_hook = field_hook
    root = schema.query_type if operation.operation == "query" else schema.mutation_type
    try:
        data = _execute_selection(ctx, resolvers, root, root_value if root_value is not None else {},
                                  operation.selection_set, ())
    except _NullBubble:
        data = None
    return data, ctx.errors


def _execute_selection(ctx, resolvers, parent_type, parent, sel_set, path):
    out = {}
    for key, nodes in _collect_fields(ctx.schema, sel_set, ctx.variables).items():
        node = nodes[0]
        if node.name == "__typename":
            out[key] = parent_type.name
            continue
        fdef = parent_type.fields[node.name]
        fpath = path + (key,)
        try:
            args = get_argument_values(ctx.schema, fdef, node, ctx.variables)
            ctx.field_node, ctx.parent_type, ctx.field_def, ctx.path = node, parent_type, fdef, fpath
            if ctx.field_hook is not None:
                ctx.field_hook(ctx)
            resolver = resolvers.get("%s.%s" % (parent_type.name, node.name))
            if resolver is not None:
                value = resolver(parent, args, ctx)
            elif isinstance(parent, dict):
                value = parent.get(node.name)
            else:
                value = getattr(parent, node.name, None)
            if callable(value):
                value = value(args, ctx)
            merged = SelectionSet(node.loc, selections=[s for n in nodes if n.selection_set
                                                        for s in n.selection_set.selections])
            out[key] = _complete(ctx, resolvers, fdef.type, value, merged, fpath, node, parent_type)
        except ResolverError as e:
            ext = {"code": e.code}
            if e.data is not None:
                ext["data"] = e.data
            ctx.errors.append(GraphQLError(e.message, [node], path=list(fpath), extensions=ext))
            if fdef.type.non_null:
                raise _NullBubble()
            out[key] = None
        except GraphQLError as e:
            e.path = list(fpath)
            if not e.locations:
                e.locations = [{"line": node.loc[0], "column": node.loc[1]}]
            ctx.errors.append(e)
            if fdef.type.non_null:
                raise _NullBubble()
            out[key] = None
        except _NullBubble:
            if fdef.type.non_null:
                raise
            out[key] = None
    return out


def _complete(ctx, resolvers, type_ref, value, sel_set, path, node, parent_type):
    if type_ref.non_null:
        result = _complete(ctx, resolvers, type_ref.of, value, sel_set, path, node, parent_type)
        if result is None:
            ctx.errors.append(GraphQLError("Cannot return null for non-nullable field %s.%s."
                                           % (parent_type.name, node.name), [node], path=list(path),
                                           extensions={"code": "INTERNAL_SERVER_ERROR"}))
            raise _NullBubble()
        return result
    if value is None:
        return None
    if type_ref.kind == "LIST":
        out = []
        for i, item in enumerate(value):
            try:
                out.append(_complete(ctx, resolvers, type_ref.of, item, sel_set, path + (i,), node, parent_type))
            except _NullBubble:
                return None
        return out
    named = ctx.schema.named(type_ref)
    if named.kind == "SCALAR":
        return _serialize_scalar(named.name, value)
    if named.kind == "ENUM":
        return value
    return _execute_selection(ctx, resolvers, named, value, sel_set, path)


def _serialize_scalar(name, value):
    if name == "Int":
        return int(value)
    if name == "Float":
        return float(value)
    if name == "Boolean":
        return bool(value)
    if name in ("String", "ID"):
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else js_number(value) if _is_number(value) else str(value)
    return value
