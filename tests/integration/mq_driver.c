/*
 * mq_driver.c - runs one mq_publish() series for the integration tests and the benchmark.
 *
 * Publishes --count generated messages shaped like the daemon's queue envelope (about
 * --size bytes each, action_sequence = index + 1) and prints one JSON object on stdout:
 *
 *   {"rc":0,"rc_name":"success","error":"","elapsed_ms":812,"max_service_gap_ms":101,
 *    "stats":{"confirmed":..,"failed":..,"pending":..,"published":..,"republished":..,
 *             "returned":..,"nacked":..,"reconnects":..,"bytes_confirmed":..,
 *             "learned_max_message_size":..},
 *    "status":"CCCF..."}        (one letter per message: C confirmed, F failed, P pending)
 *
 * Every event is written to stderr as it happens, one JSON line each:
 *   {"t_ms":120,"event":"BLOCKED","i":-1,"detail":"low on memory"}
 * so a test can react to it (for instance lift an alarm once BLOCKED was seen).
 *
 * Test hooks: --on-confirmed K:CMD runs CMD (through /bin/sh) once, from the service
 * hook, when K messages are confirmed; --on-unroutable CMD runs CMD from the unroutable
 * hook; --cancel-after-confirmed K and SIGTERM/SIGINT make the service hook ask to stop.
 * Exit status: 0 when the JSON was printed (whatever rc was), 2 on a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "mq.h"

#define DRIVER_MAX_BIG 16
#define DRIVER_OUT_MAX ((size_t)64 * 1024 * 1024)
#define DRIVER_ENVELOPE_HEAD                                                                       \
    "{\"bundle_type\":\"QUEUE_BUNDLE\",\"applicant_id\":\"88ec0c6a-13ce-5e39-b486-354fe4a7084f\"," \
    "\"action_sequence\":%zu,\"entities_types\":\"marking-definition,identity,location\","         \
    "\"content\":\""
#define DRIVER_ENVELOPE_TAIL                                                                       \
    "\",\"update\":true,\"draft_id\":null,\"work_id\":\"work_0b5f3e0a-9e5c-4a39-a1b3-"             \
    "3e1f4e6c2b7d_2025-01-01T00:00:00.000Z\"}"

static volatile sig_atomic_t g_stop;

struct big {
    size_t index;
    size_t size;
};

struct driver {
    size_t count;
    size_t size;
    struct big big[DRIVER_MAX_BIG];
    size_t nbig;
    long render_delay_us;
    uint8_t *status;
    size_t on_confirmed_at;
    const char *on_confirmed_cmd;
    bool on_confirmed_done;
    const char *on_unroutable_cmd;
    size_t cancel_after;
    bool quiet;
    int64_t last_hook_exit_ms; /* for the longest wait between two service calls */
    int64_t max_service_gap_ms;
    struct timespec t0;
    struct buf raw;
};

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int64_t elapsed_ms(const struct driver *d)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)(ts.tv_sec - d->t0.tv_sec) * 1000 + (ts.tv_nsec - d->t0.tv_nsec) / 1000000;
}

static size_t body_size(const struct driver *d, size_t i)
{
    for (size_t k = 0; k < d->nbig; k++)
        if (d->big[k].index == i)
            return d->big[k].size;
    return d->size;
}

/* Envelope around the Base64 of deterministic filler, sized to about the target. */
static int render(void *ctx, size_t i, struct buf *out, struct err *err)
{
    struct driver *d = ctx;
    if (d->render_delay_us > 0) {
        struct timespec ts = {.tv_sec = d->render_delay_us / 1000000,
                              .tv_nsec = (d->render_delay_us % 1000000) * 1000};
        (void)nanosleep(&ts, NULL);
    }
    int rc = buf_printf(out, DRIVER_ENVELOPE_HEAD, i + 1);
    if (rc)
        return err_set(err, rc, "cannot render message %zu", i);
    size_t fixed = out->len + strlen(DRIVER_ENVELOPE_TAIL);
    size_t target = body_size(d, i);
    size_t raw_len = target > fixed ? (target - fixed) / 4 * 3 : 0;
    buf_reset(&d->raw);
    rc = buf_printf(&d->raw, "{\"type\":\"bundle\",\"id\":\"bundle--%zu\",\"objects\":[]}", i);
    while (rc == 0 && d->raw.len < raw_len)
        rc = buf_addc(&d->raw, (char)('a' + (d->raw.len * 7 + i) % 26));
    if (rc == 0 && d->raw.len > raw_len)
        d->raw.len = raw_len;
    if (rc == 0)
        rc = buf_add_base64(out, d->raw.data, d->raw.len);
    if (rc == 0)
        rc = buf_adds(out, DRIVER_ENVELOPE_TAIL);
    return rc ? err_set(err, rc, "cannot render message %zu", i) : 0;
}

