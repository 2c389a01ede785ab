/* log.c - leveled text or JSON logging with secret redaction. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"

#define LOG_LINE_MAX (64 * 1024)

static struct {
    enum log_level min;
    bool json;
    char name[128];
    FILE *stream;
    char **secrets; /* as many as the configuration holds: none may be dropped */
    size_t nsecrets, capsecrets;
} L = {.min = LOG_INFO, .json = false, .name = "opencti-datasets"};

static const char *level_name(enum log_level l)
{
    switch (l) {
    case LOG_DEBUG: return "DEBUG";
    case LOG_INFO: return "INFO";
    case LOG_WARN: return "WARNING";
    default: return "ERROR";
    }
}

void log_setup(enum log_level min, bool json, const char *name)
{
    L.min = min;
    L.json = json;
    if (name)
        snprintf(L.name, sizeof(L.name), "%s", name);
}

void log_set_stream(FILE *f)
{
    L.stream = f;
}

/* Out of memory registering a secret: going on could print it in clear, so stop. */
static void secret_oom(void)
{
    static const char msg[] = "opencti-datasets: out of memory registering a secret\n";
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing more can be done */
    }
    _exit(70);
}

void log_add_secret(const char *secret)
{
    /* one or two characters would garble every line; such a "secret" protects nothing */
    if (!secret || strlen(secret) < 3)
        return;
    for (size_t i = 0; i < L.nsecrets; i++)
        if (strcmp(L.secrets[i], secret) == 0)
            return;
    if (L.nsecrets == L.capsecrets) {
        size_t cap = L.capsecrets ? 2 * L.capsecrets : 16;
        char **grown = realloc(L.secrets, cap * sizeof(*grown));
        if (!grown)
            secret_oom(); /* a secret that cannot be registered would be logged in clear */
        L.secrets = grown;
        L.capsecrets = cap;
    }
    char *copy = strdup(secret);
    if (!copy)
        secret_oom();
    L.secrets[L.nsecrets++] = copy;
}

void log_clear_secrets(void)
{
    for (size_t i = 0; i < L.nsecrets; i++)
        free(L.secrets[i]);
    free(L.secrets);
    L.secrets = NULL;
    L.nsecrets = L.capsecrets = 0;
}

void log_redact(char *s, size_t cap)
{
    for (size_t k = 0; k < L.nsecrets; k++) {
        const char *sec = L.secrets[k];
        size_t sl = strlen(sec);
        char *p = s;
        while ((p = strstr(p, sec)) != NULL) {
            /* "***" is never longer than a secret of 3+ bytes; shorter ones grow the
             * string, so check the capacity. */
            size_t tail = strlen(p + sl);
            size_t cur = (size_t)(p - s);
            if (cur + 3 + tail + 1 > cap) {
                memset(p, '*', sl);
                p += sl;
                continue;
            }
            memmove(p + 3, p + sl, tail + 1);
            memcpy(p, "***", 3);
            p += 3;
        }
    }
}

bool log_enabled(enum log_level level)
{
    return level >= L.min;
}

int log_level_parse(const char *s, enum log_level *ret_level)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {{"debug", LOG_DEBUG},
                 {"info", LOG_INFO},
                 {"warn", LOG_WARN},
                 {"warning", LOG_WARN},
                 {"error", LOG_ERROR}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *ret_level = names[i].level;
            return 0;
        }
    }
    return E_INVAL;
}

static void timestamp(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%06ldZ", ts.tv_nsec / 1000);
}

/* Formats an attribute value as text into tmp (strings are redacted copies). */
static void kv_text(const struct log_kv *kv, char *tmp, size_t cap)
{
    switch (kv->type) {
    case LOG_KV_STR: snprintf(tmp, cap, "%s", kv->v.s ? kv->v.s : ""); break;
    case LOG_KV_INT: snprintf(tmp, cap, "%lld", (long long)kv->v.i); break;
    case LOG_KV_UINT: snprintf(tmp, cap, "%llu", (unsigned long long)kv->v.u); break;
    case LOG_KV_DOUBLE: snprintf(tmp, cap, "%.3f", kv->v.d); break;
    case LOG_KV_BOOL: snprintf(tmp, cap, "%s", kv->v.b ? "true" : "false"); break;
    default: tmp[0] = '\0';
    }
    log_redact(tmp, cap);
}

void log_kv(enum log_level level, const struct log_kv *attrs, const char *fmt, ...)
{
    if (level < L.min)
        return;
    int saved = errno;
    char msg[8192];
    char ts[40];
    char val[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_redact(msg, sizeof(msg));
    timestamp(ts, sizeof(ts));

    struct buf line;
    buf_init(&line, LOG_LINE_MAX);
    int rc = 0;
    if (L.json) {
        rc |= buf_adds(&line, "{\"timestamp\": \"");
        rc |= buf_adds(&line, ts);
        rc |= buf_adds(&line, "\", \"level\": \"");
        rc |= buf_adds(&line, level_name(level));
        rc |= buf_adds(&line, "\", \"name\": ");
        rc |= buf_add_json_string(&line, L.name, strlen(L.name));
        rc |= buf_adds(&line, ", \"message\": ");
        rc |= buf_add_json_string(&line, msg, strlen(msg));
        if (attrs && attrs[0].key) {
            rc |= buf_adds(&line, ", \"attributes\": {");
            for (const struct log_kv *kv = attrs; kv->key; kv++) {
                if (kv != attrs)
                    rc |= buf_adds(&line, ", ");
                rc |= buf_add_json_string(&line, kv->key, strlen(kv->key));
                rc |= buf_adds(&line, ": ");
                kv_text(kv, val, sizeof(val));
                if (kv->type == LOG_KV_STR)
                    rc |= buf_add_json_string(&line, val, strlen(val));
                else
                    rc |= buf_adds(&line, val);
            }
            rc |= buf_addc(&line, '}');
        }
        rc |= buf_adds(&line, "}\n");
    } else {
        rc |= buf_printf(&line, "%s %-7s %s", ts, level_name(level), msg);
        if (attrs) {
            for (const struct log_kv *kv = attrs; kv->key; kv++) {
                kv_text(kv, val, sizeof(val));
                bool quote = kv->type == LOG_KV_STR && (val[0] == '\0' || strpbrk(val, " \t\"="));
                if (quote) {
                    rc |= buf_printf(&line, " %s=", kv->key);
                    rc |= buf_add_json_string(&line, val, strlen(val));
                } else {
                    rc |= buf_printf(&line, " %s=%s", kv->key, val);
                }
            }
        }
        rc |= buf_addc(&line, '\n');
    }
    FILE *out = L.stream ? L.stream : stderr;
    if (rc == 0) {
        fwrite(line.data, 1, line.len, out);
    } else {
        /* Out of memory or an absurd line: say something rather than nothing. */
        fprintf(out, "%s %s %.*s\n", ts, level_name(level), 1024, msg);
    }
    fflush(out);
    buf_release(&line);
    errno = saved;
}
