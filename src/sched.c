/* sched.c - run scheduling and backoff arithmetic. */
#include "sched.h"

bool sched_due(bool has_last_run, int64_t last_run_s, int64_t now_s, int64_t period_ms)
{
    if (!has_last_run)
        return true;
    return (now_s - last_run_s) * 1000 > period_ms;
}

int64_t sched_next_run(bool has_last_run, int64_t last_run_s, int64_t now_s, int64_t period_ms)
{
    if (!has_last_run)
        return now_s;
    /* the first whole second at which (t - last_run) * 1000 > period */
    int64_t t = last_run_s + period_ms / 1000 + 1;
    return t < now_s ? now_s : t;
}

int64_t sched_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms, uint32_t random)
{
    int64_t d = base_ms;
    for (unsigned i = 0; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    int64_t half = d / 2;
    return half + (half > 0 ? (int64_t)(random % (uint64_t)(half + 1)) : 0);
}

int64_t sched_retry_delay_ms(int64_t retry_ms, int64_t period_ms)
{
    return retry_ms < period_ms ? retry_ms : period_ms;
}