static size_t count_confirmed(const struct driver *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->count; i++)
        n += d->status[i] == MQ_MSG_CONFIRMED;
    return n;
}

static void run_cmd(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "{\"driver\":\"command failed\",\"rc\":%d}\n", rc);
}

/* The gap between service calls, minus the time spent in our own hooks (a command run
 * from a hook is the caller's time, not the publisher's). */
static void note_service_entry(struct driver *d)
{
    int64_t now = elapsed_ms(d);
    if (d->last_hook_exit_ms && now - d->last_hook_exit_ms > d->max_service_gap_ms)
        d->max_service_gap_ms = now - d->last_hook_exit_ms;
}

static int service_inner(struct driver *d)
{
    if (g_stop)
        return -1;
    if (d->on_confirmed_cmd && !d->on_confirmed_done) {
        size_t n = count_confirmed(d);
        if (n >= d->on_confirmed_at) {
            d->on_confirmed_done = true;
            fprintf(stderr,
                    "{\"t_ms\":%" PRId64
                    ",\"event\":\"ON_CONFIRMED\",\"i\":-1,\"detail\":\"%zu\"}\n",
                    elapsed_ms(d), n);
            run_cmd(d->on_confirmed_cmd);
        }
    }
    if (d->cancel_after && count_confirmed(d) >= d->cancel_after)
        return -1;
    return 0;
}

static int service(void *ctx)
{
    struct driver *d = ctx;
    note_service_entry(d);
    int rc = service_inner(d);
    d->last_hook_exit_ms = elapsed_ms(d);
    return rc;
}

static void unroutable(void *ctx)
{
    struct driver *d = ctx;
    fprintf(stderr,
            "{\"t_ms\":%" PRId64 ",\"event\":\"UNROUTABLE_HOOK\",\"i\":-1,\"detail\":\"\"}\n",
            elapsed_ms(d));
    if (d->on_unroutable_cmd)
        run_cmd(d->on_unroutable_cmd);
    d->last_hook_exit_ms = elapsed_ms(d);
}

static const char *event_name(enum mq_event ev)
{
    switch (ev) {
    case MQ_EV_CONNECTED: return "CONNECTED";
    case MQ_EV_CONNECT_FAILED: return "CONNECT_FAILED";
    case MQ_EV_LOST: return "LOST";
    case MQ_EV_BLOCKED: return "BLOCKED";
    case MQ_EV_UNBLOCKED: return "UNBLOCKED";
    case MQ_EV_RETURNED: return "RETURNED";
    case MQ_EV_NACKED: return "NACKED";
    case MQ_EV_MSG_FAILED: return "MSG_FAILED";
    case MQ_EV_LIMIT_LEARNED: return "LIMIT_LEARNED";
    }
    return "UNKNOWN";
}

static void event(void *ctx, enum mq_event ev, size_t i, const char *detail)
{
    struct driver *d = ctx;
    if (d->quiet && (ev == MQ_EV_RETURNED || ev == MQ_EV_MSG_FAILED))
        return;
    struct buf line;
    buf_init(&line, 4096);
    int rc = buf_printf(&line, "{\"t_ms\":%" PRId64 ",\"event\":\"%s\",\"i\":%lld,\"detail\":",
                        elapsed_ms(d), event_name(ev), i == SIZE_MAX ? -1LL : (long long)i);
    if (rc == 0)
        rc = buf_add_json_string(&line, detail, strlen(detail));
    if (rc == 0)
        rc = buf_adds(&line, "}\n");
    if (rc == 0) {
        fputs(line.data, stderr);
        fflush(stderr);
    }
    buf_release(&line);
}

static int parse_size(const char *s, size_t *ret)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *ret = (size_t)v;
    return 0;
}

