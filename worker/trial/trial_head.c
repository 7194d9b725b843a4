/* Stage HEAD_ON_FEATURES: every image through the frozen backbone once (or
 * the shared cache's rows), then the head alone trains on the features for
 * the stage's epochs; its kept weights go back into the full net. */
#include <stdlib.h>
#include <string.h>

#include "common/base/clock.h"
#include "worker/net/backbones.h"
#include "worker/net/net_io.h"
#include "worker/trial/trial_int.h"

/* ---- extraction ---------------------------------------------------------------------- */

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
        trial__log(x->cfg, "features: %zu/%zu images (%.0f img/s)", x->pos, x->n,
                   x->pos / (t - x->t0));
    }
    return 0;
}

/* Features of the images ids[0..n) that decode, in order: *rows of them
 * (the loader skips and counts the rest). */
static int extract(const trial__images *im, net *ext, const size_t *ids, size_t n,
                   const data_augment_cfg *aug, int epoch, float *feats, int *labels,
                   size_t *rows, tl_err *e)
{
    size_t F = (size_t)net_last(ext)->h * net_last(ext)->w * net_last(ext)->c;
    double t0 = tl_now();
    extract_ctx x = {ext, feats, labels, F, 0, n, &im->r->backbone_images, im->cfg, t0, t0};
    int rc = trial__each_batch(im, ids, n, aug, epoch, extract_batch, &x, e);
    *rows = x.pos;
    return rc;
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
        rc = trial__load_backbone(ext, wts, path, e);
    if (rc)
        net_free(ext);
    return rc;
}

/* val and test (and train, when its features do not change every epoch)
 * through the extractor once. */
static int extract_once(trial__state *st, int every_epoch, tl_err *e)
{
    const size_t *n = st->nids;
    double t0 = tl_now();
    for (int s = every_epoch ? 1 : 0; s < TRIAL__SPLITS; s++) {
        int rc = extract(&st->im, &st->ext, st->ids[s], n[s], NULL, 0, st->feats[s],
                         st->labels[s], &st->rows[s], e);
        if (rc)
            return rc;
    }
    if (!every_epoch && !st->rows[DATA_TRAIN])
        return tl_errf(e, TL_EINVAL, "%s: no training image decoded", st->cfg->train_dir);
    double dt = tl_now() - t0;
    size_t done = n[1] + n[2] + (every_epoch ? 0 : n[0]);
    trial__log(st->cfg, "features: %zu images through the frozen %s once (%.1fs, %.0f img/s), "
                        "%zu floats each, %.1f MiB cached",
               done, st->spec.backbone, dt, dt > 0 ? done / dt : 0, st->F,
               (n[0] + n[1] + n[2]) * st->F * 4.0 / 1048576.0);
    if (every_epoch)
        trial__log(st->cfg, "features: random augmentation is on, so train features are "
                            "recomputed every epoch");
    return 0;
}

/* Rows of the shared cache for the trial's images; images that did not
 * decode are left out of the head's rows. The id lists stay whole: a
 * WHOLE_NET stage after this one reads every id (its loader skips what does
 * not decode), as a run resumed in that stage does. */
static int shared_rows(trial__state *st, const trial_features *given, tl_err *e)
{
    size_t F = st->F;
    for (int s = 0; s < TRIAL__SPLITS; s++) {
        size_t k = 0;
        for (size_t i = 0; i < st->nids[s]; i++) {
            size_t id = st->ids[s][i];
            if (!given->ok[id])
                continue;
            memcpy(st->feats[s] + k * F, given->x + id * F, F * sizeof(float));
            st->labels[s][k++] = st->im.ix->items[id].label;
        }
        st->r->bad_images += st->nids[s] - k;
        st->rows[s] = k;
    }
    if (!st->rows[DATA_TRAIN])
        return tl_errf(e, TL_EINVAL, "%s: no training image decoded", st->cfg->train_dir);
    return 0;
}

