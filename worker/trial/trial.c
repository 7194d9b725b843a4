/* One transfer-learning trial (see trial.h). */
#include "worker/trial/trial.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base/clock.h"
#include "common/data/data.h"
#include "common/base/rng.h"
#include "worker/engine/loader.h"
#include "worker/net/backbones.h"
#include "worker/net/net_io.h"
#include "worker/engine/metrics.h"
#include "worker/engine/train.h"

static void logf_(const trial_cfg *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const trial_cfg *c, const char *fmt, ...)
{
    if (!c->log)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->log(c->log_ctx, buf);
}

static void warn_bad(void *ctx, const char *line)
{
    const trial_cfg *c = ctx;
    logf_(c, "warning: %s", line);
}

void trial_cfg_default(trial_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->validation_split = 0.2;
    c->mode = MODEL_FROZEN;
    c->optim = optim_cfg_default(OPTIM_ADAM);
    c->optim.learning_rate = 1e-3;
    c->batch = 32;
    c->epochs = 5;
    c->seed = 42;
    c->split_seed = 42;
    c->select_metric = SWEEP_VAL_ACCURACY;
    c->select_max = 1;
    data_augment_cfg_default(&c->augment);
}

void trial_result_free(trial_result *r)
{
    for (int i = 0; i < r->n_classes; i++)
        free(r->classes[i]);
    free(r->classes);
    free(r->epochs);
    free(r->confusion);
    memset(r, 0, sizeof *r);
}

/* ---- head parsing -------------------------------------------------------------- */

int trial_parse_head(const char *s, model_head_op **ops, int *n, tl_err *e)
{
    *ops = NULL;
    *n = 0;
    char *copy = strdup(s);
    model_head_op *v = calloc(MODEL_MAX_HEAD_OPS, sizeof *v);
    int rc = 0, k = 0;
    if (!copy || !v) {
        rc = tl_errf(e, TL_ENOMEM, "head: out of memory");
        goto out;
    }
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        if (k == MODEL_MAX_HEAD_OPS) {
            rc = tl_errf(e, TL_EINVAL, "head: more than %d layers", MODEL_MAX_HEAD_OPS);
            goto out;
        }
        model_head_op op = {0};
        char *end = NULL;
        if (!strcmp(tok, "gap") || !strcmp(tok, "global_average_pooling")) {
            op.kind = MODEL_HEAD_GAP;
        } else if (!strcmp(tok, "flatten")) {
            op.kind = MODEL_HEAD_FLATTEN;
        } else if (!strncmp(tok, "dense", 5)) {
            op.kind = MODEL_HEAD_DENSE;
            long u = strtol(tok + 5, &end, 10);
            op.units = (int)u;
            op.act = MODEL_ACT_RELU;
            if (end == tok + 5 || u < 1 || u > 1000000) {
                rc = tl_errf(e, TL_EINVAL, "head: '%s' needs a unit count (dense128)", tok);
                goto out;
            }
            if (!strcmp(end, "relu6"))
                op.act = MODEL_ACT_RELU6;
            else if (!strcmp(end, "linear"))
                op.act = MODEL_ACT_LINEAR;
            else if (*end && strcmp(end, "relu")) {
                rc = tl_errf(e, TL_EINVAL, "head: '%s': unknown activation '%s'", tok, end);
                goto out;
            }
        } else if (!strncmp(tok, "dropout", 7)) {
            op.kind = MODEL_HEAD_DROPOUT;
            op.rate = strtof(tok + 7, &end);
            if (end == tok + 7 || *end || !(op.rate >= 0 && op.rate < 1)) {
                rc = tl_errf(e, TL_EINVAL, "head: '%s' needs a rate in [0, 1) (dropout0.2)", tok);
                goto out;
            }
        } else {
            rc = tl_errf(e, TL_EINVAL,
                         "head: unknown layer '%s' (gap, flatten, dense<units>, dropout<rate>)",
                         tok);
            goto out;
        }
        v[k++] = op;
    }
    if (!k || (v[0].kind != MODEL_HEAD_GAP && v[0].kind != MODEL_HEAD_FLATTEN))
        rc = tl_errf(e, TL_EINVAL, "head: '%s' must start with gap or flatten", s);
out:
    free(copy);
    if (rc)
        free(v);
    else {
        *ops = v;
        *n = k;
    }
    return rc;
}

/* ---- pieces ---------------------------------------------------------------------- */

static size_t *ids_of(const data_index *ix, data_split s, size_t *n)
{
    *n = data_index_count(ix, s);
    size_t *ids = malloc((*n ? *n : 1) * sizeof *ids);
    if (!ids)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < ix->n_items; i++)
        if (ix->split[i] == (uint8_t)s)
            ids[k++] = i;
    return ids;
}

