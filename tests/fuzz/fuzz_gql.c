/* Fuzz target: interpreting a platform response and a stored connector state. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "opencti.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *out = NULL;
    char rejected[64];
    struct err e;
    long status = size && data[0] == '{' ? 200 : 400;
    if (gql_parse(status, (const char *)data, size, &out, rejected, sizeof(rejected), &e) == 0)
        cJSON_Delete(out);
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    cJSON *st = NULL;
    if (state_parse(text, &st) == STATE_OBJECT) {
        int64_t t;
        (void)state_last_run(st, &t);
        /* what we write reads back as what we wrote (invalid UTF-8 in the input, which
         * cJSON accepts, is written as U+FFFD, so compare our own output twice) */
        char *s = state_serialize(st);
        cJSON *again = NULL;
        if (s && state_parse(s, &again) != STATE_OBJECT)
            abort();
        char *s2 = state_serialize(again);
        if (s && s2 && strcmp(s, s2) != 0)
            abort();
        cJSON_Delete(again);
        free(s);
        free(s2);
    }
    cJSON_Delete(st);
    free(text);
    return 0;
}
