/*
 * sig.h - signals turned into a flag and a readable file descriptor (self-pipe).
 *
 * SIGTERM and SIGINT request a stop; a second one exits at once (status 128 + signal).
 * SIGPIPE is ignored. The handler only sets a flag and writes one byte, saving errno.
 */
#ifndef ODS_SIG_H
#define ODS_SIG_H

#include <stdbool.h>

#include "err.h"

int sig_setup(void) ODS_MUST_CHECK;
/* The read end of the self-pipe (non-blocking): readable once a signal arrived. */
int sig_fd(void);
/* Drains the pipe. */
void sig_drain(void);
bool sig_stop_requested(void);
/* The signal that asked to stop (0 if none). */
int sig_stop_signal(void);

#endif
