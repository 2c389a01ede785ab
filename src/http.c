/* http.c - libcurl wrapper: one easy handle, multi-driven so a tick can run.
 *
 * Redirects are followed here, not by curl: curl keeps the proxy chosen for the first
 * URL, so an http:// dataset URL redirected to https:// would bypass HTTPS_PROXY (or go
 * through HTTP_PROXY). Each hop gets the proxy of its own scheme. */
#include "http.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "timeutil.h"

#define HTTP_MAX_REDIRECTS 5

struct http {
    struct http_options o;
    char *user_agent, *ca_file, *https_proxy, *http_proxy, *no_proxy;
    struct curl_slist *headers; /* custom headers, prebuilt */
    CURL *easy;
    CURLM *multi;
    /* per transfer */
    struct buf *out;
    size_t max;
    bool too_big;
    const char *proxy; /* the proxy of the transfer, "" or NULL for none */
    char errbuf[CURL_ERROR_SIZE];
};

int http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : E_HTTP;
}

void http_global_cleanup(void)
{
    curl_global_cleanup();
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct http *http_new(const struct http_options *o)
{
    struct http *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->o = *o;
    h->user_agent = dup_or_null(o->user_agent);
    h->ca_file = dup_or_null(o->ca_file);
    h->https_proxy = dup_or_null(o->https_proxy);
    h->http_proxy = dup_or_null(o->http_proxy);
    h->no_proxy = dup_or_null(o->no_proxy);
    h->easy = curl_easy_init();
    h->multi = curl_multi_init();
    if (!h->easy || !h->multi)
        goto fail;
    for (size_t i = 0; i < o->n_headers; i++) {
        size_t n = strlen(o->headers[i].name) + strlen(o->headers[i].value) + 3;
        char *line = malloc(n);
        if (!line)
            goto fail;
        snprintf(line, n, "%s: %s", o->headers[i].name, o->headers[i].value);
        struct curl_slist *l = curl_slist_append(h->headers, line);
        free(line);
        if (!l)
            goto fail;
        h->headers = l;
    }
    h->o.headers = NULL; /* not kept: borrowed memory */
    return h;
fail:
    http_free(h);
    return NULL;
}

void http_free(struct http *h)
{
    if (!h)
        return;
    if (h->multi)
        curl_multi_cleanup(h->multi);
    if (h->easy)
        curl_easy_cleanup(h->easy);
    curl_slist_free_all(h->headers);
    free(h->user_agent);
    free(h->ca_file);
    free(h->https_proxy);
    free(h->http_proxy);
    free(h->no_proxy);
    free(h);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct http *h = ud;
    size_t n = size * nmemb;
    if (h->out->len + n > h->max || buf_add(h->out, ptr, n)) {
        h->too_big = h->out->len + n > h->max;
        return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

bool http_url_userinfo(const char *url, const char **ui, size_t *ui_len, const char **pw,
                       size_t *pw_len)
{
    const char *s = strstr(url, "://");
    s = s ? s + 3 : url;
    const char *at = strrchr(s, '@');
    if (!at)
        return false;
    const char *colon = memchr(s, ':', (size_t)(at - s));
    const char *user_end = colon ? colon : at;
    for (const char *q = s; q < user_end; q++)
        if (*q == '/' || *q == '?' || *q == '#')
            return false; /* an '@' in the path, not user information */
    *ui = s;
    *ui_len = (size_t)(at - s);
    *pw = colon ? colon + 1 : NULL;
    *pw_len = colon ? (size_t)(at - colon - 1) : 0;
    return true;
}

/* " (proxy for https URLs: scheme://host:port)", without the proxy's user information,
 * when a proxy is set for the URL's scheme (NO_PROXY may still have bypassed it), or ""
 * when none is. */
static const char *proxy_note(const struct http *h, const char *url, char *out, size_t cap)
{
    if (!h->proxy || !*h->proxy)
        return "";
    const char *p = h->proxy, *ui, *pw;
    size_t ui_len, pw_len;
    bool has_ui = http_url_userinfo(p, &ui, &ui_len, &pw, &pw_len);
    const char *rest = has_ui ? ui + ui_len + 1 : p;
    snprintf(out, cap, " (proxy for %.*s URLs: %.*s%s)", (int)strcspn(url, ":"), url,
             has_ui ? (int)(ui - p) : 0, p, rest);
    return out;
}

/* How an error names the request: the configured URL, then, after a redirect, where it
 * led ("(redirected to https://host)": only the origin; a redirect target can be a long
 * presigned URL). */
static const char *request_name(const char *url, const char *hop, char *out, size_t cap)
{
    if (!hop || hop == url || strcmp(hop, url) == 0)
        return url;
    const char *ui, *pw, *scheme_end = strstr(hop, "://");
    size_t ui_len, pw_len;
    const char *host = scheme_end ? scheme_end + 3 : hop;
    if (http_url_userinfo(hop, &ui, &ui_len, &pw, &pw_len))
        host = ui + ui_len + 1;
    snprintf(out, cap, "%s (redirected to %.*s%.*s)", url,
             (int)(scheme_end ? scheme_end + 3 - hop : 0), hop, (int)strcspn(host, "/?#"), host);
    return out;
}

static int map_curl(struct http *h, CURLcode cc, const char *url, const char *hop, struct err *err)
{
    char note[300], name[700];
    const char *detail = h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc);
    const char *proxy = proxy_note(h, hop, note, sizeof(note));
    url = request_name(url, hop, name, sizeof(name));
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return err_set(err, E_TIMEOUT, "%s: timed out (%s)%s", url, detail, proxy);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return err_set(err, E_TLS, "%s: TLS failure (%s)", url, detail);
    case CURLE_WRITE_ERROR:
        if (h->too_big)
            return err_set(err, E_TOO_BIG, "%s: the response is larger than %zu bytes", url,
                           h->max);
        return err_set(err, E_NOMEM, "%s: out of memory receiving the response", url);
    case CURLE_FILESIZE_EXCEEDED:
        return err_set(err, E_TOO_BIG, "%s: the response is larger than %zu bytes", url, h->max);
    case CURLE_ABORTED_BY_CALLBACK: return err_set(err, E_CANCELED, "%s: canceled", url);
    default: return err_set(err, E_HTTP, "%s: %s%s", url, detail, proxy);
    }
}

static int setup(struct http *h, const struct http_request *req, struct curl_slist **ret_hdrs)
{
    CURL *e = h->easy;
    struct curl_slist *hdrs = NULL, *l;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->o.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_response);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, h->o.allow_file ? "http,https,file" : "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);  /* http_perform follows them */
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* whatever curl can decode */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, h->o.verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, h->o.verify ? 2L : 0L);
    if (h->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
    if (h->user_agent)
        curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent);
    /* the proxy for this URL's scheme; "" stops curl from reading the environment */
    const char *proxy = strncasecmp(req->url, "https:", 6) == 0  ? h->https_proxy
                        : strncasecmp(req->url, "http:", 5) == 0 ? h->http_proxy
                                                                 : NULL;
    h->proxy = proxy;
    curl_easy_setopt(e, CURLOPT_PROXY, proxy ? proxy : "");
    if (h->no_proxy)
        curl_easy_setopt(e, CURLOPT_NOPROXY, h->no_proxy);
    for (l = h->headers; l; l = l->next)
        if (!(hdrs = curl_slist_append(hdrs, l->data)))
            goto nomem;
    if (req->bearer) {
        size_t n = strlen(req->bearer) + 32;
        char *auth = malloc(n);
        if (!auth)
            goto nomem;
        snprintf(auth, n, "Authorization: Bearer %s", req->bearer);
        l = curl_slist_append(hdrs, auth);
        /* the token must not linger in freed memory */
        memset(auth, 0, n);
        free(auth);
        if (!l)
            goto nomem;
        hdrs = l;
    }
    if (req->body) {
        char ct[128];
        snprintf(ct, sizeof(ct), "Content-Type: %s",
                 req->content_type ? req->content_type : "application/json");
        if (!(l = curl_slist_append(hdrs, ct)))
            goto nomem;
        hdrs = l;
        if (!(l = curl_slist_append(hdrs, "Expect:")))
            goto nomem;
        hdrs = l;
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (req->method && strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    *ret_hdrs = hdrs;
    return 0;
nomem:
    curl_slist_free_all(hdrs);
    return E_NOMEM;
}

/* One transfer of req (no redirect followed); errors name `shown` (the URL the caller
 * asked for) and where req->url, a redirect target, differs from it. */
static int transfer(struct http *h, const struct http_request *req, const char *shown,
                    long *ret_status, struct err *err)
{
    struct curl_slist *hdrs = NULL;
    h->errbuf[0] = '\0';
    h->too_big = false;
    int rc = setup(h, req, &hdrs);
    if (rc)
        return err_set(err, rc, "out of memory preparing a request");
    if (curl_multi_add_handle(h->multi, h->easy) != CURLM_OK) {
        curl_slist_free_all(hdrs);
        return err_set(err, E_HTTP, "%s: cannot start the transfer", shown);
    }
    int running = 1;
    bool canceled = false;
    while (running) {
        if (curl_multi_perform(h->multi, &running) != CURLM_OK)
            break;
        if (!running)
            break;
        if (curl_multi_poll(h->multi, NULL, 0, HTTP_TICK_MS, NULL) != CURLM_OK)
            break;
        if (h->o.tick && h->o.tick(h->o.tick_ctx)) {
            canceled = true;
            break;
        }
    }
    CURLcode cc = CURLE_OK;
    if (canceled) {
        cc = CURLE_ABORTED_BY_CALLBACK;
    } else {
        CURLMsg *msg;
        int left;
        cc = CURLE_RECV_ERROR;
        while ((msg = curl_multi_info_read(h->multi, &left)))
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == h->easy)
                cc = msg->data.result;
    }
    curl_multi_remove_handle(h->multi, h->easy);
    curl_slist_free_all(hdrs);
    if (cc != CURLE_OK)
        return map_curl(h, cc, shown, req->url, err);
    long status = 0;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    *ret_status = status;
    return 0;
}

