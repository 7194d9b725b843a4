/* One transfer-learning trial (see trial.h): prepare, run each stage of
 * its plan (sweep_plan.h), evaluate the kept model, emit it. */
#include "worker/trial/trial.h"

#include <stdlib.h>
#include <string.h>

#include "common/sweep/sweep_plan.h"
#include "worker/net/net_io.h"
#include "worker/group/group.h"
#include "worker/trial/trial_int.h"

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

void trial_cfg_set_mode(trial_cfg *c, const sweep_mode *m)
{
    c->fine_tune_at = 0;
    c->stage1_epochs = 0;
    switch (m->kind) {
    case SWEEP_FROZEN: c->mode = MODEL_FROZEN; break;
    case SWEEP_FINE_TUNE: c->mode = MODEL_FINE_TUNE; break;
    case SWEEP_FINE_TUNE_AT:
        c->mode = MODEL_FINE_TUNE_AT;
        c->fine_tune_at = m->fine_tune_at;
        break;
    case SWEEP_FROZEN_THEN_FINE_TUNE:
        c->mode = MODEL_FINE_TUNE_AT;
        c->fine_tune_at = m->fine_tune_at;
        c->stage1_epochs = m->frozen_epochs;
        break;
    }
}

/* The inverse of trial_cfg_set_mode: stage1_epochs > 0 counts only with
 * MODEL_FINE_TUNE_AT. */
