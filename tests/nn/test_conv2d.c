/* conv2d (im2col + GEMM, grouped, depthwise) against a direct-loop
 * reference written here, plus finite-difference gradient checks. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/nn/nn.h"

enum { PAD_VALID, PAD_SAME, PAD_SYM, PAD_EXPLICIT };

typedef struct {
    const char *name;
    int n, h, w, c, oc, groups, kh, kw, sh, sw;
    int pad_mode;
    nn_pad pad;     /* PAD_SYM: top/left are ph/pw; PAD_EXPLICIT: used as is */
    int use_bias;
    int probes;     /* finite-difference probes per tensor */
} conv_case;

static const conv_case cases[] = {
    {"1x1", 2, 5, 4, 6, 7, 1, 1, 1, 1, 1, PAD_VALID, {0}, 1, 40},
    {"1x1 groups=2", 2, 3, 4, 6, 4, 2, 1, 1, 1, 1, PAD_VALID, {0}, 1, 40},
    {"1x1 stride 2", 2, 7, 6, 5, 3, 1, 1, 1, 2, 2, PAD_VALID, {0}, 0, 40},
    {"3x3 s1 sym1", 2, 6, 5, 4, 5, 1, 3, 3, 1, 1, PAD_SYM, {1, 1, 1, 1}, 1, 40},
    {"3x3 s2 same (asymmetric)", 2, 8, 6, 3, 4, 1, 3, 3, 2, 2, PAD_SAME, {0}, 1, 40},
    {"3x3 s2 sym1", 1, 9, 7, 3, 4, 1, 3, 3, 2, 2, PAD_SYM, {1, 1, 1, 1}, 1, 40},
    {"3x3 valid", 1, 6, 7, 3, 2, 1, 3, 3, 1, 1, PAD_VALID, {0}, 1, 40},
    {"5x3 s(2,1) explicit pads", 2, 9, 6, 3, 4, 1, 5, 3, 2, 1, PAD_EXPLICIT, {2, 0, 1, 3}, 1, 40},
    {"7x7 s2 stem", 1, 12, 11, 3, 5, 1, 7, 7, 2, 2, PAD_SYM, {3, 3, 3, 3}, 1, 40},
    {"groups=2", 2, 5, 5, 4, 6, 2, 3, 3, 1, 1, PAD_SYM, {1, 1, 1, 1}, 1, 40},
    {"groups=3 s2 same", 2, 7, 8, 6, 9, 3, 3, 3, 2, 2, PAD_SAME, {0}, 1, 40},
    {"channel multiplier (g=c, oc=2c)", 1, 5, 6, 3, 6, 3, 3, 3, 1, 1, PAD_SAME, {0}, 1, 40},
    {"pad wider than kernel", 1, 4, 4, 2, 3, 1, 2, 2, 1, 1, PAD_EXPLICIT, {3, 1, 0, 3}, 1, 40},
    {"depthwise 3x3 s2 same", 2, 8, 7, 5, 5, 5, 3, 3, 2, 2, PAD_SAME, {0}, 1, 40},
    {"depthwise 3x3 s1 sym1 c37", 2, 6, 9, 37, 37, 37, 3, 3, 1, 1, PAD_SYM, {1, 1, 1, 1}, 1, 40},
    {"depthwise 5x3 s(1,2) explicit", 1, 7, 10, 19, 19, 19, 5, 3, 1, 2, PAD_EXPLICIT, {1, 3, 2, 0}, 0, 40},
    {"depthwise 3x3 s2 c32 batch 3", 3, 11, 9, 32, 32, 32, 3, 3, 2, 2, PAD_SAME, {0}, 1, 40},
    /* KH*KW*C above the depthwise per-thread partials, C above the bias
     * slice: both work in channel slices */
    {"depthwise 3x3 c1100 (sliced)", 2, 4, 5, 1100, 1100, 1100, 3, 3, 1, 1, PAD_SAME, {0}, 1, 40},
    /* col larger than the 4M-float cap: several chunks, boundaries inside
     * an image (100 output rows per image, ~97 rows per chunk) */
    {"chunked 3x3 s1 same", 3, 100, 100, 48, 2, 1, 3, 3, 1, 1, PAD_SAME, {0}, 1, 12},
    {"chunked groups=3 s2", 2, 160, 150, 48, 3, 3, 3, 3, 2, 2, PAD_SAME, {0}, 1, 12},
};

