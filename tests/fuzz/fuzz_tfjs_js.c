/* nsfwjs's packaging of tfjs models (common/weights/weights_tfjs_js.h): the
 * JS object literal of model.min.js rewritten as JSON, and a shard module's
 * base64 string decoded. Both decoders run on every input. */
#include "common/weights/weights_tfjs.h"
#include "common/weights/weights_tfjs_js.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    tl_err e;
    size_t at = 0, end = 0;
    char *json = weights_tfjs_js_to_json("fuzz.min.js", s, size, &at, &end, &e);
    if (json && (at > end || end > size))
        abort();
    free(json);

    size_t n = 0;
    if (weights_tfjs__js_shard_string("fuzz-shard.min.js", s, size, &at, &n, &e) == 0) {
        if (at > size || n > size - at)
            abort();
        size_t cap = n / 4 * 3 + 3;
        unsigned char *buf = malloc(cap);
        if (!buf)
            abort();
        long got = weights_tfjs_base64_decode(s + at, n, buf, cap);
        if (got > (long)cap)
            abort();
        if (got < 0 && weights_tfjs__base64_valid_prefix(s + at, n) > n)
            abort();
        free(buf);
    }
    return 0;
}
