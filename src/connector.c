/*
 * connector.c - the daemon's life: start-up, the loop, and one run of the datasets.
 *
 * State rules (PROTOCOL.md §2.2-2.3, §7). The platform keeps our state as a string and
 * hands it back on every ping. A reset from the Connectors screen sets it to '' and
 * raises a one-time flag; the next ping's state is then discarded and '' comes back.
 * So:
 *  - a ping runs right after registration and right before every run: a reset made
 *    while we were down or idle is consumed there, never by the ping that carries a
 *    run's new state;
 *  - when a ping returns the empty string, the operator reset the state (we always send
 *    at least "null", so nothing else makes the platform answer ''): we drop ours
 *    (never writing the stale one back) and run again at once. If that happens during
 *    or just after a run (a first run included), the platform purged the queue under
 *    that run, so its state is not kept either and the datasets are imported again;
 *  - a different state is adopted (an empty one, "null" or "{}", as no state: the next
 *    check runs), except the one we held before our last change: that is a late echo
 *    of our own write (opencti#16612), such as "null" answered to the ping carrying a
 *    first run's state.
 *
 * Run rules. All datasets are fetched and split first, then the expectations of the
 * whole run are added at once (no early completion of the work between datasets), then
 * each dataset is published with confirms. Messages that could not be confirmed are
 * accounted for on the work (report_unsent), so that it completes (in error) instead of
 * staying "in progress". last_run advances only when every dataset was imported;
 * otherwise the run is retried after CONFIG_RETRY_INTERVAL, doubling while it keeps
 * failing (at most the period).
 */
#include "connector.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "buf.h"
#include "http.h"
#include "log.h"
#include "mq.h"
#include "notify.h"
#include "opencti.h"
#include "sched.h"
#include "sig.h"
#include "state.h"
#include "status.h"
#include "stix_split.h"
#include "timeutil.h"
#include "version.h"

/* Start-up retry delays: transport problems retry quickly, a refused token or
 * registration slowly (an operator has to fix it). */
#define STARTUP_BACKOFF_BASE_MS (2 * MS_PER_S)
#define STARTUP_BACKOFF_CAP_MS (2 * MS_PER_MIN)
#define STARTUP_AUTH_BACKOFF_BASE_MS (30 * MS_PER_S)
#define STARTUP_AUTH_BACKOFF_CAP_MS (10 * MS_PER_MIN)
/* While stopping, the platform gets this long per request for the final reports. */
#define SHUTDOWN_REQUEST_TIMEOUT_MS (3 * MS_PER_S)
#define SHUTDOWN_REPORT_BUDGET_MS (5 * MS_PER_S)
#define REPORT_BUDGET_MS (2 * MS_PER_MIN)
#define ADD_EXPECTATIONS_ATTEMPTS 3
#define HTTP_CONNECT_TIMEOUT_MS (30 * MS_PER_S)
#define MQ_BACKOFF_INITIAL_MS 500
#define MQ_BACKOFF_MAX_MS (30 * MS_PER_S)
#define MQ_DRAIN_MS (2 * MS_PER_S)
#define UNROUTABLE_PING_MS (1 * MS_PER_S)
/* Per-message failures logged one by one per dataset; the rest are counted. */
#define FAILURES_LOGGED_MAX 5
/* Unsent messages reported one by one to the work (each shows in its errors); the rest
 * are taken off its expectations in one call. */
#define UNSENT_REPORTED_MAX 20
/* pycti's connectorInfo constants: this connector does not buffer. */
#define QUEUE_THRESHOLD_MB 500.0

struct dataset {
    enum dataset_kind kind;
    const char *url;
    struct buf body;
    struct split_result *split;
    size_t expected;         /* messages */
    size_t confirmed;        /* messages the broker acknowledged */
    uint8_t *status;         /* per message: enum mq_msg_status (NULL until published) */
    bool broker_unreachable; /* gave up before anything could be published */
    bool failed;
    char error[2 * ERR_MSG_MAX];
    int64_t fetch_ms, publish_ms;
    uint64_t bytes;
};

/* What the mq source callback needs to build one message. */
struct envelope {
    const struct split_result *split;
    struct buf head; /* {"bundle_type":...,"action_sequence": */
    struct buf mid;  /* ,"entities_types":...,"content":" */
    struct buf tail; /* ","update":true,...} */
    struct buf bundle;
};

struct connector {
    const struct config *cfg;
    struct opencti *api;
    struct http *fetch;
    struct opencti_registration reg;
    char *platform_version;

    cJSON *state;          /* NULL: no state */
    char *prev_state_text; /* the state we held before our last change */
    uint64_t reset_epoch;  /* counts resets seen from the platform */

    int64_t next_ping, next_check, retry_not_before; /* monotonic ms */
    unsigned run_failures;
    unsigned ping_failures;
    int64_t last_ping_ok; /* monotonic ms, 0: never */
    bool in_service;
    bool in_run;
    bool finishing; /* stopping, but the run's last reports may still be sent */
    bool registered;
    bool need_register;       /* the platform no longer knows us: register again */
    uint64_t run_reset_epoch; /* reset_epoch when the current run started */
    uint32_t rng;
    size_t returned_logged;
    size_t broker_max_message; /* the broker's own limit once learned, else 0 */
    /* health reporting */
    struct status st;
    int64_t last_ping_ok_wall;
    int64_t status_written; /* monotonic ms */
    bool status_error_logged;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static uint32_t rnd(struct connector *c)
{
    /* xorshift32: jitter only */
    uint32_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return c->rng = x ? x : 0x9e3779b9u;
}

static bool stopping(void)
{
    return sig_stop_requested();
}

/* Waits up to ms (or until a signal). */
static void wait_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct pollfd p = {.fd = sig_fd(), .events = POLLIN};
    int t = ms > 60 * MS_PER_S ? (int)(60 * MS_PER_S) : (int)ms;
    if (poll(&p, 1, t) > 0)
        sig_drain();
}

/* Sleeps until deadline (monotonic), servicing the loop; E_CANCELED on stop. */
static int service(struct connector *c);
static void heartbeat(struct connector *c);

static int sleep_until(struct connector *c, int64_t deadline)
{
    for (;;) {
        if (stopping())
            return E_CANCELED;
        int64_t now = mono_ms();
        if (now >= deadline)
            return 0;
        int64_t step = deadline - now;
        if (c->registered && c->next_ping - now < step)
            step = c->next_ping - now;
        if (step > STATUS_HEARTBEAT_S * MS_PER_S)
            step = STATUS_HEARTBEAT_S * MS_PER_S;
        wait_ms(step < 1 ? 1 : step);
        if (c->registered)
            (void)service(c);
        else
            heartbeat(c);
    }
}

