/* opencti.c - GraphQL operations against the platform. */
#include "opencti.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "timeutil.h"

/* Operation texts as pycti 6.8 sends them (whitespace compacted). */
static const char Q_ABOUT[] = "query healthCheck { about { version } }";
static const char Q_REGISTER[] =
    "mutation RegisterConnector($input: RegisterConnectorInput) { registerConnector(input: "
    "$input) { id connector_state config { connection { host vhost use_ssl port user pass } "
    "listen listen_routing listen_exchange push push_routing push_exchange } "
    "connector_user_id } }";
static const char Q_PING[] =
    "mutation PingConnector($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput ) { "
    "pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) { id "
    "connector_state connector_info { run_and_terminate buffering queue_threshold "
    "queue_messages_size next_run_datetime last_run_datetime } } }";
/* for platforms before connectorInfo (pycti < 6.2.12) */
static const char Q_PING_OLD[] = "mutation PingConnector($id: ID!, $state: String) { "
                                 "pingConnector(id: $id, state: $state) { id connector_state } }";
static const char Q_WORK_ADD[] =
    "mutation workAdd($connectorId: String!, $friendlyName: String) { workAdd(connectorId: "
    "$connectorId, friendlyName: $friendlyName) { id } }";
static const char Q_ADD_EXPECTATIONS[] =
    "mutation addExpectations($id: ID!, $expectations: Int) { workEdit(id: $id) { "
    "addExpectations(expectations: $expectations) } }";
static const char Q_TO_PROCESSED[] =
    "mutation workToProcessed($id: ID!, $message: String, $inError: Boolean) { workEdit(id: "
    "$id) { toProcessed (message: $message, inError: $inError) } }";
static const char Q_REPORT_EXPECTATION[] =
    "mutation reportExpectation($id: ID!, $error: WorkErrorInput) { workEdit(id: $id) { "
    "reportExpectation(error: $error) } }";

/* Registration input fields an older platform may not know (dropped on rejection). */
static const char *const optional_register_fields[] = {"auto_update", "enrichment_resolution",
                                                       "listen_callback_uri"};
#define N_OPTIONAL_REGISTER 3

struct opencti {
    char *url; /* ".../graphql" */
    char *token;
    struct http *http;
    int64_t timeout_ms;
    bool dropped_register[N_OPTIONAL_REGISTER];
    bool ping_without_info;
    void (*on_compat)(void *ctx, const char *dropped, const char *platform_message);
    void *compat_ctx;
};

/* ---- pure parts ------------------------------------------------------------------------ */

char *gql_body(const char *query, const cJSON *vars)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON *v = vars ? cJSON_Duplicate(vars, true) : cJSON_CreateObject();
    char *out = NULL;
    if (v && cJSON_AddStringToObject(root, "query", query) &&
        cJSON_AddItemToObject(root, "variables", v)) {
        v = NULL; /* owned by root now */
        out = cJSON_PrintUnformatted(root);
    }
    cJSON_Delete(v);
    cJSON_Delete(root);
    return out;
}

/* Copies into out the first "quoted" name that follows `pattern` in msg. */
static bool name_after(const char *msg, const char *pattern, char *out, size_t cap)
{
    const char *p = strstr(msg, pattern);
    if (!p)
        return false;
    p += strlen(pattern);
    const char *q = strchr(p, '"');
    if (!q || (size_t)(q - p) >= cap)
        return false;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return true;
}

/* Whether a GraphQL error is the schema refusing a name; extracts the name. */
static bool schema_rejection(const char *msg, const char *code, char *rejected, size_t cap)
{
    static const char *const patterns[] = {"Unknown argument \"", "Field \"",
                                           "Cannot query field \"", "Unknown type \""};
    char tmp[128];
    for (size_t i = 0; i < 4; i++) {
        if (!name_after(msg, patterns[i], tmp, sizeof(tmp)))
            continue;
        /* "Field "x" is not defined by type" / "Cannot query field" / unknown names */
        if (i == 1 && !strstr(msg, "is not defined by type"))
            continue;
        if (rejected && cap) {
            snprintf(rejected, cap, "%s", tmp);
        }
        return true;
    }
    return code && (strcmp(code, "GRAPHQL_VALIDATION_FAILED") == 0);
}

