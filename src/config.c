/* config.c - reading and validating every setting. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "http.h"
#include "timeutil.h"

/* Defaults and bounds of our own settings (the pycti ones follow pycti). */
#define DEFAULT_INTERVAL_DAYS 7
#define MAX_INTERVAL_DAYS 3650
#define DEFAULT_OPENCTI_TIMEOUT_MS (60 * MS_PER_S)
#define DEFAULT_PING_INTERVAL_MS (40 * MS_PER_S)
#define DEFAULT_CHECK_INTERVAL_MS (60 * MS_PER_S)
#define DEFAULT_RETRY_INTERVAL_MS (1 * MS_PER_H)
#define DEFAULT_FETCH_TIMEOUT_MS (5 * MS_PER_MIN)
#define DEFAULT_MAX_DATASET_SIZE (256ULL * 1024 * 1024)
#define MAX_DATASET_SIZE_LIMIT (4ULL * 1024 * 1024 * 1024 - 1)
#define DEFAULT_MQ_WINDOW 256
#define MAX_MQ_WINDOW 65535
#define DEFAULT_MQ_HEARTBEAT_S 10
#define DEFAULT_MQ_MAX_MESSAGE (16ULL * 1024 * 1024)
#define MAX_MQ_MAX_MESSAGE (512ULL * 1024 * 1024)
#define DEFAULT_MQ_GIVE_UP_MS (5 * MS_PER_MIN)
#define DEFAULT_MQ_CONNECT_TIMEOUT_MS (10 * MS_PER_S)

static const char *const dataset_names[DATASET_COUNT] = {"sectors", "geography", "companies"};
static const char *const dataset_vars[DATASET_COUNT] = {
    "CONFIG_SECTORS_FILE_URL", "CONFIG_GEOGRAPHY_FILE_URL", "CONFIG_COMPANIES_FILE_URL"};

const char *dataset_name(enum dataset_kind k)
{
    return k < DATASET_COUNT ? dataset_names[k] : "?";
}

char *config_status_path(const struct env *env)
{
    const char *v = env_get(env, "CONNECTOR_STATUS_FILE");
    if (v && *v)
        return strdup(v);
    const char *rd = env_get(env, "RUNTIME_DIRECTORY");
    if (!rd || !*rd)
        return NULL;
    /* systemd may list several directories separated by ':'; the first is ours */
    size_t n = strcspn(rd, ":");
    char *p = malloc(n + sizeof("/status.json"));
    if (p) {
        memcpy(p, rd, n);
        memcpy(p + n, "/status.json", sizeof("/status.json"));
    }
    return p;
}

/* ---- diagnostics ------------------------------------------------------------------ */

void diag_init(struct diag *d)
{
    d->items = NULL;
    d->len = d->cap = d->errors = 0;
}

void diag_release(struct diag *d)
{
    for (size_t i = 0; i < d->len; i++)
        free(d->items[i].text);
    free(d->items);
    diag_init(d);
}

void diag_add(struct diag *d, enum diag_severity sev, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (sev == DIAG_ERROR)
        d->errors++;
    if (d->len == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct diag_item *p = realloc(d->items, cap * sizeof(*p));
        if (!p)
            return; /* the error count above still makes the load fail */
        d->items = p;
        d->cap = cap;
    }
    char *copy = strdup(text);
    if (!copy)
        return;
    d->items[d->len].severity = sev;
    d->items[d->len].text = copy;
    d->len++;
}

/* ---- value parsers ---------------------------------------------------------------- */

/* Returns the setting, or NULL when unset or empty (pycti: an empty value means the
 * default). */
static const char *get(const struct env *env, const char *name)
{
    const char *v = env_get(env, name);
    return v && *v ? v : NULL;
}

static void trim_copy(const char *s, char *out, size_t cap)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

int config_parse_bool(const char *s, bool *ret)
{
    static const char *const yes[] = {"true", "yes", "1"};
    static const char *const no[] = {"false", "no", "0"};
    char t[16];
    trim_copy(s, t, sizeof(t));
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(t, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
        if (strcasecmp(t, no[i]) == 0) {
            *ret = false;
            return 0;
        }
    }
    return E_INVAL;
}

/* Strict decimal integer: optional blanks around, digits only, no sign, no overflow. */
static int parse_u64(const char *s, uint64_t *ret)
{
    char t[32];
    if (strlen(s) >= sizeof(t))
        return E_INVAL;
    trim_copy(s, t, sizeof(t));
    if (!t[0])
        return E_INVAL;
    uint64_t v = 0;
    for (const char *p = t; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return E_INVAL;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return E_INVAL;
        v = v * 10 + d;
    }
    *ret = v;
    return 0;
}

