/* One transfer-learning trial in one process: a backbone from a model file,
 * a new head for a folder dataset's classes, training for some epochs,
 * the best epoch (by val_accuracy) kept and written as a .tlm.
 *
 * Frozen mode (the point of tlsweep) runs the backbone once per image:
 * every train/val/test image goes through the frozen backbone (inference
 * mode, BN folded) one time, its features (pooled when the head starts with
 * global average pooling, else the feature map) are kept in memory, and a
 * small net holding only the head trains on them for every epoch; the head
 * weights go back into the full net at the end. With random augmentation
 * the train features are recomputed each epoch (val/test still once).
 * Fine-tune modes train the whole net (or from a Keras layer on) through
 * the loader every epoch. Which of these a trial does is its plan
 * (common/sweep/sweep_plan.h), the same one the sweep's grid and dry run
 * see: stages HEAD_ON_FEATURES and WHOLE_NET, run one after the other.
 *
 * The sweep runs many of these across ranks; this is the library core that
 * `tlsweep train` wraps. */
#ifndef TLSWEEP_TRIAL_H
#define TLSWEEP_TRIAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/data/data.h"
#include "common/data/data_augment.h"
#include "common/base/err.h"
#include "common/weights/model_file.h"
#include "common/sweep/sweep.h"
#include "common/weights/tensors.h"
#include "worker/net/net.h"
#include "worker/optim/optim.h"

typedef struct {
    int epoch;                      /* from 1 */
    double loss, accuracy;          /* training, over the epoch */
    double val_loss, val_accuracy;  /* -1 when there is no validation set */
    double seconds, images_per_s;   /* training part of the epoch */
    double comm_seconds;            /* of seconds (the training pass), inside the group's collectives; 0 alone */
} trial_epoch;

/* Backbone features computed elsewhere (the sweep's shared cache): row i
 * belongs to item i of the dataset index the trial builds from the same
 * directories and seed. ok[i] = 0 for an image that did not decode; such
 * rows are left out of every split. */
typedef struct {
    const float *x;                 /* (n_items, dim) */
    const uint8_t *ok;              /* (n_items) */
    size_t n_items, dim;
} trial_features;

/* Everything needed to continue a trial after its `epoch`-th epoch with the
 * same result as if it had never stopped: the training net's weights (the
 * head-only net in frozen cached mode, the whole net otherwise), the
 * weights of the epoch kept so far, the optimizer state (moments and step
 * count; dropout masks derive from (seed, step), epoch orders from (seed,
 * epoch), so no other random state exists) and the epochs so far. */
typedef struct {
    int epoch;                      /* epochs completed */
    const float *weights, *best;    /* n_weights each */
    size_t n_weights;
    const float *optim_state;
    size_t n_optim;
    const trial_epoch *epochs;      /* epoch entries 1..epoch */
    int best_epoch;                 /* 0: none kept yet */
    double best_value;
    int yield;                      /* the trial ends after this epoch (a yield): keep it */
} trial_snapshot;

/* What step_done and epoch_done may return besides 0 (go on) and other
 * nonzero values (stop at once): end the trial after the epoch in
 * progress, with its snapshot (trial_result.yielded). */
enum { TRIAL_YIELD = 2 };

struct group;