/* A curl-allocated part of u, compared and freed by the caller; NULL when absent. */
static char *url_part(CURLU *u, CURLUPart what, unsigned flags)
{
    char *v = NULL;
    return curl_url_get(u, what, &v, flags) == CURLUE_OK ? v : NULL;
}

static bool same_part(CURLU *a, CURLU *b, CURLUPart what, unsigned flags)
{
    char *x = url_part(a, what, flags), *y = url_part(b, what, flags);
    bool same = x && y && strcasecmp(x, y) == 0;
    curl_free(x);
    curl_free(y);
    return same;
}

/* The URL to follow a redirect from `from` to `location` (absolute, as curl resolved
 * it): a copy of location, carrying from's user information when location has none and
 * both have the same scheme, host and port, as curl's own redirect following does (a
 * mirror behind basic authentication redirecting within itself). NULL on E_NOMEM. */
static char *redirect_target(const char *from, const char *location)
{
    const char *ui, *pw;
    size_t ui_len, pw_len;
    if (!http_url_userinfo(from, &ui, &ui_len, &pw, &pw_len) ||
        http_url_userinfo(location, &ui, &ui_len, &pw, &pw_len))
        return strdup(location);
    char *out = NULL, *user = NULL, *pass = NULL, *joined = NULL;
    CURLU *a = curl_url(), *b = curl_url();
    if (a && b && curl_url_set(a, CURLUPART_URL, from, 0) == CURLUE_OK &&
        curl_url_set(b, CURLUPART_URL, location, 0) == CURLUE_OK &&
        same_part(a, b, CURLUPART_SCHEME, 0) && same_part(a, b, CURLUPART_HOST, 0) &&
        same_part(a, b, CURLUPART_PORT, CURLU_DEFAULT_PORT)) {
        user = url_part(a, CURLUPART_USER, 0);
        pass = url_part(a, CURLUPART_PASSWORD, 0);
        if ((!user || curl_url_set(b, CURLUPART_USER, user, 0) == CURLUE_OK) &&
            (!pass || curl_url_set(b, CURLUPART_PASSWORD, pass, 0) == CURLUE_OK))
            joined = url_part(b, CURLUPART_URL, 0);
    }
    out = strdup(joined ? joined : location);
    curl_free(joined);
    curl_free(user);
    curl_free(pass);
    curl_url_cleanup(a);
    curl_url_cleanup(b);
    return out;
}