static bool read_bool(const struct env *env, struct diag *d, const char *name, bool def)
{
    const char *v = get(env, name);
    bool b = def;
    if (v && config_parse_bool(v, &b))
        diag_add(d, DIAG_ERROR, "%s: \"%s\" is not a boolean (use true or false)", name, v);
    return b;
}

static uint64_t read_uint(const struct env *env, struct diag *d, const char *name, uint64_t def,
                          uint64_t min, uint64_t max, const char *unit)
{
    const char *v = get(env, name);
    uint64_t n;
    if (!v)
        return def;
    if (parse_u64(v, &n)) {
        diag_add(d, DIAG_ERROR, "%s: \"%s\" is not a whole number%s%s", name, v, unit ? " of " : "",
                 unit ? unit : "");
        return def;
    }
    if (n < min || n > max) {
        diag_add(d, DIAG_ERROR, "%s: %" PRIu64 " is out of range (%" PRIu64 " to %" PRIu64 "%s%s)",
                 name, n, min, max, unit ? " " : "", unit ? unit : "");
        return def;
    }
    return n;
}

/* An ISO-8601 duration, or a plain number of seconds. */
static int64_t read_duration(const struct env *env, struct diag *d, const char *name, int64_t def,
                             int64_t min, int64_t max)
{
    const char *v = get(env, name);
    if (!v)
        return def;
    int64_t ms;
    uint64_t secs;
    char t[64];
    trim_copy(v, t, sizeof(t));
    if (parse_u64(t, &secs) == 0 && secs <= (uint64_t)(INT64_MAX / MS_PER_S)) {
        ms = (int64_t)secs * MS_PER_S;
    } else if (duration_parse(t, &ms)) {
        diag_add(d, DIAG_ERROR,
                 "%s: \"%s\" is not an ISO-8601 duration (such as PT30S, PT1H or P7D) "
                 "or a number of seconds",
                 name, v);
        return def;
    }
    if (ms < min || ms > max) {
        char a[32], b[32];
        duration_format(min, a, sizeof(a));
        duration_format(max, b, sizeof(b));
        diag_add(d, DIAG_ERROR, "%s: \"%s\" is out of range (%s to %s)", name, v, a, b);
        return def;
    }
    return ms;
}

static int dup_to(char **dst, const char *s)
{
    if (!s) {
        *dst = NULL;
        return 0;
    }
    *dst = strdup(s);
    return *dst ? 0 : E_NOMEM;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static bool readable_file(const char *path)
{
    return access(path, R_OK) == 0;
}

static bool is_pem(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return strncmp(s, "-----BEGIN", 10) == 0;
}

/* ---- individual settings ------------------------------------------------------------- */

/* The password of a URL's user information (http_url_userinfo), or NULL. */
static const char *url_password(const char *url, size_t *len)
{
    const char *ui, *pw;
    size_t ui_len;
    if (!http_url_userinfo(url, &ui, &ui_len, &pw, len) || !pw || *len == 0)
        return NULL;
    return pw;
}

/* url with its password, if any, replaced by "***", for error messages. */
static const char *url_display(const char *url, char *out, size_t cap)
{
    size_t n;
    const char *pw = url_password(url, &n);
    if (!pw)
        return url;
    snprintf(out, cap, "%.*s***%s", (int)(pw - url), url, pw + n);
    return out;
}

static int load_url(struct config *cfg, const struct env *env, struct diag *d)
{
    const char *v = get(env, "OPENCTI_URL");
    if (!v) {
        diag_add(d, DIAG_ERROR,
                 "OPENCTI_URL is required (the platform's base URL, "
                 "for example http://opencti:8080)");
        return 0;
    }
    if ((strncasecmp(v, "http://", 7) != 0 && strncasecmp(v, "https://", 8) != 0) ||
        strpbrk(v, " \t\r\n") || has_ctl(v)) {
        char shown[512];
        diag_add(d, DIAG_ERROR, "OPENCTI_URL: \"%s\" is not an http:// or https:// URL",
                 url_display(v, shown, sizeof(shown)));
        return 0;
    }
    char *u = strdup(v);
    if (!u)
        return E_NOMEM;
    size_t n = strlen(u);
    while (n && u[n - 1] == '/')
        u[--n] = '\0';
    cfg->opencti_url = u;
    return 0;
}

static int load_token(struct config *cfg, const struct env *env, struct diag *d)
{
    const char *v = get(env, "OPENCTI_TOKEN");
    if (!v) {
        diag_add(d, DIAG_ERROR,
                 "OPENCTI_TOKEN is required (the API token of the "
                 "connector's user)");
        return 0;
    }
    if (strcmp(v, "ChangeMe") == 0) {
        diag_add(d, DIAG_ERROR, "OPENCTI_TOKEN is still the placeholder \"ChangeMe\"");
        return 0;
    }
    if (has_ctl(v) || strchr(v, ' ')) {
        diag_add(d, DIAG_ERROR, "OPENCTI_TOKEN contains spaces or control characters");
        return 0;
    }
    return dup_to(&cfg->opencti_token, v);
}

static int load_ssl_verify(struct config *cfg, const struct env *env, struct diag *d)
{
    const char *v = get(env, "OPENCTI_SSL_VERIFY");
    cfg->ssl_verify = true;
    if (!v || config_parse_bool(v, &cfg->ssl_verify) == 0)
        return 0;
    /* pycti (requests) also accepts a CA bundle path here */
    if (readable_file(v)) {
        cfg->ssl_verify = true;
        return dup_to(&cfg->ssl_ca_file, v);
    }
    diag_add(d, DIAG_ERROR,
             "OPENCTI_SSL_VERIFY: \"%s\" is neither a boolean nor a readable "
             "CA bundle file",
             v);
    return 0;
}

static bool valid_header_name(const char *s, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || strchr("!#$%&'*+-.^_`|~", c)))
            return false;
    }
    return true;
}