static bool is_auth_error(const char *msg, const char *code, const char *name)
{
    static const char *const codes[] = {"AUTH_REQUIRED", "FORBIDDEN_ACCESS", "UNAUTHENTICATED",
                                        "AuthRequired", "ForbiddenAccess"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if ((code && strcmp(code, codes[i]) == 0) || (name && strcmp(name, codes[i]) == 0))
            return true;
    return strstr(msg, "must be logged in") != NULL;
}

/* A printable excerpt of a response body, for error messages. */
static void excerpt(const char *body, size_t len, char *out, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < cap && i < 300; i++) {
        unsigned char c = (unsigned char)body[i];
        out[j++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
    }
    out[j] = '\0';
}

int gql_parse(long status, const char *body, size_t len, cJSON **ret_data, char *rejected,
              size_t cap, struct err *err)
{
    if (rejected && cap)
        rejected[0] = '\0';
    cJSON *root = len ? cJSON_ParseWithLength(body, len) : NULL;
    cJSON *errors = root ? cJSON_GetObjectItemCaseSensitive(root, "errors") : NULL;
    int rc;
    if (cJSON_IsArray(errors) && cJSON_GetArraySize(errors) > 0) {
        cJSON *e0 = cJSON_GetArrayItem(errors, 0);
        cJSON *m = cJSON_GetObjectItemCaseSensitive(e0, "message");
        cJSON *name = cJSON_GetObjectItemCaseSensitive(e0, "name");
        cJSON *ext = cJSON_GetObjectItemCaseSensitive(e0, "extensions");
        cJSON *code = ext ? cJSON_GetObjectItemCaseSensitive(ext, "code") : NULL;
        const char *msg = cJSON_IsString(m) ? m->valuestring : "(no message)";
        const char *cs = cJSON_IsString(code) ? code->valuestring : NULL;
        const char *ns = cJSON_IsString(name) ? name->valuestring : NULL;
        if (is_auth_error(msg, cs, ns))
            rc = err_set(err, E_GQL_AUTH, "%s%s%s%s", msg, cs ? " (" : "", cs ? cs : "",
                         cs ? ")" : "");
        else if (schema_rejection(msg, cs, rejected, cap))
            rc = err_set(err, E_GQL_SCHEMA, "%s", msg);
        else
            rc = err_set(err, E_GQL, "%s%s%s%s", msg, cs ? " (" : "", cs ? cs : "", cs ? ")" : "");
        goto out;
    }
    if (status != 200) {
        char ex[320];
        excerpt(body, len, ex, sizeof(ex));
        rc = err_set(err, status == 401 || status == 403 ? E_GQL_AUTH : E_HTTP_STATUS,
                     "HTTP %ld%s%s", status, ex[0] ? ": " : "", ex);
        goto out;
    }
    cJSON *data = root ? cJSON_DetachItemFromObjectCaseSensitive(root, "data") : NULL;
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        char ex[320];
        excerpt(body, len, ex, sizeof(ex));
        rc = err_set(err, E_GQL, "the response is not a GraphQL result: %s", ex);
        goto out;
    }
    *ret_data = data;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- the client ----------------------------------------------------------------------- */

struct opencti *opencti_new(const struct opencti_options *o)
{
    struct opencti *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    size_t n = strlen(o->url) + sizeof("/graphql");
    c->url = malloc(n);
    c->token = strdup(o->token);
    c->http = http_new(&o->http);
    if (!c->url || !c->token || !c->http) {
        opencti_free(c);
        return NULL;
    }
    snprintf(c->url, n, "%s/graphql", o->url);
    c->timeout_ms = o->timeout_ms;
    c->on_compat = o->on_compat;
    c->compat_ctx = o->compat_ctx;
    return c;
}

void opencti_free(struct opencti *o)
{
    if (!o)
        return;
    free(o->url);
    if (o->token) {
        memset(o->token, 0, strlen(o->token));
        free(o->token);
    }
    http_free(o->http);
    free(o);
}

void opencti_set_timeout(struct opencti *o, int64_t timeout_ms)
{
    o->timeout_ms = timeout_ms;
}

int opencti_query(struct opencti *o, const char *query, const cJSON *vars, cJSON **ret_data,
                  char *rejected, size_t cap, struct err *err)
{
    char *body = gql_body(query, vars);
    if (!body)
        return err_set(err, E_NOMEM, "out of memory building a GraphQL request");
    struct buf resp;
    buf_init(&resp, GQL_MAX_RESPONSE);
    struct http_request req = {
        .url = o->url,
        .method = "POST",
        .bearer = o->token,
        .content_type = "application/json",
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = o->timeout_ms,
        .max_response = GQL_MAX_RESPONSE,
    };
    long status = 0;
    int rc = http_perform(o->http, &req, &status, &resp, err);
    if (rc == 0)
        rc = gql_parse(status, resp.data ? resp.data : "", resp.len, ret_data, rejected, cap, err);
    buf_release(&resp);
    free(body);
    return rc;
}

int opencti_about(struct opencti *o, char **ret_version, struct err *err)
{
    cJSON *data = NULL;
    int rc = opencti_query(o, Q_ABOUT, NULL, &data, NULL, 0, err);
    if (rc)
        return rc;
    cJSON *about = cJSON_GetObjectItemCaseSensitive(data, "about");
    cJSON *v = about ? cJSON_GetObjectItemCaseSensitive(about, "version") : NULL;
    char *s = strdup(cJSON_IsString(v) ? v->valuestring : "unknown");
    cJSON_Delete(data);
    if (!s)
        return err_set(err, E_NOMEM, "out of memory");
    *ret_version = s;
    return 0;
}

static char *dup_string_item(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

void opencti_registration_release(struct opencti_registration *r)
{
    free(r->id);
    free(r->connector_user_id);
    free(r->state);
    free(r->mq_host);
    free(r->mq_vhost);
    free(r->mq_user);
    if (r->mq_pass) {
        memset(r->mq_pass, 0, strlen(r->mq_pass));
        free(r->mq_pass);
    }
    free(r->push);
    free(r->push_routing);
    free(r->push_exchange);
    memset(r, 0, sizeof(*r));
}

static cJSON *register_vars(const struct opencti *o, const struct opencti_register_input *in)
{
    cJSON *vars = cJSON_CreateObject();
    cJSON *input = cJSON_AddObjectToObject(vars, "input");
    cJSON *scope = input ? cJSON_AddArrayToObject(input, "scope") : NULL;
    bool ok = vars && input && scope && cJSON_AddStringToObject(input, "id", in->id) &&
              cJSON_AddStringToObject(input, "name", in->name) &&
              cJSON_AddStringToObject(input, "type", "EXTERNAL_IMPORT") &&
              cJSON_AddBoolToObject(input, "auto", in->auto_) &&
              cJSON_AddBoolToObject(input, "only_contextual", in->only_contextual) &&
              cJSON_AddBoolToObject(input, "playbook_compatible", false);
    for (size_t i = 0; ok && i < in->n_scope; i++) {
        cJSON *s = cJSON_CreateString(in->scope[i]);
        ok = s && cJSON_AddItemToArray(scope, s);
        if (!ok)
            cJSON_Delete(s);
    }
    if (ok && !o->dropped_register[0])
        ok = cJSON_AddBoolToObject(input, "auto_update", in->auto_update) != NULL;
    if (ok && !o->dropped_register[1])
        ok = cJSON_AddStringToObject(input, "enrichment_resolution", in->enrichment_resolution) !=
             NULL;
    if (ok && !o->dropped_register[2])
        ok = cJSON_AddNullToObject(input, "listen_callback_uri") != NULL;
    if (!ok) {
        cJSON_Delete(vars);
        return NULL;
    }
    return vars;
}

int opencti_register(struct opencti *o, const struct opencti_register_input *in,
                     struct opencti_registration *ret, struct err *err)
{
    for (int attempt = 0; attempt <= N_OPTIONAL_REGISTER; attempt++) {
        cJSON *vars = register_vars(o, in);
        if (!vars)
            return err_set(err, E_NOMEM, "out of memory");
        cJSON *data = NULL;
        char rejected[128];
        int rc = opencti_query(o, Q_REGISTER, vars, &data, rejected, sizeof(rejected), err);
        cJSON_Delete(vars);
        if (rc == E_GQL_SCHEMA) {
            int k = -1;
            for (int i = 0; i < N_OPTIONAL_REGISTER; i++)
                if (!o->dropped_register[i] && strcmp(rejected, optional_register_fields[i]) == 0)
                    k = i;
            if (k < 0)
                return rc;
            o->dropped_register[k] = true;
            if (o->on_compat)
                o->on_compat(o->compat_ctx, optional_register_fields[k], err ? err->msg : "");
            continue;
        }
        if (rc)
            return rc;
        cJSON *reg = cJSON_GetObjectItemCaseSensitive(data, "registerConnector");
        cJSON *cfg = reg ? cJSON_GetObjectItemCaseSensitive(reg, "config") : NULL;
        cJSON *conn = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "connection") : NULL;
        if (!cJSON_IsObject(reg) || !cJSON_IsObject(cfg) || !cJSON_IsObject(conn)) {
            cJSON_Delete(data);
            return err_set(err, E_GQL,
                           "registerConnector returned no connector configuration "
                           "(does the token's user have the CONNECTORAPI capability?)");
        }
        struct opencti_registration r;
        memset(&r, 0, sizeof(r));
        r.id = dup_string_item(reg, "id");
        r.connector_user_id = dup_string_item(reg, "connector_user_id");
        r.state = dup_string_item(reg, "connector_state");
        r.mq_host = dup_string_item(conn, "host");
        r.mq_vhost = dup_string_item(conn, "vhost");
        r.mq_user = dup_string_item(conn, "user");
        r.mq_pass = dup_string_item(conn, "pass");
        cJSON *port = cJSON_GetObjectItemCaseSensitive(conn, "port");
        cJSON *ssl = cJSON_GetObjectItemCaseSensitive(conn, "use_ssl");
        r.mq_port = cJSON_IsNumber(port) ? (int)port->valuedouble : 5672;
        r.mq_use_ssl = cJSON_IsTrue(ssl);
        r.push = dup_string_item(cfg, "push");
        r.push_routing = dup_string_item(cfg, "push_routing");
        r.push_exchange = dup_string_item(cfg, "push_exchange");
        cJSON_Delete(data);
        if (!r.id || !r.push_routing || !r.push_exchange) {
            opencti_registration_release(&r);
            return err_set(err, E_GQL,
                           "registerConnector returned an incomplete configuration "
                           "(no id, push_routing or push_exchange)");
        }
        *ret = r;
        return 0;
    }
    return err_set(err, E_GQL_SCHEMA, "registerConnector keeps being rejected by the schema");
}

static cJSON *datetime_or_null(int64_t t)
{
    if (t < 0)
        return cJSON_CreateNull();
    char s[32];
    utc_format(t, 1, s, sizeof(s));
    return cJSON_CreateString(s);
}

int opencti_ping(struct opencti *o, const char *id, const char *state,
                 const struct opencti_connector_info *info, char **ret_state, struct err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        cJSON *vars = cJSON_CreateObject();
        bool ok = vars && cJSON_AddStringToObject(vars, "id", id) &&
                  cJSON_AddStringToObject(vars, "state", state);
        if (ok && !o->ping_without_info) {
            cJSON *ci = cJSON_AddObjectToObject(vars, "connectorInfo");
            cJSON *next = datetime_or_null(info->next_run);
            cJSON *last = datetime_or_null(info->last_run);
            ok = ci && next && last &&
                 cJSON_AddBoolToObject(ci, "run_and_terminate", info->run_and_terminate) &&
                 cJSON_AddBoolToObject(ci, "buffering", info->buffering) &&
                 cJSON_AddNumberToObject(ci, "queue_threshold", info->queue_threshold) &&
                 cJSON_AddNumberToObject(ci, "queue_messages_size", info->queue_messages_size);
            if (ok && cJSON_AddItemToObject(ci, "next_run_datetime", next))
                next = NULL;
            else
                ok = false;
            if (ok && cJSON_AddItemToObject(ci, "last_run_datetime", last))
                last = NULL;
            else
                ok = false;
            cJSON_Delete(next);
            cJSON_Delete(last);
        }
        if (!ok) {
            cJSON_Delete(vars);
            return err_set(err, E_NOMEM, "out of memory");
        }
        cJSON *data = NULL;
        char rejected[128];
        int rc = opencti_query(o, o->ping_without_info ? Q_PING_OLD : Q_PING, vars, &data, rejected,
                               sizeof(rejected), err);
        cJSON_Delete(vars);
        if (rc == E_GQL_SCHEMA && !o->ping_without_info) {
            o->ping_without_info = true;
            if (o->on_compat)
                o->on_compat(o->compat_ctx, "connectorInfo", err ? err->msg : "");
            continue;
        }
        if (rc)
            return rc;
        cJSON *ping = cJSON_GetObjectItemCaseSensitive(data, "pingConnector");
        if (!cJSON_IsObject(ping)) {
            cJSON_Delete(data);
            return err_set(err, E_GQL,
                           "pingConnector returned no connector (was it deleted on "
                           "the platform?)");
        }
        cJSON *cs = cJSON_GetObjectItemCaseSensitive(ping, "connector_state");
        char *s = NULL;
        if (cJSON_IsString(cs) && !(s = strdup(cs->valuestring))) {
            cJSON_Delete(data);
            return err_set(err, E_NOMEM, "out of memory");
        }
        cJSON_Delete(data);
        *ret_state = s;
        return 0;
    }
    return err_set(err, E_GQL_SCHEMA, "pingConnector keeps being rejected by the schema");
}

