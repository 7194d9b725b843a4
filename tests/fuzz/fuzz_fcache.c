/* The feature cache (common/store/fcache.h): out/cache/<key>.features read
 * back by a rerun. The key and index fingerprint the reader is asked for
 * are taken from the file's own metadata when it has them, so that mutated
 * seeds get past the "another key's cache" check into the payload checks. */
#include "common/store/fcache.h"
#include "common/weights/safetensors.h"
#include "fuzz_util.h"

#include <string.h>

static uint64_t meta_hex(const weights_st *st, const char *key)
{
    const char *s = st ? weights_st_metadata(st, key) : NULL;
    return s ? strtoull(s, NULL, 16) : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weights_st *st = NULL;
    tl_err e;
    weights_st_open_mem(&st, "fuzz.features", data, size, &e);
    uint64_t key = meta_hex(st, "key"), index = meta_hex(st, "index");
    weights_st_close(st);

    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    fcache c;
    memset(&c, 0, sizeof c);
    if (fcache_read(path, key, index, &c, &e) == 0) {
        /* every row and flag is there, as the head trainer reads them */
        volatile float sum = 0;
        for (size_t i = 0; i < c.n_items; i++)
            if (c.ok[i] > 1)
                abort();
        for (size_t i = 0; i < c.n_items * c.dim; i++)
            sum += c.x[i];
        (void)sum;
    }
    fcache_free(&c);
    close(fd);
    return 0;
}
