/* Unit tests: settings, env files, booleans, durations. */
#include "check.h"
#include "config.h"
#include "env.h"
#include "log.h"
#include "timeutil.h"

#define DATA ODS_TEST_DATA

static void base_env(struct env *e)
{
    env_init(e);
    if (env_set(e, "OPENCTI_URL", "http://opencti:8080/") ||
        env_set(e, "OPENCTI_TOKEN", "secret-token-value") ||
        env_set(e, "CONNECTOR_ID", "dd010812-9027-4726-bf7b-4936979955ae"))
        abort();
}

/* Whether some diagnostic line contains needle. */
static int diag_has(const struct diag *d, const char *needle)
{
    for (size_t i = 0; i < d->len; i++)
        if (strstr(d->items[i].text, needle))
            return 1;
    return 0;
}

static void test_defaults(void)
{
    struct env e;
    struct config c;
    struct diag d;
    base_env(&e);
    diag_init(&d);
    CHECK_INT_EQ(config_load(&c, &e, &d), 0);
    CHECK_STR_EQ(c.opencti_url, "http://opencti:8080");
    CHECK_STR_EQ(c.connector_name, "OpenCTI Datasets");
    CHECK_STR_EQ(c.connector_scope, "marking-definition,identity,location");
    CHECK_UINT_EQ(c.n_scope, 3);
    CHECK_STR_EQ(c.scope[2], "location");
    CHECK_INT_EQ(c.log_level, LOG_ERROR);
    CHECK(c.ssl_verify);
    CHECK(c.json_logging);
    CHECK(!c.run_and_terminate);
    CHECK_INT_EQ(c.interval_days, 7);
    CHECK_INT_EQ(c.period_ms, 7 * MS_PER_DAY);
    CHECK(!c.remove_creator);
    CHECK_STR_EQ(c.dataset_url[DATASET_SECTORS],
                 "https://raw.githubusercontent.com/OpenCTI-Platform/datasets/master/data/"
                 "sectors.json");
    CHECK_STR_EQ(c.dataset_url[DATASET_COMPANIES],
                 "https://raw.githubusercontent.com/OpenCTI-Platform/datasets/master/data/"
                 "companies.json");
    CHECK_INT_EQ(c.mq_port, -1);
    CHECK_INT_EQ(c.mq_use_ssl, -1);
    CHECK(c.mq_ssl_verify);
    CHECK_UINT_EQ(c.mq_window, 256);
    CHECK_INT_EQ(c.mq_heartbeat_s, 10);
    CHECK_INT_EQ(c.ping_interval_ms, 40 * MS_PER_S);
    CHECK_INT_EQ(c.check_interval_ms, 60 * MS_PER_S);
    CHECK_INT_EQ(c.retry_interval_ms, MS_PER_H);
    CHECK_UINT_EQ(d.len, 0);
    config_release(&c);
    diag_release(&d);
    env_release(&e);
}

static void test_required_all_reported(void)
{
    struct env e;
    struct config c;
    struct diag d;
    env_init(&e);
    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "CONFIG_INTERVAL", "seven"), 0);
    CHECK_INT_EQ(env_set(&e, "MQ_PORT", "70000"), 0);
    CHECK_INT_EQ(env_set(&e, "CONNECTOR_RUN_AND_TERMINATE", "maybe"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), E_INVAL);
    CHECK_UINT_EQ(d.errors, 6);
    CHECK(diag_has(&d, "OPENCTI_URL is required"));
    CHECK(diag_has(&d, "OPENCTI_TOKEN is required"));
    CHECK(diag_has(&d, "CONNECTOR_ID is required"));
    CHECK(diag_has(&d, "CONFIG_INTERVAL: \"seven\" is not a whole number"));
    CHECK(diag_has(&d, "MQ_PORT: 70000 is out of range"));
    CHECK(diag_has(&d, "CONNECTOR_RUN_AND_TERMINATE: \"maybe\" is not a boolean"));
    config_release(&c);
    diag_release(&d);
    env_release(&e);
}

static void test_secrets_not_echoed(void)
{
    struct env e;
    struct config c;
    struct diag d;
    base_env(&e);
    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "OPENCTI_TOKEN", "ChangeMe"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), E_INVAL);
    CHECK(diag_has(&d, "placeholder"));
    config_release(&c);
    diag_release(&d);
    /* a token with a space is refused without printing it */
    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "OPENCTI_TOKEN", "abc def-very-secret"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), E_INVAL);
    CHECK(!diag_has(&d, "very-secret"));
    config_release(&c);
    diag_release(&d);
    env_release(&e);
}

