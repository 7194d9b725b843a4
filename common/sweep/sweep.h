/* The sweep file (YAML, Keras vocabulary) and its grid.
 *
 * sweep_load() parses, validates and expands in one go, before anything is
 * created on disk: a sweep that loads is a sweep that can run. A bad file
 * gives one line, `FILE:LINE:COL: KEY.PATH[i]: what was expected`, e.g.
 *   sweep.yaml:14:31: grid.learning_rate[2]: expected a number > 0, got -1e-3
 *
 * Grid values are lists; a scalar is a one-element list. With search
 * method random, trials are drawn instead (sweep_grid.c). The grid's are the
 * cartesian product in this order, outermost first (stable: it is the
 * order of the journal and of the dry-run table):
 *   backbone, mode, learning_rate, optimizer, batch_size, weight_decay,
 *   momentum, schedule, precision, label_smoothing, head, dense_units,
 *   dropout, augment, image_size
 * each list in the order the file gives it.
 *
 * Enums keep the order of their engine counterparts (sweep_optimizer as
 * optim_kind, sweep_act as net_act, sweep_head_kind as net_head_kind,
 * sweep_engine as nn_backend, sweep_precision as nn_precision) so the
 * worker converts by cast; common/ does not include worker/ headers. */
#ifndef TLSWEEP_SWEEP_H
#define TLSWEEP_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "common/data/data_augment.h"
#include "common/base/err.h"

typedef enum {
    SWEEP_FROZEN,                 /* base.trainable = False, BN in inference mode */
    SWEEP_FINE_TUNE,              /* every layer trains */
    SWEEP_FINE_TUNE_AT,           /* layers from fine_tune_at on train */
    SWEEP_FROZEN_THEN_FINE_TUNE,  /* Keras's two-stage recipe: frozen_epochs frozen, then fine_tune_at */
} sweep_mode_kind;

typedef struct {
    sweep_mode_kind kind;
    int fine_tune_at;    /* FINE_TUNE_AT, FROZEN_THEN_FINE_TUNE */
    int frozen_epochs;   /* FROZEN_THEN_FINE_TUNE: epochs of the first stage, < sweep epochs */
} sweep_mode;

typedef enum { SWEEP_ADAM, SWEEP_SGD, SWEEP_RMSPROP } sweep_optimizer;
typedef enum { SWEEP_HEAD_GAP, SWEEP_HEAD_FLATTEN, SWEEP_HEAD_DENSE, SWEEP_HEAD_DROPOUT } sweep_head_kind;
typedef enum { SWEEP_ACT_LINEAR, SWEEP_ACT_RELU, SWEEP_ACT_RELU6 } sweep_act;

typedef struct {
    sweep_head_kind kind;
    int units;           /* DENSE */
    sweep_act act;       /* DENSE */
    float rate;          /* DROPOUT */
} sweep_head_op;

/* A head as model.head spells it: the layers before the classifier
 * Dense(classes), which the trial adds. As many layers as a model file
 * holds (MODEL_MAX_HEAD_OPS). */
enum { SWEEP_MAX_HEAD_OPS = 64 };
typedef struct {
    sweep_head_op *op;
    int n;
} sweep_head;

/* grid.augment: a preset name or a mapping as data.augment spells it.
 * The presets use only what data.augment expresses (docs/sweep-file.md):
 *   none    everything off
 *   light   horizontal_flip, rotation_range 10, width/height_shift_range 0.1,
 *           zoom_range 0.1
 *   strong  horizontal_flip, rotation_range 30, width/height_shift_range 0.2,
 *           zoom_range 0.2, brightness_range [0.8, 1.2], contrast 0.2 */
typedef struct {
    const char *preset;  /* static "none", "light", "strong"; NULL for a mapping */
    data_augment_cfg cfg;
} sweep_augment;

