/* notify.c - sd_notify wrapper. */
#include "notify.h"

#include <stdio.h>
#include <string.h>

#ifdef ODS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

#define NOTIFY_WATCHDOG_MIN_MS 1000

static char last_status[512];
static int64_t watchdog_every_ms = -1; /* -1: not asked yet, 0: disabled */
static int64_t last_watchdog_ms;

void notify_ready(const char *status)
{
    snprintf(last_status, sizeof(last_status), "%s", status ? status : "");
    sd_notifyf(0, "READY=1\nSTATUS=%s", last_status);
}

void notify_status(const char *status)
{
    if (!status || strcmp(status, last_status) == 0)
        return;
    snprintf(last_status, sizeof(last_status), "%s", status);
    sd_notifyf(0, "STATUS=%s", last_status);
}

void notify_stopping(void)
{
    snprintf(last_status, sizeof(last_status), "Stopping");
    sd_notify(0, "STOPPING=1\nSTATUS=Stopping");
}

void notify_watchdog(int64_t now_ms)
{
    if (watchdog_every_ms < 0) {
        uint64_t usec = 0;
        watchdog_every_ms = sd_watchdog_enabled(0, &usec) > 0 ? (int64_t)(usec / 2000) : 0;
    }
    /* fed whenever the loop comes by, at most once a second: the full watchdog period is
     * then left for the longest pause */
    if (watchdog_every_ms <= 0 || now_ms - last_watchdog_ms < NOTIFY_WATCHDOG_MIN_MS)
        return;
    last_watchdog_ms = now_ms;
    sd_notify(0, "WATCHDOG=1");
}

#else

void notify_ready(const char *status)
{
    (void)status;
}

void notify_status(const char *status)
{
    (void)status;
}

void notify_stopping(void)
{
}

void notify_watchdog(int64_t now_ms)
{
    (void)now_ms;
}

#endif
