/* Stage WHOLE_NET: the whole net (its trainable layers by the mode) through
 * the loader every epoch; the frozen backbone without the cache, fine-tuning,
 * or the second stage of Keras's recipe at a tenth of the rate. */
#include <stdlib.h>
#include <string.h>

#include "common/base/clock.h"
#include "worker/group/group.h"
#include "worker/trial/trial_int.h"

static int whole_open(trial__state *st, const sweep_stage *sg, tl_err *e)
{
    const trial_cfg *cfg = st->cfg;
    /* after HEAD_ON_FEATURES the kept weights are already the whole net's */
    if (!st->best && !(st->best = malloc(st->full.n_weights * sizeof(float))))
        return tl_errf(e, TL_ENOMEM, "train: out of memory");
    if (cfg->mode == MODEL_FROZEN)
        trial__log(cfg, "features: not cached: the frozen backbone runs every epoch");
    optim_cfg oc = cfg->optim;
    oc.learning_rate /= sg->lr_divisor;
    int rc = train_init(&st->tf, &st->full, &oc, cfg->seed, e);
    if (rc)
        return rc;
    train_set_label_smoothing(&st->tf, cfg->label_smoothing);
    if (sg->resume && (rc = trial__resume_from(cfg, st->r, &st->tf, st->best, e)))
        return rc;
    if (!(st->tids = malloc(st->nids[DATA_TRAIN] * sizeof *st->tids)))
        return tl_errf(e, TL_ENOMEM, "train: out of memory");
    return cfg->group ? trial__group_open(st, e) : 0;
}

/* The epoch's training pass: the whole order alone, the member's rows of
 * each global batch in a group. */
static int train_pass(trial__state *st, trial__run *tr, int ep, tl_err *e)
{
    size_t n = st->nids[DATA_TRAIN];
    if (!st->cfg->group)
        return trial__each_batch(&st->im, st->tids, n, st->aug, ep, trial__run_batch, tr, e);
    trial__group_rows(st);
    tr->g = st->cfg->group;
    tr->n_global = n;
    tr->e = e;
    return trial__each_sized(&st->im, st->gids, st->g_n, st->gsizes, st->g_batches, st->aug, ep,
                             trial__run_batch, tr, e);
}

/* The validation pass: the member's shard in a group, figures summed. */
static int val_pass(trial__state *st, trial__run *tr, trial__run *va, tl_err *e)
{
    size_t first = 0, n = st->nids[DATA_VAL];
    if (st->cfg->group)
        n = trial__group_shard(st, n, &first);
    int rc = trial__each_batch(&st->im, st->ids[DATA_VAL] + first, n, NULL, 0, trial__run_batch,
                               va, e);
    if (!rc && st->cfg->group)
        rc = trial__group_sum_figures(st, tr, va, e);
    return rc;
}

/* After an epoch's record: the kept weights, the group's check, the
 * snapshot; a yield wished during the epoch ends the trial here, unless
 * this was its last epoch anyway (last: the trial then finishes). */
static int epoch_end(trial__state *st, double comm, int last, tl_err *e)
{
    const trial_cfg *cfg = st->cfg;
    trial_result *r = st->r;
    if (trial__keep_best(r, cfg))
        memcpy(st->best, st->full.weights, st->full.n_weights * sizeof(float));
    int rc = cfg->group ? trial__group_check(st, e) : 0;
    if (rc)
        return rc;
    if (cfg->group)
        r->epochs[r->n_epochs - 1].comm_seconds = comm;
    int ending = !last && (cfg->group ? group_yielded(cfg->group) : st->yield_wish);
    if ((rc = trial__snapshot(cfg, r, &st->tf, st->best, ending, cfg->group, &st->yield_wish)))
        return rc;
    if (!ending)
        return 0;
    r->yielded = 1;
    trial__log(cfg, "yielding after epoch %d", r->n_epochs);
    return TL_ESTOPPED;
}

static int whole_epochs(trial__state *st, const sweep_stage *sg, tl_err *e)
{
    const trial_cfg *cfg = st->cfg;
    trial_result *r = st->r;
    size_t *n = st->nids;
    for (int ep = r->n_epochs + 1; ep <= trial__stage_end(cfg, sg) && !trial__stop_early(r, cfg, sg);
         ep++) {
        double t1 = tl_now(), comm0 = cfg->group ? group_seconds(cfg->group) : 0;
        trial__epoch_order(st->order, n[0], cfg->seed, ep);
        for (size_t i = 0; i < n[0]; i++)
            st->tids[i] = st->ids[0][st->order[i]];
        trial__run tr = {.t = &st->tf, .train = 1, .counter = &r->backbone_images, .cfg = cfg,
                         .epoch = ep, .steps = (n[0] + cfg->batch - 1) / cfg->batch,
                         .yield = &st->yield_wish};
        int rc = train_pass(st, &tr, ep, e);
        /* the training pass's: a share of its seconds */
        double secs = tl_now() - t1, comm = cfg->group ? group_seconds(cfg->group) - comm0 : 0;
        trial__run va = {.t = &st->tf, .counter = &r->backbone_images};
        if (!rc)
            rc = val_pass(st, &tr, &va, e);
        if (!rc && !(rc = trial__record_epoch(r, cfg, ep, &tr, &va, secs, e)))
            rc = epoch_end(st, comm, ep == trial__stage_end(cfg, sg), e);
        if (rc)
            return rc;
    }
    trial__rung_end(r, cfg, sg);
    return 0;
}

/* The kept epoch's weights back into the full net, which evaluates next. */
static int whole_hand_on(trial__state *st, const sweep_stage *next, tl_err *e)
{
    if (next)
        return tl_errf(e, TL_EINVAL, "train: a stage after the whole net is not supported");
    memcpy(st->full.weights, st->best, st->full.n_weights * sizeof(float));
    net_weights_changed(&st->full);
    return 0;
}

const trial__stage_ops trial__whole_stage = {whole_open, whole_epochs, whole_hand_on};