/* Learning-rate schedules, per trial. `constant`, `cosine` (to 0 over the
 * trial's steps), or {step: {every: EPOCHS, factor: F}}; the trainer turns
 * epochs into steps once it knows the batches per epoch. */
typedef enum { SWEEP_SCHED_CONSTANT, SWEEP_SCHED_COSINE, SWEEP_SCHED_STEP } sweep_sched_kind;
typedef struct {
    sweep_sched_kind kind;
    int every_epochs;    /* STEP */
    double factor;       /* STEP */
} sweep_sched;

typedef enum { SWEEP_VAL_ACCURACY, SWEEP_VAL_LOSS, SWEEP_ACCURACY, SWEEP_LOSS } sweep_metric;

/* The engine's backend (`engine:`, one for the sweep: like threads it
 * changes the speed, not what a trial is) and compute precision
 * (`grid.precision`, an axis: a bf16 trial is another trial than its fp32
 * twin). bf16 computes in bf16 with fp32 master weights and needs a CPU
 * with AVX512_BF16 and a build with oneDNN (sweep_check_host). */
typedef enum { SWEEP_ENGINE_AUTO, SWEEP_ENGINE_OPENBLAS, SWEEP_ENGINE_ONEDNN } sweep_engine;
typedef enum { SWEEP_FP32, SWEEP_BF16 } sweep_precision;

/* An axis of grid: is a list (the grid's values; `{choice: [...]}` is the
 * same list) or, for search method random only, a range to sample:
 * learning_rate and weight_decay take uniform / log_uniform, momentum
 * and label_smoothing uniform, batch_size int_uniform (both ends included). */
typedef enum {
    SWEEP_DIST_LIST,
    SWEEP_DIST_UNIFORM,
    SWEEP_DIST_LOG_UNIFORM,
    SWEEP_DIST_INT_UNIFORM,
} sweep_dist_kind;
typedef struct {
    sweep_dist_kind kind;
    double lo, hi;       /* not LIST: lo < hi; LOG_UNIFORM: lo > 0 */
} sweep_dist;

/* early_stopping: per trial, Keras's EarlyStopping (early_stop.h). */
typedef struct {
    int enabled;            /* early_stopping: given */
    sweep_metric monitor;   /* default val_loss, as Keras */
    int patience;           /* epochs without improvement before stopping; default 0 */
    double min_delta;       /* >= 0: a smaller change is no improvement */
    int mode_max;           /* from the monitor's name: *accuracy* max, else min */
    int restore_best_weights;
} sweep_early_stop;

/* search.method: grid (the cartesian product, the default), random
 * (search.trials configurations drawn with search.seed), or one of them
 * trained in rungs (common/sweep/search.h): successive_halving
 * (synchronous: a rung's decisions wait for all its trials) and asha
 * (asynchronous: a free worker promotes whatever qualifies now). With
 * search.trials they draw as random does, without it they take the grid. */
typedef enum {
    SWEEP_SEARCH_GRID,
    SWEEP_SEARCH_RANDOM,
    SWEEP_SEARCH_SHA,
    SWEEP_SEARCH_ASHA,
} sweep_search_method;

/* Where the file gave a value, for messages after the parse
 * ("FILE:LINE:COL: PATH: ..."); line 0: not given. */
typedef struct {
    int line, col;
    char path[48];
} sweep_at;

typedef struct {
    const char *backbone;   /* static name: "mobilenet_v2", "resnet50", "vgg16", "inception_v3" */
    char *path;
} sweep_weights;

