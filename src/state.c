/* state.c - the connector state: parsing, last_run, Python-compatible serialization. */
#include "state.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "timeutil.h"

#define STATE_MAX_TEXT (1024 * 1024)

enum state_parse_result state_parse(const char *text, cJSON **ret_obj)
{
    *ret_obj = NULL;
    if (!text || !*text || strcmp(text, "null") == 0)
        return STATE_EMPTY;
    /* the whole text must be one JSON value (cJSON_Parse ignores what follows) */
    cJSON *v = cJSON_ParseWithOpts(text, NULL, true);
    if (!cJSON_IsObject(v)) {
        bool is_null = cJSON_IsNull(v);
        cJSON_Delete(v);
        return is_null ? STATE_EMPTY : STATE_INVALID;
    }
    if (!v->child) { /* {}: pycti's get_state() says "no state" */
        cJSON_Delete(v);
        return STATE_EMPTY;
    }
    *ret_obj = v;
    return STATE_OBJECT;
}

bool state_last_run(const cJSON *state, int64_t *ret_epoch_s)
{
    const cJSON *v = state ? cJSON_GetObjectItemCaseSensitive(state, "last_run") : NULL;
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d) || d < 0 || d > 1e13)
            return false;
        *ret_epoch_s = (int64_t)floor(d);
        return true;
    }
    if (cJSON_IsString(v))
        return utc_parse(v->valuestring, ret_epoch_s) == 0;
    return false;
}

cJSON *state_with_last_run(const cJSON *base, int64_t t)
{
    cJSON *s = base ? cJSON_Duplicate(base, true) : cJSON_CreateObject();
    if (!s)
        return NULL;
    cJSON *n = cJSON_CreateNumber((double)t);
    if (!n || (cJSON_GetObjectItemCaseSensitive(s, "last_run")
                   ? !cJSON_ReplaceItemInObjectCaseSensitive(s, "last_run", n)
                   : !cJSON_AddItemToObject(s, "last_run", n))) {
        cJSON_Delete(n);
        cJSON_Delete(s);
        return NULL;
    }
    return s;
}

/* Decodes one UTF-8 sequence at p (NUL-terminated); *ret_len gets its length. Invalid
 * or truncated sequences (cJSON does not check) decode as one U+FFFD per byte. */
static unsigned utf8_next(const unsigned char *p, size_t *ret_len)
{
    unsigned c = p[0];
    size_t len = c < 0x80                 ? 1
                 : c >= 0xC2 && c <= 0xDF ? 2
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4
                                          : 0;
    if (len == 1) {
        *ret_len = 1;
        return c;
    }
    *ret_len = 1;
    if (len == 0)
        return 0xFFFD;
    unsigned cp = c & (0x7F >> len);
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) /* also stops at the terminator */
            return 0xFFFD;
        cp = cp << 6 | (p[k] & 0x3F);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0xFFFD;
    *ret_len = len;
    return cp;
}

/* JSON string, ASCII only, as Python's json.dumps (ensure_ascii) writes it. */
static int py_string(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = buf_addc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p && !rc;) {
        size_t len;
        unsigned cp = utf8_next(p, &len);
        p += len;
        char u[16];
        switch (cp) {
        case '"': rc = buf_adds(b, "\\\""); continue;
        case '\\': rc = buf_adds(b, "\\\\"); continue;
        case '\n': rc = buf_adds(b, "\\n"); continue;
        case '\r': rc = buf_adds(b, "\\r"); continue;
        case '\t': rc = buf_adds(b, "\\t"); continue;
        case '\b': rc = buf_adds(b, "\\b"); continue;
        case '\f': rc = buf_adds(b, "\\f"); continue;
        default: break;
        }
        if (cp >= 0x20 && cp < 0x7f) {
            rc = buf_addc(b, (char)cp);
        } else if (cp < 0x10000) {
            u[0] = '\\';
            u[1] = 'u';
            for (int k = 0; k < 4; k++)
                u[2 + k] = hex[(cp >> (12 - 4 * k)) & 15];
            rc = buf_add(b, u, 6);
        } else {
            unsigned v = cp - 0x10000, hi = 0xD800 + (v >> 10), lo = 0xDC00 + (v & 0x3FF);
            snprintf(u, sizeof(u), "\\u%04x\\u%04x", hi, lo);
            rc = buf_adds(b, u);
        }
    }
    return rc ? rc : buf_addc(b, '"');
}

/* Python's json.dumps of a parsed value, iteratively bounded by cJSON's own nesting. */
static int py_value(struct buf *b, const cJSON *v, int depth)
{
    if (depth > 64)
        return E_TOO_BIG;
    int rc = 0;
    if (cJSON_IsNull(v))
        return buf_adds(b, "null");
    if (cJSON_IsTrue(v))
        return buf_adds(b, "true");
    if (cJSON_IsFalse(v))
        return buf_adds(b, "false");
    if (cJSON_IsString(v))
        return py_string(b, v->valuestring);
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d))
            return buf_adds(b, "null"); /* cJSON reads 1e999 as infinity; JSON has none */
        if (d == floor(d) && fabs(d) < 9e15)
            return buf_printf(b, "%lld", (long long)d);
        return buf_printf(b, "%.17g", d);
    }
    bool obj = cJSON_IsObject(v);
    rc = buf_addc(b, obj ? '{' : '[');
    for (const cJSON *c = v->child; c && !rc; c = c->next) {
        if (c != v->child)
            rc = buf_adds(b, ", ");
        if (!rc && obj) {
            rc = py_string(b, c->string);
            if (!rc)
                rc = buf_adds(b, ": ");
        }
        if (!rc)
            rc = py_value(b, c, depth + 1);
    }
    return rc ? rc : buf_addc(b, obj ? '}' : ']');
}

char *state_serialize(const cJSON *state)
{
    struct buf b;
    buf_init(&b, STATE_MAX_TEXT);
    if ((state ? py_value(&b, state, 0) : buf_adds(&b, "null"))) {
        buf_release(&b);
        return NULL;
    }
    return buf_take(&b);
}

bool state_equal(const cJSON *a, const cJSON *b)
{
    if (!a || !b)
        return a == b;
    return cJSON_Compare(a, b, true);
}
