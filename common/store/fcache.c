/* The frozen feature cache file: safetensors with metadata. See fcache.h. */
#include "common/store/fcache.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/weights/safetensors.h"

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
    if (!okf)
        return tl_errf(e, TL_ENOMEM, "%s: out of memory for %zu flags", path, n_items);
    for (size_t i = 0; i < n_items; i++)
        okf[i] = ok[i] ? 1.0f : 0.0f;

    char key_hex[17], index_hex[17], items[32], dims[32];
    snprintf(key_hex, sizeof key_hex, "%016" PRIx64, key);
    snprintf(index_hex, sizeof index_hex, "%016" PRIx64, index_fingerprint);
    snprintf(items, sizeof items, "%zu", n_items);
    snprintf(dims, sizeof dims, "%zu", dim);
    const char *meta[] = {"format", FCACHE_FORMAT, "key", key_hex, "text", text ? text : "",
                          "index", index_hex, "items", items, "dim", dims};
    weights_st_entry t[2] = {
        {.name = "features", .data = x, .ndim = 2, .shape = {n_items, dim}},
        {.name = "ok", .data = okf, .ndim = 1, .shape = {n_items}},
    };
    int rc = weights_st_write_meta(path, t, 2, meta, sizeof meta / sizeof *meta / 2, e);
    free(okf);
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
    return 0;
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
