#define _GNU_SOURCE /* nftw's FTW_DEPTH, FTW_PHYS */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base/rng.h"

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

/* ---- files ---------------------------------------------------------------- */

char *tu_mkdtemp(const char *prefix)
{
    size_t n = strlen("/tmp/") + strlen(prefix) + strlen("XXXXXX") + 1;
    char *d = malloc(n);
    assert_non_null(d);
    snprintf(d, n, "/tmp/%sXXXXXX", prefix);
    if (!mkdtemp(d))
        fail_msg("mkdtemp %s: %s", d, strerror(errno));
    return d;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

int tu_rm_rf(const char *path)
{
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *scratch;

int tu_tmpdir_setup(void **state)
{
    (void)state;
    scratch = tu_mkdtemp("tlsweep-test-");
    return 0;
}

int tu_tmpdir_teardown(void **state)
{
    (void)state;
    int rc = tu_rm_rf(scratch);
    free(scratch);
    scratch = NULL;
    return rc;
}

const char *tu_tmpdir(void)
{
    assert_non_null(scratch); /* tu_tmpdir_setup not run */
    return scratch;
}

const char *tu_tmp(const char *rel)
{
    static char bufs[8][512];
    static unsigned k;
    assert_non_null(scratch); /* tu_tmpdir_setup not run */
    char *b = bufs[k++ % 8];
    if ((size_t)snprintf(b, sizeof bufs[0], "%s/%s", scratch, rel) >= sizeof bufs[0])
        fail_msg("scratch path too long: %s", rel);
    return b;
}

void tu_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    if (n)
        assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

unsigned char *tu_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s: %s", path, strerror(errno));
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    *n = (size_t)len;
    unsigned char *b = malloc(*n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* ---- errors --------------------------------------------------------------- */

const char tu_end_[] = "";

void tu_assert_one_line_error_(const char *file, int line, const tl_err *e, ...)
{
    if (!e->msg[0]) {
        print_error("empty error message\n");
        _fail(file, line);
    }
    if (strchr(e->msg, '\n')) {
        print_error("error message is more than one line: %s\n", e->msg);
        _fail(file, line);
    }
    va_list ap;
    va_start(ap, e);
    for (const char *frag; (frag = va_arg(ap, const char *)) != tu_end_;)
        if (frag && !strstr(e->msg, frag)) {
            va_end(ap);
            print_error("error message lacks '%s': %s\n", frag, e->msg);
            _fail(file, line);
        }
    va_end(ap);
}

const char *tu_repo_path(const char *rel)
{
    static char bufs[8][1024];
    static unsigned k;
    /* CMake compiles this file by its absolute path */
    const char *me = __FILE__, *tail = strstr(me, "tests/testutil.c");
    assert_non_null(tail);
    char *b = bufs[k++ % 8];
    snprintf(b, sizeof bufs[0], "%.*s%s", (int)(tail - me), me, rel);
    return b;
}

int tu_tmp_left(const char *path)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? strrchr(path, '/') + 1 : path;
    if (slash)
        *slash = '\0';
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    DIR *d = opendir(slash ? (dir[0] ? dir : "/") : ".");
    int found = 0;
    for (struct dirent *de; d && !found && (de = readdir(d));)
        found = !strncmp(de->d_name, prefix, strlen(prefix));
    if (d)
        closedir(d);
    return found;
}

void tu_tiny_spec(model_spec *s, const char *const *classes)
{
    tl_err e = {0};
    model_spec_init(s);
    assert_int_equal(model_spec_set_str(&s->backbone, "mobilenet_v2", &e), 0);
    s->alpha = 0.35f;
    s->height = s->width = 32;
    model_head_op ops[] = {{MODEL_HEAD_GAP, 0, MODEL_ACT_LINEAR, 0},
                           {MODEL_HEAD_DENSE, 8, MODEL_ACT_RELU, 0},
                           {MODEL_HEAD_DROPOUT, 0, MODEL_ACT_LINEAR, 0.2f}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(model_spec_add_head(s, ops[i], &e), 0);
    s->num_classes = 3;
    for (int i = 0; classes && i < 3; i++)
        assert_int_equal(model_spec_add_class(s, classes[i], &e), 0);
    s->preproc = MODEL_PREPROC_TF; /* x / 127.5 - 1, MobileNetV2's in Keras */
}
