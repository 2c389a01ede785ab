/*
 * stix_split.c - pycti-compatible bundle split, iterative and linear.
 *
 * pycti's splitter is a recursive, memoised depth-first walk that mutates the objects it
 * visits. Reproducing its output "for any input" means reproducing the walk itself, with
 * its exact side effects, so this file models it closely:
 *
 *  - strings (ids, internal ids, references) are interned; everything the walk compares
 *    is compared by interned id ("sid"), on the decoded string value;
 *  - `raw` maps a sid to the object a reference resolves to (built in bundle order, an
 *    object's id first and then its internal ids, later entries overwriting earlier
 *    ones); `cache` maps a sid to the object whose visit was completed through it;
 *  - the recursion becomes an explicit stack of frames; "parent_acc" (the references
 *    followed to reach the current frame) is a per-sid count of frames on the stack;
 *  - `cache_refs[a]` (what a was found to depend on) is a set of (a, b) pairs;
 *  - a `_refs` member's value is modelled like a Python list object with identity. pycti
 *    assigns its new `to_keep` list to the member after every element, so a re-entrant
 *    visit of the same object (possible on reference cycles of length three or more,
 *    which the ancestor test does not catch at the root) iterates the outer visit's
 *    partial list. Lists therefore live in a pool, and members point to them.
 *
 * The cycle rules this reproduces: a reference is followed only when its type is
 * supported, it is not on the current path, it is not the object itself, and its target
 * does not already depend on the object (the back edge of a two-cycle). A rejected
 * `_refs` element is removed; a rejected `_ref` becomes null.
 *
 * Memory: the caller's buffer plus compact tables (members, objects, interned strings,
 * two pair sets, list nodes). Nothing here recurses.
 */
#include "stix_split.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <uuid/uuid.h>

#include "json_scan.h"

#define NONE UINT32_MAX
#define OPENCTI_EXTENSION "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba"
/* A list switches from linear membership scans to the pair set past this length. */
#define LIST_SCAN_MAX 16

/* ---- supported types (pycti 6.8.10 supported_types, PROTOCOL.md §4.7) ---------------- */

#define T(x)                                                                                       \
    {                                                                                              \
        x, sizeof(x) - 1                                                                           \
    }
static const struct {
    const char *name;
    size_t len;
} supported_types[] = {T("label"),
                       T("vocabulary"),
                       T("kill-chain-phase"),
                       T("attack-pattern"),
                       T("campaign"),
                       T("case-incident"),
                       T("x-opencti-case-incident"),
                       T("case-rfi"),
                       T("x-opencti-case-rfi"),
                       T("case-rft"),
                       T("x-opencti-case-rft"),
                       T("channel"),
                       T("course-of-action"),
                       T("data-component"),
                       T("x-mitre-data-component"),
                       T("data-source"),
                       T("x-mitre-data-source"),
                       T("event"),
                       T("external-reference"),
                       T("feedback"),
                       T("x-opencti-feedback"),
                       T("grouping"),
                       T("identity"),
                       T("incident"),
                       T("indicator"),
                       T("infrastructure"),
                       T("intrusion-set"),
                       T("language"),
                       T("location"),
                       T("malware"),
                       T("malware-analysis"),
                       T("marking-definition"),
                       T("narrative"),
                       T("note"),
                       T("observed-data"),
                       T("opinion"),
                       T("report"),
                       T("task"),
                       T("x-opencti-task"),
                       T("threat-actor"),
                       T("tool"),
                       T("vulnerability"),
                       T("security-coverage"),
                       T("user"),
                       T("group"),
                       T("capability"),
                       T("role"),
                       T("settings"),
                       T("notification"),
                       T("work"),
                       T("trash"),
                       T("draftworkspace"),
                       T("playbook"),
                       T("deleteoperation"),
                       T("workspace"),
                       T("publicdashboard"),
                       T("autonomous-system"),
                       T("directory"),
                       T("domain-name"),
                       T("email-addr"),
                       T("email-message"),
                       T("email-mime-part-type"),
                       T("artifact"),
                       T("file"),
                       T("x509-certificate"),
                       T("ipv4-addr"),
                       T("ipv6-addr"),
                       T("mac-addr"),
                       T("mutex"),
                       T("network-traffic"),
                       T("process"),
                       T("software"),
                       T("url"),
                       T("user-account"),
                       T("windows-registry-key"),
                       T("windows-registry-value-type"),
                       T("hostname"),
                       T("cryptographic-key"),
                       T("cryptocurrency-wallet"),
                       T("text"),
                       T("user-agent"),
                       T("bank-account"),
                       T("phone-number"),
                       T("credential"),
                       T("tracking-number"),
                       T("payment-card"),
                       T("media-content"),
                       T("simple-observable"),
                       T("persona"),
                       T("ssh-key"),
                       T("relationship"),
                       T("sighting"),
                       T("pir")};
#undef T

/* pycti: an id containing "--" is supported when the part before the first "--" is a
 * supported type; anything else is not an id and is not filtered. (Called once per
 * interned string.) */
static bool type_supported(const char *p, size_t n)
{
    const char *dd = NULL;
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == '-' && p[i + 1] == '-') {
            dd = p + i;
            break;
        }
    }
    if (!dd)
        return true;
    size_t tl = (size_t)(dd - p);
    for (size_t k = 0; k < sizeof(supported_types) / sizeof(supported_types[0]); k++)
        if (supported_types[k].len == tl && memcmp(supported_types[k].name, p, tl) == 0)
            return true;
    return false;
}

/* ---- small containers ------------------------------------------------------------------ */

/* Tables above this size are random-access heavy: back them with huge pages where the
 * kernel allows it (transparent huge pages in "madvise" mode), which spares most TLB
 * misses on bundles of a million objects. Only a hint: failure changes nothing. */
#define HUGE_HINT_MIN (4u << 20)

static void huge_hint(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    if (bytes < HUGE_HINT_MIN)
        return;
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t e = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
    if (e > a)
        (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

/* Grows an array to hold at least `need` elements of `size` bytes. */
static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    if (c > SIZE_MAX / size)
        return E_NOMEM;
    void *p = realloc(*arr, c * size);
    if (!p)
        return E_NOMEM;
    huge_hint(p, c * size);
    *arr = p;
    *cap = c;
    return 0;
}

#define GROW(arr, cap, need) grow((void **)&(arr), &(cap), (need), sizeof(*(arr)))

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = UINT64_C(0x9E3779B97F4A7C15) ^ (n * UINT64_C(0xff51afd7ed558ccd));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * UINT64_C(0x100000001b3);
        h ^= h >> 29;
    }
    uint64_t w = 0;
    for (size_t k = 0; i < n; i++, k += 8)
        w |= (uint64_t)(unsigned char)p[i] << k;
    return mix64(h ^ w);
}

