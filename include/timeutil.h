/*
 * timeutil.h - the project's one time type and its conversions.
 *
 * Durations and deadlines are int64_t milliseconds. Deadlines use CLOCK_MONOTONIC
 * (mono_ms); the wall clock (wall_s) is only for what is shown or stored (last_run, work
 * names, log timestamps).
 */
#ifndef ODS_TIMEUTIL_H
#define ODS_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define MS_PER_S INT64_C(1000)
#define MS_PER_MIN (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_MIN)
#define MS_PER_DAY (24 * MS_PER_H)

int64_t mono_ms(void);
int64_t wall_s(void);

/* Parses an ISO-8601 duration (P[nY][nM][nW][nD][T[nH][nM][n[.f]S]], case-insensitive
 * designators, Y = 365 days and M = 30 days as pydantic counts them) or the plain "0".
 * Only the seconds may carry a fraction (kept to the millisecond). Rejects negative
 * values, empty designators ("P", "PT"), and anything longer than 100 years. */
int duration_parse(const char *s, int64_t *ret_ms) ODS_MUST_CHECK;

/* Formats a duration for people: "7 days", "1 day 2 h", "12 h", "5 min", "30 s", "250 ms". */
void duration_format(int64_t ms, char *out, size_t cap);

/* Formats epoch seconds as "YYYY-MM-DD HH:MM:SS" (UTC), or with iso=1 as
 * "YYYY-MM-DDTHH:MM:SSZ". */
void utc_format(int64_t epoch_s, int iso, char *out, size_t cap);

/* Parses an ISO-8601 UTC date-time ("2024-01-02T03:04:05Z", optional fraction, "+00:00"
 * or other offsets, or a date alone) into epoch seconds. */
int utc_parse(const char *s, int64_t *ret_epoch_s) ODS_MUST_CHECK;

#endif
