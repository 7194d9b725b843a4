#include "common/base/le.h"
#include "common/weights/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/fileio.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads and writes tensor data as little-endian host memory"
#endif

struct weights_st {
    char *path;
    unsigned char *base;       /* allocation holding the file image */
    const unsigned char *data; /* start of the data section, 64-byte aligned */
    size_t data_len;
    json_t *root;              /* owns the name and metadata strings */
    json_t *meta;              /* borrowed from root, may be NULL */
    weights_st_tensor *t;      /* sorted by name */
    size_t n;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[WEIGHTS_ST_NDTYPES] = {
    [WEIGHTS_ST_BOOL] = {"BOOL", 1},      [WEIGHTS_ST_U8] = {"U8", 1},
    [WEIGHTS_ST_I8] = {"I8", 1},          [WEIGHTS_ST_F8_E5M2] = {"F8_E5M2", 1},
    [WEIGHTS_ST_F8_E4M3] = {"F8_E4M3", 1}, [WEIGHTS_ST_I16] = {"I16", 2},
    [WEIGHTS_ST_U16] = {"U16", 2},        [WEIGHTS_ST_F16] = {"F16", 2},
    [WEIGHTS_ST_BF16] = {"BF16", 2},      [WEIGHTS_ST_I32] = {"I32", 4},
    [WEIGHTS_ST_U32] = {"U32", 4},        [WEIGHTS_ST_F32] = {"F32", 4},
    [WEIGHTS_ST_F64] = {"F64", 8},        [WEIGHTS_ST_I64] = {"I64", 8},
    [WEIGHTS_ST_U64] = {"U64", 8},
};

const char *weights_st_dtype_name(weights_st_dtype d)
{
    return (unsigned)d < WEIGHTS_ST_NDTYPES ? dtypes[d].name : "?";
}

/* Names come from untrusted files: quote them printable and short so the
 * message stays one line. */
typedef struct {
    char s[96];
} qname;

static qname q(const char *name)
{
    qname r;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o < sizeof r.s - 8; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\'') {
            r.s[o++] = (char)*p;
        } else {
            snprintf(r.s + o, sizeof r.s - o, "\\x%02x", *p);
            o += 4;
        }
        if (o >= sizeof r.s - 8 && p[1]) {
            memcpy(r.s + o, "...", 4);
            return r;
        }
    }
    r.s[o] = 0;
    return r;
}

/* ---- reading -------------------------------------------------------------- */


/* Checks the 8-byte prefix of a size-byte file and returns the header length. */
static int check_prefix(const char *path, size_t size, const unsigned char *first8, size_t *hlen,
                        tl_err *e)
{
    if (size < 8)
        return tl_errf(e, TL_EFORMAT, "%s: %zu bytes is too short for a safetensors file", path, size);
    uint64_t n = le_get_u64(first8);
    if (n > WEIGHTS_ST_MAX_HEADER)
        return tl_errf(e, TL_EFORMAT, "%s: header length %llu exceeds the %u byte limit", path,
                       (unsigned long long)n, WEIGHTS_ST_MAX_HEADER);
    if (n > size - 8)
        return tl_errf(e, TL_EFORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)",
                       path, (unsigned long long)n, size);
    if (n < 2)
        return tl_errf(e, TL_EFORMAT, "%s: header length %llu is too short for a JSON object", path,
                       (unsigned long long)n);
    *hlen = (size_t)n;
    return 0;
}

/* Allocates a file image placed so that the data section is 64-byte
 * aligned; returns where the file's first byte goes. */
static unsigned char *alloc_image(weights_st *st, size_t size, size_t hlen)
{
    size_t shift = (64 - (8 + hlen) % 64) % 64;
    size_t total = (shift + size + 63) / 64 * 64;
    st->base = aligned_alloc(64, total ? total : 64);
    if (!st->base)
        return NULL;
    return st->base + shift;
}

static int get_size(const json_t *v, size_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (size_t)json_integer_value(v);
    return 0;
}