static int parse_i64(const char *s, int64_t *ret)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *ret = v;
    return 0;
}

static int usage(const char *msg)
{
    fprintf(stderr, "mq_driver: %s\n", msg);
    return 2;
}

int main(int argc, char **argv)
{
    struct mq_params p;
    struct driver d = {.count = 10, .size = 2300};
    mq_params_defaults(&p);
    p.host = "127.0.0.1";
    p.user = "guest";
    p.pass = "guest";
    p.vhost = "/";
    p.exchange = "";
    p.routing_key = "";
    p.tls.verify = true;
    clock_gettime(CLOCK_MONOTONIC, &d.t0);
    buf_init(&d.raw, DRIVER_OUT_MAX);

    for (int a = 1; a < argc; a++) {
        const char *k = argv[a];
        const char *v = a + 1 < argc ? argv[a + 1] : NULL;
        int64_t n = 0;
        size_t z = 0;
#define NEED_VALUE                                                                                 \
    do {                                                                                           \
        if (!v)                                                                                    \
            return usage("missing value");                                                         \
        a++;                                                                                       \
    } while (0)
        if (!strcmp(k, "--host")) {
            NEED_VALUE;
            p.host = v;
        } else if (!strcmp(k, "--port")) {
            NEED_VALUE;
            if (parse_i64(v, &n))
                return usage("bad --port");
            p.port = (int)n;
        } else if (!strcmp(k, "--vhost")) {
            NEED_VALUE;
            p.vhost = v;
        } else if (!strcmp(k, "--user")) {
            NEED_VALUE;
            p.user = v;
        } else if (!strcmp(k, "--pass")) {
            NEED_VALUE;
            p.pass = v;
        } else if (!strcmp(k, "--exchange")) {
            NEED_VALUE;
            p.exchange = v;
        } else if (!strcmp(k, "--routing-key")) {
            NEED_VALUE;
            p.routing_key = v;
        } else if (!strcmp(k, "--connection-name")) {
            NEED_VALUE;
            p.connection_name = v;
        } else if (!strcmp(k, "--count")) {
            NEED_VALUE;
            if (parse_size(v, &d.count))
                return usage("bad --count");
        } else if (!strcmp(k, "--size")) {
            NEED_VALUE;
            if (parse_size(v, &d.size))
                return usage("bad --size");
        } else if (!strcmp(k, "--window")) {
            NEED_VALUE;
            if (parse_size(v, &p.window))
                return usage("bad --window");
        } else if (!strcmp(k, "--heartbeat")) {
            NEED_VALUE;
            if (parse_i64(v, &n))
                return usage("bad --heartbeat");
            p.heartbeat_s = (int)n;
        } else if (!strcmp(k, "--max-message-size")) {
            NEED_VALUE;
            if (parse_size(v, &p.max_message_size))
                return usage("bad --max-message-size");
        } else if (!strcmp(k, "--connect-timeout-ms")) {
            NEED_VALUE;
            if (parse_i64(v, &p.connect_timeout_ms))
                return usage("bad value");
        } else if (!strcmp(k, "--give-up-ms")) {
            NEED_VALUE;
            if (parse_i64(v, &p.give_up_ms))
                return usage("bad value");
        } else if (!strcmp(k, "--backoff-initial-ms")) {
            NEED_VALUE;
            if (parse_i64(v, &p.backoff_initial_ms))
                return usage("bad value");
        } else if (!strcmp(k, "--backoff-max-ms")) {
            NEED_VALUE;
            if (parse_i64(v, &p.backoff_max_ms))
                return usage("bad value");
        } else if (!strcmp(k, "--drain-ms")) {
            NEED_VALUE;
            if (parse_i64(v, &p.drain_ms))
                return usage("bad value");
        } else if (!strcmp(k, "--tls")) {
            p.tls.enabled = true;
        } else if (!strcmp(k, "--no-verify")) {
            p.tls.verify = false;
        } else if (!strcmp(k, "--ca")) {
            NEED_VALUE;
            p.tls.ca = v;
        } else if (!strcmp(k, "--cert")) {
            NEED_VALUE;
            p.tls.cert = v;
        } else if (!strcmp(k, "--key")) {
            NEED_VALUE;
            p.tls.key = v;
        } else if (!strcmp(k, "--passphrase")) {
            NEED_VALUE;
            p.tls.passphrase = v;
        } else if (!strcmp(k, "--tmp-dir")) {
            NEED_VALUE;
            p.tls.tmp_dir = v;
        } else if (!strcmp(k, "--big")) {
            NEED_VALUE;
            const char *colon = strchr(v, ':');
            char idx[32];
            if (!colon || (size_t)(colon - v) >= sizeof(idx) || d.nbig == DRIVER_MAX_BIG)
                return usage("bad --big (INDEX:SIZE)");
            memcpy(idx, v, (size_t)(colon - v));
            idx[colon - v] = '\0';
            if (parse_size(idx, &d.big[d.nbig].index) || parse_size(colon + 1, &d.big[d.nbig].size))
                return usage("bad --big (INDEX:SIZE)");
            d.nbig++;
        } else if (!strcmp(k, "--render-delay-us")) {
            NEED_VALUE;
            if (parse_i64(v, &n))
                return usage("bad value");
            d.render_delay_us = (long)n;
        } else if (!strcmp(k, "--on-confirmed")) {
            NEED_VALUE;
            const char *colon = strchr(v, ':');
            char num[32];
            if (!colon || (size_t)(colon - v) >= sizeof(num))
                return usage("bad --on-confirmed (K:CMD)");
            memcpy(num, v, (size_t)(colon - v));
            num[colon - v] = '\0';
            if (parse_size(num, &z))
                return usage("bad --on-confirmed (K:CMD)");
            d.on_confirmed_at = z;
            d.on_confirmed_cmd = colon + 1;
        } else if (!strcmp(k, "--on-unroutable")) {
            NEED_VALUE;
            d.on_unroutable_cmd = v;
        } else if (!strcmp(k, "--cancel-after-confirmed")) {
            NEED_VALUE;
            if (parse_size(v, &d.cancel_after))
                return usage("bad value");
        } else if (!strcmp(k, "--quiet")) {
            d.quiet = true;
        } else
            return usage("unknown option");
#undef NEED_VALUE
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    d.status = calloc(d.count ? d.count : 1, 1);
    if (!d.status)
        return usage("out of memory");
    struct mq_source src = {.count = d.count, .render = render, .ctx = &d};
    struct mq_hooks hooks = {
        .service = service, .unroutable = unroutable, .event = event, .ctx = &d};
    struct mq_stats st;
    struct err err = {{0}};
    int rc = mq_publish(&p, &src, &hooks, d.status, &st, &err);
    int64_t ms = elapsed_ms(&d);

    struct buf out;
    buf_init(&out, DRIVER_OUT_MAX);
    int w = buf_printf(&out, "{\"rc\":%d,\"rc_name\":", rc);
    if (!w)
        w = buf_add_json_string(&out, err_str(rc), strlen(err_str(rc)));
    if (!w)
        w = buf_adds(&out, ",\"error\":");
    if (!w)
        w = buf_add_json_string(&out, err.msg, strlen(err.msg));
    if (!w)
        w = buf_printf(&out,
                       ",\"elapsed_ms\":%" PRId64 ",\"max_service_gap_ms\":%" PRId64
                       ",\"stats\":{\"confirmed\":%zu,\"failed\":%zu,"
                       "\"pending\":%zu,\"published\":%zu,\"republished\":%zu,\"returned\":%zu,"
                       "\"nacked\":%zu,\"reconnects\":%zu,\"bytes_confirmed\":%" PRIu64
                       ",\"learned_max_message_size\":%zu},\"status\":\"",
                       ms, d.max_service_gap_ms, st.confirmed, st.failed, st.pending, st.published,
                       st.republished, st.returned, st.nacked, st.reconnects, st.bytes_confirmed,
                       st.learned_max_message_size);
    for (size_t i = 0; !w && i < d.count; i++)
        w = buf_addc(&out, d.status[i] == MQ_MSG_CONFIRMED ? 'C'
                           : d.status[i] == MQ_MSG_FAILED  ? 'F'
                                                           : 'P');
    if (!w)
        w = buf_adds(&out, "\"}\n");
    if (!w)
        fputs(out.data, stdout);
    buf_release(&out);
    buf_release(&d.raw);
    free(d.status);
    return w ? 2 : 0;
}
