/* TensorFlow.js layers models (common/weights/weights_tfjs.h): a model.json
 * and its weight shard, as downloaded. The input is the JSON, a NUL byte,
 * then the bytes of the shard, written to <dir>/model.json and
 * <dir>/group1-shard1of1.bin (what the seeds' manifests name) in a folder
 * of this process's own. */
#include "common/weights/weights_tfjs.h"
#include "fuzz_util.h"

#include <fcntl.h>
#include <string.h>

static const char *const files[] = {"model.json", "group1-shard1of1.bin", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir("tfjs", files);
    const uint8_t *nul = memchr(data, 0, size);
    size_t json = nul ? (size_t)(nul - data) : size;
    fuzz_put(dir, "model.json", data, json);
    fuzz_put(dir, "group1-shard1of1.bin", nul ? nul + 1 : data, nul ? size - json - 1 : 0);

    tset t;
    weights_tfjs_info info;
    tl_err e;
    tset_init(&t);
    weights_tfjs_read(dir, &t, &info, &e);
    weights_tfjs_info_free(&info);
    tset_free(&t);
    return 0;
}