/* One setting's value on top of base_env; returns config_load's result (c and d are
 * filled; the caller releases them). */
static int load_with(struct env *e, struct config *c, struct diag *d, const char *name,
                     const char *value)
{
    base_env(e);
    diag_init(d);
    if (env_set(e, name, value))
        abort();
    return config_load(c, e, d);
}

static void release_all(struct env *e, struct config *c, struct diag *d)
{
    config_release(c);
    diag_release(d);
    env_release(e);
}

/* A password in a URL, or key material pasted without its BEGIN line, is never shown in
 * an error; the URL still is, with "***" for the password. */
static void test_url_and_key_not_echoed(void)
{
    struct env e;
    struct config c;
    struct diag d;
    CHECK_INT_EQ(load_with(&e, &c, &d, "OPENCTI_URL", "htp://user:hunter22@opencti:8080"), E_INVAL);
    CHECK(diag_has(&d, "OPENCTI_URL: \"htp://user:***@opencti:8080\" is not"));
    CHECK(!diag_has(&d, "hunter22"));
    release_all(&e, &c, &d);

    CHECK_INT_EQ(load_with(&e, &c, &d, "CONFIG_COMPANIES_FILE_URL", "ftp://a:p@ss@h/x.json"),
                 E_INVAL);
    CHECK(diag_has(&d, "CONFIG_COMPANIES_FILE_URL: \"ftp://a:***@h/x.json\""));
    CHECK(!diag_has(&d, "p@ss"));
    release_all(&e, &c, &d);

    /* passwords with unencoded '/', '?', '#' or '@' are registered whole for redaction */
    base_env(&e);
    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "HTTPS_PROXY", "http://user:Zx9/Qm#4p@127.0.0.1:3999"), 0);
    CHECK_INT_EQ(env_set(&e, "CONFIG_SECTORS_FILE_URL", "https://u:a?b@mirror/s.json"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), 0);
    config_register_secrets(&c);
    char line[256] = "proxy http://user:Zx9/Qm#4p@127.0.0.1:3999 and https://u:a?b@mirror";
    log_redact(line, sizeof(line));
    CHECK_STR_EQ(line, "proxy http://user:***@127.0.0.1:3999 and https://u:***@mirror");
    log_clear_secrets();
    release_all(&e, &c, &d);

    /* an '@' after the authority is not user information */
    CHECK_INT_EQ(load_with(&e, &c, &d, "OPENCTI_URL", "htp://opencti/a:b@c"), E_INVAL);
    CHECK(diag_has(&d, "\"htp://opencti/a:b@c\""));
    release_all(&e, &c, &d);

    base_env(&e);
    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "MQ_USE_SSL_CERT", "-----BEGIN CERTIFICATE-----\nMIIB\n"), 0);
    CHECK_INT_EQ(env_set(&e, "MQ_USE_SSL_KEY", "MIIEvQIBADANBgkqhkiG9w0secretbits"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), E_INVAL);
    CHECK(diag_has(&d, "MQ_USE_SSL_KEY is neither inline PEM"));
    CHECK(!diag_has(&d, "secretbits"));
    CHECK(!diag_has(&d, "must be given together")); /* the key was given, though unusable */
    CHECK_UINT_EQ(d.errors, 1);
    release_all(&e, &c, &d);

    /* a path that is not readable is shown, except for the key */
    CHECK_INT_EQ(load_with(&e, &c, &d, "MQ_USE_SSL_CA", "/nonexistent/ca.pem"), E_INVAL);
    CHECK(diag_has(&d, "MQ_USE_SSL_CA: \"/nonexistent/ca.pem\" is neither"));
    release_all(&e, &c, &d);
    CHECK_INT_EQ(load_with(&e, &c, &d, "MQ_USE_SSL_KEY", "/nonexistent/key.pem"), E_INVAL);
    CHECK(!diag_has(&d, "/nonexistent/key.pem"));
    release_all(&e, &c, &d);
}

