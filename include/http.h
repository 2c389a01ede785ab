/*
 * http.h - one reused libcurl easy handle per purpose (the platform API, dataset fetches).
 *
 * Transfers run through curl's multi interface so that a `tick` callback runs at least
 * every HTTP_TICK_MS while a request is in flight: the daemon uses it to keep pinging the
 * platform during a long download and to abandon a transfer when asked to stop.
 * Proxies and the CA bundle come from the caller (the config module reads them), never
 * from libcurl's own environment lookup.
 */
#ifndef ODS_HTTP_H
#define ODS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "err.h"

#define HTTP_TICK_MS 200

struct http_options {
    const char *user_agent;
    bool verify;             /* verify certificates and host names */
    const char *ca_file;     /* CA bundle path, or NULL for the system store */
    const char *https_proxy; /* NULL: none */
    const char *http_proxy;
    const char *no_proxy;
    const struct http_header *headers; /* extra request headers (borrowed) */
    size_t n_headers;
    bool allow_file; /* accept file:// URLs (dataset mirrors) */
    bool follow_redirects;
    int64_t connect_timeout_ms;
    /* Called at least every HTTP_TICK_MS during a transfer; non-zero aborts it with
     * E_CANCELED. May be NULL. */
    int (*tick)(void *ctx);
    void *tick_ctx;
};

struct http;

/* Returns a new client (options and strings are copied), NULL on E_NOMEM. */
struct http *http_new(const struct http_options *o);
void http_free(struct http *h);

struct http_request {
    const char *url;
    const char *method;       /* "GET" or "POST" */
    const char *bearer;       /* Authorization: Bearer <bearer>, or NULL */
    const char *content_type; /* for a body */
    const char *body;
    size_t body_len;
    int64_t timeout_ms;  /* the whole transfer */
    size_t max_response; /* a larger body fails with E_TOO_BIG */
};

/*
 * Performs the request; the response body is appended to out. *ret_status gets the HTTP
 * status (0 for file://). Returns 0 whatever the status, or E_HTTP (transport), E_TLS
 * (certificate or handshake), E_TIMEOUT, E_TOO_BIG, E_CANCELED, E_NOMEM, with curl's
 * detail in err.
 */
int http_perform(struct http *h, const struct http_request *req, long *ret_status, struct buf *out,
                 struct err *err) ODS_MUST_CHECK;

/* The user information of url ("scheme://user:pass@host/..."): returns true and sets *ui
 * (just after "://") and *ui_len (up to the '@'), and *pw / *pw_len to the password after
 * the first ':' (*pw NULL without one). Passwords often hold unencoded '/', '?', '#' or
 * '@', so the user information ends at the last '@', provided the user name (before the
 * first ':') holds no '/', '?' or '#'. Errs towards seeing a password: "h:8080/a@b" has
 * "8080/a", which is only ever used to redact. */
bool http_url_userinfo(const char *url, const char **ui, size_t *ui_len, const char **pw,
                       size_t *pw_len);

/* The global libcurl set-up and tear-down; call once at start and exit. */
int http_global_init(void);
void http_global_cleanup(void);

#endif
