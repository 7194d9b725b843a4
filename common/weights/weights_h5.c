/* Keras .h5 weights through libhdf5: see weights_h5.h for the layout.
 * This half runs in the child process (weights_h5_child.c): it walks the
 * file and hands each tensor to a sink, after bounding its size. */
#include "common/weights/weights_h5_int.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

/* What one read needs to name things in messages and to bound sizes. */
typedef struct {
    const char *path;
    weights_h5__sink sink;
    void *u;
    tl_err *e;
    uint64_t file_size;
    uint64_t raw_bytes;   /* uncompressed datasets so far, as stored */
    uint64_t out_bytes;   /* every tensor so far, as float32 */
} h5_ctx;

typedef struct {
    char **v;
    size_t n;
} strlist;

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int strlist_push(strlist *l, const char *s, size_t len)
{
    char **v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v)
        return TL_ENOMEM;
    l->v = v;
    char *c = malloc(len + 1);
    if (!c)
        return TL_ENOMEM;
    memcpy(c, s, len);
    c[len] = 0;
    l->v[l->n++] = c;
    return 0;
}

static void h5_close(hid_t id, herr_t (*close)(hid_t))
{
    if (id >= 0)
        close(id);
}

static int h5_reclaim(hid_t type, hid_t space, void *buf)
{
#if H5_VERSION_GE(1, 12, 0) /* declared but not exported by 1.10.8 */
    return H5Treclaim(type, space, H5P_DEFAULT, buf) < 0 ? -1 : 0;
#else
    return H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf) < 0 ? -1 : 0;
#endif
}

/* Variable-length strings (a Python str list) of attribute a into l. */
static int read_vlen_strs(hid_t a, hid_t ft, hid_t sp, size_t n, strlist *l)
{
    int rc = TL_ENOMEM;
    hid_t mt = -1;
    char **s = calloc(n, sizeof *s);
    if (!s || (mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
        H5Tset_cset(mt, H5Tget_cset(ft)) < 0)
        goto done;
    if (H5Aread(a, mt, s) < 0) {
        rc = TL_EFORMAT;
        goto done;
    }
    rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = strlist_push(l, s[i] ? s[i] : "", s[i] ? strlen(s[i]) : 0);
    h5_reclaim(mt, sp, s);
done:
    free(s);
    h5_close(mt, H5Tclose);
    return rc;
}

/* Fixed-length strings (numpy bytes, NUL- or space-padded) into l. Read
 * in the file's own type: converting to a NUL-terminated type of the same
 * size would cut the last byte of the longest name. */
static int read_fixed_strs(hid_t a, hid_t ft, size_t n, strlist *l)
{
    size_t sz = H5Tget_size(ft);
    int spacepad = H5Tget_strpad(ft) == H5T_STR_SPACEPAD;
    if (sz == 0 || n > SIZE_MAX / sz)
        return TL_EFORMAT;
    int rc = TL_ENOMEM;
    hid_t mt = -1;
    char *buf = malloc(n * sz);
    if (!buf || (mt = H5Tcopy(ft)) < 0)
        goto done;
    if (H5Aread(a, mt, buf) < 0) {
        rc = TL_EFORMAT;
        goto done;
    }
    rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *s = buf + i * sz;
        size_t len = strnlen(s, sz);
        while (spacepad && len && s[len - 1] == ' ')
            len--;
        rc = strlist_push(l, s, len);
    }
done:
    free(buf);
    h5_close(mt, H5Tclose);
    return rc;
}

/* Appends the strings of attribute `attr` of obj (`where` names obj in
 * messages) to l. An empty array of any type (Keras writes np.asarray([]),
 * float64, for a layer without weights) is no strings. */
static int read_str_attr(h5_ctx *c, hid_t obj, const char *attr, const char *where, strlist *l)
{
    int rc = 0;
    hid_t a = -1, ft = -1, sp = -1;
    hssize_t n = 0;

    if ((a = H5Aopen(obj, attr, H5P_DEFAULT)) < 0 || (ft = H5Aget_type(a)) < 0 ||
        (sp = H5Aget_space(a)) < 0 ||
        (H5Sget_simple_extent_type(sp) != H5S_NULL && (n = H5Sget_simple_extent_npoints(sp)) < 0)) {
        rc = tl_errf(c->e, TL_EFORMAT, "%s: %s: cannot read attribute '%s'", c->path, where,
                     attr);
        goto done;
    }
    if (n == 0)
        goto done;
    if (H5Tget_class(ft) != H5T_STRING) {
        rc = tl_errf(c->e, TL_EFORMAT, "%s: %s: attribute '%s' is not a list of strings",
                     c->path, where, attr);
        goto done;
    }
    htri_t vlen = H5Tis_variable_str(ft);
    rc = vlen < 0   ? TL_EFORMAT
         : vlen > 0 ? read_vlen_strs(a, ft, sp, (size_t)n, l)
                    : read_fixed_strs(a, ft, (size_t)n, l);
    if (rc == TL_ENOMEM)
        rc = tl_errf(c->e, rc, "%s: %s: attribute '%s': out of memory", c->path, where, attr);
    else if (rc)
        rc = tl_errf(c->e, rc, "%s: %s: cannot read the strings of attribute '%s'", c->path,
                     where, attr);
done:
    h5_close(sp, H5Sclose);
    h5_close(ft, H5Tclose);
    h5_close(a, H5Aclose);
    return rc;
}

