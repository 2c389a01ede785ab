/*
 * config.h - every setting of the daemon, read from a `struct env`, validated at once.
 *
 * config_load() never stops at the first problem: each bad or missing setting adds one
 * line to a `struct diag`, naming the variable (and never echoing a secret). Warnings
 * (deprecated or ignored pycti settings) go to the same list with their own severity.
 * Nothing else in the program reads the environment.
 */
#ifndef ODS_CONFIG_H
#define ODS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "err.h"
#include "log.h"

/* The exit status for configuration errors (EX_CONFIG from sysexits.h). */
#define EXIT_CONFIG 78

#define CONFIG_DEFAULT_NAME "OpenCTI Datasets"
#define CONFIG_DEFAULT_SCOPE "marking-definition,identity,location"
#define CONFIG_DATASETS_BASE                                                                       \
    "https://raw.githubusercontent.com/OpenCTI-Platform/datasets/master/data/"

enum dataset_kind { DATASET_SECTORS, DATASET_GEOGRAPHY, DATASET_COMPANIES, DATASET_COUNT };

struct http_header {
    char *name;
    char *value;
};

struct config {
    /* OPENCTI_* */
    char *opencti_url;   /* without trailing slashes */
    char *opencti_token; /* secret */
    bool ssl_verify;     /* OPENCTI_SSL_VERIFY: true unless "false" */
    char *ssl_ca_file;   /* OPENCTI_SSL_VERIFY given as a CA bundle path, else NULL */
    struct http_header *custom_headers; /* OPENCTI_CUSTOM_HEADERS */
    size_t n_custom_headers;
    bool json_logging;
    int64_t opencti_timeout_ms; /* OPENCTI_TIMEOUT: one GraphQL request */

    /* CONNECTOR_* */
    char *connector_id; /* a UUID, as given */
    char *connector_name;
    char *connector_scope; /* the raw comma-separated string (entities_types) */
    char **scope;          /* split on ',' without trimming, as pycti registers it */
    size_t n_scope;
    enum log_level log_level;
    bool run_and_terminate;      /* CONNECTOR_RUN_AND_TERMINATE or a zero duration period */
    int64_t period_ms;           /* the run period: CONNECTOR_DURATION_PERIOD or CONFIG_INTERVAL */
    bool period_from_duration;   /* whether CONNECTOR_DURATION_PERIOD set it */
    bool auto_;                  /* CONNECTOR_AUTO */
    bool auto_update;            /* CONNECTOR_AUTO_UPDATE */
    bool only_contextual;        /* CONNECTOR_ONLY_CONTEXTUAL */
    char *enrichment_resolution; /* CONNECTOR_ENRICHMENT_RESOLUTION */
    int64_t ping_interval_ms;    /* CONNECTOR_PING_INTERVAL */
    int64_t check_interval_ms;   /* CONNECTOR_CHECK_INTERVAL */
    char *status_file;           /* CONNECTOR_STATUS_FILE, or NULL */

    /* CONFIG_* */
    int64_t interval_days;            /* CONFIG_INTERVAL */
    bool remove_creator;              /* CONFIG_REMOVE_CREATOR */
    char *dataset_url[DATASET_COUNT]; /* NULL when disabled */
    int64_t retry_interval_ms;        /* CONFIG_RETRY_INTERVAL: after a failed run */
    int64_t fetch_timeout_ms;         /* CONFIG_FETCH_TIMEOUT: one download, all included */
    uint64_t max_dataset_size;        /* CONFIG_MAX_DATASET_SIZE, bytes */

    /* MQ_* : each override is NULL / -1 when not set (registration values apply) */
    char *mq_host;
    int mq_port; /* -1: from registration */
    char *mq_vhost;
    int mq_use_ssl; /* -1: from registration, else 0/1 */
    char *mq_user;
    char *mq_pass;   /* secret */
    char *mq_ssl_ca; /* path or inline PEM */
    char *mq_ssl_cert;
    char *mq_ssl_key;              /* secret when inline */
    char *mq_ssl_passphrase;       /* secret */
    bool mq_ssl_verify;            /* MQ_USE_SSL_REJECT_UNAUTHORIZED, default true */
    size_t mq_window;              /* MQ_CONFIRM_WINDOW */
    int mq_heartbeat_s;            /* MQ_HEARTBEAT */
    uint64_t mq_max_message_size;  /* MQ_MAX_MESSAGE_SIZE */
    int64_t mq_give_up_ms;         /* MQ_PUBLISH_TIMEOUT */
    int64_t mq_connect_timeout_ms; /* MQ_CONNECT_TIMEOUT */

    /* HTTP environment (proxies and CA bundle), read here so nobody else calls getenv */
    char *https_proxy;
    char *http_proxy;
    char *no_proxy;
    char *ca_bundle; /* SSL_CERT_FILE, CURL_CA_BUNDLE or REQUESTS_CA_BUNDLE */
    char *tmp_dir;   /* TMPDIR, or NULL (inline PEM for the broker is written there briefly) */
};

enum diag_severity { DIAG_ERROR, DIAG_WARNING };

struct diag_item {
    enum diag_severity severity;
    char *text;
};

struct diag {
    struct diag_item *items;
    size_t len, cap;
    size_t errors;
};

void diag_init(struct diag *d);
void diag_release(struct diag *d);
void diag_add(struct diag *d, enum diag_severity sev, const char *fmt, ...) ODS_PRINTF(3, 4);

/*
 * Reads every setting from env into cfg (which it initialises; release with
 * config_release() in every case). Problems go to d. Returns 0 when there is no error
 * (there may be warnings), E_INVAL when d holds errors, E_NOMEM.
 */
int config_load(struct config *cfg, const struct env *env, struct diag *d) ODS_MUST_CHECK;
void config_release(struct config *cfg);

/* Registers every secret of cfg with the logger (token, passwords, inline keys, header
 * values, proxy credentials). */
void config_register_secrets(const struct config *cfg);

const char *dataset_name(enum dataset_kind k);

/* The status file the daemon writes and `health` reads: CONNECTOR_STATUS_FILE, else
 * $RUNTIME_DIRECTORY/status.json (systemd's RuntimeDirectory=), else NULL. Returns a new
 * string or NULL. */
char *config_status_path(const struct env *env);

/* Parses a boolean setting: true/false/yes/no/1/0 in any case, surrounding blanks ignored. */
int config_parse_bool(const char *s, bool *ret) ODS_MUST_CHECK;

#endif
