/*
 * opencti.h - the GraphQL client for the platform: the operations a connector uses.
 *
 * Requests are `POST <url>/graphql` with {"query", "variables"}, a Bearer token, a
 * User-Agent and the operator's custom headers. HTTP failures and GraphQL `errors` come
 * back as E_* codes with the platform's message in `struct err`: E_GQL_AUTH for a refused
 * token, E_GQL_SCHEMA when the platform's schema rejects a field or argument, E_GQL for
 * other errors, E_HTTP_STATUS for a non-GraphQL HTTP error.
 *
 * Compatibility with older 6.x platforms: when the schema rejects an input field or
 * argument this client knows to be optional (registerConnector's auto_update,
 * enrichment_resolution, listen_callback_uri; pingConnector's connectorInfo), the call is
 * retried without it, and on_compat (if set) is told once which one was dropped.
 *
 * The parsing half (gql_body, gql_parse) is pure, for tests and fuzzing.
 */
#ifndef ODS_OPENCTI_H
#define ODS_OPENCTI_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "http.h"

/* A GraphQL response body is never legitimately this large for our operations. */
#define GQL_MAX_RESPONSE (8 * 1024 * 1024)

/* Builds the request body {"query": q, "variables": vars} (vars borrowed; NULL gives {}).
 * Returns a new string the caller frees, NULL on E_NOMEM. */
char *gql_body(const char *query, const cJSON *vars);

/*
 * Interprets a response. On success *ret_data is the detached `data` object (caller
 * frees with cJSON_Delete). On failure returns E_GQL_AUTH, E_GQL_SCHEMA, E_GQL or
 * E_HTTP_STATUS with the platform's message in err; for E_GQL_SCHEMA, the rejected field,
 * argument or type name (when the message names one) goes to rejected[0..cap).
 */
int gql_parse(long status, const char *body, size_t len, cJSON **ret_data, char *rejected,
              size_t cap, struct err *err) ODS_MUST_CHECK;

struct opencti_options {
    const char *url;   /* base URL without trailing slash */
    const char *token; /* secret */
    struct http_options http;
    int64_t timeout_ms;
    void (*on_compat)(void *ctx, const char *dropped, const char *platform_message);
    void *compat_ctx;
};

struct opencti;

/* Returns a new client (strings copied), NULL on E_NOMEM. */
struct opencti *opencti_new(const struct opencti_options *o);
void opencti_free(struct opencti *o);
/* Uses timeout_ms for the following requests (shutdown uses a short one). */
void opencti_set_timeout(struct opencti *o, int64_t timeout_ms);

/* Runs one operation; *ret_data as in gql_parse. */
int opencti_query(struct opencti *o, const char *query, const cJSON *vars, cJSON **ret_data,
                  char *rejected, size_t cap, struct err *err) ODS_MUST_CHECK;

/* query healthCheck { about { version } }; *ret_version is a new string. */
int opencti_about(struct opencti *o, char **ret_version, struct err *err) ODS_MUST_CHECK;

struct opencti_register_input {
    const char *id;
    const char *name;
    char *const *scope;
    size_t n_scope;
    bool auto_;
    bool auto_update;
    const char *enrichment_resolution;
    bool only_contextual;
};

/* What registration hands out (every string owned; release with opencti_registration_release). */
struct opencti_registration {
    char *id;
    char *connector_user_id; /* NULL when null */
    char *state;             /* connector_state; NULL when null */
    char *mq_host, *mq_vhost, *mq_user, *mq_pass;
    int mq_port;
    bool mq_use_ssl;
    char *push, *push_routing, *push_exchange;
};

void opencti_registration_release(struct opencti_registration *r);

int opencti_register(struct opencti *o, const struct opencti_register_input *in,
                     struct opencti_registration *ret, struct err *err) ODS_MUST_CHECK;

struct opencti_connector_info {
    bool run_and_terminate;
    bool buffering;
    double queue_threshold;
    double queue_messages_size;
    int64_t next_run; /* epoch seconds, or -1 for null */
    int64_t last_run;
};

/* pingConnector. state is the JSON text sent (the string "null" when there is none).
 * *ret_state gets the returned connector_state as a new string, or NULL when null. */
int opencti_ping(struct opencti *o, const char *id, const char *state,
                 const struct opencti_connector_info *info, char **ret_state,
                 struct err *err) ODS_MUST_CHECK;

int opencti_work_add(struct opencti *o, const char *connector_id, const char *name,
                     char **ret_work_id, struct err *err) ODS_MUST_CHECK;
int opencti_work_add_expectations(struct opencti *o, const char *work_id, int64_t n,
                                  struct err *err) ODS_MUST_CHECK;
int opencti_work_to_processed(struct opencti *o, const char *work_id, const char *message,
                              bool in_error, struct err *err) ODS_MUST_CHECK;
/* reportExpectation with error {error, source}, or a null error when error is NULL. */
int opencti_work_report_expectation(struct opencti *o, const char *work_id, const char *error,
                                    const char *source, struct err *err) ODS_MUST_CHECK;

#endif
