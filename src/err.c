/* err.c - error codes and error detail buffers. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *err_str(int code)
{
    switch (code) {
    case E_OK: return "success";
    case E_NOMEM: return "out of memory";
    case E_IO: return "input/output error";
    case E_INVAL: return "invalid value";
    case E_TOO_BIG: return "size limit exceeded";
    case E_PARSE: return "malformed input";
    case E_CANCELED: return "canceled";
    case E_TIMEOUT: return "timed out";
    case E_HTTP: return "HTTP transport error";
    case E_HTTP_STATUS: return "HTTP error status";
    case E_TLS: return "TLS error";
    case E_GQL: return "GraphQL error";
    case E_GQL_AUTH: return "authentication refused";
    case E_GQL_SCHEMA: return "rejected by the platform's schema";
    case E_MQ_CONNECT: return "cannot connect to the message broker";
    case E_MQ_LOST: return "message broker connection lost";
    case E_MQ_GIVE_UP: return "gave up publishing";
    case E_MQ_PARTIAL: return "some messages were not published";
    default: return "unknown error";
    }
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void err_prefix(struct err *e, const char *fmt, ...)
{
    if (!e)
        return;
    char head[ERR_MSG_MAX];
    char old[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    char joined[2 * ERR_MSG_MAX + 2];
    memcpy(old, e->msg, sizeof(old));
    snprintf(joined, sizeof(joined), "%s: %s", head, old);
    /* keep what fits; the end of a long message is the least useful part */
    snprintf(e->msg, sizeof(e->msg), "%.*s", ERR_MSG_MAX - 1, joined);
}