/* Fisher-Yates over [0, n) from (seed, epoch): the order of an epoch. */
static void epoch_order(size_t *perm, size_t n, uint64_t seed, int epoch)
{
    rng_state r;
    rng_init(&r, rng_mix(rng_mix(seed, 0x5348554646ull), (uint64_t)epoch));
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(&r) % i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

/* Copies every parameter of `from` whose name `to` also has (same size). */
static void copy_params_by_name(net *to, net *from, int first_layer)
{
    for (int i = 0; i < from->n_params; i++) {
        const net_param *p = &from->params[i];
        if (p->layer < first_layer)
            continue;
        net_param *q = net_find_param(to, p->name);
        if (q && q->n == p->n)
            memcpy(to->weights + q->off, from->weights + p->off, p->n * sizeof(float));
    }
    net_weights_changed(to);
}

/* A fresh head from the trial's seed: Glorot uniform kernels, zero biases
 * (Keras Dense defaults). */
static void init_head(net *n, uint64_t seed)
{
    rng_state r;
    rng_init(&r, rng_mix(seed, 0x48454144ull));
    for (int i = 0; i < n->n_params; i++) {
        net_param *p = &n->params[i];
        if (p->layer <= n->features)
            continue;
        float *w = n->weights + p->off;
        if (p->ndim == 2) {
            float lim = sqrtf(6.0f / (float)(p->shape[0] + p->shape[1]));
            for (size_t k = 0; k < p->n; k++)
                w[k] = (2.0f * rng_uniform(&r) - 1.0f) * lim;
        } else {
            memset(w, 0, p->n * sizeof(float));
        }
    }
    net_weights_changed(n);
}

typedef struct {
    const trial_cfg *cfg;
    const data_index *ix;
    data_image_cfg image;
    trial_result *r;
} ctx;

typedef int (*batch_fn)(void *u, const loader_batch *b);

/* Runs fn over the images ids (in that order) through a loader. */
static int each_batch(ctx *c, const size_t *ids, size_t n, const data_augment_cfg *aug, int epoch,
                      batch_fn fn, void *u, tl_err *e)
{
    if (!n)
        return 0;
    loader_cfg lc = {
        .items = c->ix->items,
        .ids = ids,
        .n_ids = n,
        .batch_size = c->cfg->batch,
        .image = c->image,
        .augment = aug,
        .seed = c->cfg->seed,
        .trial = 0,
        .epoch = (uint64_t)epoch,
        .threads = c->cfg->loader_threads > 0 ? c->cfg->loader_threads : 2,
        .warn = warn_bad,
        .warn_ctx = (void *)c->cfg,
    };
    loader *L;
    int rc = loader_open(&L, &lc, e);
    if (rc)
        return rc;
    loader_batch b;
    while ((rc = loader_next(L, &b, e)) == 1)
        if ((rc = fn(u, &b)) != 0)
            break;
    size_t bad = loader_skipped(L);
    if (bad > c->r->bad_images)
        c->r->bad_images = bad;
    loader_close(L);
    return rc < 0 ? rc : 0;
}

/* ---- the feature cache (frozen mode) ------------------------------------------------ */

typedef struct {
    net *ext;
    float *feats;      /* (n, F) */
    int *labels;       /* (n) */
    size_t F, pos, n;
    size_t *counter;
    const trial_cfg *cfg;
    double t0, shown;  /* start, last progress line */
} extract_ctx;

/* Feature extraction over a large dataset takes minutes: a line every 10 s. */
#define EXTRACT_PROGRESS_SECONDS 10.0

static int extract_batch(void *u, const loader_batch *b)
{
    extract_ctx *x = u;
    net_forward(x->ext, b->x, b->n, 0);
    memcpy(x->feats + x->pos * x->F, net_output(x->ext), (size_t)b->n * x->F * sizeof(float));
    memcpy(x->labels + x->pos, b->labels, (size_t)b->n * sizeof(int));
    x->pos += (size_t)b->n;
    *x->counter += (size_t)b->n;
    double t = tl_now();
    if (t - x->shown >= EXTRACT_PROGRESS_SECONDS && x->pos < x->n) {
        x->shown = t;
        logf_(x->cfg, "features: %zu/%zu images (%.0f img/s)", x->pos, x->n,
              x->pos / (t - x->t0));
    }
    return 0;
}

static int extract(ctx *c, net *ext, const size_t *ids, size_t n, const data_augment_cfg *aug,
                   int epoch, float *feats, int *labels, tl_err *e)
{
    size_t F = (size_t)net_last(ext)->h * net_last(ext)->w * net_last(ext)->c;
    double t0 = tl_now();
    extract_ctx x = {ext, feats, labels, F, 0, n, &c->r->backbone_images, c->cfg, t0, t0};
    return each_batch(c, ids, n, aug, epoch, extract_batch, &x, e);
}

/* ---- running a net over a split ---------------------------------------------------- */

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
} run_ctx;

