/* Inverted dropout: identity at rate 0, the expected keep fraction and
 * scale, a mask that is a function of (seed, index) alone, and a backward
 * that applies the mask. */
#include "tests/testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/rng.h"
#include "worker/nn/nn.h"

static void test_rate_zero_is_identity(void **state)
{
    (void)state;
    size_t n = 10000;
    float *x = tu_alloc_uniform(n, 1, -1, 1), *o = tu_zeros(n), *m = tu_zeros(n);
    nn_dropout_forward(o, m, x, n, 0.0f, 7);
    assert_memory_equal(o, x, n * sizeof *o);
    for (size_t i = 0; i < n; i++)
        assert_true(m[i] == 1.0f);
    free(x); free(o); free(m);
}

static void test_keep_fraction_and_scale(void **state)
{
    (void)state;
    size_t n = 200000; /* above the threaded threshold */
    float rates[3] = {0.1f, 0.5f, 0.8f};
    float *x = tu_alloc_uniform(n, 2, 0.5f, 1.5f), *o = tu_zeros(n), *m = tu_zeros(n);
    for (int r = 0; r < 3; r++) {
        float rate = rates[r], scale = 1.0f / (1.0f - rate);
        nn_dropout_forward(o, m, x, n, rate, 11);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (m[i] != 0.0f) {
                kept++;
                assert_true(m[i] == scale);
            }
            assert_true(o[i] == x[i] * m[i]);
        }
        /* binomial: 5 standard deviations is about 0.0056 at p = 0.5 */
        double frac = (double)kept / n, sd = sqrt(rate * (1 - rate) / n);
        if (fabs(frac - (1 - rate)) > 5 * sd)
            print_error("rate %.2f: kept %.4f\n", rate, frac);
        assert_true(fabs(frac - (1 - rate)) <= 5 * sd);
        /* the expectation is preserved: mean of the mask is about 1 */
        double ms = 0;
        for (size_t i = 0; i < n; i++)
            ms += m[i];
        assert_true(fabs(ms / n - 1.0) < 5 * sd * scale);
    }
    /* rate 1 drops everything, without an infinite scale */
    nn_dropout_forward(o, m, x, n, 1.0f, 11);
    for (size_t i = 0; i < n; i++)
        assert_true(o[i] == 0.0f && m[i] == 0.0f);
    free(x); free(o); free(m);
}

/* same seed, same mask, for any thread count; another seed, another mask;
 * the mask is what rng_uniform_at says it is */
static void test_mask_is_pure(void **state)
{
    (void)state;
    size_t n = 100000;
    float *x = tu_alloc_uniform(n, 3, -1, 1);
    float *m1 = tu_zeros(n), *m2 = tu_zeros(n), *m3 = tu_zeros(n), *o = tu_zeros(n);
    nn_set_threads(1);
    nn_dropout_forward(o, m1, x, n, 0.3f, 42);
    nn_set_threads(3);
    nn_dropout_forward(o, m2, x, n, 0.3f, 42);
    nn_dropout_forward(o, m3, x, n, 0.3f, 43);
    nn_set_threads(1);
    assert_memory_equal(m1, m2, n * sizeof *m1);
    size_t same = 0;
    for (size_t i = 0; i < n; i++) {
        same += m1[i] == m3[i];
        assert_true((m1[i] != 0) == (rng_uniform_at(42, i) >= 0.3f));
    }
    assert_true(same < n * 0.7); /* independent masks agree on ~58% */
    /* a NULL mask gives the same output */
    float *o2 = tu_zeros(n);
    nn_dropout_forward(o2, NULL, x, n, 0.3f, 43);
    assert_memory_equal(o, o2, n * sizeof *o);
    free(x); free(m1); free(m2); free(m3); free(o); free(o2);
}

static void test_backward_uses_mask(void **state)
{
    (void)state;
    size_t n = 5000;
    float *x = tu_alloc_uniform(n, 4, -1, 1), *o = tu_zeros(n), *m = tu_zeros(n);
    float *dy = tu_alloc_uniform(n, 5, -1, 1), *dx = tu_alloc_uniform(n, 6, -1, 1);
    float *dx0 = malloc(n * sizeof *dx0);
    memcpy(dx0, dx, n * sizeof *dx);
    nn_dropout_forward(o, m, x, n, 0.4f, 9);
    nn_dropout_backward(dx, dy, m, n);
    nn_dropout_backward(dx, dy, m, n);
    for (size_t i = 0; i < n; i++) {
        float one = dy[i] * (m[i] != 0 ? 1.0f / 0.6f : 0.0f);
        assert_float_equal(dx[i], dx0[i] + 2 * one, 1e-5);
    }
    free(x); free(o); free(m); free(dy); free(dx); free(dx0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_zero_is_identity),
        cmocka_unit_test(test_keep_fraction_and_scale),
        cmocka_unit_test(test_mask_is_pure),
        cmocka_unit_test(test_backward_uses_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