/* A set of 64-bit keys, open addressing; key 0 is stored as a flag. */
struct u64set {
    uint64_t *slots;
    size_t cap, len;
    bool has_zero;
};

static bool u64set_has(const struct u64set *s, uint64_t k)
{
    if (k == 0)
        return s->has_zero;
    if (!s->cap)
        return false;
    size_t m = s->cap - 1, i = mix64(k) & m;
    while (s->slots[i]) {
        if (s->slots[i] == k)
            return true;
        i = (i + 1) & m;
    }
    return false;
}

static int u64set_add(struct u64set *s, uint64_t k)
{
    if (k == 0) {
        s->has_zero = true;
        return 0;
    }
    if ((s->len + 1) * 4 > s->cap * 3) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        uint64_t *ns = calloc(nc, sizeof(*ns));
        if (!ns)
            return E_NOMEM;
        huge_hint(ns, nc * sizeof(*ns));
        for (size_t j = 0; j < s->cap; j++) {
            uint64_t v = s->slots[j];
            if (!v)
                continue;
            size_t i = mix64(v) & (nc - 1);
            while (ns[i])
                i = (i + 1) & (nc - 1);
            ns[i] = v;
        }
        free(s->slots);
        s->slots = ns;
        s->cap = nc;
    }
    size_t m = s->cap - 1, i = mix64(k) & m;
    while (s->slots[i]) {
        if (s->slots[i] == k)
            return 0;
        i = (i + 1) & m;
    }
    s->slots[i] = k;
    s->len++;
    return 0;
}

static uint64_t pair(uint32_t a, uint32_t b)
{
    return (uint64_t)a << 32 | b;
}

/* Chunked arena for decoded strings (never moved once written). */
struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    char data[];
};

struct arena {
    struct arena_chunk *head;
};

