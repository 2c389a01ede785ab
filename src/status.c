/* status.c - the health file. */
#include "status.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"
#include "version.h"

#define STATUS_MAX_FILE (64 * 1024)
/* Ping failures are tolerated for this many intervals before the daemon is unhealthy
 * (the platform itself calls a connector inactive after 5 minutes). */
#define STATUS_PING_GRACE_INTERVALS 4
/* The loop writes every STATUS_HEARTBEAT_S; a blocking request may hold it longer. */
#define STATUS_LOOP_GRACE_S 150

int status_write(const char *path, const struct status *st)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return E_NOMEM;
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddStringToObject(o, "version", ODS_VERSION);
    cJSON_AddNumberToObject(o, "loop_at", (double)st->loop_at);
    cJSON_AddNumberToObject(o, "last_ping_ok", (double)st->last_ping_ok);
    cJSON_AddNumberToObject(o, "ping_interval_s", (double)st->ping_interval_s);
    cJSON_AddBoolToObject(o, "registered", st->registered);
    cJSON_AddBoolToObject(o, "running", st->running);
    cJSON_AddNumberToObject(o, "last_run", (double)st->last_run);
    cJSON_AddNumberToObject(o, "next_run", (double)st->next_run);
    cJSON_AddStringToObject(o, "phase", st->phase);
    cJSON_AddStringToObject(o, "last_error", st->last_error);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return E_NOMEM;
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    int rc = E_IO;
    if (!tmp)
        goto out;
    snprintf(tmp, n, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto out;
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, path) == 0)
        rc = 0;
    else
        unlink(tmp);
out:
    free(tmp);
    free(text);
    return rc;
}

static int64_t num(const cJSON *o, const char *k, int64_t def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : def;
}

int status_check(const char *path, int64_t now, char *why, size_t cap)
{
    struct buf b;
    struct err e;
    buf_init(&b, STATUS_MAX_FILE);
    if (file_read_all(path, STATUS_MAX_FILE, &b, &e)) {
        snprintf(why, cap, "no status: %s (is the daemon running?)", e.msg);
        buf_release(&b);
        return E_IO;
    }
    cJSON *o = cJSON_Parse(b.data ? b.data : "");
    buf_release(&b);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        snprintf(why, cap, "the status file %s is not valid", path);
        return E_IO;
    }
    int64_t pid = num(o, "pid", 0), loop_at = num(o, "loop_at", 0);
    int64_t ping_ok = num(o, "last_ping_ok", 0), every = num(o, "ping_interval_s", 40);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "last_error");
    char last_error[512];
    snprintf(last_error, sizeof(last_error), "%s",
             cJSON_IsString(err) && err->valuestring[0] ? err->valuestring : "none");
    cJSON_Delete(o);
    int rc = E_INVAL;
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
        snprintf(why, cap, "the daemon (pid %lld) is not running", (long long)pid);
    else if (now - loop_at > STATUS_LOOP_GRACE_S)
        snprintf(why, cap, "the daemon's loop has not run for %lld s (stuck?)",
                 (long long)(now - loop_at));
    else if (ping_ok == 0)
        snprintf(why, cap, "the platform has not answered a ping yet (last error: %s)", last_error);
    else if (now - ping_ok > STATUS_PING_GRACE_INTERVALS * every + 30)
        snprintf(why, cap, "the last successful ping was %lld s ago (last error: %s)",
                 (long long)(now - ping_ok), last_error);
    else {
        snprintf(why, cap, "healthy: last ping %lld s ago, loop %lld s ago",
                 (long long)(now - ping_ok), (long long)(now - loop_at));
        rc = 0;
    }
    return rc;
}
