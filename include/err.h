/*
 * err.h - project error codes and the caller-owned error detail buffer.
 *
 * Every fallible function returns 0 on success or one of the negative E_* codes below.
 * Functions that can say more take a `struct err *` (which may be NULL) and write one
 * human-readable sentence into it on failure; they never log it themselves.
 */
#ifndef ODS_ERR_H
#define ODS_ERR_H

#include <stddef.h>

#define ODS_MUST_CHECK __attribute__((warn_unused_result))
#define ODS_PRINTF(f, a) __attribute__((format(printf, f, a)))

enum {
    E_OK = 0,
    /* generic */
    E_NOMEM = -1,    /* allocation failed */
    E_IO = -2,       /* read/write/open failed */
    E_INVAL = -3,    /* invalid argument or value */
    E_TOO_BIG = -4,  /* a configured or built-in size limit was exceeded */
    E_PARSE = -5,    /* input is not what it should be (JSON, bundle, env file) */
    E_CANCELED = -6, /* a stop was requested while waiting */
    E_TIMEOUT = -7,  /* an operation ran out of time */
    /* http */
    E_HTTP = -10,        /* transport failure (DNS, connect, reset) */
    E_HTTP_STATUS = -11, /* the server answered with a non-2xx status */
    E_TLS = -12,         /* certificate verification or handshake failure */
    /* graphql / platform */
    E_GQL = -20,        /* the platform answered with GraphQL errors */
    E_GQL_AUTH = -21,   /* authentication or authorisation refused */
    E_GQL_SCHEMA = -22, /* the platform's schema rejected a field or argument */
    /* message queue */
    E_MQ_CONNECT = -30, /* could not connect, log in or open the channel */
    E_MQ_LOST = -31,    /* connection or channel lost while publishing */
    E_MQ_GIVE_UP = -32, /* no progress for longer than the give-up time */
    E_MQ_PARTIAL = -33, /* some messages could not be published */
};

/* Returns a static description of an E_* code. */
const char *err_str(int code);

#define ERR_MSG_MAX 512

struct err {
    char msg[ERR_MSG_MAX];
};

/* Writes a formatted message into e (if e is not NULL). Returns `code`, for tail calls. */
int err_set(struct err *e, int code, const char *fmt, ...) ODS_PRINTF(3, 4);

/* Prefixes the message already in e with a formatted context ("context: old message"). */
void err_prefix(struct err *e, const char *fmt, ...) ODS_PRINTF(2, 3);

#endif