static int load_custom_headers(struct config *cfg, const struct env *env, struct diag *d)
{
    const char *v = get(env, "OPENCTI_CUSTOM_HEADERS");
    if (!v)
        return 0;
    if (has_ctl(v)) {
        diag_add(d, DIAG_ERROR, "OPENCTI_CUSTOM_HEADERS contains control characters");
        return 0;
    }
    size_t idx = 0;
    for (const char *p = v; *p;) {
        const char *semi = strchr(p, ';');
        size_t plen = semi ? (size_t)(semi - p) : strlen(p);
        idx++;
        /* trim the pair */
        const char *s = p, *e = p + plen;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        p = semi ? semi + 1 : p + plen;
        if (s == e)
            continue;
        const char *colon = memchr(s, ':', (size_t)(e - s));
        const char *ne = colon ? colon : e;
        while (ne > s && isspace((unsigned char)ne[-1]))
            ne--;
        if (!colon || !valid_header_name(s, (size_t)(ne - s))) {
            diag_add(d, DIAG_ERROR,
                     "OPENCTI_CUSTOM_HEADERS: pair %zu is not \"name:value\" "
                     "with a valid header name (format: name1:value1;name2:value2)",
                     idx);
            continue;
        }
        const char *vs = colon + 1;
        while (vs < e && isspace((unsigned char)*vs))
            vs++;
        struct http_header *h =
            realloc(cfg->custom_headers, (cfg->n_custom_headers + 1) * sizeof(*h));
        if (!h)
            return E_NOMEM;
        cfg->custom_headers = h;
        h = &cfg->custom_headers[cfg->n_custom_headers];
        h->name = strndup(s, (size_t)(ne - s));
        h->value = strndup(vs, (size_t)(e - vs));
        cfg->n_custom_headers++;
        if (!h->name || !h->value)
            return E_NOMEM;
    }
    return 0;
}

static int load_connector_id(struct config *cfg, const struct env *env, struct diag *d)
{
    const char *v = get(env, "CONNECTOR_ID");
    uuid_t u;
    if (!v) {
        diag_add(d, DIAG_ERROR,
                 "CONNECTOR_ID is required (a UUID that identifies this "
                 "connector on the platform; generate one with uuidgen)");
        return 0;
    }
    if (strlen(v) != 36 || uuid_parse(v, u) != 0) {
        diag_add(d, DIAG_ERROR, "CONNECTOR_ID: \"%s\" is not a UUID (generate one with uuidgen)",
                 v);
        return 0;
    }
    return dup_to(&cfg->connector_id, v);
}

