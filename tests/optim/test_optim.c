/* Optimizers against a double-precision reference written from the Keras 3
 * update rules (keras/src/optimizers/), schedules at chosen steps,
 * slicing, checkpoint round trip, and convergence on a quadratic bowl. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/optim/optim.h"

#define N 37     /* odd: exercises the vector tails */
#define STEPS 6

/* ---- reference, in double, one function per rule ------------------------ */

typedef struct {
    double w[N], m[N], v[N];
    double scale[N]; /* |w0| + sum |dw|: what float rounding is relative to */
    long t;          /* completed steps */
} ref_state;

static double ref_lr(const optim_cfg *c, long step)
{
    const optim_sched *s = &c->sched;
    if (s->kind == OPTIM_SCHED_STEP)
        return c->learning_rate * pow(s->factor, floor((double)step / (double)s->every));
    if (s->kind == OPTIM_SCHED_COSINE) {
        if (step < s->warmup_steps)
            return s->warmup_from + (c->learning_rate - s->warmup_from) * step / (double)s->warmup_steps;
        double k = fmin((double)(step - s->warmup_steps), (double)s->decay_steps);
        return c->learning_rate *
               (s->alpha + (1 - s->alpha) * 0.5 * (1 + cos(M_PI * k / (double)s->decay_steps)));
    }
    return c->learning_rate;
}

/* decay[i] says whether parameter i is weight-decayed */
static void ref_step(const optim_cfg *c, ref_state *r, const float *g, const int *decay)
{
    double lr = ref_lr(c, r->t);
    for (int i = 0; i < N; i++) {
        double gi = g[i], w0 = r->w[i];
        if (decay[i])
            r->w[i] -= lr * c->weight_decay * r->w[i];
        switch (c->kind) {
        case OPTIM_ADAM: {
            double t = r->t + 1;
            double lr_t = lr * sqrt(1 - pow(c->beta2, t)) / (1 - pow(c->beta1, t));
            r->m[i] = c->beta1 * r->m[i] + (1 - c->beta1) * gi;
            r->v[i] = c->beta2 * r->v[i] + (1 - c->beta2) * gi * gi;
            r->w[i] -= lr_t * r->m[i] / (sqrt(r->v[i]) + c->epsilon);
            break;
        }
        case OPTIM_SGD:
            r->m[i] = c->momentum * r->m[i] - lr * gi;
            if (c->nesterov)
                r->w[i] += c->momentum * r->m[i] - lr * gi;
            else
                r->w[i] += r->m[i];
            break;
        case OPTIM_RMSPROP:
            /* Keras 3: increment = lr * g / sqrt(ms + eps); with momentum,
             * mom = momentum * mom + increment, w -= mom. */
            r->v[i] = c->rho * r->v[i] + (1 - c->rho) * gi * gi;
            r->m[i] = c->momentum * r->m[i] + lr * gi / sqrt(r->v[i] + c->epsilon);
            r->w[i] -= r->m[i];
            break;
        }
        r->scale[i] += fabs(r->w[i] - w0);
    }
    r->t++;
}

/* Runs STEPS steps of both, with fresh random gradients each step, and
 * compares the weights after every step. The slice split (at `split`)
 * decays only the first part when wd_first is set. */
