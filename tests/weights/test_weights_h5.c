/* Keras .h5 reader on files written here with the HDF5 C API in Keras's
 * layout (hdf5_format.py): the notop form (layer_names on the root), the
 * full-model form (under model_weights), split name lists, fixed- and
 * variable-length strings, float16/float64/big-endian data, a nested model,
 * and every rejection with its one-line message; datasets whose dimensions
 * claim more than the file holds (refused before any allocation); and the
 * child process that runs libhdf5, replaced by ones that crash, hang or
 * send bad frames. The cross-check against files written by h5py the way
 * Keras writes them is tests/h5. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/weights/weights_h5_int.h"

/* ---- writing Keras's layout ------------------------------------------- */

static hid_t new_file(const char *name)
{
    hid_t f = H5Fcreate(tu_tmp(name), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

static void close_file(hid_t f)
{
    assert_int_equal(H5Fget_obj_count(f, H5F_OBJ_ALL), 1); /* the test leaks nothing */
    assert_true(H5Fclose(f) >= 0);
}

/* A numpy bytes array (dtype S<max len>, NUL-padded), as Keras writes
 * np.asarray([name.encode("utf8"), ...]). */
static void put_fixed_strs(hid_t obj, const char *attr, const char *const *s, size_t n)
{
    size_t sz = 1;
    for (size_t i = 0; i < n; i++)
        sz = strlen(s[i]) > sz ? strlen(s[i]) : sz;
    char *buf = calloc(n ? n : 1, sz);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        memcpy(buf + i * sz, s[i], strlen(s[i]));
    hid_t t = H5Tcopy(H5T_C_S1);
    assert_true(H5Tset_size(t, sz) >= 0);
    assert_true(H5Tset_strpad(t, H5T_STR_NULLPAD) >= 0);
    hsize_t dim = n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t a = H5Acreate2(obj, attr, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, t, buf) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    free(buf);
}

/* A list of Python str, which h5py stores as variable-length UTF-8. */
static void put_vlen_strs(hid_t obj, const char *attr, const char *const *s, size_t n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    assert_true(H5Tset_size(t, H5T_VARIABLE) >= 0);
    assert_true(H5Tset_cset(t, H5T_CSET_UTF8) >= 0);
    hsize_t dim = n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t a = H5Acreate2(obj, attr, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, t, s) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

/* What Keras writes for a layer without weights: np.asarray([]), float64. */
static void put_empty_list(hid_t obj, const char *attr)
{
    hsize_t dim = 0;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t a = H5Acreate2(obj, attr, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

/* Dataset at path (intermediate groups created) relative to loc. */
static void put_data(hid_t loc, const char *path, hid_t ftype, hid_t mtype, int ndim,
                     const hsize_t *dims, const void *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    assert_true(H5Pset_create_intermediate_group(lcpl, 1) >= 0);
    hid_t sp = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(loc, path, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(lcpl);
}

static void put_f32(hid_t loc, const char *path, int ndim, const hsize_t *dims, const float *x)
{
    put_data(loc, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ndim, dims, x);
}

/* One layer group as Keras's save_weights writes it: weight_names (fixed
 * strings) and each weight as a float32 dataset at its name. */
typedef struct {
    const char *name;
    int ndim;
    hsize_t dims[4];
} wspec;

static size_t numel(const wspec *w)
{
    size_t n = 1;
    for (int i = 0; i < w->ndim; i++)
        n *= w->dims[i];
    return n;
}

/* Values of weight k of a layer: seed from the layer and k. */
static float *values(const char *layer, size_t k, size_t n)
{
    uint64_t seed = 1469598103934665603ull;
    for (const char *p = layer; *p; p++)
        seed = (seed ^ (unsigned char)*p) * 1099511628211ull;
    return tu_alloc_uniform(n ? n : 1, seed + k, -2, 2);
}

static void put_layer(hid_t parent, const char *layer, const wspec *w, size_t nw)
{
    hid_t g = H5Gcreate2(parent, layer, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    const char *names[16];
    for (size_t i = 0; i < nw; i++)
        names[i] = w[i].name;
    if (nw)
        put_fixed_strs(g, "weight_names", names, nw);
    else
        put_empty_list(g, "weight_names");
    for (size_t i = 0; i < nw; i++) {
        float *x = values(layer, i, numel(&w[i]));
        put_f32(g, w[i].name, w[i].ndim, w[i].dims, x);
        free(x);
    }
    H5Gclose(g);
}

/* Checks tensor `tname` has w's shape and put_layer's values for it. */
static void expect_tensor(const tset *s, const char *tname, const char *layer, size_t k,
                          const wspec *w)
{
    const tset_entry *t = tset_find(s, tname);
    if (!t) {
        print_error("no tensor '%s'\n", tname);
        fail();
    }
    assert_int_equal(t->ndim, w->ndim);
    for (int i = 0; i < w->ndim; i++)
        assert_int_equal(t->shape[i], w->dims[i]);
    assert_int_equal(t->n, numel(w));
    float *x = values(layer, k, numel(w));
    assert_memory_equal(t->data, x, numel(w) * sizeof(float));
    free(x);
}

/* ---- a MobileNetV2-like backbone, notop form ---------------------------- */

static const wspec CONV1[] = {{"Conv1/kernel:0", 4, {3, 3, 3, 8}}};
static const wspec BN1[] = {{"bn_Conv1/gamma:0", 1, {8}},
                            {"bn_Conv1/beta:0", 1, {8}},
                            {"bn_Conv1/moving_mean:0", 1, {8}},
                            {"bn_Conv1/moving_variance:0", 1, {8}}};
static const wspec DW[] = {{"expanded_conv_depthwise/depthwise_kernel:0", 4, {3, 3, 8, 1}}};
static const wspec PROJ[] = {{"expanded_conv_project/kernel:0", 4, {1, 1, 8, 4}}};

static void test_notop(void **state)
{
    (void)state;
    hid_t f = new_file("notop.h5");
    const char *layers[] = {"input_1", "Conv1", "bn_Conv1", "Conv1_relu",
                            "expanded_conv_depthwise", "expanded_conv_project"};
    put_fixed_strs(f, "layer_names", layers, 6);
    const char *backend[] = {"tensorflow"};
    put_fixed_strs(f, "backend", backend, 1);
    put_layer(f, "input_1", NULL, 0);
    put_layer(f, "Conv1", CONV1, 1);
    put_layer(f, "bn_Conv1", BN1, 4);
    /* no weight_names at all: Keras reads that as no weights too */
    H5Gclose(H5Gcreate2(f, "Conv1_relu", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    put_layer(f, "expanded_conv_depthwise", DW, 1);
    put_layer(f, "expanded_conv_project", PROJ, 1);
    close_file(f);

    tset s;
    tset_init(&s);
    tl_err e = {0};
    int rc = weights_h5_read(tu_tmp("notop.h5"), &s, &e);
    if (rc)
        print_error("%s\n", e.msg);
    assert_int_equal(rc, 0);
    const char *order[] = {"Conv1/kernel", "bn_Conv1/gamma", "bn_Conv1/beta",
                           "bn_Conv1/moving_mean", "bn_Conv1/moving_variance",
                           "expanded_conv_depthwise/depthwise_kernel",
                           "expanded_conv_project/kernel"};
    assert_int_equal(s.n, 7);
    for (size_t i = 0; i < 7; i++)
        assert_string_equal(s.v[i].name, order[i]);
    expect_tensor(&s, "Conv1/kernel", "Conv1", 0, &CONV1[0]);
    for (size_t k = 0; k < 4; k++)
        expect_tensor(&s, order[1 + k], "bn_Conv1", k, &BN1[k]);
    expect_tensor(&s, order[5], "expanded_conv_depthwise", 0, &DW[0]);
    expect_tensor(&s, order[6], "expanded_conv_project", 0, &PROJ[0]);
    tset_free(&s);
}

/* Weight names without a scope ("kernel:0") and with one that differs from
 * the layer's (TF1 graphs re-using names: "Conv1_1/kernel:0"): the tensor
 * is named after the layer either way. */
static void test_weight_name_forms(void **state)
{
    (void)state;
    hid_t f = new_file("forms.h5");
    const char *layers[] = {"Conv1", "dense"};
    put_fixed_strs(f, "layer_names", layers, 2);
    const wspec conv[] = {{"kernel:0", 4, {1, 1, 2, 3}}, {"bias", 1, {3}}};
    const wspec dense[] = {{"dense_1/kernel:0", 2, {3, 5}}, {"dense_1/bias:0", 1, {5}}};
    put_layer(f, "Conv1", conv, 2);
    put_layer(f, "dense", dense, 2);
    close_file(f);

    tset s;
    tset_init(&s);
    tl_err e = {0};
    assert_int_equal(weights_h5_read(tu_tmp("forms.h5"), &s, &e), 0);
    assert_int_equal(s.n, 4);
    expect_tensor(&s, "Conv1/kernel", "Conv1", 0, &conv[0]);
    expect_tensor(&s, "Conv1/bias", "Conv1", 1, &conv[1]);
    expect_tensor(&s, "dense/kernel", "dense", 0, &dense[0]);
    expect_tensor(&s, "dense/bias", "dense", 1, &dense[1]);
    tset_free(&s);
}

/* model.save: weights under model_weights, the architecture in the root's
 * model_config, an optimizer_weights group beside. The backbone is nested
 * (one layer "mobilenetv2_1.00_224" holding the inner layers' weights). */
static void test_full_model(void **state)
{
    (void)state;
    hid_t f = new_file("full.h5");
    const char *cfg[] = {"{\"class_name\": \"Functional\", \"config\": {}}"};
    put_vlen_strs(f, "model_config", cfg, 1);
    hid_t mw = H5Gcreate2(f, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *layers[] = {"input_2", "mobilenetv2_1.00_224", "global_average_pooling2d",
                            "dense"};
    put_fixed_strs(mw, "layer_names", layers, 4);
    put_layer(mw, "input_2", NULL, 0);
    const wspec backbone[] = {{"Conv1/kernel:0", 4, {3, 3, 3, 8}},
                              {"bn_Conv1/gamma:0", 1, {8}},
                              {"bn_Conv1/beta:0", 1, {8}}};
    put_layer(mw, "mobilenetv2_1.00_224", backbone, 3);
    put_layer(mw, "global_average_pooling2d", NULL, 0);
    const wspec dense[] = {{"dense/kernel:0", 2, {8, 5}}, {"dense/bias:0", 1, {5}}};
    put_layer(mw, "dense", dense, 2);
    H5Gclose(mw);
    hid_t ow = H5Gcreate2(f, "optimizer_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const float it = 7;
    put_f32(ow, "Adam/iter:0", 0, NULL, &it);
    H5Gclose(ow);
    close_file(f);

    tset s;
    tset_init(&s);
    tl_err e = {0};
    int rc = weights_h5_read(tu_tmp("full.h5"), &s, &e);
    if (rc)
        print_error("%s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(s.n, 5);
    const char *order[] = {"Conv1/kernel", "bn_Conv1/gamma", "bn_Conv1/beta", "dense/kernel",
                           "dense/bias"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(s.v[i].name, order[i]);
    for (size_t k = 0; k < 3; k++)
        expect_tensor(&s, order[k], "mobilenetv2_1.00_224", k, &backbone[k]);
    expect_tensor(&s, "dense/kernel", "dense", 0, &dense[0]);
    expect_tensor(&s, "dense/bias", "dense", 1, &dense[1]);
    tset_free(&s);
}

/* Name lists over HDF5's object header limit are split into <attr>0,
 * <attr>1, ...; h5py writes a list of str as variable-length strings. */
static void test_split_and_vlen(void **state)
{
    (void)state;
    hid_t f = new_file("split.h5");
    const char *l0[] = {"Conv1", "bn_Conv1"};
    const char *l1[] = {"Conv1_relu"};
    const char *l2[] = {"expanded_conv_depthwise"};
    put_vlen_strs(f, "layer_names0", l0, 2);
    put_fixed_strs(f, "layer_names1", l1, 1);
    put_vlen_strs(f, "layer_names2", l2, 1);
    put_layer(f, "Conv1", CONV1, 1);
    put_layer(f, "Conv1_relu", NULL, 0);
    put_layer(f, "expanded_conv_depthwise", DW, 1);
    hid_t g = H5Gcreate2(f, "bn_Conv1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *w0[] = {BN1[0].name, BN1[1].name, BN1[2].name};
    const char *w1[] = {BN1[3].name};
    put_fixed_strs(g, "weight_names0", w0, 3);
    put_vlen_strs(g, "weight_names1", w1, 1);
    for (size_t k = 0; k < 4; k++) {
        float *x = values("bn_Conv1", k, 8);
        put_f32(g, BN1[k].name, 1, BN1[k].dims, x);
        free(x);
    }
    H5Gclose(g);
    close_file(f);

    tset s;
    tset_init(&s);
    tl_err e = {0};
    int rc = weights_h5_read(tu_tmp("split.h5"), &s, &e);
    if (rc)
        print_error("%s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(s.n, 6);
    assert_string_equal(s.v[0].name, "Conv1/kernel");
    assert_string_equal(s.v[4].name, "bn_Conv1/moving_variance");
    assert_string_equal(s.v[5].name, "expanded_conv_depthwise/depthwise_kernel");
    expect_tensor(&s, "Conv1/kernel", "Conv1", 0, &CONV1[0]);
    for (size_t k = 0; k < 4; k++) {
        char n[64];
        snprintf(n, sizeof n, "bn_Conv1/%s", strchr(BN1[k].name, '/') + 1);
        n[strlen(n) - 2] = 0; /* ":0" */
        expect_tensor(&s, n, "bn_Conv1", k, &BN1[k]);
    }
    tset_free(&s);
}

/* float16 as h5py writes it (a custom IEEE half type), float64,
 * big-endian float32, a scalar. */
static void test_dtypes(void **state)
{
    (void)state;
    hid_t f = new_file("dtypes.h5");
    const char *layers[] = {"l"};
    put_fixed_strs(f, "layer_names", layers, 1);
    hid_t g = H5Gcreate2(f, "l", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *w[] = {"l/half:0", "l/double:0", "l/be:0", "l/scalar:0"};
    put_fixed_strs(g, "weight_names", w, 4);

    hid_t f16 = H5Tcopy(H5T_IEEE_F32LE);
    assert_true(H5Tset_fields(f16, 15, 10, 5, 0, 10) >= 0);
    assert_true(H5Tset_size(f16, 2) >= 0);
    assert_true(H5Tset_ebias(f16, 15) >= 0);
    /* 1, -2, 0.5, 65504 (largest half), 2^-24 (smallest subnormal), -0 */
    const uint16_t hbits[] = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000};
    const float hwant[] = {1, -2, 0.5f, 65504, 5.9604644775390625e-8f, -0.0f};
    hsize_t d6 = 6;
    hid_t raw16 = H5Tcopy(f16); /* memory = file bits, no conversion */
    put_data(g, w[0], f16, raw16, 1, &d6, hbits);
    H5Tclose(raw16);
    H5Tclose(f16);

    const double dv[] = {0.1, -1e-30, 3.4e38, 1.0 / 3};
    hsize_t d22[] = {2, 2};
    put_data(g, w[1], H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, d22, dv);
    const float bev[] = {1.5f, -2.25f, 1e-3f};
    hsize_t d3 = 3;
    put_data(g, w[2], H5T_IEEE_F32BE, H5T_NATIVE_FLOAT, 1, &d3, bev);
    const float sv = 42.5f;
    put_f32(g, w[3], 0, NULL, &sv);
    H5Gclose(g);
    close_file(f);

    tset s;
    tset_init(&s);
    tl_err e = {0};
    int rc = weights_h5_read(tu_tmp("dtypes.h5"), &s, &e);
    if (rc)
        print_error("%s\n", e.msg);
    assert_int_equal(rc, 0);
    const tset_entry *t = tset_find(&s, "l/half");
    assert_non_null(t);
    assert_int_equal(t->n, 6);
    assert_memory_equal(t->data, hwant, sizeof hwant);
    t = tset_find(&s, "l/double");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    for (int i = 0; i < 4; i++)
        assert_true(t->data[i] == (float)dv[i]);
    t = tset_find(&s, "l/be");
    assert_memory_equal(t->data, bev, sizeof bev);
    t = tset_find(&s, "l/scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->n, 1);
    assert_true(t->data[0] == 42.5f);
    tset_free(&s);
}

/* ---- rejections --------------------------------------------------------- */

/* Reading path with child (NULL: weights_h5_read) must fail with code,
 * leave s as it was (one sentinel tensor) and give one line naming the file
 * and containing each fragment. */
static void fails_with(const char *path, weights_h5__child_fn child, int timeout_ms, int code,
                       const char *frag1, const char *frag2)
{
    tset s;
    tset_init(&s);
    const int64_t one = 1;
    const float x = 3;
    tl_err e = {0};
    assert_int_equal(tset_add(&s, "sentinel", 1, &one, &x, &e), 0);
    int rc = child ? weights_h5__read_isolated(path, &s, child, timeout_ms, &e)
                   : weights_h5_read(path, &s, &e);
    if (rc != code)
        fail_msg("read %s: rc %d (want %d), message: %s", path, rc, code, e.msg);
    tu_assert_one_line_error(&e, path, frag1, frag2);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].name, "sentinel");
    tset_free(&s);
}

static void expect_fails(const char *path, int code, const char *frag1, const char *frag2)
{
    fails_with(path, NULL, 0, code, frag1, frag2);
}

/* A one-layer file whose only weight is written by put(). */
typedef void (*put_fn)(hid_t g, const char *wname);

static const char *one_weight_file(const char *fname, put_fn put)
{
    hid_t f = new_file(fname);
    const char *layers[] = {"conv"};
    put_fixed_strs(f, "layer_names", layers, 1);
    hid_t g = H5Gcreate2(f, "conv", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *w[] = {"conv/kernel:0"};
    put_fixed_strs(g, "weight_names", w, 1);
    if (put)
        put(g, w[0]);
    H5Gclose(g);
    close_file(f);
    return tu_tmp(fname);
}

static void put_int(hid_t g, const char *w)
{
    const int32_t v[] = {1, 2, 3};
    hsize_t d = 3;
    put_data(g, w, H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &d, v);
}

static void put_nan(hid_t g, const char *w)
{
    const float v[] = {1, 2, NAN, 4};
    hsize_t d = 4;
    put_f32(g, w, 1, &d, v);
}

static void put_inf(hid_t g, const char *w)
{
    const float v[] = {-INFINITY};
    hsize_t d = 1;
    put_f32(g, w, 1, &d, v);
}

static void put_huge_double(hid_t g, const char *w)
{
    const double v[] = {0, 1e39};
    hsize_t d = 2;
    put_data(g, w, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &d, v);
}

static void put_rank9(hid_t g, const char *w)
{
    const float v[1] = {0};
    const hsize_t d[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    put_f32(g, w, 9, d, v);
}

static void put_string_data(hid_t g, const char *w)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 4);
    hsize_t d = 1;
    put_data(g, w, t, t, 1, &d, "abcd");
    H5Tclose(t);
}

static void test_rejects(void **state)
{
    (void)state;
    tu_write_file(tu_tmp("text.h5"), "not hdf5 at all\n", 16);
    expect_fails(tu_tmp("text.h5"), TL_EFORMAT, "not an HDF5 file", NULL);
    expect_fails(tu_tmp("absent.h5"), TL_EIO, "cannot open", NULL);

    /* HDF5, but nothing of Keras's */
    hid_t f = new_file("plain.h5");
    const float v = 1;
    put_f32(f, "x", 0, NULL, &v);
    close_file(f);
    expect_fails(tu_tmp("plain.h5"), TL_EFORMAT, "not Keras weights", "layer_names");
    /* model_weights without layer_names is no better */
    f = new_file("mw.h5");
    H5Gclose(H5Gcreate2(f, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    close_file(f);
    expect_fails(tu_tmp("mw.h5"), TL_EFORMAT, "not Keras weights", NULL);

    /* layer_names that are numbers */
    f = new_file("numnames.h5");
    put_f32(f, "dummy", 0, NULL, &v);
    hsize_t two = 2;
    hid_t sp = H5Screate_simple(1, &two, NULL);
    hid_t a = H5Acreate2(f, "layer_names", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    const int32_t iv[] = {1, 2};
    H5Awrite(a, H5T_NATIVE_INT32, iv);
    H5Aclose(a);
    H5Sclose(sp);
    close_file(f);
    expect_fails(tu_tmp("numnames.h5"), TL_EFORMAT, "'layer_names' is not a list of strings",
                 NULL);

    /* a layer in layer_names without a group */
    f = new_file("nogroup.h5");
    const char *layers[] = {"Conv1", "ghost"};
    put_fixed_strs(f, "layer_names", layers, 2);
    put_layer(f, "Conv1", CONV1, 1);
    close_file(f);
    expect_fails(tu_tmp("nogroup.h5"), TL_EFORMAT, "layer 'ghost'", "no group");

    expect_fails(one_weight_file("missing.h5", NULL), TL_EFORMAT, "layer 'conv'",
                 "'conv/kernel:0' but there is no such dataset");
    expect_fails(one_weight_file("int.h5", put_int), TL_EFORMAT, "'conv/kernel:0'",
                 "dtype integer32");
    expect_fails(one_weight_file("str.h5", put_string_data), TL_EFORMAT, "'conv/kernel:0'",
                 "dtype string32");
    expect_fails(one_weight_file("nan.h5", put_nan), TL_EFORMAT, "'conv/kernel:0'",
                 "non-finite value (nan) at index 2");
    expect_fails(one_weight_file("inf.h5", put_inf), TL_EFORMAT, "layer 'conv'",
                 "non-finite value (-inf) at index 0");
    expect_fails(one_weight_file("huge.h5", put_huge_double), TL_EFORMAT, "'conv/kernel:0'",
                 "out-of-float-range value (1e+39) at index 1");
    expect_fails(one_weight_file("rank9.h5", put_rank9), TL_EFORMAT, "'conv/kernel:0'",
                 "9 dimensions (at most 8)");

    /* the same layer twice in layer_names: its tensors twice */
    f = new_file("dup.h5");
    const char *dup[] = {"Conv1", "bn_Conv1", "Conv1"};
    put_fixed_strs(f, "layer_names", dup, 3);
    put_layer(f, "Conv1", CONV1, 1);
    put_layer(f, "bn_Conv1", BN1, 4);
    close_file(f);
    expect_fails(tu_tmp("dup.h5"), TL_EINVAL, "'Conv1/kernel' appears twice", NULL);

    /* a name from the file with a newline stays one line */
    f = new_file("newline.h5");
    const char *nl[] = {"bad\nlayer"};
    put_fixed_strs(f, "layer_names", nl, 1);
    close_file(f);
    expect_fails(tu_tmp("newline.h5"), TL_EFORMAT, "layer 'bad?layer'", NULL);
}

/* A valid file cut short anywhere is an error, never a crash. */
static void test_truncated(void **state)
{
    (void)state;
    hid_t f = new_file("whole.h5");
    const char *layers[] = {"Conv1", "bn_Conv1"};
    put_fixed_strs(f, "layer_names", layers, 2);
    put_layer(f, "Conv1", CONV1, 1);
    put_layer(f, "bn_Conv1", BN1, 4);
    close_file(f);
    size_t len;
    unsigned char *buf = tu_read_file(tu_tmp("whole.h5"), &len);
    assert_true(len > 0);
    for (size_t cut = 0; cut < len; cut += len / 23 + 1) {
        tu_write_file(tu_tmp("cut.h5"), buf, cut);
        tset s;
        tset_init(&s);
        tl_err e = {0};
        int rc = weights_h5_read(tu_tmp("cut.h5"), &s, &e);
        assert_int_not_equal(rc, 0);
        assert_non_null(strstr(e.msg, tu_tmp("cut.h5")));
        assert_int_equal(s.n, 0);
        tset_free(&s);
    }
    free(buf);
}

/* ---- sizes bounded by the file's, before any allocation ------------------ */

/* A one-layer file whose weights are datasets created but never written:
 * their dimensions say what they like, the file stays a few KB. dcpl
 * chooses the layout (H5P_DEFAULT: contiguous, space allocated late). */
static const char *unwritten_file(const char *fname, int nw, int ndim, const hsize_t *dims,
                                  hid_t dcpl)
{
    hid_t f = new_file(fname);
    const char *layers[] = {"conv"};
    put_fixed_strs(f, "layer_names", layers, 1);
    hid_t g = H5Gcreate2(f, "conv", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    char names[8][32];
    const char *w[8];
    for (int i = 0; i < nw; i++) {
        snprintf(names[i], sizeof names[i], "conv/w%d:0", i);
        w[i] = names[i];
    }
    put_fixed_strs(g, "weight_names", w, (size_t)nw);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    assert_true(H5Pset_create_intermediate_group(lcpl, 1) >= 0);
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    for (int i = 0; i < nw; i++) {
        hid_t d = H5Dcreate2(g, w[i], H5T_IEEE_F32LE, sp, lcpl, dcpl, H5P_DEFAULT);
        assert_true(d >= 0);
        H5Dclose(d);
    }
    H5Sclose(sp);
    H5Pclose(lcpl);
    H5Gclose(g);
    close_file(f);
    return tu_tmp(fname);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void test_size_bounds(void **state)
{
    (void)state;
    /* 3x3x65536x65536 float32: 154 GB claimed by a file of a few KB.
     * Refused from the dimensions (the old reader went for malloc) */
    const hsize_t huge[4] = {3, 3, 65536, 65536};
    const char *p = unwritten_file("claims.h5", 1, 4, huge, H5P_DEFAULT);
    assert_true(file_size(p) < 16384);
    expect_fails(p, TL_EFORMAT, "dataset 'conv/w0:0' claims 38654705664 values (154618822656 "
                 "bytes)", "more than the file's");
    /* 64 MiB: an allocation that would succeed, filled with libhdf5's
     * fill value (the old reader returned a tensor of zeros) */
    const hsize_t mid[3] = {1024, 1024, 16};
    expect_fails(unwritten_file("mid.h5", 1, 3, mid, H5P_DEFAULT), TL_EFORMAT,
                 "dataset 'conv/w0:0' claims 16777216 values", "more than the file's");
    /* eight of 4 KiB each: each fits, together they do not */
    const hsize_t small[1] = {1024};
    p = unwritten_file("eight.h5", 8, 1, small, H5P_DEFAULT);
    assert_true(file_size(p) >= 4096 && file_size(p) < 8 * 4096);
    expect_fails(p, TL_EFORMAT, "with the datasets before it", "more than the file's");

    /* compressed: 4 MiB of nearly constant floats in a small file is
     * honest (deflate), and read */
    const size_t n = 1 << 20;
    float *x = calloc(n, sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i += 4099)
        x[i] = (float)i;
    hid_t f = new_file("deflate.h5");
    const char *layers[] = {"conv"};
    put_fixed_strs(f, "layer_names", layers, 1);
    hid_t g = H5Gcreate2(f, "conv", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *wn[] = {"conv/kernel:0"};
    put_fixed_strs(g, "weight_names", wn, 1);
    hsize_t dim = n, chunk = 65536;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, 1, &chunk) >= 0);
    assert_true(H5Pset_deflate(dcpl, 9) >= 0);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    assert_true(H5Pset_create_intermediate_group(lcpl, 1) >= 0);
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t d = H5Dcreate2(g, wn[0], H5T_IEEE_F32LE, sp, lcpl, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(lcpl);
    H5Gclose(g);
    close_file(f);
    assert_true(file_size(tu_tmp("deflate.h5")) < (long)(n * sizeof *x / 16));
    tset s;
    tset_init(&s);
    tl_err e = {0};
    if (weights_h5_read(tu_tmp("deflate.h5"), &s, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0].n, n);
    assert_memory_equal(s.v[0].data, x, n * sizeof *x);
    tset_free(&s);

    /* a dataset whose data lives in another file (external storage) */
    free(x);
    tu_write_file(tu_tmp("ext.raw"), "\0\0\x80\x3f\0\0\0\x40", 8);
    H5Pclose(dcpl);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_external(dcpl, tu_tmp("ext.raw"), 0, 8) >= 0);
    const hsize_t two[1] = {2};
    expect_fails(unwritten_file("external.h5", 1, 1, two, dcpl), TL_EFORMAT,
                 "dataset 'conv/w0:0' keeps its data outside the file", NULL);
    H5Pclose(dcpl);
}

/* ---- the child process: crashes, hangs and lies --------------------------- */

static int child_abort(int fd, const char *path, uint64_t size)
{
    (void)fd, (void)path, (void)size;
    abort();
}

static int child_hang(int fd, const char *path, uint64_t size)
{
    (void)path, (void)size;
    const int64_t one = 1;
    const float v = 1;
    weights_h5__put_tensor(fd, "a", "a/x:0", "a/x", 1, &one, &v, 1);
    sleep(60);   /* killed long before */
    return 0;
}

static int child_exit3(int fd, const char *path, uint64_t size)
{
    (void)fd, (void)path, (void)size;
    return 3;
}

static int child_garbage(int fd, const char *path, uint64_t size)
{
    (void)path, (void)size;
    return write(fd, "XYZ", 3) == 3 ? 0 : 1;
}

/* A tensor frame claiming 2^60 values, and nothing after it. */
static int child_huge(int fd, const char *path, uint64_t size)
{
    (void)path, (void)size;
    unsigned char h[1 + 7 + 16] = {'T', 2, 1, 0, 1, 0, 1, 0};
    h[8 + 5] = 0x10;             /* 2^40 */
    h[16 + 2] = 0x10;            /* 2^20 */
    return write(fd, h, sizeof h) == (ssize_t)sizeof h ? 0 : 1;
}

/* Two good tensors, then the end without a 'D' frame. */
static int child_cut(int fd, const char *path, uint64_t size)
{
    (void)path, (void)size;
    const int64_t two = 2;
    const float v[2] = {1, 2};
    weights_h5__put_tensor(fd, "a", "a/x:0", "a/x", 1, &two, v, 2);
    weights_h5__put_tensor(fd, "b", "b/x:0", "b/x", 1, &two, v, 2);
    return 0;
}

static int child_miscount(int fd, const char *path, uint64_t size)
{
    child_cut(fd, path, size);
    return weights_h5__put_done(fd, 3) ? 1 : 0;
}

static int child_nan(int fd, const char *path, uint64_t size)
{
    (void)path, (void)size;
    const int64_t one = 1;
    const float v = NAN;
    weights_h5__put_tensor(fd, "a", "a/x:0", "a/x", 1, &one, &v, 1);
    return weights_h5__put_done(fd, 1) ? 1 : 0;
}

/* The sentinel's name again: refused as a duplicate. */
static int child_dup(int fd, const char *path, uint64_t size)
{
    (void)path, (void)size;
    const int64_t one = 1;
    const float v = 2;
    weights_h5__put_tensor(fd, "sentinel", "sentinel:0", "sentinel", 1, &one, &v, 1);
    return weights_h5__put_done(fd, 1) ? 1 : 0;
}

static int child_error(int fd, const char *path, uint64_t size)
{
    (void)size;
    char m[300];
    snprintf(m, sizeof m, "%s: layer 'x': made up\nby the test", path);
    return weights_h5__put_error(fd, TL_EFORMAT, m) ? 1 : 0;
}

static int child_good(int fd, const char *path, uint64_t size)
{
    child_cut(fd, path, size);
    return weights_h5__put_done(fd, 2) ? 1 : 0;
}

/* The read with child fails with code, one line naming the file with frag,
 * s as before. */
static void isolated_fails(weights_h5__child_fn child, int timeout_ms, int code, const char *frag)
{
    fails_with(tu_tmp("any.h5"), child, timeout_ms, code, frag, NULL);
}

static void test_child(void **state)
{
    (void)state;
    tu_write_file(tu_tmp("any.h5"), "x", 1);
    isolated_fails(child_abort, 10000, TL_EIO, "libhdf5 crashed reading it (signal 6");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    isolated_fails(child_hang, 300, TL_EIO, "sent nothing for 0.3 s and was killed");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 20);
    isolated_fails(child_exit3, 10000, TL_EIO, "exited with status 3");
    isolated_fails(child_garbage, 10000, TL_EIO, "bad reply (an unknown frame)");
    isolated_fails(child_huge, 10000, TL_EIO, "bad reply (a tensor past the size limit)");
    isolated_fails(child_cut, 10000, TL_EIO, "bad reply (the reply ended before its last frame)");
    isolated_fails(child_miscount, 10000, TL_EIO, "a tensor count that does not match");
    isolated_fails(child_nan, 10000, TL_EIO, "a non-finite value");
    isolated_fails(child_dup, 10000, TL_EINVAL, "tensor 'sentinel' appears twice");
    isolated_fails(child_error, 10000, TL_EFORMAT, "layer 'x': made up?by the test");

    tset s;
    tset_init(&s);
    tl_err e = {0};
    assert_int_equal(weights_h5__read_isolated(tu_tmp("any.h5"), &s, child_good, 10000, &e), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.v[1].name, "b/x");
    assert_true(s.v[1].data[1] == 2);
    tset_free(&s);
    /* no child is left behind */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notop),
        cmocka_unit_test(test_weight_name_forms),
        cmocka_unit_test(test_full_model),
        cmocka_unit_test(test_split_and_vlen),
        cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_size_bounds),
        cmocka_unit_test(test_child),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