static void fmt_duration(int64_t ms, char *out, size_t cap)
{
    duration_format(ms, out, cap);
}

/* ---- health: status file and systemd ----------------------------------------------------- */

static void status_flush(struct connector *c)
{
    int64_t last;
    c->st.loop_at = wall_s();
    c->st.last_ping_ok = c->last_ping_ok_wall;
    c->st.ping_interval_s = c->cfg->ping_interval_ms / MS_PER_S;
    c->st.registered = c->registered;
    c->st.running = c->in_run;
    bool has = state_last_run(c->state, &last);
    c->st.last_run = has ? last : -1;
    c->st.next_run = has ? sched_next_run(true, last, wall_s(), c->cfg->period_ms) : -1;
    c->status_written = mono_ms();
    if (c->cfg->status_file && status_write(c->cfg->status_file, &c->st) &&
        !c->status_error_logged) {
        c->status_error_logged = true;
        log_kv(LOG_WARN,
               LOG_ATTRS(KV_STR("file", c->cfg->status_file), KV_STR("reason", strerror(errno))),
               "Cannot write the status file (CONNECTOR_STATUS_FILE)");
    }
}

/* Says what the daemon is doing: status file, systemd STATUS=. */
static void report(struct connector *c, const char *fmt, ...) ODS_PRINTF(2, 3);

static void report(struct connector *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->st.phase, sizeof(c->st.phase), fmt, ap);
    va_end(ap);
    notify_status(c->st.phase);
    status_flush(c);
}

static void report_error(struct connector *c, const char *what)
{
    /* truncation is fine: the start of the message says what failed */
    snprintf(c->st.last_error, sizeof(c->st.last_error), "%.*s", (int)sizeof(c->st.last_error) - 1,
             what);
}

/* Called from every wait: the status file's heartbeat and the systemd watchdog. */
static void heartbeat(struct connector *c)
{
    int64_t now = mono_ms();
    notify_watchdog(now);
    if (now - c->status_written >= STATUS_HEARTBEAT_S * MS_PER_S)
        status_flush(c);
}

/* "Idle; last run ...; next run in ..." (or the failed run's pending retry) */
static void report_idle(struct connector *c)
{
    int64_t last, now = wall_s();
    if (c->retry_not_before && mono_ms() < c->retry_not_before) {
        char d[32];
        fmt_duration(c->retry_not_before - mono_ms(), d, sizeof(d));
        report(c, "Last run failed (retry in %s): %.300s", d, c->st.last_error);
        return;
    }
    if (!state_last_run(c->state, &last)) {
        report(c, "Idle; never run");
        return;
    }
    char when[32], d[32];
    utc_format(last, 0, when, sizeof(when));
    fmt_duration((sched_next_run(true, last, now, c->cfg->period_ms) - now) * MS_PER_S, d,
                 sizeof(d));
    report(c, "Idle; last run %s UTC; next run in %s", when, d);
}

/* ---- the platform: ping and state ------------------------------------------------------ */

static void connector_info(const struct connector *c, struct opencti_connector_info *ret)
{
    int64_t last;
    bool has = state_last_run(c->state, &last);
    ret->run_and_terminate = c->cfg->run_and_terminate;
    ret->buffering = false;
    ret->queue_threshold = QUEUE_THRESHOLD_MB;
    ret->queue_messages_size = 0.0;
    ret->last_run = has ? last : -1;
    ret->next_run =
        c->cfg->run_and_terminate ? -1 : sched_next_run(has, last, wall_s(), c->cfg->period_ms);
}

static void log_state(const struct connector *c)
{
    int64_t last;
    if (state_last_run(c->state, &last)) {
        char when[32];
        utc_format(last, 0, when, sizeof(when));
        log_info("Connector last run: %s", when);
    } else {
        log_info("Connector has never run");
    }
}

/* Sets our state to s (owned), remembering the previous one for stale-echo detection. */
static void set_state(struct connector *c, cJSON *s)
{
    free(c->prev_state_text);
    c->prev_state_text = state_serialize(c->state); /* "null" when we held none */
    cJSON_Delete(c->state);
    c->state = s;
}

/* Applies what a ping returned (see the rules at the top of this file). */
static void adopt_remote_state(struct connector *c, const char *remote_text)
{
    cJSON *remote = NULL;
    /* We always send at least "null", so the platform answers an empty string only when
     * the ping consumed a reset: that is a reset even when we hold no state (a first run
     * in progress must start again, its queue was purged). */
    bool reset_flag = remote_text && remote_text[0] == '\0';
    enum state_parse_result kind = state_parse(remote_text, &remote);
    if (!reset_flag && state_equal(c->state, remote)) {
        cJSON_Delete(remote);
        return;
    }
    if (!reset_flag && kind != STATE_INVALID) {
        /* our own previous write echoed back late (ours is newer): "null" after a first
         * run is such an echo, not a reset, which only '' means */
        char *text = state_serialize(remote);
        bool echo = text && c->prev_state_text && strcmp(text, c->prev_state_text) == 0;
        if (echo)
            log_debug("Ignoring a stale echo of the previous state: %s", text);
        free(text);
        if (echo) {
            cJSON_Delete(remote);
            return;
        }
    }
    if (kind != STATE_OBJECT) {
        if (!c->state && !reset_flag)
            return;
        if (kind == STATE_INVALID)
            log_warn("The platform holds a connector state that is not a JSON object; it is "
                     "treated as no state");
        else
            log_kv(LOG_WARN, LOG_ATTRS(KV_BOOL("during_run", c->in_run)),
                   "Connector state has been reset on the platform; the datasets will be "
                   "imported again");
        set_state(c, NULL);
        c->reset_epoch++;
        c->next_check = mono_ms(); /* the next run check runs now */
        c->retry_not_before = 0;
        c->run_failures = 0;
        return;
    }
    char *text = state_serialize(remote);
    log_kv(LOG_INFO, LOG_ATTRS(KV_STR("state", text ? text : "")),
           "Connector state differs on the platform; adopting it");
    free(text);
    set_state(c, remote);
}

