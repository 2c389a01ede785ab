/*
 * mq.c - one series of messages to RabbitMQ with windowed publisher confirms.
 *
 * The whole call is one single-threaded loop over a small state machine:
 *
 *   DOWN    no connection; wait for the reconnect time (backoff with jitter), then try
 *           once: TCP/TLS, login, channel, confirm.select.
 *   NOCHAN  connected but the broker closed our channel; reopen it (at once when we know
 *           why, after a backoff otherwise) on the next channel number.
 *   READY   publish while the window, the broker (connection.blocked) and the socket
 *           allow, and read acks, nacks, returns and closes.
 *
 * Every wait in it is a short slice (MQ_WAIT_SLICE_MS) and every slice ends in the service
 * hook check, so the caller's hook runs every MQ_SERVICE_INTERVAL_MS. While connected every
 * wait is spent inside amqp_simple_wait_frame_noblock(), the one place (with
 * amqp_basic_publish) where rabbitmq-c sends and checks heartbeats.
 *
 * Bookkeeping. Delivery tags start at 1 on every channel and grow by one per publish, so
 * the unconfirmed messages live in a ring indexed by tag (ring[head] has tag head_tag).
 * An entry leaves the ring when acked or nacked; a message that must go out again (nacked,
 * returned, or unconfirmed when the channel died) goes to the retry list with the time it
 * may be sent. "live" counts messages in the ring and the retry list together and never
 * exceeds the window, which also bounds the retry list.
 */
#include "mq.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifdef ODS_HAVE_RABBITMQ_C_DIR
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/ssl_socket.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#endif

#include "version.h"

/* Defaults (mq_params_defaults). */
#define MQ_DEFAULT_PORT 5672
#define MQ_DEFAULT_HEARTBEAT_S 10 /* pycti's value */
#define MQ_DEFAULT_WINDOW 256
#define MQ_DEFAULT_MAX_MESSAGE_SIZE ((size_t)16 * 1024 * 1024) /* RabbitMQ 4's default */
#define MQ_DEFAULT_CONNECT_TIMEOUT_MS 10000                    /* pika's socket timeout */
#define MQ_DEFAULT_GIVE_UP_MS (5 * 60 * 1000)
#define MQ_DEFAULT_BACKOFF_INITIAL_MS 500
#define MQ_DEFAULT_BACKOFF_MAX_MS 30000
#define MQ_DEFAULT_DRAIN_MS 5000

/* Hard limits on parameters. */
#define MQ_WINDOW_MAX 65536                             /* ring and retry list are preallocated */
#define MQ_MESSAGE_SIZE_MAX ((size_t)512 * 1024 * 1024) /* RabbitMQ's own ceiling */
#define MQ_HEARTBEAT_MAX_S 65535                        /* a 16-bit field in connection.tune */
#define MQ_FRAME_MAX 131072                             /* AMQP_DEFAULT_FRAME_SIZE */
#define MQ_CHANNEL_ID_MAX 65535

/* Loop timing. */
#define MQ_SERVICE_INTERVAL_MS 100 /* the hook's contract is "at least every 200 ms" */
#define MQ_WAIT_SLICE_MS 50        /* longest single wait anywhere in the loop */
#define MQ_WRITE_WAIT_MS 2         /* re-check a full socket this often */
#define MQ_SEND_BURST 64           /* publishes between two reads of the socket */
#define MQ_READ_BURST 1024         /* frames handled per read round */
#define MQ_CLOSE_TIMEOUT_MS 1000   /* channel.close and connection.close at the end */

/* Per-message retry bounds. */
#define MQ_MAX_RETURNS 5
#define MQ_MAX_NACKS 5
#define MQ_RETURN_BACKOFF_INITIAL_MS 250
#define MQ_RETURN_BACKOFF_MAX_MS 2000
#define MQ_NACK_BACKOFF_INITIAL_MS 200
#define MQ_NACK_BACKOFF_MAX_MS 5000

#define MQ_TEXT_MAX 256 /* broker reply texts we keep */
#define MQ_PEM_MARK "-----BEGIN"
#define MQ_TMP_DIR_DEFAULT "/tmp"
#define MQ_FNV_OFFSET 0xcbf29ce484222325ULL
#define MQ_FNV_PRIME 0x100000001b3ULL

/* rabbitmq-c 0.11 never loads OpenSSL's default verify paths, so "no CA given" means
 * loading the system bundle ourselves. Debian/Ubuntu, Fedora/RHEL, Alpine/macOS. */
static const char *const system_ca_bundles[] = {
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
};

/* connect_once() result besides 0 and a fatal negative E_* code. */
#define MQ_RETRY 1

enum conn_state { ST_DOWN, ST_NOCHAN, ST_READY };

struct slot {
    size_t idx;      /* message index */
    size_t len;      /* body length */
    uint64_t digest; /* FNV-1a of the body, to recognise it if returned */
    bool done;       /* acked or nacked; waits to be popped off the head */
    bool returned;   /* a basic.return matched it: its ack does not confirm it */
};

struct retry {
    size_t idx;
    int64_t not_before; /* monotonic ms */
};

struct msg_counts {
    uint8_t returns;
    uint8_t nacks;
};

struct pub {
    const struct mq_params *p;
    const struct mq_source *src;
    const struct mq_hooks *h;
    uint8_t *status;
    struct mq_stats st;
    struct err *err;

    amqp_connection_state_t conn;
    enum conn_state state;
    amqp_channel_t ch;
    bool blocked;
    bool ever_connected;
    int64_t reconnect_at; /* DOWN: next attempt; NOCHAN: next reopen */
    unsigned backoff_attempt;
    uint64_t rng;

    struct slot *ring;
    size_t ring_cap, ring_head, ring_len;
    uint64_t head_tag; /* tag of ring[ring_head] */
    uint64_t next_tag; /* tag the next publish gets */
    size_t in_flight;  /* ring entries not done */

    struct retry *retry;
    size_t nretry, retry_cap;
    size_t next_new; /* first index never published */
    size_t live;     /* in_flight + nretry, at most window */
    struct msg_counts *counts;

    size_t limit; /* effective max body size */
    struct buf body;

    struct { /* a basic.return being read: method, header, body frames */
        bool active, have_header;
        uint64_t size, got, digest;
        char why[MQ_TEXT_MAX];
    } ret;
    bool return_pause;   /* returns seen: stop sending until the window settles */
    bool unroutable_due; /* returned messages wait for the unroutable hook */

    int64_t last_progress; /* last confirm (or the start) */
    int64_t next_service;
    bool stopping;
    int64_t drain_deadline;

    char problem[ERR_MSG_MAX];       /* latest reason we could not make progress */
    char first_failure[ERR_MSG_MAX]; /* for E_MQ_PARTIAL */
};

