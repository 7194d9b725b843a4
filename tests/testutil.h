/* Helpers shared by the cmocka tests: seeded random fills, a
 * finite-difference gradient check, scratch directories and files, and
 * the check that an error is one line naming what it is about. */
#ifndef TLSWEEP_TESTUTIL_H
#define TLSWEEP_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/base/err.h"
#include "common/weights/model_file.h"

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

/* ---- files ---------------------------------------------------------------- */

/* A fresh directory "/tmp/<prefix>XXXXXX", malloc'd; fails the test when it
 * cannot be made. */
char *tu_mkdtemp(const char *prefix);
/* Removes path and everything below it; links are removed, never followed
 * out of the tree. Returns 0 or -1. */
int tu_rm_rf(const char *path);

/* One scratch directory per test program: cmocka setup/teardown (group or
 * per test) that make and remove it, and tu_tmp(rel) = "<dir>/<rel>" in one
 * of 8 rotating static buffers (so a few can be live at once). */
int tu_tmpdir_setup(void **state);
int tu_tmpdir_teardown(void **state);
const char *tu_tmp(const char *rel);
const char *tu_tmpdir(void);

/* Writes n bytes to path (created or truncated); fails the test on error. */
void tu_write_file(const char *path, const void *data, size_t n);
/* The whole file, malloc'd with one spare byte; fails the test on error. */
unsigned char *tu_read_file(const char *path, size_t *n);
/* "<repository>/<rel>", e.g. a fuzz corpus file written by an older
 * tlsweep, in one of 8 rotating static buffers (as tu_tmp). */
const char *tu_repo_path(const char *rel);
/* Whether an atomic write's temporary of path ("<path>.tmp.<pid>.<n>",
 * common/base/fileio.h) is left in its folder. */
int tu_tmp_left(const char *path);

/* ---- a tiny model ---------------------------------------------------------- */

/* The tests' tiny model spec: MobileNetV2 (alpha 0.35) at 32x32 with a
 * GlobalAveragePooling + Dense(8, relu) + Dropout(0.2) head on 3 classes,
 * named by classes (NULL: unnamed), Keras's preprocessing for MobileNetV2.
 * model_spec_free it. */
void tu_tiny_spec(model_spec *s, const char *const *classes);

/* ---- errors --------------------------------------------------------------- */

/* tu_assert_one_line_error(&e, frag, ...): fails the test unless e holds a
 * non-empty one-line message containing every fragment; NULL fragments are
 * skipped, so callers can pass optional ones through. */
#define tu_assert_one_line_error(...) \
    tu_assert_one_line_error_(__FILE__, __LINE__, __VA_ARGS__, tu_end_)
extern const char tu_end_[];
void tu_assert_one_line_error_(const char *file, int line, const tl_err *e, ...);

#endif