static void compare(const char *what, optim_cfg cfg, size_t split, int wd_first, double rtol)
{
    optim o;
    tl_err e = {0};
    assert_int_equal(optim_init(&o, &cfg, N, &e), 0);
    ref_state r;
    memset(&r, 0, sizeof r);
    float *w = tu_alloc_uniform(N, 11, -1.0f, 1.0f);
    for (int i = 0; i < N; i++)
        r.w[i] = w[i], r.scale[i] = fabs(w[i]);
    int decay[N];
    for (int i = 0; i < N; i++)
        decay[i] = wd_first ? (size_t)i < split : 1;
    float g[N];
    for (int s = 0; s < STEPS; s++) {
        /* gradients across several magnitudes, some sign flips */
        tu_fill_uniform(g, N, 100 + (uint64_t)s, -1.0f, 1.0f);
        for (int i = 0; i < N; i++)
            g[i] *= (float)pow(10.0, (i % 5) - 2);
        ref_step(&cfg, &r, g, decay);
        optim_step(&o, w, g, 0, split, 1);
        optim_step(&o, w, g, split, N - split, !wd_first);
        optim_advance(&o);
        assert_int_equal(optim_iterations(&o), s + 1);
        for (int i = 0; i < N; i++) {
            double err = fabs(w[i] - r.w[i]);
            if (!(err <= rtol * r.scale[i])) {
                print_error("%s: step %d w[%d] = %.9g, reference %.9g\n", what, s, i, (double)w[i], r.w[i]);
                fail();
            }
        }
    }
    /* the update moved every weight */
    float *w0 = tu_alloc_uniform(N, 11, -1.0f, 1.0f);
    for (int i = 0; i < N; i++)
        assert_true(w[i] != w0[i]);
    free(w0);
    free(w);
    optim_free(&o);
}

static void test_adam(void **st)
{
    (void)st;
    optim_cfg c = optim_cfg_default(OPTIM_ADAM);
    assert_true(c.learning_rate == 0.001 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.epsilon == 1e-7);
    compare("adam", c, 10, 0, 2e-6);
    c.learning_rate = 0.05;
    c.beta1 = 0.8;
    c.beta2 = 0.99;
    c.epsilon = 1e-3;
    compare("adam custom", c, 16, 0, 2e-6);
}

static void test_adamw(void **st)
{
    (void)st;
    optim_cfg c = optim_cfg_default(OPTIM_ADAM);
    c.learning_rate = 0.01;
    c.weight_decay = 0.1;
    compare("adamw all", c, 5, 0, 2e-6);
    compare("adamw first slice", c, 20, 1, 2e-6);
}

static void test_sgd(void **st)
{
    (void)st;
    optim_cfg c = optim_cfg_default(OPTIM_SGD);
    assert_true(c.learning_rate == 0.01 && c.momentum == 0 && !c.nesterov);
    c.learning_rate = 0.1;
    compare("sgd", c, 3, 0, 1e-6);
    c.momentum = 0.9;
    compare("sgd momentum", c, 3, 0, 1e-6);
    c.nesterov = 1;
    compare("sgd nesterov", c, 30, 0, 1e-6);
    c.weight_decay = 0.05;
    compare("sgd nesterov wd", c, 30, 1, 1e-6);
}

static void test_rmsprop(void **st)
{
    (void)st;
    optim_cfg c = optim_cfg_default(OPTIM_RMSPROP);
    assert_true(c.learning_rate == 0.001 && c.rho == 0.9 && c.epsilon == 1e-7 && c.momentum == 0);
    compare("rmsprop", c, 8, 0, 2e-6);
    c.momentum = 0.5;
    c.learning_rate = 0.02;
    compare("rmsprop momentum", c, 8, 0, 2e-6);
    c.weight_decay = 0.01;
    compare("rmsprop momentum wd", c, 8, 1, 2e-6);
}

static void test_scheduled_update(void **st)
{
    (void)st;
    /* the schedule feeds the update: lr is taken at the completed-step count */
    optim_cfg c = optim_cfg_default(OPTIM_ADAM);
    c.learning_rate = 0.01;
    c.sched.kind = OPTIM_SCHED_COSINE;
    c.sched.decay_steps = 4;
    c.sched.warmup_steps = 2;
    c.sched.alpha = 0.1;
    compare("adam cosine warmup", c, 12, 0, 2e-6);
    c = optim_cfg_default(OPTIM_SGD);
    c.momentum = 0.9;
    c.sched.kind = OPTIM_SCHED_STEP;
    c.sched.every = 2;
    c.sched.factor = 0.5;
    compare("sgd step schedule", c, 12, 0, 1e-6);
}