/* MQ_USE_SSL_*: a file or inline PEM, cert and key together, strict booleans. */
static void test_mq_tls_settings(void)
{
    struct env e;
    struct config c;
    struct diag d;
    const char *pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    CHECK_INT_EQ(load_with(&e, &c, &d, "MQ_USE_SSL_CA", pem), 0);
    CHECK_STR_EQ(c.mq_ssl_ca, pem);
    CHECK_INT_EQ(c.mq_use_ssl, -1); /* not given: registration decides */
    release_all(&e, &c, &d);

    const char *file = DATA "/README.md"; /* any readable file is taken as a path */
    CHECK_INT_EQ(load_with(&e, &c, &d, "MQ_USE_SSL_CA", file), 0);
    CHECK_STR_EQ(c.mq_ssl_ca, file);
    release_all(&e, &c, &d);

    CHECK_INT_EQ(load_with(&e, &c, &d, "MQ_USE_SSL_CERT", pem), E_INVAL);
    CHECK(diag_has(&d, "MQ_USE_SSL_CERT and MQ_USE_SSL_KEY must be given together"));
    release_all(&e, &c, &d);

    CHECK_INT_EQ(load_with(&e, &c, &d, "MQ_USE_SSL", "sometimes"), E_INVAL);
    CHECK(diag_has(&d, "MQ_USE_SSL: \"sometimes\" is not a boolean"));
    release_all(&e, &c, &d);
    CHECK_INT_EQ(load_with(&e, &c, &d, "MQ_USE_SSL", "YES"), 0);
    CHECK_INT_EQ(c.mq_use_ssl, 1);
    release_all(&e, &c, &d);

    CHECK_INT_EQ(load_with(&e, &c, &d, "MQ_USE_SSL_REJECT_UNAUTHORIZED", "0"), 0);
    CHECK(!c.mq_ssl_verify);
    release_all(&e, &c, &d);
    CHECK_INT_EQ(load_with(&e, &c, &d, "MQ_USE_SSL_REJECT_UNAUTHORIZED", "nah"), E_INVAL);
    CHECK(diag_has(&d, "MQ_USE_SSL_REJECT_UNAUTHORIZED"));
    release_all(&e, &c, &d);
}

static void test_booleans(void)
{
    static const char *const yes[] = {"true", "TRUE", "True", "yes", "YES", "1", " true "};
    static const char *const no[] = {"false", "FALSE", "no", "No", "0"};
    bool b;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        CHECK_INT_EQ(config_parse_bool(yes[i], &b), 0);
        CHECK(b);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        CHECK_INT_EQ(config_parse_bool(no[i], &b), 0);
        CHECK(!b);
    }
    CHECK_INT_EQ(config_parse_bool("on", &b), E_INVAL);
    CHECK_INT_EQ(config_parse_bool("", &b), E_INVAL);
    CHECK_INT_EQ(config_parse_bool("2", &b), E_INVAL);
}

static void test_strict_numbers(void)
{
    static const char *const bad[] = {"7.5", "-1", "+7", "7d", "0x7", "", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct env e;
        struct config c;
        struct diag d;
        base_env(&e);
        diag_init(&d);
        CHECK_INT_EQ(env_set(&e, "CONFIG_INTERVAL", bad[i]), 0);
        int rc = config_load(&c, &e, &d);
        /* an empty value means the default, as in pycti */
        if (bad[i][0])
            CHECK_INT_EQ(rc, E_INVAL);
        else
            CHECK_INT_EQ(rc, 0);
        config_release(&c);
        diag_release(&d);
        env_release(&e);
    }
}

static void test_duration_period(void)
{
    struct env e;
    struct config c;
    struct diag d;
    base_env(&e);
    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "CONNECTOR_DURATION_PERIOD", "PT12H"), 0);
    CHECK_INT_EQ(env_set(&e, "CONFIG_INTERVAL", "3"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), 0);
    CHECK_INT_EQ(c.period_ms, 12 * MS_PER_H);
    CHECK(c.period_from_duration);
    CHECK(diag_has(&d, "takes precedence"));
    config_release(&c);
    diag_release(&d);

    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "CONNECTOR_DURATION_PERIOD", "PT0S"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), 0);
    CHECK(c.run_and_terminate);
    config_release(&c);
    diag_release(&d);

    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "CONNECTOR_DURATION_PERIOD", "0"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), 0);
    CHECK(c.run_and_terminate);
    config_release(&c);
    diag_release(&d);

    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "CONNECTOR_DURATION_PERIOD", "weekly"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), E_INVAL);
    CHECK(diag_has(&d, "CONNECTOR_DURATION_PERIOD"));
    config_release(&c);
    diag_release(&d);
    env_release(&e);
}

