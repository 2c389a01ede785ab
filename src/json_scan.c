/*
 * json_scan.c - validating JSON scanner and in-place walkers.
 *
 * The validator is a loop over an explicit stack of open containers (one byte each, at
 * most max_depth), so no input can exhaust the C stack. The walkers trust the validator
 * and only look for structure.
 */
#include "json_scan.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- validation -------------------------------------------------------------------- */

struct vstate {
    const char *s;
    size_t n;
    size_t i;
    struct json_error *err;
};

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static void skip_ws_v(struct vstate *v)
{
    while (v->i < v->n && is_ws((unsigned char)v->s[v->i]))
        v->i++;
}

static int fail(struct vstate *v, size_t at, const char *fmt, ...) ODS_PRINTF(3, 4);

static int fail(struct vstate *v, size_t at, const char *fmt, ...)
{
    if (v->err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->err->what, sizeof(v->err->what), fmt, ap);
        va_end(ap);
        v->err->offset = at;
        json_locate(v->s, v->n, at, &v->err->line, &v->err->column);
    }
    return E_PARSE;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Length of a valid UTF-8 sequence starting at p (at most avail bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F; /* no UTF-16 surrogates encoded as UTF-8 */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (p[k] < 0x80 || p[k] > 0xBF)
            return 0;
    return len;
}

#define SWAR_ONES UINT64_C(0x0101010101010101)
#define SWAR_HIGH UINT64_C(0x8080808080808080)
/* Whether any byte of w is zero. */
#define SWAR_HAS_ZERO(w) (((w)-SWAR_ONES) & ~(w)&SWAR_HIGH)

/* Whether the 8 bytes at p are all printable ASCII other than '"' and '\\' (the bytes a
 * string can hold without a closer look). */
static bool plain8(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t special = (w & SWAR_HIGH) |                           /* >= 0x80 */
                       ((w - SWAR_ONES * 0x20) & ~w & SWAR_HIGH) | /* < 0x20 */
                       SWAR_HAS_ZERO(w ^ (SWAR_ONES * '"')) | SWAR_HAS_ZERO(w ^ (SWAR_ONES * '\\'));
    return special == 0;
}

static int scan_string(struct vstate *v)
{
    const unsigned char *s = (const unsigned char *)v->s;
    size_t start = v->i;
    size_t i = v->i + 1;
    for (;;) {
        /* the common case: a run of printable ASCII, eight bytes at a time */
        while (i + 8 <= v->n && plain8(s + i))
            i += 8;
        while (i < v->n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\')
            i++;
        if (i >= v->n)
            return fail(v, start, "unterminated string (truncated JSON?)");
        unsigned char c = s[i];
        if (c == '"') {
            v->i = i + 1;
            return 0;
        }
        if (c == '\\') {
            if (i + 1 >= v->n)
                return fail(v, start, "unterminated string (truncated JSON?)");
            unsigned char e = s[i + 1];
            if (e == 'u') {
                if (i + 6 > v->n)
                    return fail(v, i, "truncated \\u escape");
                unsigned cp = 0;
                for (int k = 2; k < 6; k++) {
                    int h = hexval(s[i + k]);
                    if (h < 0)
                        return fail(v, i, "invalid \\u escape (four hex digits expected)");
                    cp = cp << 4 | (unsigned)h;
                }
                if (cp == 0)
                    return fail(v, i, "a NUL character (\\u0000) in a string is not accepted");
                i += 6;
            } else if (strchr("\"\\/bfnrt", e) && e) {
                i += 2;
            } else {
                return fail(v, i, "invalid escape sequence in a string");
            }
            continue;
        }
        if (c < 0x20)
            return fail(v, i, "raw control character 0x%02x in a string (it must be escaped)", c);
        size_t len = utf8_len(s + i, v->n - i);
        if (!len)
            return fail(v, i, "invalid UTF-8 byte 0x%02x", c);
        i += len;
    }
}

static int scan_number(struct vstate *v)
{
    const char *s = v->s;
    size_t i = v->i, start = v->i;
#define DIGIT(k) ((k) < v->n && s[k] >= '0' && s[k] <= '9')
    if (i < v->n && s[i] == '-')
        i++;
    if (i < v->n && s[i] == '0') {
        i++;
    } else if (DIGIT(i)) {
        while (DIGIT(i))
            i++;
    } else {
        return fail(v, start, "invalid number");
    }
    if (i < v->n && s[i] == '.') {
        i++;
        if (!DIGIT(i))
            return fail(v, start, "invalid number (digits expected after '.')");
        while (DIGIT(i))
            i++;
    }
    if (i < v->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < v->n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!DIGIT(i))
            return fail(v, start, "invalid number (digits expected in the exponent)");
        while (DIGIT(i))
            i++;
    }
#undef DIGIT
    v->i = i;
    return 0;
}