/* One ping with the current state. Returns 0 or the error (already logged). */
static int ping_now(struct connector *c)
{
    char *text = state_serialize(c->state);
    if (!text)
        return E_NOMEM;
    struct opencti_connector_info info;
    connector_info(c, &info);
    char *remote = NULL;
    struct err err = {{0}};
    int rc = opencti_ping(c->api, c->cfg->connector_id, text, &info, &remote, &err);
    free(text);
    c->next_ping = mono_ms() + c->cfg->ping_interval_ms;
    if (rc) {
        c->ping_failures++;
        if (rc == E_GQL && strstr(err.msg, "No connector found")) {
            /* deleted on the platform (Connectors screen): register again when idle */
            c->need_register = true;
        }
        log_kv(LOG_ERROR, LOG_ATTRS(KV_STR("reason", err.msg)), "Error pinging the API");
        char what[ERR_MSG_MAX + 32];
        snprintf(what, sizeof(what), "ping failed: %s", err.msg);
        report_error(c, what);
        status_flush(c);
        return rc;
    }
    if (c->ping_failures)
        log_info("API Ping back to normal");
    c->ping_failures = 0;
    c->last_ping_ok = mono_ms();
    c->last_ping_ok_wall = wall_s();
    adopt_remote_state(c, remote);
    free(remote);
    return 0;
}

/* The one step every wait runs. Returns E_CANCELED when the caller should stop: a stop
 * was requested, or (during a run) the operator reset the state. */
static int service(struct connector *c)
{
    if (stopping())
        return E_CANCELED;
    if (c->in_service)
        return 0;
    c->in_service = true;
    if (c->registered && mono_ms() >= c->next_ping)
        (void)ping_now(c);
    heartbeat(c);
    c->in_service = false;
    if (stopping() || (c->in_run && c->reset_epoch != c->run_reset_epoch))
        return E_CANCELED;
    return 0;
}

/* During a platform request: keep the status file and the watchdog fed (no requests
 * from here: the request in flight is the platform's), and abandon it on stop. */
static int api_tick(void *ctx)
{
    struct connector *c = ctx;
    heartbeat(c);
    return stopping() && !c->finishing ? 1 : 0;
}

static int fetch_tick(void *ctx)
{
    return service(ctx) ? 1 : 0;
}

static void on_compat(void *ctx, const char *dropped, const char *platform_message)
{
    (void)ctx;
    log_kv(LOG_WARN, LOG_ATTRS(KV_STR("platform_message", platform_message)),
           "The platform does not know \"%s\" (an older OpenCTI); retrying without it", dropped);
}

/* ---- start-up ---------------------------------------------------------------------------- */

static const char *tls_hint(void)
{
    return " (certificates are verified by default here, unlike pycti: set OPENCTI_SSL_VERIFY "
           "to the path of the CA bundle that signed the platform's certificate, or to false "
           "to skip verification)";
}

static int register_once(struct connector *c, struct err *err)
{
    char *version = NULL;
    int rc = opencti_about(c->api, &version, err);
    if (rc)
        return rc;
    free(c->platform_version);
    c->platform_version = version;
    log_kv(LOG_INFO, LOG_ATTRS(KV_STR("version", version), KV_STR("url", c->cfg->opencti_url)),
           "Connected to OpenCTI %s", version);
    const struct config *cfg = c->cfg;
    struct opencti_register_input in = {
        .id = cfg->connector_id,
        .name = cfg->connector_name,
        .scope = cfg->scope,
        .n_scope = cfg->n_scope,
        .auto_ = cfg->auto_,
        .auto_update = cfg->auto_update,
        .enrichment_resolution = cfg->enrichment_resolution,
        .only_contextual = cfg->only_contextual,
    };
    struct opencti_registration reg;
    if ((rc = opencti_register(c->api, &in, &reg, err)))
        return rc;
    opencti_registration_release(&c->reg);
    c->reg = reg;
    log_add_secret(reg.mq_pass);
    cJSON *st = NULL;
    if (state_parse(reg.state, &st) == STATE_INVALID)
        log_warn("The platform holds a connector state that is not a JSON object; it is "
                 "treated as no state");
    cJSON_Delete(c->state);
    c->state = st;
    c->registered = true;
    log_kv(LOG_INFO,
           LOG_ATTRS(KV_STR("connector_id", cfg->connector_id),
                     KV_STR("push_routing", reg.push_routing)),
           "Connector registered as \"%s\"", cfg->connector_name);
    return 0;
}

/* Registers, retrying with backoff until it works or a stop is requested. */
static int startup(struct connector *c)
{
    for (unsigned attempt = 0;; attempt++) {
        if (stopping())
            return E_CANCELED;
        struct err err = {{0}};
        int rc = register_once(c, &err);
        if (rc == 0)
            break;
        bool slow = rc == E_GQL_AUTH || rc == E_GQL || rc == E_GQL_SCHEMA;
        int64_t delay = slow ? sched_backoff_ms(attempt, STARTUP_AUTH_BACKOFF_BASE_MS,
                                                STARTUP_AUTH_BACKOFF_CAP_MS, rnd(c))
                             : sched_backoff_ms(attempt, STARTUP_BACKOFF_BASE_MS,
                                                STARTUP_BACKOFF_CAP_MS, rnd(c));
        char d[32];
        fmt_duration(delay, d, sizeof(d));
        if (rc == E_GQL_AUTH)
            log_kv(LOG_ERROR, LOG_ATTRS(KV_STR("reason", err.msg), KV_UINT("attempt", attempt + 1)),
                   "The platform refused the token (check OPENCTI_TOKEN and that its user has "
                   "the Connectors role); retrying in %s",
                   d);
        else if (rc == E_TLS)
            log_kv(LOG_ERROR, LOG_ATTRS(KV_STR("reason", err.msg), KV_UINT("attempt", attempt + 1)),
                   "Cannot verify the platform's TLS certificate%s; retrying in %s", tls_hint(), d);
        else if (slow)
            log_kv(LOG_ERROR, LOG_ATTRS(KV_STR("reason", err.msg), KV_UINT("attempt", attempt + 1)),
                   "The platform rejected the connector's registration; retrying in %s", d);
        else
            log_kv(LOG_ERROR, LOG_ATTRS(KV_STR("reason", err.msg), KV_UINT("attempt", attempt + 1)),
                   "OpenCTI API is not reachable at %s; retrying in %s", c->cfg->opencti_url, d);
        c->registered = false;
        report_error(c, err.msg);
        report(c, "Waiting for the platform (retry in %s): %.300s", d, err.msg);
        if (sleep_until(c, mono_ms() + delay))
            return E_CANCELED;
    }
    /* consume a reset made while we were down, before any run */
    (void)ping_now(c);
    return 0;
}

