/* A trial as a plan: its mode, epochs and feature-cache situation turned
 * into a short list of stages, decided once for everyone who asks: the grid
 * (which trials share a feature cache), the dry run (how much backbone work
 * a sweep is) and the worker's trial (what it runs).
 *
 *   frozen                   HEAD_ON_FEATURES [1, epochs]
 *   frozen, feature_cache off WHOLE_NET       [1, epochs] (the Keras way)
 *   fine_tune, fine_tune_at  WHOLE_NET        [1, epochs]
 *   frozen_then_fine_tune    HEAD_ON_FEATURES [1, E], then
 *                            WHOLE_NET        [E+1, epochs] at a tenth of the rate
 *
 * A head on features reads them from the sweep's shared cache when one is
 * given, else extracts them once in the trial; with random augmentation the
 * train features are recomputed every epoch (val/test still once) and a
 * shared cache is never used. The two-stage recipe's first stage is always
 * on features, even with feature_cache off (that switch is about frozen
 * trials only).
 *
 * Resuming after epoch R drops the stages that end before R+1 (a snapshot
 * from the second stage skips the first entirely) and marks the first stage
 * left as the one the snapshot goes into; that stage still runs only the
 * epochs after R. Pure: no I/O, no allocation. */
#ifndef TLSWEEP_SWEEP_PLAN_H
#define TLSWEEP_SWEEP_PLAN_H

#include "common/base/err.h"
#include "common/sweep/sweep.h"

typedef enum {
    SWEEP_STAGE_HEAD_ON_FEATURES, /* the head alone, on frozen backbone features */
    SWEEP_STAGE_WHOLE_NET,        /* the whole net through the loader every epoch */
} sweep_stage_kind;

typedef enum {
    SWEEP_FEATURES_NONE,          /* WHOLE_NET: the backbone runs on every batch */
    SWEEP_FEATURES_SHARED,        /* rows of the sweep's shared feature cache */
    SWEEP_FEATURES_ONCE,          /* extracted once, here */
    SWEEP_FEATURES_EVERY_EPOCH,   /* augmentation: train recomputed each epoch, val/test once */
} sweep_features;

/* Learning rate of a stage: the trial's, or a tenth of it (the two-stage
 * recipe's fine-tuning). A divisor, not a factor: rate / 10 is the double
 * the trainer has always used, rate * 0.1 is not always the same one. */
typedef enum { SWEEP_LR_AS_GIVEN = 1, SWEEP_LR_TENTH = 10 } sweep_lr_divisor;

typedef struct {
    sweep_stage_kind kind;
    int first, last;              /* epochs of the stage, from 1, inclusive */
    sweep_lr_divisor lr_divisor;
    sweep_features features;
    int resume;                   /* the snapshot's state goes into this stage */
} sweep_stage;

enum { SWEEP_PLAN_MAX_STAGES = 2 };

typedef struct {
    sweep_stage stage[SWEEP_PLAN_MAX_STAGES];
    int n;
} sweep_plan;

typedef struct {
    sweep_mode mode;              /* frozen_epochs: the first stage of FROZEN_THEN_FINE_TUNE */
    int epochs;                   /* in all, >= 1 */
    int augment;                  /* random augmentation is on */
    int cache_allowed;            /* 0: feature_cache: false (frozen runs the whole net) */
    int cache_shared;             /* a shared feature cache is (or will be) there */
    int resuming;                 /* a snapshot is given ... */
    int resume_epoch;             /* ... holding this many epochs */
} sweep_plan_in;

/* The plan of in. TL_EINVAL (one line in e) for epochs < 1, an unknown mode,
 * or a two-stage recipe whose first stage is not in [1, epochs). A resume
 * epoch outside [1, epochs] is the snapshot loader's to refuse (it knows
 * the weights too): the plan still marks a stage to resume, the first one
 * for an epoch < 1, the last one past the end. */
int sweep_plan_make(sweep_plan *p, const sweep_plan_in *in, tl_err *e);

/* Whether a stage of p reads the shared feature cache. */
int sweep_plan_uses_shared_cache(const sweep_plan *p);
/* Whether a stage of p trains the whole net (it needs batch-sized activations). */
int sweep_plan_has_whole_net(const sweep_plan *p);
/* Epochs of p's stages that do not read the shared cache: the epochs whose
 * backbone work the trial does itself. */
int sweep_plan_own_epochs(const sweep_plan *p);

/* The plan a sweep's trial starts from scratch with: a shared cache exists
 * when the sweep allows one. sweep_expand groups trials by it. */
int sweep_trial_plan(const sweep *s, const sweep_trial *t, sweep_plan *p, tl_err *e);

#endif