static int scan_literal(struct vstate *v, const char *lit)
{
    size_t len = strlen(lit);
    if (v->n - v->i < len || memcmp(v->s + v->i, lit, len) != 0)
        return fail(v, v->i, "invalid literal (expected %s)", lit);
    v->i += len;
    return 0;
}

static int unexpected(struct vstate *v, const char *expected)
{
    if (v->i >= v->n)
        return fail(v, v->i, "unexpected end of input, expected %s (truncated JSON?)", expected);
    unsigned char c = (unsigned char)v->s[v->i];
    if (c >= 0x20 && c < 0x7f)
        return fail(v, v->i, "unexpected character '%c', expected %s", c, expected);
    return fail(v, v->i, "unexpected byte 0x%02x, expected %s", c, expected);
}

void json_members_release(struct json_members *m)
{
    free(m->v);
    m->v = NULL;
    m->len = m->cap = 0;
}

int json_validate(const char *s, size_t n, unsigned max_depth, size_t *ret_start,
                  struct json_members *root, struct json_error *err)
{
    struct vstate v = {s, n, 0, err};
    char stack[JSON_MAX_DEPTH];
    unsigned depth = 0;
    int rc;
    if (max_depth > JSON_MAX_DEPTH)
        max_depth = JSON_MAX_DEPTH;
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        v.i = 3;
    skip_ws_v(&v);
    if (v.i >= n)
        return fail(&v, v.i, "the document is empty");
    size_t start = v.i;

    enum { VALUE, KEY, AFTER } state = VALUE;
    for (;;) {
        switch (state) {
        case VALUE:
            if (v.i >= n)
                return unexpected(&v, "a value");
            switch (s[v.i]) {
            case '{':
            case '[':
                if (depth == max_depth)
                    return fail(&v, v.i, "nesting deeper than %u levels", max_depth);
                stack[depth++] = s[v.i];
                v.i++;
                skip_ws_v(&v);
                if (v.i < n && s[v.i] == (stack[depth - 1] == '{' ? '}' : ']')) {
                    depth--;
                    v.i++;
                    state = AFTER;
                } else {
                    state = stack[depth - 1] == '{' ? KEY : VALUE;
                }
                continue;
            case '"': rc = scan_string(&v); break;
            case 't': rc = scan_literal(&v, "true"); break;
            case 'f': rc = scan_literal(&v, "false"); break;
            case 'n': rc = scan_literal(&v, "null"); break;
            default:
                if (s[v.i] == '-' || (s[v.i] >= '0' && s[v.i] <= '9'))
                    rc = scan_number(&v);
                else
                    return unexpected(&v, "a value");
            }
            if (rc)
                return rc;
            state = AFTER;
            continue;
        case KEY: {
            if (v.i >= n || s[v.i] != '"')
                return unexpected(&v, "a member name in double quotes");
            size_t key = v.i;
            if ((rc = scan_string(&v)))
                return rc;
            size_t key_end = v.i;
            skip_ws_v(&v);
            if (v.i >= n || s[v.i] != ':')
                return unexpected(&v, "':'");
            v.i++;
            skip_ws_v(&v);
            if (root && depth == 1) {
                if (root->len == root->cap) {
                    size_t cap = root->cap ? root->cap * 2 : 16;
                    struct json_member *p = realloc(root->v, cap * sizeof(*p));
                    if (!p)
                        return E_NOMEM;
                    root->v = p;
                    root->cap = cap;
                }
                struct json_member *m = &root->v[root->len++];
                m->key.off = key;
                m->key.len = key_end - key;
                m->value.off = v.i;
                m->value.len = 0; /* known when the value ends */
            }
            state = VALUE;
            continue;
        }
        case AFTER:
            if (root && depth == 1 && root->len && root->v[root->len - 1].value.len == 0)
                root->v[root->len - 1].value.len = v.i - root->v[root->len - 1].value.off;
            skip_ws_v(&v);
            if (depth == 0)
                goto done;
            if (v.i < n && s[v.i] == ',') {
                v.i++;
                skip_ws_v(&v);
                state = stack[depth - 1] == '{' ? KEY : VALUE;
                continue;
            }
            if (v.i < n && s[v.i] == (stack[depth - 1] == '{' ? '}' : ']')) {
                depth--;
                v.i++;
                continue;
            }
            return unexpected(&v, stack[depth - 1] == '{' ? "',' or '}'" : "',' or ']'");
        }
    }
done:
    if (v.i != n)
        return unexpected(&v, "the end of the document");
    if (ret_start)
        *ret_start = start;
    return 0;
}

