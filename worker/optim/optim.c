#include "worker/optim/optim.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Header slots. The step and nparams are split into 24-bit halves so each
 * half is an exact float and the whole state saves as plain F32. */
enum { HDR_STEP_HI, HDR_STEP_LO, HDR_KIND, HDR_N_HI, HDR_N_LO };
#define SPLIT 16777216.0 /* 2^24 */
#define PI 3.14159265358979323846

optim_cfg optim_cfg_default(optim_kind kind)
{
    optim_cfg c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.learning_rate = kind == OPTIM_SGD ? 0.01 : 0.001;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.epsilon = 1e-7;
    c.momentum = 0.0;
    c.nesterov = 0;
    c.rho = 0.9;
    c.weight_decay = 0.0;
    c.sched.kind = OPTIM_SCHED_CONSTANT;
    c.sched.factor = 1.0;
    c.sched.alpha = 0.0;
    return c;
}

static size_t slots(const optim_cfg *cfg)
{
    switch (cfg->kind) {
    case OPTIM_ADAM: return 2;
    case OPTIM_SGD: return cfg->momentum != 0 ? 1 : 0;
    case OPTIM_RMSPROP: return cfg->momentum > 0 ? 2 : 1;
    }
    return 0;
}

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

size_t optim_state_floats(const optim_cfg *cfg, size_t nparams)
{
    return OPTIM_HDR + slots(cfg) * round_up(nparams, OPTIM_HDR);
}

static void put_split(float *dst, uint64_t x)
{
    dst[0] = (float)(double)(x >> 24);
    dst[1] = (float)(double)(x & 0xFFFFFF);
}

static int get_split(const float *src, uint64_t *x)
{
    double hi = src[0], lo = src[1];
    if (!(hi >= 0 && hi < SPLIT && lo >= 0 && lo < SPLIT) || hi != floor(hi) || lo != floor(lo))
        return -1;
    *x = ((uint64_t)hi << 24) | (uint64_t)lo;
    return 0;
}

#define IN_RANGE(x, lo, hi) ((x) >= (lo) && (x) <= (hi)) /* false for NaN */

static int check_cfg(const optim_cfg *c, tl_err *e)
{
    if (!(c->kind == OPTIM_ADAM || c->kind == OPTIM_SGD || c->kind == OPTIM_RMSPROP))
        return tl_errf(e, TL_EINVAL, "optim: unknown optimizer kind %d", (int)c->kind);
    if (!IN_RANGE(c->learning_rate, 0.0, 1e6))
        return tl_errf(e, TL_EINVAL, "optim: learning_rate %g must be finite and >= 0", c->learning_rate);
    if (!IN_RANGE(c->weight_decay, 0.0, 1e6))
        return tl_errf(e, TL_EINVAL, "optim: weight_decay %g must be finite and >= 0", c->weight_decay);
    if (c->kind == OPTIM_ADAM) {
        if (!IN_RANGE(c->beta1, 0.0, 1.0) || c->beta1 == 1.0)
            return tl_errf(e, TL_EINVAL, "optim: adam beta1 %g must be in [0, 1)", c->beta1);
        if (!IN_RANGE(c->beta2, 0.0, 1.0) || c->beta2 == 1.0)
            return tl_errf(e, TL_EINVAL, "optim: adam beta2 %g must be in [0, 1)", c->beta2);
    }
    if (c->kind != OPTIM_SGD && !IN_RANGE(c->epsilon, 0.0, 1.0))
        return tl_errf(e, TL_EINVAL, "optim: epsilon %g must be in [0, 1]", c->epsilon);
    if (c->kind != OPTIM_ADAM && !IN_RANGE(c->momentum, 0.0, 1.0))
        return tl_errf(e, TL_EINVAL, "optim: momentum %g must be in [0, 1]", c->momentum);
    if (c->kind == OPTIM_RMSPROP && !IN_RANGE(c->rho, 0.0, 1.0))
        return tl_errf(e, TL_EINVAL, "optim: rmsprop rho %g must be in [0, 1]", c->rho);

    const optim_sched *s = &c->sched;
    switch (s->kind) {
    case OPTIM_SCHED_CONSTANT:
        break;
    case OPTIM_SCHED_STEP:
        if (s->every <= 0)
            return tl_errf(e, TL_EINVAL, "optim: step schedule needs every > 0 (got %lld)",
                           (long long)s->every);
        if (!IN_RANGE(s->factor, 0.0, 1e6))
            return tl_errf(e, TL_EINVAL, "optim: step schedule factor %g must be finite and >= 0",
                           s->factor);
        break;
    case OPTIM_SCHED_COSINE:
        if (s->decay_steps <= 0)
            return tl_errf(e, TL_EINVAL, "optim: cosine schedule needs decay_steps > 0 (got %lld)",
                           (long long)s->decay_steps);
        if (!IN_RANGE(s->alpha, 0.0, 1.0))
            return tl_errf(e, TL_EINVAL, "optim: cosine schedule alpha %g must be in [0, 1]", s->alpha);
        if (s->warmup_steps < 0)
            return tl_errf(e, TL_EINVAL, "optim: cosine schedule warmup_steps %lld must be >= 0",
                           (long long)s->warmup_steps);
        if (!IN_RANGE(s->warmup_from, 0.0, 1e6))
            return tl_errf(e, TL_EINVAL, "optim: cosine schedule warmup_from %g must be finite and >= 0",
                           s->warmup_from);
        break;
    default:
        return tl_errf(e, TL_EINVAL, "optim: unknown schedule kind %d", (int)s->kind);
    }
    return 0;
}