static int load_scope(struct config *cfg, const struct env *env, struct diag *d)
{
    const char *v = get(env, "CONNECTOR_SCOPE");
    if (!v)
        v = CONFIG_DEFAULT_SCOPE;
    if (has_ctl(v)) {
        diag_add(d, DIAG_ERROR, "CONNECTOR_SCOPE contains control characters");
        v = CONFIG_DEFAULT_SCOPE;
    }
    if (dup_to(&cfg->connector_scope, v))
        return E_NOMEM;
    /* split on ',' without trimming, as pycti registers it */
    size_t n = 1;
    for (const char *p = v; *p; p++)
        n += *p == ',';
    cfg->scope = calloc(n, sizeof(char *));
    if (!cfg->scope)
        return E_NOMEM;
    const char *p = v;
    for (size_t i = 0; i < n; i++) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        cfg->scope[i] = strndup(p, len);
        if (!cfg->scope[i])
            return E_NOMEM;
        cfg->n_scope++;
        p = c ? c + 1 : p + len;
    }
    return 0;
}

static int load_dataset_url(struct config *cfg, const struct env *env, struct diag *d,
                            enum dataset_kind k)
{
    const char *name = dataset_vars[k];
    const char *raw = env_get(env, name);
    char t[16];
    if (!raw) {
        char def[256];
        snprintf(def, sizeof(def), CONFIG_DATASETS_BASE "%s.json", dataset_names[k]);
        return dup_to(&cfg->dataset_url[k], def);
    }
    trim_copy(raw, t, sizeof(t));
    if (t[0] == '\0' || strcasecmp(t, "false") == 0)
        return 0; /* disabled */
    if (strncasecmp(raw, "http://", 7) != 0 && strncasecmp(raw, "https://", 8) != 0 &&
        strncasecmp(raw, "file://", 7) != 0) {
        char shown[512];
        diag_add(d, DIAG_ERROR,
                 "%s: \"%s\" is not an http://, https:// or file:// URL "
                 "(or false to disable the %s dataset)",
                 name, url_display(raw, shown, sizeof(shown)), dataset_names[k]);
        return 0;
    }
    if (strpbrk(raw, " \t\r\n") || has_ctl(raw)) {
        diag_add(d, DIAG_ERROR, "%s: the URL contains spaces or control characters", name);
        return 0;
    }
    return dup_to(&cfg->dataset_url[k], raw);
}

/* MQ_USE_SSL_CA / _CERT / _KEY: a readable file or inline PEM. */
static int load_pem_setting(char **dst, const struct env *env, struct diag *d, const char *name)
{
    const char *v = get(env, name);
    if (!v)
        return 0;
    if (!is_pem(v) && !readable_file(v)) {
        /* A key pasted without its BEGIN line is key material: show a value only when it
         * looks like a path, and never for the key. */
        bool path_like = (v[0] == '/' || v[0] == '.') && !strpbrk(v, " \t\r\n");
        if (path_like && strcmp(name, "MQ_USE_SSL_KEY") != 0)
            diag_add(d, DIAG_ERROR, "%s: \"%s\" is neither inline PEM nor a readable file", name,
                     v);
        else
            diag_add(d, DIAG_ERROR,
                     "%s is neither inline PEM (no -----BEGIN line) nor a readable file "
                     "(the value is not shown)",
                     name);
        *dst = strdup(""); /* given, though unusable: no second error about its pair */
        return *dst ? 0 : E_NOMEM;
    }
    return dup_to(dst, v);
}

/* Settings pycti reads that this daemon does not implement. Values that would change
 * what gets imported are errors; the others are ignored with a warning. */