static void test_dataset_urls(void)
{
    struct env e;
    struct config c;
    struct diag d;
    base_env(&e);
    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "CONFIG_SECTORS_FILE_URL", "FALSE"), 0);
    CHECK_INT_EQ(env_set(&e, "CONFIG_GEOGRAPHY_FILE_URL", ""), 0);
    CHECK_INT_EQ(env_set(&e, "CONFIG_COMPANIES_FILE_URL", "file:///srv/mirror/companies.json"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), 0);
    CHECK_NULL(c.dataset_url[DATASET_SECTORS]);
    CHECK_NULL(c.dataset_url[DATASET_GEOGRAPHY]);
    CHECK_STR_EQ(c.dataset_url[DATASET_COMPANIES], "file:///srv/mirror/companies.json");
    config_release(&c);
    diag_release(&d);

    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "CONFIG_SECTORS_FILE_URL", "true"), 0);
    CHECK_INT_EQ(env_set(&e, "CONFIG_GEOGRAPHY_FILE_URL", "ftp://x/y.json"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), E_INVAL);
    CHECK_UINT_EQ(d.errors, 2);
    CHECK(diag_has(&d, "CONFIG_SECTORS_FILE_URL"));
    CHECK(diag_has(&d, "CONFIG_GEOGRAPHY_FILE_URL"));
    config_release(&c);
    diag_release(&d);
    env_release(&e);
}

static void test_custom_headers_and_uuid(void)
{
    struct env e;
    struct config c;
    struct diag d;
    base_env(&e);
    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "OPENCTI_CUSTOM_HEADERS", " X-A : 1 ; X-B:two words;"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), 0);
    CHECK_UINT_EQ(c.n_custom_headers, 2);
    CHECK_STR_EQ(c.custom_headers[0].name, "X-A");
    CHECK_STR_EQ(c.custom_headers[0].value, "1");
    CHECK_STR_EQ(c.custom_headers[1].value, "two words");
    config_release(&c);
    diag_release(&d);

    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "OPENCTI_CUSTOM_HEADERS", "novalue"), 0);
    CHECK_INT_EQ(env_set(&e, "CONNECTOR_ID", "ChangeMe"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), E_INVAL);
    CHECK(diag_has(&d, "OPENCTI_CUSTOM_HEADERS"));
    CHECK(diag_has(&d, "CONNECTOR_ID: \"ChangeMe\" is not a UUID"));
    config_release(&c);
    diag_release(&d);
    env_release(&e);
}

static void test_deprecated_and_unsupported(void)
{
    struct env e;
    struct config c;
    struct diag d;
    base_env(&e);
    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "CONNECTOR_UPDATE_EXISTING_DATA", "true"), 0);
    CHECK_INT_EQ(env_set(&e, "CONNECTOR_CONFIDENCE_LEVEL", "100"), 0);
    CHECK_INT_EQ(env_set(&e, "CONFIG_INTERVALL", "3"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), 0);
    CHECK_UINT_EQ(d.errors, 0);
    CHECK(diag_has(&d, "CONNECTOR_UPDATE_EXISTING_DATA is deprecated"));
    CHECK(diag_has(&d, "CONNECTOR_CONFIDENCE_LEVEL is deprecated"));
    CHECK(diag_has(&d, "CONFIG_INTERVALL is not a setting"));
    config_release(&c);
    diag_release(&d);

    diag_init(&d);
    CHECK_INT_EQ(env_set(&e, "CONNECTOR_QUEUE_PROTOCOL", "api"), 0);
    CHECK_INT_EQ(env_set(&e, "CONNECTOR_TYPE", "STREAM"), 0);
    CHECK_INT_EQ(config_load(&c, &e, &d), E_INVAL);
    CHECK(diag_has(&d, "CONNECTOR_QUEUE_PROTOCOL"));
    CHECK(diag_has(&d, "CONNECTOR_TYPE"));
    config_release(&c);
    diag_release(&d);
    env_release(&e);
}