typedef struct {
    char id[128];           /* from the content, unique in the sweep, [A-Za-z0-9._-] only */
    uint64_t key;           /* FNV-1a of everything that changes the trial's result (journal
                               key): the whole grid point and shared settings, untruncated,
                               and the dataset index fingerprint once bound (sweep_bind_data) */
    int index;              /* position in the grid order */
    const char *backbone;
    const char *weights;    /* path, from weights: */
    sweep_mode mode;
    double learning_rate;
    sweep_optimizer optimizer;
    int batch_size;
    double weight_decay;    /* 0 when the file gives none */
    double momentum;        /* -1 when the file gives none: the optimizer's Keras default */
    double label_smoothing; /* in [0, 1); 0 (none) when the file gives none; in the id
                               and key only when nonzero, so other trials keep theirs */
    /* The head, augmentation and input size of the trial: model.head,
     * data.augment and data.image_size unless grid: makes them axes. Each
     * is in the id and key only when it differs from the sweep-wide one. */
    int head_item;          /* grid.head item, -1: model.head or the parts below */
    int dense_units;        /* grid.dense_units: hidden Dense(units, relu); 0: none */
    double dropout;         /* grid.dropout: Dropout(rate) before the classifier; 0: none */
    int augment_item;       /* grid.augment item, -1: data.augment */
    data_augment_cfg augment;
    int image_size;         /* square input side */
    sweep_sched sched;
    sweep_precision precision;  /* in the id, key and cache text only when bf16, so
                                   an fp32 trial keeps the identity it had before
                                   sweeps had precisions */
    int epochs;
    /* Frozen feature cache: trials with the same cache_key train their heads
     * on the same backbone features. -1 / 0 for trials that run the backbone
     * every epoch (fine-tune modes, or any trial when augmentation is on).
     * Whether a trial reads the cache is its plan's (sweep_plan.h). */
    int cache_group;
    uint64_t cache_key;
} sweep_trial;

typedef struct {
    uint64_t key;           /* FNV-1a of cache_text */
    char *text;             /* backbone|weights path|image size|preprocessing, then
                               |bf16 for bf16 trials, |unpooled (|pooled) for heads
                               that do not (do) start with global_average_pooling
                               when model.head does (does not) (owned) */
    int n_trials;
} sweep_cache_group;