void json_locate(const char *s, size_t n, size_t offset, size_t *ret_line, size_t *ret_col)
{
    size_t line = 1, col = 1;
    for (size_t i = 0; i < offset && i < n; i++) {
        if (s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    *ret_line = line;
    *ret_col = col;
}

/* ---- walking validated documents ----------------------------------------------------- */

static size_t skip_ws(const char *s, size_t i)
{
    while (is_ws((unsigned char)s[i]))
        i++;
    return i;
}

size_t json_skip_ws(const char *s, size_t off)
{
    return skip_ws(s, off);
}

enum json_kind json_kind_at(const char *s, size_t off)
{
    switch (s[off]) {
    case '{': return JSON_OBJECT;
    case '[': return JSON_ARRAY;
    case '"': return JSON_STRING;
    case 't': return JSON_TRUE;
    case 'f': return JSON_FALSE;
    case 'n': return JSON_NULL;
    default: return JSON_NUMBER;
    }
}

/* The offset just past the string starting at i. A validated document holds no NUL byte,
 * so strchr cannot run past the closing quote; a quote ends the string unless an odd
 * number of backslashes precedes it (the opening quote bounds that run). */
static size_t string_end(const char *s, size_t i)
{
    const char *p = s + i + 1;
    for (;;) {
        const char *q = strchr(p, '"');
        size_t bs = 0;
        while (q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (bs % 2 == 0)
            return (size_t)(q - s) + 1;
        p = q + 1;
    }
}

/* Bytes that matter when skipping a container: quotes and brackets. */
static const unsigned char structural[256] = {
    ['"'] = 1, ['{'] = 2, ['['] = 2, ['}'] = 3, [']'] = 3,
};

size_t json_value_end(const char *s, size_t off)
{
    switch (s[off]) {
    case '"': return string_end(s, off);
    case 't':
    case 'n': return off + 4;
    case 'f': return off + 5;
    case '{':
    case '[': {
        size_t depth = 0, i = off;
        for (;;) {
            unsigned char k = structural[(unsigned char)s[i]];
            if (!k) {
                i++;
                continue;
            }
            if (k == 1) {
                i = string_end(s, i);
                continue;
            }
            if (k == 2)
                depth++;
            else if (--depth == 0)
                return i + 1;
            i++;
        }
    }
    default: {
        size_t i = off;
        while ((s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '+' || s[i] == '.' ||
               s[i] == 'e' || s[i] == 'E')
            i++;
        return i;
    }
    }
}

void json_iter_init(struct json_iter *it, size_t off)
{
    it->pos = off;
    it->started = false;
}

/* Moves to the next element's first byte; false at the closing bracket. */
static bool iter_advance(const char *s, struct json_iter *it)
{
    size_t i;
    if (!it->started) {
        it->started = true;
        i = skip_ws(s, it->pos + 1);
    } else {
        i = skip_ws(s, it->pos);
        if (s[i] != ',') {
            it->pos = i;
            return false;
        }
        i = skip_ws(s, i + 1);
    }
    if (s[i] == '}' || s[i] == ']') {
        it->pos = i;
        return false;
    }
    it->pos = i;
    return true;
}

bool json_obj_next(const char *s, struct json_iter *it, struct json_span *ret_key,
                   struct json_span *ret_val)
{
    if (!iter_advance(s, it))
        return false;
    size_t k = it->pos;
    size_t ke = string_end(s, k);
    size_t v = skip_ws(s, skip_ws(s, ke) + 1); /* past ':' */
    size_t ve = json_value_end(s, v);
    ret_key->off = k;
    ret_key->len = ke - k;
    ret_val->off = v;
    ret_val->len = ve - v;
    it->pos = ve;
    return true;
}

bool json_arr_next(const char *s, struct json_iter *it, struct json_span *ret_val)
{
    if (!iter_advance(s, it))
        return false;
    size_t v = it->pos;
    size_t ve = json_value_end(s, v);
    ret_val->off = v;
    ret_val->len = ve - v;
    it->pos = ve;
    return true;
}

bool json_str_has_escape(const char *s, struct json_span str)
{
    return memchr(s + str.off + 1, '\\', str.len - 2) != NULL;
}

static unsigned hex4(const char *p)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++)
        v = v << 4 | (unsigned)hexval((unsigned char)p[k]);
    return v;
}

static size_t put_utf8(unsigned cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one unit of string content at s[*i] (not the closing quote) into out;
 * returns the byte count. */
static size_t decode_unit(const char *s, size_t *i, unsigned char out[4])
{
    size_t p = *i;
    if (s[p] != '\\') {
        out[0] = (unsigned char)s[p];
        *i = p + 1;
        return 1;
    }
    char e = s[p + 1];
    *i = p + 2;
    switch (e) {
    case 'b': out[0] = '\b'; return 1;
    case 'f': out[0] = '\f'; return 1;
    case 'n': out[0] = '\n'; return 1;
    case 'r': out[0] = '\r'; return 1;
    case 't': out[0] = '\t'; return 1;
    case 'u': {
        unsigned cp = hex4(s + p + 2);
        *i = p + 6;
        if (cp >= 0xD800 && cp <= 0xDBFF && s[p + 6] == '\\' && s[p + 7] == 'u') {
            unsigned lo = hex4(s + p + 8);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                *i = p + 12;
                return put_utf8(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00), out);
            }
        }
        return put_utf8(cp, out); /* a lone surrogate becomes WTF-8 */
    }
    default: out[0] = (unsigned char)e; return 1; /* " \ / */
    }
}

int json_str_decode(const char *s, struct json_span str, struct buf *out)
{
    size_t end = str.off + str.len - 1;
    size_t i = str.off + 1;
    int rc = 0;
    while (i < end && rc == 0) {
        const char *bs = memchr(s + i, '\\', end - i);
        size_t run = bs ? (size_t)(bs - (s + i)) : end - i;
        if (run) {
            rc = buf_add(out, s + i, run);
            i += run;
            continue;
        }
        unsigned char u[4];
        size_t k = decode_unit(s, &i, u);
        rc = buf_add(out, u, k);
    }
    return rc;
}

bool json_str_equals(const char *s, struct json_span str, const char *lit, size_t litlen)
{
    size_t end = str.off + str.len - 1;
    size_t i = str.off + 1;
    if (!memchr(s + i, '\\', end - i))
        return end - i == litlen && memcmp(s + i, lit, litlen) == 0;
    size_t j = 0;
    while (i < end) {
        unsigned char u[4];
        size_t k = decode_unit(s, &i, u);
        if (j + k > litlen || memcmp(lit + j, u, k) != 0)
            return false;
        j += k;
    }
    return j == litlen;
}

int json_minify(const char *s, struct json_span v, struct buf *out)
{
    size_t i = v.off, end = v.off + v.len;
    int rc = buf_reserve(out, v.len);
    if (rc)
        return rc;
    while (i < end) {
        size_t run = i;
        /* copy up to the next whitespace outside strings */
        while (run < end && !is_ws((unsigned char)s[run])) {
            if (s[run] == '"')
                run = string_end(s, run);
            else
                run++;
        }
        if (run > i && (rc = buf_add(out, s + i, run - i)))
            return rc;
        i = run;
        while (i < end && is_ws((unsigned char)s[i]))
            i++;
    }
    return 0;
}
