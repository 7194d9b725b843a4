/* Softmax cross-entropy and sigmoid BCE: known values, stability at large
 * logits, and finite-difference gradients of the mean loss. */
#include "tests/testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/nn/nn.h"

static void test_softmax_known_values(void **state)
{
    (void)state;
    /* uniform logits: loss log(C), probs 1/C, whatever the offset */
    int N = 3, C = 10, labels[3] = {0, 4, 9};
    float z[30], p[30];
    for (int i = 0; i < 30; i++)
        z[i] = (float)(i / C) * 7.0f;
    assert_float_equal(nn_softmax_xent_forward(p, z, labels, N, C), log(10.0), 1e-6);
    for (int i = 0; i < 30; i++)
        assert_float_equal(p[i], 0.1, 1e-7);
    /* (1, 2, 3) with label 2: log(e + e^2 + e^3) - 3 */
    float z3[3] = {1, 2, 3}, p3[3];
    int y = 2;
    double e = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3.0;
    assert_float_equal(nn_softmax_xent_forward(p3, z3, &y, 1, 3), e, 1e-6);
    assert_float_equal(p3[0], exp(1.0 - 3.0 - e), 1e-7);
    /* huge logits neither overflow nor lose the answer */
    float zb[3] = {1000, 0, -1000}, pb[3];
    int yb = 1;
    assert_float_equal(nn_softmax_xent_forward(pb, zb, &yb, 1, 3), 1000.0, 1e-3);
    assert_true(pb[0] == 1.0f && pb[1] >= 0.0f && pb[2] == 0.0f);
}

static void test_bce_known_values(void **state)
{
    (void)state;
    float z[4] = {0, 0, 100, -100}, t[4] = {0, 1, 0, 0}, p[4];
    /* log 2, log 2, 100, 0 (log1p(e^-100)) */
    double e = (2 * log(2.0) + 100.0 + log1p(exp(-100.0))) / 4;
    assert_float_equal(nn_sigmoid_bce_forward(p, z, t, 2, 2), e, 1e-5);
    assert_true(p[0] == 0.5f && p[2] == 1.0f && p[3] >= 0.0f && p[3] < 1e-30f);
    float zs[2] = {2.0f, -1.0f}, ts[2] = {0.3f, 1.0f}, ps[2];
    double ref = 0;
    for (int i = 0; i < 2; i++) {
        double s = 1 / (1 + exp(-(double)zs[i]));
        ref -= ts[i] * log(s) + (1 - ts[i]) * log(1 - s);
    }
    assert_float_equal(nn_sigmoid_bce_forward(ps, zs, ts, 1, 2), ref / 2, 1e-6);
}

typedef struct {
    int N, C, bce;
    float *z, *p, *t;
    int *y;
    float ls; /* label smoothing of the softmax loss */
} loss_ctx;

static double loss_fn(void *q)
{
    loss_ctx *k = q;
    if (k->bce)
        return nn_sigmoid_bce_forward(k->p, k->z, k->t, k->N, k->C);
    return nn_softmax_xent_smooth_forward(k->p, k->z, k->y, k->N, k->C, k->ls);
}

static void check_loss_grad(int bce, float ls)
{
    int N = 6, C = 9;
    size_t n = (size_t)N * C;
    loss_ctx k = {N, C, bce, tu_alloc_uniform(n, 1, -4, 4), tu_zeros(n),
                  tu_alloc_uniform(n, 2, 0, 1), malloc(N * sizeof(int)), ls};
    for (int i = 0; i < N; i++)
        k.y[i] = (i * 5 + 2) % C;
    float *g = tu_zeros(n), *g2 = tu_zeros(n);
    loss_fn(&k);
    if (bce)
        nn_sigmoid_bce_backward(g, k.p, k.t, N, C);
    else
        nn_softmax_xent_smooth_backward(g, k.p, k.y, N, C, ls);
    /* the loss is a float: keep eps large enough that rounding stays small */
    tu_gradcheck(bce ? "bce" : "xent", k.z, g, n, loss_fn, &k, 1e-2f, 1e-4, 1e-2, 200);
    loss_fn(&k);
    for (int t = 0; t < 2; t++) {
        if (bce)
            nn_sigmoid_bce_backward(g2, k.p, k.t, N, C);
        else
            nn_softmax_xent_smooth_backward(g2, k.p, k.y, N, C, ls);
    }
    for (size_t i = 0; i < n; i++)
        assert_float_equal(g2[i], 2 * g[i], 1e-7);
    if (!bce) /* each row's gradient sums to zero */
        for (int r = 0; r < N; r++) {
            double s = 0;
            for (int c = 0; c < C; c++)
                s += g[r * C + c];
            assert_true(fabs(s) < 1e-6);
        }
    free(k.z); free(k.p); free(k.t); free(k.y); free(g); free(g2);
}

static void test_grads(void **state)
{
    (void)state;
    check_loss_grad(0, 0.0f);
    check_loss_grad(1, 0.0f);
    check_loss_grad(0, 0.1f);
    check_loss_grad(0, 0.9f);
}

/* Keras's label_smoothing against its definition: targets
 * onehot*(1-ls) + ls/C, loss -sum t log softmax(z), gradient (p - t)/N;
 * ls = 0 gives the unsmoothed loss bit for bit. */
static void test_softmax_smoothing(void **state)
{
    (void)state;
    int N = 4, C = 5, y[4] = {0, 3, 4, 2};
    float *z = tu_alloc_uniform((size_t)N * C, 3, -6, 6), p[20], g[20] = {0};
    const float lss[] = {0.0f, 0.1f, 0.5f, 0.95f};
    for (size_t k = 0; k < sizeof lss / sizeof lss[0]; k++) {
        float ls = lss[k];
        double ref = 0, t[20];
        for (int n = 0; n < N; n++) {
            double lse = 0;
            for (int c = 0; c < C; c++)
                lse += exp((double)z[n * C + c]);
            lse = log(lse);
            for (int c = 0; c < C; c++) {
                t[n * C + c] = (c == y[n]) * (1.0 - ls) + ls / (double)C;
                ref -= t[n * C + c] * ((double)z[n * C + c] - lse);
            }
        }
        assert_float_equal(nn_softmax_xent_smooth_forward(p, z, y, N, C, ls), ref / N, 1e-5);
        memset(g, 0, sizeof g);
        nn_softmax_xent_smooth_backward(g, p, y, N, C, ls);
        for (int i = 0; i < N * C; i++)
            assert_float_equal(g[i], ((double)p[i] - t[i]) / N, 1e-7);
    }
    float p0[20], g0[20] = {0}, g1[20] = {0};
    float l0 = nn_softmax_xent_forward(p0, z, y, N, C);
    assert_true(l0 == nn_softmax_xent_smooth_forward(p, z, y, N, C, 0.0f));
    nn_softmax_xent_backward(g0, p0, y, N, C);
    nn_softmax_xent_smooth_backward(g1, p0, y, N, C, 0.0f);
    assert_memory_equal(g0, g1, sizeof g0);
    free(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_known_values),
        cmocka_unit_test(test_softmax_smoothing),
        cmocka_unit_test(test_bce_known_values),
        cmocka_unit_test(test_grads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
