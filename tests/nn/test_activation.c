/* relu, relu6, add and concat against direct definitions and finite
 * differences. */
#include "tests/testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/nn/nn.h"

/* inputs kept 0.05 away from the kinks at 0 and 6, so eps 1e-2 never crosses */
static float *alloc_off_kinks(size_t n, uint64_t seed)
{
    float *x = tu_alloc_uniform(n, seed, -3.0f, 9.0f);
    for (size_t i = 0; i < n; i++) {
        if (fabsf(x[i]) < 0.05f)
            x[i] = x[i] < 0 ? -0.05f : 0.05f;
        if (fabsf(x[i] - 6.0f) < 0.05f)
            x[i] = x[i] < 6.0f ? 5.95f : 6.05f;
    }
    return x;
}

typedef struct {
    float *x, *out, *R;
    size_t n;
    int six;
} act_ctx;

static double act_fn(void *p)
{
    act_ctx *k = p;
    if (k->six)
        nn_relu6_forward(k->out, k->x, k->n);
    else
        nn_relu_forward(k->out, k->x, k->n);
    return tu_dot(k->out, k->R, k->n);
}

static void check_act(int six, size_t n)
{
    act_ctx k = {alloc_off_kinks(n, 1), tu_zeros(n), tu_alloc_uniform(n, 2, -1, 1), n, six};
    act_fn(&k);
    for (size_t i = 0; i < n; i++) {
        float x = k.x[i], e = x < 0 ? 0 : (six && x > 6 ? 6 : x);
        assert_true(k.out[i] == e);
    }
    float *dx = tu_zeros(n);
    if (six)
        nn_relu6_backward(dx, k.R, k.out, n);
    else
        nn_relu_backward(dx, k.R, k.out, n);
    tu_gradcheck(six ? "relu6" : "relu", k.x, dx, n, act_fn, &k, 1e-2f, 1e-4, 1e-3, 300);
    /* accumulates */
    float *dx2 = tu_zeros(n);
    for (int t = 0; t < 2; t++) {
        if (six)
            nn_relu6_backward(dx2, k.R, k.out, n);
        else
            nn_relu_backward(dx2, k.R, k.out, n);
    }
    for (size_t i = 0; i < n; i++)
        assert_true(dx2[i] == 2 * dx[i]);
    free(k.x); free(k.out); free(k.R); free(dx); free(dx2);
}

static void test_relu(void **state)
{
    (void)state;
    check_act(0, 1000);
    check_act(0, 200000); /* the threaded path */
}

static void test_relu6(void **state)
{
    (void)state;
    check_act(1, 1000);
    check_act(1, 200000);
}

/* the gradient is taken from the forward OUTPUT, which allows in-place use */
static void test_inplace_and_edges(void **state)
{
    (void)state;
    float x[6] = {-1.0f, 0.0f, 2.0f, 6.0f, 7.0f, NAN};
    float d[6] = {1, 1, 1, 1, 1, 1}, g[6] = {0};
    nn_relu6_forward(x, x, 6);
    assert_true(x[0] == 0 && x[1] == 0 && x[2] == 2 && x[3] == 6 && x[4] == 6);
    assert_true(isnan(x[5])); /* NaN propagates so the trainer notices */
    nn_relu6_backward(g, d, x, 6);
    /* strictly inside (0, 6) only */
    assert_true(g[0] == 0 && g[1] == 0 && g[2] == 1 && g[3] == 0 && g[4] == 0 && g[5] == 0);
    float y[3] = {-1.0f, 0.0f, NAN}, h[3] = {0};
    nn_relu_forward(y, y, 3);
    assert_true(y[0] == 0 && y[1] == 0 && isnan(y[2]));
    nn_relu_backward(h, d, y, 3);
    assert_true(h[0] == 0 && h[1] == 0 && h[2] == 0);
}

static void test_add(void **state)
{
    (void)state;
    size_t n = 100003;
    float *a = tu_alloc_uniform(n, 3, -1, 1), *b = tu_alloc_uniform(n, 4, -1, 1);
    float *o = tu_zeros(n), *g = tu_alloc_uniform(n, 5, -1, 1), *g0 = malloc(n * sizeof *g0);
    memcpy(g0, g, n * sizeof *g);
    nn_add_forward(o, a, b, n);
    for (size_t i = 0; i < n; i++)
        assert_true(o[i] == a[i] + b[i]);
    nn_add_backward(g, o, n);
    nn_add_backward(NULL, o, n);
    for (size_t i = 0; i < n; i++)
        assert_true(g[i] == g0[i] + o[i]);
    free(a); free(b); free(o); free(g); free(g0);
}

static void test_concat(void **state)
{
    (void)state;
    int M = 37, cs[3] = {5, 1, 12}, ct = 18;
    float *in[3], *d[3];
    for (int i = 0; i < 3; i++) {
        in[i] = tu_alloc_uniform((size_t)M * cs[i], 10 + i, -1, 1);
        d[i] = tu_alloc_uniform((size_t)M * cs[i], 20 + i, -1, 1);
    }
    float *out = tu_zeros((size_t)M * ct), *dout = tu_alloc_uniform((size_t)M * ct, 30, -1, 1);
    nn_concat_forward(out, (const float *const *)in, cs, 3, M);
    for (int r = 0; r < M; r++) {
        int off = 0;
        for (int i = 0; i < 3; i++) {
            for (int c = 0; c < cs[i]; c++)
                assert_true(out[(size_t)r * ct + off + c] == in[i][(size_t)r * cs[i] + c]);
            off += cs[i];
        }
    }
    /* dinps[1] NULL: skipped; the others accumulate onto their old values */
    float *d1 = d[1];
    d[1] = NULL;
    float *old0 = malloc((size_t)M * cs[0] * sizeof *old0);
    float *old2 = malloc((size_t)M * cs[2] * sizeof *old2);
    memcpy(old0, d[0], (size_t)M * cs[0] * sizeof *old0);
    memcpy(old2, d[2], (size_t)M * cs[2] * sizeof *old2);
    nn_concat_backward((float *const *)d, dout, cs, 3, M);
    for (int r = 0; r < M; r++) {
        for (int c = 0; c < cs[0]; c++)
            assert_true(d[0][(size_t)r * cs[0] + c] ==
                        old0[(size_t)r * cs[0] + c] + dout[(size_t)r * ct + c]);
        for (int c = 0; c < cs[2]; c++)
            assert_true(d[2][(size_t)r * cs[2] + c] ==
                        old2[(size_t)r * cs[2] + c] + dout[(size_t)r * ct + 6 + c]);
    }
    d[1] = d1;
    for (int i = 0; i < 3; i++) {
        free(in[i]);
        free(d[i]);
    }
    free(out); free(dout); free(old0); free(old2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_relu6),
        cmocka_unit_test(test_inplace_and_edges),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_concat),
    };
    nn_set_threads(2);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