static int run_batch(void *u, const loader_batch *b)
{
    run_ctx *r = u;
    int h = 0;
    float l = r->train ? train_step(r->t, b->x, b->labels, b->n, &h)
                       : train_eval(r->t, b->x, b->labels, b->n, &h);
    r->loss += (double)l * b->n;
    r->hits += h;
    r->seen += b->n;
    if (r->counter)
        *r->counter += (size_t)b->n;
    if (r->cm)
        metrics_confusion_add(r->cm, net_output(r->t->n), b->labels, (size_t)b->n, NULL);
    r->step++;
    if (r->train && r->cfg && r->cfg->step_done &&
        r->cfg->step_done(r->cfg->cb_ctx, r->epoch, r->step, r->steps, r->loss / r->seen))
        return TL_ESTOPPED;
    return 0;
}

/* Over cached features rows order[0..n) (order NULL: in order). */
static int run_cached(run_ctx *r, const float *feats, const int *labels, size_t F,
                      const size_t *order, size_t n, int batch, float *xb, int *yb)
{
    r->steps = (n + (size_t)batch - 1) / (size_t)batch;
    for (size_t s = 0; s < n; s += (size_t)batch) {
        int bs = (int)(n - s < (size_t)batch ? n - s : (size_t)batch);
        for (int i = 0; i < bs; i++) {
            size_t row = order ? order[s + i] : s + i;
            memcpy(xb + (size_t)i * F, feats + row * F, F * sizeof(float));
            yb[i] = labels[row];
        }
        loader_batch b = {.x = xb, .labels = yb, .n = bs};
        int rc = run_batch(r, &b);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- the trial ------------------------------------------------------------------------ */

static int build_spec(model_spec *s, const model_spec *w, const trial_cfg *cfg,
                      const data_index *ix, const model_head_op *head, int n_head, int size,
                      tl_err *e)
{
    int rc = model_spec_set_str(&s->backbone, w->backbone, e);
    s->alpha = w->alpha;
    s->height = s->width = size;
    s->convention = w->convention;
    for (int i = 0; i < n_head && !rc; i++)
        rc = model_spec_add_head(s, head[i], e);
    s->num_classes = ix->n_classes;
    s->loss = MODEL_LOSS_SOFTMAX;
    s->mode = cfg->mode;
    s->fine_tune_at = cfg->mode == MODEL_FINE_TUNE_AT ? cfg->fine_tune_at : 0;
    s->preproc = w->preproc;
    for (int i = 0; i < ix->n_classes && !rc; i++)
        rc = model_spec_add_class(s, ix->classes[i], e);
    if (!rc)
        rc = model_spec_set_str(&s->source_path, w->source_path, e);
    if (!rc)
        rc = model_spec_set_str(&s->source_sha256, w->source_sha256, e);
    if (!rc)
        rc = model_spec_set_str(&s->importer, w->importer, e);
    if (!rc)
        rc = model_spec_set_str(&s->tlsweep_version, w->tlsweep_version, e);
    return rc;
}

/* Loads the backbone's tensors of ts into n; a backbone parameter the file
 * does not provide is an error. */
static int load_backbone(net *n, const tset *ts, const char *path, tl_err *e)
{
    net_load_summary sum;
    int rc = net_load_tset(n, ts, 0, 0, &sum, e);
    if (rc)
        return rc;
    int head = 0;
    for (int i = 0; i < n->n_params; i++)
        head += n->features >= 0 && n->params[i].layer > n->features;
    if (sum.missing > head || sum.matched == 0)
        return tl_errf(e, TL_ENOTFOUND, "%s: no weights for %s (%d backbone parameters missing)",
                       path, sum.missing > head ? sum.first_missing : "any parameter",
                       sum.missing - head);
    return 0;
}

int trial_extractor_build(net *ext, const model_spec *w, const tset *wts, const char *path,
                          int size, int pooled, int batch, tl_err *e)
{
    net_init(ext, size, size, 3, (net_convention)w->convention);
    net_backbone_cfg bc = {.alpha = w->alpha};
    int f = net_backbone(ext, w->backbone, &bc, e);
    if (f >= 0 && pooled)
        f = net_gap(ext, "global_average_pooling2d", f);
    int rc = f < 0 ? f : 0;
    if (!rc) {
        net_set_trainable_from(ext, ext->n_layers);
        rc = net_finalize(ext, batch, 1, e);
    }
    if (!rc)
        rc = load_backbone(ext, wts, path, e);
    if (rc)
        net_free(ext);
    return rc;
}

static void record_epoch(trial_result *r, const trial_cfg *cfg, int ep, const run_ctx *tr,
                         const run_ctx *va, double secs)
{
    trial_epoch *x = &r->epochs[r->n_epochs++];
    x->epoch = ep;
    x->loss = tr->seen ? tr->loss / tr->seen : 0;
    x->accuracy = tr->seen ? (double)tr->hits / tr->seen : 0;
    x->val_loss = va->seen ? va->loss / va->seen : -1;
    x->val_accuracy = va->seen ? (double)va->hits / va->seen : -1;
    x->seconds = secs;
    x->images_per_s = secs > 0 ? tr->seen / secs : 0;
    if (va->seen)
        logf_(cfg, "epoch %d/%d  loss %.4f  accuracy %.4f  val_loss %.4f  val_accuracy %.4f  "
                   "%.2fs  %.0f img/s",
              ep, cfg->epochs, x->loss, x->accuracy, x->val_loss, x->val_accuracy, secs,
              x->images_per_s);
    else
        logf_(cfg, "epoch %d/%d  loss %.4f  accuracy %.4f  %.2fs  %.0f img/s", ep, cfg->epochs,
              x->loss, x->accuracy, secs, x->images_per_s);
}

static double epoch_metric(const trial_epoch *x, sweep_metric m)
{
    switch (m) {
    case SWEEP_VAL_LOSS: return x->val_loss;
    case SWEEP_ACCURACY: return x->accuracy;
    case SWEEP_LOSS: return x->loss;
    default: return x->val_accuracy;
    }
}

/* Keeps the epoch when it is the best so far by the selection metric;
 * returns 1 when it is. Ties keep the earlier epoch. */
static int keep_best(trial_result *r, const trial_cfg *cfg)
{
    const trial_epoch *x = &r->epochs[r->n_epochs - 1];
    int on_val = cfg->select_metric == SWEEP_VAL_ACCURACY || cfg->select_metric == SWEEP_VAL_LOSS;
    double v = epoch_metric(x, cfg->select_metric);
    /* without validation a val_ metric keeps the last epoch */
    int better = r->best_epoch == 0 || (on_val && x->val_accuracy < 0) ||
                 (cfg->select_max ? v > r->best_value : v < r->best_value);
    if (!better)
        return 0;
    r->best_epoch = x->epoch;
    r->best_val_accuracy = x->val_accuracy;
    r->best_value = v;
    return 1;
}

/* Puts a snapshot back into the training context t and the kept weights. */
static int resume_from(const trial_cfg *cfg, trial_result *r, train_ctx *t, float *best,
                       tl_err *e)
{
    const trial_snapshot *s = cfg->resume;
    if (!s)
        return 0;
    if (s->n_weights != t->n->n_weights || s->epoch < 1 || s->epoch > cfg->epochs ||
        s->best_epoch < 1 || s->best_epoch > s->epoch)
        return tl_errf(e, TL_ESHAPE,
                       "resume: the checkpoint holds %zu weights after epoch %d (kept %d); this "
                       "trial trains %zu weights for %d epochs",
                       s->n_weights, s->epoch, s->best_epoch, t->n->n_weights, cfg->epochs);
    int rc = optim_state_load(&t->opt, s->optim_state, s->n_optim, e);
    if (rc)
        return rc;
    memcpy(t->n->weights, s->weights, s->n_weights * sizeof(float));
    net_weights_changed(t->n);
    memcpy(best, s->best, s->n_weights * sizeof(float));
    memcpy(r->epochs, s->epochs, (size_t)s->epoch * sizeof *r->epochs);
    r->n_epochs = s->epoch;
    r->best_epoch = s->best_epoch;
    r->best_value = s->best_value;
    r->best_val_accuracy = r->epochs[s->best_epoch - 1].val_accuracy;
    return 0;
}

/* Hands the state after an epoch to epoch_done (the checkpoint). */
static int snapshot(const trial_cfg *cfg, const trial_result *r, const train_ctx *t,
                    const float *best)
{
    if (!cfg->epoch_done)
        return 0;
    trial_snapshot s = {r->n_epochs, t->n->weights, best, t->n->n_weights, t->opt.state,
                        t->opt.nstate, r->epochs, r->best_epoch, r->best_value};
    return cfg->epoch_done(cfg->cb_ctx, &s) ? TL_ESTOPPED : 0;
}

int trial_run(const trial_cfg *cfg, trial_result *r, tl_err *e)
{
    memset(r, 0, sizeof *r);
    if (cfg->batch < 1 || cfg->epochs < 1)
        return tl_errf(e, TL_EINVAL, "train: need batch >= 1 and epochs >= 1");
    model_spec wspec, spec;
    tset wts;
    data_index ix;
    net full, ext, hn;
    train_ctx tf, th;
    int have_full = 0, have_ext = 0, have_hn = 0, have_tf = 0, have_th = 0, have_ix = 0;
    model_head_op gap = {MODEL_HEAD_GAP, 0, MODEL_ACT_LINEAR, 0};
    const model_head_op *head = cfg->head ? cfg->head : &gap;
    int n_head = cfg->head ? cfg->n_head : 1;
    size_t *ids[3] = {0}, nids[3] = {0}, *order = NULL;
    float *feats[3] = {0}, *best = NULL, *xb = NULL;
    int *labels[3] = {0}, *yb = NULL;
    metrics_confusion cm = {0};
    model_spec_init(&wspec);
    model_spec_init(&spec);
    tset_init(&wts);
    memset(&ix, 0, sizeof ix);

    /* the weights and the index may come loaded (a worker keeps them
     * between trials); else they are read here */
    const model_spec *W = cfg->weights_spec ? cfg->weights_spec : &wspec;
    const tset *WT = cfg->weights_spec ? cfg->weights_tensors : &wts;
    int rc = 0;
    if (!cfg->weights_spec && (rc = model_read(cfg->weights, &wspec, &wts, e)))
        goto out;
    if (!W->backbone || !W->backbone[0]) {
        rc = tl_errf(e, TL_EFORMAT, "%s: the model file names no backbone", cfg->weights);
        goto out;
    }
    if (cfg->index) {
        ix = *cfg->index; /* borrowed: not freed here */
    } else {
        data_index_cfg dc = {cfg->train_dir, cfg->val_dir, cfg->test_dir,
                             cfg->val_dir ? 0 : cfg->validation_split, cfg->split_seed};
        if ((rc = data_index_build(&ix, &dc, e)))
            goto out;
        have_ix = 1;
    }
    for (int s = 0; s < 3; s++)
        if (!(ids[s] = ids_of(&ix, (data_split)s, &nids[s]))) {
            rc = tl_errf(e, TL_ENOMEM, "train: out of memory");
            goto out;
        }
    r->n_train = nids[DATA_TRAIN];
    r->n_val = nids[DATA_VAL];
    r->n_test = nids[DATA_TEST];
    if (!r->n_train) {
        rc = tl_errf(e, TL_EINVAL, "%s: no training images left after the split",
                     cfg->train_dir);
        goto out;
    }
    r->n_classes = ix.n_classes;
    r->classes = calloc((size_t)ix.n_classes, sizeof *r->classes);
    r->epochs = calloc((size_t)cfg->epochs, sizeof *r->epochs);
    r->confusion = calloc((size_t)ix.n_classes * ix.n_classes, sizeof *r->confusion);
    if (!r->classes || !r->epochs || !r->confusion) {
        rc = tl_errf(e, TL_ENOMEM, "train: out of memory");
        goto out;
    }
    for (int i = 0; i < ix.n_classes; i++)
        if (!(r->classes[i] = strdup(ix.classes[i]))) {
            rc = tl_errf(e, TL_ENOMEM, "train: out of memory");
            goto out;
        }

    int size = cfg->size > 0 ? cfg->size : W->height;
    if ((rc = build_spec(&spec, W, cfg, &ix, head, n_head, size, e)))
        goto out;
    /* frozen on the cache, the whole net only collects the final weights:
     * no batch-sized activations for it */
    int cached_only = cfg->mode == MODEL_FROZEN && !cfg->no_cache;
    if ((rc = net_build_from_spec(&full, &spec, cached_only ? 1 : cfg->batch, e)))
        goto out;
    have_full = 1;
    if ((rc = load_backbone(&full, WT, cfg->weights, e)))
        goto out;
    init_head(&full, cfg->seed);
    if ((rc = metrics_confusion_init(&cm, (size_t)ix.n_classes, e)))
        goto out;

    ctx c = {cfg, &ix, {size, size, (data_preprocess)spec.preproc, 0, 0}, r};
    int augment = data_augment_active(&cfg->augment);
    const data_augment_cfg *aug = augment ? &cfg->augment : NULL;
    if (!(order = malloc(nids[DATA_TRAIN] * sizeof *order))) {
        rc = tl_errf(e, TL_ENOMEM, "train: out of memory");
        goto out;
    }
    /* the eval set of the final report */
    data_split es = nids[DATA_TEST] ? DATA_TEST : DATA_VAL;
    r->eval_split = nids[DATA_TEST] ? "test" : nids[DATA_VAL] ? "val" : NULL;

    /* Keras's two-stage recipe: the head alone on the cache for stage1
     * epochs, then fine-tuning from fine_tune_at at a tenth of the rate. */
    int two = cfg->stage1_epochs > 0 && cfg->mode == MODEL_FINE_TUNE_AT;
    int stage1 = cfg->mode == MODEL_FROZEN ? cfg->epochs : two ? cfg->stage1_epochs : 0;
    if (two && stage1 >= cfg->epochs) {
        rc = tl_errf(e, TL_EINVAL, "train: %d frozen epochs leave none of %d to fine-tune",
                     stage1, cfg->epochs);
        goto out;
    }
    /* a checkpoint from the second stage skips the first */
    int in_stage2 = two && cfg->resume && cfg->resume->epoch > stage1;
    if (stage1 && (two || !cfg->no_cache) && !in_stage2) {
        /* ---- frozen: the backbone once per image, the head on the cache ---- */
        r->features_cached = 1;
        int pooled = head[0].kind == MODEL_HEAD_GAP;
        const net_layer *bl = &full.layers[full.features];
        int fh = pooled ? 1 : bl->h, fw = pooled ? 1 : bl->w;
        size_t F = (size_t)fh * fw * bl->c;
        const trial_features *given = augment ? NULL : cfg->features;
        if (given && (given->dim != F || given->n_items != ix.n_items)) {
            rc = tl_errf(e, TL_ESHAPE,
                         "train: the feature cache holds %zu images x %zu features; this "
                         "trial needs %zu x %zu",
                         given->n_items, given->dim, ix.n_items, F);
            goto out;
        }
        if (!given) {
            if ((rc = trial_extractor_build(&ext, W, WT, cfg->weights, size, pooled,
                                            cfg->batch, e)))
                goto out;
            have_ext = 1;
        }
        /* the head alone: (1,1,C) pooled features start with a flatten */
        model_head_op hops[MODEL_MAX_HEAD_OPS];
        net_head_op nops[MODEL_MAX_HEAD_OPS];
        memcpy(hops, head, (size_t)n_head * sizeof *head);
        if (pooled)
            hops[0].kind = MODEL_HEAD_FLATTEN;
        static const net_head_kind kinds[] = {NET_HEAD_GAP, NET_HEAD_FLATTEN, NET_HEAD_DENSE,
                                              NET_HEAD_DROPOUT};
        static const net_act acts[] = {NET_ACT_NONE, NET_ACT_RELU, NET_ACT_RELU6};
        for (int i = 0; i < n_head; i++)
            nops[i] = (net_head_op){kinds[hops[i].kind], hops[i].units, acts[hops[i].act],
                                    hops[i].rate};
        net_init(&hn, fh, fw, bl->c, full.convention);
        have_hn = 1;
        if ((rc = net_head(&hn, 0, nops, n_head, ix.n_classes, e)) < 0 ||
            (rc = net_finalize(&hn, cfg->batch, 1, e)))
            goto out;
        copy_params_by_name(&hn, &full, full.features + 1);
        for (int s = 0; s < 3; s++) {
            feats[s] = malloc((nids[s] ? nids[s] : 1) * F * sizeof(float));
            labels[s] = malloc((nids[s] ? nids[s] : 1) * sizeof(int));
        }
        xb = malloc((size_t)cfg->batch * F * sizeof(float));
        yb = malloc((size_t)cfg->batch * sizeof(int));
        best = malloc(hn.n_weights * sizeof(float));
        if (!feats[0] || !feats[1] || !feats[2] || !labels[0] || !labels[1] || !labels[2] ||
            !xb || !yb || !best) {
            rc = tl_errf(e, TL_ENOMEM, "train: out of memory for %zu cached features",
                         (nids[0] + nids[1] + nids[2]) * F);
            goto out;
        }
        if (given) {
            /* rows of the shared cache; images that did not decode are left out */
            for (int s = 0; s < 3; s++) {
                size_t k = 0;
                for (size_t i = 0; i < nids[s]; i++) {
                    size_t id = ids[s][i];
                    if (!given->ok[id])
                        continue;
                    memcpy(feats[s] + k * F, given->x + id * F, F * sizeof(float));
                    labels[s][k++] = ix.items[id].label;
                }
                r->bad_images += nids[s] - k;
                nids[s] = k;
            }
            if (!nids[DATA_TRAIN]) {
                rc = tl_errf(e, TL_EINVAL, "%s: no training image decoded", cfg->train_dir);
                goto out;
            }
        } else {
            double t0 = tl_now();
            for (int s = augment ? 1 : 0; s < 3; s++)
                if ((rc = extract(&c, &ext, ids[s], nids[s], NULL, 0, feats[s], labels[s], e)))
                    goto out;
            double dt = tl_now() - t0;
            size_t done = nids[1] + nids[2] + (augment ? 0 : nids[0]);
            logf_(cfg, "features: %zu images through the frozen %s once (%.1fs, %.0f img/s), "
                       "%zu floats each, %.1f MiB cached",
                  done, spec.backbone, dt, dt > 0 ? done / dt : 0, F,
                  (nids[0] + nids[1] + nids[2]) * F * 4.0 / 1048576.0);
            if (augment)
                logf_(cfg, "features: random augmentation is on, so train features are "
                           "recomputed every epoch");
        }
        if ((rc = train_init(&th, &hn, &cfg->optim, cfg->seed, e)))
            goto out;
        have_th = 1;
        if ((rc = resume_from(cfg, r, &th, best, e)))
            goto out;
        for (int ep = r->n_epochs + 1; ep <= stage1; ep++) {
            double t1 = tl_now();
            if (augment && (rc = extract(&c, &ext, ids[0], nids[0], aug, ep, feats[0],
                                         labels[0], e)))
                goto out;
            epoch_order(order, nids[0], cfg->seed, ep);
            run_ctx tr = {.t = &th, .train = 1, .cfg = cfg, .epoch = ep};
            if ((rc = run_cached(&tr, feats[0], labels[0], F, order, nids[0], cfg->batch, xb,
                                 yb)))
                goto out;
            double secs = tl_now() - t1;
            run_ctx va = {.t = &th};
            run_cached(&va, feats[1], labels[1], F, NULL, nids[1], cfg->batch, xb, yb);
            record_epoch(r, cfg, ep, &tr, &va, secs);
            if (keep_best(r, cfg))
                memcpy(best, hn.weights, hn.n_weights * sizeof(float));
            if ((rc = snapshot(cfg, r, &th, best)))
                goto out;
        }
        if (!two) {
            memcpy(hn.weights, best, hn.n_weights * sizeof(float));
            net_weights_changed(&hn);
            copy_params_by_name(&full, &hn, 1);
            if (r->eval_split) {
                run_ctx ev = {.t = &th, .cm = &cm};
                run_cached(&ev, feats[es], labels[es], F, NULL, nids[es], cfg->batch, xb, yb);
                r->eval_loss = ev.seen ? ev.loss / ev.seen : 0;
                r->eval_accuracy = ev.seen ? (double)ev.hits / ev.seen : 0;
            }
        } else {
            /* stage 2 goes on from the last head (as Keras's second fit
             * does); the kept weights become the whole net's */
            float *bf = malloc(full.n_weights * sizeof(float));
            float *last = malloc(hn.n_weights * sizeof(float));
            if (!bf || !last) {
                free(bf);
                free(last);
                rc = tl_errf(e, TL_ENOMEM, "train: out of memory");
                goto out;
            }
            memcpy(last, hn.weights, hn.n_weights * sizeof(float));
            memcpy(hn.weights, best, hn.n_weights * sizeof(float));
            copy_params_by_name(&full, &hn, 1);
            memcpy(bf, full.weights, full.n_weights * sizeof(float));
            memcpy(hn.weights, last, hn.n_weights * sizeof(float));
            net_weights_changed(&hn);
            copy_params_by_name(&full, &hn, 1);
            free(last);
            free(best);
            best = bf;
            logf_(cfg, "fine-tuning from layer %d for %d epochs at learning rate %g",
                  cfg->fine_tune_at, cfg->epochs - stage1, cfg->optim.learning_rate / 10);
        }
    }
    if (!stage1 || (!two && cfg->no_cache) || (two && r->n_epochs < cfg->epochs)) {
        /* ---- through the whole net every epoch ---- */
        if (!best && !(best = malloc(full.n_weights * sizeof(float)))) {
            rc = tl_errf(e, TL_ENOMEM, "train: out of memory");
            goto out;
        }
        if (cfg->mode == MODEL_FROZEN)
            logf_(cfg, "features: not cached: the frozen backbone runs every epoch");
        optim_cfg oc = cfg->optim;
        if (two)
            oc.learning_rate /= 10;
        if ((rc = train_init(&tf, &full, &oc, cfg->seed, e)))
            goto out;
        have_tf = 1;
        if ((!two || in_stage2) && (rc = resume_from(cfg, r, &tf, best, e)))
            goto out;
        size_t *tids = malloc(nids[0] * sizeof *tids);
        if (!tids) {
            rc = tl_errf(e, TL_ENOMEM, "train: out of memory");
            goto out;
        }
        for (int ep = r->n_epochs + 1; ep <= cfg->epochs; ep++) {
            double t1 = tl_now();
            epoch_order(order, nids[0], cfg->seed, ep);
            for (size_t i = 0; i < nids[0]; i++)
                tids[i] = ids[0][order[i]];
            run_ctx tr = {.t = &tf, .train = 1, .counter = &r->backbone_images, .cfg = cfg,
                          .epoch = ep, .steps = (nids[0] + cfg->batch - 1) / cfg->batch};
            rc = each_batch(&c, tids, nids[0], aug, ep, run_batch, &tr, e);
            double secs = tl_now() - t1;
            run_ctx va = {.t = &tf, .counter = &r->backbone_images};
            if (!rc)
                rc = each_batch(&c, ids[1], nids[1], NULL, 0, run_batch, &va, e);
            if (!rc) {
                record_epoch(r, cfg, ep, &tr, &va, secs);
                if (keep_best(r, cfg))
                    memcpy(best, full.weights, full.n_weights * sizeof(float));
                rc = snapshot(cfg, r, &tf, best);
            }
            if (rc) {
                free(tids);
                goto out;
            }
        }
        free(tids);
        memcpy(full.weights, best, full.n_weights * sizeof(float));
        net_weights_changed(&full);
        if (r->eval_split) {
            run_ctx ev = {.t = &tf, .cm = &cm, .counter = &r->backbone_images};
            if ((rc = each_batch(&c, ids[es], nids[es], NULL, 0, run_batch, &ev, e)))
                goto out;
            r->eval_loss = ev.seen ? ev.loss / ev.seen : 0;
            r->eval_accuracy = ev.seen ? (double)ev.hits / ev.seen : 0;
        }
    }
    memcpy(r->confusion, cm.counts, (size_t)ix.n_classes * ix.n_classes * sizeof(int64_t));

    if (cfg->out || cfg->model_done) {
        tset ot;
        tset_init(&ot);
        rc = net_to_tset(&full, &ot, 1, e);
        if (!rc && cfg->model_done)
            rc = cfg->model_done(cfg->cb_ctx, &spec, &ot);
        if (!rc && cfg->out)
            rc = model_write(cfg->out, &spec, &ot, e);
        tset_free(&ot);
    }

out:
    if (rc == TL_ESTOPPED)
        tl_errf(e, TL_ESTOPPED, "train: stopped on request after %d epoch%s", r->n_epochs,
                r->n_epochs == 1 ? "" : "s");
    if (have_th)
        train_free(&th);
    if (have_tf)
        train_free(&tf);
    if (have_hn)
        net_free(&hn);
    if (have_ext)
        net_free(&ext);
    if (have_full)
        net_free(&full);
    if (cm.counts)
        metrics_confusion_free(&cm);
    for (int s = 0; s < 3; s++) {
        free(ids[s]);
        free(feats[s]);
        free(labels[s]);
    }
    free(order);
    free(best);
    free(xb);
    free(yb);
    if (have_ix)
        data_index_free(&ix);
    tset_free(&wts);
    model_spec_free(&wspec);
    model_spec_free(&spec);
    return rc;
}

/* ---- evaluating a written model ------------------------------------------------------- */

typedef struct {
    net *n;
    long hits, seen;
} eval_ctx;

static int eval_batch(void *u, const loader_batch *b)
{
    eval_ctx *x = u;
    net_forward(x->n, b->x, b->n, 0);
    int64_t hits = 0;
    metrics_topk_correct(net_output(x->n), b->labels, (size_t)b->n, (size_t)net_last(x->n)->c, 1,
                         &hits, NULL);
    x->hits += hits;
    x->seen += b->n;
    return 0;
}

int trial_evaluate_file(const char *model_path, const char *dir, int batch, double *accuracy,
                        tl_err *e)
{
    model_spec s;
    tset ts;
    data_index ix;
    net n;
    int have_net = 0, have_ix = 0;
    model_spec_init(&s);
    tset_init(&ts);
    int rc = model_read(model_path, &s, &ts, e);
    if (rc)
        goto out;
    if (s.num_classes < 1) {
        rc = tl_errf(e, TL_EINVAL, "%s: the model has no classifier", model_path);
        goto out;
    }
    data_index_cfg dc = {dir, NULL, NULL, 0, 0};
    if ((rc = data_index_build(&ix, &dc, e)))
        goto out;
    have_ix = 1;
    if (ix.n_classes != s.num_classes) {
        rc = tl_errf(e, TL_EINVAL, "%s: %d classes, the model has %d", dir, ix.n_classes,
                     s.num_classes);
        goto out;
    }
    for (int i = 0; i < ix.n_classes && i < s.n_class_names; i++)
        if (strcmp(ix.classes[i], s.class_names[i])) {
            rc = tl_errf(e, TL_EINVAL, "%s: class %d is '%s', the model's is '%s'", dir, i,
                         ix.classes[i], s.class_names[i]);
            goto out;
        }
    if ((rc = net_build_from_spec(&n, &s, batch, e)))
        goto out;
    have_net = 1;
    if ((rc = net_load_tset(&n, &ts, 1, 1, NULL, e)))
        goto out;
    trial_cfg tc;
    trial_cfg_default(&tc);
    tc.batch = batch;
    trial_result r;
    memset(&r, 0, sizeof r);
    ctx c = {&tc, &ix, {s.width, s.height, (data_preprocess)s.preproc, 0, 0}, &r};
    size_t nid;
    size_t *ids = ids_of(&ix, DATA_TRAIN, &nid);
    if (!ids) {
        rc = tl_errf(e, TL_ENOMEM, "evaluate: out of memory");
        goto out;
    }
    eval_ctx x = {&n, 0, 0};
    rc = each_batch(&c, ids, nid, NULL, 0, eval_batch, &x, e);
    free(ids);
    *accuracy = x.seen ? (double)x.hits / x.seen : 0;
out:
    if (have_net)
        net_free(&n);
    if (have_ix)
        data_index_free(&ix);
    tset_free(&ts);
    model_spec_free(&s);
    return rc;
}
