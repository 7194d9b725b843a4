/* Inside a trial (trial.h is the contract): one state struct that owns
 * every resource, and the pieces trial_run strings together.
 *
 *   trial.c        the public API; prepare, run each stage of the plan, emit
 *   trial_model.c  the trial's model: head parsing, spec, backbone, head init
 *   trial_epoch.c  loader passes, batches, epoch records, best epoch, resume
 *   trial_head.c   stage HEAD_ON_FEATURES: extraction, cache rows, head net
 *   trial_whole.c  stage WHOLE_NET: the whole net through the loader
 *   trial_eval.c   the kept model on test (or val); trial_evaluate_file
 *
 * Every resource in trial__state starts zeroed and trial__state_free frees
 * whatever is set, so an error anywhere needs no bookkeeping. */
#ifndef TLSWEEP_TRIAL_INT_H
#define TLSWEEP_TRIAL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/sweep/sweep_plan.h"
#include "worker/engine/loader.h"
#include "worker/engine/metrics.h"
#include "worker/engine/train.h"
#include "worker/trial/trial.h"

enum { TRIAL__SPLITS = 3 }; /* DATA_TRAIN, DATA_VAL, DATA_TEST */

/* What a loader pass over the trial's images needs. */
typedef struct {
    const trial_cfg *cfg;
    const data_index *ix;
    data_image_cfg image;
    trial_result *r;            /* bad_images */
} trial__images;

typedef struct {
    const trial_cfg *cfg;
    trial_result *r;
    sweep_plan plan;

    /* prepared once: weights, index, ids, the trial's model and full net */
    model_spec wspec;           /* the weights file's, when read here */
    tset wts;
    const model_spec *W;        /* cfg->weights_spec or &wspec */
    const tset *WT;
    data_index own_ix;          /* built here when cfg->index is NULL */
    trial__images im;           /* im.ix: cfg->index or &own_ix */
    size_t *ids[TRIAL__SPLITS], nids[TRIAL__SPLITS];
    size_t *order;              /* (nids[DATA_TRAIN]) an epoch's permutation */
    const model_head_op *head;  /* cfg->head or one GAP */
    int n_head;
    model_head_op gap;
    model_spec spec;
    net full;
    const data_augment_cfg *aug; /* NULL: no augmentation */
    data_split es;              /* evaluation split, when r->eval_split */
    metrics_confusion cm;
    float *best;                /* weights of the kept epoch, the training net's size */

    /* HEAD_ON_FEATURES */
    net ext;                    /* the frozen extractor (not with a shared cache) */
    net hn;                     /* the head alone */
    train_ctx th;
    size_t F;                   /* floats per image */
    size_t rows[TRIAL__SPLITS]; /* feature rows per split: its images that decoded */
    float *feats[TRIAL__SPLITS];
    int *labels[TRIAL__SPLITS];
    float *xb;                  /* (batch, F) */
    int *yb;                    /* (batch) */

    /* WHOLE_NET */
    train_ctx tf;
    size_t *tids;               /* (nids[DATA_TRAIN]) an epoch's ids in order */
    int yield_wish;             /* alone: a callback wished a yield */
    /* in a group: the member's rows of an epoch (trial_group.c) */
    size_t *gids;               /* its ids of tids, batch after batch */
    int *gsizes;                /* its rows of each global batch */
    size_t g_n, g_batches;
} trial__state;

void trial__state_free(trial__state *st);

/* ---- trial_model.c ---- */
/* The trial's model file spec: the weights' backbone and conventions, the
 * trial's head, mode and classes. */
int trial__build_spec(trial__state *st, int size, tl_err *e);
int trial__load_backbone(net *n, const tset *ts, const char *path, tl_err *e);
void trial__init_head(net *n, uint64_t seed);
/* Copies every parameter of `from` (from layer first_layer on) whose name
 * `to` also has with the same size. */
void trial__copy_params_by_name(net *to, net *from, int first_layer);