/* ---- one run ------------------------------------------------------------------------------ */

static int envelope_render(void *ctx, size_t i, struct buf *out, struct err *err)
{
    struct envelope *e = ctx;
    buf_reset(&e->bundle);
    int rc = split_render(e->split, i, &e->bundle);
    if (!rc)
        rc = buf_add(out, e->head.data, e->head.len);
    if (!rc)
        rc = buf_printf(out, "%zu", i + 1);
    if (!rc)
        rc = buf_add(out, e->mid.data, e->mid.len);
    if (!rc)
        rc = buf_add_base64(out, e->bundle.data, e->bundle.len);
    if (!rc)
        rc = buf_add(out, e->tail.data, e->tail.len);
    if (rc)
        err_set(err, rc, "cannot build message %zu: %s", i + 1, err_str(rc));
    return rc;
}

static int envelope_init(struct envelope *e, const struct connector *c,
                         const struct split_result *split, const char *work_id)
{
    memset(e, 0, sizeof(*e));
    e->split = split;
    buf_init(&e->head, 64 * 1024);
    buf_init(&e->mid, 64 * 1024);
    buf_init(&e->tail, 64 * 1024);
    buf_init(&e->bundle, SIZE_MAX / 4);
    const char *applicant = c->reg.connector_user_id;
    int rc = buf_adds(&e->head, "{\"bundle_type\":\"QUEUE_BUNDLE\",\"applicant_id\":");
    if (!rc)
        rc = applicant ? buf_add_json_string(&e->head, applicant, strlen(applicant))
                       : buf_adds(&e->head, "null");
    if (!rc)
        rc = buf_adds(&e->head, ",\"action_sequence\":");
    /* entities_types is the raw scope string, as the official connector sends it */
    if (!rc)
        rc = buf_adds(&e->mid, ",\"entities_types\":");
    if (!rc)
        rc = buf_add_json_string(&e->mid, c->cfg->connector_scope, strlen(c->cfg->connector_scope));
    if (!rc)
        rc = buf_adds(&e->mid, ",\"content\":\"");
    if (!rc)
        rc = buf_adds(&e->tail, "\",\"update\":true,\"draft_id\":null,\"work_id\":");
    if (!rc)
        rc = buf_add_json_string(&e->tail, work_id, strlen(work_id));
    if (!rc)
        rc = buf_addc(&e->tail, '}');
    return rc;
}

static void envelope_release(struct envelope *e)
{
    buf_release(&e->head);
    buf_release(&e->mid);
    buf_release(&e->tail);
    buf_release(&e->bundle);
}

struct publish_ctx {
    struct connector *c;
    struct dataset *ds;
    const struct split_result *split;
    int64_t last_unroutable_ping; /* monotonic ms, 0: none yet */
    size_t failures_logged;
};

static int mq_service_hook(void *ctx)
{
    struct publish_ctx *p = ctx;
    return service(p->c);
}

static void mq_unroutable_hook(void *ctx)
{
    struct publish_ctx *p = ctx;
    /* One ping is what makes the platform declare the queue again; when returns go on,
     * more pings would not help, so at most one per UNROUTABLE_PING_MS. */
    int64_t now = mono_ms();
    if (p->last_unroutable_ping && now - p->last_unroutable_ping < UNROUTABLE_PING_MS)
        return;
    if (!p->last_unroutable_ping)
        log_kv(LOG_WARN, LOG_ATTRS(KV_STR("dataset", dataset_name(p->ds->kind))),
               "Messages came back unroutable: the push queue is gone; pinging the platform "
               "so that it declares it again");
    p->last_unroutable_ping = now;
    (void)ping_now(p->c);
}

static void mq_event_hook(void *ctx, enum mq_event ev, size_t i, const char *detail)
{
    struct publish_ctx *p = ctx;
    const char *ds = dataset_name(p->ds->kind);
    const char *oid = "";
    size_t oidlen = 0;
    if (i != SIZE_MAX && i < split_count(p->split))
        oid = split_object_id(p->split, i, &oidlen);
    char idbuf[256];
    snprintf(idbuf, sizeof(idbuf), "%.*s", (int)(oidlen > 200 ? 200 : oidlen), oid);
    switch (ev) {
    case MQ_EV_CONNECTED:
        log_kv(LOG_INFO, LOG_ATTRS(KV_STR("dataset", ds), KV_STR("broker", detail)),
               "Connected to the message broker");
        break;
    case MQ_EV_CONNECT_FAILED:
        log_kv(LOG_ERROR, LOG_ATTRS(KV_STR("dataset", ds), KV_STR("reason", detail)),
               "Cannot connect to the message broker; retrying");
        break;
    case MQ_EV_LOST:
        log_kv(LOG_WARN, LOG_ATTRS(KV_STR("dataset", ds), KV_STR("reason", detail)),
               "Lost the connection or channel to the message broker; reopening it and "
               "publishing again what was not confirmed");
        break;
    case MQ_EV_BLOCKED:
        log_kv(LOG_WARN, LOG_ATTRS(KV_STR("dataset", ds), KV_STR("reason", detail)),
               "The message broker blocked publishing (memory or disk alarm); waiting");
        break;
    case MQ_EV_UNBLOCKED:
        log_kv(LOG_INFO, LOG_ATTRS(KV_STR("dataset", ds)), "The message broker resumed publishing");
        break;
    case MQ_EV_RETURNED:
        if (p->c->returned_logged++ < 3)
            log_kv(LOG_WARN, LOG_ATTRS(KV_STR("dataset", ds), KV_STR("object", idbuf)),
                   "A message came back unroutable");
        break;
    case MQ_EV_NACKED:
        log_kv(LOG_WARN, LOG_ATTRS(KV_STR("dataset", ds), KV_STR("object", idbuf)),
               "The message broker refused a message (nack); it will be sent again");
        break;
    case MQ_EV_MSG_FAILED:
        log_kv(LOG_ERROR,
               LOG_ATTRS(KV_STR("dataset", ds), KV_STR("object", idbuf), KV_STR("reason", detail)),
               "A message could not be published");
        break;
    case MQ_EV_LIMIT_LEARNED:
        log_kv(LOG_WARN, LOG_ATTRS(KV_STR("dataset", ds), KV_STR("limit", detail)),
               "The message broker's size limit is lower than MQ_MAX_MESSAGE_SIZE");
        break;
    }
}