static bool is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

int http_perform(struct http *h, const struct http_request *req, long *ret_status, struct buf *out,
                 struct err *err)
{
    h->out = out;
    h->max = req->max_response;
    size_t start = out->len;
    struct http_request hop = *req;
    char *next = NULL; /* the URL of the current hop when it is a redirect target */
    int64_t deadline = mono_ms() + req->timeout_ms;
    int rc = 0;
    for (int hops = 0;; hops++) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            rc = err_set(err, E_TIMEOUT, "%s: timed out following redirects", req->url);
            break;
        }
        hop.timeout_ms = left;
        rc = transfer(h, &hop, req->url, ret_status, err);
        if (rc || !h->o.follow_redirects || !is_redirect(*ret_status))
            break;
        char *location = NULL;
        curl_easy_getinfo(h->easy, CURLINFO_REDIRECT_URL, &location);
        if (!location)
            break; /* no Location: the 3xx is the answer */
        if (hops == HTTP_MAX_REDIRECTS) {
            rc = err_set(err, E_HTTP, "%s: more than %d redirects", req->url, HTTP_MAX_REDIRECTS);
            break;
        }
        if (strncasecmp(location, "http://", 7) != 0 && strncasecmp(location, "https://", 8) != 0) {
            rc =
                err_set(err, E_HTTP, "%s: redirect refused: protocol \"%.*s\" is not http or https",
                        req->url, (int)strcspn(location, ":/?#"), location);
            break;
        }
        /* a copy: the handle's string dies with the next reset */
        char *copy = redirect_target(hop.url, location);
        if (!copy) {
            rc = err_set(err, E_NOMEM, "out of memory following a redirect");
            break;
        }
        free(next);
        next = copy;
        buf_truncate(out, start); /* the redirect's own body is not the answer */
        hop.url = next;
        hop.bearer = NULL; /* never hand the token to wherever a redirect points */
        if (*ret_status == 303 || ((*ret_status == 301 || *ret_status == 302) && hop.body)) {
            hop.method = "GET"; /* as browsers and curl do */
            hop.body = NULL;
            hop.body_len = 0;
        }
    }
    free(next);
    return rc;
}