static sweep_mode sweep_mode_of(const trial_cfg *c)
{
    switch (c->mode) {
    case MODEL_FROZEN: return (sweep_mode){SWEEP_FROZEN, 0, 0};
    case MODEL_FINE_TUNE_AT:
        if (c->stage1_epochs > 0)
            return (sweep_mode){SWEEP_FROZEN_THEN_FINE_TUNE, c->fine_tune_at, c->stage1_epochs};
        return (sweep_mode){SWEEP_FINE_TUNE_AT, c->fine_tune_at, 0};
    default: return (sweep_mode){SWEEP_FINE_TUNE, 0, 0};
    }
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

void trial__state_free(trial__state *st)
{
    train_free(&st->th);
    train_free(&st->tf);
    net_free(&st->hn);
    net_free(&st->ext);
    net_free(&st->full);
    metrics_confusion_free(&st->cm);
    for (int s = 0; s < TRIAL__SPLITS; s++) {
        free(st->ids[s]);
        free(st->feats[s]);
        free(st->labels[s]);
    }
    free(st->order);
    free(st->tids);
    free(st->gids);
    free(st->gsizes);
    free(st->best);
    free(st->xb);
    free(st->yb);
    data_index_free(&st->own_ix);
    tset_free(&st->wts);
    model_spec_free(&st->wspec);
    model_spec_free(&st->spec);
}

/* ---- prepare ---------------------------------------------------------------------- */

/* The weights file and the dataset index: given (a worker keeps them
 * between trials) or read here; the ids of each split and the result's
 * per-class and per-epoch arrays. */
static int load_inputs(trial__state *st, tl_err *e)
{
    const trial_cfg *cfg = st->cfg;
    trial_result *r = st->r;
    st->W = cfg->weights_spec ? cfg->weights_spec : &st->wspec;
    st->WT = cfg->weights_spec ? cfg->weights_tensors : &st->wts;
    int rc = 0;
    if (!cfg->weights_spec && (rc = model_read(cfg->weights, &st->wspec, &st->wts, e)))
        return rc;
    if (!st->W->backbone || !st->W->backbone[0])
        return tl_errf(e, TL_EFORMAT, "%s: the model file names no backbone", cfg->weights);
    if (!cfg->index) {
        data_index_cfg dc = {cfg->train_dir, cfg->val_dir, cfg->test_dir,
                             cfg->val_dir ? 0 : cfg->validation_split, cfg->split_seed};
        if ((rc = data_index_build(&st->own_ix, &dc, e)))
            return rc;
    }
    const data_index *ix = st->im.ix = cfg->index ? cfg->index : &st->own_ix;
    for (int s = 0; s < TRIAL__SPLITS; s++)
        if (!(st->ids[s] = trial__ids_of(ix, (data_split)s, &st->nids[s])))
            return tl_errf(e, TL_ENOMEM, "train: out of memory");
    r->n_train = st->nids[DATA_TRAIN];
    r->n_val = st->nids[DATA_VAL];
    r->n_test = st->nids[DATA_TEST];
    if (!r->n_train)
        return tl_errf(e, TL_EINVAL, "%s: no training images left after the split",
                       cfg->train_dir);
    r->n_classes = ix->n_classes;
    r->classes = calloc((size_t)ix->n_classes, sizeof *r->classes);
    r->epochs = calloc((size_t)cfg->epochs, sizeof *r->epochs);
    r->confusion = calloc((size_t)ix->n_classes * ix->n_classes, sizeof *r->confusion);
    if (!r->classes || !r->epochs || !r->confusion)
        return tl_errf(e, TL_ENOMEM, "train: out of memory");
    for (int i = 0; i < ix->n_classes; i++)
        if (!(r->classes[i] = strdup(ix->classes[i])))
            return tl_errf(e, TL_ENOMEM, "train: out of memory");
    return 0;
}

static int make_plan(trial__state *st, tl_err *e)
{
    const trial_cfg *cfg = st->cfg;
    sweep_plan_in in = {
        .mode = sweep_mode_of(cfg),
        .epochs = cfg->epochs,
        .augment = st->aug != NULL,
        .cache_allowed = !cfg->no_cache,
        .cache_shared = cfg->features != NULL,
        .resuming = cfg->resume != NULL,
        .resume_epoch = cfg->resume ? cfg->resume->epoch : 0,
    };
    return sweep_plan_make(&st->plan, &in, e);
}

/* The trial's model, its plan, and the full net: the backbone's weights
 * and a fresh head from the seed. */
static int prepare(trial__state *st, tl_err *e)
{
    const trial_cfg *cfg = st->cfg;
    int rc = load_inputs(st, e);
    if (rc)
        return rc;
    int size = cfg->size > 0 ? cfg->size : st->W->height;
    st->aug = data_augment_active(&cfg->augment) ? &cfg->augment : NULL;
    if ((rc = trial__build_spec(st, size, e)) || (rc = make_plan(st, e)))
        return rc;
    /* on features alone the whole net only collects the final weights: no
     * batch-sized activations for it */
    int max_batch = sweep_plan_has_whole_net(&st->plan) ? cfg->batch : 1;
    if ((rc = net_build_from_spec(&st->full, &st->spec, max_batch, e)) ||
        (rc = trial__load_backbone(&st->full, st->WT, cfg->weights, e)))
        return rc;
    trial__init_head(&st->full, cfg->seed);
    if ((rc = metrics_confusion_init(&st->cm, (size_t)st->im.ix->n_classes, e)))
        return rc;
    st->im.image = (data_image_cfg){size, size, (data_preprocess)st->spec.preproc, 0, 0};
    if (!(st->order = malloc(st->nids[DATA_TRAIN] * sizeof *st->order)))
        return tl_errf(e, TL_ENOMEM, "train: out of memory");
    /* the eval set of the final report */
    st->es = st->nids[DATA_TEST] ? DATA_TEST : DATA_VAL;
    st->r->eval_split = st->nids[DATA_TEST] ? "test" : st->nids[DATA_VAL] ? "val" : NULL;
    return 0;
}

/* ---- the trial ---------------------------------------------------------------------- */

/* The stages of the plan this call runs: all of them, or under a rung
 * (cfg->until) those that start by its end. At least the first: a resume
 * whose snapshot is already at the rung's end only opens its stage (to
 * load the snapshot) and evaluates. */
static int stages_to_run(const trial__state *st)
{
    int until = st->cfg->until;
    if (until <= 0 || until >= st->cfg->epochs)
        return st->plan.n;
    int n = 1;
    while (n < st->plan.n && st->plan.stage[n].first <= until)
        n++;
    return n;
}

/* The kept model to model_done and to cfg->out. */
static int emit(trial__state *st, tl_err *e)
{
    const trial_cfg *cfg = st->cfg;
    if (!cfg->out && !cfg->model_done)
        return 0;
    tset ot;
    tset_init(&ot);
    int rc = net_to_tset(&st->full, &ot, 1, e);
    if (!rc && cfg->model_done)
        rc = cfg->model_done(cfg->cb_ctx, &st->spec, &ot);
    if (!rc && cfg->out)
        rc = model_write(cfg->out, &st->spec, &ot, e);
    tset_free(&ot);
    return rc;
}

/* The group's last control after the stages (group.h's rule 5), or this
 * member's leaving with its error or stop (rule 3). */
static int group_end(group *g, int rc, tl_err *e)
{
    if (!g)
        return rc;
    if (rc) {
        group_leave(g, rc == TL_ESTOPPED ? GROUP_STOP : GROUP_ERROR);
        return rc;
    }
    return group_control(g, NULL, 0, e);
}

int trial_run(const trial_cfg *cfg, trial_result *r, tl_err *e)
{
    memset(r, 0, sizeof *r);
    if (cfg->batch < 1 || cfg->epochs < 1)
        return tl_errf(e, TL_EINVAL, "train: need batch >= 1 and epochs >= 1");
    trial__state st;
    memset(&st, 0, sizeof st);
    st.cfg = cfg;
    st.r = r;
    st.im.cfg = cfg;
    st.im.r = r;
    st.gap = (model_head_op){MODEL_HEAD_GAP, 0, MODEL_ACT_LINEAR, 0};
    st.head = cfg->head ? cfg->head : &st.gap;
    st.n_head = cfg->head ? cfg->n_head : 1;
    model_spec_init(&st.wspec);
    model_spec_init(&st.spec);
    tset_init(&st.wts);

    int rc = prepare(&st, e);
    int n_run = rc ? 0 : stages_to_run(&st);
    for (int i = 0; !rc && i < n_run; i++) {
        const sweep_stage *sg = &st.plan.stage[i];
        const sweep_stage *next = i + 1 < n_run ? sg + 1 : NULL;
        const trial__stage_ops *op = sg->kind == SWEEP_STAGE_HEAD_ON_FEATURES
                                         ? &trial__head_stage
                                         : &trial__whole_stage;
        if (!(rc = op->open(&st, sg, e)) && !(rc = op->epochs(&st, sg, e)))
            rc = op->hand_on(&st, next, e);
    }
    rc = group_end(cfg->group, rc, e);
    /* in a group the leader's model is the trial's */
    int leader = !cfg->group || group_index(cfg->group) == 0;
    if (!rc && leader)
        rc = trial__evaluate(&st, &st.plan.stage[n_run - 1], e);
    if (!rc && leader)
        rc = emit(&st, e);

    if (rc == TL_ESTOPPED)
        tl_errf(e, TL_ESTOPPED, "train: %s after %d epoch%s",
                r->yielded ? "yielded" : "stopped on request", r->n_epochs,
                r->n_epochs == 1 ? "" : "s");
    trial__state_free(&st);
    return rc;
}
