/*
 * mq.h - publishing a series of messages to RabbitMQ with publisher confirms.
 *
 * One mq_publish() call publishes one series (one dataset): it opens its own connection
 * (AMQP 0-9-1, SASL PLAIN, optional TLS), a channel in confirm mode, keeps up to
 * `window` messages unconfirmed, and closes the connection when every message has an
 * outcome. Between calls no connection exists, so nothing needs servicing while idle.
 *
 * Delivery rule: a message counts as sent only when the broker's basic.ack for it was
 * read. Messages are published with mandatory set; a basic.return (no queue bound) or a
 * basic.nack puts the message back in line. When the connection or channel is lost, every
 * message published but not yet confirmed is published again after reconnecting
 * (at-least-once: the platform upserts by STIX id, so a duplicate is harmless, a loss is
 * not). Nothing is ever declared: the platform owns the topology.
 */
#ifndef ODS_MQ_H
#define ODS_MQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

struct mq_tls {
    bool enabled;
    bool verify;            /* verify the broker's certificate chain and host name */
    const char *ca;         /* CA bundle: a file path or inline PEM; NULL: the system store */
    const char *cert;       /* client certificate: path or inline PEM; NULL: none */
    const char *key;        /* client private key: path or inline PEM; NULL: none */
    const char *passphrase; /* passphrase of an encrypted key; NULL: none */
};

struct mq_params {
    const char *host;
    int port;
    const char *vhost;
    const char *user;
    const char *pass;
    struct mq_tls tls;
    const char *exchange;    /* push_exchange from registration */
    const char *routing_key; /* push_routing from registration */
    const char *connection_name; /* shown by the broker's management UI; may be NULL */
    int heartbeat_s;             /* requested heartbeat in seconds; 0 disables */
    size_t window;               /* unconfirmed messages in flight (>= 1) */
    size_t max_message_size;     /* a larger body is not sent: that message fails */
    int64_t connect_timeout_ms;  /* TCP connect + TLS handshake + login */
    int64_t give_up_ms;          /* no progress (no new confirm) for this long: give up */
    int64_t backoff_initial_ms;  /* first reconnect delay; doubles, with jitter */
    int64_t backoff_max_ms;      /* reconnect delay ceiling */
    int64_t drain_ms;            /* on cancel: how long to wait for outstanding confirms */
};

/* Fills p with the defaults (window 256, heartbeat 10 s, 16 MiB, ...); strings NULL. */
void mq_params_defaults(struct mq_params *p);

/* A message's outcome, one byte per message in the caller's status array. */
enum mq_msg_status {
    MQ_MSG_PENDING = 0,   /* not confirmed (not sent, or in flight when we stopped) */
    MQ_MSG_CONFIRMED = 1, /* the broker acknowledged it */
    MQ_MSG_FAILED = 2,    /* given up for this message alone (too large, render error,
                             returned or nacked too many times) */
};

struct mq_source {
    size_t count;
    /* Appends message i's body to `out` (which the publisher empties first). Called again
     * when a message must be republished, so it must give the same bytes every time.
     * A non-zero return marks message i failed (not retried), with detail in err. */
    int (*render)(void *ctx, size_t i, struct buf *out, struct err *err);
    void *ctx;
};

enum mq_event {
    MQ_EV_CONNECTED,      /* detail: "host:port vhost, heartbeat Ns, TLS on/off" */
    MQ_EV_CONNECT_FAILED, /* detail: why; a retry follows after a backoff */
    MQ_EV_LOST,           /* connection or channel lost; detail: why */
    MQ_EV_BLOCKED,        /* connection.blocked: publishing paused; detail: broker reason */
    MQ_EV_UNBLOCKED,      /* connection.unblocked: publishing resumes */
    MQ_EV_RETURNED,       /* message i came back unroutable */
    MQ_EV_NACKED,         /* message i was nacked */
    MQ_EV_MSG_FAILED,     /* message i failed for good; detail: why */
    MQ_EV_LIMIT_LEARNED,  /* the broker's max message size was learned; detail: the size */
};

struct mq_hooks {
    /* Called at least every 200 ms while connecting, publishing, waiting for confirms,
     * backing off or blocked (the caller pings the platform, feeds a watchdog, checks for
     * a stop request). 0: go on. Negative: stop; the publisher stops sending, waits up
     * to drain_ms for outstanding confirms, closes, and returns E_CANCELED. May be NULL. */
    int (*service)(void *ctx);
    /* Called once after messages came back unroutable, before they are republished: the
     * caller pings the platform, which re-declares the queues. May be NULL. */
    void (*unroutable)(void *ctx);
    /* Reports what happened, for logging. i is the message index for per-message events,
     * SIZE_MAX otherwise. May be NULL. */
    void (*event)(void *ctx, enum mq_event ev, size_t i, const char *detail);
    void *ctx;
};

struct mq_stats {
    size_t confirmed;  /* messages acknowledged (each counted once) */
    size_t failed;     /* messages given up individually */
    size_t pending;    /* messages without outcome: confirmed + failed + pending = count */
    size_t published;  /* basic.publish calls, republishes included */
    size_t republished;
    size_t returned;
    size_t nacked;
    size_t reconnects;
    uint64_t bytes_confirmed; /* body bytes of confirmed messages */
};

/*
 * Publishes every message of src to p->exchange with p->routing_key, delivery mode 2
 * (persistent), content encoding "utf-8", mandatory. status must have src->count entries,
 * all MQ_MSG_PENDING; it is updated as outcomes arrive (borrowed, caller-owned).
 *
 * Returns 0 when every message was confirmed; E_MQ_PARTIAL when the others were
 * confirmed but some failed individually; E_MQ_GIVE_UP when no message was confirmed for
 * give_up_ms (connect failures, a lost broker, a long alarm), leaving the rest pending;
 * E_CANCELED when the service hook asked to stop; E_INVAL for bad parameters. err gets one
 * sentence saying what went wrong. ret_stats (may be NULL) is filled in every case.
 */
int mq_publish(const struct mq_params *p, const struct mq_source *src,
               const struct mq_hooks *hooks, uint8_t *status, struct mq_stats *ret_stats,
               struct err *err);

#endif
