/* The frozen feature cache file: safetensors with metadata. See fcache.h. */
#include "common/store/fcache.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/sha256.h"
#include "common/weights/safetensors.h"

/* Rows per checksummed block: about FCACHE_SUM_BYTES of features each. */
static size_t sum_rows(size_t dim)
{
    size_t r = FCACHE_SUM_BYTES / (dim * sizeof(float));
    return r ? r : 1;
}

/* The hex SHA-256 of n bytes at p into hex (64 digits and a NUL). */
static void sum_hex(const void *p, size_t n, char *hex)
{
    unsigned char d[SHA256_DIGEST_SIZE];
    sha256(p, n, d);
    sha256_hex(d, hex);
}

/* The digests of x's blocks of rows, concatenated; NULL when out of memory. */
static char *features_sums(const float *x, size_t n_items, size_t dim, size_t rows)
{
    size_t blocks = (n_items + rows - 1) / rows;
    char *hex = malloc(blocks * 64 + 1);
    if (!hex)
        return NULL;
    for (size_t b = 0; b < blocks; b++) {
        size_t r0 = b * rows, n = n_items - r0 < rows ? n_items - r0 : rows;
        char one[65];
        sum_hex(x + r0 * dim, n * dim * sizeof(float), one);
        memcpy(hex + b * 64, one, 64);
    }
    hex[blocks * 64] = '\0';
    return hex;
}

void fcache_path(char *buf, size_t n, const char *dir, uint64_t key)
{
    snprintf(buf, n, "%s/%016" PRIx64 ".features", dir, key);
}

void fcache_free(fcache *c)
{
    free(c->x);
    free(c->ok);
    memset(c, 0, sizeof *c);
}

int fcache_write(const char *path, uint64_t key, const char *text, uint64_t index_fingerprint,
                 const float *x, const uint8_t *ok, size_t n_items, size_t dim, tl_err *e)
{
    if (n_items == 0 || dim == 0)
        return tl_errf(e, TL_EINVAL, "%s: feature cache of %zu items x %zu dims is empty", path,
                       n_items, dim);
    float *okf = malloc(n_items * sizeof *okf);
    size_t rows = sum_rows(dim);
    char *fsums = features_sums(x, n_items, dim, rows);
    if (!okf || !fsums) {
        free(okf);
        free(fsums);
        return tl_errf(e, TL_ENOMEM, "%s: out of memory for %zu flags", path, n_items);
    }
    for (size_t i = 0; i < n_items; i++)
        okf[i] = ok[i] ? 1.0f : 0.0f;

    char key_hex[17], index_hex[17], items[32], dims[32], rows_s[32], oksum[65];
    snprintf(rows_s, sizeof rows_s, "%zu", rows);
    sum_hex(okf, n_items * sizeof *okf, oksum);
    snprintf(key_hex, sizeof key_hex, "%016" PRIx64, key);
    snprintf(index_hex, sizeof index_hex, "%016" PRIx64, index_fingerprint);
    snprintf(items, sizeof items, "%zu", n_items);
    snprintf(dims, sizeof dims, "%zu", dim);
    const char *meta[] = {"format", FCACHE_FORMAT, "key", key_hex, "text", text ? text : "",
                          "index", index_hex, "items", items, "dim", dims,
                          "sum_rows", rows_s, "sum_features", fsums, "sum_ok", oksum};
    weights_st_entry t[2] = {
        {.name = "features", .data = x, .ndim = 2, .shape = {n_items, dim}},
        {.name = "ok", .data = okf, .ndim = 1, .shape = {n_items}},
    };
    int rc = weights_st_write_meta(path, t, 2, meta, sizeof meta / sizeof *meta / 2, e);
    free(okf);
    free(fsums);
    return rc;
}

/* A metadata value of 16 hex digits into *v; -1 when absent or malformed. */
static int meta_hex(const weights_st *st, const char *name, uint64_t *v)
{
    const char *s = weights_st_metadata(st, name);
    if (!s || strlen(s) != 16)
        return -1;
    for (int i = 0; i < 16; i++)
        if (!isxdigit((unsigned char)s[i]))
            return -1;
    *v = strtoull(s, NULL, 16);
    return 0;
}

/* A metadata value of decimal digits into *v; -1 when absent or malformed. */
static int meta_size(const weights_st *st, const char *name, size_t *v)
{
    const char *s = weights_st_metadata(st, name);
    if (!s || !*s || strlen(s) > 19)
        return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    *v = (size_t)strtoull(s, NULL, 10);
    return 0;
}

/* The payload against its digests, before any of it is used: a flipped
 * bit anywhere in a block of rows (a sign, an exponent) is a damaged file. */
