/*
 * status.h - the daemon's health, written to a small JSON file for `opencti-datasets
 * health` (docker HEALTHCHECK) to read.
 *
 * The daemon rewrites the file (atomically: a temporary file renamed over it) whenever
 * something changes and at least every STATUS_HEARTBEAT_S from its loop. health()
 * succeeds when the writing process is alive, its loop wrote recently, and its last ping
 * of the platform succeeded recently.
 */
#ifndef ODS_STATUS_H
#define ODS_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define STATUS_HEARTBEAT_S 10

struct status {
    int64_t loop_at;      /* wall seconds of the last loop iteration */
    int64_t last_ping_ok; /* wall seconds of the last successful ping, 0: never */
    int64_t ping_interval_s;
    bool registered;
    bool running;     /* a run is in progress */
    int64_t last_run; /* from the state, -1: none */
    int64_t next_run; /* -1: unknown */
    char phase[128];  /* what the daemon is doing, for people */
    char last_error[512];
};

/* Writes st to path atomically. Returns 0, E_IO. */
int status_write(const char *path, const struct status *st) ODS_MUST_CHECK;

/* Reads path and judges health at `now` (wall seconds): writes one sentence to why.
 * Returns 0 when healthy, E_IO when the file cannot be read, E_INVAL when unhealthy. */
int status_check(const char *path, int64_t now, char *why, size_t cap) ODS_MUST_CHECK;

#endif
