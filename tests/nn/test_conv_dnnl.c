/* The oneDNN convolution against the OpenBLAS one (nn_conv2d_*, itself
 * checked against direct loops and finite differences in test_conv2d.c):
 * forward with and without fused ReLU/ReLU6, backward data (written),
 * backward weights and bias (accumulated), for fp32 and bf16, and a conv
 * made for another batch size that reuses the first one's weight layouts. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/nn/conv_dnnl.h"
#include "worker/nn/nn.h"

typedef struct {
    const char *name;
    int n, h, w, c, oc, groups, kh, kw, sh, sw;
    int same;       /* Keras 'same' (asymmetric at stride 2), else symmetric pad p */
    int p, bias;
} dcase;

static const dcase cases[] = {
    {"1x1", 2, 7, 6, 16, 32, 1, 1, 1, 1, 1, 0, 0, 1},
    {"1x1 stride 2", 2, 8, 8, 24, 16, 1, 1, 1, 2, 2, 0, 0, 0},
    {"3x3 s1", 3, 9, 10, 16, 20, 1, 3, 3, 1, 1, 0, 1, 1},
    {"3x3 s2 same (odd pixel bottom/right)", 2, 10, 9, 8, 16, 1, 3, 3, 2, 2, 1, 0, 1},
    {"7x7 s2 stem, 3 channels", 2, 16, 15, 3, 16, 1, 7, 7, 2, 2, 0, 3, 0},
    {"odd channels", 2, 6, 7, 5, 7, 1, 3, 3, 1, 1, 0, 1, 1},
    {"1x7 and 7x1 (InceptionV3)", 1, 9, 9, 16, 24, 1, 1, 7, 1, 1, 1, 0, 0},
    {"depthwise 3x3 s1", 2, 9, 8, 32, 32, 32, 3, 3, 1, 1, 0, 1, 1},
    {"depthwise 3x3 s2 same", 2, 11, 10, 24, 24, 24, 3, 3, 2, 2, 1, 0, 0},
    {"groups 2", 2, 6, 6, 8, 12, 2, 3, 3, 1, 1, 0, 1, 1},
};
#define NCASES (sizeof cases / sizeof cases[0])

static nn_conv2d_shape shape_of(const dcase *k, int n)
{
    nn_conv2d_shape s = {0};
    s.n = n; s.h = k->h; s.w = k->w; s.c = k->c; s.oc = k->oc; s.groups = k->groups;
    s.kh = k->kh; s.kw = k->kw; s.sh = k->sh; s.sw = k->sw;
    s.pad = k->same ? nn_pad_same(k->h, k->w, k->kh, k->kw, k->sh, k->sw) : nn_pad_sym(k->p, k->p);
    assert_int_equal(nn_conv2d_init(&s), 0);
    return s;
}

/* max |a - b| over max(1, max |b|): errors on the scale of the tensor */
static double scaled_err(const float *a, const float *b, size_t n)
{
    double m = 0, big = 1;
    for (size_t i = 0; i < n; i++)
        if (fabs(b[i]) > big)
            big = fabs(b[i]);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= m))
            m = isnan(e) ? INFINITY : e;
    }
    return m / big;
}

typedef struct {
    void *wf, *wb, *dw, *scratch, *act;
    float *db;
} bufs;

static void bufs_alloc(bufs *b, const nn_dconv *c, int oc)
{
    nn_dconv_sizes z = nn_dconv_get_sizes(c);
    b->wf = z.wfwd_bytes ? malloc(z.wfwd_bytes) : NULL;
    b->wb = z.wbwd_bytes ? malloc(z.wbwd_bytes) : NULL;
    b->dw = z.dw_bytes ? malloc(z.dw_bytes) : NULL;
    b->scratch = z.scratch_bytes ? malloc(z.scratch_bytes) : NULL;
    b->act = z.act_bytes ? malloc(z.act_bytes) : NULL;
    b->db = calloc((size_t)oc, sizeof(float));
}

static void bufs_free(bufs *b)
{
    free(b->wf); free(b->wb); free(b->dw); free(b->scratch); free(b->act); free(b->db);
}

/* One case at one precision and post-op: returns the worst scaled error of
 * forward, backward data, backward weights, backward bias. */
