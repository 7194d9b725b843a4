/* Max, average and global average pooling against direct loops, including
 * Keras 'same' (asymmetric) padding, non-square kernels and strides, and
 * overlapping windows whose backward is split into phases. */
#include "tests/testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/nn/nn.h"

static size_t in_size(const nn_pool2d_shape *s)
{
    return (size_t)s->n * s->h * s->w * s->c;
}

static size_t out_size(const nn_pool2d_shape *s)
{
    return (size_t)s->n * s->oh * s->ow * s->c;
}

/* Direct reference. mode 0: max (forward, and backward with ties to the
 * first cell in scan order); 1: avg. dout may be NULL (forward only). */
static void ref_pool(float *out, float *dinp, const float *inp, const float *dout,
                     const nn_pool2d_shape *s, int mode)
{
    for (int n = 0; n < s->n; n++)
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++)
                for (int c = 0; c < s->c; c++) {
                    double best = -INFINITY, sum = 0;
                    int cnt = 0, at = -1;
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            int y = oy * s->sh - s->pad.top + ky;
                            int x = ox * s->sw - s->pad.left + kx;
                            if (y < 0 || y >= s->h || x < 0 || x >= s->w)
                                continue;
                            int i = ((n * s->h + y) * s->w + x) * s->c + c;
                            if (inp[i] > best) {
                                best = inp[i];
                                at = i;
                            }
                            sum += inp[i];
                            cnt++;
                        }
                    int div = mode == 1 && s->count_include_pad ? s->kh * s->kw : cnt;
                    int o = ((n * s->oh + oy) * s->ow + ox) * s->c + c;
                    out[o] = (float)(mode == 0 ? best : sum / div);
                    if (!dout)
                        continue;
                    if (mode == 0) {
                        dinp[at] += dout[o];
                        continue;
                    }
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            int y = oy * s->sh - s->pad.top + ky;
                            int x = ox * s->sw - s->pad.left + kx;
                            if (y >= 0 && y < s->h && x >= 0 && x < s->w)
                                dinp[((n * s->h + y) * s->w + x) * s->c + c] +=
                                    (float)(dout[o] / div);
                        }
                }
}

/* a random permutation of distinct values 0.05 apart: no ties, and a
 * perturbation of 1e-2 never changes which cell wins */
static float *alloc_distinct(size_t n, uint64_t seed)
{
    float *x = malloc(n * sizeof *x);
    float *r = tu_alloc_uniform(n, seed, 0, 1);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)i * 0.05f;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(r[i] * (float)(i + 1));
        if (j > i)
            j = i;
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    free(r);
    return x;
}

typedef struct {
    nn_pool2d_shape s;
    float *x, *out, *R;
    int mode;
} pool_ctx;

static double pool_fn(void *p)
{
    pool_ctx *k = p;
    if (k->mode == 0)
        nn_maxpool2d_forward(k->out, k->x, &k->s);
    else
        nn_avgpool2d_forward(k->out, k->x, &k->s);
    return tu_dot(k->out, k->R, out_size(&k->s));
}

static void run_backward(float *dx, const pool_ctx *k)
{
    if (k->mode == 0)
        nn_maxpool2d_backward(dx, k->R, k->x, k->out, &k->s);
    else
        nn_avgpool2d_backward(dx, k->R, &k->s);
}

static void check_pool(nn_pool2d_shape s, int mode)
{
    assert_int_equal(nn_pool2d_init(&s), 0);
    size_t ni = in_size(&s), no = out_size(&s);
    pool_ctx k = {s, alloc_distinct(ni, 1), tu_zeros(no), tu_alloc_uniform(no, 2, -1, 1), mode};
    float *ref = tu_zeros(no), *rdx = tu_zeros(ni), *dx = tu_zeros(ni);
    pool_fn(&k);
    ref_pool(ref, rdx, k.x, k.R, &s, mode);
    assert_true(tu_max_abs_diff(k.out, ref, no) <= 1e-5);
    run_backward(dx, &k);
    assert_true(tu_max_abs_diff(dx, rdx, ni) <= 1e-5);
    tu_gradcheck(mode ? "avgpool" : "maxpool", k.x, dx, ni, pool_fn, &k, 1e-2f, 1e-3, 1e-3, 300);
    pool_fn(&k); /* gradcheck leaves out from a perturbed input */
    /* accumulates */
    run_backward(dx, &k);
    for (size_t i = 0; i < ni; i++)
        assert_float_equal(dx[i], 2 * rdx[i], 1e-5);
    /* the same bits with 1 and 3 threads */
    float *d1 = tu_zeros(ni), *d3 = tu_zeros(ni), *o1 = tu_zeros(no);
    nn_set_threads(1);
    run_backward(d1, &k);
    memcpy(o1, k.out, no * sizeof *o1);
    nn_set_threads(3);
    run_backward(d3, &k);
    pool_fn(&k);
    nn_set_threads(1);
    assert_memory_equal(d1, d3, ni * sizeof *d1);
    assert_memory_equal(o1, k.out, no * sizeof *o1);
    free(k.x); free(k.out); free(k.R); free(ref); free(rdx); free(dx);
    free(d1); free(d3); free(o1);
}