typedef struct {
    char *file;             /* as given to sweep_load, for messages */
    char *name;             /* name:, or the file's base name without extension */

    /* data: */
    char *train_dir, *val_dir, *test_dir;
    double validation_split;
    int image_size;         /* square input side */
    uint64_t data_seed;     /* data.seed, or seed */
    data_augment_cfg augment;

    /* model: */
    sweep_head_op *head;
    int n_head;

    sweep_weights *weights;
    int n_weights;

    /* grid: (the lists as given; n_* >= 1 after a successful load) */
    const char **backbones; int n_backbones;
    sweep_mode *modes;      int n_modes;
    double *learning_rates; int n_learning_rates;
    sweep_optimizer *optimizers; int n_optimizers;
    int *batch_sizes;       int n_batch_sizes;
    double *weight_decays;  int n_weight_decays;   /* 0 when absent: {0} */
    double *momenta;        int n_momenta;         /* 0 when absent: {-1} */
    sweep_sched *scheds;    int n_scheds;          /* 0 when absent: {constant} */
    sweep_precision *precisions; int n_precisions; /* 0 when absent: {fp32} */
    double *label_smoothings; int n_label_smoothings; /* 0 when absent: {0} */
    /* grid.head: whole heads; or its parts, grid.dense_units and
     * grid.dropout, for the head GAP -> Dense(units, relu) -> Dropout(rate)
     * (a part the file leaves out is not in it; a dropout of 0 neither).
     * 0 when absent: model.head for every trial. */
    sweep_head *heads;      int n_heads;
    int *dense_units;       int n_dense_units;
    double *dropouts;       int n_dropouts;
    sweep_augment *augments; int n_augments;       /* 0 when absent: data.augment */
    int *image_sizes;       int n_image_sizes;     /* 0 when absent: data.image_size */
    /* sampled axes: kind LIST (zeroed) unless the file gives a range; a
     * sampled axis keeps a one-element list (its low end) as placeholder */
    sweep_dist lr_dist, batch_dist, wd_dist, mom_dist, ls_dist, du_dist, do_dist;

    sweep_early_stop early_stop;

    /* search: */
    sweep_search_method search;
    int search_trials;      /* RANDOM (and SHA/ASHA when given): configurations to
                               draw; 0: SHA/ASHA take the grid */
    uint64_t search_seed;   /* search.seed, or seed */
    int min_epochs;         /* SHA/ASHA: the first rung's epochs (default 1) */
    int reduction_factor;   /* SHA/ASHA: eta >= 2 (default 3): 1/eta of a rung go on */
    /* SHA/ASHA: what ranks a rung's trials (search.metric, its goal from
     * its name as early_stopping's); default the select metric and goal.
     * On a small validation set val_loss tells the later winner sooner than
     * val_accuracy, which moves in steps of one image. */
    sweep_metric search_metric;
    int search_goal_max;

    int epochs;
    sweep_metric metric;
    int goal_max;           /* 1: max, 0: min */
    char *out;
    uint64_t seed;
    int threads;            /* 0: automatic (cores per node / ranks per node) */
    /* ranks_per_trial: the ranks that train one trial together (data
     * parallel), or SWEEP_RANKS_AUTO: the idle workers join the trials when
     * trials are fewer than workers. Not part of a trial's identity. */
    int ranks_per_trial;
    /* engine: for every trial; engine_set 0 when the file gives none (then
     * TLSWEEP_ENGINE in the workers' environment, else auto) */
    int engine_set;
    sweep_engine engine;
    /* feature_cache: false runs frozen trials the Keras way, the backbone
     * forward every epoch (for comparisons; the cache is on by default) */
    int no_feature_cache;
    /* a trial's checkpoint is written after an epoch only when the last one
     * is at least this old (0: every epoch); long epochs always checkpoint */
    double checkpoint_seconds;
    /* a worker silent this long (no message, not even a heartbeat) stops the
     * run, resumably; workers heartbeat well within it */
    double worker_timeout;
    /* the first bf16 in grid.precision and an `engine: onednn`, where
     * sweep_check_host's refusals point */
    sweep_at bf16_at, onednn_at;
    /* the first sampled axis (a grid search refuses it) */
    sweep_at sampled_at;

    /* The dataset the trials' keys belong to (sweep_bind_data); 0/0 until bound. */
    uint64_t data_fingerprint;
    int data_bound;

    /* The expansion. cache_groups: one per distinct frozen feature cache. */
    sweep_trial *trials;
    size_t n_trials;
    sweep_cache_group *cache_groups;
    int n_cache_groups;
} sweep;

/* Reads, parses, validates and expands path. On error s is left empty
 * (sweep_free is still safe) and e holds one line. Touches nothing on disk
 * except reading path. */
int sweep_load(sweep *s, const char *path, tl_err *e);
/* The same, keeping the file's bytes (*text, NUL-terminated, free it) for
 * whoever must hand the exact sweep on (the coordinator to its workers). */
int sweep_load_text(sweep *s, const char *path, char **text, size_t *len, tl_err *e);
/* The same from memory; file names the text in messages. */
int sweep_parse(sweep *s, const char *file, const char *text, size_t len, tl_err *e);
void sweep_free(sweep *s);

/* Fills s->trials and s->cache_groups from the parsed lists (sweep_load
 * calls it; callers that build a sweep in code may too). */
enum { SWEEP_MAX_TRIALS = 100000 };
#define SWEEP_WORKER_TIMEOUT_DEFAULT 60.0
enum { SWEEP_RANKS_AUTO = 0, SWEEP_MAX_RANKS_PER_TRIAL = 65536 };
int sweep_expand(sweep *s, tl_err *e);
/* The grid's configurations: the product of its lists' lengths. */
double sweep_grid_size(const sweep *s);
/* Frees the expansion and zeroes its counts (sweep_free does it too). */
void sweep_expand_free(sweep *s);
/* Makes the dataset part of every trial's identity: records the index
 * fingerprint (data_index_fingerprint: file list, sizes, mtimes) and
 * expands again, so that every trial's key hashes it. A trial's results
 * are reused only for the same files; the coordinator and every worker
 * bind the same fingerprint (they check they index the same files). */