#define NCASES (sizeof cases / sizeof cases[0])

static nn_conv2d_shape case_shape(const conv_case *k)
{
    nn_conv2d_shape s = {0};
    s.n = k->n; s.h = k->h; s.w = k->w; s.c = k->c;
    s.oc = k->oc; s.groups = k->groups;
    s.kh = k->kh; s.kw = k->kw; s.sh = k->sh; s.sw = k->sw;
    switch (k->pad_mode) {
    case PAD_SAME: s.pad = nn_pad_same(k->h, k->w, k->kh, k->kw, k->sh, k->sw); break;
    case PAD_SYM: s.pad = nn_pad_sym(k->pad.top, k->pad.left); break;
    case PAD_EXPLICIT: s.pad = k->pad; break;
    default: break;
    }
    assert_int_equal(nn_conv2d_init(&s), 0);
    return s;
}

static size_t inp_size(const nn_conv2d_shape *s) { return (size_t)s->n * s->h * s->w * s->c; }
static size_t out_size(const nn_conv2d_shape *s) { return (size_t)s->n * s->oh * s->ow * s->oc; }
static size_t w_size(const nn_conv2d_shape *s)
{
    return (size_t)s->kh * s->kw * (s->c / s->groups) * s->oc;
}

/* ---- direct-loop reference, in double ---------------------------------- */

static void ref_forward(double *out, const float *inp, const float *w, const float *bias,
                        const nn_conv2d_shape *s)
{
    int cg = s->c / s->groups, ocg = s->oc / s->groups;
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int o = 0; o < s->oc; o++) {
                    int g = o / ocg;
                    double acc = bias ? bias[o] : 0.0;
                    for (int ki = 0; ki < s->kh; ki++)
                        for (int kj = 0; kj < s->kw; kj++) {
                            int ih = oh * s->sh - s->pad.top + ki;
                            int iw = ow * s->sw - s->pad.left + kj;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                                continue;
                            for (int ci = 0; ci < cg; ci++)
                                acc += (double)inp[(((size_t)n * s->h + ih) * s->w + iw) * s->c + g * cg + ci] *
                                       w[(((size_t)ki * s->kw + kj) * cg + ci) * s->oc + o];
                        }
                    out[(((size_t)n * s->oh + oh) * s->ow + ow) * s->oc + o] = acc;
                }
}

static void ref_backward(double *dinp, double *dw, double *db, const float *dout,
                         const float *inp, const float *w, const nn_conv2d_shape *s)
{
    int cg = s->c / s->groups, ocg = s->oc / s->groups;
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int o = 0; o < s->oc; o++) {
                    int g = o / ocg;
                    double d = dout[(((size_t)n * s->oh + oh) * s->ow + ow) * s->oc + o];
                    db[o] += d;
                    for (int ki = 0; ki < s->kh; ki++)
                        for (int kj = 0; kj < s->kw; kj++) {
                            int ih = oh * s->sh - s->pad.top + ki;
                            int iw = ow * s->sw - s->pad.left + kj;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                                continue;
                            for (int ci = 0; ci < cg; ci++) {
                                size_t ii = (((size_t)n * s->h + ih) * s->w + iw) * s->c + g * cg + ci;
                                size_t wi = (((size_t)ki * s->kw + kj) * cg + ci) * s->oc + o;
                                dinp[ii] += d * w[wi];
                                dw[wi] += d * inp[ii];
                            }
                        }
                }
}

/* max |a - b| / (1 + |b|) */
static double max_rel_err(const float *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]) / (1.0 + fabs(b[i]));
        if (!(e <= m))
            m = isnan(e) ? INFINITY : e;
    }
    return m;
}

/* ---- one case's tensors --------------------------------------------------- */

typedef struct {
    nn_conv2d_shape s;
    float *inp, *w, *bias, *out, *col, *R;
    size_t ni, nw, no, ncol;
} conv_fixture;