static void mq_params_for(const struct connector *c, struct mq_params *p, char *name, size_t cap)
{
    const struct config *cfg = c->cfg;
    mq_params_defaults(p);
    p->host = cfg->mq_host ? cfg->mq_host : c->reg.mq_host;
    p->port = cfg->mq_port > 0 ? cfg->mq_port : c->reg.mq_port;
    p->vhost = cfg->mq_vhost ? cfg->mq_vhost : (c->reg.mq_vhost ? c->reg.mq_vhost : "/");
    p->user = cfg->mq_user ? cfg->mq_user : c->reg.mq_user;
    p->pass = cfg->mq_pass ? cfg->mq_pass : c->reg.mq_pass;
    p->tls.enabled = cfg->mq_use_ssl >= 0 ? cfg->mq_use_ssl == 1 : c->reg.mq_use_ssl;
    p->tls.verify = cfg->mq_ssl_verify;
    p->tls.ca = cfg->mq_ssl_ca;
    p->tls.cert = cfg->mq_ssl_cert;
    p->tls.key = cfg->mq_ssl_key;
    p->tls.passphrase = cfg->mq_ssl_passphrase;
    p->tls.tmp_dir = cfg->tmp_dir;
    p->exchange = c->reg.push_exchange;
    p->routing_key = c->reg.push_routing;
    snprintf(name, cap, "%s %s (%s)", ODS_NAME, ODS_VERSION, cfg->connector_name);
    p->connection_name = name;
    p->heartbeat_s = cfg->mq_heartbeat_s;
    p->window = cfg->mq_window;
    p->max_message_size = cfg->mq_max_message_size;
    if (c->broker_max_message && c->broker_max_message < p->max_message_size)
        p->max_message_size = c->broker_max_message;
    p->connect_timeout_ms = cfg->mq_connect_timeout_ms;
    p->give_up_ms = cfg->mq_give_up_ms;
    p->backoff_initial_ms = MQ_BACKOFF_INITIAL_MS;
    p->backoff_max_ms = MQ_BACKOFF_MAX_MS;
    p->drain_ms = MQ_DRAIN_MS;
}

/* Downloads and splits one dataset; failures are recorded in ds. */
static void fetch_and_split(struct connector *c, struct dataset *ds)
{
    const char *name = dataset_name(ds->kind);
    int64_t t = mono_ms();
    struct http_request req = {
        .url = ds->url,
        .method = "GET",
        .timeout_ms = c->cfg->fetch_timeout_ms,
        .max_response = (size_t)c->cfg->max_dataset_size,
    };
    long status = 0;
    struct err err = {{0}};
    buf_init(&ds->body, (size_t)c->cfg->max_dataset_size + 1);
    int rc = http_perform(c->fetch, &req, &status, &ds->body, &err);
    ds->fetch_ms = mono_ms() - t;
    if (rc == 0 && status != 0 && (status < 200 || status > 299))
        rc = err_set(&err, E_HTTP_STATUS, "HTTP %ld from %s", status, ds->url);
    if (rc) {
        ds->failed = true;
        if (rc == E_TLS)
            snprintf(ds->error, sizeof(ds->error),
                     "download failed: %s (set SSL_CERT_FILE to a "
                     "CA bundle that signs this server)",
                     err.msg);
        else
            snprintf(ds->error, sizeof(ds->error), "download failed: %s", err.msg);
        return;
    }
    ds->bytes = ds->body.len;
    struct split_options opt = {.remove_creator = c->cfg->remove_creator, .with_nb_deps = true};
    rc = split_bundle(ds->body.data ? ds->body.data : "", ds->body.len, &opt, &ds->split, &err);
    if (rc) {
        ds->failed = true;
        snprintf(ds->error, sizeof(ds->error), "%s", err.msg);
        return;
    }
    ds->expected = split_count(ds->split);
    if (ds->expected == 0) {
        ds->failed = true;
        snprintf(ds->error, sizeof(ds->error),
                 "nothing to import (no object of a supported "
                 "type in %zu objects)",
                 split_objects(ds->split));
        return;
    }
    log_kv(LOG_INFO,
           LOG_ATTRS(KV_STR("dataset", name), KV_UINT("bytes", ds->bytes),
                     KV_UINT("objects", split_objects(ds->split)),
                     KV_UINT("messages", ds->expected),
                     KV_UINT("incompatible", split_incompatible_count(ds->split)),
                     KV_INT("duration_ms", ds->fetch_ms)),
           "Dataset %s fetched and split", name);
}

/* Publishes one dataset's messages; ds->status keeps each message's outcome. */
static void publish(struct connector *c, struct dataset *ds, const char *work_id)
{
    const char *name = dataset_name(ds->kind);
    struct envelope env;
    struct mq_params p;
    char conn_name[256];
    struct err err = {{0}};
    struct mq_stats st;
    memset(&st, 0, sizeof(st));
    ds->status = calloc(ds->expected ? ds->expected : 1, 1);
    int64_t t = mono_ms();
    int rc = envelope_init(&env, c, ds->split, work_id);
    if (!ds->status || rc) {
        ds->failed = true;
        snprintf(ds->error, sizeof(ds->error), "out of memory preparing the messages");
        goto out;
    }
    mq_params_for(c, &p, conn_name, sizeof(conn_name));
    struct mq_source src = {.count = ds->expected, .render = envelope_render, .ctx = &env};
    struct publish_ctx pc = {.c = c, .ds = ds, .split = ds->split};
    struct mq_hooks hooks = {.service = mq_service_hook,
                             .unroutable = mq_unroutable_hook,
                             .event = mq_event_hook,
                             .ctx = &pc};
    c->returned_logged = 0;
    log_kv(LOG_INFO, LOG_ATTRS(KV_STR("dataset", name), KV_UINT("messages", ds->expected)),
           "%s sending bundle to queue", c->cfg->connector_name);
    rc = mq_publish(&p, &src, &hooks, ds->status, &st, &err);
    if (st.learned_max_message_size)
        c->broker_max_message = st.learned_max_message_size;
    ds->confirmed = st.confirmed;
    ds->publish_ms = mono_ms() - t;
    if (rc) {
        ds->failed = true;
        /* the broker could not be reached at all: the next datasets would wait as long */
        ds->broker_unreachable =
            st.published == 0 && (rc == E_MQ_GIVE_UP || rc == E_MQ_CONNECT || rc == E_TLS);
        if (rc == E_CANCELED && !stopping())
            snprintf(ds->error, sizeof(ds->error),
                     "interrupted: the state was reset on the "
                     "platform during the run (%zu/%zu messages confirmed)",
                     st.confirmed, ds->expected);
        else if (rc == E_CANCELED)
            snprintf(ds->error, sizeof(ds->error),
                     "interrupted: the connector is stopping "
                     "(%zu/%zu messages confirmed)",
                     st.confirmed, ds->expected);
        else
            snprintf(ds->error, sizeof(ds->error),
                     "publishing failed: %s (%zu/%zu messages "
                     "confirmed)",
                     err.msg, st.confirmed, ds->expected);
    }
    log_kv(rc == 0            ? LOG_INFO
           : rc == E_CANCELED ? LOG_WARN
                              : LOG_ERROR,
           LOG_ATTRS(KV_STR("dataset", name), KV_UINT("objects", split_objects(ds->split)),
                     KV_UINT("confirmed", st.confirmed), KV_UINT("expected", ds->expected),
                     KV_UINT("failed", st.failed), KV_UINT("republished", st.republished),
                     KV_UINT("reconnects", st.reconnects), KV_UINT("bytes", st.bytes_confirmed),
                     KV_INT("duration_ms", ds->publish_ms)),
           "Dataset %s: %zu/%zu messages confirmed%s%s", name, st.confirmed, ds->expected,
           rc ? ": " : "", rc ? ds->error : "");
out:
    envelope_release(&env);
}

