/* safetensors (common/weights/safetensors.h): weights files from outside,
 * and the frame of the feature cache. Every tensor a file passes with is
 * converted, as an importer would. */
#include "common/weights/safetensors.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weights_st *st = NULL;
    tl_err e;
    if (weights_st_open_mem(&st, "fuzz.safetensors", data, size, &e) == 0) {
        weights_st_check_finite(st, &e);
        weights_st_metadata(st, "format");
        for (size_t i = 0; i < weights_st_count(st); i++) {
            const weights_st_tensor *t = weights_st_get(st, i);
            if (weights_st_find(st, t->name) != t)
                abort();
            if (t->numel > (1u << 20))
                continue;
            float *x = malloc((t->numel ? t->numel : 1) * sizeof *x);
            if (x)
                weights_st_to_f32(t, x, t->numel, &e);
            free(x);
        }
    }
    weights_st_close(st);
    return 0;
}