static nn_pool2d_shape shape(int n, int h, int w, int c, int kh, int kw, int sh, int sw,
                             nn_pad pad, int cip)
{
    nn_pool2d_shape s = {n, h, w, c, kh, kw, sh, sw, pad, cip, 0, 0};
    return s;
}

static void test_init(void **state)
{
    (void)state;
    /* Keras 'same' 3x3/2 on 8x8: out 4x4, the one padding pixel bottom/right */
    nn_pool2d_shape s = shape(1, 8, 8, 1, 3, 3, 2, 2, nn_pad_same(8, 8, 3, 3, 2, 2), 0);
    assert_int_equal(s.pad.top, 0);
    assert_int_equal(s.pad.bottom, 1);
    assert_int_equal(nn_pool2d_init(&s), 0);
    assert_int_equal(s.oh, 4);
    assert_int_equal(s.ow, 4);
    /* non-square: 7x10, kernel 3x2, stride 2x3, valid */
    s = shape(1, 7, 10, 1, 3, 2, 2, 3, nn_pad_sym(0, 0), 0);
    assert_int_equal(nn_pool2d_init(&s), 0);
    assert_int_equal(s.oh, 3);
    assert_int_equal(s.ow, 3);
    /* padding as wide as the kernel would leave all-padding windows */
    s = shape(1, 4, 4, 1, 2, 2, 1, 1, nn_pad_sym(2, 0), 0);
    assert_int_equal(nn_pool2d_init(&s), -1);
    s = shape(1, 2, 2, 1, 3, 3, 1, 1, nn_pad_sym(0, 0), 0);
    assert_int_equal(nn_pool2d_init(&s), -1);
}

static void test_maxpool(void **state)
{
    (void)state;
    /* ResNet stem: 3x3/2, PyTorch padding 1, overlapping windows */
    check_pool(shape(2, 9, 9, 5, 3, 3, 2, 2, nn_pad_sym(1, 1), 1), 0);
    /* Keras same, asymmetric padding, stride 1: three backward phases */
    check_pool(shape(2, 6, 7, 3, 3, 3, 1, 1, nn_pad_same(6, 7, 3, 3, 1, 1), 0), 0);
    check_pool(shape(3, 8, 8, 70, 3, 3, 2, 2, nn_pad_same(8, 8, 3, 3, 2, 2), 0), 0);
    /* non-square kernel and stride */
    check_pool(shape(2, 7, 10, 4, 3, 2, 2, 3, nn_pad_same(7, 10, 3, 2, 2, 3), 0), 0);
    check_pool(shape(2, 8, 8, 3, 2, 2, 2, 2, nn_pad_sym(0, 0), 0), 0);
}

static void test_avgpool(void **state)
{
    (void)state;
    for (int cip = 0; cip <= 1; cip++) {
        check_pool(shape(2, 9, 9, 5, 3, 3, 2, 2, nn_pad_sym(1, 1), cip), 1);
        check_pool(shape(2, 6, 7, 3, 3, 3, 1, 1, nn_pad_same(6, 7, 3, 3, 1, 1), cip), 1);
        check_pool(shape(2, 7, 10, 4, 3, 2, 2, 3, nn_pad_same(7, 10, 3, 2, 2, 3), cip), 1);
    }
    /* the two divisors differ at a corner: 2x2 real cells of a padded 3x3 */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, o[9];
    nn_pool2d_shape s = shape(1, 3, 3, 1, 3, 3, 1, 1, nn_pad_sym(1, 1), 1);
    assert_int_equal(nn_pool2d_init(&s), 0);
    nn_avgpool2d_forward(o, x, &s);
    assert_float_equal(o[0], (1 + 2 + 4 + 5) / 9.0, 1e-6);
    s.count_include_pad = 0;
    nn_avgpool2d_forward(o, x, &s);
    assert_float_equal(o[0], (1 + 2 + 4 + 5) / 4.0, 1e-6);
    assert_float_equal(o[4], 5.0, 1e-6);
}

/* padded cells never win, even over negative inputs; ties go to the first
 * cell in scan order */
