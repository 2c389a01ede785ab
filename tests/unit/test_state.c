/* Unit tests: connector state, scheduling arithmetic, GraphQL envelope, logging. */
#include <unistd.h>

#include "buf.h"
#include "check.h"
#include "log.h"
#include "opencti.h"
#include "sched.h"
#include "state.h"
#include "timeutil.h"

static void test_state_parse(void)
{
    cJSON *s;
    CHECK_INT_EQ(state_parse(NULL, &s), STATE_EMPTY);
    CHECK_INT_EQ(state_parse("", &s), STATE_EMPTY);
    CHECK_INT_EQ(state_parse("null", &s), STATE_EMPTY);
    CHECK_INT_EQ(state_parse("{}", &s), STATE_EMPTY);
    CHECK_NULL(s);
    CHECK_INT_EQ(state_parse("[1]", &s), STATE_INVALID);
    CHECK_INT_EQ(state_parse("{not json", &s), STATE_INVALID);
    CHECK_NULL(s);
    CHECK_INT_EQ(state_parse("{\"last_run\": 1700000000}", &s), STATE_OBJECT);
    int64_t t = 0;
    CHECK(state_last_run(s, &t));
    CHECK_INT_EQ(t, 1700000000);
    cJSON_Delete(s);
    /* connectors-sdk writes an ISO date-time */
    CHECK_INT_EQ(state_parse("{\"last_run\": \"2023-11-14T22:13:20+00:00\"}", &s), STATE_OBJECT);
    CHECK(state_last_run(s, &t));
    CHECK_INT_EQ(t, 1700000000);
    cJSON_Delete(s);
    CHECK_INT_EQ(state_parse("{\"other\": 1}", &s), STATE_OBJECT);
    CHECK(!state_last_run(s, &t));
    cJSON_Delete(s);
    CHECK_INT_EQ(state_parse("{\"last_run\": \"soon\"}", &s), STATE_OBJECT);
    CHECK(!state_last_run(s, &t));
    cJSON_Delete(s);
}

static void test_state_serialize(void)
{
    cJSON *s = state_with_last_run(NULL, 1700000000);
    char *text = state_serialize(s);
    CHECK_STR_EQ(text, "{\"last_run\": 1700000000}"); /* Python's json.dumps */
    free(text);
    cJSON *base = NULL;
    CHECK_INT_EQ(
        state_parse("{\"last_run\": \"2023-01-01T00:00:00Z\", \"note\": \"\\u00e9\\n\"}", &base),
        STATE_OBJECT);
    cJSON *n = state_with_last_run(base, 1700000001);
    text = state_serialize(n);
    CHECK_STR_EQ(text, "{\"last_run\": 1700000001, \"note\": \"\\u00e9\\n\"}");
    free(text);
    CHECK(!state_equal(base, n));
    CHECK(state_equal(n, n));
    CHECK(state_equal(NULL, NULL));
    CHECK(!state_equal(NULL, n));
    text = state_serialize(NULL);
    CHECK_STR_EQ(text, "null");
    free(text);
    cJSON_Delete(base);
    cJSON_Delete(n);
    cJSON_Delete(s);
}

static void test_sched(void)
{
    int64_t day = MS_PER_DAY;
    CHECK(sched_due(false, 0, 1000, 7 * day));
    CHECK(!sched_due(true, 1000, 1000 + 7 * 86400, 7 * day)); /* strictly greater */
    CHECK(sched_due(true, 1000, 1000 + 7 * 86400 + 1, 7 * day));
    CHECK_INT_EQ(sched_next_run(true, 1000, 2000, 7 * day), 1000 + 7 * 86400 + 1);
    CHECK_INT_EQ(sched_next_run(false, 0, 2000, 7 * day), 2000);
    CHECK_INT_EQ(sched_retry_delay_ms(MS_PER_H, 30 * MS_PER_MIN), 30 * MS_PER_MIN);
    CHECK_INT_EQ(sched_retry_delay_ms(MS_PER_H, 7 * day), MS_PER_H);
    for (unsigned a = 0; a < 40; a++) {
        int64_t lo = sched_backoff_ms(a, 1000, 60000, 0);
        int64_t hi = sched_backoff_ms(a, 1000, 60000, UINT32_MAX);
        CHECK(lo >= 500 && hi <= 60000 && lo <= hi);
    }
    CHECK_INT_EQ(sched_backoff_ms(0, 1000, 60000, 0), 500);
    CHECK_INT_EQ(sched_backoff_ms(3, 1000, 60000, 0), 4000);
    CHECK_INT_EQ(sched_backoff_ms(30, 1000, 60000, 0), 30000);
}

static void test_gql_body(void)
{
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "id", "x\"y");
    char *b = gql_body("query Q { about { version } }", v);
    CHECK_STR_EQ(b,
                 "{\"query\":\"query Q { about { version } }\",\"variables\":{\"id\":\"x\\\"y\"}}");
    free(b);
    b = gql_body("query Q { a }", NULL);
    CHECK_STR_EQ(b, "{\"query\":\"query Q { a }\",\"variables\":{}}");
    free(b);
    cJSON_Delete(v);
}

static int parse(long status, const char *body, cJSON **data, char *rej, struct err *e)
{
    return gql_parse(status, body, strlen(body), data, rej, 128, e);
}

