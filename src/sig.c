/* sig.c - signal handling by self-pipe. */
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;
static int pipe_fds[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    if (stop_signal)
        _exit(128 + sig); /* the second request: stop now */
    stop_signal = sig;
    if (pipe_fds[1] >= 0) {
        char c = 1;
        ssize_t n = write(pipe_fds[1], &c, 1);
        (void)n;
    }
    errno = saved;
}

int sig_setup(void)
{
    if (pipe_fds[0] < 0) {
        if (pipe(pipe_fds) != 0)
            return E_IO;
        for (int i = 0; i < 2; i++) {
            fcntl(pipe_fds[i], F_SETFL, fcntl(pipe_fds[i], F_GETFL) | O_NONBLOCK);
            fcntl(pipe_fds[i], F_SETFD, FD_CLOEXEC);
        }
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
        return E_IO;
    struct sigaction ign = {0};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGPIPE, &ign, NULL))
        return E_IO;
    return 0;
}

int sig_fd(void)
{
    return pipe_fds[0];
}

void sig_drain(void)
{
    char b[64];
    while (pipe_fds[0] >= 0 && read(pipe_fds[0], b, sizeof(b)) > 0)
        ;
}

bool sig_stop_requested(void)
{
    return stop_signal != 0;
}

int sig_stop_signal(void)
{
    return stop_signal;
}