static int check_sums(const char *path, const weights_st *st, const weights_st_tensor *f,
                      const weights_st_tensor *k, size_t items, size_t dim, tl_err *e)
{
    size_t rows;
    const char *fs = weights_st_metadata(st, "sum_features"), *ks = weights_st_metadata(st, "sum_ok");
    size_t blocks = 0;
    if (meta_size(st, "sum_rows", &rows) == 0 && rows > 0)
        blocks = items / rows + (items % rows != 0);
    if (!blocks || !fs || !ks || strlen(fs) != blocks * 64 || strlen(ks) != 64)
        return tl_errf(e, TL_EFORMAT, "%s: checksums missing or malformed (metadata "
                       "'sum_rows', 'sum_features', 'sum_ok')", path);
    char hex[65];
    for (size_t b = 0; b < blocks; b++) {
        size_t r0 = b * rows, n = items - r0 < rows ? items - r0 : rows;
        sum_hex((const unsigned char *)f->data + r0 * dim * sizeof(float),
                n * dim * sizeof(float), hex);
        if (memcmp(hex, fs + b * 64, 64) != 0)
            return tl_errf(e, TL_EFORMAT, "%s: checksum mismatch in 'features' rows %zu-%zu "
                           "(damaged file)", path, r0, r0 + n - 1);
    }
    sum_hex(k->data, k->nbytes, hex);
    if (memcmp(hex, ks, 64) != 0)
        return tl_errf(e, TL_EFORMAT, "%s: checksum mismatch in 'ok' (damaged file)", path);
    return 0;
}

/* Format, owner and shapes; *features and *ok the checked tensors. */
static int check_file(const char *path, const weights_st *st, uint64_t key, uint64_t index,
                      const weights_st_tensor **features, const weights_st_tensor **ok,
                      tl_err *e)
{
    const char *format = weights_st_metadata(st, "format");
    if (!format || strcmp(format, FCACHE_FORMAT) != 0)
        return tl_errf(e, TL_EFORMAT, "%s: format '%s', expected '%s'", path,
                       format ? format : "(none)", FCACHE_FORMAT);
    uint64_t file_key, file_index;
    if (meta_hex(st, "key", &file_key) < 0 || meta_hex(st, "index", &file_index) < 0)
        return tl_errf(e, TL_EFORMAT, "%s: metadata 'key' or 'index' is not 16 hex digits",
                       path);
    if (file_key != key)
        return tl_errf(e, TL_ENOTFOUND, "%s: key differs: the file caches %016" PRIx64
                       " (%s), wanted %016" PRIx64, path, file_key,
                       weights_st_metadata(st, "text") ? weights_st_metadata(st, "text") : "?",
                       key);
    if (file_index != index)
        return tl_errf(e, TL_ENOTFOUND, "%s: index differs (stale cache): the file was made "
                       "for index %016" PRIx64 ", the data is now %016" PRIx64, path,
                       file_index, index);

    const weights_st_tensor *f = weights_st_find(st, "features"), *k = weights_st_find(st, "ok");
    size_t items, dim;
    if (!f || !k)
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s' missing", path, f ? "ok" : "features");
    if (f->dtype != WEIGHTS_ST_F32 || f->ndim != 2 || k->dtype != WEIGHTS_ST_F32 || k->ndim != 1)
        return tl_errf(e, TL_EFORMAT, "%s: expected F32 'features' (items, dim) and F32 'ok' "
                       "(items), got %s %dD and %s %dD", path, weights_st_dtype_name(f->dtype),
                       f->ndim, weights_st_dtype_name(k->dtype), k->ndim);
    if (meta_size(st, "items", &items) < 0 || meta_size(st, "dim", &dim) < 0)
        return tl_errf(e, TL_EFORMAT, "%s: metadata 'items' or 'dim' is not a number", path);
    if (f->shape[0] != items || f->shape[1] != dim || k->shape[0] != items || items == 0 ||
        dim == 0)
        return tl_errf(e, TL_EFORMAT, "%s: shape differs: 'features' (%zu, %zu) and 'ok' (%zu) "
                       "for %zu items of %zu dims", path, f->shape[0], f->shape[1],
                       k->shape[0], items, dim);
    *features = f;
    *ok = k;
    return check_sums(path, st, f, k, items, dim, e);
}

int fcache_read(const char *path, uint64_t key, uint64_t index_fingerprint, fcache *c,
                tl_err *e)
{
    memset(c, 0, sizeof *c);
    weights_st *st;
    int rc = weights_st_open(&st, path, e);
    if (rc < 0)
        return rc == TL_ENOTFOUND || rc == TL_EIO || rc == TL_ENOMEM ? rc : TL_EFORMAT;
    const weights_st_tensor *f = NULL, *k = NULL;
    rc = check_file(path, st, key, index_fingerprint, &f, &k, e);
    float *okf = NULL;
    if (rc == 0) {
        c->n_items = f->shape[0];
        c->dim = f->shape[1];
        c->x = malloc(f->numel * sizeof *c->x);
        c->ok = malloc(c->n_items);
        okf = malloc(c->n_items * sizeof *okf);
        if (!c->x || !c->ok || !okf)
            rc = tl_errf(e, TL_ENOMEM, "%s: out of memory for %zu x %zu features", path,
                         c->n_items, c->dim);
    }
    if (rc == 0 && (rc = weights_st_to_f32(f, c->x, f->numel, e)) == 0)
        rc = weights_st_to_f32(k, okf, c->n_items, e);
    for (size_t i = 0; rc == 0 && i < c->n_items; i++) {
        if (okf[i] != 0.0f && okf[i] != 1.0f)
            rc = tl_errf(e, TL_EFORMAT, "%s: 'ok'[%zu] is %g, expected 0 or 1", path, i,
                         (double)okf[i]);
        else
            c->ok[i] = okf[i] == 1.0f;
    }
    free(okf);
    weights_st_close(st);
    if (rc < 0)
        fcache_free(c);
    return rc;
}