/*
 * Tells the work about the messages that will never be processed, so that it completes
 * instead of staying "in progress". A message published without a confirm (MQ_MSG_SENT)
 * may still reach a worker, so it is reported on its own as a failed expectation: counts
 * that move one by one always pass through "processed == expected". So are the first
 * UNSENT_REPORTED_MAX of those that cannot arrive (never published, or failed), with the
 * object's id as the source, so that they show in the work's errors; the rest of those
 * are taken off the work's expectations in a single addExpectations(-n) (the platform adds
 * n to its counters, negative or not: work.js and redis.ts, PROTOCOL.md §2.6). If that
 * call fails they are reported one by one until the deadline. Pings go on in between.
 */
static void report_unsent(struct connector *c, const char *work_id, struct dataset *ds,
                          int64_t deadline)
{
    char reason[3 * ERR_MSG_MAX];
    snprintf(reason, sizeof(reason), "%s: not imported: %s", dataset_name(ds->kind), ds->error);
    size_t left = 0, absent = 0, reported = 0, absent_reported = 0;
    for (size_t i = 0; i < ds->expected; i++) {
        uint8_t st = ds->status ? ds->status[i] : MQ_MSG_PENDING;
        left += st != MQ_MSG_CONFIRMED;
        absent += st == MQ_MSG_PENDING || st == MQ_MSG_FAILED;
    }
    size_t bulk = absent > UNSENT_REPORTED_MAX ? absent - UNSENT_REPORTED_MAX : 0;
    struct err err = {{0}};
    if (bulk && opencti_work_add_expectations(c->api, work_id, -(int64_t)bulk, &err)) {
        log_kv(LOG_WARN, LOG_ATTRS(KV_STR("reason", err.msg)),
               "Cannot take unsent messages off the work's expectations; reporting them one by "
               "one");
        bulk = 0;
    }
    for (size_t i = 0; i < ds->expected && reported + bulk < left; i++) {
        uint8_t st = ds->status ? ds->status[i] : MQ_MSG_PENDING;
        if (st == MQ_MSG_CONFIRMED)
            continue;
        bool maybe_delivered = st == MQ_MSG_SENT;
        if (!maybe_delivered && bulk && absent_reported >= UNSENT_REPORTED_MAX)
            continue; /* taken off in bulk */
        if (mono_ms() >= deadline)
            break;
        if (reported % 32 == 0)
            (void)service(c); /* keeps pinging; the outcome is checked by the caller */
        size_t len;
        const char *id = split_object_id(ds->split, i, &len);
        char source[256];
        snprintf(source, sizeof(source), "%.*s", (int)(len < 200 ? len : 200), id);
        if (opencti_work_report_expectation(c->api, work_id, reason, source, &err)) {
            log_kv(LOG_ERROR, LOG_ATTRS(KV_STR("reason", err.msg)),
                   "Cannot report unsent messages to the work");
            break;
        }
        reported++;
        absent_reported += !maybe_delivered;
    }
    if (reported + bulk < left)
        log_kv(LOG_WARN,
               LOG_ATTRS(KV_STR("dataset", dataset_name(ds->kind)),
                         KV_UINT("unreported", left - reported - bulk)),
               "Some unsent messages could not be reported; the work may stay in progress");
}

static void dataset_release(struct dataset *ds)
{
    split_free(ds->split);
    ds->split = NULL;
    free(ds->status);
    ds->status = NULL;
    buf_release(&ds->body);
}

/* Why the run failed, for the work's message and the log. */
static void failure_summary(const struct dataset *ds, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 1 < cap; i++) {
        if (!ds[i].failed)
            continue;
        int k = snprintf(out + used, cap - used, "%s%s: %s", used ? "; " : "",
                         dataset_name(ds[i].kind), ds[i].error);
        if (k < 0)
            break;
        used += (size_t)k < cap - used ? (size_t)k : cap - used - 1;
    }
}

/* Marks the run failed and schedules its retry: CONFIG_RETRY_INTERVAL, doubling with each
 * failure in a row, never later than the period. */
static void run_failed(struct connector *c, const char *why)
{
    c->run_failures++;
    int64_t delay = c->cfg->retry_interval_ms;
    for (unsigned i = 1; i < c->run_failures && delay < c->cfg->period_ms; i++)
        delay *= 2;
    delay = sched_retry_delay_ms(delay, c->cfg->period_ms);
    c->retry_not_before = mono_ms() + delay;
    char d[32];
    fmt_duration(delay, d, sizeof(d));
    if (c->cfg->run_and_terminate)
        log_kv(LOG_ERROR, LOG_ATTRS(KV_STR("reason", why)),
               "The run did not complete; last_run is not advanced");
    else
        log_kv(LOG_ERROR, LOG_ATTRS(KV_STR("reason", why), KV_UINT("failures", c->run_failures)),
               "The run did not complete; last_run is not advanced and the run is retried in %s",
               d);
    report_error(c, why);
    report(c, "Last run failed (retry in %s): %.300s", d, why);
}

/* Why nothing more can be published in this run, or NULL. */
static const char *run_interrupted(struct connector *c)
{
    if (service(c) == 0)
        return NULL;
    return stopping() ? "the connector is stopping"
                      : "the state was reset on the platform during the run";
}

