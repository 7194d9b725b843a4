/* Helpers shared by the cmocka tests: seeded random fills and a
 * finite-difference gradient check. */
#ifndef TLSWEEP_TESTUTIL_H
#define TLSWEEP_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
float *tu_alloc_uniform(size_t n, uint64_t seed, float lo, float hi);
float *tu_zeros(size_t n);

/* A scalar function of whatever the context points at, computed in double
 * where it can be: typically sum(out * R) for a fixed random R, so that the
 * analytic gradient is the backward pass with dout = R. */
typedef double (*tu_scalar_fn)(void *ctx);

/* Perturbs x[i] by +-eps for up to max_checks indices (all when n is
 * smaller, else a deterministic spread) and compares the central difference
 * with grad[i]: |fd - g| <= atol + rtol * max(|fd|, |g|). Prints the worst
 * index and fails the cmocka test on a mismatch. Returns the worst error. */
double tu_gradcheck(const char *what, float *x, const float *grad, size_t n,
                    tu_scalar_fn f, void *ctx, float eps, double atol, double rtol,
                    size_t max_checks);

/* sum(a[i] * b[i]) in double. */
double tu_dot(const float *a, const float *b, size_t n);
/* max |a - b| */
double tu_max_abs_diff(const float *a, const float *b, size_t n);

#endif
