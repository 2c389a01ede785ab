/*
 * buf.h - a bounded, growable byte buffer (after curl's dynbuf).
 *
 * The contents are always NUL-terminated (the terminator is not counted in len), so a
 * buffer holding text can be used as a C string. Every append fails with E_TOO_BIG
 * instead of growing past `max`, which bounds what an outside party can make us allocate.
 */
#ifndef ODS_BUF_H
#define ODS_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct buf {
    char *data; /* NULL until the first append */
    size_t len; /* bytes used, excluding the terminator */
    size_t cap; /* bytes allocated */
    size_t max; /* the most len may ever be */
};

/* Sets up an empty buffer that will never hold more than `max` bytes. */
void buf_init(struct buf *b, size_t max);
/* Frees the contents; the buffer is empty and reusable afterwards (same max). */
void buf_release(struct buf *b);
/* Empties the buffer but keeps its allocation. */
void buf_reset(struct buf *b);
/* Drops everything after the first len bytes (len <= b->len). */
void buf_truncate(struct buf *b, size_t len);
/* Makes room for `extra` more bytes. E_NOMEM or E_TOO_BIG. */
int buf_reserve(struct buf *b, size_t extra) ODS_MUST_CHECK;

int buf_add(struct buf *b, const void *data, size_t len) ODS_MUST_CHECK;
int buf_adds(struct buf *b, const char *s) ODS_MUST_CHECK;
int buf_addc(struct buf *b, char c) ODS_MUST_CHECK;
int buf_printf(struct buf *b, const char *fmt, ...) ODS_PRINTF(2, 3) ODS_MUST_CHECK;
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) ODS_PRINTF(2, 0) ODS_MUST_CHECK;
/* Appends s as a JSON string literal (with quotes), escaping what JSON requires. */
int buf_add_json_string(struct buf *b, const char *s, size_t len) ODS_MUST_CHECK;
/* Appends the standard Base64 (with padding, no line breaks) of data. */
int buf_add_base64(struct buf *b, const void *data, size_t len) ODS_MUST_CHECK;

/* Returns the contents as a new string the caller frees with free(); the buffer is left
 * empty. Returns an empty allocated string for an empty buffer, NULL on E_NOMEM. */
char *buf_take(struct buf *b);

#endif