typedef struct {
    const char *weights;            /* model file with the backbone (.tlm) */
    const char *train_dir;          /* one sub-folder per class */
    const char *val_dir, *test_dir; /* optional */
    double validation_split;        /* when val_dir is NULL */
    int size;                       /* input side; 0: the weights file's */
    model_mode mode;
    int fine_tune_at;               /* MODEL_FINE_TUNE_AT: Keras layer index */
    /* MODEL_FINE_TUNE_AT only, > 0: Keras's two-stage recipe, the head alone
     * on the frozen backbone's features for this many epochs, then the
     * rest fine-tuning from fine_tune_at at a tenth of the learning rate. */
    int stage1_epochs;
    optim_cfg optim;
    int batch, epochs;
    /* > 0 and < epochs: a rung (common/sweep/search.h): train through this
     * epoch only, then evaluate and emit as if it were the last; schedules
     * and early stopping still see `epochs` */
    int until;
    float label_smoothing;          /* Keras's, of the softmax loss; 0: none */
    const model_head_op *head;      /* ops before the classifier; NULL: one GAP */
    int n_head;
    uint64_t seed;                  /* shuffling, head init, dropout, augmentation */
    uint64_t split_seed;            /* the validation split (the sweep's data.seed) */
    data_augment_cfg augment;       /* all off: none */
    int loader_threads;             /* 0: 2 */
    int no_cache;                   /* frozen without the feature cache (for tests) */
    const char *out;                /* best model (.tlm); NULL: not written */
    /* Which epoch is kept: the best by this metric (default val_accuracy,
     * max). Without a validation set the last epoch is kept. */
    sweep_metric select_metric;
    int select_max;
    /* early_stopping: (enabled 0: off): ends the last stage once Keras's
     * EarlyStopping would (common/sweep/early_stop.h); the kept epoch is
     * still select_metric's best */
    sweep_early_stop early_stop;
    /* Already loaded: the weights file's spec and tensors (NULL: read
     * `weights`), and the dataset index of train/val/test dirs, split and
     * split_seed (NULL: built here). Borrowed, not freed. */
    const model_spec *weights_spec;
    const tset *weights_tensors;
    const data_index *index;
    /* Frozen mode: train the head on these instead of extracting. */
    const trial_features *features;
    /* A group of ranks training this trial together (worker/group/group.h),
     * every member calling trial_run with the same configuration; NULL:
     * alone. Its WHOLE_NET stage trains the member's rows of each global
     * batch, gradients summed over the group; validation is sharded and the
     * epoch figures summed, so every member records the same epochs. A stop
     * or a yield wished by a callback goes to the whole group through its
     * controls. Only the leader (member 0) evaluates and emits the model. */
    struct group *group;
    /* Continue from a snapshot (same configuration) instead of from scratch. */
    const trial_snapshot *resume;
    /* Called after every epoch; nonzero stops the trial (TL_ESTOPPED). */
    int (*epoch_done)(void *ctx, const trial_snapshot *s);
    /* Called after every training step; nonzero stops the trial at this
     * step boundary (the epoch in progress is abandoned: a resume repeats it). */
    int (*step_done)(void *ctx, int epoch, size_t step, size_t steps, double loss);
    /* Called after every batch of images through the net (training,
     * validation, evaluation, extraction): a pass without training steps
     * can take minutes, and the caller must show it is alive (may be NULL). */
    void (*alive)(void *ctx);
    /* Called once with the kept model (spec with classes, all tensors)
     * before `out` is written. */
    int (*model_done)(void *ctx, const model_spec *spec, const tset *tensors);
    void *cb_ctx;
    /* Progress, one line at a time (no newline); NULL: quiet. */
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
} trial_cfg;

/* trial_cfg with the CLI's defaults: adam 1e-3, batch 32, 5 epochs, frozen,
 * validation_split 0.2, seed 42. */
void trial_cfg_default(trial_cfg *c);
/* mode, fine_tune_at and stage1_epochs from a sweep's mode (the trial turns
 * them back into one for its plan, sweep_plan.h). */
void trial_cfg_set_mode(trial_cfg *c, const sweep_mode *m);

typedef struct {
    int n_classes;
    char **classes;                 /* owned */
    size_t n_train, n_val, n_test;
    trial_epoch *epochs;            /* n_epochs, owned */
    int n_epochs;
    int best_epoch;                 /* 1-based; the last epoch without validation */
    int stopped_epoch;              /* early stopping ended it after this epoch; 0: ran them all */
    double best_val_accuracy;
    double best_value;              /* select_metric at best_epoch */
    /* Backbone forward passes, counted in images (every image of every
     * batch that ran a backbone). Frozen without augmentation: exactly
     * n_train + n_val + n_test. */
    size_t backbone_images;
    int features_cached;            /* frozen mode used the feature cache */
    /* Best model on the test set (or val when there is no test set). */
    const char *eval_split;         /* "test", "val" or NULL when neither exists */
    double eval_loss, eval_accuracy;
    int64_t *confusion;             /* n_classes^2: [label * n + predicted], owned */
    size_t bad_images;              /* skipped by the loaders */
    int yielded;                    /* ended (TL_ESTOPPED) after its epoch by a yield */
} trial_result;

/* Runs the trial. On error r holds what was done so far (free it anyway);
 * TL_ESTOPPED when a callback asked it to stop. */
int trial_run(const trial_cfg *cfg, trial_result *r, tl_err *e);
void trial_result_free(trial_result *r);

/* Head ops from "gap,dense128,dropout0.2" (also flatten, dense128relu6,
 * dense64linear; dense defaults to relu). *ops malloc'd. */
int trial_parse_head(const char *s, model_head_op **ops, int *n, tl_err *e);

/* The frozen backbone of weights file `path` (spec w, tensors wts) as a
 * feature extractor for size x size images, batches up to `batch`,
 * inference mode with BN folded; pooled: ends in global average pooling
 * (features (1,1,C)), else the last feature map. net_free it. */
int trial_extractor_build(net *ext, const model_spec *w, const tset *wts, const char *path,
                          int size, int pooled, int batch, tl_err *e);

/* Evaluates a model file (spec with classes) on one folder of class
 * folders through the full net: accuracy over the images. For checks that
 * a written model is the model that was kept. */
int trial_evaluate_file(const char *model_path, const char *dir, int batch, double *accuracy,
                        tl_err *e);

#endif