static char *arena_alloc(struct arena *a, size_t n)
{
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        struct arena_chunk *c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    char *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static void arena_free(struct arena *a)
{
    while (a->head) {
        struct arena_chunk *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

/* ---- the model ------------------------------------------------------------------------- */

enum role { ROLE_RAW, ROLE_REF, ROLE_REFS, ROLE_EXTREFS, ROLE_KCP, ROLE_NBDEPS };
enum mstate { MS_ORIG, MS_NULL, MS_LIST, MS_SPANS };

struct member {
    uint32_t key_off, key_len; /* the key's literal (first occurrence) */
    uint32_t val_off, val_len; /* the value (last occurrence) */
    uint8_t role;
    uint8_t kind;  /* enum json_kind of the original value */
    uint8_t state; /* enum mstate: the member's current value */
    uint32_t aux;  /* MS_LIST: list id; MS_SPANS: first span */
    uint32_t aux2; /* MS_SPANS: span count */
};

enum tkind { T_OTHER, T_RELATIONSHIP, T_SIGHTING };

struct object {
    uint32_t mem_start, mem_count;
    uint32_t id_sid;
    uint32_t iid[2];   /* internal ids (x_opencti_id, OpenCTI extension id) or NONE */
    uint32_t m_a, m_b; /* relationship: source_ref, target_ref; sighting: sighting_of_ref,
                          where_sighted_refs (member indices, NONE when absent) */
    uint32_t off;      /* where the object starts, for messages */
    uint64_t nb_deps;
    uint8_t tkind;
    uint8_t has_nb;
    uint8_t emitted;
    uint8_t incompatible;
};

struct sstr {
    const char *p; /* decoded bytes (in the input when unescaped, else in the arena) */
    uint32_t len;
    uint32_t lit_off, lit_len; /* a JSON literal of it in the input */
    uint32_t raw_obj;          /* pycti's raw_data[s] */
    uint32_t cache_obj;        /* pycti's cache_index[s] */
    uint32_t on_path;          /* times it is in parent_acc */
    uint32_t visiting;         /* frames on the stack visiting through it (item_id) */
    uint32_t hash;             /* of the decoded bytes (intern table) */
    uint64_t dep_sig;          /* a one-word filter of the set deps(s): see dep_bit() */
    uint8_t supported;         /* 0 unknown, 1 yes, 2 no */
    uint8_t is_object_id;
};

struct list {
    uint32_t head, tail, len;
};

struct lnode {
    uint32_t sid, next;
};

struct span32 {
    uint32_t off, len;
};

struct frame {
    uint32_t obj, item_sid, path_sid;
    uint32_t mi; /* next member to process */
    uint64_t nb_deps;
    /* while iterating a _refs member */
    uint32_t iter_pos; /* MS_ORIG: json_iter position; MS_LIST: next node */
    uint32_t to_keep;  /* the list being built */
    uint32_t pending;  /* sid being visited by the child frame, or NONE */
    uint8_t in_refs;
    uint8_t iter_list; /* iterating a list (1) or the original array (0) */
    uint8_t iter_started;
    uint8_t pending_refs; /* the pending child is a _refs element (1) or a _ref (0) */
};

/* An intern table slot: the sid and its hash, so most probes need no string access. */
struct stab_slot {
    uint32_t sid; /* NONE: empty */
    uint32_t hash;
};

struct split_result {
    const char *s;
    size_t n;
    struct split_options opt;
    char bundle_id_gen[64];  /* when the bundle has no id */
    struct span32 bundle_id; /* the raw id value, or len 0 */

    struct member *mem;
    size_t nmem, capmem;
    struct object *obj;
    size_t nobj, capobj;

    struct sstr *str;
    size_t nstr, capstr;
    struct stab_slot *stab; /* intern hash table */
    size_t stab_cap;
    struct arena arena;

    struct u64set deps;    /* (a, b): a was found to depend on b (cache_refs) */
    struct u64set listmem; /* (list, sid) for lists longer than LIST_SCAN_MAX */
    struct list *lists;
    size_t nlists, caplists;
    struct lnode *nodes;
    size_t nnodes, capnodes;
    struct span32 *spans; /* kept external references / kill chain phases */
    size_t nspans, capspans;

    struct frame *stack;
    size_t depth, capstack;

    uint32_t *out; /* emitted objects, in send order after sorting */
    size_t nout, capout;
    uint32_t *incompat;
    size_t nincompat, capincompat;

    struct buf tmp; /* scratch for decoding */
};

/* ---- interning ----------------------------------------------------------------------- */

static int stab_rehash(struct split_result *r)
{
    size_t nc = r->stab_cap ? r->stab_cap * 2 : 4096;
    struct stab_slot *t = malloc(nc * sizeof(*t));
    if (!t)
        return E_NOMEM;
    huge_hint(t, nc * sizeof(*t));
    for (size_t j = 0; j < nc; j++)
        t[j].sid = NONE;
    for (size_t i = 0; i < r->nstr; i++) {
        size_t j = r->str[i].hash & (nc - 1);
        while (t[j].sid != NONE)
            j = (j + 1) & (nc - 1);
        t[j].sid = (uint32_t)i;
        t[j].hash = r->str[i].hash;
    }
    free(r->stab);
    r->stab = t;
    r->stab_cap = nc;
    return 0;
}

/* Interns decoded bytes p[0..n); lit is a literal of it in the input. */
static int intern_bytes(struct split_result *r, const char *p, size_t n, struct span32 lit,
                        bool copy, uint32_t *ret_sid)
{
    if ((r->nstr + 1) * 2 > r->stab_cap && stab_rehash(r))
        return E_NOMEM;
    uint32_t h = (uint32_t)hash_bytes(p, n);
    size_t m = r->stab_cap - 1, j = h & m;
    while (r->stab[j].sid != NONE) {
        if (r->stab[j].hash == h) {
            struct sstr *e = &r->str[r->stab[j].sid];
            if (e->len == n && memcmp(e->p, p, n) == 0) {
                *ret_sid = r->stab[j].sid;
                return 0;
            }
        }
        j = (j + 1) & m;
    }
    if (r->nstr >= NONE - 1 || GROW(r->str, r->capstr, r->nstr + 1))
        return E_NOMEM;
    const char *stored = p;
    if (copy) {
        char *c = arena_alloc(&r->arena, n ? n : 1);
        if (!c)
            return E_NOMEM;
        memcpy(c, p, n);
        stored = c;
    }
    struct sstr *e = &r->str[r->nstr];
    e->p = stored;
    e->len = (uint32_t)n;
    e->lit_off = lit.off;
    e->lit_len = lit.len;
    e->raw_obj = NONE;
    e->cache_obj = NONE;
    e->on_path = 0;
    e->visiting = 0;
    e->hash = h;
    e->dep_sig = 0;
    e->supported = 0;
    e->is_object_id = 0;
    r->stab[j].sid = (uint32_t)r->nstr;
    r->stab[j].hash = h;
    *ret_sid = (uint32_t)r->nstr++;
    return 0;
}

/* Interns the string value at span (a JSON string literal). */
static int intern_span(struct split_result *r, struct json_span v, uint32_t *ret_sid)
{
    struct span32 lit = {(uint32_t)v.off, (uint32_t)v.len};
    if (!json_str_has_escape(r->s, v))
        return intern_bytes(r, r->s + v.off + 1, v.len - 2, lit, false, ret_sid);
    buf_reset(&r->tmp);
    int rc = json_str_decode(r->s, v, &r->tmp);
    if (rc)
        return rc;
    return intern_bytes(r, r->tmp.data ? r->tmp.data : "", r->tmp.len, lit, true, ret_sid);
}

static bool sid_supported(struct split_result *r, uint32_t sid)
{
    struct sstr *e = &r->str[sid];
    if (!e->supported)
        e->supported = type_supported(e->p, e->len) ? 1 : 2;
    return e->supported == 1;
}

/* ---- parsing the bundle ------------------------------------------------------------------ */

static int perr(struct split_result *r, struct err *err, size_t at, const char *fmt, ...)
    ODS_PRINTF(4, 5);

static int perr(struct split_result *r, struct err *err, size_t at, const char *fmt, ...)
{
    if (err) {
        char what[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        size_t line, col;
        json_locate(r->s, r->n, at, &line, &col);
        snprintf(err->msg, sizeof(err->msg), "not a usable STIX bundle: %s (line %zu, column %zu)",
                 what, line, col);
    }
    return E_PARSE;
}

static bool ends_with(const char *p, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(p + n - k, suf, k) == 0;
}

static bool key_is(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* A member while an object is being read: the decoded key too. */
struct pmem {
    const char *kp;
    size_t kn;
    uint64_t kh;
};

/* Truthiness of a value as Python sees it (for internal ids). */
static bool truthy_string(const char *s, struct json_span v)
{
    return json_kind_at(s, v.off) == JSON_STRING && v.len > 2;
}

/* Reads the object starting at off (objects[index]); *ret_end is the offset past it. */
static int read_object(struct split_result *r, size_t off, size_t index, size_t *ret_end,
                       struct err *err, struct pmem **pm, size_t *cappm)
{
    const char *s = r->s;
    struct json_span ov = {off, 0};
    if (json_kind_at(s, ov.off) != JSON_OBJECT)
        return perr(r, err, ov.off, "objects[%zu] is not a JSON object", index);
    if (GROW(r->obj, r->capobj, r->nobj + 1))
        return E_NOMEM;
    struct object *o = &r->obj[r->nobj];
    memset(o, 0, sizeof(*o));
    o->mem_start = (uint32_t)r->nmem;
    o->id_sid = o->iid[0] = o->iid[1] = o->m_a = o->m_b = NONE;
    o->off = (uint32_t)ov.off;

    struct json_iter it;
    struct json_span k, v;
    size_t count = 0;
    int rc;
    json_iter_init(&it, ov.off);
    /* Decoded keys live in r->tmp for the duration of this object when escaped; record
     * offsets, not pointers, since tmp may move. */
    buf_reset(&r->tmp);
    while (json_obj_next(s, &it, &k, &v)) {
        const char *kp;
        size_t kn;
        if (json_str_has_escape(s, k)) {
            size_t at = r->tmp.len;
            if ((rc = json_str_decode(s, k, &r->tmp)))
                return rc;
            kp = (const char *)(uintptr_t)(at + 1); /* tagged offset, fixed below */
            kn = r->tmp.len - at;
        } else {
            kp = s + k.off + 1;
            kn = k.len - 2;
        }
        if (GROW(*pm, *cappm, count + 1) || GROW(r->mem, r->capmem, r->nmem + 1))
            return E_NOMEM;
        (*pm)[count].kp = kp;
        (*pm)[count].kn = kn;
        (*pm)[count].kh = json_str_has_escape(s, k) ? 1 : 0; /* 1: kp is a tmp offset */
        struct member *m = &r->mem[r->nmem];
        m->key_off = (uint32_t)k.off;
        m->key_len = (uint32_t)k.len;
        m->val_off = (uint32_t)v.off;
        m->val_len = (uint32_t)v.len;
        m->kind = (uint8_t)json_kind_at(s, v.off);
        m->state = MS_ORIG;
        m->aux = m->aux2 = 0;
        r->nmem++;
        count++;
    }
    *ret_end = json_skip_ws(s, it.pos) + 1; /* past the closing brace */
    /* resolve decoded keys to pointers now that tmp no longer moves */
    for (size_t i = 0; i < count; i++) {
        if ((*pm)[i].kh == 1)
            (*pm)[i].kp = r->tmp.data + ((uintptr_t)(*pm)[i].kp - 1);
        /* only large objects use a hash table for duplicate keys */
        (*pm)[i].kh = count > 12 ? hash_bytes((*pm)[i].kp, (*pm)[i].kn) : 0;
    }
    /* Python dicts keep the first position of a key and its last value. */
    size_t out = 0;
    struct member *base = &r->mem[o->mem_start];
    if (count > 1) {
        /* index of kept members by key: small objects compare pairwise, large ones use a
         * temporary hash table */
        size_t tcap = 1;
        while (tcap < count * 2)
            tcap *= 2;
        uint32_t *tab = NULL;
        if (count > 12) {
            tab = malloc(tcap * sizeof(*tab));
            if (!tab)
                return E_NOMEM;
            memset(tab, 0xff, tcap * sizeof(*tab));
        }
        for (size_t i = 0; i < count; i++) {
            struct pmem *p = &(*pm)[i];
            size_t found = NONE;
            if (tab) {
                size_t j = p->kh & (tcap - 1);
                while (tab[j] != NONE) {
                    struct pmem *q = &(*pm)[tab[j]];
                    if (q->kn == p->kn && memcmp(q->kp, p->kp, p->kn) == 0) {
                        found = tab[j];
                        break;
                    }
                    j = (j + 1) & (tcap - 1);
                }
                if (found == NONE)
                    tab[j] = (uint32_t)out;
            } else {
                for (size_t j = 0; j < out; j++) {
                    struct pmem *q = &(*pm)[j];
                    if (q->kh == p->kh && q->kn == p->kn && memcmp(q->kp, p->kp, p->kn) == 0) {
                        found = j;
                        break;
                    }
                }
            }
            if (found != NONE) {
                base[found].val_off = base[i].val_off;
                base[found].val_len = base[i].val_len;
                base[found].kind = base[i].kind;
            } else {
                (*pm)[out] = *p;
                base[out] = base[i];
                out++;
            }
        }
        free(tab);
    } else {
        out = count;
    }

    /* roles and the members pycti looks at */
    struct json_span idv = {0, 0}, typev = {0, 0}, xidv = {0, 0}, extv = {0, 0};
    bool has_id = false, has_type = false, has_xid = false, has_ext = false;
    size_t kept = 0;
    for (size_t i = 0; i < out; i++) {
        struct pmem *p = &(*pm)[i];
        struct member *m = &base[i];
        struct json_span mv = {m->val_off, m->val_len};
        if (r->opt.remove_creator && key_is(p->kp, p->kn, "created_by_ref"))
            continue; /* CONFIG_REMOVE_CREATOR deletes the key before the split */
        if (ends_with(p->kp, p->kn, "_refs"))
            m->role = ROLE_REFS;
        else if (ends_with(p->kp, p->kn, "_ref"))
            m->role = ROLE_REF;
        else if (key_is(p->kp, p->kn, "external_references"))
            m->role = ROLE_EXTREFS;
        else if (key_is(p->kp, p->kn, "kill_chain_phases"))
            m->role = ROLE_KCP;
        else if (key_is(p->kp, p->kn, "nb_deps"))
            m->role = ROLE_NBDEPS;
        else
            m->role = ROLE_RAW;
        if (key_is(p->kp, p->kn, "id")) {
            idv = mv;
            has_id = true;
        } else if (key_is(p->kp, p->kn, "type")) {
            typev = mv;
            has_type = true;
        } else if (key_is(p->kp, p->kn, "x_opencti_id")) {
            xidv = mv;
            has_xid = true;
        } else if (key_is(p->kp, p->kn, "extensions")) {
            extv = mv;
            has_ext = true;
        }
        base[kept++] = *m;
    }
    r->nmem = o->mem_start + kept;
    o->mem_count = (uint32_t)kept;

    if (!has_id)
        return perr(r, err, ov.off, "objects[%zu] has no \"id\"", index);
    if (json_kind_at(s, idv.off) != JSON_STRING)
        return perr(r, err, idv.off, "objects[%zu] has an \"id\" that is not a string", index);
    if (!has_type)
        return perr(r, err, ov.off, "objects[%zu] has no \"type\"", index);
    if (json_kind_at(s, typev.off) != JSON_STRING)
        return perr(r, err, typev.off, "objects[%zu] has a \"type\" that is not a string", index);
    if (json_str_equals(s, typev, "relationship", 12))
        o->tkind = T_RELATIONSHIP;
    else if (json_str_equals(s, typev, "sighting", 8))
        o->tkind = T_SIGHTING;
    /* the members the compatibility test reads */
    if (o->tkind == T_RELATIONSHIP || o->tkind == T_SIGHTING) {
        const char *a = o->tkind == T_RELATIONSHIP ? "source_ref" : "sighting_of_ref";
        const char *b = o->tkind == T_RELATIONSHIP ? "target_ref" : "where_sighted_refs";
        uint32_t ma = NONE, mb = NONE;
        for (uint32_t i = 0; i < kept; i++) {
            struct member *m = &base[i];
            struct json_span ks = {m->key_off, m->key_len};
            if (json_str_equals(s, ks, a, strlen(a)))
                ma = i;
            else if (json_str_equals(s, ks, b, strlen(b)))
                mb = i;
        }
        o->m_a = ma;
        o->m_b = mb;
    }

    if ((rc = intern_span(r, idv, &o->id_sid)))
        return rc;
    struct sstr *ide = &r->str[o->id_sid];
    if (ide->is_object_id) {
        size_t prev = ide->raw_obj != NONE ? ide->raw_obj : 0;
        return perr(r, err, idv.off, "objects[%zu] repeats the id \"%.*s\" of objects[%zu]", index,
                    (int)(ide->len > 200 ? 200 : ide->len), ide->p, prev);
    }
    ide->is_object_id = 1;
    /* internal ids: x_opencti_id and extensions[OPENCTI_EXTENSION].id, when truthy strings */
    int ni = 0;
    if (has_xid && truthy_string(s, xidv) && (rc = intern_span(r, xidv, &o->iid[ni++])))
        return rc;
    if (has_ext && json_kind_at(s, extv.off) == JSON_OBJECT) {
        struct json_iter ei;
        struct json_span ek, evv, found = {0, 0};
        json_iter_init(&ei, extv.off);
        while (json_obj_next(s, &ei, &ek, &evv))
            if (json_str_equals(s, ek, OPENCTI_EXTENSION, strlen(OPENCTI_EXTENSION)))
                found = evv;
        if (found.len && json_kind_at(s, found.off) == JSON_OBJECT) {
            struct json_span idx = {0, 0};
            json_iter_init(&ei, found.off);
            while (json_obj_next(s, &ei, &ek, &evv))
                if (json_str_equals(s, ek, "id", 2))
                    idx = evv;
            if (idx.len && truthy_string(s, idx) && (rc = intern_span(r, idx, &o->iid[ni++])))
                return rc;
        }
    }
    r->nobj++;
    return 0;
}

static int read_bundle(struct split_result *r, struct err *err)
{
    struct json_error je;
    struct json_members root = {0};
    size_t start;
    int rc = json_validate(r->s, r->n, JSON_MAX_DEPTH, &start, &root, &je);
    if (rc) {
        json_members_release(&root);
        if (rc == E_NOMEM)
            return rc;
        if (err)
            snprintf(err->msg, sizeof(err->msg), "not valid JSON: %s (line %zu, column %zu)",
                     je.what, je.line, je.column);
        return E_PARSE;
    }
    const char *s = r->s;
    if (json_kind_at(s, start) != JSON_OBJECT) {
        json_members_release(&root);
        return perr(r, err, start, "the document is not a JSON object");
    }
    /* the last "objects" and "id" win, as in a Python dict */
    struct json_span objects = {0, 0};
    bool has_objects = false;
    for (size_t i = 0; i < root.len; i++) {
        if (json_str_equals(s, root.v[i].key, "objects", 7)) {
            objects = root.v[i].value;
            has_objects = true;
        } else if (json_str_equals(s, root.v[i].key, "id", 2)) {
            r->bundle_id.off = (uint32_t)root.v[i].value.off;
            r->bundle_id.len = (uint32_t)root.v[i].value.len;
        }
    }
    json_members_release(&root);
    if (!has_objects)
        return perr(r, err, start, "no \"objects\" member");
    if (json_kind_at(s, objects.off) != JSON_ARRAY)
        return perr(r, err, objects.off, "\"objects\" is not an array");
    if (!r->bundle_id.len) {
        uuid_t u;
        char txt[37];
        uuid_generate_random(u);
        uuid_unparse_lower(u, txt);
        snprintf(r->bundle_id_gen, sizeof(r->bundle_id_gen), "\"bundle--%s\"", txt);
    }
    struct pmem *pm = NULL;
    size_t cappm = 0, index = 0;
    /* walk the array by hand: each object's end comes from reading its members, so the
     * objects are not scanned twice */
    size_t i = json_skip_ws(s, objects.off + 1);
    rc = 0;
    while (s[i] != ']') {
        size_t end = 0;
        if ((rc = read_object(r, i, index++, &end, err, &pm, &cappm)))
            break;
        i = json_skip_ws(s, end);
        if (s[i] == ',')
            i = json_skip_ws(s, i + 1);
    }
    free(pm);
    if (rc)
        return rc;
    /* raw_data: built in bundle order, each object's id and then its internal ids, later
     * entries overwriting earlier ones */
    for (size_t k = 0; k < r->nobj; k++) {
        struct object *o = &r->obj[k];
        r->str[o->id_sid].raw_obj = (uint32_t)k;
        for (int j = 0; j < 2; j++)
            if (o->iid[j] != NONE)
                r->str[o->iid[j]].raw_obj = (uint32_t)k;
    }
    return 0;
}

/* ---- lists ----------------------------------------------------------------------------- */

static int list_new(struct split_result *r, uint32_t *ret)
{
    if (r->nlists >= NONE - 1 || GROW(r->lists, r->caplists, r->nlists + 1))
        return E_NOMEM;
    r->lists[r->nlists].head = r->lists[r->nlists].tail = NONE;
    r->lists[r->nlists].len = 0;
    *ret = (uint32_t)r->nlists++;
    return 0;
}

static bool list_has(const struct split_result *r, uint32_t l, uint32_t sid)
{
    const struct list *L = &r->lists[l];
    if (L->len > LIST_SCAN_MAX)
        return u64set_has(&r->listmem, pair(l, sid));
    for (uint32_t n = L->head; n != NONE; n = r->nodes[n].next)
        if (r->nodes[n].sid == sid)
            return true;
    return false;
}

static int list_push(struct split_result *r, uint32_t l, uint32_t sid)
{
    if (r->nnodes >= NONE - 1 || GROW(r->nodes, r->capnodes, r->nnodes + 1))
        return E_NOMEM;
    uint32_t n = (uint32_t)r->nnodes++;
    r->nodes[n].sid = sid;
    r->nodes[n].next = NONE;
    struct list *L = &r->lists[l];
    if (L->tail == NONE)
        L->head = n;
    else
        r->nodes[L->tail].next = n;
    L->tail = n;
    L->len++;
    int rc = 0;
    if (L->len == LIST_SCAN_MAX + 1) {
        for (uint32_t k = L->head; k != NONE && !rc; k = r->nodes[k].next)
            rc = u64set_add(&r->listmem, pair(l, r->nodes[k].sid));
    } else if (L->len > LIST_SCAN_MAX) {
        rc = u64set_add(&r->listmem, pair(l, sid));
    }
    return rc;
}

/* ---- external references and kill chain phases -------------------------------------------- */

/* Appends a canonical key for value v (tagged by kind; strings decoded). */
static int canon_value(struct split_result *r, struct json_span v, bool present, struct buf *out)
{
    if (!present || json_kind_at(r->s, v.off) == JSON_NULL)
        return buf_adds(out, "n;");
    if (json_kind_at(r->s, v.off) == JSON_STRING) {
        size_t at = out->len;
        int rc = buf_addc(out, 's');
        if (!rc)
            rc = json_str_decode(r->s, v, out);
        if (!rc)
            rc = buf_printf(out, ";%zu;", out->len - at - 1);
        return rc;
    }
    int rc = buf_addc(out, 'v');
    if (!rc)
        rc = json_minify(r->s, v, out);
    return rc ? rc : buf_adds(out, ";");
}

/* Looks up up to three keys of the object at ov (last occurrence wins). */
static void get3(const char *s, struct json_span ov, const char *const names[3],
                 struct json_span vals[3], bool present[3])
{
    struct json_iter it;
    struct json_span k, v;
    for (int i = 0; i < 3; i++)
        present[i] = false;
    json_iter_init(&it, ov.off);
    while (json_obj_next(s, &it, &k, &v)) {
        for (int i = 0; i < 3; i++) {
            if (names[i] && json_str_equals(s, k, names[i], strlen(names[i]))) {
                vals[i] = v;
                present[i] = true;
            }
        }
    }
}

/*
 * pycti keeps, in order, the first external reference per deterministic id (from url
 * when it is not null, else from source_name and external_id when both are not null;
 * otherwise there is no id and the reference is dropped), and the first kill chain
 * phase per (kill_chain_name, phase_name). Comparing canonical keys is equivalent to
 * comparing the UUIDv5 ids built from them. Elements that are not objects are dropped.
 */
static int dedupe_member(struct split_result *r, struct member *m)
{
    if (m->state == MS_SPANS || m->kind != JSON_ARRAY)
        return 0; /* already done (the result is a fixed point), or not a list */
    static const char *const ext_names[3] = {"url", "source_name", "external_id"};
    static const char *const kcp_names[3] = {"kill_chain_name", "phase_name", NULL};
    bool ext = m->role == ROLE_EXTREFS;
    struct buf keys;
    buf_init(&keys, SIZE_MAX / 2);
    struct span32 *ks = NULL; /* offsets of each kept key in `keys` */
    size_t nks = 0, capks = 0;
    uint32_t first = (uint32_t)r->nspans;
    struct json_iter it;
    struct json_span e;
    int rc = 0;
    json_iter_init(&it, m->val_off);
    while (json_arr_next(r->s, &it, &e)) {
        if (json_kind_at(r->s, e.off) != JSON_OBJECT)
            continue;
        struct json_span vals[3];
        bool present[3];
        get3(r->s, e, ext ? ext_names : kcp_names, vals, present);
        size_t at = keys.len;
        if (ext) {
            bool url = present[0] && json_kind_at(r->s, vals[0].off) != JSON_NULL;
            bool src = present[1] && json_kind_at(r->s, vals[1].off) != JSON_NULL;
            bool xid = present[2] && json_kind_at(r->s, vals[2].off) != JSON_NULL;
            if (url) {
                rc = buf_adds(&keys, "U");
                if (!rc)
                    rc = canon_value(r, vals[0], true, &keys);
            } else if (src && xid) {
                rc = buf_adds(&keys, "S");
                if (!rc)
                    rc = canon_value(r, vals[1], true, &keys);
                if (!rc)
                    rc = canon_value(r, vals[2], true, &keys);
            } else {
                continue; /* no id: dropped */
            }
        } else {
            rc = canon_value(r, vals[0], present[0], &keys);
            if (!rc)
                rc = canon_value(r, vals[1], present[1], &keys);
        }
        if (rc)
            break;
        size_t klen = keys.len - at;
        bool dup = false;
        for (size_t j = 0; j < nks && !dup; j++)
            dup = ks[j].len == klen && memcmp(keys.data + ks[j].off, keys.data + at, klen) == 0;
        if (dup) {
            keys.len = at;
            continue;
        }
        if (GROW(ks, capks, nks + 1) || GROW(r->spans, r->capspans, r->nspans + 1)) {
            rc = E_NOMEM;
            break;
        }
        ks[nks].off = (uint32_t)at;
        ks[nks].len = (uint32_t)klen;
        nks++;
        r->spans[r->nspans].off = (uint32_t)e.off;
        r->spans[r->nspans].len = (uint32_t)e.len;
        r->nspans++;
    }
    free(ks);
    buf_release(&keys);
    if (rc)
        return rc;
    m->state = MS_SPANS;
    m->aux = first;
    m->aux2 = (uint32_t)(r->nspans - first);
    return 0;
}

/* ---- the walk ------------------------------------------------------------------------------ */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* cache_refs membership is asked for every candidate reference, and the answer is almost
 * always "no": each string keeps a 64-bit signature of what it depends on, so the pair set
 * (a cache miss on big bundles) is only consulted when the signature says "maybe". */
static uint64_t dep_bit(uint32_t sid)
{
    return UINT64_C(1) << ((sid * UINT32_C(0x9E3779B1)) >> 26);
}

static int add_dep(struct split_result *r, uint32_t from, uint32_t to)
{
    /* The pair (from, to) is only ever looked up by a frame visiting through `to` (it is
     * that frame's item, asking whether a candidate reference depends on it). Once a visit
     * through `to` is complete and none is in progress, none will start (enter() answers
     * from the cache), so the pair would never be read: most pairs of a bundle whose
     * references point to objects listed before them. */
    const struct sstr *t = &r->str[to];
    if (t->cache_obj != NONE && t->visiting == 0)
        return 0;
    r->str[from].dep_sig |= dep_bit(to);
    return u64set_add(&r->deps, pair(from, to));
}

static bool has_dep(const struct split_result *r, uint32_t from, uint32_t to)
{
    return (r->str[from].dep_sig & dep_bit(to)) && u64set_has(&r->deps, pair(from, to));
}

/* Whether a reference r from the object reached as item_sid is followed. */
static bool accept_ref(struct split_result *r, uint32_t rsid, uint32_t item_sid)
{
    return sid_supported(r, rsid) && r->str[rsid].on_path == 0 && rsid != item_sid &&
           !has_dep(r, rsid, item_sid);
}

/*
 * pycti's enlist_element(sid): 0 when nothing resolves, the cached count when the visit
 * through this string is complete, else a new frame (returns 1 in *ret_pushed).
 */
static int enter(struct split_result *r, uint32_t sid, uint32_t path_sid, uint64_t *ret_value,
                 int *ret_pushed)
{
    struct sstr *e = &r->str[sid];
    *ret_pushed = 0;
    if (e->raw_obj == NONE) {
        *ret_value = 0;
        return 0;
    }
    if (e->cache_obj != NONE) {
        *ret_value = r->obj[e->cache_obj].nb_deps;
        return 0;
    }
    if (GROW(r->stack, r->capstack, r->depth + 1))
        return E_NOMEM;
    struct frame *f = &r->stack[r->depth++];
    memset(f, 0, sizeof(*f));
    f->obj = e->raw_obj;
    f->item_sid = sid;
    f->path_sid = path_sid;
    f->nb_deps = 1;
    f->pending = NONE;
    if (path_sid != NONE)
        r->str[path_sid].on_path++;
    r->str[sid].visiting++;
    *ret_pushed = 1;
    return 0;
}

/* pycti's compatibility test, on the members' current values: a relationship needs
 * source_ref and target_ref not null, a sighting sighting_of_ref not null and a non-empty
 * where_sighted_refs list; anything else a supported type in the id it was reached by. */
static bool compatible(struct split_result *r, const struct frame *f)
{
    struct object *o = &r->obj[f->obj];
    if (o->tkind == T_OTHER)
        return sid_supported(r, f->item_sid);
    if (o->m_a == NONE || o->m_b == NONE)
        return false; /* deviation: pycti raises KeyError here */
    struct member *a = &r->mem[o->mem_start + o->m_a], *b = &r->mem[o->mem_start + o->m_b];
    bool a_ok = a->state != MS_NULL && a->kind != JSON_NULL;
    if (o->tkind == T_RELATIONSHIP)
        return a_ok && b->state != MS_NULL && b->kind != JSON_NULL;
    size_t len = 0;
    if (b->state == MS_LIST) {
        len = r->lists[b->aux].len;
    } else if (b->kind == JSON_ARRAY) {
        struct json_iter it;
        struct json_span v;
        json_iter_init(&it, b->val_off);
        len = json_arr_next(r->s, &it, &v) ? 1 : 0;
    }
    /* deviation: a where_sighted_refs that is not a list (pycti raises or iterates a
     * string's characters) makes the sighting incompatible */
    return a_ok && len > 0;
}

/* Completes the top frame (pycti: the end of enlist_element) and pops it. */
static int finish_frame(struct split_result *r, uint64_t *ret_value)
{
    struct frame *f = &r->stack[r->depth - 1];
    struct object *o = &r->obj[f->obj];
    o->nb_deps = f->nb_deps;
    o->has_nb = 1;
    struct sstr *item = &r->str[f->item_sid];
    if (item->cache_obj == NONE) {
        if (compatible(r, f)) {
            if (!o->emitted) { /* deviation: never emit an object twice */
                if (GROW(r->out, r->capout, r->nout + 1))
                    return E_NOMEM;
                r->out[r->nout++] = f->obj;
                o->emitted = 1;
            }
        } else if (!o->incompatible) {
            if (GROW(r->incompat, r->capincompat, r->nincompat + 1))
                return E_NOMEM;
            r->incompat[r->nincompat++] = f->obj;
            o->incompatible = 1;
        }
        item->cache_obj = f->obj;
        /* As pycti: cached under the id it was reached by and its internal ids, not under
         * its own id when reached through an internal one. A later visit through its own id
         * walks it again (that walk can clean more references and changes nb_deps, which
         * the one copy sent shows); only the second emission is dropped. */
        for (int j = 0; j < 2; j++)
            if (o->iid[j] != NONE)
                r->str[o->iid[j]].cache_obj = f->obj;
    }
    if (f->path_sid != NONE)
        r->str[f->path_sid].on_path--;
    r->str[f->item_sid].visiting--;
    *ret_value = f->nb_deps;
    r->depth--;
    return 0;
}

/* Applies a finished child's count to the frame that was waiting for it. */
static int child_done(struct split_result *r, struct frame *f, uint64_t value)
{
    f->nb_deps = sat_add(f->nb_deps, value);
    uint32_t sid = f->pending;
    f->pending = NONE;
    if (!f->pending_refs)
        return 0;
    struct member *m = &r->mem[r->obj[f->obj].mem_start + f->mi];
    if (!list_has(r, f->to_keep, sid)) {
        int rc = list_push(r, f->to_keep, sid);
        if (rc)
            return rc;
    }
    m->state = MS_LIST; /* pycti: item[key] = to_keep, after every element */
    m->aux = f->to_keep;
    return 0;
}

/* The top frame follows an accepted reference rsid (from a _refs element when in_refs):
 * pycti appends it to cache_refs[item] and recurses. The child's count is applied now
 * when the visit is already cached, or when the child frame pushed here finishes. */
static int follow_ref(struct split_result *r, uint32_t rsid, bool in_refs, int *ret_pushed)
{
    struct frame *f = &r->stack[r->depth - 1];
    int rc = add_dep(r, f->item_sid, rsid);
    if (rc)
        return rc;
    uint64_t v;
    int pushed;
    if ((rc = enter(r, rsid, rsid, &v, &pushed)))
        return rc;
    f = &r->stack[r->depth - 1 - (pushed ? 1 : 0)]; /* the stack may have moved */
    f->pending = rsid;
    f->pending_refs = in_refs;
    if (pushed) {
        *ret_pushed = 1;
        return 0;
    }
    return child_done(r, f, v);
}

/* Advances frame f by one step. Sets *ret_pushed when a child frame was pushed. */
static int step(struct split_result *r, int *ret_pushed)
{
    struct frame *f = &r->stack[r->depth - 1];
    struct object *o = &r->obj[f->obj];
    int rc;
    uint64_t v;
    *ret_pushed = 0;
    if (f->mi >= o->mem_count) {
        if ((rc = finish_frame(r, &v)))
            return rc;
        return r->depth ? child_done(r, &r->stack[r->depth - 1], v) : 0;
    }

    struct member *m = &r->mem[o->mem_start + f->mi];
    if (f->in_refs) {
        /* next element of the _refs member being iterated */
        uint32_t rsid = NONE;
        bool have = false, is_string = false;
        struct json_span ev;
        if (f->iter_list) {
            if (f->iter_pos != NONE) {
                rsid = r->nodes[f->iter_pos].sid;
                f->iter_pos = r->nodes[f->iter_pos].next;
                have = is_string = true;
            }
        } else {
            struct json_iter it = {f->iter_pos, f->iter_started};
            if (json_arr_next(r->s, &it, &ev)) {
                have = true;
                is_string = json_kind_at(r->s, ev.off) == JSON_STRING;
                if (is_string && (rc = intern_span(r, ev, &rsid)))
                    return rc;
            }
            f->iter_pos = (uint32_t)it.pos;
            f->iter_started = 1;
        }
        if (!have) {
            f->in_refs = 0;
            f->mi++;
            return 0;
        }
        /* deviation: a non-string element is dropped (pycti raises) */
        if (is_string && accept_ref(r, rsid, f->item_sid))
            return follow_ref(r, rsid, true, ret_pushed);
        m->state = MS_LIST;
        m->aux = f->to_keep;
        return 0;
    }

    switch (m->role) {
    case ROLE_REFS:
        if (m->state == MS_LIST) {
            f->iter_list = 1;
            f->iter_pos = r->lists[m->aux].head;
        } else if (m->state == MS_ORIG && m->kind == JSON_ARRAY) {
            f->iter_list = 0;
            f->iter_pos = m->val_off;
            f->iter_started = 0;
        } else {
            f->mi++; /* deviation: a value that is not an array is left untouched */
            return 0;
        }
        if ((rc = list_new(r, &f->to_keep)))
            return rc;
        f->in_refs = 1;
        return 0;
    case ROLE_REF: {
        f->mi++;
        if (m->state == MS_NULL || m->kind == JSON_NULL) {
            m->state = MS_NULL;
            return 0;
        }
        if (m->kind != JSON_STRING) {
            m->state = MS_NULL; /* deviation: a non-string reference is cleaned */
            return 0;
        }
        uint32_t rsid;
        struct json_span sv = {m->val_off, m->val_len};
        if ((rc = intern_span(r, sv, &rsid)))
            return rc;
        if (!accept_ref(r, rsid, f->item_sid)) {
            m->state = MS_NULL;
            return 0;
        }
        return follow_ref(r, rsid, false, ret_pushed);
    }
    case ROLE_EXTREFS:
    case ROLE_KCP: f->mi++; return dedupe_member(r, m);
    default: f->mi++; return 0;
    }
}

static int walk(struct split_result *r)
{
    for (size_t i = 0; i < r->nobj; i++) {
        uint64_t v;
        int pushed, rc;
        if ((rc = enter(r, r->obj[i].id_sid, NONE, &v, &pushed)))
            return rc;
        while (r->depth) {
            if ((rc = step(r, &pushed)))
                return rc;
        }
    }
    return 0;
}

/* ---- sorting ---------------------------------------------------------------------------- */

/* Stable sort of r->out by nb_deps: LSD radix sort on 16-bit digits, as many passes as
 * the largest count needs (one for every realistic bundle). */
static int sort_output(struct split_result *r)
{
    size_t n = r->nout;
    if (n < 2)
        return 0;
    uint64_t max = 0;
    for (size_t i = 0; i < n; i++)
        if (r->obj[r->out[i]].nb_deps > max)
            max = r->obj[r->out[i]].nb_deps;
    uint32_t *tmp = malloc(n * sizeof(*tmp));
    size_t *count = malloc(65537 * sizeof(*count));
    if (!tmp || !count) {
        free(tmp);
        free(count);
        return E_NOMEM;
    }
    for (int shift = 0; shift < 64 && (max >> shift) != 0; shift += 16) {
        memset(count, 0, 65537 * sizeof(*count));
        for (size_t i = 0; i < n; i++)
            count[((r->obj[r->out[i]].nb_deps >> shift) & 0xFFFF) + 1]++;
        for (size_t d = 1; d <= 65536; d++)
            count[d] += count[d - 1];
        for (size_t i = 0; i < n; i++)
            tmp[count[(r->obj[r->out[i]].nb_deps >> shift) & 0xFFFF]++] = r->out[i];
        memcpy(r->out, tmp, n * sizeof(*tmp));
    }
    free(tmp);
    free(count);
    return 0;
}

/* ---- public API ------------------------------------------------------------------------- */

int split_bundle(const char *data, size_t len, const struct split_options *opt,
                 struct split_result **ret, struct err *err)
{
    if (len > SPLIT_MAX_INPUT)
        return err_set(err, E_TOO_BIG, "the bundle is %zu bytes; at most %u can be split", len,
                       (unsigned)SPLIT_MAX_INPUT);
    struct split_result *r = calloc(1, sizeof(*r));
    if (!r)
        return err_set(err, E_NOMEM, "out of memory");
    r->s = data;
    r->n = len;
    if (opt)
        r->opt = *opt;
    else
        r->opt.with_nb_deps = true;
    buf_init(&r->tmp, SIZE_MAX / 2);
    int rc = read_bundle(r, err);
    if (!rc)
        rc = walk(r);
    if (!rc)
        rc = sort_output(r);
    /* the walk's working state is not needed for rendering */
    free(r->stack);
    r->stack = NULL;
    free(r->deps.slots);
    free(r->listmem.slots);
    memset(&r->deps, 0, sizeof(r->deps));
    memset(&r->listmem, 0, sizeof(r->listmem));
    free(r->stab);
    r->stab = NULL;
    buf_release(&r->tmp);
    if (rc) {
        if (rc == E_NOMEM)
            err_set(err, rc, "out of memory while splitting the bundle");
        split_free(r);
        return rc;
    }
    *ret = r;
    return 0;
}

void split_free(struct split_result *r)
{
    if (!r)
        return;
    free(r->mem);
    free(r->obj);
    free(r->str);
    free(r->stab);
    arena_free(&r->arena);
    free(r->deps.slots);
    free(r->listmem.slots);
    free(r->lists);
    free(r->nodes);
    free(r->spans);
    free(r->stack);
    free(r->out);
    free(r->incompat);
    buf_release(&r->tmp);
    free(r);
}

size_t split_count(const struct split_result *r)
{
    return r->nout;
}

size_t split_objects(const struct split_result *r)
{
    return r->nobj;
}

size_t split_incompatible_count(const struct split_result *r)
{
    return r->nincompat;
}

const char *split_incompatible_id(const struct split_result *r, size_t i, size_t *ret_len)
{
    const struct sstr *e = &r->str[r->obj[r->incompat[i]].id_sid];
    *ret_len = e->len;
    return e->p;
}

const char *split_object_id(const struct split_result *r, size_t i, size_t *ret_len)
{
    const struct sstr *e = &r->str[r->obj[r->out[i]].id_sid];
    *ret_len = e->len;
    return e->p;
}

uint64_t split_seq(const struct split_result *r, size_t i)
{
    return r->obj[r->out[i]].nb_deps;
}

static int add_u64(struct buf *out, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return buf_add(out, tmp + i, sizeof(tmp) - i);
}

static int add_raw(const struct split_result *r, uint32_t off, uint32_t len, struct buf *out)
{
    struct json_span v = {off, len};
    return json_minify(r->s, v, out);
}

int split_render(const struct split_result *r, size_t i, struct buf *out)
{
    const struct object *o = &r->obj[r->out[i]];
    int rc = buf_adds(out, "{\"type\":\"bundle\",\"id\":");
    if (!rc)
        rc = r->bundle_id.len ? add_raw(r, r->bundle_id.off, r->bundle_id.len, out)
                              : buf_adds(out, r->bundle_id_gen);
    if (!rc)
        rc = buf_adds(out, ",\"spec_version\":\"2.1\",\"x_opencti_seq\":");
    if (!rc)
        rc = add_u64(out, o->nb_deps);
    if (!rc)
        rc = buf_adds(out, ",\"objects\":[{");
    bool nb_written = false;
    for (uint32_t k = 0; k < o->mem_count && !rc; k++) {
        const struct member *m = &r->mem[o->mem_start + k];
        if (m->role == ROLE_NBDEPS && !r->opt.with_nb_deps)
            continue;
        if (k && (rc = buf_addc(out, ',')))
            break;
        if ((rc = buf_add(out, r->s + m->key_off, m->key_len)) || (rc = buf_addc(out, ':')))
            break;
        if (m->role == ROLE_NBDEPS) {
            rc = add_u64(out, o->nb_deps);
            nb_written = true;
        } else if (m->state == MS_NULL) {
            rc = buf_adds(out, "null");
        } else if (m->state == MS_LIST) {
            rc = buf_addc(out, '[');
            bool first = true;
            for (uint32_t n = r->lists[m->aux].head; n != NONE && !rc; n = r->nodes[n].next) {
                const struct sstr *e = &r->str[r->nodes[n].sid];
                if (!first)
                    rc = buf_addc(out, ',');
                if (!rc)
                    rc = buf_add(out, r->s + e->lit_off, e->lit_len);
                first = false;
            }
            if (!rc)
                rc = buf_addc(out, ']');
        } else if (m->state == MS_SPANS) {
            rc = buf_addc(out, '[');
            for (uint32_t j = 0; j < m->aux2 && !rc; j++) {
                const struct span32 *sp = &r->spans[m->aux + j];
                if (j)
                    rc = buf_addc(out, ',');
                if (!rc)
                    rc = add_raw(r, sp->off, sp->len, out);
            }
            if (!rc)
                rc = buf_addc(out, ']');
        } else {
            rc = add_raw(r, m->val_off, m->val_len, out);
        }
    }
    if (!rc && !nb_written && r->opt.with_nb_deps) {
        rc = buf_adds(out, o->mem_count ? ",\"nb_deps\":" : "\"nb_deps\":");
        if (!rc)
            rc = add_u64(out, o->nb_deps);
    }
    if (!rc)
        rc = buf_adds(out, "}]}");
    return rc;
}
