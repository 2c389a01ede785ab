/*
 * test_mq.c - the publisher without a broker: defaults, parameter checks, a broker that is
 * not there (backoff, give-up, service cadence, cancel) and local TLS material errors.
 * Everything that needs a real broker is in tests/integration/test_mq_*.py.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "mq.h"

#define SECRET_PASS "pw-Secr3t-xyz"
#define SECRET_PHRASE "phrase-Secr3t-abc"
#define TEST_MSGS 4
#define SERVICE_GAP_MAX_MS 200 /* the contract in mq.h */

struct rec {
    int services;
    int64_t last_service_ms, max_gap_ms;
    int stop_after; /* service calls before asking to stop; 0: never */
    int connect_failed, connected, other_events;
    bool secret_seen;
    int renders;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rec_service(void *ctx)
{
    struct rec *r = ctx;
    int64_t now = mono_ms();
    if (r->last_service_ms && now - r->last_service_ms > r->max_gap_ms)
        r->max_gap_ms = now - r->last_service_ms;
    r->last_service_ms = now;
    r->services++;
    return r->stop_after && r->services >= r->stop_after ? -1 : 0;
}

static void rec_event(void *ctx, enum mq_event ev, size_t i, const char *detail)
{
    struct rec *r = ctx;
    (void)i;
    if (strstr(detail, SECRET_PASS) || strstr(detail, SECRET_PHRASE))
        r->secret_seen = true;
    if (ev == MQ_EV_CONNECT_FAILED)
        r->connect_failed++;
    else if (ev == MQ_EV_CONNECTED)
        r->connected++;
    else
        r->other_events++;
}

static int render(void *ctx, size_t i, struct buf *out, struct err *err)
{
    struct rec *r = ctx;
    r->renders++;
    int rc = buf_printf(out, "{\"action_sequence\":%zu}", i + 1);
    return rc ? err_set(err, rc, "render") : 0;
}

/* A loopback port nobody listens on: bind port 0, note it, close it. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return 1; /* port 1: refused as well */
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void base_params(struct mq_params *p)
{
    mq_params_defaults(p);
    p->host = "127.0.0.1";
    p->port = closed_port();
    p->user = "guest";
    p->pass = SECRET_PASS;
    p->exchange = "amqp.worker.exchange";
    p->routing_key = "push_routing_x";
    p->give_up_ms = 1200;
    p->backoff_initial_ms = 50;
    p->backoff_max_ms = 200;
    p->connect_timeout_ms = 500;
}

static size_t dir_entries(const char *path)
{
    DIR *d = opendir(path);
    size_t n = 0;
    if (!d)
        return SIZE_MAX;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_defaults(void)
{
    struct mq_params p;
    memset(&p, 0xa5, sizeof(p));
    mq_params_defaults(&p);
    CHECK_INT_EQ(p.port, 5672);
    CHECK_UINT_EQ(p.window, 256);
    CHECK_INT_EQ(p.heartbeat_s, 10);
    CHECK_UINT_EQ(p.max_message_size, 16u * 1024 * 1024);
    CHECK(p.tls.verify);
    CHECK(!p.tls.enabled);
    CHECK_NULL(p.host);
    CHECK_NULL(p.tls.ca);
    CHECK_NULL(p.tls.tmp_dir);
    CHECK(p.give_up_ms > 0 && p.drain_ms > 0 && p.connect_timeout_ms > 0);
    CHECK(p.backoff_initial_ms > 0 && p.backoff_max_ms >= p.backoff_initial_ms);
}

static void test_invalid_params(void)
{
    struct mq_params p;
    struct rec r = {0};
    uint8_t status[TEST_MSGS] = {0};
    struct mq_source src = {.count = TEST_MSGS, .render = render, .ctx = &r};
    struct mq_stats st;
    struct err err = {{0}};

    base_params(&p);
    p.window = 0;
    CHECK_INT_EQ(mq_publish(&p, &src, NULL, status, &st, &err), E_INVAL);
    CHECK_STR_CONTAINS(err.msg, "window");
    CHECK_UINT_EQ(st.pending, TEST_MSGS);

    base_params(&p);
    p.host = NULL;
    CHECK_INT_EQ(mq_publish(&p, &src, NULL, status, &st, &err), E_INVAL);

    base_params(&p);
    p.heartbeat_s = -1;
    CHECK_INT_EQ(mq_publish(&p, &src, NULL, status, &st, &err), E_INVAL);

    base_params(&p);
    p.backoff_max_ms = p.backoff_initial_ms - 1;
    CHECK_INT_EQ(mq_publish(&p, &src, NULL, status, &st, &err), E_INVAL);

    base_params(&p);
    status[2] = MQ_MSG_CONFIRMED;
    CHECK_INT_EQ(mq_publish(&p, &src, NULL, status, &st, &err), E_INVAL);
    CHECK_STR_CONTAINS(err.msg, "status[2]");
    status[2] = MQ_MSG_PENDING;

    CHECK_INT_EQ(mq_publish(NULL, &src, NULL, status, NULL, &err), E_INVAL);
    CHECK_INT_EQ(r.renders, 0);
}

static void test_empty_series_needs_no_broker(void)
{
    struct mq_params p;
    struct rec r = {0};
    struct mq_source src = {.count = 0, .render = render, .ctx = &r};
    struct mq_hooks hooks = {.event = rec_event, .ctx = &r};
    struct mq_stats st;
    base_params(&p);
    CHECK_INT_EQ(mq_publish(&p, &src, &hooks, NULL, &st, NULL), 0);
    CHECK_INT_EQ(r.connect_failed + r.connected, 0);
    CHECK_UINT_EQ(st.confirmed + st.failed + st.pending, 0);
}

static void test_broker_absent_gives_up(void)
{
    struct mq_params p;
    struct rec r = {0};
    uint8_t status[TEST_MSGS] = {0};
    struct mq_source src = {.count = TEST_MSGS, .render = render, .ctx = &r};
    struct mq_hooks hooks = {.service = rec_service, .event = rec_event, .ctx = &r};
    struct mq_stats st;
    struct err err = {{0}};
    base_params(&p);

    int64_t t0 = mono_ms();
    int rc = mq_publish(&p, &src, &hooks, status, &st, &err);
    int64_t took = mono_ms() - t0;
    CHECK_INT_EQ(rc, E_MQ_GIVE_UP);
    CHECK(took >= p.give_up_ms && took < p.give_up_ms + 1000);
    CHECK_STR_CONTAINS(err.msg, "no message was confirmed");
    CHECK_STR_CONTAINS(err.msg, "127.0.0.1");
    CHECK(!strstr(err.msg, SECRET_PASS));
    /* backoff 50 ms doubling to 200 ms within 1.2 s: several attempts, not hundreds */
    CHECK(r.connect_failed >= 4 && r.connect_failed <= 30);
    CHECK_INT_EQ(r.connected, 0);
    CHECK(!r.secret_seen);
    CHECK(r.max_gap_ms <= SERVICE_GAP_MAX_MS);
    CHECK(r.services >= (int)(p.give_up_ms / SERVICE_GAP_MAX_MS));
    CHECK_UINT_EQ(st.pending, TEST_MSGS);
    CHECK_UINT_EQ(st.confirmed, 0);
    CHECK_UINT_EQ(st.published, 0);
    for (size_t i = 0; i < TEST_MSGS; i++)
        CHECK_INT_EQ(status[i], MQ_MSG_PENDING);
}

static void test_cancel_while_down(void)
{
    struct mq_params p;
    struct rec r = {.stop_after = 3};
    uint8_t status[TEST_MSGS] = {0};
    struct mq_source src = {.count = TEST_MSGS, .render = render, .ctx = &r};
    struct mq_hooks hooks = {.service = rec_service, .event = rec_event, .ctx = &r};
    struct mq_stats st;
    struct err err = {{0}};
    base_params(&p);
    p.give_up_ms = 60000;

    int64_t t0 = mono_ms();
    CHECK_INT_EQ(mq_publish(&p, &src, &hooks, status, &st, &err), E_CANCELED);
    CHECK(mono_ms() - t0 < 1000);
    CHECK_STR_CONTAINS(err.msg, "stopped");
    CHECK_UINT_EQ(st.confirmed, 0);
    CHECK_UINT_EQ(st.pending, TEST_MSGS);
}

static void test_tls_bad_inline_ca_is_fatal_and_leaves_no_file(void)
{
    char dir[] = "/tmp/ods-test-mq-XXXXXX";
    CHECK_NOT_NULL(mkdtemp(dir));
    struct mq_params p;
    struct rec r = {0};
    uint8_t status[TEST_MSGS] = {0};
    struct mq_source src = {.count = TEST_MSGS, .render = render, .ctx = &r};
    struct mq_hooks hooks = {.service = rec_service, .event = rec_event, .ctx = &r};
    struct err err = {{0}};
    base_params(&p);
    p.tls.enabled = true;
    p.tls.ca = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    p.tls.tmp_dir = dir;
    p.give_up_ms = 60000;

    int64_t t0 = mono_ms();
    int rc = mq_publish(&p, &src, &hooks, status, NULL, &err);
    size_t left = dir_entries(dir);
    rmdir(dir);
    CHECK_INT_EQ(rc, E_TLS);
    CHECK(mono_ms() - t0 < 1000); /* a config error: no waiting for give_up_ms */
    CHECK_STR_CONTAINS(err.msg, "MQ_USE_SSL_CA");
    CHECK_UINT_EQ(left, 0);
}

static void test_tls_key_without_cert(void)
{
    struct mq_params p;
    struct rec r = {0};
    uint8_t status[TEST_MSGS] = {0};
    struct mq_source src = {.count = TEST_MSGS, .render = render, .ctx = &r};
    struct err err = {{0}};
    base_params(&p);
    p.tls.enabled = true;
    p.tls.verify = false;
    p.tls.key = "/nonexistent/client.key";
    CHECK_INT_EQ(mq_publish(&p, &src, NULL, status, NULL, &err), E_INVAL);
    CHECK_STR_CONTAINS(err.msg, "MQ_USE_SSL_CERT");
}

static void test_tls_unreadable_key_hides_passphrase(void)
{
    struct mq_params p;
    struct rec r = {0};
    uint8_t status[TEST_MSGS] = {0};
    struct mq_source src = {.count = TEST_MSGS, .render = render, .ctx = &r};
    struct mq_hooks hooks = {.event = rec_event, .ctx = &r};
    struct err err = {{0}};
    base_params(&p);
    p.tls.enabled = true;
    p.tls.verify = false;
    p.tls.cert = "/nonexistent/" SECRET_PHRASE "/client.pem"; /* even echoed, it is masked */
    p.tls.key = "/nonexistent/client.key";
    p.tls.passphrase = SECRET_PHRASE;
    CHECK_INT_EQ(mq_publish(&p, &src, &hooks, status, NULL, &err), E_TLS);
    CHECK_STR_CONTAINS(err.msg, "MQ_USE_SSL_KEY");
    CHECK(!strstr(err.msg, SECRET_PHRASE));
    CHECK(!r.secret_seen);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_invalid_params);
    RUN(test_empty_series_needs_no_broker);
    RUN(test_broker_absent_gives_up);
    RUN(test_cancel_while_down);
    RUN(test_tls_bad_inline_ca_is_fatal_and_leaves_no_file);
    RUN(test_tls_key_without_cert);
    RUN(test_tls_unreadable_key_hides_passphrase);
    return check_summary();
}