static void check_pycti_extras(const struct env *env, struct diag *d)
{
    static const char *const ignored[] = {"CONNECTOR_QUEUE_THRESHOLD",
                                          "CONNECTOR_EXPOSE_METRICS",
                                          "CONNECTOR_METRICS_NAMESPACE",
                                          "CONNECTOR_METRICS_SUBSYSTEM",
                                          "CONNECTOR_METRICS_PORT",
                                          "CONNECTOR_LISTEN_PROTOCOL",
                                          "CONNECTOR_LISTEN_PROTOCOL_API_PORT",
                                          "CONNECTOR_LISTEN_PROTOCOL_API_PATH",
                                          "CONNECTOR_LISTEN_PROTOCOL_API_SSL",
                                          "CONNECTOR_LISTEN_PROTOCOL_API_URI",
                                          "CONNECTOR_AUTO_CREATE_SERVICE_ACCOUNT",
                                          "CONNECTOR_AUTO_CREATE_SERVICE_ACCOUNT_CONFIDENCE_LEVEL",
                                          "CONNECTOR_SEND_TO_DIRECTORY_PATH",
                                          "CONNECTOR_SEND_TO_DIRECTORY_RETENTION",
                                          "HTTPS_CA_CERTIFICATES"};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        if (get(env, ignored[i]))
            diag_add(d, DIAG_WARNING,
                     "%s is a pycti setting that opencti-datasets does not "
                     "implement; it is ignored",
                     ignored[i]);
    const char *v;
    bool b;
    if ((v = get(env, "CONNECTOR_QUEUE_PROTOCOL")) && strcasecmp(v, "amqp") != 0)
        diag_add(d, DIAG_ERROR, "CONNECTOR_QUEUE_PROTOCOL: only amqp is supported, not \"%s\"", v);
    if ((v = get(env, "QUEUE_PROTOCOL")) && strcasecmp(v, "amqp") != 0)
        diag_add(d, DIAG_ERROR, "QUEUE_PROTOCOL: only amqp is supported, not \"%s\"", v);
    if ((v = get(env, "CONNECTOR_SEND_TO_QUEUE")) && (config_parse_bool(v, &b) || !b))
        diag_add(d, DIAG_ERROR,
                 "CONNECTOR_SEND_TO_QUEUE: only true is supported (this "
                 "connector always sends to its queue)");
    if ((v = get(env, "CONNECTOR_SEND_TO_DIRECTORY")) && (config_parse_bool(v, &b) || b))
        diag_add(d, DIAG_ERROR, "CONNECTOR_SEND_TO_DIRECTORY: directory mode is not supported");
    if ((v = get(env, "CONNECTOR_VALIDATE_BEFORE_IMPORT")) && (config_parse_bool(v, &b) || b))
        diag_add(d, DIAG_ERROR,
                 "CONNECTOR_VALIDATE_BEFORE_IMPORT: validation mode is not "
                 "supported");
}

/* Every CONFIG_* and MQ_* name this daemon knows; anything else with those prefixes is
 * probably a typo and earns a warning. */
static const char *const known_prefixed[] = {"CONFIG_INTERVAL",
                                             "CONFIG_REMOVE_CREATOR",
                                             "CONFIG_SECTORS_FILE_URL",
                                             "CONFIG_GEOGRAPHY_FILE_URL",
                                             "CONFIG_COMPANIES_FILE_URL",
                                             "CONFIG_RETRY_INTERVAL",
                                             "CONFIG_FETCH_TIMEOUT",
                                             "CONFIG_MAX_DATASET_SIZE",
                                             "MQ_HOST",
                                             "MQ_PORT",
                                             "MQ_VHOST",
                                             "MQ_USE_SSL",
                                             "MQ_USER",
                                             "MQ_PASS",
                                             "MQ_USE_SSL_CA",
                                             "MQ_USE_SSL_CERT",
                                             "MQ_USE_SSL_KEY",
                                             "MQ_USE_SSL_PASSPHRASE",
                                             "MQ_USE_SSL_REJECT_UNAUTHORIZED",
                                             "MQ_CONFIRM_WINDOW",
                                             "MQ_HEARTBEAT",
                                             "MQ_MAX_MESSAGE_SIZE",
                                             "MQ_PUBLISH_TIMEOUT",
                                             "MQ_CONNECT_TIMEOUT"};

static void check_unknown(const struct env *env, struct diag *d)
{
    for (size_t i = 0; i < env->len; i++) {
        const char *k = env->entries[i].key;
        if (strncmp(k, "CONFIG_", 7) != 0 && strncmp(k, "MQ_", 3) != 0)
            continue;
        bool known = false;
        for (size_t j = 0; j < sizeof(known_prefixed) / sizeof(known_prefixed[0]); j++)
            known |= strcmp(k, known_prefixed[j]) == 0;
        if (!known)
            diag_add(d, DIAG_WARNING,
                     "%s is not a setting of opencti-datasets (a typo?); "
                     "it is ignored",
                     k);
    }
}