int optim_init(optim *o, const optim_cfg *cfg, size_t nparams, tl_err *e)
{
    memset(o, 0, sizeof *o);
    int rc = check_cfg(cfg, e);
    if (rc)
        return rc;
    if ((uint64_t)nparams >= (uint64_t)1 << 48)
        return tl_errf(e, TL_EINVAL, "optim: %zu parameters is more than the state header holds", nparams);
    size_t nstate = optim_state_floats(cfg, nparams);
    size_t bytes = round_up(nstate * sizeof(float), 64);
    float *s = aligned_alloc(64, bytes);
    if (!s)
        return tl_errf(e, TL_ENOMEM, "optim: cannot allocate %zu bytes of optimizer state", bytes);
    memset(s, 0, bytes);
    o->cfg = *cfg;
    o->nparams = nparams;
    o->stride = round_up(nparams, OPTIM_HDR);
    o->state = s;
    o->nstate = nstate;
    put_split(s + HDR_STEP_HI, 0);
    s[HDR_KIND] = (float)(cfg->kind + 1);
    put_split(s + HDR_N_HI, nparams);
    return 0;
}

void optim_free(optim *o)
{
    if (!o)
        return;
    free(o->state);
    memset(o, 0, sizeof *o);
}

int64_t optim_iterations(const optim *o)
{
    uint64_t step = 0;
    get_split(o->state + HDR_STEP_HI, &step);
    return (int64_t)step;
}

void optim_advance(optim *o)
{
    put_split(o->state + HDR_STEP_HI, (uint64_t)optim_iterations(o) + 1);
}

double optim_sched_lr(const optim_cfg *cfg, int64_t step)
{
    const optim_sched *s = &cfg->sched;
    double lr = cfg->learning_rate;
    if (step < 0)
        step = 0;
    switch (s->kind) {
    case OPTIM_SCHED_CONSTANT:
        return lr;
    case OPTIM_SCHED_STEP:
        return lr * pow(s->factor, (double)(step / s->every));
    case OPTIM_SCHED_COSINE: {
        double w = (double)s->warmup_steps, st = (double)step, d = (double)s->decay_steps;
        if (s->warmup_steps > 0 && st < w)
            return s->warmup_from + (lr - s->warmup_from) * (st / w);
        double p = fmin(st - w, d) / d;
        return lr * (s->alpha + (1.0 - s->alpha) * 0.5 * (1.0 + cos(PI * p)));
    }
    }
    return lr;
}

double optim_lr(const optim *o)
{
    return optim_sched_lr(&o->cfg, optim_iterations(o));
}

/* The kernels: one pass over the slice, every element independent, so the
 * compiler vectorises them and results do not depend on slicing. */

/* Element-wise updates: vectorised, and split across the threads for large
 * slices (each element's arithmetic is the same either way, so results do
 * not depend on the thread count). */
#define SLICE_LOOP _Pragma("omp parallel for simd schedule(static) if (n >= 32768)")

static void decay_slice(float *restrict w, size_t n, float c)
{
    SLICE_LOOP
    for (size_t i = 0; i < n; i++)
        w[i] -= w[i] * c;
}

static void adam_slice(float *restrict w, const float *restrict g, float *restrict m,
                       float *restrict v, size_t n, float alpha, float one_m_b1,
                       float one_m_b2, float eps)
{
    /* Keras 3 writes the moments as m += (g - m)(1 - b1); kept so float
     * rounding follows it. */
    SLICE_LOOP
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] + (gi - m[i]) * one_m_b1;
        float vi = v[i] + (gi * gi - v[i]) * one_m_b2;
        m[i] = mi;
        v[i] = vi;
        w[i] -= mi * alpha / (sqrtf(vi) + eps);
    }
}