/* --- small helpers ----------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    /* An interrupted sleep just ends the slice early: the loop re-checks everything. */
    (void)nanosleep(&ts, NULL);
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *s = data;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= MQ_FNV_PRIME;
    }
    return h;
}

static uint64_t rng_next(struct pub *P)
{
    /* xorshift64*: jitter only needs to decorrelate clients, not to be unpredictable. */
    P->rng ^= P->rng >> 12;
    P->rng ^= P->rng << 25;
    P->rng ^= P->rng >> 27;
    return P->rng * 0x2545F4914F6CDD1DULL;
}

/* Copies an AMQP short string into a C buffer. */
static void bytes_str(amqp_bytes_t b, char *out, size_t cap)
{
    if (!b.bytes || b.len == 0) {
        out[0] = '\0';
        return;
    }
    snprintf(out, cap, "%.*s", (int)(b.len > cap ? cap : b.len), (const char *)b.bytes);
}

/* snprintf for composed messages, where cutting a long text short is the intended
 * behaviour (going through a va_list keeps -Wformat-truncation quiet about it). */
static void textf(char *out, size_t cap, const char *fmt, ...) ODS_PRINTF(3, 4);
static void textf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, cap, fmt, ap);
    va_end(ap);
}

/* Replaces every occurrence of secret in s (capacity cap) by "***". */
static void scrub_one(char *s, size_t cap, const char *secret)
{
    if (!secret || !*secret)
        return;
    size_t sl = strlen(secret);
    char *q = s;
    while ((q = strstr(q, secret)) != NULL) {
        size_t tail = strlen(q + sl);
        if ((size_t)(q - s) + 3 + tail + 1 > cap) { /* no room to grow: mask in place */
            memset(q, '*', sl);
            q += sl;
            continue;
        }
        memmove(q + 3, q + sl, tail + 1);
        memcpy(q, "***", 3);
        q += 3;
    }
}

/* Secrets never leave this module: every text we hand out passes through here. */
static void scrub(const struct pub *P, char *s, size_t cap)
{
    scrub_one(s, cap, P->p->pass);
    scrub_one(s, cap, P->p->tls.passphrase);
}

