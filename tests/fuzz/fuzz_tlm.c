/* The .tlm model file (common/weights/model_file.h): bytes a user hands to
 * `tlsweep predict` or a sweep's weights:, through model_read_mem. The
 * trailing SHA-256 of the payload is fixed up (fuzz_util.h). */
#include "common/weights/model_file.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model_spec spec;
    tset t;
    tl_err e;
    model_spec_init(&spec);
    tset_init(&t);
    uint8_t *buf = fuzz_fix_sha256(data, size, MODEL_HEADER_SIZE);
    model_read_mem("fuzz.tlm", buf, size, &spec, &t, &e);
    free(buf);
    model_spec_free(&spec);
    tset_free(&t);
    return 0;
}