static int load_http_env(struct config *cfg, const struct env *env, struct diag *d)
{
    /* libcurl ignores upper-case HTTP_PROXY on purpose; operators (and XTM Composer) set
     * it, so both spellings are honoured here and handed to curl explicitly. */
    const char *v;
    int rc = 0;
    if ((v = get(env, "HTTPS_PROXY")) || (v = get(env, "https_proxy")))
        rc |= dup_to(&cfg->https_proxy, v);
    if ((v = get(env, "HTTP_PROXY")) || (v = get(env, "http_proxy")))
        rc |= dup_to(&cfg->http_proxy, v);
    if ((v = get(env, "NO_PROXY")) || (v = get(env, "no_proxy")))
        rc |= dup_to(&cfg->no_proxy, v);
    if ((v = get(env, "TMPDIR")))
        rc |= dup_to(&cfg->tmp_dir, v);
    static const char *const ca_vars[] = {"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"};
    for (size_t i = 0; i < 3 && !cfg->ca_bundle; i++) {
        if (!(v = get(env, ca_vars[i])))
            continue;
        if (!readable_file(v))
            diag_add(d, DIAG_ERROR, "%s: \"%s\" is not a readable CA bundle file", ca_vars[i], v);
        else
            rc |= dup_to(&cfg->ca_bundle, v);
    }
    return rc ? E_NOMEM : 0;
}