static void fixture_init(conv_fixture *f, const conv_case *k, uint64_t seed)
{
    f->s = case_shape(k);
    f->ni = inp_size(&f->s);
    f->nw = w_size(&f->s);
    f->no = out_size(&f->s);
    f->ncol = nn_conv2d_col_size(&f->s);
    f->inp = tu_alloc_uniform(f->ni, seed, -1.0f, 1.0f);
    f->w = tu_alloc_uniform(f->nw, seed + 1, -0.5f, 0.5f);
    f->bias = k->use_bias ? tu_alloc_uniform((size_t)f->s.oc, seed + 2, -0.5f, 0.5f) : NULL;
    f->R = tu_alloc_uniform(f->no, seed + 3, -1.0f, 1.0f);
    f->out = tu_zeros(f->no);
    /* exactly col_size floats, so the sanitizer build catches overruns */
    f->col = f->ncol ? malloc(f->ncol * sizeof(float)) : NULL;
    if (f->ncol)
        assert_non_null(f->col);
}

static void fixture_free(conv_fixture *f)
{
    free(f->inp); free(f->w); free(f->bias); free(f->R); free(f->out); free(f->col);
}

/* sum(out * R): its gradient w.r.t. everything is backward with dout = R */
static double conv_loss(void *ctx)
{
    conv_fixture *f = ctx;
    nn_conv2d_forward(f->out, f->inp, f->w, f->bias, f->col, &f->s);
    return tu_dot(f->out, f->R, f->no);
}

/* ---- tests --------------------------------------------------------------- */

static void test_init_rejects(void **state)
{
    (void)state;
    nn_conv2d_shape ok = {.n = 1, .h = 5, .w = 5, .c = 4, .oc = 4, .groups = 2,
                          .kh = 3, .kw = 3, .sh = 1, .sw = 1};
    nn_conv2d_shape s = ok;
    assert_int_equal(nn_conv2d_init(&s), 0);
    assert_int_equal(s.oh, 3);
    assert_int_equal(s.ow, 3);
    s = ok; s.h = 2;
    assert_int_equal(nn_conv2d_init(&s), -1);      /* kernel taller than input */
    s = ok; s.h = 2; s.pad = nn_pad_sym(1, 0);
    assert_int_equal(nn_conv2d_init(&s), 0);       /* ...unless padded */
    assert_int_equal(s.oh, 2);
    s = ok; s.c = 5;
    assert_int_equal(nn_conv2d_init(&s), -1);      /* c % groups */
    s = ok; s.oc = 3;
    assert_int_equal(nn_conv2d_init(&s), -1);      /* oc % groups */
    s = ok; s.sh = 0;
    assert_int_equal(nn_conv2d_init(&s), -1);
    s = ok; s.pad.left = -1;
    assert_int_equal(nn_conv2d_init(&s), -1);
    s = ok; s.n = 0;
    assert_int_equal(nn_conv2d_init(&s), -1);
    /* a depthwise kernel beyond the backward's per-thread partials */
    nn_conv2d_shape dw = {.n = 1, .h = 100, .w = 100, .c = 4, .oc = 4, .groups = 4,
                          .kh = 100, .kw = 100, .sh = 1, .sw = 1};
    assert_int_equal(nn_conv2d_init(&dw), -1);
    dw.kh = dw.kw = 90;
    assert_int_equal(nn_conv2d_init(&dw), 0);
}

