/*
 * mq_bench.c - one publisher run for the publisher benchmark (bench/run_mq_bench.py).
 *
 *   mq_bench --mode ours|bare|single --port P --exchange X --routing-key K
 *            [--host H] [--count 21600] [--size 2300] [--window W] [--heartbeat 10]
 *
 * Publishes --count messages shaped like the daemon's queue envelope (the Base64 of a
 * STIX-like bundle between the envelope's fixed parts; sizes spread deterministically
 * from 60% to 140% of --size, so the mean is --size), persistent, content encoding utf-8,
 * mandatory, to one exchange and routing key, with publisher confirms, in one of three
 * ways:
 *
 *   ours    the daemon's publisher: mq_publish() from the core library (window --window,
 *           default 256), through a render callback that copies the prepared body.
 *   bare    a minimal pipelined publisher written for the benchmark: confirm.select, keep
 *           up to --window (default 4096) unconfirmed, read basic.ack frames in between.
 *           No reconnect, no returns, no hooks: a ceiling for what rabbitmq-c can do.
 *   single  one confirm at a time, as pycti does (pika's BlockingChannel with
 *           confirm_delivery: every basic_publish waits for its ack).
 *
 * Every mode opens one connection (SASL PLAIN, requested heartbeat --heartbeat), one
 * channel, and closes both at the end; the clock runs from before the TCP connect to after
 * the close. All bodies are prepared before the clock starts. Prints one JSON line:
 *   {"mode":"bare","window":4096,"count":21600,"bytes":49680000,"elapsed_ms":1520.3,
 *    "cpu_ms":610.2,"msg_per_s":14207.1,"confirmed":21600}
 * (cpu_ms: this process's user + system time over the timed part.)
 * Exit status 0 when every message was confirmed, 1 otherwise, 2 on a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

#ifdef ODS_HAVE_RABBITMQ_C_DIR
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

#include "buf.h"
#include "err.h"
#include "mq.h"

#define BENCH_FRAME_MAX 131072 /* the daemon's frame size (AMQP_DEFAULT_FRAME_SIZE) */
#define BENCH_SEND_BURST 64    /* bare: publishes between two reads, like the daemon's */
#define BENCH_WAIT_S 30        /* a broker that says nothing for this long: give up */
#define BENCH_BODY_MAX ((size_t)1 << 20)

#define ENVELOPE_HEAD                                                                              \
    "{\"bundle_type\":\"QUEUE_BUNDLE\",\"applicant_id\":\"88ec0c6a-13ce-5e39-b486-354fe4a7084f\"," \
    "\"action_sequence\":%zu,\"entities_types\":\"marking-definition,identity,location\","         \
    "\"content\":\""
#define ENVELOPE_TAIL                                                                              \
    "\",\"update\":true,\"draft_id\":null,\"work_id\":\"work_0b5f3e0a-9e5c-4a39-a1b3-"             \
    "3e1f4e6c2b7d_2025-01-01T00:00:00.000Z\"}"

struct body {
    char *data;
    size_t len;
};