static void run_case(const dcase *k, nn_precision prec, nn_post post, double tol, int batch,
                     const nn_dconv *like, double err[4])
{
    nn_conv2d_shape s = shape_of(k, batch);
    size_t ni = (size_t)s.n * s.h * s.w * s.c, no = (size_t)s.n * s.oh * s.ow * s.oc;
    size_t nw = (size_t)s.kh * s.kw * (s.c / s.groups) * s.oc;
    float *x = tu_alloc_uniform(ni, 1, -1, 1), *w = tu_alloc_uniform(nw, 2, -0.5f, 0.5f);
    float *bias = tu_alloc_uniform((size_t)s.oc, 3, -1, 1), *dy = tu_alloc_uniform(no, 4, -1, 1);
    float *y_ref = tu_zeros(no), *y = tu_zeros(no);
    float *dx_ref = tu_zeros(ni), *dx = tu_alloc_uniform(ni, 5, -9, 9); /* written over */
    float *dw_ref = tu_alloc_uniform(nw, 6, -1, 1), *dw = malloc(nw * sizeof(float));
    float *db_ref = tu_alloc_uniform((size_t)s.oc, 7, -1, 1), *db = malloc((size_t)s.oc * 4);
    memcpy(dw, dw_ref, nw * sizeof(float)); /* both accumulate onto the same start */
    memcpy(db, db_ref, (size_t)s.oc * sizeof(float));
    size_t col = nn_conv2d_col_size(&s);
    float *colbuf = col ? malloc(col * sizeof(float)) : NULL;

    /* reference: OpenBLAS conv, then the activation */
    nn_conv2d_forward(y_ref, x, w, k->bias ? bias : NULL, colbuf, &s);
    if (post == NN_POST_RELU)
        nn_relu_forward(y_ref, y_ref, no);
    else if (post == NN_POST_RELU6)
        nn_relu6_forward(y_ref, y_ref, no);
    nn_conv2d_backward(dx_ref, dw_ref, k->bias ? db_ref : NULL, dy, x, w, colbuf, &s);

    nn_dconv_cfg cfg = {.bias = k->bias, .post = post, .bwd_data = 1, .bwd_weights = 1,
                        .prec = prec};
    tl_err e = {0};
    nn_dconv *c = nn_dconv_create(&s, &cfg, like, &e);
    if (!c)
        fail_msg("%s: %s", k->name, e.msg);
    bufs b;
    bufs_alloc(&b, c, s.oc);
    nn_dconv_sizes z = nn_dconv_get_sizes(c);
    assert_int_equal(nn_dconv_prepare(c, b.wf, b.wb, w, b.scratch), 0);
    const void *wf = z.wfwd_bytes ? b.wf : w, *wb = z.wbwd_bytes ? b.wb : wf;
    assert_int_equal(nn_dconv_forward(c, y, x, wf, k->bias ? bias : NULL, b.scratch, b.act), 0);
    assert_int_equal(nn_dconv_backward_data(c, dx, dy, wb, b.scratch, b.act), 0);
    assert_int_equal(nn_dconv_backward_weights(c, dw, k->bias ? db : NULL, dy, x, b.dw, b.db,
                                               b.scratch, b.act), 0);
    err[0] = scaled_err(y, y_ref, no);
    err[1] = scaled_err(dx, dx_ref, ni);
    err[2] = scaled_err(dw, dw_ref, nw);
    err[3] = k->bias ? scaled_err(db, db_ref, (size_t)s.oc) : 0;
    for (int i = 0; i < 4; i++)
        if (!(err[i] <= tol))
            fail_msg("%s (%s, batch %d, post %d): %s error %.3g > %.3g", k->name,
                     nn_precision_name(prec), batch, (int)post,
                     (const char *[]){"forward", "backward data", "backward weights",
                                      "backward bias"}[i], err[i], tol);
    bufs_free(&b);
    nn_dconv_free(c);
    free(x); free(w); free(bias); free(dy); free(y_ref); free(y); free(dx_ref); free(dx);
    free(dw_ref); free(dw); free(db_ref); free(db); free(colbuf);
}

static void test_fp32(void **state)
{
    (void)state;
    double worst[4] = {0};
    for (size_t i = 0; i < NCASES; i++)
        for (int post = NN_POST_NONE; post <= NN_POST_RELU6; post++) {
            double err[4];
            run_case(&cases[i], NN_FP32, (nn_post)post, 2e-5, cases[i].n, NULL, err);
            for (int j = 0; j < 4; j++)
                worst[j] = err[j] > worst[j] ? err[j] : worst[j];
        }
    printf("fp32 worst scaled errors: forward %.2g, data %.2g, weights %.2g, bias %.2g\n",
           worst[0], worst[1], worst[2], worst[3]);
}

/* bf16 keeps 8 significant bits: each product of two rounded operands is
 * off by up to ~2^-8 relative, and over K random-signed terms the errors
 * grow like sqrt(K) while the sum's scale (our divisor, the tensor's max)
 * grows like sqrt(K) too, so the scaled error stays near 2^-8 ~ 0.4%;
 * 2% leaves room for the tensor's max being a few sigma above typical. */
static void test_bf16(void **state)
{
    (void)state;
    if (!nn_cpu_has_bf16()) {
        printf("bf16: this CPU has no AVX512_BF16; the bf16 cases need it\n");
        return;
    }
    double worst[4] = {0};
    for (size_t i = 0; i < NCASES; i++) {
        double err[4];
        run_case(&cases[i], NN_BF16, NN_POST_RELU, 2e-2, cases[i].n, NULL, err);
        for (int j = 0; j < 4; j++)
            worst[j] = err[j] > worst[j] ? err[j] : worst[j];
    }
    printf("bf16 worst scaled errors: forward %.2g, data %.2g, weights %.2g, bias %.2g\n",
           worst[0], worst[1], worst[2], worst[3]);
}

/* The last batch of an epoch is smaller: a conv made for it with `like`
 * uses the same prepared weight layouts. */
static void test_other_batch(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const dcase *k = &cases[i];
        nn_conv2d_shape s = shape_of(k, 8);
        nn_dconv_cfg cfg = {.bias = k->bias, .bwd_data = 1, .bwd_weights = 1};
        tl_err e = {0};
        nn_dconv *big = nn_dconv_create(&s, &cfg, NULL, &e);
        assert_non_null(big);
        double err[4];
        run_case(k, NN_FP32, NN_POST_NONE, 2e-5, 1, big, err);
        nn_dconv_free(big);
    }
}

/* A build without oneDNN refuses every conv with a line saying so (the net
 * then plans it on OpenBLAS). */
static void test_without_onednn(void **state)
{
    (void)state;
    nn_conv2d_shape s = shape_of(&cases[2], 2);
    nn_dconv_cfg cfg = {.bias = 1};
    tl_err e = {0};
    nn_dconv *c = nn_dconv_create(&s, &cfg, NULL, &e);
    assert_null(c);
    assert_non_null(strstr(e.msg, "oneDNN is not built in"));
}

int main(void)
{
    if (!nn_have_onednn()) {
        printf("this build has no oneDNN: checking that it says so\n");
        const struct CMUnitTest only[] = {cmocka_unit_test(test_without_onednn)};
        return cmocka_run_group_tests(only, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_other_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