/* One run. Returns 0 when every dataset was imported. */
static int run_cycle(struct connector *c, int64_t t0)
{
    char when[32], work_name[96];
    utc_format(t0, 0, when, sizeof(when));
    snprintf(work_name, sizeof(work_name), "OpenCTI datasets run @ %s", when);
    log_info("Fetching OpenCTI datasets...");
    struct err err = {{0}};
    char *work_id = NULL;
    c->in_run = true;
    c->run_reset_epoch = c->reset_epoch;
    report(c, "Running: fetching the datasets");
    int rc = opencti_work_add(c->api, c->cfg->connector_id, work_name, &work_id, &err);
    if (rc) {
        c->in_run = false;
        char why[ERR_MSG_MAX + 64];
        snprintf(why, sizeof(why), "cannot create the work: %s", err.msg);
        if (!stopping())
            run_failed(c, why);
        return rc;
    }

    struct dataset ds[DATASET_COUNT];
    size_t nds = 0;
    for (int k = 0; k < DATASET_COUNT; k++) {
        if (!c->cfg->dataset_url[k])
            continue;
        memset(&ds[nds], 0, sizeof(ds[nds]));
        ds[nds].kind = (enum dataset_kind)k;
        ds[nds].url = c->cfg->dataset_url[k];
        buf_init(&ds[nds].body, 0);
        nds++;
    }

    /* 1. fetch and split everything */
    size_t total = 0;
    for (size_t i = 0; i < nds; i++) {
        const char *why = run_interrupted(c);
        if (why) {
            ds[i].failed = true;
            snprintf(ds[i].error, sizeof(ds[i].error), "not fetched: %s", why);
        } else {
            fetch_and_split(c, &ds[i]);
            if (ds[i].failed && (why = run_interrupted(c)))
                snprintf(ds[i].error, sizeof(ds[i].error), "interrupted: %s", why);
        }
        if (ds[i].failed) {
            log_kv(why ? LOG_WARN : LOG_ERROR,
                   LOG_ATTRS(KV_STR("dataset", dataset_name(ds[i].kind)), KV_STR("url", ds[i].url),
                             KV_STR("reason", ds[i].error)),
                   "Dataset %s cannot be imported", dataset_name(ds[i].kind));
            dataset_release(&ds[i]);
        }
        total += ds[i].failed ? 0 : ds[i].expected;
    }

    /* 2. the whole run's expectations, once: the work cannot complete between datasets */
    bool added = false;
    if (total > 0 && !run_interrupted(c)) {
        for (int a = 0; a < ADD_EXPECTATIONS_ATTEMPTS && !added; a++) {
            if ((rc = opencti_work_add_expectations(c->api, work_id, (int64_t)total, &err)) == 0) {
                added = true;
                break;
            }
            log_kv(LOG_WARN, LOG_ATTRS(KV_STR("reason", err.msg)), "Cannot add expectations");
            if (sleep_until(c, mono_ms() + MS_PER_S * (a + 1)))
                break;
        }
    }

    /* 3. publish, and account for what could not be confirmed */
    bool broker_down = false;
    for (size_t i = 0; i < nds; i++) {
        if (ds[i].failed)
            continue;
        const char *why = run_interrupted(c);
        if (why) {
            ds[i].failed = true;
            snprintf(ds[i].error, sizeof(ds[i].error), "not published: %s", why);
        } else if (!added) {
            ds[i].failed = true;
            snprintf(ds[i].error, sizeof(ds[i].error),
                     "not published: the work's expectations "
                     "could not be added (%s)",
                     err.msg);
        } else if (broker_down) {
            ds[i].failed = true;
            snprintf(ds[i].error, sizeof(ds[i].error),
                     "not published: the message broker was "
                     "unreachable for the previous dataset");
        } else {
            report(c, "Running: publishing %s (%zu messages)", dataset_name(ds[i].kind),
                   ds[i].expected);
            publish(c, &ds[i], work_id);
            broker_down = ds[i].broker_unreachable;
        }
        bool reset = c->reset_epoch != c->run_reset_epoch;
        /* After a reset the platform purged the queue: this work can never complete,
         * whatever we report, and the run starts again at once. */
        if (ds[i].failed && added && !reset) {
            bool quick = stopping();
            if (quick) {
                c->finishing = true;
                opencti_set_timeout(c->api, SHUTDOWN_REQUEST_TIMEOUT_MS);
            }
            report_unsent(c, work_id, &ds[i],
                          mono_ms() + (quick ? SHUTDOWN_REPORT_BUDGET_MS : REPORT_BUDGET_MS));
        }
        dataset_release(&ds[i]);
    }

    /* 4. close the work */
    bool ok = true;
    for (size_t i = 0; i < nds; i++)
        ok &= !ds[i].failed;
    bool reset = c->reset_epoch != c->run_reset_epoch;
    char message[2048];
    if (ok && !reset) {
        snprintf(message, sizeof(message), "Connector successfully run, storing last_run as %lld",
                 (long long)t0);
    } else {
        char why[1900];
        failure_summary(ds, nds, why, sizeof(why));
        snprintf(message, sizeof(message), "%s",
                 reset && !why[0] ? "The state was reset on the platform during "
                                    "the run; the datasets are imported again"
                                  : why);
    }
    if (stopping()) {
        c->finishing = true;
        opencti_set_timeout(c->api, SHUTDOWN_REQUEST_TIMEOUT_MS);
    }
    if (opencti_work_to_processed(c->api, work_id, message, !(ok && !reset), &err))
        log_kv(LOG_ERROR, LOG_ATTRS(KV_STR("reason", err.msg)),
               "Cannot mark the work as processed");
    c->finishing = false;
    free(work_id);
    c->in_run = false;

    /* 5. the state */
    if (ok && !reset) {
        cJSON *ns = state_with_last_run(c->state, t0);
        if (!ns)
            return E_NOMEM;
        log_info("%s", message);
        set_state(c, ns);
        c->run_failures = 0;
        c->retry_not_before = 0;
        /* push the new state now; a reset consumed by this ping means the platform
         * purged the queue under this run, and the state is dropped again */
        c->in_run = true;
        (void)ping_now(c);
        c->in_run = false;
        if (c->reset_epoch != c->run_reset_epoch)
            return E_CANCELED;
        char d[32];
        fmt_duration(c->cfg->period_ms, d, sizeof(d));
        log_info("Last_run stored, next run in: %s", d);
        return 0;
    }
    if (reset) {
        log_warn("The state was reset on the platform during the run; the datasets are "
                 "imported again");
        return E_CANCELED;
    }
    if (!stopping())
        run_failed(c, message);
    return E_MQ_PARTIAL;
}

