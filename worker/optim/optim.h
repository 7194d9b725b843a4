/* Optimizers over one flat float parameter vector, with Keras 3 semantics
 * and defaults (keras/src/optimizers/{adam,sgd,rmsprop}.py and
 * schedules/learning_rate_schedule.py).
 *
 * A training step is: for each trainable slice of the parameter vector,
 * optim_step(o, w, g, off, n, decay); then optim_advance(o) once. The
 * learning rate of a step is the schedule at the number of completed steps
 * (Keras `optimizer.iterations`, 0 for the first step); Adam's bias
 * correction uses t = completed steps + 1.
 *
 * All state, including the step count, lives in o->state (o->nstate
 * floats), so a checkpoint is that one array and a restore is
 * optim_state_load(). Layout:
 *   [0, OPTIM_HDR)     header: step (two exact floats), kind, nparams
 *   then one slot of nparams floats (rounded up to OPTIM_HDR) per moment:
 *   Adam m, v; SGD velocity (only when momentum != 0); RMSprop mean square,
 *   then momentum (only when momentum > 0).
 */
#ifndef TLSWEEP_OPTIM_H
#define TLSWEEP_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"

typedef enum { OPTIM_ADAM, OPTIM_SGD, OPTIM_RMSPROP } optim_kind;

typedef enum {
    OPTIM_SCHED_CONSTANT,
    OPTIM_SCHED_STEP,    /* lr * factor^floor(step / every): Keras ExponentialDecay(staircase=True) */
    OPTIM_SCHED_COSINE,  /* Keras CosineDecay, optionally with linear warmup */
} optim_sched_kind;

typedef struct {
    optim_sched_kind kind;
    /* STEP */
    int64_t every;        /* > 0 */
    double factor;        /* e.g. 0.1 */
    /* COSINE: after warmup, lr * (alpha + (1-alpha) * 0.5 * (1 + cos(pi * min(s, decay_steps) / decay_steps)))
     * with s = step - warmup_steps. During warmup the lr rises linearly from
     * warmup_from to learning_rate (Keras: initial_learning_rate = warmup_from,
     * warmup_target = learning_rate). */
    int64_t decay_steps;  /* > 0 */
    double alpha;         /* floor as a fraction of lr, default 0 */
    int64_t warmup_steps; /* 0 = no warmup */
    double warmup_from;   /* lr at step 0 of warmup, default 0 */
} optim_sched;

typedef struct {
    optim_kind kind;
    double learning_rate;
    double beta1, beta2;  /* Adam: 0.9, 0.999 */
    double epsilon;       /* Adam, RMSprop: 1e-7 */
    double momentum;      /* SGD, RMSprop: 0 */
    int nesterov;         /* SGD */
    double rho;           /* RMSprop: 0.9 */
    /* Decoupled decay before the update, on slices stepped with decay != 0:
     * w -= lr_t * weight_decay * w (Keras `weight_decay`, AdamW). */
    double weight_decay;
    optim_sched sched;
} optim_cfg;

/* Keras defaults for kind, learning rate 0.001 (SGD: 0.01), constant schedule. */
optim_cfg optim_cfg_default(optim_kind kind);

enum { OPTIM_HDR = 16 };

typedef struct {
    optim_cfg cfg;
    size_t nparams;
    size_t stride;   /* floats per moment slot: nparams rounded up to OPTIM_HDR */
    float *state;    /* nstate floats, 64-byte aligned, owned */
    size_t nstate;
} optim;

/* Floats of state for cfg over nparams parameters (header included). */
size_t optim_state_floats(const optim_cfg *cfg, size_t nparams);

/* Validates cfg (ranges, schedule) and allocates zeroed state at step 0. */
int optim_init(optim *o, const optim_cfg *cfg, size_t nparams, tl_err *e);

/* Updates w[off, off+n) from g[off, off+n); w and g are the whole flat
 * vectors. decay != 0 applies cfg.weight_decay to this slice (kernels), 0
 * leaves it out (biases, BN). Call once per slice per step, slices disjoint. */
void optim_step(optim *o, float *w, const float *g, size_t off, size_t n, int decay);

/* Ends a training step: the step count moves on by one. */
void optim_advance(optim *o);

/* Completed steps. */
int64_t optim_iterations(const optim *o);

/* Learning rate for the current step, after the schedule. */
double optim_lr(const optim *o);
/* The schedule alone, for any step. */
double optim_sched_lr(const optim_cfg *cfg, int64_t step);

/* Replaces the state from a checkpointed copy of o->state; checks that it
 * was written by the same optimizer kind over the same nparams. */
int optim_state_load(optim *o, const float *src, size_t nfloats, tl_err *e);

void optim_free(optim *o);

#endif
