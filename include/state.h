/*
 * state.h - the connector's state slot on the platform: {"last_run": <epoch seconds>}.
 *
 * The platform stores the state as a string; it comes back from registerConnector and
 * every pingConnector. An empty string or "null" means no state (the operator reset it,
 * or the connector never ran). pycti also treats "{}" and anything unparsable as no
 * state. last_run may be an integer (what the official connector writes) or an ISO-8601
 * date-time string (what connectors-sdk writes); both are read, and the integer form is
 * written. Other keys of a state object are kept as they are.
 */
#ifndef ODS_STATE_H
#define ODS_STATE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

enum state_parse_result {
    STATE_EMPTY = 0,   /* "", "null", "{}" or NULL */
    STATE_OBJECT = 1,  /* a JSON object */
    STATE_INVALID = 2, /* not JSON, or not an object: treated as empty */
};

/* Parses the platform's text. *ret_obj is a new object (STATE_OBJECT) or NULL. */
enum state_parse_result state_parse(const char *text, cJSON **ret_obj);

/* Reads last_run (integer, float, or ISO-8601 string). false when absent or unusable. */
bool state_last_run(const cJSON *state, int64_t *ret_epoch_s);

/* Returns a new state: a copy of `base` (may be NULL) with last_run set to t. */
cJSON *state_with_last_run(const cJSON *base, int64_t t);

/* Serializes as Python's json.dumps would ("{"last_run": 1700000000}": ", " and ": "
 * separators, ASCII only), or "null" for NULL. Returns a new string, NULL on E_NOMEM. */
char *state_serialize(const cJSON *state);

/* Structural equality (NULL equals NULL). */
bool state_equal(const cJSON *a, const cJSON *b);

#endif