static void test_maxpool_pad_and_ties(void **state)
{
    (void)state;
    float x[4] = {-5, -3, -3, -4}, o[4], d[4] = {1, 1, 1, 1}, g[4] = {0};
    nn_pool2d_shape s = shape(1, 2, 2, 1, 2, 2, 1, 1, nn_pad_same(2, 2, 2, 2, 1, 1), 0);
    assert_int_equal(nn_pool2d_init(&s), 0);
    assert_int_equal(s.oh, 2);
    nn_maxpool2d_forward(o, x, &s);
    assert_true(o[0] == -3 && o[1] == -3 && o[2] == -3 && o[3] == -4);
    nn_maxpool2d_backward(g, d, x, o, &s);
    /* output 0 sees -5 -3 / -3 -4: the tie goes to x[1], first in scan order */
    assert_true(g[0] == 0 && g[1] == 2 && g[2] == 1 && g[3] == 1);

    /* many ties: small integers, against the reference's first-wins rule */
    nn_pool2d_shape t = shape(2, 7, 6, 9, 3, 3, 1, 1, nn_pad_same(7, 6, 3, 3, 1, 1), 0);
    assert_int_equal(nn_pool2d_init(&t), 0);
    size_t ni = in_size(&t), no = out_size(&t);
    float *xi = tu_alloc_uniform(ni, 5, 0, 3), *dy = tu_alloc_uniform(no, 6, -1, 1);
    for (size_t i = 0; i < ni; i++)
        xi[i] = floorf(xi[i]);
    float *out = tu_zeros(no), *ref = tu_zeros(no), *dx = tu_zeros(ni), *rdx = tu_zeros(ni);
    nn_maxpool2d_forward(out, xi, &t);
    nn_maxpool2d_backward(dx, dy, xi, out, &t);
    ref_pool(ref, rdx, xi, dy, &t, 0);
    assert_memory_equal(out, ref, no * sizeof *out);
    assert_true(tu_max_abs_diff(dx, rdx, ni) <= 1e-6);
    free(xi); free(dy); free(out); free(ref); free(dx); free(rdx);
}

/* big enough for the threaded paths: overlapping windows must not race */
static void test_threaded(void **state)
{
    (void)state;
    nn_pool2d_shape shapes[2] = {
        shape(4, 32, 30, 64, 3, 3, 1, 1, nn_pad_same(32, 30, 3, 3, 1, 1), 0),
        shape(5, 33, 33, 40, 3, 3, 2, 2, nn_pad_sym(1, 1), 1),
    };
    for (int t = 0; t < 2; t++)
        for (int mode = 0; mode <= 1; mode++) {
            nn_pool2d_shape s = shapes[t];
            assert_int_equal(nn_pool2d_init(&s), 0);
            size_t ni = in_size(&s), no = out_size(&s);
            float *x = alloc_distinct(ni, 8), *dy = tu_alloc_uniform(no, 9, -1, 1);
            for (size_t i = 0; i < ni; i++)
                x[i] /= (float)ni; /* still distinct, now O(1) for the avg tolerance */
            float *out = tu_zeros(no), *ref = tu_zeros(no);
            float *dx = tu_zeros(ni), *rdx = tu_zeros(ni), *dx1 = tu_zeros(ni);
            ref_pool(ref, rdx, x, dy, &s, mode);
            nn_set_threads(1);
            if (mode == 0) {
                nn_maxpool2d_forward(out, x, &s);
                nn_maxpool2d_backward(dx1, dy, x, out, &s);
            } else {
                nn_avgpool2d_backward(dx1, dy, &s);
            }
            nn_set_threads(3);
            for (int rep = 0; rep < 3; rep++) {
                memset(dx, 0, ni * sizeof *dx);
                if (mode == 0) {
                    nn_maxpool2d_forward(out, x, &s);
                    nn_maxpool2d_backward(dx, dy, x, out, &s);
                } else {
                    nn_avgpool2d_forward(out, x, &s);
                    nn_avgpool2d_backward(dx, dy, &s);
                }
                assert_true(tu_max_abs_diff(out, ref, no) <= 1e-4);
                assert_true(tu_max_abs_diff(dx, rdx, ni) <= 1e-5);
                assert_memory_equal(dx, dx1, ni * sizeof *dx);
            }
            nn_set_threads(1);
            free(x); free(dy); free(out); free(ref); free(dx); free(rdx); free(dx1);
        }
}

typedef struct {
    int N, HW, C;
    float *x, *out, *R;
} gap_ctx;

static double gap_fn(void *p)
{
    gap_ctx *k = p;
    nn_gap_forward(k->out, k->x, k->N, k->HW, k->C);
    return tu_dot(k->out, k->R, (size_t)k->N * k->C);
}

static void test_gap(void **state)
{
    (void)state;
    int N = 3, HW = 49, C = 70;
    size_t ni = (size_t)N * HW * C;
    gap_ctx k = {N, HW, C, tu_alloc_uniform(ni, 7, -2, 2), tu_zeros((size_t)N * C),
                 tu_alloc_uniform((size_t)N * C, 8, -1, 1)};
    gap_fn(&k);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int j = 0; j < HW; j++)
                s += k.x[((size_t)n * HW + j) * C + c];
            assert_float_equal(k.out[n * C + c], s / HW, 1e-6);
        }
    float *dx = tu_zeros(ni);
    nn_gap_backward(dx, k.R, N, HW, C);
    tu_gradcheck("gap", k.x, dx, ni, gap_fn, &k, 1e-2f, 1e-4, 1e-3, 300);
    float *dx2 = tu_zeros(ni);
    nn_gap_backward(dx2, k.R, N, HW, C);
    nn_gap_backward(dx2, k.R, N, HW, C);
    for (size_t i = 0; i < ni; i++)
        assert_true(dx2[i] == 2 * dx[i]);
    free(k.x); free(k.out); free(k.R); free(dx); free(dx2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_maxpool_pad_and_ties),
        cmocka_unit_test(test_threaded),
        cmocka_unit_test(test_gap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
