/* net_import: files written here from a tiny random MobileNetV2 (alpha
 * 0.35, 32x32, a Dense head) go through the importer: the format told by
 * content, the backbone and alpha guessed from the tensor names, the size
 * from the file's metadata, counts of loaded and dropped tensors, the
 * classifier kept with with_head, the weights written unchanged; and bad
 * input (not a weights file, a missing tensor, names of no known backbone)
 * is one error line naming the file. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/weights/model_file.h"
#include "common/weights/safetensors.h"
#include "worker/net/net_import.h"
#include "worker/net/net_io.h"

#define HEAD_TENSORS 4 /* dense/kernel, dense/bias, predictions/kernel, predictions/bias */

/* The tiny model's spec: a GAP + Dense(8) + Dropout head on 3 classes. */
static void tiny_spec(model_spec *s)
{
    tu_tiny_spec(s, NULL);
    assert_int_equal(s->preproc, net_default_preproc("mobilenet_v2", MODEL_KERAS));
}

/* Every parameter of the tiny model, random, under its Keras name. */
static void tiny_tensors(tset *t, int *n_backbone)
{
    tl_err e = {0};
    model_spec s;
    net n;
    tiny_spec(&s);
    assert_int_equal(net_build_from_spec(&n, &s, 1, &e), 0);
    for (int i = 0; i < n.n_params; i++) {
        net_param *p = &n.params[i];
        tu_fill_uniform(net_param_data(&n, p), p->n, 100 + (uint64_t)i,
                        strstr(p->name, "moving_variance") ? 0.5f : -0.3f, 1.0f);
    }
    tset backbone;
    tset_init(&backbone);
    assert_int_equal(net_to_tset(&n, &backbone, 0, &e), 0);
    *n_backbone = (int)backbone.n;
    tset_free(&backbone);
    tset_init(t);
    assert_int_equal(net_to_tset(&n, t, 1, &e), 0);
    net_free(&n);
    model_spec_free(&s);
}

/* t as a Keras-named safetensors file with {"size": "32"}, leaving out the
 * tensor named skip (NULL: none). */
static void write_st(const char *path, const tset *t, const char *skip)
{
    tl_err e = {0};
    weights_st_entry *v = calloc(t->n, sizeof *v);
    assert_non_null(v);
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (skip && !strcmp(t->v[i].name, skip))
            continue;
        v[k] = (weights_st_entry){t->v[i].name, t->v[i].data, t->v[i].ndim, {0}};
        for (int d = 0; d < t->v[i].ndim; d++)
            v[k].shape[d] = (size_t)t->v[i].shape[d];
        k++;
    }
    const char *meta[] = {"size", "32"};
    assert_int_equal(weights_st_write_meta(path, v, k, meta, 1, &e), 0);
    free(v);
}

static void test_detect(void **st)
{
    (void)st;
    tset t;
    int nb;
    tiny_tensors(&t, &nb);
    write_st(tu_tmp("w.safetensors"), &t, NULL);
    tu_write_file(tu_tmp("m.json"), "{}", 2);
    tu_write_file(tu_tmp("junk.bin"), "not weights at all", 18);
    assert_int_equal(net_import_detect(tu_tmp("w.safetensors")), NET_IMPORT_SRC_SAFETENSORS);
    assert_int_equal(net_import_detect(tu_tmp("m.json")), NET_IMPORT_SRC_TFJS);
    assert_int_equal(net_import_detect(tu_tmpdir()), NET_IMPORT_SRC_TFJS);
    assert_int_equal(net_import_detect(tu_tmp("junk.bin")), NET_IMPORT_SRC_UNKNOWN);
    assert_int_equal(net_import_detect(tu_tmp("absent")), NET_IMPORT_SRC_UNKNOWN);
    assert_string_equal(net_import_format_name(NET_IMPORT_SRC_SAFETENSORS), "safetensors");
    assert_string_equal(net_import_format_name(NET_IMPORT_SRC_UNKNOWN), "?");
    tset_free(&t);
}

static void test_backbone_only(void **st)
{
    (void)st;
    tset t;
    int nb;
    tiny_tensors(&t, &nb);
    const char *src = tu_tmp("keras.safetensors"), *out = tu_tmp("keras.tlm");
    write_st(src, &t, NULL);
    net_import_opts o = NET_IMPORT_OPTS_DEFAULT;
    net_import_result r;
    tl_err e = {0};
    assert_int_equal(net_import(src, out, &o, &r, &e), 0);
    assert_int_equal(r.stage, NET_IMPORT_WRITTEN);
    assert_int_equal(r.format, NET_IMPORT_SRC_SAFETENSORS);
    assert_string_equal(r.backbone, "mobilenet_v2");
    assert_float_equal(r.alpha, 0.35f, 1e-6f); /* from block_16_project's channels */
    assert_int_equal(r.size, 32);              /* from the metadata */
    assert_int_equal(r.convention, MODEL_KERAS);
    assert_int_equal(r.preproc, MODEL_PREPROC_TF);
    assert_int_equal(r.num_classes, 0);
    assert_int_equal(r.torch_names, 0);
    assert_int_equal(r.load.matched, nb);
    assert_int_equal(r.load.dropped, HEAD_TENSORS);
    assert_int_equal(r.load.missing, 0);
    assert_int_equal(r.load.unused, 0);
    assert_int_equal((int)r.n_tensors, nb);
    assert_true(r.out_bytes > 0);
    assert_int_equal((int)strlen(r.sha256), 64);

    /* what was written is the source's backbone, bit for bit */
    model_spec s;
    tset w;
    model_spec_init(&s);
    tset_init(&w);
    assert_int_equal(model_read(out, &s, &w, &e), 0);
    assert_string_equal(s.importer, "safetensors");
    assert_string_equal(s.source_sha256, r.sha256);
    assert_int_equal(s.num_classes, 0);
    assert_int_equal((int)w.n, nb);
    for (size_t i = 0; i < w.n; i++) {
        const tset_entry *a = tset_find(&t, w.v[i].name);
        assert_non_null(a);
        assert_int_equal(a->n, w.v[i].n);
        assert_memory_equal(a->data, w.v[i].data, a->n * sizeof(float));
    }
    tset_free(&w);
    model_spec_free(&s);
    tset_free(&t);
}