int opencti_work_add(struct opencti *o, const char *connector_id, const char *name,
                     char **ret_work_id, struct err *err)
{
    cJSON *vars = cJSON_CreateObject();
    if (!vars || !cJSON_AddStringToObject(vars, "connectorId", connector_id) ||
        !cJSON_AddStringToObject(vars, "friendlyName", name)) {
        cJSON_Delete(vars);
        return err_set(err, E_NOMEM, "out of memory");
    }
    cJSON *data = NULL;
    int rc = opencti_query(o, Q_WORK_ADD, vars, &data, NULL, 0, err);
    cJSON_Delete(vars);
    if (rc)
        return rc;
    cJSON *w = cJSON_GetObjectItemCaseSensitive(data, "workAdd");
    char *id = w ? dup_string_item(w, "id") : NULL;
    cJSON_Delete(data);
    if (!id)
        return err_set(err, E_GQL, "workAdd returned no work id");
    *ret_work_id = id;
    return 0;
}

/* Runs a workEdit mutation whose result is just the work id. */
static int work_edit(struct opencti *o, const char *query, cJSON *vars, struct err *err)
{
    if (!vars)
        return err_set(err, E_NOMEM, "out of memory");
    cJSON *data = NULL;
    int rc = opencti_query(o, query, vars, &data, NULL, 0, err);
    cJSON_Delete(vars);
    if (rc)
        return rc;
    cJSON *we = cJSON_GetObjectItemCaseSensitive(data, "workEdit");
    rc = cJSON_IsObject(we) ? 0 : err_set(err, E_GQL, "the work no longer exists");
    cJSON_Delete(data);
    return rc;
}