int config_load(struct config *cfg, const struct env *env, struct diag *d)
{
    memset(cfg, 0, sizeof(*cfg));
    int rc = 0;
    const char *v;

    /* OPENCTI_* */
    if ((rc = load_url(cfg, env, d)) || (rc = load_token(cfg, env, d)) ||
        (rc = load_ssl_verify(cfg, env, d)) || (rc = load_custom_headers(cfg, env, d)))
        return rc;
    cfg->json_logging = read_bool(env, d, "OPENCTI_JSON_LOGGING", true);
    cfg->opencti_timeout_ms =
        read_duration(env, d, "OPENCTI_TIMEOUT", DEFAULT_OPENCTI_TIMEOUT_MS, MS_PER_S, MS_PER_H);

    /* CONNECTOR_* */
    if ((rc = load_connector_id(cfg, env, d)))
        return rc;
    v = get(env, "CONNECTOR_NAME");
    if (v && (strlen(v) < 2 || has_ctl(v) || strspn(v, " \t") == strlen(v))) {
        diag_add(d, DIAG_ERROR,
                 "CONNECTOR_NAME: \"%s\" is too short or blank "
                 "(at least 2 visible characters)",
                 v);
        v = NULL;
    }
    if ((rc = dup_to(&cfg->connector_name, v ? v : CONFIG_DEFAULT_NAME)) ||
        (rc = load_scope(cfg, env, d)))
        return rc;
    if ((v = get(env, "CONNECTOR_TYPE")) && strcasecmp(v, "EXTERNAL_IMPORT") != 0)
        diag_add(d, DIAG_ERROR,
                 "CONNECTOR_TYPE: \"%s\" is not supported (this is an "
                 "EXTERNAL_IMPORT connector)",
                 v);
    cfg->log_level = LOG_ERROR;
    if ((v = get(env, "CONNECTOR_LOG_LEVEL")) && log_level_parse(v, &cfg->log_level))
        diag_add(d, DIAG_ERROR,
                 "CONNECTOR_LOG_LEVEL: \"%s\" is not one of debug, info, "
                 "warn, warning, error",
                 v);
    cfg->run_and_terminate = read_bool(env, d, "CONNECTOR_RUN_AND_TERMINATE", false);
    cfg->auto_ = read_bool(env, d, "CONNECTOR_AUTO", false);
    cfg->auto_update = read_bool(env, d, "CONNECTOR_AUTO_UPDATE", false);
    cfg->only_contextual = read_bool(env, d, "CONNECTOR_ONLY_CONTEXTUAL", false);
    v = get(env, "CONNECTOR_ENRICHMENT_RESOLUTION");
    if ((rc = dup_to(&cfg->enrichment_resolution, v ? v : "none")))
        return rc;
    cfg->ping_interval_ms = read_duration(env, d, "CONNECTOR_PING_INTERVAL",
                                          DEFAULT_PING_INTERVAL_MS, MS_PER_S, 4 * MS_PER_MIN);
    cfg->check_interval_ms = read_duration(env, d, "CONNECTOR_CHECK_INTERVAL",
                                           DEFAULT_CHECK_INTERVAL_MS, MS_PER_S, MS_PER_DAY);
    cfg->status_file = config_status_path(env);
    if (get(env, "CONNECTOR_UPDATE_EXISTING_DATA"))
        diag_add(d, DIAG_WARNING,
                 "CONNECTOR_UPDATE_EXISTING_DATA is deprecated and ignored "
                 "(bundles are always sent with update=true, as the current "
                 "official connector does)");
    if (get(env, "CONNECTOR_CONFIDENCE_LEVEL"))
        diag_add(d, DIAG_WARNING,
                 "CONNECTOR_CONFIDENCE_LEVEL is deprecated and ignored (the "
                 "platform takes the confidence from the connector's user)");

    /* CONFIG_* and the run period */
    cfg->interval_days = (int64_t)read_uint(env, d, "CONFIG_INTERVAL", DEFAULT_INTERVAL_DAYS, 1,
                                            MAX_INTERVAL_DAYS, "days");
    cfg->period_ms = cfg->interval_days * MS_PER_DAY;
    if ((v = get(env, "CONNECTOR_DURATION_PERIOD"))) {
        char t[64];
        int64_t ms;
        uint64_t secs;
        trim_copy(v, t, sizeof(t));
        if (parse_u64(t, &secs) == 0 && secs <= UINT64_C(3153600000))
            ms = (int64_t)secs * MS_PER_S;
        else if (duration_parse(t, &ms))
            ms = -1;
        if (ms < 0) {
            diag_add(d, DIAG_ERROR,
                     "CONNECTOR_DURATION_PERIOD: \"%s\" is not an ISO-8601 "
                     "duration (such as PT12H or P7D) or 0",
                     v);
        } else if (ms == 0) {
            cfg->run_and_terminate = true;
        } else if (ms < MS_PER_MIN) {
            diag_add(d, DIAG_ERROR,
                     "CONNECTOR_DURATION_PERIOD: \"%s\" is shorter than one "
                     "minute",
                     v);
        } else {
            cfg->period_ms = ms;
            cfg->period_from_duration = true;
            if (get(env, "CONFIG_INTERVAL"))
                diag_add(d, DIAG_WARNING,
                         "CONNECTOR_DURATION_PERIOD (%s) takes precedence "
                         "over CONFIG_INTERVAL (the official connector "
                         "ignores CONNECTOR_DURATION_PERIOD)",
                         v);
        }
    }
    cfg->remove_creator = read_bool(env, d, "CONFIG_REMOVE_CREATOR", false);
    for (int k = 0; k < DATASET_COUNT; k++)
        if ((rc = load_dataset_url(cfg, env, d, (enum dataset_kind)k)))
            return rc;
    if (!cfg->dataset_url[0] && !cfg->dataset_url[1] && !cfg->dataset_url[2])
        diag_add(d, DIAG_WARNING, "every dataset is disabled: runs will import nothing");
    cfg->retry_interval_ms = read_duration(env, d, "CONFIG_RETRY_INTERVAL",
                                           DEFAULT_RETRY_INTERVAL_MS, MS_PER_S, 30 * MS_PER_DAY);
    cfg->fetch_timeout_ms = read_duration(env, d, "CONFIG_FETCH_TIMEOUT", DEFAULT_FETCH_TIMEOUT_MS,
                                          MS_PER_S, 6 * MS_PER_H);
    cfg->max_dataset_size = read_uint(env, d, "CONFIG_MAX_DATASET_SIZE", DEFAULT_MAX_DATASET_SIZE,
                                      1024, MAX_DATASET_SIZE_LIMIT, "bytes");

    /* MQ_* */
    if ((rc = dup_to(&cfg->mq_host, get(env, "MQ_HOST"))) ||
        (rc = dup_to(&cfg->mq_vhost, get(env, "MQ_VHOST"))) ||
        (rc = dup_to(&cfg->mq_user, get(env, "MQ_USER"))) ||
        (rc = dup_to(&cfg->mq_pass, get(env, "MQ_PASS"))) ||
        (rc = dup_to(&cfg->mq_ssl_passphrase, get(env, "MQ_USE_SSL_PASSPHRASE"))))
        return rc;
    cfg->mq_port =
        get(env, "MQ_PORT") ? (int)read_uint(env, d, "MQ_PORT", 5672, 1, 65535, NULL) : -1;
    cfg->mq_use_ssl = -1;
    if (get(env, "MQ_USE_SSL"))
        cfg->mq_use_ssl = read_bool(env, d, "MQ_USE_SSL", false) ? 1 : 0;
    if ((rc = load_pem_setting(&cfg->mq_ssl_ca, env, d, "MQ_USE_SSL_CA")) ||
        (rc = load_pem_setting(&cfg->mq_ssl_cert, env, d, "MQ_USE_SSL_CERT")) ||
        (rc = load_pem_setting(&cfg->mq_ssl_key, env, d, "MQ_USE_SSL_KEY")))
        return rc;
    if (!!cfg->mq_ssl_cert != !!cfg->mq_ssl_key)
        diag_add(d, DIAG_ERROR, "MQ_USE_SSL_CERT and MQ_USE_SSL_KEY must be given together");
    cfg->mq_ssl_verify = read_bool(env, d, "MQ_USE_SSL_REJECT_UNAUTHORIZED", true);
    cfg->mq_window = (size_t)read_uint(env, d, "MQ_CONFIRM_WINDOW", DEFAULT_MQ_WINDOW, 1,
                                       MAX_MQ_WINDOW, "messages");
    cfg->mq_heartbeat_s =
        (int)read_uint(env, d, "MQ_HEARTBEAT", DEFAULT_MQ_HEARTBEAT_S, 0, 600, "seconds");
    cfg->mq_max_message_size = read_uint(env, d, "MQ_MAX_MESSAGE_SIZE", DEFAULT_MQ_MAX_MESSAGE,
                                         4096, MAX_MQ_MAX_MESSAGE, "bytes");
    cfg->mq_give_up_ms =
        read_duration(env, d, "MQ_PUBLISH_TIMEOUT", DEFAULT_MQ_GIVE_UP_MS, MS_PER_S, 24 * MS_PER_H);
    cfg->mq_connect_timeout_ms = read_duration(
        env, d, "MQ_CONNECT_TIMEOUT", DEFAULT_MQ_CONNECT_TIMEOUT_MS, MS_PER_S, 2 * MS_PER_MIN);

    if ((rc = load_http_env(cfg, env, d)))
        return rc;
    check_pycti_extras(env, d);
    check_unknown(env, d);
    return d->errors ? E_INVAL : 0;
}

