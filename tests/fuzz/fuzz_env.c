/* Fuzz target: env files and the settings built from them. */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct env e;
    size_t nerr = 0;
    struct err err;
    env_init(&e);
    if (env_parse(&e, (const char *)data, size, &nerr, &err) != E_NOMEM) {
        struct config c;
        struct diag d;
        diag_init(&d);
        if (config_load(&c, &e, &d) == 0 && !c.opencti_url)
            abort(); /* a loaded configuration always has its required settings */
        config_release(&c);
        diag_release(&d);
    }
    env_release(&e);
    return 0;
}
