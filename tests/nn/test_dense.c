/* Dense layer against a direct double-precision product and finite
 * differences of inputs, weights and bias. */
#include "tests/testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/nn/nn.h"

typedef struct {
    int N, IN, OUT;
    float *x, *w, *b, *out, *R;
} dense_ctx;

static double dense_fn(void *p)
{
    dense_ctx *k = p;
    nn_dense_forward(k->out, k->x, k->w, k->b, k->N, k->IN, k->OUT);
    return tu_dot(k->out, k->R, (size_t)k->N * k->OUT);
}

static void check_dense(int N, int IN, int OUT, int with_bias)
{
    size_t nx = (size_t)N * IN, nw = (size_t)IN * OUT, no = (size_t)N * OUT;
    dense_ctx k = {N, IN, OUT, tu_alloc_uniform(nx, 1, -1, 1), tu_alloc_uniform(nw, 2, -1, 1),
                   with_bias ? tu_alloc_uniform(OUT, 3, -1, 1) : NULL,
                   tu_alloc_uniform(no, 4, 50, 60), /* garbage the forward must overwrite */
                   tu_alloc_uniform(no, 5, -1, 1)};
    dense_fn(&k);
    double worst = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            double s = with_bias ? k.b[o] : 0.0;
            for (int i = 0; i < IN; i++)
                s += (double)k.x[(size_t)n * IN + i] * k.w[(size_t)i * OUT + o];
            worst = fmax(worst, fabs(s - k.out[(size_t)n * OUT + o]));
        }
    assert_true(worst < 1e-4);

    float *dx = tu_zeros(nx), *dw = tu_zeros(nw), *db = tu_zeros(OUT);
    nn_dense_backward(dx, dw, with_bias ? db : NULL, k.R, k.x, k.w, N, IN, OUT);
    /* the function is linear in each argument: differences are exact up to rounding */
    tu_gradcheck("dense dinp", k.x, dx, nx, dense_fn, &k, 1e-2f, 1e-3, 1e-3, 200);
    tu_gradcheck("dense dweight", k.w, dw, nw, dense_fn, &k, 1e-2f, 1e-3, 1e-3, 200);
    if (with_bias)
        tu_gradcheck("dense dbias", k.b, db, OUT, dense_fn, &k, 1e-2f, 1e-3, 1e-3, 200);

    /* accumulates; NULL gradients are skipped */
    float *dx2 = tu_zeros(nx), *dw2 = tu_zeros(nw), *db2 = tu_zeros(OUT);
    nn_dense_backward(dx2, dw2, db2, k.R, k.x, k.w, N, IN, OUT);
    nn_dense_backward(dx2, NULL, NULL, k.R, k.x, k.w, N, IN, OUT);
    nn_dense_backward(NULL, dw2, db2, k.R, k.x, k.w, N, IN, OUT);
    for (size_t i = 0; i < nx; i++)
        assert_float_equal(dx2[i], 2 * dx[i], 1e-5);
    for (size_t i = 0; i < nw; i++)
        assert_float_equal(dw2[i], 2 * dw[i], 1e-5);
    if (with_bias)
        for (int o = 0; o < OUT; o++)
            assert_float_equal(db2[o], 2 * db[o], 1e-5);
    free(k.x); free(k.w); free(k.b); free(k.out); free(k.R);
    free(dx); free(dw); free(db); free(dx2); free(dw2); free(db2);
}

static void test_dense(void **state)
{
    (void)state;
    check_dense(4, 7, 5, 1);
    check_dense(3, 16, 10, 0);
    check_dense(1, 1, 1, 1);
    check_dense(33, 129, 65, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