static void test_gql_parse(void)
{
    cJSON *data = NULL;
    char rej[128];
    struct err e = {{0}};
    CHECK_INT_EQ(parse(200, "{\"data\":{\"about\":{\"version\":\"6.8.10\"}}}", &data, rej, &e), 0);
    CHECK_NOT_NULL(data);
    CHECK_NOT_NULL(cJSON_GetObjectItem(data, "about"));
    cJSON_Delete(data);

    CHECK_INT_EQ(parse(200,
                       "{\"errors\":[{\"message\":\"You must be logged in to do this.\","
                       "\"extensions\":{\"code\":\"AUTH_REQUIRED\"}}],\"data\":null}",
                       &data, rej, &e),
                 E_GQL_AUTH);
    CHECK_STR_CONTAINS(e.msg, "You must be logged in");

    CHECK_INT_EQ(parse(400,
                       "{\"errors\":[{\"message\":\"Variable \\\"$input\\\" got invalid value "
                       "{...}; Field \\\"auto_update\\\" is not defined by type "
                       "\\\"RegisterConnectorInput\\\".\",\"extensions\":{\"code\":"
                       "\"BAD_USER_INPUT\"}}]}",
                       &data, rej, &e),
                 E_GQL_SCHEMA);
    CHECK_STR_EQ(rej, "auto_update");

    CHECK_INT_EQ(parse(400,
                       "{\"errors\":[{\"message\":\"Unknown argument \\\"connectorInfo\\\" on "
                       "field \\\"Mutation.pingConnector\\\".\",\"extensions\":{\"code\":"
                       "\"GRAPHQL_VALIDATION_FAILED\"}}]}",
                       &data, rej, &e),
                 E_GQL_SCHEMA);
    CHECK_STR_EQ(rej, "connectorInfo");

    CHECK_INT_EQ(parse(400,
                       "{\"errors\":[{\"message\":\"Unknown type \\\"ConnectorInfoInput\\\".\"}]}",
                       &data, rej, &e),
                 E_GQL_SCHEMA);
    CHECK_STR_EQ(rej, "ConnectorInfoInput");

    CHECK_INT_EQ(parse(200,
                       "{\"errors\":[{\"message\":\"No connector found with the specified "
                       "ID\",\"name\":\"FUNCTIONAL_ERROR\"}]}",
                       &data, rej, &e),
                 E_GQL);
    CHECK_STR_CONTAINS(e.msg, "No connector found");

    CHECK_INT_EQ(parse(502, "<html>Bad Gateway</html>", &data, rej, &e), E_HTTP_STATUS);
    CHECK_STR_CONTAINS(e.msg, "HTTP 502");
    CHECK_INT_EQ(parse(401, "Unauthorized", &data, rej, &e), E_GQL_AUTH);
    CHECK_INT_EQ(parse(200, "not json", &data, rej, &e), E_GQL);
    CHECK_INT_EQ(parse(200, "{\"data\":null}", &data, rej, &e), E_GQL);
}

static void test_log_redaction(void)
{
    char path[] = "/tmp/ods-log-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w+");
    log_set_stream(f);
    log_setup(LOG_DEBUG, true, "OpenCTI Datasets");
    log_add_secret("s3cr3t-token");
    log_kv(LOG_WARN, LOG_ATTRS(KV_STR("url", "http://u:s3cr3t-token@h"), KV_INT("n", 3)),
           "token is %s", "s3cr3t-token");
    log_set_stream(NULL);
    log_clear_secrets();
    rewind(f);
    char line[1024] = {0};
    CHECK_NOT_NULL(fgets(line, sizeof(line), f));
    fclose(f);
    unlink(path);
    CHECK(strstr(line, "s3cr3t") == NULL);
    CHECK_STR_CONTAINS(line, "\"level\": \"WARNING\"");
    CHECK_STR_CONTAINS(line, "\"name\": \"OpenCTI Datasets\"");
    CHECK_STR_CONTAINS(line, "\"message\": \"token is ***\"");
    CHECK_STR_CONTAINS(line, "\"attributes\": {\"url\": \"http://u:***@h\", \"n\": 3}");
    cJSON *j = cJSON_Parse(line);
    CHECK_NOT_NULL(j);
    cJSON_Delete(j);
}

static void test_buf(void)
{
    struct buf b;
    buf_init(&b, 8);
    CHECK_INT_EQ(buf_adds(&b, "12345678"), 0);
    CHECK_INT_EQ(buf_addc(&b, '9'), E_TOO_BIG);
    CHECK_UINT_EQ(b.len, 8);
    buf_release(&b);
    buf_init(&b, 1024);
    CHECK_INT_EQ(buf_add_base64(&b, "", 0), 0);
    CHECK_INT_EQ(buf_add_base64(&b, "f", 1), 0);
    CHECK_INT_EQ(buf_adds(&b, "|"), 0);
    CHECK_INT_EQ(buf_add_base64(&b, "fo", 2), 0);
    CHECK_INT_EQ(buf_adds(&b, "|"), 0);
    CHECK_INT_EQ(buf_add_base64(&b, "foobar", 6), 0);
    CHECK_STR_EQ(b.data, "Zg==|Zm8=|Zm9vYmFy");
    buf_reset(&b);
    CHECK_INT_EQ(buf_add_json_string(&b, "a\"\\\n\x01", 5), 0);
    CHECK_STR_EQ(b.data, "\"a\\\"\\\\\\n\\u0001\"");
    buf_release(&b);
}

int main(void)
{
    RUN(test_state_parse);
    RUN(test_state_serialize);
    RUN(test_sched);
    RUN(test_gql_body);
    RUN(test_gql_parse);
    RUN(test_log_redaction);
    RUN(test_buf);
    return check_summary();
}
