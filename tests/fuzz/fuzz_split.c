/*
 * Fuzz target: the splitter. Any input must give either a clean error or bundles that
 * are valid JSON, each holding exactly one object, rendered identically twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json_scan.h"
#include "stix_split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct split_result *r = NULL;
    struct err e;
    struct split_options opt = {.remove_creator = size % 2 == 1, .with_nb_deps = true};
    int rc = split_bundle((const char *)data, size, &opt, &r, &e);
    if (rc) {
        if (rc != E_PARSE && rc != E_TOO_BIG && rc != E_NOMEM)
            abort();
        if (memchr(e.msg, '\0', sizeof(e.msg)) == NULL)
            abort(); /* the message must be terminated */
        return 0;
    }
    struct buf a, b;
    buf_init(&a, (size_t)1 << 28);
    buf_init(&b, (size_t)1 << 28);
    size_t n = split_count(r);
    for (size_t i = 0; i < n; i++) {
        buf_reset(&a);
        buf_reset(&b);
        if (split_render(r, i, &a) || split_render(r, i, &b))
            abort();
        if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
            abort(); /* republishing must send the same bytes */
        size_t start;
        if (json_validate(a.data, a.len, JSON_MAX_DEPTH + 8, &start, NULL, NULL))
            abort(); /* the output is always valid JSON */
        if (i > 0 && split_seq(r, i) < split_seq(r, i - 1))
            abort(); /* sorted by dependency count */
    }
    buf_release(&a);
    buf_release(&b);
    split_free(r);
    return 0;
}
