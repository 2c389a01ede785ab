/* main.c - command line, wiring and exit codes. The only file that calls exit(). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "connector.h"
#include "http.h"
#include "sig.h"
#include "env.h"
#include "fileio.h"
#include "log.h"
#include "status.h"
#include "stix_split.h"
#include "timeutil.h"
#include "version.h"

extern char **environ;

#define EXIT_USAGE 64
#define EXIT_DATAERR 65
#define EXIT_NOINPUT 66
#define EXIT_IOERR 74
#define EXIT_SOFTWARE 70
/* The split command's default input limit; --max-size changes it. */
#define SPLIT_DEFAULT_MAX_INPUT (1024UL * 1024 * 1024)
#define SPLIT_OUT_BUF_MAX (SIZE_MAX / 4)

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: %s [--env-file FILE] [run]      run the connector daemon (default)\n"
            "       %s check [--env-file FILE]      validate the configuration\n"
            "       %s split [--max-size BYTES] FILE|-\n"
            "                                       print the split bundles of a STIX bundle\n"
            "       %s health [--env-file FILE]     exit 0 if the running daemon is healthy\n"
            "       %s --version | --help\n"
            "\n"
            "Settings come from the environment (OPENCTI_*, CONNECTOR_*, CONFIG_*, MQ_*);\n"
            "--env-file reads KEY=VALUE lines first, and real environment variables win.\n"
            "See opencti-datasets(8) and the README for every setting.\n",
            ODS_NAME, ODS_NAME, ODS_NAME, ODS_NAME, ODS_NAME);
}

/* Builds the settings source: env file (if any) under the real environment. Reports
 * problems on stderr; returns 0 or EXIT_CONFIG. Bad lines of the file are reported and
 * set *bad_lines, but the good ones are kept, so that the settings can still be checked
 * and every problem is reported in one go; a file that cannot be read stops here. */
static int load_env(struct env *env, const char *env_file, size_t *bad_lines)
{
    env_init(env);
    *bad_lines = 0;
    if (env_file) {
        struct err err = {{0}};
        int rc = env_load_file(env, env_file, bad_lines, &err);
        if (rc) {
            fprintf(stderr, "%s: error: --env-file: %s\n", ODS_NAME, err.msg);
            if (rc != E_PARSE)
                return EXIT_CONFIG;
        }
    }
    if (env_overlay(env, environ)) {
        fprintf(stderr, "%s: out of memory\n", ODS_NAME);
        return EXIT_CONFIG;
    }
    return 0;
}

/* Loads and validates the configuration. Errors always go to stderr as plain lines (the
 * logger is not set up yet, and an operator reading `docker logs` or `check` must see
 * them); with `as_log`, warnings go through the logger once it is configured. */
static int load_config(struct config *cfg, const struct env *env, bool as_log, size_t bad_lines)
{
    struct diag d;
    diag_init(&d);
    int rc = config_load(cfg, env, &d);
    if (rc == 0 && bad_lines)
        rc = E_INVAL;
    if (rc == 0 && as_log) {
        config_register_secrets(cfg);
        log_setup(cfg->log_level, cfg->json_logging, cfg->connector_name);
    }
    for (size_t i = 0; i < d.len; i++) {
        if (rc == 0 && as_log)
            log_warn("%s", d.items[i].text);
        else
            fprintf(stderr, "%s: %s: %s\n", ODS_NAME,
                    d.items[i].severity == DIAG_ERROR ? "error" : "warning", d.items[i].text);
    }
    if (rc) {
        size_t n = d.errors + bad_lines;
        fprintf(stderr, "%s: %zu configuration error%s\n", ODS_NAME, n, n == 1 ? "" : "s");
        diag_release(&d);
        return rc == E_NOMEM ? EXIT_SOFTWARE : EXIT_CONFIG;
    }
    diag_release(&d);
    return 0;
}

/* Overwrites the values of secret variables in this process's own environment block,
 * once they are loaded: /proc/<pid>/environ (what `ps e` shows) reads that block. */
static void scrub_environment(void)
{
    static const char *const secret_vars[] = {
        "OPENCTI_TOKEN=", "MQ_PASS=", "MQ_USE_SSL_PASSPHRASE=", "MQ_USE_SSL_KEY="};
    for (char **e = environ; e && *e; e++) {
        for (size_t i = 0; i < sizeof(secret_vars) / sizeof(secret_vars[0]); i++) {
            size_t n = strlen(secret_vars[i]);
            if (strncmp(*e, secret_vars[i], n) == 0)
                memset(*e + n, '*', strlen(*e + n));
        }
    }
}

static int cmd_run(const struct config *cfg)
{
    scrub_environment();
    if (sig_setup() || http_global_init()) {
        log_error("cannot set up signals or libcurl");
        return EXIT_SOFTWARE;
    }
    struct connector *c = connector_new(cfg);
    if (!c) {
        log_error("out of memory");
        http_global_cleanup();
        return EXIT_SOFTWARE;
    }
    int rc = connector_main(c);
    connector_free(c);
    http_global_cleanup();
    return rc;
}