static int parse_tensor(weights_st *st, const char *name, const json_t *v, weights_st_tensor *t,
                        tl_err *e)
{
    const char *p = st->path;
    if (!json_is_object(v))
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': header entry is not an object", p, q(name).s);
    memset(t, 0, sizeof *t);
    t->name = name;
    t->file = st->path;

    const json_t *jd = json_object_get(v, "dtype");
    if (!json_is_string(jd))
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': missing or non-string dtype", p, q(name).s);
    const char *ds = json_string_value(jd);
    int d = 0;
    while (d < WEIGHTS_ST_NDTYPES && strcmp(ds, dtypes[d].name) != 0)
        d++;
    if (d == WEIGHTS_ST_NDTYPES)
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", p, q(name).s, q(ds).s);
    t->dtype = (weights_st_dtype)d;

    const json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': missing or non-array shape", p, q(name).s);
    if (json_array_size(js) > WEIGHTS_ST_MAX_DIMS)
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': %zu dimensions, at most %d supported", p,
                       q(name).s, json_array_size(js), WEIGHTS_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    size_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (get_size(json_array_get(js, (size_t)i), &t->shape[i]))
            return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", p,
                           q(name).s, i);
        if (__builtin_mul_overflow(numel, t->shape[i], &numel))
            return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': shape overflows", p, q(name).s);
    }
    t->numel = numel;
    size_t want;
    if (__builtin_mul_overflow(numel, dtypes[d].size, &want))
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': shape overflows", p, q(name).s);

    const json_t *jo = json_object_get(v, "data_offsets");
    size_t b, end;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || get_size(json_array_get(jo, 0), &b) ||
        get_size(json_array_get(jo, 1), &end))
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': data_offsets must be [begin, end] integers >= 0",
                       p, q(name).s);
    if (b > end)
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': data_offsets [%zu, %zu] end before they begin", p,
                       q(name).s, b, end);
    if (end > st->data_len)
        return tl_errf(e, TL_EFORMAT,
                       "%s: tensor '%s': data_offsets [%zu, %zu] run past the %zu bytes of data (truncated file?)",
                       p, q(name).s, b, end, st->data_len);
    if (end - b != want)
        return tl_errf(e, TL_EFORMAT,
                       "%s: tensor '%s': %s shape of %zu elements needs %zu bytes, data_offsets [%zu, %zu] hold %zu",
                       p, q(name).s, dtypes[d].name, numel, want, b, end, end - b);
    t->offset = b;
    t->nbytes = want;
    t->data = st->data + b;
    return 0;
}

static int cmp_offset(const void *a, const void *b)
{
    const weights_st_tensor *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const weights_st_tensor *)a)->name, ((const weights_st_tensor *)b)->name);
}

static int parse_header(weights_st *st, const unsigned char *hdr, size_t hlen, tl_err *e)
{
    const char *p = st->path;
    json_error_t je;
    st->root = json_loadb((const char *)hdr, hlen, JSON_REJECT_DUPLICATES, &je);
    if (!st->root) {
        if (strstr(je.text, "duplicate object key"))
            return tl_errf(e, TL_EFORMAT, "%s: duplicate tensor name in header (%s)", p, je.text);
        return tl_errf(e, TL_EFORMAT, "%s: header is not valid JSON: %s at byte %d", p, je.text,
                       je.position);
    }
    if (!json_is_object(st->root))
        return tl_errf(e, TL_EFORMAT, "%s: header is not a JSON object", p);

    size_t cap = json_object_size(st->root);
    st->t = calloc(cap ? cap : 1, sizeof *st->t);
    if (!st->t)
        return tl_errf(e, TL_ENOMEM, "%s: cannot allocate %zu tensor records", p, cap);
    const char *key;
    json_t *v;
    json_object_foreach(st->root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v))
                return tl_errf(e, TL_EFORMAT, "%s: __metadata__ is not an object", p);
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv))
                    return tl_errf(e, TL_EFORMAT, "%s: __metadata__ value for '%s' is not a string", p,
                                   q(mk).s);
            }
            st->meta = v;
            continue;
        }
        int rc = parse_tensor(st, key, v, &st->t[st->n], e);
        if (rc)
            return rc;
        st->n++;
    }

    /* The data must be tiled exactly: sorted by offset, each tensor starts
     * where the previous ended and the last ends at the end of the file. */
    qsort(st->t, st->n, sizeof *st->t, cmp_offset);
    size_t at = 0;
    for (size_t i = 0; i < st->n; i++) {
        const weights_st_tensor *t = &st->t[i];
        if (t->offset < at)
            return tl_errf(e, TL_EFORMAT, "%s: tensor '%s' at [%zu, %zu] overlaps tensor '%s'", p,
                           q(t->name).s, t->offset, t->offset + t->nbytes, q(st->t[i - 1].name).s);
        if (t->offset > at)
            return tl_errf(e, TL_EFORMAT, "%s: tensor '%s' starts at %zu, leaving bytes [%zu, %zu) unused",
                           p, q(t->name).s, t->offset, at, t->offset);
        at = t->offset + t->nbytes;
    }
    if (at != st->data_len)
        return tl_errf(e, TL_EFORMAT, "%s: %zu bytes of data after the last tensor", p, st->data_len - at);

    qsort(st->t, st->n, sizeof *st->t, cmp_name);
    for (size_t i = 1; i < st->n; i++)
        if (strcmp(st->t[i - 1].name, st->t[i].name) == 0)
            return tl_errf(e, TL_EFORMAT, "%s: duplicate tensor name '%s'", p, q(st->t[i].name).s);
    return 0;
}

