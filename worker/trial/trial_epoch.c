/* One epoch's bookkeeping, shared by both stages: loader passes, batches
 * through a net, the epoch's record, the kept epoch, resume and snapshots. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/rng.h"
#include "common/sweep/early_stop.h"
#include "worker/group/group.h"
#include "worker/trial/trial_int.h"

void trial__log(const trial_cfg *c, const char *fmt, ...)
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
    trial__log(c, "warning: %s", line);
}

size_t *trial__ids_of(const data_index *ix, data_split s, size_t *n)
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
void trial__epoch_order(size_t *perm, size_t n, uint64_t seed, int epoch)
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

int trial__each_batch(const trial__images *c, const size_t *ids, size_t n,
                      const data_augment_cfg *aug, int epoch, trial__batch_fn fn, void *u,
                      tl_err *e)
{
    return trial__each_sized(c, ids, n, NULL, 0, aug, epoch, fn, u, e);
}

int trial__each_sized(const trial__images *c, const size_t *ids, size_t n, const int *sizes,
                      size_t n_sizes, const data_augment_cfg *aug, int epoch, trial__batch_fn fn,
                      void *u, tl_err *e)
{
    /* a member without rows still takes part in every step */
    if (!n && !n_sizes)
        return 0;
    loader_cfg lc = {
        .items = c->ix->items,
        .ids = ids,
        .n_ids = n,
        .batch_size = c->cfg->batch,
        .sizes = sizes,
        .n_sizes = n_sizes,
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
    while ((rc = loader_next(L, &b, e)) == 1) {
        if ((rc = fn(u, &b)) != 0)
            break;
        if (c->cfg->alive)
            c->cfg->alive(c->cfg->cb_ctx);
    }
    size_t bad = loader_skipped(L);
    if (bad > c->r->bad_images)
        c->r->bad_images = bad;
    loader_close(L);
    return rc < 0 ? rc : 0;
}

int trial__answer(int ret, struct group *g, int *yield)
{
    if (!ret)
        return 0;
    if (g) {
        group_wish(g, ret == TRIAL_YIELD ? GROUP_YIELD : GROUP_STOP);
        return 0;
    }
    if (ret != TRIAL_YIELD)
        return TL_ESTOPPED;
    if (yield)
        *yield = 1;
    return 0;
}

int trial__run_batch(void *u, const loader_batch *b)
{
    trial__run *r = u;
    int h = 0;
    float l;
    if (r->train && r->g) {
        int rc = trial__group_step(r, b, &h, &l);
        if (rc)
            return rc;
    } else if (b->n == 0) {
        l = 0;
    } else {
        l = r->train ? train_step(r->t, b->x, b->labels, b->n, &h)
                     : train_eval(r->t, b->x, b->labels, b->n, &h);
    }
    r->loss += (double)l * b->n;
    r->hits += h;
    r->seen += b->n;
    if (r->counter)
        *r->counter += (size_t)b->n;
    if (r->cm)
        metrics_confusion_add(r->cm, net_output(r->t->n), b->labels, (size_t)b->n, NULL);
    r->step++;
    if (r->train && r->cfg && r->cfg->step_done)
        return trial__answer(r->cfg->step_done(r->cfg->cb_ctx, r->epoch, r->step, r->steps,
                                               r->seen ? r->loss / r->seen : 0),
                             r->g, r->yield);
    return 0;
}

int trial__run_cached(trial__run *r, const float *feats, const int *labels, size_t F,
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
        int rc = trial__run_batch(r, &b);
        if (rc)
            return rc;
    }
    return 0;
}

int trial__record_epoch(trial_result *r, const trial_cfg *cfg, int ep, const trial__run *tr,
                        const trial__run *va, double secs, tl_err *e)
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
        trial__log(cfg, "epoch %d/%d  loss %.4f  accuracy %.4f  val_loss %.4f  val_accuracy %.4f  "
                   "%.2fs  %.0f img/s",
              ep, cfg->epochs, x->loss, x->accuracy, x->val_loss, x->val_accuracy, secs,
              x->images_per_s);
    else
        trial__log(cfg, "epoch %d/%d  loss %.4f  accuracy %.4f  %.2fs  %.0f img/s", ep, cfg->epochs,
              x->loss, x->accuracy, secs, x->images_per_s);
    if (!isfinite(x->loss) || !isfinite(x->val_loss))
        return tl_errf(e, TL_EINVAL, "epoch %d/%d: %s is %g: training diverged (a lower "
                       "learning rate?) or its inputs are not finite", ep, cfg->epochs,
                       isfinite(x->loss) ? "val_loss" : "loss",
                       isfinite(x->loss) ? x->val_loss : x->loss);
    return 0;
}

static double epoch_metric(const trial_epoch *x, sweep_metric m)
{
    return sweep_metric_of(m, x->loss, x->accuracy, x->val_loss, x->val_accuracy);
}

/* Keeps the epoch when it is the best so far by the selection metric;
 * returns 1 when it is. Ties keep the earlier epoch. */
int trial__keep_best(trial_result *r, const trial_cfg *cfg)
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

int trial__stop_early(trial_result *r, const trial_cfg *cfg, const sweep_stage *sg)
{
    const sweep_early_stop *es = &cfg->early_stop;
    int n = r->n_epochs - (sg->first - 1);
    /* the last stage only: a two-stage recipe's frozen stage runs its epochs,
     * and the stopped trial's checkpoint stays in the stage that resumes it */
    if (!es->enabled || sg->last != cfg->epochs || n < 1)
        return 0;
    int stop = 0;
    double *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return 0;   /* train on: a missed stop costs epochs, not results */
    for (int i = 0; i < n; i++)
        v[i] = epoch_metric(&r->epochs[sg->first - 1 + i], es->monitor);
    stop = sweep_early_stop_at(es, v, n, NULL);
    free(v);
    if (!stop)
        return 0;
    r->stopped_epoch = sg->first - 1 + stop;
    trial__log(cfg, "early stopping after epoch %d: %s did not improve for %d epoch%s",
               r->stopped_epoch, sweep_metric_name(es->monitor), es->patience,
               es->patience == 1 ? "" : "s");
    return 1;
}

int trial__stage_end(const trial_cfg *cfg, const sweep_stage *sg)
{
    return cfg->until > 0 && cfg->until < sg->last ? cfg->until : sg->last;
}

void trial__rung_end(trial_result *r, const trial_cfg *cfg, const sweep_stage *sg)
{
    if (trial__stage_end(cfg, sg) < sg->last && r->n_epochs == cfg->until)
        trial__stop_early(r, cfg, sg);
}

int trial__resume_from(const trial_cfg *cfg, trial_result *r, train_ctx *t, float *best,
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

int trial__snapshot(const trial_cfg *cfg, const trial_result *r, const train_ctx *t,
                    const float *best, int ending, struct group *g, int *yield)
{
    if (!cfg->epoch_done)
        return 0;
    trial_snapshot s = {r->n_epochs, t->n->weights, best, t->n->n_weights, t->opt.state,
                        t->opt.nstate, r->epochs, r->best_epoch, r->best_value, ending};
    return trial__answer(cfg->epoch_done(cfg->cb_ctx, &s), g, yield);
}
