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
 *
 * Returned messages: a basic.return carries the body but no delivery tag, so the publisher
 * recognises the message by its body (length plus a 64-bit FNV-1a digest) among the
 * messages still unconfirmed. No body format is assumed; byte-identical bodies are
 * interchangeable. Should a returned body match nothing (it cannot, with a RabbitMQ that
 * keeps its ordering promise), every unconfirmed message is treated as returned and
 * published again, so nothing is ever counted as sent on an ack that followed a return.
 *
 * Heartbeats: rabbitmq-c has no thread of its own and services heartbeats only inside its
 * calls, so the publisher never blocks longer than a short slice outside the library and
 * keeps reading frames while it waits (window full, blocked broker, draining). One
 * connection attempt (DNS, TCP connect, TLS handshake, login, channel and confirm.select)
 * is a single blocking step bounded by connect_timeout_ms; the service hook is not called
 * inside it, so keep that timeout short. So is the orderly close at the end (channel, then
 * connection), bounded by one second each.
 */
#ifndef ODS_MQ_H
#define ODS_MQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* TLS 1.2 or newer. With verify, rabbitmq-c 0.11 checks the host name against the DNS
 * names of the certificate only (subjectAltName DNS entries, then the CN), never an IP
 * address entry: use a host name the certificate carries. Without ca the system bundle is
 * loaded (rabbitmq-c itself loads none). */
struct mq_tls {
    bool enabled;
    bool verify;            /* verify the broker's certificate chain and host name */
    const char *ca;         /* CA bundle: a file path or inline PEM; NULL: the system store */
    const char *cert;       /* client certificate: path or inline PEM; NULL: none */
    const char *key;        /* client private key: path or inline PEM; NULL: none */
    const char *passphrase; /* passphrase of an encrypted key; NULL: none */
    const char *tmp_dir;    /* where inline PEM is written for loading (a private 0600 file,
                               unlinked right after loading): the caller passes $TMPDIR;
                               NULL: /tmp */
};

struct mq_params {
    const char *host;
    int port;
    const char *vhost;
    const char *user;
    const char *pass;
    struct mq_tls tls;
    const char *exchange;        /* push_exchange from registration */
    const char *routing_key;     /* push_routing from registration */
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
    MQ_MSG_PENDING = 0,   /* never published */
    MQ_MSG_CONFIRMED = 1, /* the broker acknowledged it */
    MQ_MSG_FAILED = 2,    /* given up for this message alone (too large, render error,
                             returned or nacked too many times): not in the queue */
    MQ_MSG_SENT = 3,      /* published, without an outcome (in flight when we stopped or
                             gave up, or lost with a connection): it may be in the queue */
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
    size_t confirmed; /* messages acknowledged (each counted once) */
    size_t failed;    /* messages given up individually */
    size_t pending;   /* messages without outcome: confirmed + failed + pending = count */
    size_t published; /* basic.publish calls, republishes included */
    size_t republished;
    size_t returned;
    size_t nacked;
    size_t reconnects;
    uint64_t bytes_confirmed; /* body bytes of confirmed messages */
    /* The broker's own limit, when it refused a message this call (pass it as
     * max_message_size next time); 0: not learned. */
    size_t learned_max_message_size;
};

/*
 * Publishes every message of src to p->exchange with p->routing_key, delivery mode 2
 * (persistent), content encoding "utf-8", mandatory. status must have src->count entries,
 * all MQ_MSG_PENDING (E_INVAL otherwise); it is updated as outcomes arrive (borrowed,
 * caller-owned). A series of 0 messages returns 0 without connecting.
 *
 * Returns 0 when every message was confirmed; E_MQ_PARTIAL when the others were
 * confirmed but some failed individually; E_MQ_GIVE_UP when no message was confirmed for
 * give_up_ms (connect failures, a lost broker, a long alarm), leaving the rest pending;
 * E_CANCELED when the service hook asked to stop; E_INVAL for bad parameters. Errors that
 * waiting cannot cure end the call at once, the rest pending: E_MQ_CONNECT when the broker
 * refused the login or the virtual host, E_TLS when the broker's certificate failed
 * verification or the local TLS material (CA, certificate, key, passphrase) cannot be
 * loaded, E_NOMEM. err gets one sentence saying what went wrong, never a password or
 * passphrase. ret_stats (may be NULL) is filled in every case.
 *
 * Retries are bounded: a message returned MQ_MAX_RETURNS (5) times or nacked MQ_MAX_NACKS
 * (5) times fails alone; republishing after a lost connection is bounded by give_up_ms.
 * A body larger than max_message_size (or than the broker's limit, once learned from a
 * PRECONDITION_FAILED channel close) fails alone without being sent.
 */
int mq_publish(const struct mq_params *p, const struct mq_source *src, const struct mq_hooks *hooks,
               uint8_t *status, struct mq_stats *ret_stats, struct err *err);

#endif
