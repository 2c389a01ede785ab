/*
 * split_bench FILE [REPEAT]: splits FILE REPEAT times (default 1) in this process and
 * prints one JSON line: input bytes, objects, messages, split seconds (the best of the
 * repeats), render seconds (every output bundle rendered once), peak RSS in KiB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "buf.h"
#include "fileio.h"
#include "stix_split.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [REPEAT]\n", argv[0]);
        return 64;
    }
    int repeat = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 1;
    struct buf in;
    struct err e;
    buf_init(&in, SPLIT_MAX_INPUT);
    if (file_read_all(argv[1], SPLIT_MAX_INPUT, &in, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 66;
    }
    double best = 1e30, render = 0;
    size_t count = 0, objects = 0;
    for (int k = 0; k < (repeat > 0 ? repeat : 1); k++) {
        struct split_result *r = NULL;
        double t0 = now();
        if (split_bundle(in.data, in.len, NULL, &r, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 65;
        }
        double t1 = now();
        if (t1 - t0 < best)
            best = t1 - t0;
        count = split_count(r);
        objects = split_objects(r);
        if (k == 0) {
            struct buf out;
            buf_init(&out, SPLIT_MAX_INPUT);
            double t2 = now();
            for (size_t i = 0; i < count; i++) {
                buf_reset(&out);
                if (split_render(r, i, &out))
                    return 70;
            }
            render = now() - t2;
            buf_release(&out);
        }
        split_free(r);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"bytes\": %zu, \"objects\": %zu, \"messages\": %zu, \"split_s\": %.6f, "
           "\"render_s\": %.6f, \"peak_rss_kib\": %ld}\n",
           in.len, objects, count, best, render, ru.ru_maxrss);
    buf_release(&in);
    return 0;
}
