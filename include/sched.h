/*
 * sched.h - the scheduling arithmetic, pure: it takes the time as an argument.
 */
#ifndef ODS_SCHED_H
#define ODS_SCHED_H

#include <stdbool.h>
#include <stdint.h>

/* Whether a run is due (pycti's rule): no last run, or strictly more than the period has
 * passed since it. Times in epoch seconds, period in milliseconds. */
bool sched_due(bool has_last_run, int64_t last_run_s, int64_t now_s, int64_t period_ms);

/* When the next run is due (epoch seconds): now when there is no last run. */
int64_t sched_next_run(bool has_last_run, int64_t last_run_s, int64_t now_s, int64_t period_ms);

/* Exponential backoff with "equal jitter": attempt 0 gives about base, each attempt
 * doubles, never above cap; the result lies in [d/2, d] for the nominal delay d.
 * `random` is any 32-bit random value (the caller's source, so tests are deterministic). */
int64_t sched_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms, uint32_t random);

/* The delay before retrying a failed run: retry_ms, but never more than the period. */
int64_t sched_retry_delay_ms(int64_t retry_ms, int64_t period_ms);

#endif