static void test_col_size(void **state)
{
    (void)state;
    /* plain GEMM and depthwise need no scratch */
    nn_conv2d_shape s = {.n = 4, .h = 8, .w = 8, .c = 16, .oc = 32, .groups = 1,
                         .kh = 1, .kw = 1, .sh = 1, .sw = 1};
    assert_int_equal(nn_conv2d_init(&s), 0);
    assert_int_equal(nn_conv2d_col_size(&s), 0);
    s.groups = 16; s.oc = 16; s.kh = s.kw = 3; s.pad = nn_pad_sym(1, 1);
    assert_int_equal(nn_conv2d_init(&s), 0);
    assert_int_equal(nn_conv2d_col_size(&s), 0);
    /* small: the whole batch in one chunk */
    s.groups = 1; s.oc = 8;
    assert_int_equal(nn_conv2d_init(&s), 0);
    assert_int_equal(nn_conv2d_col_size(&s), (size_t)4 * 8 * 8 * 9 * 16);
    /* big: capped near 4M floats, a whole number of output rows */
    nn_conv2d_shape b = {.n = 32, .h = 56, .w = 56, .c = 64, .oc = 64, .groups = 1,
                         .kh = 3, .kw = 3, .sh = 1, .sw = 1, .pad = nn_pad_sym(1, 1)};
    assert_int_equal(nn_conv2d_init(&b), 0);
    size_t row = (size_t)56 * 9 * 64, cs = nn_conv2d_col_size(&b);
    assert_true(cs <= ((size_t)4 << 20));
    assert_true(cs >= ((size_t)4 << 20) - row);
    assert_int_equal(cs % row, 0);
    /* one output row bigger than the cap: one row it is */
    nn_conv2d_shape h = {.n = 1, .h = 8, .w = 4096, .c = 512, .oc = 4, .groups = 1,
                         .kh = 3, .kw = 3, .sh = 1, .sw = 1, .pad = nn_pad_sym(1, 1)};
    assert_int_equal(nn_conv2d_init(&h), 0);
    assert_int_equal(nn_conv2d_col_size(&h), (size_t)4096 * 9 * 512);
}

static void check_case(const conv_case *k, uint64_t seed)
{
    conv_fixture f;
    fixture_init(&f, k, seed);
    const nn_conv2d_shape *s = &f.s;

    /* forward vs direct loops */
    double *ref = malloc(f.no * sizeof *ref);
    assert_non_null(ref);
    ref_forward(ref, f.inp, f.w, f.bias, s);
    nn_conv2d_forward(f.out, f.inp, f.w, f.bias, f.col, s);
    double e = max_rel_err(f.out, ref, f.no);
    if (e > 1e-5) {
        print_error("%s: forward error %.3g\n", k->name, e);
        fail();
    }

    /* backward (dout = R) vs direct loops, on every element */
    double *rdi = calloc(f.ni, sizeof *rdi), *rdw = calloc(f.nw, sizeof *rdw);
    double *rdb = calloc((size_t)s->oc, sizeof *rdb);
    assert_true(rdi && rdw && rdb);
    ref_backward(rdi, rdw, rdb, f.R, f.inp, f.w, s);
    float *di = tu_zeros(f.ni), *dw = tu_zeros(f.nw), *db = tu_zeros((size_t)s->oc);
    nn_conv2d_backward(di, dw, db, f.R, f.inp, f.w, f.col, s);
    double ei = max_rel_err(di, rdi, f.ni), ew = max_rel_err(dw, rdw, f.nw);
    double eb = max_rel_err(db, rdb, (size_t)s->oc);
    if (ei > 1e-4 || ew > 1e-4 || eb > 1e-4) {
        print_error("%s: backward error dinp %.3g dweight %.3g dbias %.3g\n",
                    k->name, ei, ew, eb);
        fail();
    }

    /* finite differences of sum(out * R) */
    char what[160];
    snprintf(what, sizeof what, "%s dinp", k->name);
    tu_gradcheck(what, f.inp, di, f.ni, conv_loss, &f, 1e-2f, 1e-2, 1e-2, (size_t)k->probes);
    snprintf(what, sizeof what, "%s dweight", k->name);
    tu_gradcheck(what, f.w, dw, f.nw, conv_loss, &f, 1e-2f, 1e-2, 1e-2, (size_t)k->probes);
    if (f.bias) {
        snprintf(what, sizeof what, "%s dbias", k->name);
        tu_gradcheck(what, f.bias, db, (size_t)s->oc, conv_loss, &f, 1e-2f, 1e-2, 1e-2,
                     (size_t)k->probes);
    }

    free(ref); free(rdi); free(rdw); free(rdb);
    free(di); free(dw); free(db);
    fixture_free(&f);
}

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++)
        check_case(&cases[i], 1000 + 10 * i);
}

/* Backward adds to whatever is there: starting from G0, one call gives
 * G0 + g, a second G0 + 2g. Also with each gradient pointer NULL. */