static weights_st *st_new(const char *path, tl_err *e)
{
    weights_st *st = calloc(1, sizeof *st);
    if (st)
        st->path = strdup(path);
    if (!st || !st->path) {
        free(st);
        tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    return st;
}

/* img holds the whole file; finishes the open. */
static int st_finish(weights_st *st, const unsigned char *img, size_t size, size_t hlen,
                     weights_st **out, tl_err *e)
{
    st->data = img + 8 + hlen;
    st->data_len = size - 8 - hlen;
    int rc = parse_header(st, img + 8, hlen, e);
    if (rc) {
        weights_st_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

int weights_st_open_mem(weights_st **out, const char *name, const void *buf, size_t len, tl_err *e)
{
    *out = NULL;
    size_t hlen = 0;
    int rc = check_prefix(name, len, buf, &hlen, e);
    if (rc)
        return rc;
    weights_st *st = st_new(name, e);
    if (!st)
        return TL_ENOMEM;
    unsigned char *img = alloc_image(st, len, hlen);
    if (!img) {
        weights_st_close(st);
        return tl_errf(e, TL_ENOMEM, "%s: cannot allocate %zu bytes", name, len);
    }
    memcpy(img, buf, len);
    return st_finish(st, img, len, hlen, out, e);
}

static int read_at(int fd, unsigned char *buf, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, buf, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO; /* short: the file shrank under us */
        buf += r, n -= (size_t)r, off += r;
    }
    return 0;
}

int weights_st_open(weights_st **out, const char *path, tl_err *e)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tl_errf(e, errno == ENOENT ? TL_ENOTFOUND : TL_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return tl_errf(e, TL_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char first8[8] = {0};
    int r = size >= 8 ? read_at(fd, first8, 8, 0) : 0;
    if (r != 0) {
        close(fd);
        return tl_errf(e, TL_EIO, "%s: cannot read: %s", path, strerror(-r));
    }
    size_t hlen = 0;
    int rc = check_prefix(path, size, first8, &hlen, e);
    weights_st *st = rc ? NULL : st_new(path, e);
    if (rc || !st) {
        close(fd);
        return rc ? rc : TL_ENOMEM;
    }
    unsigned char *img = alloc_image(st, size, hlen);
    if (!img) {
        close(fd);
        weights_st_close(st);
        return tl_errf(e, TL_ENOMEM, "%s: cannot allocate %zu bytes", path, size);
    }
    r = read_at(fd, img, size, 0);
    close(fd);
    if (r != 0) {
        weights_st_close(st);
        return tl_errf(e, TL_EIO, "%s: cannot read %zu bytes: %s", path, size, strerror(-r));
    }
    return st_finish(st, img, size, hlen, out, e);
}

void weights_st_close(weights_st *st)
{
    if (!st)
        return;
    json_decref(st->root);
    free(st->t);
    free(st->base);
    free(st->path);
    free(st);
}

size_t weights_st_count(const weights_st *st) { return st->n; }

const weights_st_tensor *weights_st_get(const weights_st *st, size_t i)
{
    return i < st->n ? &st->t[i] : NULL;
}

const weights_st_tensor *weights_st_find(const weights_st *st, const char *name)
{
    weights_st_tensor key;
    key.name = name;
    return bsearch(&key, st->t, st->n, sizeof *st->t, cmp_name);
}

const char *weights_st_metadata(const weights_st *st, const char *key)
{
    return st->meta ? json_string_value(json_object_get(st->meta, key)) : NULL;
}

/* ---- conversion ------------------------------------------------------------ */

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in float */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    if (exp == 31)
        return f32_from_bits(sign | 0x7f800000u | mant << 13);
    return f32_from_bits(sign | (exp + 112) << 23 | mant << 13);
}

static float elem_f32(const weights_st_tensor *t, size_t i)
{
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case WEIGHTS_ST_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    case WEIGHTS_ST_F16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        return f16_to_f32(h);
    }
    case WEIGHTS_ST_BF16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        return f32_from_bits((uint32_t)h << 16);
    }
    case WEIGHTS_ST_F64: {
        double d;
        memcpy(&d, p + 8 * i, 8);
        return (float)d;
    }
    default:
        return NAN;
    }
}