struct bench {
    const char *mode;
    const char *host;
    int port;
    const char *exchange;
    const char *routing_key;
    size_t count;
    size_t size;
    size_t window;
    int heartbeat;
    struct body *bodies;
    uint64_t bytes;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static double cpu_ms(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Message i: the envelope around the Base64 of a bundle padded with text, about
 * size * (0.6 .. 1.4) bytes in all. */
static int make_body(size_t i, size_t size, struct body *ret)
{
    struct buf out, raw;
    buf_init(&out, BENCH_BODY_MAX);
    buf_init(&raw, BENCH_BODY_MAX);
    size_t target = size * (60 + mix(i) % 81) / 100;
    int rc = buf_printf(&out, ENVELOPE_HEAD, i + 1);
    size_t fixed = out.len + strlen(ENVELOPE_TAIL);
    size_t raw_len = target > fixed ? (target - fixed) / 4 * 3 : 0;
    if (!rc)
        rc =
            buf_printf(&raw,
                       "{\"type\":\"bundle\",\"id\":\"bundle--%016" PRIx64 "\",\"spec_version\":"
                       "\"2.1\",\"objects\":[{\"type\":\"attack-pattern\",\"spec_version\":\"2.1\","
                       "\"id\":\"attack-pattern--%016" PRIx64 "\",\"description\":\"",
                       mix(i + 1), mix(i + 2));
    static const char words[] = "adversary lateral movement persistence credential access "
                                "exfiltration beacon loader dropper phishing payload ";
    for (size_t k = 0; !rc && raw.len < raw_len; k++)
        rc = buf_addc(&raw, words[(k + i) % (sizeof(words) - 1)]);
    if (!rc && raw.len > raw_len)
        raw.len = raw_len;
    if (!rc)
        rc = buf_add_base64(&out, raw.data ? raw.data : "", raw.len);
    if (!rc)
        rc = buf_adds(&out, ENVELOPE_TAIL);
    buf_release(&raw);
    if (rc) {
        buf_release(&out);
        return rc;
    }
    ret->len = out.len;
    ret->data = buf_take(&out);
    return ret->data ? 0 : E_NOMEM;
}

/* --- ours: mq_publish ------------------------------------------------------------------ */

static int ours_render(void *ctx, size_t i, struct buf *out, struct err *err)
{
    const struct bench *b = ctx;
    int rc = buf_add(out, b->bodies[i].data, b->bodies[i].len);
    return rc ? err_set(err, rc, "cannot copy message %zu", i) : 0;
}

static int ours_service(void *ctx)
{
    (void)ctx;
    return 0;
}

static size_t run_ours(struct bench *b)
{
    struct mq_params p;
    mq_params_defaults(&p);
    p.host = b->host;
    p.port = b->port;
    p.vhost = "/";
    p.user = "guest";
    p.pass = "guest";
    p.exchange = b->exchange;
    p.routing_key = b->routing_key;
    p.connection_name = "mq_bench ours";
    p.heartbeat_s = b->heartbeat;
    p.window = b->window;
    p.give_up_ms = BENCH_WAIT_S * 1000;
    uint8_t *status = calloc(b->count ? b->count : 1, 1);
    if (!status)
        return 0;
    struct mq_source src = {.count = b->count, .render = ours_render, .ctx = b};
    struct mq_hooks hooks = {.service = ours_service, .ctx = b};
    struct mq_stats st;
    struct err err = {{0}};
    int rc = mq_publish(&p, &src, &hooks, status, &st, &err);
    free(status);
    if (rc)
        fprintf(stderr, "mq_bench: mq_publish: %s: %s\n", err_str(rc), err.msg);
    return st.confirmed;
}

/* --- bare and single: rabbitmq-c directly -------------------------------------------------- */

struct raw {
    amqp_connection_state_t conn;
    uint8_t *acked; /* by delivery tag (1-based) */
    uint64_t low;   /* lowest tag not yet acked */
    size_t confirmed;
    bool failed;
};

static bool reply_ok(amqp_rpc_reply_t r, const char *what)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    fprintf(stderr, "mq_bench: %s failed (reply type %d, library error %s)\n", what,
            (int)r.reply_type,
            r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error)
                                                            : "-");
    return false;
}

static bool raw_open(struct raw *R, const struct bench *b)
{
    R->conn = amqp_new_connection();
    amqp_socket_t *sock = R->conn ? amqp_tcp_socket_new(R->conn) : NULL;
    if (!sock) {
        fprintf(stderr, "mq_bench: out of memory\n");
        return false;
    }
    int st = amqp_socket_open(sock, b->host, b->port);
    if (st != AMQP_STATUS_OK) {
        fprintf(stderr, "mq_bench: connect: %s\n", amqp_error_string2(st));
        return false;
    }
    if (!reply_ok(amqp_login(R->conn, "/", 0, BENCH_FRAME_MAX, b->heartbeat, AMQP_SASL_METHOD_PLAIN,
                             "guest", "guest"),
                  "login"))
        return false;
    amqp_channel_open(R->conn, 1);
    if (!reply_ok(amqp_get_rpc_reply(R->conn), "channel.open"))
        return false;
    amqp_confirm_select(R->conn, 1);
    if (!reply_ok(amqp_get_rpc_reply(R->conn), "confirm.select"))
        return false;
    R->acked = calloc(b->count + 2, 1);
    R->low = 1;
    return R->acked != NULL;
}

