/* The feature cache (common/store/fcache.h): out/cache/<key>.features read
 * back by a rerun. The key and index fingerprint the reader is asked for
 * are taken from the file's own metadata when it has them, so that mutated
 * seeds get past the "another key's cache" check, and the payload's
 * SHA-256s ("sum_features" per block of "sum_rows" rows, "sum_ok") are
 * fixed up in the header as fcache_read will compute them, so that they
 * get past the checksums into the payload checks (a mismatch is the unit
 * tests' case, tests/store/test_fcache.c). */
#include "common/store/fcache.h"
#include "common/weights/safetensors.h"
#include "fuzz_util.h"

#include <ctype.h>

static uint64_t meta_hex(const weights_st *st, const char *key)
{
    const char *s = st ? weights_st_metadata(st, key) : NULL;
    return s ? strtoull(s, NULL, 16) : 0;
}

/* Where the header h (n bytes of JSON) holds "key": "value" with value as
 * plain text, or NULL (escaped, or the key is only a tensor's name). */
static uint8_t *meta_at(uint8_t *h, size_t n, const char *key, const char *value)
{
    char k[32];
    size_t kl = (size_t)snprintf(k, sizeof k, "\"%s\"", key), vl = strlen(value);
    for (uint8_t *p = h, *end = h + n; (p = memmem(p, (size_t)(end - p), k, kl)); p++) {
        uint8_t *q = p + kl;
        while (q < end && isspace(*q))
            q++;
        if (q == end || *q++ != ':')
            continue;
        while (q < end && isspace(*q))
            q++;
        if ((size_t)(end - q) > vl + 1 && *q == '"' && memcmp(q + 1, value, vl) == 0 &&
            q[1 + vl] == '"')
            return q + 1;
    }
    return NULL;
}

/* The digests of st's 'features' blocks and 'ok' written over their
 * metadata values in buf (the input's copy st was opened from), where the
 * values have the length fcache_read expects; the rest is left for the
 * reader to refuse. */
static void fix_sums(uint8_t *buf, const weights_st *st)
{
    const weights_st_tensor *f = weights_st_find(st, "features"), *k = weights_st_find(st, "ok");
    const char *rs = weights_st_metadata(st, "sum_rows");
    const char *fs = weights_st_metadata(st, "sum_features"), *ks = weights_st_metadata(st, "sum_ok");
    size_t items, dim, bytes, rows;
    if (!f || !k || f->ndim != 2 || !rs || !*rs || strlen(rs) > 19 || !fs || !ks)
        return;
    for (const char *p = rs; *p; p++)
        if (!isdigit((unsigned char)*p))
            return;
    items = f->shape[0], dim = f->shape[1], rows = (size_t)strtoull(rs, NULL, 10);
    if (!rows || __builtin_mul_overflow(items, dim, &bytes) ||
        __builtin_mul_overflow(bytes, sizeof(float), &bytes) || bytes != f->nbytes)
        return;
    size_t blocks = items / rows + (items % rows != 0);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    uint8_t *fp = meta_at(buf + 8, hlen, "sum_features", fs);
    uint8_t *kp = meta_at(buf + 8, hlen, "sum_ok", ks);
    unsigned char d[SHA256_DIGEST_SIZE];
    char hex[65];
    if (fp && strlen(fs) == blocks * 64) {
        for (size_t b = 0; b < blocks; b++) {
            size_t r0 = b * rows, n = items - r0 < rows ? items - r0 : rows;
            sha256((const uint8_t *)f->data + r0 * dim * sizeof(float), n * dim * sizeof(float), d);
            memcpy(fp + b * 64, sha256_hex(d, hex), 64);
        }
    }
    if (kp && strlen(ks) == 64) {
        sha256(k->data, k->nbytes, d);
        memcpy(kp, sha256_hex(d, hex), 64);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weights_st *st = NULL;
    tl_err e;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    weights_st_open_mem(&st, "fuzz.features", data, size, &e);
    uint64_t key = meta_hex(st, "key"), index = meta_hex(st, "index");
    if (st)
        fix_sums(buf, st);
    weights_st_close(st);

    char path[64];
    int fd = fuzz_memfd(buf, size, path, sizeof path);
    free(buf);
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
