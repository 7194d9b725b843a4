/* The sweep file (common/sweep): YAML from the user, parsed, checked and
 * expanded into trials by sweep_parse, as `tlsweep run` does. */
#include "common/sweep/sweep.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sweep s;
    tl_err e;
    sweep_parse(&s, "fuzz.yaml", (const char *)data, size, &e);
    sweep_free(&s);
    return 0;
}