static void test_accumulates_and_null(void **state)
{
    (void)state;
    static const int picks[] = {0, 2, 3, 4, 10, 13, 14};
    for (size_t t = 0; t < sizeof picks / sizeof picks[0]; t++) {
        const conv_case *k = &cases[picks[t]];
        conv_fixture f;
        fixture_init(&f, k, 77 + t);
        const nn_conv2d_shape *s = &f.s;
        size_t nb = (size_t)s->oc;
        float *g1[3], *g2[3], *g0[3];
        size_t sz[3] = {f.ni, f.nw, nb};
        for (int j = 0; j < 3; j++) {
            g0[j] = tu_alloc_uniform(sz[j], 5 + j, -1.0f, 1.0f);
            g1[j] = tu_zeros(sz[j]);
            g2[j] = tu_zeros(sz[j]);
            memcpy(g2[j], g0[j], sz[j] * sizeof(float));
        }
        /* g1 = g from zero */
        nn_conv2d_backward(g1[0], g1[1], g1[2], f.R, f.inp, f.w, f.col, s);
        nn_conv2d_backward(g2[0], g2[1], g2[2], f.R, f.inp, f.w, f.col, s);
        nn_conv2d_backward(g2[0], g2[1], g2[2], f.R, f.inp, f.w, f.col, s);
        for (int j = 0; j < 3; j++)
            for (size_t i = 0; i < sz[j]; i++) {
                double want = (double)g0[j][i] + 2.0 * g1[j][i];
                if (fabs(g2[j][i] - want) > 1e-4 * (1.0 + fabs(want))) {
                    print_error("%s: tensor %d [%zu] after two calls %.7g, want %.7g\n",
                                k->name, j, i, g2[j][i], want);
                    fail();
                }
            }
        /* each pointer NULL on its own; the others must be unaffected */
        for (int skip = 0; skip < 3; skip++) {
            float *g[3];
            for (int j = 0; j < 3; j++)
                g[j] = j == skip ? NULL : tu_zeros(sz[j]);
            nn_conv2d_backward(g[0], g[1], g[2], f.R, f.inp, f.w, f.col, s);
            for (int j = 0; j < 3; j++)
                if (g[j]) {
                    assert_memory_equal(g[j], g1[j], sz[j] * sizeof(float));
                    free(g[j]);
                }
        }
        nn_conv2d_backward(NULL, NULL, NULL, f.R, f.inp, f.w, f.col, s);
        for (int j = 0; j < 3; j++) {
            free(g0[j]); free(g1[j]); free(g2[j]);
        }
        fixture_free(&f);
    }
}

/* Same inputs, same thread count: bit-identical results, every time. */
static void test_deterministic(void **state)
{
    (void)state;
    static const int picks[] = {4, 14, 16, 17, 18};
    nn_set_threads(2);
    for (size_t t = 0; t < sizeof picks / sizeof picks[0]; t++) {
        conv_fixture f;
        fixture_init(&f, &cases[picks[t]], 500 + t);
        const nn_conv2d_shape *s = &f.s;
        float *o2 = tu_zeros(f.no);
        float *a[3] = {tu_zeros(f.ni), tu_zeros(f.nw), tu_zeros((size_t)s->oc)};
        float *b[3] = {tu_zeros(f.ni), tu_zeros(f.nw), tu_zeros((size_t)s->oc)};
        size_t sz[3] = {f.ni, f.nw, (size_t)s->oc};
        nn_conv2d_forward(f.out, f.inp, f.w, f.bias, f.col, s);
        nn_conv2d_forward(o2, f.inp, f.w, f.bias, f.col, s);
        assert_memory_equal(f.out, o2, f.no * sizeof(float));
        nn_conv2d_backward(a[0], a[1], a[2], f.R, f.inp, f.w, f.col, s);
        nn_conv2d_backward(b[0], b[1], b[2], f.R, f.inp, f.w, f.col, s);
        for (int j = 0; j < 3; j++) {
            assert_memory_equal(a[j], b[j], sz[j] * sizeof(float));
            free(a[j]); free(b[j]);
        }
        free(o2);
        fixture_free(&f);
    }
    nn_set_threads(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_rejects),
        cmocka_unit_test(test_col_size),
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_accumulates_and_null),
        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