/* ---- the stage ------------------------------------------------------------------------ */

/* The head alone on (fh, fw, c) features, its initial weights the full
 * net's fresh head: pooled (1,1,C) features start with a flatten. */
static int head_net(trial__state *st, int pooled, int fh, int fw, int c, tl_err *e)
{
    model_head_op hops[MODEL_MAX_HEAD_OPS];
    net_head_op nops[MODEL_MAX_HEAD_OPS];
    memcpy(hops, st->head, (size_t)st->n_head * sizeof *st->head);
    if (pooled)
        hops[0].kind = MODEL_HEAD_FLATTEN;
    int rc = net_head_ops_from_model(nops, hops, st->n_head, e);
    if (rc)
        return rc;
    net_init(&st->hn, fh, fw, c, st->full.convention);
    if ((rc = net_head(&st->hn, 0, nops, st->n_head, st->im.ix->n_classes, e)) < 0 ||
        (rc = net_finalize(&st->hn, st->cfg->batch, 1, e)))
        return rc;
    trial__copy_params_by_name(&st->hn, &st->full, st->full.features + 1);
    return 0;
}

static int head_buffers(trial__state *st, tl_err *e)
{
    size_t F = st->F, *n = st->nids;
    int ok = 1;
    for (int s = 0; s < TRIAL__SPLITS; s++) {
        ok &= (st->feats[s] = malloc((n[s] ? n[s] : 1) * F * sizeof(float))) != NULL;
        ok &= (st->labels[s] = malloc((n[s] ? n[s] : 1) * sizeof(int))) != NULL;
    }
    ok &= (st->xb = malloc((size_t)st->cfg->batch * F * sizeof(float))) != NULL;
    ok &= (st->yb = malloc((size_t)st->cfg->batch * sizeof(int))) != NULL;
    ok &= (st->best = malloc(st->hn.n_weights * sizeof(float))) != NULL;
    if (!ok)
        return tl_errf(e, TL_ENOMEM, "train: out of memory for %zu cached features",
                       (n[0] + n[1] + n[2]) * F);
    return 0;
}

static int head_open(trial__state *st, const sweep_stage *sg, tl_err *e)
{
    const trial_cfg *cfg = st->cfg;
    st->r->features_cached = 1;
    int pooled = st->head[0].kind == MODEL_HEAD_GAP;
    const net_layer *bl = &st->full.layers[st->full.features];
    int fh = pooled ? 1 : bl->h, fw = pooled ? 1 : bl->w;
    st->F = (size_t)fh * fw * bl->c;
    const trial_features *given = sg->features == SWEEP_FEATURES_SHARED ? cfg->features : NULL;
    if (given && (given->dim != st->F || given->n_items != st->im.ix->n_items))
        return tl_errf(e, TL_ESHAPE,
                       "train: the feature cache holds %zu images x %zu features; this trial "
                       "needs %zu x %zu",
                       given->n_items, given->dim, st->im.ix->n_items, st->F);
    int rc = 0;
    if (!given && (rc = trial_extractor_build(&st->ext, st->W, st->WT, cfg->weights,
                                              st->spec.height, pooled, cfg->batch, e)))
        return rc;
    if ((rc = head_net(st, pooled, fh, fw, bl->c, e)) || (rc = head_buffers(st, e)))
        return rc;
    rc = given ? shared_rows(st, given, e)
               : extract_once(st, sg->features == SWEEP_FEATURES_EVERY_EPOCH, e);
    if (rc)
        return rc;
    optim_cfg oc = cfg->optim;
    oc.learning_rate /= sg->lr_divisor;
    if ((rc = train_init(&st->th, &st->hn, &oc, cfg->seed, e)))
        return rc;
    train_set_label_smoothing(&st->th, cfg->label_smoothing);
    return sg->resume ? trial__resume_from(cfg, st->r, &st->th, st->best, e) : 0;
}

