/*
 * connector.h - the daemon: registration, the ping and run-check loop, and the work cycle
 * (state check -> work -> fetch -> split -> expectations -> publish -> report -> state).
 *
 * Single-threaded. Every wait goes through one service step that pings the platform
 * when a ping is due, feeds the status reporters and notices a stop request, so pings
 * continue during long downloads and broker outages, and SIGTERM is honoured within
 * about a second anywhere.
 */
#ifndef ODS_CONNECTOR_H
#define ODS_CONNECTOR_H

#include "config.h"
#include "err.h"

/* Exit statuses of connector_main(). */
#define CONNECTOR_EXIT_OK 0
#define CONNECTOR_EXIT_RUN_FAILED 1 /* run-and-terminate: the run did not complete */
#define CONNECTOR_EXIT_SOFTWARE 70  /* internal error (out of memory at start) */

struct connector;

/* Returns a new connector for cfg (borrowed; must outlive it), NULL on E_NOMEM. */
struct connector *connector_new(const struct config *cfg);
void connector_free(struct connector *c);

/* Runs until a stop signal (or one cycle with run-and-terminate). Returns an exit status. */
int connector_main(struct connector *c);

#endif