static void raw_close(struct raw *R)
{
    if (!R->conn)
        return;
    (void)amqp_channel_close(R->conn, 1, AMQP_REPLY_SUCCESS);
    (void)amqp_connection_close(R->conn, AMQP_REPLY_SUCCESS);
    (void)amqp_destroy_connection(R->conn);
    R->conn = NULL;
}

static bool raw_publish(struct raw *R, const struct bench *b, size_t i)
{
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG;
    props.delivery_mode = 2;
    props.content_encoding = amqp_cstring_bytes("utf-8");
    amqp_bytes_t body = {.len = b->bodies[i].len, .bytes = b->bodies[i].data};
    int st = amqp_basic_publish(R->conn, 1, amqp_cstring_bytes(b->exchange),
                                amqp_cstring_bytes(b->routing_key), 1, 0, &props, body);
    if (st != AMQP_STATUS_OK) {
        fprintf(stderr, "mq_bench: publish: %s\n", amqp_error_string2(st));
        R->failed = true;
        return false;
    }
    return true;
}

static void mark_acked(struct raw *R, uint64_t tag, size_t count)
{
    if (tag < 1 || tag > count || R->acked[tag])
        return;
    R->acked[tag] = 1;
    R->confirmed++;
}

/* Reads one frame (waiting up to BENCH_WAIT_S when block, else not at all). Returns
 * false when nothing was there (non-blocking) or on an error (R->failed set). */
static bool raw_read(struct raw *R, const struct bench *b, bool block)
{
    struct timeval tv = {.tv_sec = block ? BENCH_WAIT_S : 0, .tv_usec = 0};
    amqp_frame_t f;
    int st = amqp_simple_wait_frame_noblock(R->conn, &f, &tv);
    if (st == AMQP_STATUS_TIMEOUT) {
        if (block) {
            fprintf(stderr, "mq_bench: no confirm for %d s\n", BENCH_WAIT_S);
            R->failed = true;
        }
        return false;
    }
    if (st != AMQP_STATUS_OK) {
        fprintf(stderr, "mq_bench: read: %s\n", amqp_error_string2(st));
        R->failed = true;
        return false;
    }
    if (f.frame_type == AMQP_FRAME_METHOD) {
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->multiple) {
                for (uint64_t t = R->low; t <= a->delivery_tag; t++)
                    mark_acked(R, t, b->count);
            } else {
                mark_acked(R, a->delivery_tag, b->count);
            }
            while (R->low <= b->count && R->acked[R->low])
                R->low++;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD ||
                   f.payload.method.id == AMQP_BASIC_RETURN_METHOD ||
                   f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                   f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            fprintf(stderr, "mq_bench: unexpected broker method 0x%08x\n",
                    (unsigned)f.payload.method.id);
            R->failed = true;
            return false;
        }
    }
    amqp_maybe_release_buffers(R->conn);
    return true;
}

static size_t run_bare(struct bench *b)
{
    struct raw R = {0};
    if (raw_open(&R, b)) {
        size_t sent = 0;
        while (!R.failed && R.confirmed < b->count) {
            for (int k = 0; k < BENCH_SEND_BURST && sent < b->count &&
                            sent - R.confirmed < b->window && !R.failed;
                 k++)
                if (raw_publish(&R, b, sent))
                    sent++;
            bool room = sent < b->count && sent - R.confirmed < b->window;
            /* window full or all sent: wait for an ack; else take what has arrived */
            if (!room)
                (void)raw_read(&R, b, true);
            while (!R.failed && raw_read(&R, b, false))
                ;
        }
    }
    size_t n = R.failed ? 0 : R.confirmed;
    raw_close(&R);
    free(R.acked);
    return n;
}