static int head_epochs(trial__state *st, const sweep_stage *sg, tl_err *e)
{
    const trial_cfg *cfg = st->cfg;
    trial_result *r = st->r;
    int every_epoch = sg->features == SWEEP_FEATURES_EVERY_EPOCH;
    size_t F = st->F, *n = st->rows;
    for (int ep = r->n_epochs + 1; ep <= trial__stage_end(cfg, sg) && !trial__stop_early(r, cfg, sg);
         ep++) {
        double t1 = tl_now();
        int rc;
        if (every_epoch && (rc = extract(&st->im, &st->ext, st->ids[0], st->nids[0], st->aug,
                                         ep, st->feats[0], st->labels[0], &n[0], e)))
            return rc;
        trial__epoch_order(st->order, n[0], cfg->seed, ep);
        trial__run tr = {.t = &st->th, .train = 1, .cfg = cfg, .epoch = ep};
        if ((rc = trial__run_cached(&tr, st->feats[0], st->labels[0], F, st->order, n[0],
                                    cfg->batch, st->xb, st->yb)))
            return rc;
        double secs = tl_now() - t1;
        trial__run va = {.t = &st->th};
        trial__run_cached(&va, st->feats[1], st->labels[1], F, NULL, n[1], cfg->batch, st->xb,
                          st->yb);
        if ((rc = trial__record_epoch(r, cfg, ep, &tr, &va, secs, e)))
            return rc;
        if (trial__keep_best(r, cfg))
            memcpy(st->best, st->hn.weights, st->hn.n_weights * sizeof(float));
        if ((rc = trial__snapshot(cfg, r, &st->th, st->best, 0, NULL, NULL)))
            return rc;
    }
    trial__rung_end(r, cfg, sg);
    return 0;
}

/* The stage's resources once the next stage has what it needs. */
static void head_release(trial__state *st)
{
    train_free(&st->th);
    net_free(&st->hn);
    net_free(&st->ext);
    for (int s = 0; s < TRIAL__SPLITS; s++) {
        free(st->feats[s]);
        free(st->labels[s]);
        st->feats[s] = NULL;
        st->labels[s] = NULL;
    }
    free(st->xb);
    free(st->yb);
    st->xb = NULL;
    st->yb = NULL;
}

/* Last stage: the kept head into the full net (evaluation runs on the head
 * net and the cached features next). Before WHOLE_NET: that stage goes on
 * from the last head, as Keras's second fit does, while the kept weights
 * become the whole net's, to be beaten by a fine-tuned epoch or not. */
static int head_hand_on(trial__state *st, const sweep_stage *next, tl_err *e)
{
    net *hn = &st->hn, *full = &st->full;
    if (!next) {
        memcpy(hn->weights, st->best, hn->n_weights * sizeof(float));
        net_weights_changed(hn);
        trial__copy_params_by_name(full, hn, 1);
        return 0;
    }
    float *bf = malloc(full->n_weights * sizeof(float));
    float *last = malloc(hn->n_weights * sizeof(float));
    if (!bf || !last) {
        free(bf);
        free(last);
        return tl_errf(e, TL_ENOMEM, "train: out of memory");
    }
    memcpy(last, hn->weights, hn->n_weights * sizeof(float));
    memcpy(hn->weights, st->best, hn->n_weights * sizeof(float));
    trial__copy_params_by_name(full, hn, 1);
    memcpy(bf, full->weights, full->n_weights * sizeof(float));
    memcpy(hn->weights, last, hn->n_weights * sizeof(float));
    net_weights_changed(hn);
    trial__copy_params_by_name(full, hn, 1);
    free(last);
    free(st->best);
    st->best = bf;
    head_release(st);
    trial__log(st->cfg, "fine-tuning from layer %d for %d epochs at learning rate %g",
               st->cfg->fine_tune_at, next->last - next->first + 1,
               st->cfg->optim.learning_rate / next->lr_divisor);
    return 0;
}

const trial__stage_ops trial__head_stage = {head_open, head_epochs, head_hand_on};