static void emit(struct pub *P, enum mq_event ev, size_t i, const char *fmt, ...) ODS_PRINTF(4, 5);
static void emit(struct pub *P, enum mq_event ev, size_t i, const char *fmt, ...)
{
    if (!P->h || !P->h->event)
        return;
    char detail[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    scrub(P, detail, sizeof(detail));
    P->h->event(P->h->ctx, ev, i, detail);
}

static void set_problem(struct pub *P, const char *fmt, ...) ODS_PRINTF(2, 3);
static void set_problem(struct pub *P, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(P->problem, sizeof(P->problem), fmt, ap);
    va_end(ap);
    scrub(P, P->problem, sizeof(P->problem));
}

static int fail_call(struct pub *P, int code, const char *fmt, ...) ODS_PRINTF(3, 4);
static int fail_call(struct pub *P, int code, const char *fmt, ...)
{
    if (P->err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(P->err->msg, sizeof(P->err->msg), fmt, ap);
        va_end(ap);
        scrub(P, P->err->msg, sizeof(P->err->msg));
    }
    return code;
}

/* Message idx fails for good (it is no longer live). */
static void fail_msg(struct pub *P, size_t idx, const char *fmt, ...) ODS_PRINTF(3, 4);
static void fail_msg(struct pub *P, size_t idx, const char *fmt, ...)
{
    char why[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    scrub(P, why, sizeof(why));
    P->status[idx] = MQ_MSG_FAILED;
    P->st.failed++;
    if (!P->first_failure[0])
        textf(P->first_failure, sizeof(P->first_failure), "message %zu: %s", idx + 1, why);
    emit(P, MQ_EV_MSG_FAILED, idx, "%s", why);
}

/* Exponential backoff with "equal jitter": half the delay fixed, half random, so that
 * clients knocked off together do not come back together. */
static int64_t next_backoff(struct pub *P)
{
    int64_t d = P->p->backoff_initial_ms;
    for (unsigned k = 0; k < P->backoff_attempt && d < P->p->backoff_max_ms; k++)
        d *= 2;
    if (d > P->p->backoff_max_ms)
        d = P->p->backoff_max_ms;
    P->backoff_attempt++;
    int64_t half = d / 2;
    return half + (int64_t)(rng_next(P) % (uint64_t)(d - half + 1));
}

static int64_t retry_backoff(unsigned n, int64_t initial, int64_t max)
{
    int64_t d = initial;
    for (unsigned k = 1; k < n && d < max; k++)
        d *= 2;
    return d > max ? max : d;
}

/* --- ring and retry list -------------------------------------------------------------- */

static struct slot *slot_for_tag(struct pub *P, uint64_t tag)
{
    return &P->ring[(P->ring_head + (size_t)(tag - P->head_tag)) % P->ring_cap];
}

static void ring_pop_done(struct pub *P)
{
    while (P->ring_len > 0 && P->ring[P->ring_head].done) {
        P->ring_head = (P->ring_head + 1) % P->ring_cap;
        P->head_tag++;
        P->ring_len--;
    }
}

static void retry_add(struct pub *P, size_t idx, int64_t not_before)
{
    /* live <= window == retry_cap, so this cannot overflow; stay safe if it ever did. */
    if (P->nretry == P->retry_cap) {
        P->live--;
        fail_msg(P, idx, "internal error: the retry list is full");
        return;
    }
    P->retry[P->nretry].idx = idx;
    P->retry[P->nretry].not_before = not_before;
    P->nretry++;
}

/* Every message published on the channel that died and not settled goes back in line.
 * These republishes are not counted against the per-message bounds: the message did
 * nothing wrong, and give_up_ms bounds a broker that keeps dying. */
static void requeue_in_flight(struct pub *P)
{
    for (size_t k = 0; k < P->ring_len; k++) {
        struct slot *s = &P->ring[(P->ring_head + k) % P->ring_cap];
        if (s->done)
            continue;
        if (s->returned)
            P->unroutable_due = true; /* its ack never came, but the return did */
        retry_add(P, s->idx, 0);
    }
    P->ring_head = 0;
    P->ring_len = 0;
    P->in_flight = 0;
    P->head_tag = 1;
    P->next_tag = 1;
    P->ret.active = false;
}

/* --- the connection ------------------------------------------------------------------- */

static void destroy_conn(struct pub *P)
{
    if (P->conn) {
        (void)amqp_destroy_connection(P->conn); /* also closes the socket */
        P->conn = NULL;
    }
    P->state = ST_DOWN;
    P->blocked = false;
}

static void lose_connection(struct pub *P, const char *why)
{
    char text[ERR_MSG_MAX];
    textf(text, sizeof(text), "connection to %s:%d lost: %s", P->p->host, P->p->port, why);
    emit(P, MQ_EV_LOST, SIZE_MAX, "%s", text);
    set_problem(P, "%s", text);
    requeue_in_flight(P);
    destroy_conn(P);
    P->reconnect_at = now_ms() + next_backoff(P);
}

/* Describes a failed RPC reply; for a server close it also answers with close-ok, which
 * the protocol requires before the peer forgets the channel or connection. */
static void describe_reply(struct pub *P, amqp_rpc_reply_t r, amqp_channel_t ch, char *out,
                           size_t cap, int *ret_code)
{
    char text[MQ_TEXT_MAX];
    int code = 0;
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: textf(out, cap, "no error"); break;
    case AMQP_RESPONSE_NONE: textf(out, cap, "no reply from the broker"); break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        textf(out, cap, "%s", amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD && r.reply.decoded) {
            amqp_connection_close_t *c = r.reply.decoded;
            code = c->reply_code;
            bytes_str(c->reply_text, text, sizeof(text));
            textf(out, cap, "the broker closed the connection: %s", text);
            amqp_connection_close_ok_t ok = {0};
            (void)amqp_send_method(P->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD && r.reply.decoded) {
            amqp_channel_close_t *c = r.reply.decoded;
            code = c->reply_code;
            bytes_str(c->reply_text, text, sizeof(text));
            textf(out, cap, "the broker closed the channel: %s", text);
            amqp_channel_close_ok_t ok = {0};
            (void)amqp_send_method(P->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        } else {
            textf(out, cap, "unexpected broker method 0x%08x", (unsigned)r.reply.id);
        }
        break;
    }
    if (ret_code)
        *ret_code = code;
}

/* Writes inline PEM to a private temporary file: rabbitmq-c 0.11 loads CA and
 * certificates from paths only. The caller unlinks it right after loading. */
static int pem_to_file(struct pub *P, const char *pem, char *path, size_t cap)
{
    const char *dir =
        P->p->tls.tmp_dir && *P->p->tls.tmp_dir ? P->p->tls.tmp_dir : MQ_TMP_DIR_DEFAULT;
    int n = snprintf(path, cap, "%s/ods-mq-XXXXXX", dir);
    if (n < 0 || (size_t)n >= cap)
        return fail_call(P, E_INVAL, "the temporary directory path is too long");
    int fd = mkstemp(path); /* creates the file with mode 0600 */
    if (fd < 0)
        return fail_call(P, E_IO, "cannot create a temporary file in %s for inline PEM: %s", dir,
                         strerror(errno));
    int rc = 0;
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0)
        rc = E_IO;
    size_t len = strlen(pem), off = 0;
    while (rc == 0 && off < len) {
        ssize_t w = write(fd, pem + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = E_IO;
        else
            off += (size_t)w;
    }
    if (close(fd) != 0 && rc == 0)
        rc = E_IO;
    if (rc) {
        (void)unlink(path);
        return fail_call(P, rc, "cannot write inline PEM to a temporary file in %s", dir);
    }
    return 0;
}

static bool is_inline_pem(const char *v)
{
    while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
        v++;
    return strncmp(v, MQ_PEM_MARK, strlen(MQ_PEM_MARK)) == 0;
}

/* A file path or inline PEM as a path: *ret_temp tells whether to unlink it after use. */
static int pem_path(struct pub *P, const char *value, char *buf, size_t cap, const char **ret_path,
                    bool *ret_temp)
{
    if (!is_inline_pem(value)) {
        *ret_path = value;
        *ret_temp = false;
        return 0;
    }
    int rc = pem_to_file(P, value, buf, cap);
    if (rc)
        return rc;
    *ret_path = buf;
    *ret_temp = true;
    return 0;
}

static int setup_tls(struct pub *P, amqp_socket_t *sock)
{
    const struct mq_tls *t = &P->p->tls;
    char ca_buf[4096], cert_buf[4096], key_buf[4096];
    const char *ca = NULL, *cert = NULL, *key = NULL;
    bool ca_tmp = false, cert_tmp = false, key_tmp = false;
    int rc = 0;

    amqp_ssl_socket_set_verify_peer(sock, t->verify);
    amqp_ssl_socket_set_verify_hostname(sock, t->verify);
    if (amqp_ssl_socket_set_ssl_versions(sock, AMQP_TLSv1_2, AMQP_TLSvLATEST) != AMQP_STATUS_OK) {
        rc = fail_call(P, E_TLS, "this OpenSSL does not support TLS 1.2 or newer");
        goto out;
    }

    if (t->ca) {
        if ((rc = pem_path(P, t->ca, ca_buf, sizeof(ca_buf), &ca, &ca_tmp)))
            goto out;
    } else if (t->verify) {
        for (size_t k = 0; k < sizeof(system_ca_bundles) / sizeof(system_ca_bundles[0]); k++)
            if (access(system_ca_bundles[k], R_OK) == 0) {
                ca = system_ca_bundles[k];
                break;
            }
        if (!ca) {
            rc = fail_call(P, E_TLS,
                           "TLS verification is on but no CA bundle was given and "
                           "none was found on this system; set MQ_USE_SSL_CA");
            goto out;
        }
    }
    if (ca && amqp_ssl_socket_set_cacert(sock, ca) != AMQP_STATUS_OK) {
        rc = fail_call(P, E_TLS, "cannot load the CA certificates%s%s (MQ_USE_SSL_CA)",
                       ca_tmp ? "" : " from ", ca_tmp ? "" : ca);
        goto out;
    }

    if (!t->cert != !t->key) {
        rc = fail_call(P, E_INVAL,
                       "a TLS client certificate needs both MQ_USE_SSL_CERT and "
                       "MQ_USE_SSL_KEY");
        goto out;
    }
    if (t->cert) {
        /* The key goes through a file too: 0.11's amqp_ssl_socket_set_key_buffer reads RSA
         * keys only and ignores the passphrase, while the file loader takes any key type
         * and uses the passphrase set on the context. */
        if ((rc = pem_path(P, t->cert, cert_buf, sizeof(cert_buf), &cert, &cert_tmp)) ||
            (rc = pem_path(P, t->key, key_buf, sizeof(key_buf), &key, &key_tmp)))
            goto out;
        if (t->passphrase)
            amqp_ssl_socket_set_key_passwd(sock, t->passphrase);
        if (amqp_ssl_socket_set_key(sock, cert, key) != AMQP_STATUS_OK) {
            rc = fail_call(P, E_TLS,
                           "cannot load the TLS client certificate and key "
                           "(MQ_USE_SSL_CERT, MQ_USE_SSL_KEY): not PEM, not a "
                           "matching pair, or a wrong or missing "
                           "MQ_USE_SSL_PASSPHRASE");
            goto out;
        }
    }
out:
    /* The PEM is in the SSL context now (or loading failed): the file must not outlive
     * this function. */
    if (ca_tmp)
        (void)unlink(ca);
    if (cert_tmp)
        (void)unlink(cert);
    if (key_tmp)
        (void)unlink(key);
    return rc;
}

/* Client properties. rabbitmq-c 0.11's plain amqp_login() only advertises
 * authentication_failure_close; without connection.blocked the broker never tells us about
 * an alarm and we could not tell "blocked" from "slow". Entries we pass are merged over
 * the library's defaults (product, version, platform, ...). */
static amqp_rpc_reply_t login(struct pub *P)
{
    static const char *const caps_names[] = {"connection.blocked", "publisher_confirms",
                                             "basic.nack", "authentication_failure_close"};
    amqp_table_entry_t caps[sizeof(caps_names) / sizeof(caps_names[0])];
    for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        caps[k].key = amqp_cstring_bytes(caps_names[k]);
        caps[k].value.kind = AMQP_FIELD_KIND_BOOLEAN;
        caps[k].value.value.boolean = 1;
    }
    amqp_table_entry_t props[4];
    int n = 0;
    props[n].key = amqp_cstring_bytes("capabilities");
    props[n].value.kind = AMQP_FIELD_KIND_TABLE;
    props[n].value.value.table.num_entries = (int)(sizeof(caps) / sizeof(caps[0]));
    props[n].value.value.table.entries = caps;
    n++;
    props[n].key = amqp_cstring_bytes("product");
    props[n].value.kind = AMQP_FIELD_KIND_UTF8;
    props[n].value.value.bytes = amqp_cstring_bytes(ODS_NAME);
    n++;
    props[n].key = amqp_cstring_bytes("version");
    props[n].value.kind = AMQP_FIELD_KIND_UTF8;
    props[n].value.value.bytes = amqp_cstring_bytes(ODS_VERSION);
    n++;
    if (P->p->connection_name && *P->p->connection_name) {
        props[n].key = amqp_cstring_bytes("connection_name");
        props[n].value.kind = AMQP_FIELD_KIND_UTF8;
        props[n].value.value.bytes = amqp_cstring_bytes(P->p->connection_name);
        n++;
    }
    amqp_table_t table = {.num_entries = n, .entries = props};
    const char *vhost = P->p->vhost && *P->p->vhost ? P->p->vhost : "/";
    return amqp_login_with_properties(P->conn, vhost, 0, MQ_FRAME_MAX, P->p->heartbeat_s, &table,
                                      AMQP_SASL_METHOD_PLAIN, P->p->user, P->p->pass);
}

/* Opens the next channel and puts it in confirm mode. 0, or MQ_RETRY with the reason in
 * why (the connection is then unusable: the caller drops it). */
static int open_channel(struct pub *P, char *why, size_t cap)
{
    int chmax = amqp_get_channel_max(P->conn);
    if (chmax <= 0 || chmax > MQ_CHANNEL_ID_MAX)
        chmax = MQ_CHANNEL_ID_MAX;
    /* A fresh number each time: nothing late for the old channel can be mistaken for
     * the new one. */
    P->ch = (amqp_channel_t)(P->ch % (amqp_channel_t)chmax + 1);

    (void)amqp_channel_open(P->conn, P->ch);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(P->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        (void)amqp_confirm_select(P->conn, P->ch);
        r = amqp_get_rpc_reply(P->conn);
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char text[ERR_MSG_MAX];
        describe_reply(P, r, P->ch, text, sizeof(text), NULL);
        textf(why, cap, "cannot open a channel in confirm mode: %s", text);
        return MQ_RETRY;
    }
    P->next_tag = 1;
    P->head_tag = 1;
    P->state = ST_READY;
    return 0;
}

/* One connection attempt. Returns 0 (READY), MQ_RETRY (reported, backoff scheduled) or a
 * fatal negative code (err set). */
static int connect_once(struct pub *P)
{
    const struct mq_params *p = P->p;
    char why[ERR_MSG_MAX] = "the connection attempt failed";
    int rc = MQ_RETRY;
    int64_t budget = p->connect_timeout_ms;
    int64_t left = p->give_up_ms - (now_ms() - P->last_progress);
    if (left < budget)
        budget = left > 1 ? left : 1;
    struct timeval tv = {.tv_sec = (time_t)(budget / 1000),
                         .tv_usec = (suseconds_t)(budget % 1000) * 1000};

    P->conn = amqp_new_connection();
    if (!P->conn)
        return fail_call(P, E_NOMEM, "out of memory creating an AMQP connection");
    amqp_socket_t *sock =
        p->tls.enabled ? amqp_ssl_socket_new(P->conn) : amqp_tcp_socket_new(P->conn);
    if (!sock) {
        rc = fail_call(P, E_NOMEM, "out of memory creating the %s socket",
                       p->tls.enabled ? "TLS" : "TCP");
        goto out;
    }
    if (p->tls.enabled && (rc = setup_tls(P, sock)) != 0)
        goto out;
    rc = MQ_RETRY;

    /* Bounds every step of the handshake and every RPC (channel.open, confirm.select, the
     * closes): a broker that accepts and then says nothing cannot hold us. */
    (void)amqp_set_handshake_timeout(P->conn, &tv);
    (void)amqp_set_rpc_timeout(P->conn, &tv);

    int status = amqp_socket_open_noblock(sock, p->host, p->port, &tv);
    if (status != AMQP_STATUS_OK) {
        if (p->tls.enabled && p->tls.verify && status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED) {
            rc = fail_call(P, E_TLS,
                           "TLS certificate verify failed for %s:%d: the broker's certificate "
                           "is not signed by a trusted CA; set MQ_USE_SSL_CA to the CA that "
                           "signed it (or, at your own risk, MQ_USE_SSL_REJECT_UNAUTHORIZED="
                           "false)",
                           p->host, p->port);
            goto out;
        }
        if (p->tls.enabled && p->tls.verify && status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED) {
            /* rabbitmq-c 0.11 matches DNS names (subjectAltName, then CN) only, never an IP
             * address entry: connect by a name the certificate carries. */
            rc = fail_call(P, E_TLS,
                           "TLS host name verification failed for %s:%d: the broker's "
                           "certificate does not carry that DNS name (IP address entries are "
                           "not checked); use the host name in the certificate as MQ_HOST (or, "
                           "at your own risk, MQ_USE_SSL_REJECT_UNAUTHORIZED=false)",
                           p->host, p->port);
            goto out;
        }
        textf(why, sizeof(why), "%s %s:%d: %s", p->tls.enabled ? "TLS connect to" : "connect to",
              p->host, p->port, amqp_error_string2(status));
        goto out;
    }

    amqp_rpc_reply_t r = login(P);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        int code = 0;
        char text[ERR_MSG_MAX];
        describe_reply(P, r, 0, text, sizeof(text), &code);
        if (code == AMQP_ACCESS_REFUSED || code == AMQP_NOT_ALLOWED) {
            rc = fail_call(P, E_MQ_CONNECT,
                           "login to %s:%d refused (check MQ_USER, MQ_PASS and "
                           "MQ_VHOST): %s",
                           p->host, p->port, text);
            goto out;
        }
        /* With TLS 1.3 a broker that wants a client certificate accepts the handshake and
         * drops the session right after, so the failure only shows during login. */
        bool tls_drop = p->tls.enabled && r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                        (r.library_error == AMQP_STATUS_SSL_ERROR ||
                         r.library_error == AMQP_STATUS_CONNECTION_CLOSED);
        textf(why, sizeof(why), "login to %s:%d failed: %s%s", p->host, p->port, text,
              tls_drop && !p->tls.cert ? " (does the broker require a client certificate? "
                                         "MQ_USE_SSL_CERT, MQ_USE_SSL_KEY)"
                                       : "");
        goto out;
    }

    P->ch = 0;
    P->state = ST_NOCHAN;
    if (open_channel(P, why, sizeof(why)) != 0)
        goto out;
    rc = 0;
    if (P->ever_connected)
        P->st.reconnects++;
    P->ever_connected = true;
    emit(P, MQ_EV_CONNECTED, SIZE_MAX, "%s:%d vhost %s, heartbeat %ds, TLS %s", p->host, p->port,
         p->vhost && *p->vhost ? p->vhost : "/", amqp_get_heartbeat(P->conn),
         p->tls.enabled ? (p->tls.verify ? "on" : "on (not verified)") : "off");
out:
    if (rc != 0)
        destroy_conn(P);
    if (rc == MQ_RETRY) { /* worth another try: say why, and when */
        emit(P, MQ_EV_CONNECT_FAILED, SIZE_MAX, "%s", why);
        set_problem(P, "%s", why);
        P->reconnect_at = now_ms() + next_backoff(P);
    }
    return rc;
}

/* Graceful shutdown: channel first, then connection, each bounded by MQ_CLOSE_TIMEOUT_MS,
 * then the socket. A blocked connection is not read by the broker, so a close would only
 * time out: drop it instead (the broker sees the TCP close). */
static void close_conn(struct pub *P)
{
    if (!P->conn)
        return;
    if (!P->blocked) {
        struct timeval tv = {.tv_sec = MQ_CLOSE_TIMEOUT_MS / 1000,
                             .tv_usec = (MQ_CLOSE_TIMEOUT_MS % 1000) * 1000};
        (void)amqp_set_rpc_timeout(P->conn, &tv);
        bool ok = true;
        if (P->state == ST_READY)
            ok = amqp_channel_close(P->conn, P->ch, AMQP_REPLY_SUCCESS).reply_type ==
                 AMQP_RESPONSE_NORMAL;
        if (ok)
            (void)amqp_connection_close(P->conn, AMQP_REPLY_SUCCESS);
    }
    destroy_conn(P);
}

/* --- incoming frames ---------------------------------------------------------------------- */

static void settle_ack(struct pub *P, struct slot *s, int64_t now)
{
    s->done = true;
    P->in_flight--;
    if (s->returned) {
        /* The broker acks a returned message right after the return: that ack only
         * means "done with it", not "delivered". */
        if (P->counts[s->idx].returns >= MQ_MAX_RETURNS) {
            P->live--;
            fail_msg(P, s->idx,
                     "returned as unroutable %d times (no queue bound to exchange "
                     "'%s' with routing key '%s')",
                     MQ_MAX_RETURNS, P->p->exchange, P->p->routing_key);
        } else {
            unsigned n = P->counts[s->idx].returns ? P->counts[s->idx].returns : 1;
            retry_add(P, s->idx,
                      now +
                          retry_backoff(n, MQ_RETURN_BACKOFF_INITIAL_MS, MQ_RETURN_BACKOFF_MAX_MS));
            P->unroutable_due = true;
        }
        return;
    }
    P->status[s->idx] = MQ_MSG_CONFIRMED;
    P->st.confirmed++;
    P->st.bytes_confirmed += s->len;
    P->live--;
    P->last_progress = now;
    P->backoff_attempt = 0; /* the broker works again: the next loss starts from scratch */
}

static void settle_nack(struct pub *P, struct slot *s, int64_t now)
{
    s->done = true;
    P->in_flight--;
    struct msg_counts *c = &P->counts[s->idx];
    if (c->nacks < UINT8_MAX)
        c->nacks++;
    P->st.nacked++;
    set_problem(P, "the broker refuses messages (basic.nack)");
    emit(P, MQ_EV_NACKED, s->idx, "nacked by the broker (%u of %d attempts)", c->nacks,
         MQ_MAX_NACKS);
    if (c->nacks >= MQ_MAX_NACKS) {
        P->live--;
        fail_msg(P, s->idx, "nacked by the broker %d times", MQ_MAX_NACKS);
        return;
    }
    retry_add(P, s->idx,
              now + retry_backoff(c->nacks, MQ_NACK_BACKOFF_INITIAL_MS, MQ_NACK_BACKOFF_MAX_MS));
}

static void on_confirm(struct pub *P, uint64_t tag, bool multiple, bool ack)
{
    int64_t now = now_ms();
    uint64_t last = P->head_tag + P->ring_len; /* one past the newest tag in the ring */
    if (multiple && tag == 0)
        tag = last - 1; /* "everything so far" */
    if (tag < P->head_tag || tag >= last)
        return; /* already settled, or not ours: nothing to do */
    uint64_t first = multiple ? P->head_tag : tag;
    for (uint64_t t = first; t <= tag; t++) {
        struct slot *s = slot_for_tag(P, t);
        if (s->done)
            continue;
        if (ack)
            settle_ack(P, s, now);
        else
            settle_nack(P, s, now);
    }
    ring_pop_done(P);
}

/* A complete returned message has been read: find which one it was. */
static void finish_return(struct pub *P)
{
    P->ret.active = false;
    P->st.returned++;
    P->return_pause = true;
    for (size_t k = 0; k < P->ring_len; k++) {
        struct slot *s = &P->ring[(P->ring_head + k) % P->ring_cap];
        if (s->done || s->returned || s->len != P->ret.size || s->digest != P->ret.digest)
            continue;
        s->returned = true;
        if (P->counts[s->idx].returns < UINT8_MAX)
            P->counts[s->idx].returns++;
        set_problem(P,
                    "messages come back unroutable (%s): no queue is bound to the routing "
                    "key",
                    P->ret.why);
        emit(P, MQ_EV_RETURNED, s->idx, "returned by the broker: %s (%u of %d)", P->ret.why,
             P->counts[s->idx].returns, MQ_MAX_RETURNS);
        return;
    }
    /* Fail safe: we cannot tell which message it was, so none of the unconfirmed ones may
     * be counted on its ack. They go out again; none is charged a return. */
    size_t n = 0;
    for (size_t k = 0; k < P->ring_len; k++) {
        struct slot *s = &P->ring[(P->ring_head + k) % P->ring_cap];
        if (!s->done && !s->returned) {
            s->returned = true;
            n++;
        }
    }
    emit(P, MQ_EV_RETURNED, SIZE_MAX,
         "a message came back unroutable (%s) but matches none in flight; republishing all "
         "%zu unconfirmed",
         P->ret.why, n);
}

static void on_channel_close(struct pub *P, amqp_channel_close_t *c)
{
    char text[MQ_TEXT_MAX];
    bytes_str(c->reply_text, text, sizeof(text));
    amqp_channel_close_ok_t ok = {0};
    (void)amqp_send_method(P->conn, P->ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);

    /* RabbitMQ refuses a body above its max_message_size by closing the channel with
     * PRECONDITION_FAILED "message size N is larger than configured max size M". Learn M,
     * so that the offender (and any other body above M) fails alone on republish instead
     * of closing channel after channel. */
    bool learned = false;
    if (c->reply_code == AMQP_PRECONDITION_FAILED) {
        const char *m = strstr(text, "max size ");
        const char *n = strstr(text, "message size ");
        unsigned long long v = 0;
        char *end = NULL;
        if (m) {
            v = strtoull(m + strlen("max size "), &end, 10);
        } else if (n) { /* no limit in the text: at least this size is refused */
            v = strtoull(n + strlen("message size "), &end, 10);
            v = v ? v - 1 : 0;
        }
        if (end && v > 0 && v < P->limit) {
            P->limit = (size_t)v;
            P->st.learned_max_message_size = (size_t)v;
            learned = true;
            emit(P, MQ_EV_LIMIT_LEARNED, SIZE_MAX, "%zu bytes", P->limit);
        }
    }
    emit(P, MQ_EV_LOST, SIZE_MAX, "the broker closed channel %u: %u %s", P->ch, c->reply_code,
         text);
    set_problem(P, "the broker closed the channel: %u %s", c->reply_code, text);
    requeue_in_flight(P);
    P->state = ST_NOCHAN;
    /* A learned limit fixes the cause, so reopen at once; anything else (say, the exchange
     * is missing) would close the next channel too: back off. */
    P->reconnect_at = now_ms() + (learned ? 0 : next_backoff(P));
}

static void on_method(struct pub *P, amqp_frame_t *f)
{
    amqp_method_t *m = &f->payload.method;
    char text[MQ_TEXT_MAX];

    if (f->channel == 0) {
        switch (m->id) {
        case AMQP_CONNECTION_CLOSE_METHOD: {
            amqp_connection_close_t *c = m->decoded;
            char why[ERR_MSG_MAX];
            bytes_str(c->reply_text, text, sizeof(text));
            textf(why, sizeof(why), "the broker closed the connection: %u %s", c->reply_code, text);
            amqp_connection_close_ok_t ok = {0};
            (void)amqp_send_method(P->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            lose_connection(P, why);
            return;
        }
        case AMQP_CONNECTION_BLOCKED_METHOD: {
            amqp_connection_blocked_t *b = m->decoded;
            bytes_str(b->reason, text, sizeof(text));
            P->blocked = true;
            set_problem(P, "the broker blocked publishing: %s", text);
            emit(P, MQ_EV_BLOCKED, SIZE_MAX, "%s", text);
            return;
        }
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            P->blocked = false;
            P->problem[0] = '\0'; /* a later give-up must not blame the lifted alarm */
            emit(P, MQ_EV_UNBLOCKED, SIZE_MAX, "publishing resumes");
            return;
        default: return;
        }
    }
    if (f->channel != P->ch || P->state != ST_READY)
        return; /* late frames of a channel we gave up */

    if (P->ret.active && m->id != AMQP_BASIC_RETURN_METHOD) {
        /* A return cut short (cannot happen on a sane connection): fail safe. */
        P->ret.digest = 0;
        P->ret.size = UINT64_MAX;
        finish_return(P);
    }
    switch (m->id) {
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = m->decoded;
        on_confirm(P, a->delivery_tag, a->multiple, true);
        break;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *n = m->decoded;
        on_confirm(P, n->delivery_tag, n->multiple, false);
        break;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_basic_return_t *r = m->decoded;
        if (P->ret.active) { /* previous return never got its body: fail safe */
            P->ret.size = UINT64_MAX;
            finish_return(P);
        }
        bytes_str(r->reply_text, text, sizeof(text));
        textf(P->ret.why, sizeof(P->ret.why), "%u %s", r->reply_code, text);
        P->ret.active = true;
        P->ret.have_header = false;
        P->ret.size = 0;
        P->ret.got = 0;
        P->ret.digest = MQ_FNV_OFFSET;
        break;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: on_channel_close(P, m->decoded); break;
    default: break;
    }
}

static void on_frame(struct pub *P, amqp_frame_t *f)
{
    switch (f->frame_type) {
    case AMQP_FRAME_METHOD: on_method(P, f); return;
    case AMQP_FRAME_HEADER:
        if (!P->ret.active || P->ret.have_header || f->channel != P->ch)
            return;
        P->ret.have_header = true;
        P->ret.size = f->payload.properties.body_size;
        if (P->ret.size == 0)
            finish_return(P);
        return;
    case AMQP_FRAME_BODY:
        if (!P->ret.active || !P->ret.have_header || f->channel != P->ch)
            return;
        P->ret.digest =
            fnv1a(P->ret.digest, f->payload.body_fragment.bytes, f->payload.body_fragment.len);
        P->ret.got += f->payload.body_fragment.len;
        if (P->ret.got >= P->ret.size)
            finish_return(P);
        return;
    default: return;
    }
}

/* Reads and handles frames: the first read waits up to wait_ms, the rest only take what
 * has arrived. Timeouts are never zero: with a zero timeval rabbitmq-c skips its check for
 * a missed broker heartbeat, one microsecond keeps it. */
static void pump(struct pub *P, int64_t wait_ms)
{
    for (int n = 0; n < MQ_READ_BURST && P->conn; n++) {
        struct timeval tv = {.tv_sec = 0, .tv_usec = 1};
        if (n == 0 && wait_ms > 0) {
            tv.tv_sec = (time_t)(wait_ms / 1000);
            tv.tv_usec = (suseconds_t)(wait_ms % 1000) * 1000;
        }
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(P->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            return;
        if (rc != AMQP_STATUS_OK) {
            lose_connection(P, amqp_error_string2(rc));
            return;
        }
        on_frame(P, &f);
        /* Decoded frames live in per-channel pools until released; what we keep has been
         * copied out, so give the memory back now (the library keeps pools that still
         * hold queued frames). */
        if (P->conn)
            amqp_maybe_release_buffers(P->conn);
    }
}

/* --- sending -------------------------------------------------------------------------------- */

static bool socket_writable(struct pub *P)
{
    struct pollfd pfd = {.fd = amqp_get_sockfd(P->conn), .events = POLLOUT};
    if (pfd.fd < 0)
        return true; /* let the publish report the dead socket */
    return poll(&pfd, 1, 0) != 0;
}

/* Picks the next message: a due retry (lowest index first, to keep the order), else a new
 * one if the window has room. Returns false when nothing may go now. */
static bool pick_next(struct pub *P, int64_t now, size_t *ret_idx, bool *ret_retry)
{
    size_t best = SIZE_MAX;
    for (size_t k = 0; k < P->nretry; k++)
        if (P->retry[k].not_before <= now &&
            (best == SIZE_MAX || P->retry[k].idx < P->retry[best].idx))
            best = k;
    if (best != SIZE_MAX) {
        *ret_idx = P->retry[best].idx;
        *ret_retry = true;
        P->retry[best] = P->retry[--P->nretry];
        return true;
    }
    if (P->next_new < P->src->count && P->live < P->p->window) {
        *ret_idx = P->next_new++;
        *ret_retry = false;
        P->live++;
        return true;
    }
    return false;
}

/* Renders and publishes one message. Returns false if the connection was lost. */
static bool publish_one(struct pub *P, size_t idx, bool is_retry)
{
    struct err rerr = {{0}};
    buf_reset(&P->body);
    int rc = P->src->render(P->src->ctx, idx, &P->body, &rerr);
    if (rc == E_TOO_BIG && !rerr.msg[0]) { /* the body outgrew the buffer itself */
        P->live--;
        fail_msg(P, idx, "message of more than %zu bytes exceeds the limit of %zu bytes",
                 P->body.max, P->limit);
        return true;
    }
    if (rc) {
        P->live--;
        fail_msg(P, idx, "cannot render the message: %s", rerr.msg[0] ? rerr.msg : err_str(rc));
        return true;
    }
    if (P->body.len > P->limit) {
        P->live--;
        fail_msg(P, idx, "message of %zu bytes exceeds the limit of %zu bytes", P->body.len,
                 P->limit);
        return true;
    }

    /* From here on the broker may have it, whatever happens next. */
    if (P->status[idx] == MQ_MSG_PENDING)
        P->status[idx] = MQ_MSG_SENT;
    /* Into the ring first: if the publish fails, the loss handler finds it there. */
    struct slot *s = &P->ring[(P->ring_head + P->ring_len) % P->ring_cap];
    s->idx = idx;
    s->len = P->body.len;
    s->digest = fnv1a(MQ_FNV_OFFSET, P->body.data, P->body.len);
    s->done = false;
    s->returned = false;
    P->ring_len++;
    P->in_flight++;
    P->next_tag++;

    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG;
    props.delivery_mode = 2; /* persistent */
    props.content_encoding = amqp_cstring_bytes("utf-8");
    amqp_bytes_t body = {.len = P->body.len, .bytes = P->body.data ? P->body.data : ""};
    int st = amqp_basic_publish(P->conn, P->ch, amqp_cstring_bytes(P->p->exchange),
                                amqp_cstring_bytes(P->p->routing_key), 1, 0, &props, body);
    if (st != AMQP_STATUS_OK) {
        char why[ERR_MSG_MAX];
        textf(why, sizeof(why), "publish failed: %s", amqp_error_string2(st));
        lose_connection(P, why);
        return false;
    }
    P->st.published++;
    if (is_retry)
        P->st.republished++;
    return true;
}

/* --- the loop --------------------------------------------------------------------------------- */

static void service(struct pub *P, int64_t now)
{
    if (now < P->next_service)
        return;
    P->next_service = now + MQ_SERVICE_INTERVAL_MS;
    if (!P->h || !P->h->service)
        return;
    /* Called even while stopping: the caller may still need to ping or feed a watchdog
     * while we drain. */
    if (P->h->service(P->h->ctx) < 0 && !P->stopping) {
        P->stopping = true;
        P->drain_deadline = now_ms() + P->p->drain_ms;
    }
}

/* Earliest retry time, or INT64_MAX. */
static int64_t next_retry_due(const struct pub *P)
{
    int64_t t = INT64_MAX;
    for (size_t k = 0; k < P->nretry; k++)
        if (P->retry[k].not_before < t)
            t = P->retry[k].not_before;
    return t;
}

/* One READY round: publish what may go, then read. */
static void ready_round(struct pub *P)
{
    int64_t now = now_ms();
    bool write_blocked = false;

    /* Returns come in bursts (a deleted queue returns everything after it). Let the window
     * settle first, then ask the caller once to have the queues re-declared, then
     * republish: one hook call per burst, not one per message. */
    if (P->in_flight == 0 && (P->return_pause || P->unroutable_due)) {
        bool call = P->unroutable_due;
        P->return_pause = false;
        P->unroutable_due = false;
        if (call && !P->stopping && P->h && P->h->unroutable)
            P->h->unroutable(P->h->ctx);
        now = now_ms();
    }

    int sent = 0;
    while (!P->stopping && !P->blocked && !P->return_pause && sent < MQ_SEND_BURST &&
           P->ring_len < P->ring_cap) {
        size_t idx;
        bool is_retry;
        if (!socket_writable(P)) {
            write_blocked = true;
            break;
        }
        if (!pick_next(P, now, &idx, &is_retry))
            break;
        if (!publish_one(P, idx, is_retry))
            return; /* connection lost */
        sent++;
        now = now_ms();
        service(P, now);
    }

    int64_t wait = 0;
    if (sent == 0) {
        /* Nothing went out: sleep in the library (heartbeats) until something can. */
        wait = write_blocked ? MQ_WRITE_WAIT_MS : MQ_WAIT_SLICE_MS;
        wait = min64(wait, P->next_service - now);
        int64_t due = next_retry_due(P);
        if (due != INT64_MAX)
            wait = min64(wait, due - now);
        if (P->stopping)
            wait = min64(wait, P->drain_deadline - now);
        if (wait < 0)
            wait = 0;
    }
    pump(P, wait);
}

static int check_params(const struct mq_params *p, const struct mq_source *src,
                        const uint8_t *status, struct err *err)
{
    if (!p || !src || !src->render || (src->count && !status))
        return err_set(err, E_INVAL, "mq_publish: missing parameters, source or status array");
    if (!p->host || !*p->host || p->port <= 0 || p->port > 65535)
        return err_set(err, E_INVAL, "the message broker host or port is not set or invalid");
    if (!p->user || !p->pass)
        return err_set(err, E_INVAL, "the message broker user or password is not set");
    if (!p->exchange || !p->routing_key)
        return err_set(err, E_INVAL, "the exchange or routing key to publish to is not set");
    if (p->window < 1 || p->window > MQ_WINDOW_MAX)
        return err_set(err, E_INVAL, "the publish window must be between 1 and %d", MQ_WINDOW_MAX);
    if (p->max_message_size < 1 || p->max_message_size > MQ_MESSAGE_SIZE_MAX)
        return err_set(err, E_INVAL, "the maximum message size must be between 1 and %zu bytes",
                       MQ_MESSAGE_SIZE_MAX);
    if (p->heartbeat_s < 0 || p->heartbeat_s > MQ_HEARTBEAT_MAX_S)
        return err_set(err, E_INVAL, "the heartbeat must be between 0 and %d seconds",
                       MQ_HEARTBEAT_MAX_S);
    if (p->connect_timeout_ms <= 0 || p->give_up_ms <= 0 || p->backoff_initial_ms <= 0 ||
        p->backoff_max_ms < p->backoff_initial_ms || p->drain_ms < 0)
        return err_set(err, E_INVAL, "the message broker timeouts or backoff are invalid");
    for (size_t i = 0; i < src->count; i++)
        if (status[i] != MQ_MSG_PENDING)
            return err_set(err, E_INVAL, "mq_publish: status[%zu] is not MQ_MSG_PENDING", i);
    return 0;
}

void mq_params_defaults(struct mq_params *p)
{
    memset(p, 0, sizeof(*p));
    p->port = MQ_DEFAULT_PORT;
    p->tls.verify = true;
    p->heartbeat_s = MQ_DEFAULT_HEARTBEAT_S;
    p->window = MQ_DEFAULT_WINDOW;
    p->max_message_size = MQ_DEFAULT_MAX_MESSAGE_SIZE;
    p->connect_timeout_ms = MQ_DEFAULT_CONNECT_TIMEOUT_MS;
    p->give_up_ms = MQ_DEFAULT_GIVE_UP_MS;
    p->backoff_initial_ms = MQ_DEFAULT_BACKOFF_INITIAL_MS;
    p->backoff_max_ms = MQ_DEFAULT_BACKOFF_MAX_MS;
    p->drain_ms = MQ_DEFAULT_DRAIN_MS;
}

int mq_publish(const struct mq_params *p, const struct mq_source *src, const struct mq_hooks *hooks,
               uint8_t *status, struct mq_stats *ret_stats, struct err *err)
{
    struct pub P = {.p = p, .src = src, .h = hooks, .status = status, .err = err};
    int rc = check_params(p, src, status, err);
    if (rc)
        goto out;

    P.ring_cap = p->window * 2; /* acks may come out of order: room for settled entries */
    P.retry_cap = p->window;
    P.ring = calloc(P.ring_cap, sizeof(*P.ring));
    P.retry = calloc(P.retry_cap, sizeof(*P.retry));
    P.counts = calloc(src->count ? src->count : 1, sizeof(*P.counts));
    if (!P.ring || !P.retry || !P.counts) {
        rc = fail_call(&P, E_NOMEM, "out of memory for the publish window");
        goto out;
    }
    /* The body buffer may hold more than the limit, so that a message over it is rendered
     * whole and reported with its size; RabbitMQ's own ceiling still bounds it. */
    buf_init(&P.body, MQ_MESSAGE_SIZE_MAX);
    P.limit = p->max_message_size;
    P.head_tag = P.next_tag = 1;
    P.state = ST_DOWN;
    int64_t start = now_ms();
    P.last_progress = start;
    P.next_service = start;
    P.reconnect_at = start; /* the first attempt is immediate */
    P.rng = (uint64_t)start * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid() ^ (uintptr_t)&P;
    if (!P.rng)
        P.rng = 1;

    for (;;) {
        int64_t now = now_ms();
        service(&P, now);
        if (P.st.confirmed + P.st.failed == src->count) {
            rc = P.st.failed ? fail_call(&P, E_MQ_PARTIAL, "%zu of %zu messages failed; first: %s",
                                         P.st.failed, src->count, P.first_failure)
                             : 0;
            break;
        }
        if (P.stopping) {
            /* Nothing unconfirmed is counted: we only wait for acks that are on their way,
             * and only while a channel exists to carry them. */
            if (P.state != ST_READY || P.in_flight == 0 || now >= P.drain_deadline) {
                rc = fail_call(&P, E_CANCELED,
                               "publishing stopped on request with %zu of %zu "
                               "messages confirmed",
                               P.st.confirmed, src->count);
                break;
            }
        } else if (now - P.last_progress >= p->give_up_ms) {
            rc = fail_call(&P, E_MQ_GIVE_UP,
                           "no message was confirmed for %" PRId64 " ms (%zu of %zu confirmed): %s",
                           now - P.last_progress, P.st.confirmed, src->count,
                           P.problem[0] ? P.problem : "no progress");
            break;
        }

        switch (P.state) {
        case ST_DOWN:
            if (now >= P.reconnect_at && !P.stopping) {
                rc = connect_once(&P);
                if (rc < 0)
                    goto out;
                rc = 0;
            } else {
                int64_t wait = min64(P.reconnect_at - now, P.next_service - now);
                sleep_ms(min64(wait, MQ_WAIT_SLICE_MS));
            }
            break;
        case ST_NOCHAN:
            if (now >= P.reconnect_at && !P.stopping) {
                char why[ERR_MSG_MAX];
                if (open_channel(&P, why, sizeof(why)) != 0)
                    lose_connection(&P, why);
            } else
                pump(&P,
                     min64(MQ_WAIT_SLICE_MS, min64(P.reconnect_at - now, P.next_service - now)));
            break;
        case ST_READY: ready_round(&P); break;
        }
    }
    close_conn(&P);

out:
    destroy_conn(&P);
    if (ret_stats) {
        *ret_stats = P.st;
        size_t count = src ? src->count : 0;
        ret_stats->pending =
            count >= P.st.confirmed + P.st.failed ? count - P.st.confirmed - P.st.failed : 0;
    }
    buf_release(&P.body);
    free(P.ring);
    free(P.retry);
    free(P.counts);
    return rc;
}