void config_release(struct config *cfg)
{
    free(cfg->opencti_url);
    free(cfg->opencti_token);
    free(cfg->ssl_ca_file);
    for (size_t i = 0; i < cfg->n_custom_headers; i++) {
        free(cfg->custom_headers[i].name);
        free(cfg->custom_headers[i].value);
    }
    free(cfg->custom_headers);
    free(cfg->connector_id);
    free(cfg->connector_name);
    free(cfg->connector_scope);
    for (size_t i = 0; i < cfg->n_scope; i++)
        free(cfg->scope[i]);
    free(cfg->scope);
    free(cfg->enrichment_resolution);
    free(cfg->status_file);
    for (int k = 0; k < DATASET_COUNT; k++)
        free(cfg->dataset_url[k]);
    free(cfg->mq_host);
    free(cfg->mq_vhost);
    free(cfg->mq_user);
    free(cfg->mq_pass);
    free(cfg->mq_ssl_ca);
    free(cfg->mq_ssl_cert);
    free(cfg->mq_ssl_key);
    free(cfg->mq_ssl_passphrase);
    free(cfg->https_proxy);
    free(cfg->http_proxy);
    free(cfg->no_proxy);
    free(cfg->ca_bundle);
    free(cfg->tmp_dir);
    memset(cfg, 0, sizeof(*cfg));
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

/* Registers the password of a URL ("scheme://user:pass@host"), if it has one. */
static void register_url_secret(const char *url)
{
    size_t n;
    const char *pw = url ? url_password(url, &n) : NULL;
    char pass[256];
    if (!pw || n >= sizeof(pass))
        return;
    memcpy(pass, pw, n);
    pass[n] = '\0';
    log_add_secret(pass);
}

void config_register_secrets(const struct config *cfg)
{
    log_add_secret(cfg->opencti_token);
    log_add_secret(cfg->mq_pass);
    log_add_secret(cfg->mq_ssl_passphrase);
    if (cfg->mq_ssl_key && is_pem(cfg->mq_ssl_key))
        log_add_secret(cfg->mq_ssl_key);
    /* header values that look like credentials; redacting every value would garble the
     * log (a header "X-Tenant: OpenCTI" would hide the word everywhere) */
    static const char *const credential_words[] = {"auth", "token",  "key",     "secret",
                                                   "pass", "cookie", "session", "credential"};
    for (size_t i = 0; i < cfg->n_custom_headers; i++) {
        for (size_t k = 0; k < sizeof(credential_words) / sizeof(credential_words[0]); k++) {
            if (contains_nocase(cfg->custom_headers[i].name, credential_words[k])) {
                log_add_secret(cfg->custom_headers[i].value);
                break;
            }
        }
    }
    register_url_secret(cfg->https_proxy);
    register_url_secret(cfg->http_proxy);
    register_url_secret(cfg->opencti_url);
    for (size_t k = 0; k < DATASET_COUNT; k++)
        register_url_secret(cfg->dataset_url[k]);
}
