#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    rng_state r;
    rng_init(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * rng_uniform(&r);
}

float *tu_alloc_uniform(size_t n, uint64_t seed, float lo, float hi)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    tu_fill_uniform(x, n, seed, lo, hi);
    return x;
}

float *tu_zeros(size_t n)
{
    float *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

double tu_dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

double tu_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || isnan(d))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

double tu_gradcheck(const char *what, float *x, const float *grad, size_t n,
                    tu_scalar_fn f, void *ctx, float eps, double atol, double rtol,
                    size_t max_checks)
{
    size_t checks = n < max_checks ? n : max_checks;
    double worst = 0;
    size_t worst_i = 0;
    double worst_fd = 0, worst_g = 0;
    int failed = 0;
    for (size_t k = 0; k < checks; k++) {
        /* spread the probes over the whole tensor, deterministically */
        size_t i = checks == n ? k : (size_t)(((unsigned long long)k * 2654435761ULL + 17) % n);
        float orig = x[i];
        x[i] = orig + eps;
        double fp = f(ctx);
        x[i] = orig - eps;
        double fm = f(ctx);
        x[i] = orig;
        double fd = (fp - fm) / (2.0 * (double)eps);
        double g = grad[i];
        double err = fabs(fd - g);
        double lim = atol + rtol * fmax(fabs(fd), fabs(g));
        double rel = err / (lim > 0 ? lim : 1);
        if (rel > worst || isnan(err)) {
            worst = isnan(err) ? INFINITY : rel;
            worst_i = i;
            worst_fd = fd;
            worst_g = g;
        }
        if (!(err <= lim))
            failed = 1;
    }
    if (failed) {
        print_error("%s: gradient mismatch at [%zu]: finite difference %.7g, analytic %.7g\n",
                    what, worst_i, worst_fd, worst_g);
        fail();
    }
    return worst;
}
