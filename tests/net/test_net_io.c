/* net_io: a model spec builds the network it describes; its parameters go
 * out as a tset, through a .tlm file, and back into a fresh network with
 * bit-identical logits; net_load_tset's name normalisation, head dropping,
 * shape and strictness errors; and the Keras InceptionV3 fallback that
 * pairs auto-named layers by position. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/weights/model_file.h"
#include "worker/net/backbones.h"
#include "worker/net/net_io.h"

/* Every parameter random, BN statistics plausible: a loaded net that
 * differs anywhere gives other logits. */
static void randomise(net *n, uint64_t seed)
{
    for (int i = 0; i < n->n_params; i++) {
        net_param *p = &n->params[i];
        float *v = net_param_data(n, p);
        uint64_t s = seed * 1000 + (uint64_t)i;
        if (strstr(p->name, "moving_variance"))
            tu_fill_uniform(v, p->n, s, 0.5f, 2.0f);
        else if (strstr(p->name, "/gamma"))
            tu_fill_uniform(v, p->n, s, 0.7f, 1.3f);
        else
            tu_fill_uniform(v, p->n, s, -0.3f, 0.3f);
    }
}

static void mobilenet_spec(model_spec *s)
{
    tl_err e = {0};
    model_spec_init(s);
    assert_int_equal(model_spec_set_str(&s->backbone, "mobilenet_v2", &e), 0);
    s->alpha = 0.35f;
    s->height = s->width = 32;
    s->convention = MODEL_KERAS;
    model_head_op ops[] = {{MODEL_HEAD_GAP, 0, MODEL_ACT_LINEAR, 0},
                           {MODEL_HEAD_DENSE, 8, MODEL_ACT_RELU, 0},
                           {MODEL_HEAD_DROPOUT, 0, MODEL_ACT_LINEAR, 0.2f}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(model_spec_add_head(s, ops[i], &e), 0);
    s->num_classes = 3;
    s->mode = MODEL_FINE_TUNE_AT;
    s->fine_tune_at = 100;
    s->preproc = net_default_preproc("mobilenet_v2", MODEL_KERAS);
    assert_int_equal(model_spec_set_str(&s->importer, "test", &e), 0);
}

static void test_spec_to_file_to_logits(void **st)
{
    (void)st;
    char path[64];
    snprintf(path, sizeof path, "/tmp/tlsweep-netio-%d.tlm", (int)getpid());
    model_spec spec;
    mobilenet_spec(&spec);
    tl_err e = {0};
    net a;
    assert_int_equal(net_build_from_spec(&a, &spec, 2, &e), 0);
    assert_int_equal(a.layers[a.n_layers - 1].c, 3);
    assert_string_equal(a.layers[a.n_layers - 1].name, "predictions");
    /* fine_tune_at 100: Keras layer 99 frozen, 100 trainable */
    for (int i = 0; i < a.n_layers; i++)
        assert_int_equal(a.layers[i].trainable, a.layers[i].keras_index >= 100);
    randomise(&a, 1);
    float *x = tu_alloc_uniform(2 * 32 * 32 * 3, 9, -1, 1);
    net_forward(&a, x, 2, 0);
    float want[6];
    memcpy(want, net_output(&a), sizeof want);

    tset t;
    tset_init(&t);
    assert_int_equal(net_to_tset(&a, &t, 1, &e), 0);
    assert_int_equal((int)t.n, a.n_params);
    assert_non_null(tset_find(&t, "bn_Conv1/moving_mean"));
    assert_non_null(tset_find(&t, "block_16_depthwise/depthwise_kernel"));
    assert_non_null(tset_find(&t, "predictions/kernel"));
    assert_int_equal(model_write(path, &spec, &t, &e), 0);
    tset_free(&t);

    model_spec spec2;
    model_spec_init(&spec2);
    tset_init(&t);
    assert_int_equal(model_read(path, &spec2, &t, &e), 0);
    net b;
    assert_int_equal(net_build_from_spec(&b, &spec2, 2, &e), 0);
    net_load_summary sum;
    assert_int_equal(net_load_tset(&b, &t, 1, 1, &sum, &e), 0);
    assert_int_equal(sum.matched, b.n_params);
    assert_int_equal(sum.unused + sum.missing + sum.dropped + sum.by_order, 0);
    net_forward(&b, x, 2, 0);
    assert_memory_equal(net_output(&b), want, sizeof want);

    /* backbone only: the head is left out, and a net with a fresh head
     * loads it with the head not counted missing */
    tset bb;
    tset_init(&bb);
    assert_int_equal(net_to_tset(&a, &bb, 0, &e), 0);
    assert_null(tset_find(&bb, "predictions/kernel"));
    assert_null(tset_find(&bb, "dense/kernel"));
    assert_int_equal(net_load_tset(&b, &bb, 1, 0, &sum, &e), 0);
    assert_int_equal(sum.missing, 0);
    assert_int_equal(sum.matched, (int)bb.n);
    /* ... but with_head wants the head too */
    assert_int_equal(net_load_tset(&b, &bb, 1, 1, &sum, &e), TL_ENOTFOUND);
    assert_non_null(strstr(e.msg, "dense/kernel"));
    assert_int_equal(sum.missing, 4);

    tset_free(&bb);
    tset_free(&t);
    free(x);
    net_free(&a);
    net_free(&b);
    model_spec_free(&spec);
    model_spec_free(&spec2);
    unlink(path);
}

static void test_build_errors(void **st)
{
    (void)st;
    model_spec s;
    mobilenet_spec(&s);
    tl_err e = {0};
    net n;
    s.height = 16;
    assert_int_equal(net_build_from_spec(&n, &s, 1, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "at least 32x32"));
    s.height = 32;
    model_spec_set_str(&s.backbone, "mobilenet_v9", &e);
    assert_int_equal(net_build_from_spec(&n, &s, 1, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "mobilenet_v9"));
    model_spec_free(&s);
}

/* Conv1 (3x3, 3->4) -> bn_Conv1 -> GAP -> predictions (4->2), Keras. */
static void tiny(net *n)
{
    tl_err e = {0};
    net_init(n, 6, 6, 3, NET_KERAS);
    int x = net_conv(n, "Conv1", 0, 4, 3, 3, 1, 1, net_pad_same(n, 0, 3, 3, 1, 1), 1, 0);
    x = net_bn(n, "bn_Conv1", x, 1e-3f, 0.99f, 1);
    net_head_op gap = {NET_HEAD_GAP, 0, NET_ACT_NONE, 0};
    assert_true(net_head(n, x, &gap, 1, 2, &e) > 0);
    assert_int_equal(net_finalize(n, 1, 5, &e), 0);
}

static float val(const char *name, size_t i)
{
    return (float)(strlen(name) * 100 + i);
}

/* A tset of the tiny net under the given names (in net parameter order:
 * Conv1/kernel, gamma, beta, moving_mean, moving_variance, predictions
 * kernel, bias); NULL skips one. A shape of {0} keeps the parameter's. */
static void tiny_tset(tset *t, const char *const names[7], const int64_t *kernel_shape)
{
    static const int64_t shapes[7][4] = {{3, 3, 3, 4}, {4}, {4}, {4}, {4}, {4, 2}, {2}};
    static const int ndims[7] = {4, 1, 1, 1, 1, 2, 1};
    tset_init(t);
    tl_err e = {0};
    for (int i = 0; i < 7; i++) {
        if (!names[i])
            continue;
        const int64_t *sh = i == 0 && kernel_shape ? kernel_shape : shapes[i];
        size_t n = 1;
        for (int k = 0; k < ndims[i]; k++)
            n *= (size_t)sh[k];
        float *d = malloc(n * sizeof *d);
        for (size_t k = 0; k < n; k++)
            d[k] = val(names[i], k);
        assert_int_equal(tset_add_owned(t, names[i], ndims[i], sh, d, &e), 0);
    }
}

static void test_name_normalisation(void **st)
{
    (void)st;
    net n;
    tiny(&n);
    const char *names[7] = {"model/Conv1/kernel:0",  "bn_Conv1/bn_Conv1/gamma:0",
                            "bn_Conv1/beta",         "a/b/bn_Conv1/moving_mean:12",
                            "bn_Conv1/moving_variance", "predictions/kernel:0",
                            "predictions/bias"};
    tset t;
    tiny_tset(&t, names, NULL);
    tl_err e = {0};
    net_load_summary sum;
    assert_int_equal(net_load_tset(&n, &t, 1, 0, &sum, &e), 0);
    assert_int_equal(sum.matched, 5);
    assert_int_equal(sum.dropped, 2);
    assert_int_equal(sum.unused + sum.missing, 0);
    char line[256];
    assert_string_equal(net_load_summary_str(&sum, line, sizeof line),
                        "5 parameters loaded (0 by position), 2 head tensors dropped, 0 unused, "
                        "0 missing");
    static const char *const pnames[5] = {"Conv1/kernel", "bn_Conv1/gamma", "bn_Conv1/beta",
                                          "bn_Conv1/moving_mean", "bn_Conv1/moving_variance"};
    for (int i = 0; i < 5; i++) {
        net_param *p = net_find_param(&n, pnames[i]);
        const float *v = net_param_data(&n, p);
        for (size_t k = 0; k < p->n; k++)
            assert_true(v[k] == val(names[i], k));
    }
    /* the classifier kept its initialisation */
    net_param *pk = net_find_param(&n, "predictions/kernel");
    assert_true(net_param_data(&n, pk)[0] != val(names[5], 0));
    /* with the head */
    assert_int_equal(net_load_tset(&n, &t, 1, 1, &sum, &e), 0);
    assert_int_equal(sum.matched, 7);
    assert_true(net_param_data(&n, pk)[1] == val(names[5], 1));
    tset_free(&t);

    /* a prefix that is not a path component does not match; two names
     * for one parameter are an error */
    const char *dup[7] = {"Conv1/kernel", "xbn_Conv1/gamma", NULL, NULL, NULL, NULL, NULL};
    tiny_tset(&t, dup, NULL);
    int64_t ks[4] = {3, 3, 3, 4};
    float *d = calloc(108, sizeof *d);
    assert_int_equal(tset_add_owned(&t, "outer/Conv1/kernel:0", 4, ks, d, &e), 0);
    assert_int_equal(net_load_tset(&n, &t, 0, 0, &sum, &e), TL_EFORMAT);
    assert_non_null(strstr(e.msg, "'Conv1/kernel' and 'outer/Conv1/kernel:0' both map to "
                                  "parameter Conv1/kernel"));
    tset_free(&t);
    net_free(&n);
}

static void test_shape_mismatch(void **st)
{
    (void)st;
    net n;
    tiny(&n);
    const float before = net_param_data(&n, net_find_param(&n, "bn_Conv1/gamma"))[0];
    const char *names[7] = {"Conv1/kernel", "bn_Conv1/gamma", "bn_Conv1/beta",
                            "bn_Conv1/moving_mean", "bn_Conv1/moving_variance", NULL, NULL};
    int64_t wrong[4] = {3, 3, 3, 5};
    tset t;
    tiny_tset(&t, names, wrong);
    tl_err e = {0};
    assert_int_equal(net_load_tset(&n, &t, 0, 0, NULL, &e), TL_ESHAPE);
    assert_string_equal(e.msg, "tensor 'Conv1/kernel' has shape 3x3x3x5, but parameter "
                               "Conv1/kernel needs 3x3x3x4");
    /* checked before anything was written */
    assert_true(net_param_data(&n, net_find_param(&n, "bn_Conv1/gamma"))[0] == before);
    tset_free(&t);
    net_free(&n);
}

static void test_strict(void **st)
{
    (void)st;
    net n;
    tiny(&n);
    tl_err e = {0};
    net_load_summary sum;
    const char *missing[7] = {"Conv1/kernel", "bn_Conv1/gamma", "bn_Conv1/beta",
                              "bn_Conv1/moving_mean", NULL, NULL, NULL};
    tset t;
    tiny_tset(&t, missing, NULL);
    assert_int_equal(net_load_tset(&n, &t, 1, 0, &sum, &e), TL_ENOTFOUND);
    assert_non_null(strstr(e.msg, "no tensor for parameter bn_Conv1/moving_variance"));
    assert_int_equal(net_load_tset(&n, &t, 0, 0, &sum, &e), 0);
    assert_int_equal(sum.missing, 1);
    assert_string_equal(sum.first_missing, "bn_Conv1/moving_variance");
    tset_free(&t);

    const char *extra[7] = {"Conv1/kernel", "bn_Conv1/gamma", "bn_Conv1/beta",
                            "bn_Conv1/moving_mean", "bn_Conv1/moving_variance", NULL, NULL};
    tiny_tset(&t, extra, NULL);
    int64_t s1 = 4;
    float f4[4] = {0};
    assert_int_equal(tset_add(&t, "block_1/foo/gamma", 1, &s1, f4, &e), 0);
    assert_int_equal(net_load_tset(&n, &t, 1, 0, &sum, &e), TL_EFORMAT);
    assert_non_null(strstr(e.msg, "tensor 'block_1/foo/gamma' fits no parameter"));
    assert_int_equal(net_load_tset(&n, &t, 0, 0, &sum, &e), 0);
    assert_int_equal(sum.unused, 1);
    assert_int_equal(sum.matched, 5);
    tset_free(&t);
    net_free(&n);
}

/* Keras InceptionV3 saved in a session where 94 convs had been made
 * before, under TF 1.x's BN name; the importer's order alphabetical. */
static void test_inception_by_position(void **st)
{
    (void)st;
    model_spec s;
    model_spec_init(&s);
    tl_err e = {0};
    model_spec_set_str(&s.backbone, "inception_v3", &e);
    s.height = s.width = 75;
    net a, b;
    assert_int_equal(net_build_from_spec(&a, &s, 1, &e), 0);
    assert_int_equal(net_build_from_spec(&b, &s, 1, &e), 0);
    randomise(&a, 3);
    tset t, renamed;
    tset_init(&t);
    tset_init(&renamed);
    assert_int_equal(net_to_tset(&a, &t, 0, &e), 0);
    /* renamed, then sorted by name (conv2d_100 before conv2d_95) */
    char **names = calloc(t.n, sizeof *names);
    for (size_t i = 0; i < t.n; i++) {
        char layer[96], param[64];
        const char *sl = strchr(t.v[i].name, '/');
        snprintf(layer, sizeof layer, "%.*s", (int)(sl - t.v[i].name), t.v[i].name);
        snprintf(param, sizeof param, "%s", sl + 1);
        const char *u = strrchr(layer, '_');
        int num = u && u[1] >= '0' && u[1] <= '9' ? atoi(u + 1) : 0;
        const char *base = !strncmp(layer, "conv2d", 6) ? "conv2d" : "batch_normalization_v1";
        names[i] = malloc(160);
        snprintf(names[i], 160, "inception_v3/%s_%d/%s:0", base, num + 94, param);
    }
    for (size_t i = 0; i < t.n; i++) /* selection sort of indices by name */
        for (size_t j = i + 1; j < t.n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char *c = names[i];
                names[i] = names[j];
                names[j] = c;
                tset_entry te = t.v[i];
                t.v[i] = t.v[j];
                t.v[j] = te;
            }
    for (size_t i = 0; i < t.n; i++)
        assert_int_equal(tset_add(&renamed, names[i], t.v[i].ndim, t.v[i].shape, t.v[i].data, &e), 0);
    net_load_summary sum;
    assert_int_equal(net_load_tset(&b, &renamed, 1, 0, &sum, &e), 0);
    assert_int_equal(sum.by_order, (int)t.n);
    assert_int_equal(sum.matched, (int)t.n);
    assert_int_equal(sum.missing + sum.unused, 0);
    assert_memory_equal(a.weights, b.weights, a.n_weights * sizeof(float));

    /* one conv's kernel of another shape: named in the error */
    for (size_t i = 0; i < renamed.n; i++)
        if (!strcmp(renamed.v[i].name, "inception_v3/conv2d_95/kernel:0"))
            renamed.v[i].shape[2] += 1;
    assert_int_equal(net_load_tset(&b, &renamed, 1, 0, &sum, &e), TL_ESHAPE);
    assert_non_null(strstr(e.msg, "tensor 'inception_v3/conv2d_95/kernel:0' (paired by position "
                                  "with layer conv2d_1) has shape 3x3x33x32, but parameter "
                                  "conv2d_1/kernel needs 3x3x32x32"));
    for (size_t i = 0; i < t.n; i++)
        free(names[i]);
    free(names);
    tset_free(&t);
    tset_free(&renamed);
    net_free(&a);
    net_free(&b);
    model_spec_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_to_file_to_logits),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_name_normalisation),
        cmocka_unit_test(test_shape_mismatch),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_inception_by_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