static void test_schedules(void **st)
{
    (void)st;
    optim_cfg c = optim_cfg_default(OPTIM_SGD);
    c.learning_rate = 0.1;
    assert_float_equal(optim_sched_lr(&c, 0), 0.1, 1e-15);
    assert_float_equal(optim_sched_lr(&c, 123456), 0.1, 1e-15);

    c.sched.kind = OPTIM_SCHED_STEP;
    c.sched.every = 10;
    c.sched.factor = 0.5;
    assert_float_equal(optim_sched_lr(&c, 0), 0.1, 1e-15);
    assert_float_equal(optim_sched_lr(&c, 9), 0.1, 1e-15);
    assert_float_equal(optim_sched_lr(&c, 10), 0.05, 1e-15);
    assert_float_equal(optim_sched_lr(&c, 29), 0.025, 1e-15);
    assert_float_equal(optim_sched_lr(&c, 30), 0.0125, 1e-15);

    /* CosineDecay(0.1, decay_steps=100, alpha=0.1): values by hand */
    c.sched = (optim_sched){.kind = OPTIM_SCHED_COSINE, .decay_steps = 100, .alpha = 0.1};
    assert_float_equal(optim_sched_lr(&c, 0), 0.1, 1e-12);
    assert_float_equal(optim_sched_lr(&c, 25), 0.1 * (0.1 + 0.45 * (1 + M_SQRT1_2)), 1e-12);
    assert_float_equal(optim_sched_lr(&c, 50), 0.055, 1e-12);
    assert_float_equal(optim_sched_lr(&c, 100), 0.01, 1e-12);
    assert_float_equal(optim_sched_lr(&c, 1000), 0.01, 1e-12);

    /* CosineDecay(initial 0.0, warmup_target 0.1, warmup_steps 10, decay_steps 100) */
    c.sched.warmup_steps = 10;
    c.sched.alpha = 0;
    assert_float_equal(optim_sched_lr(&c, 0), 0.0, 1e-15);
    assert_float_equal(optim_sched_lr(&c, 5), 0.05, 1e-12);
    assert_float_equal(optim_sched_lr(&c, 10), 0.1, 1e-12);
    assert_float_equal(optim_sched_lr(&c, 60), 0.05, 1e-12);
    assert_float_equal(optim_sched_lr(&c, 110), 0.0, 1e-12);
    assert_float_equal(optim_sched_lr(&c, 5000), 0.0, 1e-12);
    c.sched.warmup_from = 0.02;
    assert_float_equal(optim_sched_lr(&c, 5), 0.06, 1e-12);

    /* optim_lr follows the step count */
    optim o;
    tl_err e = {0};
    assert_int_equal(optim_init(&o, &c, 4, &e), 0);
    assert_float_equal(optim_lr(&o), 0.02, 1e-12);
    for (int i = 0; i < 5; i++)
        optim_advance(&o);
    assert_float_equal(optim_lr(&o), 0.06, 1e-12);
    optim_free(&o);
}

static void test_frozen_slice_untouched(void **st)
{
    (void)st;
    optim_cfg c = optim_cfg_default(OPTIM_ADAM);
    c.weight_decay = 0.5;
    optim o;
    assert_int_equal(optim_init(&o, &c, N, NULL), 0);
    float *w = tu_alloc_uniform(N, 3, -1, 1), *w0 = tu_alloc_uniform(N, 3, -1, 1);
    float *g = tu_alloc_uniform(N, 4, -1, 1);
    for (int s = 0; s < 3; s++) {
        optim_step(&o, w, g, 0, 10, 1);
        optim_step(&o, w, g, 20, N - 20, 1);
        optim_advance(&o);
    }
    for (int i = 10; i < 20; i++)
        assert_true(w[i] == w0[i]);
    /* untouched moments too */
    for (int i = 10; i < 20; i++)
        assert_true(o.state[OPTIM_HDR + i] == 0 && o.state[OPTIM_HDR + o.stride + i] == 0);
    free(w), free(w0), free(g);
    optim_free(&o);
}

