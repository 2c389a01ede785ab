/*
 * notify.h - systemd service notifications (sd_notify), when built with libsystemd and
 * started by systemd (NOTIFY_SOCKET set); otherwise every call does nothing.
 */
#ifndef ODS_NOTIFY_H
#define ODS_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* READY=1 (with a STATUS= line). */
void notify_ready(const char *status);
/* STATUS=<text>, sent only when it changed. */
void notify_status(const char *status);
/* STOPPING=1. */
void notify_stopping(void);
/* WATCHDOG=1 (at most once a second); a no-op without WATCHDOG_USEC. */
void notify_watchdog(int64_t now_ms);

#endif