static void test_with_head(void **st)
{
    (void)st;
    tset t;
    int nb;
    tiny_tensors(&t, &nb);
    const char *src = tu_tmp("head.safetensors"), *out = tu_tmp("head.tlm");
    write_st(src, &t, NULL);
    net_import_opts o = NET_IMPORT_OPTS_DEFAULT;
    o.with_head = 1;
    net_import_result r;
    tl_err e = {0};
    assert_int_equal(net_import(src, out, &o, &r, &e), 0);
    assert_int_equal(r.num_classes, 3);
    assert_int_equal(r.load.matched, nb + HEAD_TENSORS);
    assert_int_equal(r.load.dropped, 0);
    assert_int_equal((int)r.n_tensors, nb + HEAD_TENSORS);

    /* and again from the .tlm: the classifier and the model's choices stay */
    net_import_result r2;
    o.preproc = MODEL_PREPROC_UNIT;
    assert_int_equal(net_import(out, tu_tmp("again.tlm"), &o, &r2, &e), 0);
    assert_int_equal(r2.format, NET_IMPORT_SRC_TLM);
    assert_float_equal(r2.alpha, 0.35f, 1e-6f);
    assert_int_equal(r2.size, 32);
    assert_int_equal(r2.num_classes, 3);
    assert_int_equal(r2.preproc, MODEL_PREPROC_UNIT);
    assert_int_equal(r2.load.matched, nb + HEAD_TENSORS);
    model_spec s;
    tset w;
    model_spec_init(&s);
    tset_init(&w);
    assert_int_equal(model_read(tu_tmp("again.tlm"), &s, &w, &e), 0);
    assert_int_equal(s.num_classes, 3);
    assert_int_equal(s.n_head, 2); /* GAP, Dense(8): the classifier is not a head op */
    assert_int_equal(s.head[1].units, 8);
    assert_string_equal(s.importer, "tlm");
    tset_free(&w);
    model_spec_free(&s);
    tset_free(&t);
}

static void test_missing_tensor(void **st)
{
    (void)st;
    tset t;
    int nb;
    tiny_tensors(&t, &nb);
    const char *src = tu_tmp("short.safetensors"), *out = tu_tmp("short.tlm");
    write_st(src, &t, "Conv1/kernel");
    net_import_opts o = NET_IMPORT_OPTS_DEFAULT;
    net_import_result r;
    tl_err e = {0};
    assert_int_equal(net_import(src, out, &o, &r, &e), TL_ENOTFOUND);
    assert_int_equal(r.stage, NET_IMPORT_LOADED);
    assert_int_equal(r.load.missing, 1);
    assert_int_equal(r.load.matched, nb - 1);
    assert_string_equal(r.load.first_missing, "Conv1/kernel");
    tu_assert_one_line_error(&e, src, "no tensor for parameter Conv1/kernel", "(1 missing)");
    assert_int_equal(access(out, F_OK), -1);
    tset_free(&t);
}

static void test_bad_input(void **st)
{
    (void)st;
    net_import_opts o = NET_IMPORT_OPTS_DEFAULT;
    net_import_result r;
    tl_err e = {0};
    const char *junk = tu_tmp("junk.weights");
    tu_write_file(junk, "not weights at all", 18);
    assert_int_equal(net_import(junk, tu_tmp("junk.tlm"), &o, &r, &e), TL_EFORMAT);
    assert_int_equal(r.stage, NET_IMPORT_NOTHING);
    tu_assert_one_line_error(&e, junk, "cannot tell the format");

    memset(&e, 0, sizeof e);
    const char *absent = tu_tmp("absent.h5");
    assert_true(net_import(absent, tu_tmp("absent.tlm"), &o, &r, &e) < 0);
    tu_assert_one_line_error(&e, absent, "No such file");

    /* Keras names of no backbone tlsweep knows */
    memset(&e, 0, sizeof e);
    float k[4] = {1, 2, 3, 4};
    weights_st_entry v = {"my_layer/kernel", k, 2, {2, 2}};
    const char *odd = tu_tmp("odd.safetensors");
    assert_int_equal(weights_st_write(odd, &v, 1, &e), 0);
    assert_int_equal(net_import(odd, tu_tmp("odd.tlm"), &o, &r, &e), TL_ENOTFOUND);
    assert_int_equal(r.format, NET_IMPORT_SRC_SAFETENSORS);
    assert_int_equal(r.stage, NET_IMPORT_NOTHING);
    tu_assert_one_line_error(&e, odd, "cannot tell the backbone", "--backbone");

    /* told the backbone, the file does not fit it: the first parameter is named */
    memset(&e, 0, sizeof e);
    o.backbone = "mobilenet_v2";
    o.alpha = 0.35f;
    o.size = 32;
    assert_true(net_import(odd, tu_tmp("odd.tlm"), &o, &r, &e) < 0);
    assert_int_equal(r.stage, NET_IMPORT_LOADED);
    assert_true(r.load.missing > 0);
    tu_assert_one_line_error(&e, odd, "no tensor for parameter");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_backbone_only),
        cmocka_unit_test(test_with_head),
        cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