/* The run check (every CONNECTOR_CHECK_INTERVAL). Returns 0 when nothing failed. */
static int check_and_run(struct connector *c)
{
    int64_t now = wall_s(), last = 0;
    log_state(c);
    bool has = state_last_run(c->state, &last);
    if (!sched_due(has, last, now, c->cfg->period_ms)) {
        char d[32];
        fmt_duration((sched_next_run(has, last, now, c->cfg->period_ms) - now) * MS_PER_S, d,
                     sizeof(d));
        log_info("Connector will not run, next run in: %s", d);
        return 0;
    }
    if (c->retry_not_before && mono_ms() < c->retry_not_before) {
        char d[32];
        fmt_duration(c->retry_not_before - mono_ms(), d, sizeof(d));
        log_info("The last run failed; retrying in %s", d);
        return 0;
    }
    /* consume a pending reset before the run, so that it cannot swallow the run's state */
    if (ping_now(c)) {
        log_warn("Cannot ping the platform before the run; it is postponed to the next check");
        return E_HTTP;
    }
    has = state_last_run(c->state, &last);
    if (!sched_due(has, last, wall_s(), c->cfg->period_ms))
        return 0;
    return run_cycle(c, wall_s());
}

/* Hands freed heap back to the system after a run: a large dataset would otherwise keep
 * its peak resident until the next run. */
static void release_memory(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* ---- public ---------------------------------------------------------------------------- */

struct connector *connector_new(const struct config *cfg)
{
    struct connector *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = cfg;
    uuid_t u;
    uuid_generate(u);
    memcpy(&c->rng, u, sizeof(c->rng));
    if (!c->rng)
        c->rng = 0x9e3779b9u;
    char ua[64];
    snprintf(ua, sizeof(ua), "%s/%s", ODS_NAME, ODS_VERSION);
    const char *ca = cfg->ssl_ca_file ? cfg->ssl_ca_file : cfg->ca_bundle;
    struct opencti_options oo = {
        .url = cfg->opencti_url,
        .token = cfg->opencti_token,
        .http = {.user_agent = ua,
                 .verify = cfg->ssl_verify,
                 .ca_file = ca,
                 .https_proxy = cfg->https_proxy,
                 .http_proxy = cfg->http_proxy,
                 .no_proxy = cfg->no_proxy,
                 .headers = cfg->custom_headers,
                 .n_headers = cfg->n_custom_headers,
                 .allow_file = false,
                 .follow_redirects = false,
                 .connect_timeout_ms = HTTP_CONNECT_TIMEOUT_MS,
                 .tick = api_tick,
                 .tick_ctx = c},
        .timeout_ms = cfg->opencti_timeout_ms,
        .on_compat = on_compat,
        .compat_ctx = c,
    };
    struct http_options fo = {.user_agent = ua,
                              .verify = true,
                              .ca_file = cfg->ca_bundle,
                              .https_proxy = cfg->https_proxy,
                              .http_proxy = cfg->http_proxy,
                              .no_proxy = cfg->no_proxy,
                              .allow_file = true,
                              .follow_redirects = true,
                              .connect_timeout_ms = HTTP_CONNECT_TIMEOUT_MS,
                              .tick = fetch_tick,
                              .tick_ctx = c};
    c->api = opencti_new(&oo);
    c->fetch = http_new(&fo);
    if (!c->api || !c->fetch) {
        connector_free(c);
        return NULL;
    }
    return c;
}

void connector_free(struct connector *c)
{
    if (!c)
        return;
    opencti_free(c->api);
    http_free(c->fetch);
    opencti_registration_release(&c->reg);
    free(c->platform_version);
    cJSON_Delete(c->state);
    free(c->prev_state_text);
    free(c);
}

int connector_main(struct connector *c)
{
    const struct config *cfg = c->cfg;
    char period[32];
    fmt_duration(cfg->period_ms, period, sizeof(period));
    log_kv(LOG_INFO,
           LOG_ATTRS(KV_STR("version", ODS_VERSION), KV_STR("url", cfg->opencti_url),
                     KV_STR("connector_id", cfg->connector_id),
                     KV_BOOL("run_and_terminate", cfg->run_and_terminate),
                     KV_STR("period", period)),
           "%s %s starting", ODS_NAME, ODS_VERSION);
    report(c, "Starting");
    if (startup(c)) {
        notify_stopping();
        log_info("Connector stop");
        return CONNECTOR_EXIT_OK;
    }
    notify_ready("Registered");
    report_idle(c);
    if (cfg->run_and_terminate) {
        int rc = check_and_run(c);
        bool stopped = stopping(); /* a stop during the final ping does not excuse a failure */
        /* a final ping, as pycti's force_ping: liveness and the stored state */
        if (!stopped)
            (void)ping_now(c);
        notify_stopping();
        report(c, "Stopped");
        log_info("Connector stop");
        /* a stop asked for by the operator is a normal end, as in daemon mode; the work
         * says the run was interrupted and last_run is not advanced */
        return rc == 0 || stopped ? CONNECTOR_EXIT_OK : CONNECTOR_EXIT_RUN_FAILED;
    }
    c->next_check = mono_ms();
    while (!stopping()) {
        if (c->need_register) {
            c->need_register = false;
            log_warn("The platform no longer knows this connector (deleted from the "
                     "Connectors screen?); registering again");
            c->registered = false;
            if (startup(c))
                break;
            continue;
        }
        int64_t now = mono_ms();
        if (now >= c->next_ping)
            (void)ping_now(c);
        if (now >= c->next_check) {
            c->next_check = now + cfg->check_interval_ms;
            if (check_and_run(c) == 0)
                report_idle(c);
            release_memory();
            continue; /* a reset during the run asks for an immediate check */
        }
        now = mono_ms();
        int64_t next = c->next_ping < c->next_check ? c->next_ping : c->next_check;
        if (next - now > STATUS_HEARTBEAT_S * MS_PER_S)
            next = now + STATUS_HEARTBEAT_S * MS_PER_S;
        wait_ms(next - now);
        heartbeat(c);
    }
    notify_stopping();
    report(c, "Stopping");
    log_info("Connector stop");
    return CONNECTOR_EXIT_OK;
}