static void test_state_layout_and_checkpoint(void **st)
{
    (void)st;
    optim_cfg c = optim_cfg_default(OPTIM_SGD);
    assert_int_equal(optim_state_floats(&c, 100), OPTIM_HDR);
    c.momentum = 0.9;
    assert_int_equal(optim_state_floats(&c, 100), OPTIM_HDR + 112);
    c = optim_cfg_default(OPTIM_RMSPROP);
    assert_int_equal(optim_state_floats(&c, 16), OPTIM_HDR + 16);
    c.momentum = 0.1;
    assert_int_equal(optim_state_floats(&c, 16), OPTIM_HDR + 32);
    c = optim_cfg_default(OPTIM_ADAM);
    assert_int_equal(optim_state_floats(&c, 1), OPTIM_HDR + 32);

    /* run 3 steps, checkpoint, restore into a fresh optimizer, run 3 more on
     * both: bit-identical */
    optim a, b;
    tl_err e = {0};
    assert_int_equal(optim_init(&a, &c, N, &e), 0);
    assert_int_equal(optim_init(&b, &c, N, &e), 0);
    assert_int_equal(((uintptr_t)a.state) % 64, 0);
    float *wa = tu_alloc_uniform(N, 5, -1, 1), *g = tu_zeros(N);
    for (int s = 0; s < 3; s++) {
        tu_fill_uniform(g, N, 50 + (uint64_t)s, -1, 1);
        optim_step(&a, wa, g, 0, N, 1);
        optim_advance(&a);
    }
    float *ckpt = malloc(a.nstate * sizeof *ckpt);
    memcpy(ckpt, a.state, a.nstate * sizeof *ckpt);
    float *wb = malloc(N * sizeof *wb);
    memcpy(wb, wa, N * sizeof *wb);
    assert_int_equal(optim_state_load(&b, ckpt, a.nstate, &e), 0);
    assert_int_equal(optim_iterations(&b), 3);
    for (int s = 3; s < 6; s++) {
        tu_fill_uniform(g, N, 50 + (uint64_t)s, -1, 1);
        optim_step(&a, wa, g, 0, N, 1);
        optim_advance(&a);
        optim_step(&b, wb, g, 0, N, 1);
        optim_advance(&b);
    }
    assert_memory_equal(wa, wb, N * sizeof *wa);
    assert_memory_equal(a.state, b.state, a.nstate * sizeof(float));

    /* wrong size, wrong kind, corrupt header */
    assert_int_equal(optim_state_load(&b, ckpt, a.nstate - 1, &e), TL_ESHAPE);
    optim r;
    optim_cfg rc = optim_cfg_default(OPTIM_RMSPROP);
    rc.momentum = 0.5; /* two slots, same size as Adam's */
    assert_int_equal(optim_init(&r, &rc, N, &e), 0);
    assert_int_equal(r.nstate, a.nstate);
    assert_int_equal(optim_state_load(&r, ckpt, a.nstate, &e), TL_EFORMAT);
    assert_non_null(strstr(e.msg, "kind"));
    ckpt[1] = 0.5f;
    assert_int_equal(optim_state_load(&b, ckpt, a.nstate, &e), TL_EFORMAT);
    optim_free(&r);

    /* the step count survives past 2^24, where a single float would not */
    optim big;
    assert_int_equal(optim_init(&big, &c, 1, &e), 0);
    big.state[0] = 1.0f; /* step = 1 * 2^24 + 0 */
    big.state[1] = 16777215.0f;
    assert_int_equal(optim_iterations(&big), 33554431);
    optim_advance(&big);
    assert_int_equal(optim_iterations(&big), 33554432);
    optim_free(&big);

    free(ckpt), free(wa), free(wb), free(g);
    optim_free(&a);
    optim_free(&b);
}

