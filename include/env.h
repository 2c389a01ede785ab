/*
 * env.h - the daemon's settings source: environment variables over an optional env file.
 *
 * An env file holds KEY=VALUE lines in the format shared by docker's `env_file` and
 * systemd's `EnvironmentFile`: blank lines and lines starting with '#' are skipped, an
 * optional leading `export ` is allowed, and a value wrapped in matching single or double
 * quotes loses the quotes (inside double quotes, \" and \\ stand for " and \). Anything
 * else is taken literally (no inline comments, no variable expansion). Real environment
 * variables override the file.
 */
#ifndef ODS_ENV_H
#define ODS_ENV_H

#include <stddef.h>

#include "err.h"

struct env_entry {
    char *key;
    char *value;
};

struct env {
    struct env_entry *entries;
    size_t len, cap;
};

void env_init(struct env *e);
void env_release(struct env *e);

/* Sets key to value (both copied), replacing an earlier value. */
int env_set(struct env *e, const char *key, const char *value) ODS_MUST_CHECK;
/* Returns the value of key (borrowed), or NULL when it is not set. */
const char *env_get(const struct env *e, const char *key);

/* Parses env-file text. Every bad line is reported: *ret_nerrors counts them and the
 * first few are joined into err ("line 3: ..."). Returns 0, E_PARSE or E_NOMEM. */
int env_parse(struct env *e, const char *text, size_t len, size_t *ret_nerrors,
              struct err *err) ODS_MUST_CHECK;
/* Reads and parses the file at path (at most 1 MiB). */
int env_load_file(struct env *e, const char *path, size_t *ret_nerrors,
                  struct err *err) ODS_MUST_CHECK;
/* Copies every variable of a NULL-terminated `environ`-style array over e. */
int env_overlay(struct env *e, char *const *environ_vars) ODS_MUST_CHECK;

#endif
