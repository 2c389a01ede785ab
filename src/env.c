/* env.c - env-file parsing and the merged settings source. */
#include "env.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define ENV_FILE_MAX (1024 * 1024)
#define ENV_ERRORS_SHOWN 8

void env_init(struct env *e)
{
    e->entries = NULL;
    e->len = 0;
    e->cap = 0;
}

void env_release(struct env *e)
{
    for (size_t i = 0; i < e->len; i++) {
        free(e->entries[i].key);
        free(e->entries[i].value);
    }
    free(e->entries);
    env_init(e);
}

static struct env_entry *find(const struct env *e, const char *key, size_t klen)
{
    for (size_t i = 0; i < e->len; i++)
        if (strlen(e->entries[i].key) == klen && memcmp(e->entries[i].key, key, klen) == 0)
            return &e->entries[i];
    return NULL;
}

static int set_n(struct env *e, const char *key, size_t klen, const char *value, size_t vlen)
{
    char *v = strndup(value, vlen);
    if (!v)
        return E_NOMEM;
    struct env_entry *ent = find(e, key, klen);
    if (ent) {
        free(ent->value);
        ent->value = v;
        return 0;
    }
    if (e->len == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 32;
        struct env_entry *p = realloc(e->entries, cap * sizeof(*p));
        if (!p) {
            free(v);
            return E_NOMEM;
        }
        e->entries = p;
        e->cap = cap;
    }
    char *k = strndup(key, klen);
    if (!k) {
        free(v);
        return E_NOMEM;
    }
    e->entries[e->len].key = k;
    e->entries[e->len].value = v;
    e->len++;
    return 0;
}

int env_set(struct env *e, const char *key, const char *value)
{
    return set_n(e, key, strlen(key), value, strlen(value));
}

const char *env_get(const struct env *e, const char *key)
{
    struct env_entry *ent = find(e, key, strlen(key));
    return ent ? ent->value : NULL;
}

static bool valid_key(const char *k, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)k[0]) || k[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)k[i]) || k[i] == '_'))
            return false;
    return true;
}

/* Records one bad line: counts it and keeps the first few messages in err. */
static void bad_line(struct err *err, size_t *nerr, size_t lineno, const char *why)
{
    (*nerr)++;
    if (!err || *nerr > ENV_ERRORS_SHOWN)
        return;
    size_t used = *nerr == 1 ? 0 : strlen(err->msg);
    if (*nerr == 1)
        err->msg[0] = '\0';
    snprintf(err->msg + used, sizeof(err->msg) - used, "%sline %zu: %s", *nerr == 1 ? "" : "; ",
             lineno, why);
}

/* Parses a value; writes the unquoted text to out. Returns false on bad quoting. */
static bool parse_value(const char *v, size_t n, struct buf *out, int *rc)
{
    *rc = 0;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        n--;
    if (n && (v[0] == '"' || v[0] == '\'')) {
        char q = v[0];
        if (n < 2 || v[n - 1] != q)
            return false;
        for (size_t i = 1; i < n - 1; i++) {
            char c = v[i];
            if (q == '"' && c == '\\' && i + 1 < n - 1 && (v[i + 1] == '"' || v[i + 1] == '\\'))
                c = v[++i];
            else if (c == q)
                return false; /* an unescaped quote in the middle */
            if ((*rc = buf_addc(out, c)))
                return true;
        }
        return true;
    }
    *rc = buf_add(out, v, n);
    return true;
}

int env_parse(struct env *e, const char *text, size_t len, size_t *ret_nerrors, struct err *err)
{
    size_t nerr = 0, lineno = 0;
    struct buf val;
    buf_init(&val, ENV_FILE_MAX);
    int rc = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        const char *s = p;
        p = nl ? nl + 1 : end;
        while (s < le && (*s == ' ' || *s == '\t'))
            s++;
        if (s == le || *s == '#' || (le - s == 1 && *s == '\r'))
            continue;
        if (memchr(s, '\0', (size_t)(le - s))) {
            bad_line(err, &nerr, lineno, "contains a NUL byte");
            continue;
        }
        if (le - s > 7 && memcmp(s, "export", 6) == 0 && (s[6] == ' ' || s[6] == '\t')) {
            s += 7;
            while (s < le && (*s == ' ' || *s == '\t'))
                s++;
        }
        const char *eq = memchr(s, '=', (size_t)(le - s));
        if (!eq) {
            bad_line(err, &nerr, lineno, "expected KEY=VALUE");
            continue;
        }
        const char *ke = eq;
        while (ke > s && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        if (!valid_key(s, (size_t)(ke - s))) {
            bad_line(err, &nerr, lineno, "the name before '=' is not a valid variable name");
            continue;
        }
        const char *vs = eq + 1;
        while (vs < le && (*vs == ' ' || *vs == '\t'))
            vs++;
        buf_reset(&val);
        if (!parse_value(vs, (size_t)(le - vs), &val, &rc)) {
            bad_line(err, &nerr, lineno, "unbalanced quotes in the value");
            continue;
        }
        if (rc || (rc = set_n(e, s, (size_t)(ke - s), val.data ? val.data : "", val.len)))
            goto out;
    }
    if (nerr > ENV_ERRORS_SHOWN && err) {
        size_t used = strlen(err->msg);
        snprintf(err->msg + used, sizeof(err->msg) - used, "; and %zu more",
                 nerr - ENV_ERRORS_SHOWN);
    }
    rc = nerr ? E_PARSE : 0;
out:
    buf_release(&val);
    *ret_nerrors = nerr;
    return rc;
}

int env_load_file(struct env *e, const char *path, size_t *ret_nerrors, struct err *err)
{
    *ret_nerrors = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(err, E_IO, "cannot open %s: %s", path, strerror(errno));
    struct buf b;
    buf_init(&b, ENV_FILE_MAX);
    int rc = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if ((rc = buf_add(&b, chunk, n))) {
            if (rc == E_TOO_BIG)
                err_set(err, rc, "%s is larger than %d bytes", path, ENV_FILE_MAX);
            goto out;
        }
    }
    if (ferror(f)) {
        rc = err_set(err, E_IO, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    rc = env_parse(e, b.data ? b.data : "", b.len, ret_nerrors, err);
    if (rc == E_PARSE)
        err_prefix(err, "%s", path);
out:
    buf_release(&b);
    fclose(f);
    return rc;
}

int env_overlay(struct env *e, char *const *vars)
{
    for (; vars && *vars; vars++) {
        const char *eq = strchr(*vars, '=');
        if (!eq)
            continue;
        int rc = set_n(e, *vars, (size_t)(eq - *vars), eq + 1, strlen(eq + 1));
        if (rc)
            return rc;
    }
    return 0;
}