static size_t run_single(struct bench *b)
{
    struct raw R = {0};
    if (raw_open(&R, b)) {
        for (size_t i = 0; i < b->count && !R.failed; i++) {
            if (!raw_publish(&R, b, i))
                break;
            while (!R.failed && !R.acked[i + 1])
                (void)raw_read(&R, b, true);
        }
    }
    size_t n = R.failed ? 0 : R.confirmed;
    raw_close(&R);
    free(R.acked);
    return n;
}

/* --- main ------------------------------------------------------------------------------------ */

static int usage(const char *msg)
{
    fprintf(stderr,
            "mq_bench: %s\nusage: mq_bench --mode ours|bare|single --port P --exchange X "
            "--routing-key K [--host H] [--count N] [--size BYTES] [--window W] "
            "[--heartbeat S]\n",
            msg);
    return 2;
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

int main(int argc, char **argv)
{
    struct bench b = {.host = "127.0.0.1", .count = 21600, .size = 2300, .heartbeat = 10};
    size_t port = 0, heartbeat = 10;
    for (int a = 1; a < argc; a++) {
        const char *k = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!v)
            return usage("missing value");
        a++;
        if (!strcmp(k, "--mode"))
            b.mode = v;
        else if (!strcmp(k, "--host"))
            b.host = v;
        else if (!strcmp(k, "--port")) {
            if (parse_size(v, &port) || port == 0 || port > 65535)
                return usage("bad --port");
        } else if (!strcmp(k, "--exchange"))
            b.exchange = v;
        else if (!strcmp(k, "--routing-key"))
            b.routing_key = v;
        else if (!strcmp(k, "--count")) {
            if (parse_size(v, &b.count) || b.count == 0)
                return usage("bad --count");
        } else if (!strcmp(k, "--size")) {
            if (parse_size(v, &b.size) || b.size == 0)
                return usage("bad --size");
        } else if (!strcmp(k, "--window")) {
            if (parse_size(v, &b.window) || b.window == 0)
                return usage("bad --window");
        } else if (!strcmp(k, "--heartbeat")) {
            if (parse_size(v, &heartbeat) || heartbeat > 600)
                return usage("bad --heartbeat");
        } else
            return usage("unknown option");
    }
    b.port = (int)port;
    b.heartbeat = (int)heartbeat;
    if (!b.mode || !port || !b.exchange || !b.routing_key)
        return usage("--mode, --port, --exchange and --routing-key are required");
    size_t (*run)(struct bench *);
    if (!strcmp(b.mode, "ours")) {
        run = run_ours;
        if (!b.window)
            b.window = 256;
    } else if (!strcmp(b.mode, "bare")) {
        run = run_bare;
        if (!b.window)
            b.window = 4096;
    } else if (!strcmp(b.mode, "single")) {
        run = run_single;
        b.window = 1;
    } else
        return usage("--mode is ours, bare or single");

    b.bodies = calloc(b.count, sizeof(*b.bodies));
    if (!b.bodies)
        return usage("out of memory");
    for (size_t i = 0; i < b.count; i++) {
        if (make_body(i, b.size, &b.bodies[i]))
            return usage("out of memory");
        b.bytes += b.bodies[i].len;
    }

    double c0 = cpu_ms();
    double t0 = now_ms();
    size_t confirmed = run(&b);
    double ms = now_ms() - t0;
    double cpu = cpu_ms() - c0;
    printf("{\"mode\":\"%s\",\"window\":%zu,\"count\":%zu,\"bytes\":%" PRIu64
           ",\"elapsed_ms\":%.1f,\"cpu_ms\":%.1f,\"msg_per_s\":%.1f,\"confirmed\":%zu}\n",
           b.mode, b.window, b.count, b.bytes, ms, cpu,
           ms > 0 ? (double)b.count * 1000.0 / ms : 0.0, confirmed);
    for (size_t i = 0; i < b.count; i++)
        free(b.bodies[i].data);
    free(b.bodies);
    return confirmed == b.count ? 0 : 1;
}