static void test_bad_config(void **st)
{
    (void)st;
    optim o;
    tl_err e = {0};
    optim_cfg c = optim_cfg_default(OPTIM_ADAM);
    c.beta1 = 1.0;
    assert_int_equal(optim_init(&o, &c, 4, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "beta1"));
    c = optim_cfg_default(OPTIM_SGD);
    c.learning_rate = NAN;
    assert_int_equal(optim_init(&o, &c, 4, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "learning_rate"));
    c = optim_cfg_default(OPTIM_SGD);
    c.momentum = -0.1;
    assert_int_equal(optim_init(&o, &c, 4, &e), TL_EINVAL);
    c = optim_cfg_default(OPTIM_SGD);
    c.sched.kind = OPTIM_SCHED_STEP;
    assert_int_equal(optim_init(&o, &c, 4, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "every"));
    c.sched.kind = OPTIM_SCHED_COSINE;
    assert_int_equal(optim_init(&o, &c, 4, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "decay_steps"));
    c.sched.kind = (optim_sched_kind)42;
    assert_int_equal(optim_init(&o, &c, 4, &e), TL_EINVAL);
    c = optim_cfg_default((optim_kind)9);
    assert_int_equal(optim_init(&o, &c, 4, &e), TL_EINVAL);
}

/* f(w) = 0.5 * sum a_i (w_i - c_i)^2, curvatures spread over 100x */
static void bowl(const char *what, optim_cfg c, int steps, double tol)
{
    enum { B = 20 };
    float w[B], g[B], a[B], ctr[B];
    tu_fill_uniform(w, B, 7, -3, 3);
    tu_fill_uniform(ctr, B, 8, -1, 1);
    for (int i = 0; i < B; i++)
        a[i] = 0.1f + 9.9f * (float)i / (B - 1);
    optim o;
    assert_int_equal(optim_init(&o, &c, B, NULL), 0);
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < B; i++)
            g[i] = a[i] * (w[i] - ctr[i]);
        optim_step(&o, w, g, 0, B, 0);
        optim_advance(&o);
    }
    double worst = 0;
    for (int i = 0; i < B; i++)
        worst = fmax(worst, fabs((double)w[i] - ctr[i]));
    if (!(worst < tol)) {
        print_error("%s: |w - w*| = %g after %d steps\n", what, worst, steps);
        fail();
    }
    optim_free(&o);
}

static void test_quadratic_bowl(void **st)
{
    (void)st;
    optim_cfg c = optim_cfg_default(OPTIM_ADAM);
    c.learning_rate = 0.05;
    c.sched = (optim_sched){.kind = OPTIM_SCHED_COSINE, .decay_steps = 2000, .alpha = 0.0};
    bowl("adam", c, 2000, 1e-3);
    c = optim_cfg_default(OPTIM_SGD);
    c.learning_rate = 0.05;
    bowl("sgd", c, 2000, 1e-3);
    c.momentum = 0.9;
    c.nesterov = 1;
    bowl("sgd nesterov", c, 500, 1e-3);
    c = optim_cfg_default(OPTIM_RMSPROP);
    c.learning_rate = 0.01;
    c.sched = (optim_sched){.kind = OPTIM_SCHED_STEP, .every = 500, .factor = 0.1};
    bowl("rmsprop", c, 2000, 1e-3);
}

static void test_deterministic(void **st)
{
    (void)st;
    float out[2][N];
    for (int run = 0; run < 2; run++) {
        optim_cfg c = optim_cfg_default(OPTIM_ADAM);
        c.weight_decay = 0.01;
        optim o;
        assert_int_equal(optim_init(&o, &c, N, NULL), 0);
        tu_fill_uniform(out[run], N, 9, -1, 1);
        float g[N];
        for (int s = 0; s < 10; s++) {
            tu_fill_uniform(g, N, 90 + (uint64_t)s, -1, 1);
            /* different slicing per run: results must not depend on it */
            if (run == 0) {
                optim_step(&o, out[run], g, 0, N, 1);
            } else {
                for (size_t off = 0; off < N; off += 5)
                    optim_step(&o, out[run], g, off, off + 5 <= N ? 5 : N - off, 1);
            }
            optim_advance(&o);
        }
        optim_free(&o);
    }
    assert_memory_equal(out[0], out[1], sizeof out[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_rmsprop),
        cmocka_unit_test(test_scheduled_update),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_frozen_slice_untouched),
        cmocka_unit_test(test_state_layout_and_checkpoint),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_quadratic_bowl),
        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