static int is_float(weights_st_dtype d)
{
    return d == WEIGHTS_ST_F32 || d == WEIGHTS_ST_F16 || d == WEIGHTS_ST_BF16 || d == WEIGHTS_ST_F64;
}

int weights_st_to_f32(const weights_st_tensor *t, float *dst, size_t n, tl_err *e)
{
    if (!is_float(t->dtype))
        return tl_errf(e, TL_EINVAL, "%s: tensor '%s' has dtype %s, not F32/F16/BF16/F64", t->file,
                       q(t->name).s, dtypes[t->dtype].name);
    if (n != t->numel)
        return tl_errf(e, TL_ESHAPE, "%s: tensor '%s' has %zu elements, caller expects %zu", t->file,
                       q(t->name).s, t->numel, n);
    if (t->dtype == WEIGHTS_ST_F32) {
        memcpy(dst, t->data, n * sizeof *dst);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = elem_f32(t, i);
    return 0;
}

int weights_st_check_finite(const weights_st *st, tl_err *e)
{
    for (size_t k = 0; k < st->n; k++) {
        const weights_st_tensor *t = &st->t[k];
        if (!is_float(t->dtype))
            continue;
        for (size_t i = 0; i < t->numel; i++) {
            double v;
            if (t->dtype == WEIGHTS_ST_F64)
                memcpy(&v, (const unsigned char *)t->data + 8 * i, 8);
            else
                v = elem_f32(t, i);
            if (!isfinite(v))
                return tl_errf(e, TL_EFORMAT, "%s: tensor '%s' element %zu is %s", st->path,
                               q(t->name).s, i, isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf");
        }
    }
    return 0;
}

/* ---- writing --------------------------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
    return strcmp((*(const weights_st_entry *const *)a)->name, (*(const weights_st_entry *const *)b)->name);
}

/* Builds the header text, padded with spaces to a multiple of 8. */
static int build_header(const char *path, const weights_st_entry *const *order, size_t n,
                        const char *const *meta, size_t nmeta, char **out, size_t *outlen, tl_err *e)
{
    json_t *root = json_object();
    if (!root)
        return tl_errf(e, TL_ENOMEM, "%s: out of memory building header", path);
    int rc = 0;
    if (nmeta) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m)) {
            rc = tl_errf(e, TL_ENOMEM, "%s: out of memory building header", path);
            goto done;
        }
        for (size_t i = 0; i < nmeta; i++) {
            const char *k = meta[2 * i], *v = meta[2 * i + 1];
            if (!k || !v || json_object_set_new(m, k, json_string(v))) {
                rc = tl_errf(e, TL_EINVAL, "%s: metadata entry %zu is NULL or not UTF-8", path, i);
                goto done;
            }
        }
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const weights_st_entry *t = order[i];
        size_t numel = 1;
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) {
            json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
            numel *= t->shape[d]; /* overflow checked by the caller */
        }
        json_t *o = json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape, "data_offsets",
                              (json_int_t)off, (json_int_t)(off + 4 * numel));
        if (!o || json_object_set_new(root, t->name, o)) {
            rc = tl_errf(e, TL_EINVAL, "%s: tensor '%s': name is not UTF-8 (or out of memory)", path,
                         q(t->name).s);
            goto done;
        }
        off += 4 * numel;
    }
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s) {
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory serialising header", path);
        goto done;
    }
    size_t len = strlen(s), padded = (len + 7) / 8 * 8;
    char *h = realloc(s, padded + 1);
    if (!h) {
        free(s);
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory serialising header", path);
        goto done;
    }
    memset(h + len, ' ', padded - len);
    h[padded] = 0;
    *out = h;
    *outlen = padded;