static void sgd_slice(float *restrict w, const float *restrict g, size_t n, float lr)
{
    SLICE_LOOP
    for (size_t i = 0; i < n; i++)
        w[i] -= g[i] * lr;
}

static void sgd_momentum_slice(float *restrict w, const float *restrict g, float *restrict m,
                               size_t n, float lr, float mom, int nesterov)
{
    if (nesterov) {
        SLICE_LOOP
    for (size_t i = 0; i < n; i++) {
            float mi = m[i] * mom - g[i] * lr;
            m[i] = mi;
            w[i] += mi * mom - g[i] * lr;
        }
    } else {
        SLICE_LOOP
    for (size_t i = 0; i < n; i++) {
            float mi = m[i] * mom - g[i] * lr;
            m[i] = mi;
            w[i] += mi;
        }
    }
}

/* Keras 3 RMSprop: the epsilon is inside the square root. */
static void rmsprop_slice(float *restrict w, const float *restrict g, float *restrict ms,
                          float *restrict mo, size_t n, float lr, float rho, float eps,
                          float mom)
{
    float one_m_rho = 1.0f - rho;
    if (mo) {
        SLICE_LOOP
    for (size_t i = 0; i < n; i++) {
            float gi = g[i];
            float vi = rho * ms[i] + one_m_rho * (gi * gi);
            ms[i] = vi;
            float mi = mom * mo[i] + lr * gi / sqrtf(vi + eps);
            mo[i] = mi;
            w[i] -= mi;
        }
    } else {
        SLICE_LOOP
    for (size_t i = 0; i < n; i++) {
            float gi = g[i];
            float vi = rho * ms[i] + one_m_rho * (gi * gi);
            ms[i] = vi;
            w[i] -= lr * gi / sqrtf(vi + eps);
        }
    }
}

void optim_step(optim *o, float *w, const float *g, size_t off, size_t n, int decay)
{
    const optim_cfg *c = &o->cfg;
    if (n == 0)
        return;
    /* slices are chosen by code, not by data */
    assert(off <= o->nparams && n <= o->nparams - off);
    double lr = optim_lr(o);
    float *s1 = o->state + OPTIM_HDR + off;
    float *s2 = s1 + o->stride;
    w += off;
    g += off;
    if (decay && c->weight_decay > 0)
        decay_slice(w, n, (float)(lr * c->weight_decay));

    switch (c->kind) {
    case OPTIM_ADAM: {
        double t = (double)(optim_iterations(o) + 1);
        double alpha = lr * sqrt(1.0 - pow(c->beta2, t)) / (1.0 - pow(c->beta1, t));
        adam_slice(w, g, s1, s2, n, (float)alpha, (float)(1.0 - c->beta1),
                   (float)(1.0 - c->beta2), (float)c->epsilon);
        break;
    }
    case OPTIM_SGD:
        if (c->momentum != 0)
            sgd_momentum_slice(w, g, s1, n, (float)lr, (float)c->momentum, c->nesterov);
        else
            sgd_slice(w, g, n, (float)lr);
        break;
    case OPTIM_RMSPROP:
        rmsprop_slice(w, g, s1, c->momentum > 0 ? s2 : NULL, n, (float)lr, (float)c->rho,
                      (float)c->epsilon, (float)c->momentum);
        break;
    }
}

int optim_state_load(optim *o, const float *src, size_t nfloats, tl_err *e)
{
    if (nfloats != o->nstate)
        return tl_errf(e, TL_ESHAPE, "optim: checkpointed state has %zu floats, this optimizer needs %zu",
                       nfloats, o->nstate);
    uint64_t step, n;
    if (get_split(src + HDR_STEP_HI, &step) || get_split(src + HDR_N_HI, &n))
        return tl_errf(e, TL_EFORMAT, "optim: checkpointed state header is corrupt");
    if (src[HDR_KIND] != (float)(o->cfg.kind + 1))
        return tl_errf(e, TL_EFORMAT, "optim: checkpointed state is for optimizer kind %g, this one is %d",
                       (double)src[HDR_KIND] - 1, (int)o->cfg.kind);
    if (n != o->nparams)
        return tl_errf(e, TL_ESHAPE, "optim: checkpointed state covers %llu parameters, this optimizer %zu",
                       (unsigned long long)n, o->nparams);
    memcpy(o->state, src, nfloats * sizeof *src);
    return 0;
}