/* Keras's load_attributes_from_hdf5_group: attribute `name`, or the chunks
 * name0, name1, ... it was split into. 1 when found, 0 when neither form
 * exists, or a negative TL_E* code. */
static int read_name_list(h5_ctx *c, hid_t obj, const char *name, const char *where, strlist *l)
{
    if (H5Aexists(obj, name) > 0) {
        int rc = read_str_attr(c, obj, name, where, l);
        return rc ? rc : 1;
    }
    char chunk[128];
    int k = 0;
    for (;; k++) {
        snprintf(chunk, sizeof chunk, "%s%d", name, k);
        if (H5Aexists(obj, chunk) <= 0)
            break;
        int rc = read_str_attr(c, obj, chunk, where, l);
        if (rc)
            return rc;
    }
    return k > 0;
}

/* "block_1_expand/kernel:0" -> "kernel" (last) or "block_1_expand/kernel"
 * (!last): the weight name without its ":N" variable suffix. */
static void weight_short_name(const char *w, int last, char *buf, size_t cap)
{
    const char *s = w;
    if (last) {
        const char *slash = strrchr(w, '/');
        s = slash ? slash + 1 : w;
    }
    size_t len = strlen(s);
    const char *colon = strrchr(s, ':');
    if (colon && colon[1]) {
        const char *d = colon + 1;
        while (*d >= '0' && *d <= '9')
            d++;
        if (!*d)
            len = (size_t)(colon - s);
    }
    snprintf(buf, cap, "%.*s", (int)len, s);
}

static const char *h5_class_name(H5T_class_t cls)
{
    switch (cls) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_BITFIELD: return "bitfield";
    case H5T_OPAQUE: return "opaque";
    case H5T_COMPOUND: return "compound";
    case H5T_REFERENCE: return "reference";
    case H5T_ENUM: return "enum";
    case H5T_VLEN: return "variable-length";
    case H5T_ARRAY: return "array";
    default: return "unknown";
    }
}

/* The dataset's size against the file's before anything is allocated: an
 * uncompressed dataset is stored in the file, so all of them together fit
 * in its size; a compressed one inflates at most WEIGHTS_H5_MAX_RATIO
 * times (deflate's bound); and all tensors together stay under
 * WEIGHTS_H5_MAX_BYTES as float32. External and virtual storage (data in
 * other files) is refused. A header that claims more is damage (a 9 KB file
 * asked for 154 GB). */
static int check_size(h5_ctx *c, hid_t d, const char *layer, const char *wname, size_t n,
                      size_t tsize)
{
    hid_t dcpl = H5Dget_create_plist(d);
    if (dcpl < 0)
        return tl_errf(c->e, TL_EFORMAT, "%s: layer '%s': dataset '%s' cannot be read", c->path,
                       layer, wname);
    H5D_layout_t lay = H5Pget_layout(dcpl);
    int filters = H5Pget_nfilters(dcpl), ext = H5Pget_external_count(dcpl);
    H5Pclose(dcpl);
    if ((lay != H5D_CONTIGUOUS && lay != H5D_CHUNKED && lay != H5D_COMPACT) || ext != 0 ||
        filters < 0)
        return tl_errf(c->e, TL_EFORMAT,
                       "%s: layer '%s': dataset '%s' keeps its data outside the file (external "
                       "or virtual storage) or has an unreadable layout",
                       c->path, layer, wname);
    uint64_t stored = (uint64_t)n * tsize, as_float = (uint64_t)n * sizeof(float);
    uint64_t raw = c->raw_bytes + (filters ? 0 : stored);
    if (raw > c->file_size || (filters && stored / WEIGHTS_H5_MAX_RATIO > c->file_size)) {
        const char *how = filters                     ? ", compressed"
                          : stored <= c->file_size ? " with the datasets before it"
                                                   : "";
        return tl_errf(c->e, TL_EFORMAT,
                       "%s: layer '%s': dataset '%s' claims %zu values (%llu bytes%s), more than "
                       "the file's %llu bytes can hold",
                       c->path, layer, wname, n, (unsigned long long)stored, how,
                       (unsigned long long)c->file_size);
    }
    if (c->out_bytes + as_float > WEIGHTS_H5_MAX_BYTES)
        return tl_errf(c->e, TL_EFORMAT,
                       "%s: layer '%s': dataset '%s' takes the tensors past %llu bytes (the limit)",
                       c->path, layer, wname, (unsigned long long)WEIGHTS_H5_MAX_BYTES);
    c->raw_bytes = raw;
    c->out_bytes += as_float;
    return 0;
}