done:
    json_decref(root);
    return rc;
}

static int check_entries(const char *path, const weights_st_entry *en, size_t n, tl_err *e)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const weights_st_entry *t = &en[i];
        if (!t->name)
            return tl_errf(e, TL_EINVAL, "%s: entry %zu has no name", path, i);
        if (strcmp(t->name, "__metadata__") == 0)
            return tl_errf(e, TL_EINVAL, "%s: '__metadata__' cannot name a tensor", path);
        if (t->ndim < 0 || t->ndim > WEIGHTS_ST_MAX_DIMS)
            return tl_errf(e, TL_EINVAL, "%s: tensor '%s': ndim %d outside [0, %d]", path, q(t->name).s,
                           t->ndim, WEIGHTS_ST_MAX_DIMS);
        size_t numel = 1, bytes;
        for (int d = 0; d < t->ndim; d++)
            if (__builtin_mul_overflow(numel, t->shape[d], &numel))
                return tl_errf(e, TL_EINVAL, "%s: tensor '%s': shape overflows", path, q(t->name).s);
        /* every offset must fit the header's int64 */
        if (__builtin_mul_overflow(numel, 4, &bytes) || __builtin_add_overflow(total, bytes, &total) ||
            total > (size_t)INT64_MAX)
            return tl_errf(e, TL_EINVAL, "%s: tensor '%s': data too large", path, q(t->name).s);
        if (numel && !t->data)
            return tl_errf(e, TL_EINVAL, "%s: tensor '%s': NULL data", path, q(t->name).s);
    }
    return 0;
}

static size_t entry_numel(const weights_st_entry *t)
{
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++)
        numel *= t->shape[d];
    return numel;
}

int weights_st_write_meta(const char *path, const weights_st_entry *entries, size_t n,
                          const char *const *meta, size_t nmeta, tl_err *e)
{
    int rc = check_entries(path, entries, n, e);
    if (rc)
        return rc;
    const weights_st_entry **order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++)
        order[i] = &entries[i];
    qsort(order, n, sizeof *order, cmp_entry);
    for (size_t i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            rc = tl_errf(e, TL_EINVAL, "%s: duplicate tensor name '%s'", path, q(order[i]->name).s);
            free(order);
            return rc;
        }

    char *hdr = NULL;
    size_t hlen = 0;
    rc = build_header(path, order, n, meta, nmeta, &hdr, &hlen, e);
    if (rc) {
        free(order);
        return rc;
    }

    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    tl_atomic_file f;
    rc = tl_atomic_open(&f, path, e);
    if (!rc)
        rc = tl_atomic_write(&f, len8, 8, e);
    if (!rc)
        rc = tl_atomic_write(&f, hdr, hlen, e);
    for (size_t i = 0; i < n && !rc; i++)
        rc = tl_atomic_write(&f, order[i]->data, 4 * entry_numel(order[i]), e);
    if (!rc)
        rc = tl_atomic_commit(&f, e);
    tl_atomic_abort(&f);
    free(hdr);
    free(order);
    return rc;
}

int weights_st_write(const char *path, const weights_st_entry *entries, size_t n, tl_err *e)
{
    return weights_st_write_meta(path, entries, n, NULL, 0, e);
}
