/*
 * json_scan.h - a validating, non-recursive JSON scanner that works in place.
 *
 * json_validate() checks a whole document once (RFC 8259 grammar, strict UTF-8, no
 * escaped NUL, a nesting limit) without building a tree. Everything else walks a
 * document that was validated, by offsets into the caller's buffer: iterate the members
 * of an object or the elements of an array, skip a value, decode or compare a string,
 * copy a value without insignificant whitespace. Values are never copied or converted,
 * so numbers and strings keep their exact text.
 *
 * The walking functions assume validated input and do no checking of their own.
 */
#ifndef ODS_JSON_SCAN_H
#define ODS_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

#define JSON_MAX_DEPTH 1000

enum json_kind {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
};

/* A value's bytes in the document: off is its first byte (the quote of a string), len
 * its length. */
struct json_span {
    size_t off;
    size_t len;
};

struct json_error {
    size_t offset; /* byte offset of the problem */
    size_t line;   /* 1-based */
    size_t column; /* 1-based, in bytes */
    char what[160];
};

/* The members of the document's root object, recorded by json_validate(). */
struct json_member {
    struct json_span key;
    struct json_span value;
};

struct json_members {
    struct json_member *v;
    size_t len, cap;
};

void json_members_release(struct json_members *m);

/*
 * Validates s[0..n): one JSON value surrounded by optional whitespace (a leading UTF-8
 * byte order mark is allowed). Rejects invalid UTF-8 anywhere, raw control characters in
 * strings, "\u0000" escapes, nesting deeper than max_depth, and trailing data. On error
 * returns E_PARSE and fills err (may be NULL). On success *ret_start (may be NULL) is the
 * offset of the value's first byte and, when root is not NULL and the value is an
 * object, root lists its members (the caller releases it in every case). E_NOMEM if the
 * list cannot grow.
 */
int json_validate(const char *s, size_t n, unsigned max_depth, size_t *ret_start,
                  struct json_members *root, struct json_error *err) ODS_MUST_CHECK;

/* ---- on validated documents ------------------------------------------------------- */

enum json_kind json_kind_at(const char *s, size_t off);
/* Returns the offset just past the value starting at off. */
size_t json_value_end(const char *s, size_t off);
/* Returns the first offset at or after off that is not JSON whitespace. */
size_t json_skip_ws(const char *s, size_t off);
static inline struct json_span json_span_at(const char *s, size_t off)
{
    struct json_span v = {off, json_value_end(s, off) - off};
    return v;
}

struct json_iter {
    size_t pos;
    bool started;
};

/* Starts iterating the object or array whose '{' or '[' is at off. */
void json_iter_init(struct json_iter *it, size_t off);
/* Next member of an object: its key (a string span) and value. false at the end. */
bool json_obj_next(const char *s, struct json_iter *it, struct json_span *ret_key,
                   struct json_span *ret_val);
/* Next element of an array. false at the end. */
bool json_arr_next(const char *s, struct json_iter *it, struct json_span *ret_val);

/* Whether the string at span contains a backslash escape. */
bool json_str_has_escape(const char *s, struct json_span str);
/* Appends the decoded contents of the string at span (lone surrogates as WTF-8). */
int json_str_decode(const char *s, struct json_span str, struct buf *out) ODS_MUST_CHECK;
/* Whether the string at span decodes to exactly lit[0..litlen). */
bool json_str_equals(const char *s, struct json_span str, const char *lit, size_t litlen);
/* Appends the value at span without insignificant whitespace. */
int json_minify(const char *s, struct json_span v, struct buf *out) ODS_MUST_CHECK;

/* Computes line and column of an offset (for error messages). */
void json_locate(const char *s, size_t n, size_t offset, size_t *ret_line, size_t *ret_col);

#endif