/* Dataset `wname` (relative to the layer group g) as float32 tensor
 * `tname`, handed to the sink. */
static int read_weight(h5_ctx *c, hid_t g, const char *layer, const char *wname,
                       const char *tname)
{
    int rc = 0;
    hid_t d = -1, ft = -1, sp = -1;
    float *data = NULL;
    double *wide = NULL;

    if ((d = H5Dopen2(g, wname, H5P_DEFAULT)) < 0) {
        rc = tl_errf(c->e, TL_EFORMAT,
                     "%s: layer '%s': weight_names lists '%s' but there is no such dataset",
                     c->path, layer, wname);
        goto done;
    }
    if ((ft = H5Dget_type(d)) < 0 || (sp = H5Dget_space(d)) < 0) {
        rc = tl_errf(c->e, TL_EFORMAT, "%s: layer '%s': dataset '%s' cannot be read", c->path,
                     layer, wname);
        goto done;
    }
    H5T_class_t cls = H5Tget_class(ft);
    size_t tsize = H5Tget_size(ft);
    if (cls != H5T_FLOAT || (tsize != 2 && tsize != 4 && tsize != 8)) {
        rc = tl_errf(c->e, TL_EFORMAT,
                     "%s: layer '%s': dataset '%s' has dtype %s%zu "
                     "(weights must be float16, float32 or float64)",
                     c->path, layer, wname, h5_class_name(cls), 8 * tsize);
        goto done;
    }
    int ndim = H5Sget_simple_extent_ndims(sp);
    if (ndim < 0 || H5Sget_simple_extent_type(sp) == H5S_NULL) {
        rc = tl_errf(c->e, TL_EFORMAT, "%s: layer '%s': dataset '%s' has no data", c->path,
                     layer, wname);
        goto done;
    }
    if (ndim > TSET_MAX_DIMS) {
        rc = tl_errf(c->e, TL_EFORMAT,
                     "%s: layer '%s': dataset '%s' has %d dimensions (at most %d)", c->path,
                     layer, wname, ndim, TSET_MAX_DIMS);
        goto done;
    }
    hsize_t dims[TSET_MAX_DIMS];
    int64_t shape[TSET_MAX_DIMS];
    size_t n = 1;
    H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int i = 0; i < ndim; i++) {
        if (dims[i] > (hsize_t)INT64_MAX || (dims[i] && n > SIZE_MAX / 8 / dims[i])) {
            rc = tl_errf(c->e, TL_EFORMAT, "%s: layer '%s': dataset '%s' is too large",
                         c->path, layer, wname);
            goto done;
        }
        shape[i] = (int64_t)dims[i];
        n *= (size_t)dims[i];
    }
    if ((rc = check_size(c, d, layer, wname, n, tsize)))
        goto done;
    data = malloc((n ? n : 1) * sizeof *data);
    if (tsize == 8)
        wide = malloc((n ? n : 1) * sizeof *wide);
    if (!data || (tsize == 8 && !wide)) {
        rc = tl_errf(c->e, TL_ENOMEM, "%s: layer '%s': dataset '%s': out of memory", c->path,
                     layer, wname);
        goto done;
    }
    /* libhdf5 converts float16 (any byte order) exactly; float64 is
     * narrowed here so that a value outside float range is an error and
     * not whatever the conversion makes of it. */
    herr_t st = tsize == 8 ? H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, wide)
                           : H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (st < 0) {
        rc = tl_errf(c->e, TL_EFORMAT, "%s: layer '%s': dataset '%s' cannot be read", c->path,
                     layer, wname);
        goto done;
    }
    for (size_t k = 0; k < n; k++) {
        double v = wide ? wide[k] : (double)data[k];
        if (!isfinite(v) || fabs(v) > FLT_MAX) {
            rc = tl_errf(c->e, TL_EFORMAT,
                         "%s: layer '%s': dataset '%s' has a %s value (%g) at index %zu",
                         c->path, layer, wname, isfinite(v) ? "out-of-float-range" : "non-finite",
                         v, k);
            goto done;
        }
        if (wide)
            data[k] = (float)v;
    }
    rc = c->sink(c->u, layer, wname, tname, ndim, shape, data, n);