/* ---- trial_epoch.c ---- */
void trial__log(const trial_cfg *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t *trial__ids_of(const data_index *ix, data_split s, size_t *n);
void trial__epoch_order(size_t *perm, size_t n, uint64_t seed, int epoch);

typedef int (*trial__batch_fn)(void *u, const loader_batch *b);
/* Runs fn over the images ids (in that order) through a loader. */
int trial__each_batch(const trial__images *im, const size_t *ids, size_t n,
                      const data_augment_cfg *aug, int epoch, trial__batch_fn fn, void *u,
                      tl_err *e);
/* The same in batches of sizes[0..n_sizes) (a group member's rows). */
int trial__each_sized(const trial__images *im, const size_t *ids, size_t n, const int *sizes,
                      size_t n_sizes, const data_augment_cfg *aug, int epoch, trial__batch_fn fn,
                      void *u, tl_err *e);

/* A net over batches: training or evaluation, sums for the epoch record. */
typedef struct {
    train_ctx *t;
    int train;
    double loss;
    long hits, seen;
    size_t *counter;            /* backbone images, NULL for the head net */
    metrics_confusion *cm;      /* NULL: not kept */
    const trial_cfg *cfg;       /* training: step_done */
    int epoch;
    size_t step, steps;
    /* training in a group (trial_group.c): the member's rows of global
     * batches over n_global images; NULL alone */
    struct group *g;
    size_t n_global;
    tl_err *e;                  /* the group's errors */
    int *yield;                 /* alone: set when step_done wished a yield (NULL: ignored) */
} trial__run;

/* A callback's answer (step_done, epoch_done): 0 go on, TL_ESTOPPED stop
 * now. In a group a stop or a yield becomes a wish for the next control;
 * alone a yield sets *yield (NULL: ignored). */
int trial__answer(int ret, struct group *g, int *yield);

int trial__run_batch(void *u, const loader_batch *b);
/* Over cached feature rows order[0..n) (order NULL: in order). */
int trial__run_cached(trial__run *r, const float *feats, const int *labels, size_t F,
                      const size_t *order, size_t n, int batch, float *xb, int *yb);
/* Records epoch ep and logs its line. A loss or val_loss that is NaN or
 * infinite is TL_EINVAL naming the epoch: the trial diverged (or its
 * inputs hold such values), and a result ranked on it would mean nothing. */
int trial__record_epoch(trial_result *r, const trial_cfg *cfg, int ep, const trial__run *tr,
                        const trial__run *va, double secs, tl_err *e);
/* 1 when the last recorded epoch is the best so far (and is now kept). */
int trial__keep_best(trial_result *r, const trial_cfg *cfg);
/* 1 when early stopping ends stage sg before another epoch (r->stopped_epoch
 * set), from the history alone: a resumed trial decides as before. */
int trial__stop_early(trial_result *r, const trial_cfg *cfg, const sweep_stage *sg);
/* The last epoch stage sg runs in this call: its own last, or the rung's
 * end (cfg->until) when that comes first. */
int trial__stage_end(const trial_cfg *cfg, const sweep_stage *sg);
/* After a stage's epochs: a rung that ended the stage early still says
 * whether early stopping would stop the trial there, so that a rung's
 * result is not promoted only to stop at once. */
void trial__rung_end(trial_result *r, const trial_cfg *cfg, const sweep_stage *sg);
/* Puts cfg->resume back into t and the kept weights. */
int trial__resume_from(const trial_cfg *cfg, trial_result *r, train_ctx *t, float *best,
                       tl_err *e);
/* Hands the state after an epoch to epoch_done (the checkpoint); ending:
 * the trial yields after it. Its answer as trial__answer's. */
int trial__snapshot(const trial_cfg *cfg, const trial_result *r, const train_ctx *t,
                    const float *best, int ending, struct group *g, int *yield);

/* ---- the stages (trial_head.c, trial_whole.c) ---- */
/* A stage opens (its net, its features, the snapshot when it is the one
 * resumed), runs its epochs from the one after the last recorded to
 * sg->last, and hands the kept weights on: to the next stage, or (next
 * NULL) into the net the trial evaluates and writes. */
typedef struct {
    int (*open)(trial__state *st, const sweep_stage *sg, tl_err *e);
    int (*epochs)(trial__state *st, const sweep_stage *sg, tl_err *e);
    int (*hand_on)(trial__state *st, const sweep_stage *next, tl_err *e);
} trial__stage_ops;

extern const trial__stage_ops trial__head_stage;   /* SWEEP_STAGE_HEAD_ON_FEATURES */
extern const trial__stage_ops trial__whole_stage;  /* SWEEP_STAGE_WHOLE_NET, always last */

/* ---- trial_group.c: WHOLE_NET in a group ---- */
/* The start of a whole-net stage: the net refuses (BN training), or the
 * leader's weights and optimizer state to every member. */
int trial__group_open(trial__state *st, tl_err *e);
/* The member's ids and batch sizes of an epoch order in st->tids. */
void trial__group_rows(trial__state *st);
/* The member's shard of ids[0..n) (validation): *first, returns its length. */
size_t trial__group_shard(const trial__state *st, size_t n, size_t *first);
/* One training batch: the member's rows, gradients summed, the step. */
int trial__group_step(trial__run *r, const loader_batch *b, int *hits, float *loss);
/* The epoch's figures summed over the group (the epoch-end control). */
int trial__group_sum_figures(trial__state *st, trial__run *tr, trial__run *va, tl_err *e);
/* After the epoch is recorded: the weights compared, healed from the
 * leader when they differ. */
int trial__group_check(trial__state *st, tl_err *e);

/* ---- trial_eval.c ---- */
/* The kept model on the evaluation split (r->eval_split) by the last
 * stage's means (the head net on cached features, or the whole net through
 * the loader); the confusion matrix into the result. */
int trial__evaluate(trial__state *st, const sweep_stage *last, tl_err *e);

#endif
