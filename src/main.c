/* main.c - command line, wiring and exit codes. The only file that calls exit(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "env.h"
#include "log.h"
#include "version.h"

extern char **environ;

#define EXIT_USAGE 64

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: %s [--env-file FILE] [run]      run the connector daemon (default)\n"
            "       %s check [--env-file FILE]      validate the configuration\n"
            "       %s split FILE|-                 print the split bundles of a STIX bundle\n"
            "       %s --version | --help\n"
            "\n"
            "Settings come from the environment (OPENCTI_*, CONNECTOR_*, CONFIG_*, MQ_*);\n"
            "--env-file reads KEY=VALUE lines first, and real environment variables win.\n"
            "See opencti-datasets(8) and the README for every setting.\n",
            ODS_NAME, ODS_NAME, ODS_NAME, ODS_NAME);
}

/* Builds the settings source: env file (if any) under the real environment. Reports
 * problems on stderr; returns 0 or EXIT_CONFIG. */
static int load_env(struct env *env, const char *env_file)
{
    env_init(env);
    if (env_file) {
        size_t nerr = 0;
        struct err err = {{0}};
        int rc = env_load_file(env, env_file, &nerr, &err);
        if (rc) {
            fprintf(stderr, "%s: --env-file: %s\n", ODS_NAME, err.msg);
            return EXIT_CONFIG;
        }
    }
    if (env_overlay(env, environ)) {
        fprintf(stderr, "%s: out of memory\n", ODS_NAME);
        return EXIT_CONFIG;
    }
    return 0;
}

static int load_config(struct config *cfg, const struct env *env, bool quiet_ok)
{
    struct diag d;
    diag_init(&d);
    int rc = config_load(cfg, env, &d);
    for (size_t i = 0; i < d.len; i++)
        fprintf(stderr, "%s: %s: %s\n", ODS_NAME,
                d.items[i].severity == DIAG_ERROR ? "error" : "warning", d.items[i].text);
    if (rc) {
        fprintf(stderr, "%s: %zu configuration error%s\n", ODS_NAME, d.errors,
                d.errors == 1 ? "" : "s");
        diag_release(&d);
        return EXIT_CONFIG;
    }
    diag_release(&d);
    (void)quiet_ok;
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = NULL, *env_file = NULL, *arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", ODS_NAME, ODS_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--env-file") == 0) {
            if (++i == argc) {
                fprintf(stderr, "%s: --env-file needs a file name\n", ODS_NAME);
                return EXIT_USAGE;
            }
            env_file = argv[i];
        } else if (!cmd && (strcmp(argv[i], "run") == 0 || strcmp(argv[i], "check") == 0 ||
                            strcmp(argv[i], "split") == 0)) {
            cmd = argv[i];
        } else if (cmd && strcmp(cmd, "split") == 0 && !arg) {
            arg = argv[i];
        } else {
            fprintf(stderr, "%s: unexpected argument \"%s\"\n", ODS_NAME, argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!cmd)
        cmd = "run";

    struct env env;
    struct config cfg;
    int rc = load_env(&env, env_file);
    if (rc)
        goto out_env;
    rc = load_config(&cfg, &env, false);
    if (rc == 0 && strcmp(cmd, "check") == 0)
        printf("configuration OK\n");
    config_release(&cfg);
out_env:
    env_release(&env);
    return rc;
}