/* The split command: offline, streams one output bundle per line on stdout and a
 * summary on stderr. */
static int cmd_split(const char *path, size_t max)
{
    struct buf in, out;
    struct err err = {{0}};
    struct split_result *res = NULL;
    int status = 0;
    buf_init(&in, SIZE_MAX / 2);
    buf_init(&out, SPLIT_OUT_BUF_MAX);
    int rc = file_read_all(path, max, &in, &err);
    if (rc) {
        fprintf(stderr, "%s: split: %s%s\n", ODS_NAME, err.msg,
                rc == E_TOO_BIG ? " (raise it with --max-size)" : "");
        status = rc == E_TOO_BIG ? EXIT_DATAERR : rc == E_IO ? EXIT_NOINPUT : EXIT_IOERR;
        goto out;
    }
    struct split_options opt = {.remove_creator = false, .with_nb_deps = true};
    rc = split_bundle(in.data ? in.data : "", in.len, &opt, &res, &err);
    if (rc) {
        fprintf(stderr, "%s: split: %s: %s\n", ODS_NAME, strcmp(path, "-") ? path : "stdin",
                err.msg);
        status = rc == E_NOMEM ? EXIT_IOERR : EXIT_DATAERR;
        goto out;
    }
    size_t n = split_count(res);
    for (size_t i = 0; i < n; i++) {
        buf_reset(&out);
        if (split_render(res, i, &out) || buf_addc(&out, '\n')) {
            fprintf(stderr, "%s: split: out of memory rendering bundle %zu\n", ODS_NAME, i + 1);
            status = EXIT_IOERR;
            goto out;
        }
        if (fwrite(out.data, 1, out.len, stdout) != out.len) {
            fprintf(stderr, "%s: split: cannot write the output\n", ODS_NAME);
            status = EXIT_IOERR;
            goto out;
        }
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: split: cannot write the output\n", ODS_NAME);
        status = EXIT_IOERR;
        goto out;
    }
    fprintf(stderr, "%s: split: %zu objects, %zu expectations, %zu incompatible\n", ODS_NAME,
            split_objects(res), n, split_incompatible_count(res));
out:
    split_free(res);
    buf_release(&in);
    buf_release(&out);
    return status;
}

/* The health command (docker HEALTHCHECK): reads the running daemon's status file. */
static int cmd_health(const struct env *env)
{
    char *path = config_status_path(env);
    if (!path) {
        fprintf(stderr,
                "%s: health: no status file (set CONNECTOR_STATUS_FILE for the "
                "daemon and for this command)\n",
                ODS_NAME);
        return 1;
    }
    char why[700];
    int rc = status_check(path, wall_s(), why, sizeof(why));
    printf("%s\n", why);
    free(path);
    return rc == 0 ? 0 : 1;
}

static int parse_size(const char *s, size_t *ret)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > SPLIT_MAX_INPUT)
        return E_INVAL;
    *ret = (size_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = NULL, *env_file = NULL, *arg = NULL;
    size_t split_max = SPLIT_DEFAULT_MAX_INPUT;
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
                            strcmp(argv[i], "split") == 0 || strcmp(argv[i], "health") == 0)) {
            cmd = argv[i];
        } else if (cmd && strcmp(cmd, "split") == 0 && strcmp(argv[i], "--max-size") == 0) {
            if (++i == argc || parse_size(argv[i], &split_max)) {
                fprintf(stderr, "%s: --max-size needs a number of bytes (at most %u)\n", ODS_NAME,
                        (unsigned)SPLIT_MAX_INPUT);
                return EXIT_USAGE;
            }
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
    if (strcmp(cmd, "split") == 0) {
        if (!arg) {
            fprintf(stderr, "%s: split needs a file name, or - for standard input\n", ODS_NAME);
            return EXIT_USAGE;
        }
        return cmd_split(arg, split_max);
    }

    struct env env;
    struct config cfg;
    size_t bad_lines;
    int rc = load_env(&env, env_file, &bad_lines);
    if (rc)
        goto out_env;
    if (strcmp(cmd, "health") == 0) {
        rc = bad_lines ? EXIT_CONFIG : cmd_health(&env);
        goto out_env;
    }
    bool check = strcmp(cmd, "check") == 0;
    rc = load_config(&cfg, &env, !check, bad_lines);
    env_release(&env); /* nothing reads the environment after this */
    if (rc == 0 && check)
        printf("configuration OK\n");
    else if (rc == 0)
        rc = cmd_run(&cfg);
    config_release(&cfg);
    log_clear_secrets();
    return rc;
out_env:
    env_release(&env);
    return rc;
}