int opencti_work_add_expectations(struct opencti *o, const char *work_id, int64_t n,
                                  struct err *err)
{
    cJSON *vars = cJSON_CreateObject();
    if (vars && (!cJSON_AddStringToObject(vars, "id", work_id) ||
                 !cJSON_AddNumberToObject(vars, "expectations", (double)n))) {
        cJSON_Delete(vars);
        vars = NULL;
    }
    return work_edit(o, Q_ADD_EXPECTATIONS, vars, err);
}

int opencti_work_to_processed(struct opencti *o, const char *work_id, const char *message,
                              bool in_error, struct err *err)
{
    cJSON *vars = cJSON_CreateObject();
    if (vars && (!cJSON_AddStringToObject(vars, "id", work_id) ||
                 !cJSON_AddStringToObject(vars, "message", message) ||
                 !cJSON_AddBoolToObject(vars, "inError", in_error))) {
        cJSON_Delete(vars);
        vars = NULL;
    }
    return work_edit(o, Q_TO_PROCESSED, vars, err);
}

int opencti_work_report_expectation(struct opencti *o, const char *work_id, const char *error,
                                    const char *source, struct err *err)
{
    cJSON *vars = cJSON_CreateObject();
    bool ok = vars && cJSON_AddStringToObject(vars, "id", work_id);
    if (ok && error) {
        cJSON *e = cJSON_AddObjectToObject(vars, "error");
        ok = e && cJSON_AddStringToObject(e, "error", error) &&
             cJSON_AddStringToObject(e, "source", source ? source : "");
    } else if (ok) {
        ok = cJSON_AddNullToObject(vars, "error") != NULL;
    }
    if (!ok) {
        cJSON_Delete(vars);
        vars = NULL;
    }
    return work_edit(o, Q_REPORT_EXPECTATION, vars, err);
}
