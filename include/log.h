/*
 * log.h - leveled logging to stderr, as pycti-shaped JSON lines or as plain text.
 *
 * JSON lines carry the keys pycti's logger writes: timestamp (UTC, microseconds, "Z"),
 * level (DEBUG, INFO, WARNING, ERROR), name (the connector name), message and, when
 * given, an attributes object. Plain text lines are "<timestamp> <LEVEL> <message>
 * key=value ...". Every line is written with a single write, and errno is preserved.
 *
 * Secrets registered with log_add_secret() are replaced by "***" wherever they would
 * appear in a message or attribute. Never call these functions from a signal handler.
 */
#ifndef ODS_LOG_H
#define ODS_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

enum log_kv_type {
    LOG_KV_END = 0,
    LOG_KV_STR,
    LOG_KV_INT,
    LOG_KV_UINT,
    LOG_KV_DOUBLE,
    LOG_KV_BOOL
};

struct log_kv {
    const char *key;
    enum log_kv_type type;
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
        bool b;
    } v;
};

#define KV_STR(k, x)                                                                               \
    {                                                                                              \
        .key = (k), .type = LOG_KV_STR, .v.s = (x)                                                 \
    }
#define KV_INT(k, x)                                                                               \
    {                                                                                              \
        .key = (k), .type = LOG_KV_INT, .v.i = (int64_t)(x)                                        \
    }
#define KV_UINT(k, x)                                                                              \
    {                                                                                              \
        .key = (k), .type = LOG_KV_UINT, .v.u = (uint64_t)(x)                                      \
    }
#define KV_DBL(k, x)                                                                               \
    {                                                                                              \
        .key = (k), .type = LOG_KV_DOUBLE, .v.d = (double)(x)                                      \
    }
#define KV_BOOL(k, x)                                                                              \
    {                                                                                              \
        .key = (k), .type = LOG_KV_BOOL, .v.b = (bool)(x)                                          \
    }
/* An attribute list for log_kv(): LOG_ATTRS(KV_STR("dataset", "sectors"), KV_INT("n", 3)) */
#define LOG_ATTRS(...) ((const struct log_kv[]){__VA_ARGS__, {.key = NULL}})

/* Chooses the format, the minimum level and the `name` field (copied). Defaults before
 * the first call: text, LOG_INFO, name "opencti-datasets", stream stderr. */
void log_setup(enum log_level min, bool json, const char *name);
/* Redirects output (tests). NULL restores stderr. */
void log_set_stream(FILE *f);
/* Registers a secret to redact (copied; strings shorter than 3 bytes are ignored). */
void log_add_secret(const char *secret);
/* Forgets every registered secret. */
void log_clear_secrets(void);
/* Replaces every registered secret in s (NUL-terminated, at most cap bytes) by "***". */
void log_redact(char *s, size_t cap);
bool log_enabled(enum log_level level);

/* Writes one line. attrs may be NULL or a LOG_ATTRS(...) list. */
void log_kv(enum log_level level, const struct log_kv *attrs, const char *fmt, ...)
    ODS_PRINTF(3, 4);

#define log_debug(...) log_kv(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_kv(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_kv(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_kv(LOG_ERROR, NULL, __VA_ARGS__)

/* Parses "debug", "info", "warn", "warning", "error" in any case. */
int log_level_parse(const char *s, enum log_level *ret_level) ODS_MUST_CHECK;

#endif