int sweep_bind_data(sweep *s, uint64_t fingerprint, tl_err *e);
/* Whether this host can run what the file asks: bf16 needs a CPU with
 * AVX512_BF16 (common/base/cpu.h) and a build with oneDNN, `engine: onednn`
 * a build with oneDNN. 0, or TL_EINVAL with one line at the value:
 *   sweep.yaml:12:22: grid.precision[1]: bf16 needs a CPU with AVX512_BF16 ...
 * Not part of sweep_parse: the file is the same everywhere, the host is
 * not (`tlsweep merge` reads a sweep wherever it runs, a dry run on a login
 * node only notes it). coord_preflight asks it before anything is written,
 * and every worker in its setup (ranks may run on other nodes). */
int sweep_check_host(const sweep *s, tl_err *e);
/* The weights path for backbone, or NULL. */
const char *sweep_weights_path(const sweep *s, const char *backbone);

/* The value of d at u in [0, 1), rounded to 6 significant digits (so a
 * trial's id shows it whole) and kept within [lo, hi]. */
double sweep_dist_value(const sweep_dist *d, double u);
/* Uniform double in [0, 1) with 53 bits: the draw for axis `axis` of
 * random trial `k`, attempt `attempt` (a repeat of an earlier trial draws
 * again), a pure function of the seed. */
double sweep_draw_u(uint64_t seed, uint64_t k, int attempt, int axis);

/* Whether the trials are drawn (random, or SHA/ASHA with search.trials)
 * rather than the grid's product. */
int sweep_draws(const sweep *s);
/* Whether the trials train in rungs (successive_halving, asha). */
int sweep_has_rungs(const sweep *s);
const char *sweep_search_name(sweep_search_method m);

/* Names as the file spells them. */
const char *sweep_optimizer_name(sweep_optimizer o);
const char *sweep_metric_name(sweep_metric m);
/* An epoch's figure for metric m, out of its four. */
double sweep_metric_of(sweep_metric m, double loss, double accuracy, double val_loss,
                       double val_accuracy);
const char *sweep_engine_name(sweep_engine g);
const char *sweep_precision_name(sweep_precision p);
/* "frozen", "fine_tune", "fine_tune_at: 100", "frozen_then_fine_tune: 5 then 100". */
void sweep_mode_str(const sweep_mode *m, char *buf, size_t n);
/* Keras preprocessing of a backbone's own weights: "tf" or "caffe". */
const char *sweep_backbone_preprocessing(const char *backbone);
/* Smallest input side (as net_backbone_min_size), -1 for an unknown name. */
int sweep_backbone_min_size(const char *backbone);
/* The trial's head (model.head, a grid.head item, or the one its
 * dense_units and dropout make) into ops[SWEEP_MAX_HEAD_OPS]; its length. */
int sweep_trial_head(const sweep *s, const sweep_trial *t, sweep_head_op *ops);
/* Whether the head's features are pooled (it starts with global_average_pooling). */
int sweep_head_pooled(const sweep_head_op *ops, int n);
/* "gap > dense 128 relu > dropout 0.2" (the classifier not shown). */
void sweep_head_str(const sweep_head_op *ops, int n, char *buf, size_t size);
/* The trial's augmentation as results show it: the preset's name, or
 * "none", or its switches ("flip rotation 10 zoom 0.9-1.1 ..."). */
void sweep_augment_str(const sweep *s, const sweep_trial *t, char *buf, size_t size);
/* A preset of grid.augment by name into *cfg; TL_ENOTFOUND for another name. */
int sweep_augment_preset(const char *name, data_augment_cfg *cfg);
/* Whether the trial's backbone runs once per image (frozen cache) for some epochs. */
int sweep_trial_uses_cache(const sweep_trial *t);

#endif
