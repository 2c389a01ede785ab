/* fileio.c - bounded whole-file reads. */
#include "fileio.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK (1024 * 1024)

int file_read_all(const char *path, size_t max, struct buf *out, struct err *err)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "standard input" : path;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, E_IO, "cannot open %s: %s", name, strerror(errno));
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if ((unsigned long long)st.st_size > max) {
            rc = err_set(err, E_TOO_BIG, "%s is %lld bytes, more than the limit of %zu bytes", name,
                         (long long)st.st_size, max);
            goto out;
        }
        if ((rc = buf_reserve(out, (size_t)st.st_size))) {
            err_set(err, rc, "cannot allocate %lld bytes for %s", (long long)st.st_size, name);
            goto out;
        }
    }
    size_t base = out->len;
    for (;;) {
        size_t want = max - (out->len - base); /* what this read may still add */
        if (want > READ_CHUNK)
            want = READ_CHUNK;
        char probe;
        char *dst = &probe;
        if (want == 0) {
            want = 1; /* at the limit: one more byte means too big */
        } else {
            if ((rc = buf_reserve(out, want))) {
                err_set(err, rc, "cannot hold %s in memory", name);
                break;
            }
            dst = out->data + out->len;
        }
        ssize_t n = read(fd, dst, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set(err, E_IO, "cannot read %s: %s", name, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (dst == &probe) {
            rc = err_set(err, E_TOO_BIG, "%s holds more than the limit of %zu bytes", name, max);
            break;
        }
        out->len += (size_t)n;
        out->data[out->len] = '\0';
    }
out:
    if (!is_stdin)
        close(fd);
    return rc;
}