static void test_env_file(void)
{
    const char *text = "# a comment\n"
                       "\n"
                       "OPENCTI_URL=http://a:8080\n"
                       "export CONNECTOR_NAME=\"My \\\"Datasets\\\"\"\n"
                       "  CONFIG_INTERVAL = 3  \r\n"
                       "MQ_PASS='p#ss word'\n"
                       "EMPTY=\n"
                       "no equals sign\n"
                       "1BAD=x\n"
                       "UNBALANCED=\"abc\n";
    struct env e;
    struct err err = {{0}};
    size_t nerr = 0;
    env_init(&e);
    CHECK_INT_EQ(env_parse(&e, text, strlen(text), &nerr, &err), E_PARSE);
    CHECK_UINT_EQ(nerr, 3);
    CHECK_STR_CONTAINS(err.msg, "line 8");
    CHECK_STR_CONTAINS(err.msg, "line 9");
    CHECK_STR_CONTAINS(err.msg, "line 10");
    CHECK_STR_EQ(env_get(&e, "OPENCTI_URL"), "http://a:8080");
    CHECK_STR_EQ(env_get(&e, "CONNECTOR_NAME"), "My \"Datasets\"");
    CHECK_STR_EQ(env_get(&e, "CONFIG_INTERVAL"), "3");
    CHECK_STR_EQ(env_get(&e, "MQ_PASS"), "p#ss word");
    CHECK_STR_EQ(env_get(&e, "EMPTY"), "");
    CHECK_NULL(env_get(&e, "UNBALANCED"));
    /* the real environment wins over the file */
    char *vars[] = {"CONFIG_INTERVAL=5", "PATH_LIKE=a=b", NULL};
    CHECK_INT_EQ(env_overlay(&e, vars), 0);
    CHECK_STR_EQ(env_get(&e, "CONFIG_INTERVAL"), "5");
    CHECK_STR_EQ(env_get(&e, "PATH_LIKE"), "a=b");
    env_release(&e);
}

static void test_durations(void)
{
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"P7D", 7 * MS_PER_DAY},
              {"PT12H", 12 * MS_PER_H},
              {"PT0S", 0},
              {"0", 0},
              {"P1W", 7 * MS_PER_DAY},
              {"P1DT2H3M4S", MS_PER_DAY + 2 * MS_PER_H + 3 * MS_PER_MIN + 4 * MS_PER_S},
              {"pt30m", 30 * MS_PER_MIN},
              {"PT1.5S", 1500},
              {"P1M", 30 * MS_PER_DAY},
              {"P1Y", 365 * MS_PER_DAY},
              {"PT90M", 90 * MS_PER_MIN}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t ms = -1;
        CHECK_INT_EQ(duration_parse(ok[i].s, &ms), 0);
        CHECK_INT_EQ(ms, ok[i].ms);
    }
    static const char *const bad[] = {"",         "P",      "PT",     "7D",     "P7",
                                      "P-1D",     "PT1H2H", "P1H",    "PT1M1H", "P1.5D",
                                      "PT1.5S2M", "P1DT",   "P1000Y", "1h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms;
        if (duration_parse(bad[i], &ms) == 0)
            CHECK_FAIL_("duration_parse(\"%s\") accepted", bad[i]);
    }
}

static void test_utc(void)
{
    int64_t t;
    CHECK_INT_EQ(utc_parse("2024-01-02T03:04:05Z", &t), 0);
    CHECK_INT_EQ(t, 1704164645);
    CHECK_INT_EQ(utc_parse("2024-01-02T03:04:05.123456+00:00", &t), 0);
    CHECK_INT_EQ(t, 1704164645);
    CHECK_INT_EQ(utc_parse("2024-01-02T05:04:05+02:00", &t), 0);
    CHECK_INT_EQ(t, 1704164645);
    CHECK_INT_EQ(utc_parse("2024-01-02", &t), 0);
    CHECK_INT_EQ(t, 1704153600);
    CHECK_INT_EQ(utc_parse("2024-13-02T00:00:00Z", &t), E_INVAL);
    CHECK_INT_EQ(utc_parse("yesterday", &t), E_INVAL);
    char s[32];
    utc_format(1704164645, 0, s, sizeof(s));
    CHECK_STR_EQ(s, "2024-01-02 03:04:05");
    utc_format(1704164645, 1, s, sizeof(s));
    CHECK_STR_EQ(s, "2024-01-02T03:04:05Z");
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_required_all_reported);
    RUN(test_secrets_not_echoed);
    RUN(test_url_and_key_not_echoed);
    RUN(test_mq_tls_settings);
    RUN(test_booleans);
    RUN(test_strict_numbers);
    RUN(test_duration_period);
    RUN(test_dataset_urls);
    RUN(test_custom_headers_and_uuid);
    RUN(test_deprecated_and_unsupported);
    RUN(test_env_file);
    RUN(test_durations);
    RUN(test_utc);
    return check_summary();
}