done:
    free(wide);
    free(data);
    h5_close(sp, H5Sclose);
    h5_close(ft, H5Tclose);
    h5_close(d, H5Dclose);
    return rc;
}

/* Every weight of layer group `layer` under root. */
static int read_layer(h5_ctx *c, hid_t root, const char *layer)
{
    int rc = 0;
    hid_t g = -1;
    strlist w = {0};
    char where[300], tname[1024], other[1024];

    snprintf(where, sizeof where, "layer '%s'", layer);
    if (!*layer || H5Lexists(root, layer, H5P_DEFAULT) <= 0 ||
        H5Oexists_by_name(root, layer, H5P_DEFAULT) <= 0 ||
        (g = H5Gopen2(root, layer, H5P_DEFAULT)) < 0) {
        rc = tl_errf(c->e, TL_EFORMAT, "%s: layer '%s' is in layer_names but has no group",
                     c->path, layer);
        goto done;
    }
    rc = read_name_list(c, g, "weight_names", where, &w);
    if (rc <= 0)
        goto done; /* error, or a layer without weights */
    rc = 0;
    /* Weights under more than one scope, or last components that repeat,
     * mean a nested model: name its tensors by the inner layers instead. */
    int nested = 0;
    for (size_t i = 1; i < w.n && !nested; i++) {
        const char *a = strrchr(w.v[0], '/'), *b = strrchr(w.v[i], '/');
        size_t la = a ? (size_t)(a - w.v[0]) : 0, lb = b ? (size_t)(b - w.v[i]) : 0;
        nested = la != lb || memcmp(w.v[0], w.v[i], la);
        for (size_t j = 0; j < i && !nested; j++) {
            weight_short_name(w.v[i], 1, tname, sizeof tname);
            weight_short_name(w.v[j], 1, other, sizeof other);
            nested = !strcmp(tname, other);
        }
    }
    for (size_t i = 0; i < w.n && !rc; i++) {
        char shortn[512];
        weight_short_name(w.v[i], !nested, shortn, sizeof shortn);
        if (nested)
            snprintf(tname, sizeof tname, "%s", shortn);
        else
            snprintf(tname, sizeof tname, "%s/%s", layer, shortn);
        rc = read_weight(c, g, layer, w.v[i], tname);
    }
done:
    strlist_free(&w);
    h5_close(g, H5Gclose);
    return rc;
}

int weights_h5__walk(const char *path, uint64_t file_size, weights_h5__sink sink, void *u,
                     tl_err *e)
{
    h5_ctx c = {path, sink, u, e, file_size, 0, 0};
    int rc = 0;
    hid_t fapl = -1, file = -1, root = -1, mw = -1;
    strlist layers = {0};

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
#if H5_VERSION_GE(1, 12, 0)
    htri_t is = H5Fis_accessible(path, H5P_DEFAULT);
#else
    htri_t is = H5Fis_hdf5(path);
#endif
    if (is <= 0)
        return tl_errf(e, TL_EFORMAT, "%s: not an HDF5 file", path);
    /* Strong close: H5Fclose also closes whatever an error path left open. */
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        (file = H5Fopen(path, H5F_ACC_RDONLY, fapl)) < 0 ||
        (root = H5Gopen2(file, "/", H5P_DEFAULT)) < 0) {
        rc = tl_errf(e, TL_EFORMAT, "%s: damaged HDF5 file (libhdf5 cannot open it)", path);
        goto done;
    }
    /* A notop/save_weights file has layer_names at the root; a model.save
     * file has them on the group model_weights (as Keras's load_weights). */
    hid_t base = root;
    rc = read_name_list(&c, root, "layer_names", "root group", &layers);
    if (rc == 0 && H5Lexists(root, "model_weights", H5P_DEFAULT) > 0 &&
        (mw = H5Gopen2(root, "model_weights", H5P_DEFAULT)) >= 0) {
        base = mw;
        rc = read_name_list(&c, mw, "layer_names", "group 'model_weights'", &layers);
    }
    if (rc == 0) {
        rc = tl_errf(e, TL_EFORMAT,
                     "%s: HDF5 file but not Keras weights: no 'layer_names' attribute on the root "
                     "or on 'model_weights'",
                     path);
        goto done;
    }
    if (rc < 0)
        goto done;
    rc = 0;
    for (size_t i = 0; i < layers.n && !rc; i++)
        rc = read_layer(&c, base, layers.v[i]);
done:
    strlist_free(&layers);
    h5_close(mw, H5Gclose);
    h5_close(root, H5Gclose);
    h5_close(file, H5Fclose);
    h5_close(fapl, H5Pclose);
    return rc;
}
