/* successive_halving and asha in the coordinator: each trial's row of the
 * decision table (common/sweep/search.h) follows its results, promotions
 * are journaled before their task is sent, and a replay rebuilds both. */
#include "coordinator/coord_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

int coord__search_init(coord *c, tl_err *e)
{
    sweep_rungs_of(c->s, &c->rungs);
    if (!sweep_has_rungs(c->s))
        return 0;
    if (!(c->srows = calloc(c->s->n_trials ? c->s->n_trials : 1, sizeof *c->srows)))
        return tl_errf(e, TL_ENOMEM, "coordinator: out of memory");
    for (size_t i = 0; i < c->s->n_trials; i++)
        sweep_srow_init(&c->srows[i]);
    return 0;
}

void coord__search_free(coord *c)
{
    free(c->srows);
    c->srows = NULL;
}

/* What ranks trial i at the rung its result r ends: the select metric's
 * best, which the worker sends, or search.metric's best over the epochs
 * journaled up to there (NaN, ranked last, when none is). */
static double rung_value(const coord *c, int i, const Tlsweep__TrialResult *r)
{
    const sweep *s = c->s;
    if (s->search_metric == s->metric && s->search_goal_max == s->goal_max)
        return r->best_value;
    const ctrial *t = &c->trials[i];
    double best = NAN;
    for (int ep = 0; ep < t->n_hist && ep < (int)r->epochs_done; ep++) {
        if (!t->hist[ep].seen)
            continue;
        const cepoch *x = &t->hist[ep];
        double v = sweep_metric_of(s->search_metric, x->loss, x->accuracy, x->val_loss,
                                   x->val_accuracy);
        if (isnan(best) || (s->search_goal_max ? v > best : v < best))
            best = v;
    }
    return best;
}

void coord__search_result(coord *c, int i, const Tlsweep__TrialResult *r)
{
    c->trials[i].task_seconds += r->seconds;
    if (!c->srows)
        return;
    sweep_srow *w = &c->srows[i];
    if (r->status != TLSWEEP__TRIAL_RESULT__STATUS__DONE) {
        w->final = 1;
        return;
    }
    int k = sweep_rung_at(&c->rungs, (int)r->epochs_done);
    if (k < 0) /* stopped early between two rungs: it went as far as it goes */
        w->final = 1;
    else
        sweep_srow_reach(w, &c->rungs, k, rung_value(c, i, r), r->stopped_epoch > 0);
}

uint32_t coord__until(const coord *c, int i)
{
    if (!c->srows)
        return 0;
    int k = c->srows[i].target < 0 ? 0 : c->srows[i].target;
    return k + 1 < c->rungs.n ? (uint32_t)c->rungs.epochs[k] : 0;
}

void coord__search_started(coord *c, int i)
{
    if (c->srows && c->srows[i].target < 0)
        c->srows[i].target = 0;
}

int coord__search_holds(const coord *c, int i)
{
    if (!c->srows)
        return 0;
    const sweep_srow *w = &c->srows[i];
    /* a promotion resumes from the checkpoint still being written */
    if (w->reached >= 0 && c->trials[i].ckpt.writing)
        return 1;
    /* asha starts a new trial only when nothing can be promoted */
    return c->s->search == SWEEP_SEARCH_ASHA && w->target < 0;
}

int coord__ckpt_spent(const coord *c, int i)
{
    return c->trials[i].st == TR_DONE && (!c->srows || c->srows[i].final);
}

/* Trial i goes on to rung k: journaled (durable) first, then pending. */
static int promote(coord *c, int i, int k)
{
    const sweep_trial *st = &c->s->trials[i];
    Tlsweep__JournalPromote p = TLSWEEP__JOURNAL_PROMOTE__INIT;
    p.trial_index = (uint32_t)i;
    p.trial_key = st->key;
    p.trial_id = (char *)st->id;
    p.rung = (uint32_t)k;
    p.epochs = (uint32_t)c->rungs.epochs[k];
    Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
    rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_PROMOTE;
    rec.promote = &p;
    tl_err je = {0};
    if (coord__journal_put(c, &rec, 1, &je)) {
        coord__fail_store(c, &je);
        return -1;
    }
    c->srows[i].target = k;
    c->trials[i].st = TR_PENDING;
    coord_log(c, "promoted %s: %s %.4f at %d epoch%s, on to rung %d (%d epochs)", st->id,
              sweep_metric_name(c->s->search_metric), c->srows[i].value[k - 1],
              c->rungs.epochs[k - 1], c->rungs.epochs[k - 1] == 1 ? "" : "s", k,
              c->rungs.epochs[k]);
    return 0;
}

int coord__search_decide(coord *c)
{
    if (!c->srows || c->phase != COORD_RUNNING || c->s->search != SWEEP_SEARCH_SHA)
        return 0;
    int *go = malloc((c->s->n_trials ? c->s->n_trials : 1) * sizeof *go);
    if (!go) {
        coord_failf(c, TL_ENOMEM, "coordinator: out of memory deciding a rung");
        return -1;
    }
    size_t n = sweep_sha_promotions(&c->rungs, c->srows, c->s->n_trials, go);
    int rc = 0;
    for (size_t j = 0; j < n && !rc; j++)
        rc = promote(c, go[j], c->srows[go[j]].target + 1);
    free(go);
    return rc ? -1 : (int)n;
}

int coord__asha_promote(coord *c, int capped)
{
    if (!c->srows || c->phase != COORD_RUNNING || c->s->search != SWEEP_SEARCH_ASHA)
        return -1;
    int i = sweep_asha_promotion(&c->rungs, c->srows, c->s->n_trials, capped);
    if (i < 0 || promote(c, i, c->srows[i].target + 1))
        return -1;
    return i;
}

void coord__replay_promote(coord *c, const Tlsweep__JournalPromote *p)
{
    int i = coord__find_trial(c, p->trial_index, p->trial_key);
    if (i < 0 || !c->srows || c->trials[i].st == TR_OTHER ||
        sweep_rung_at(&c->rungs, (int)p->epochs) != (int)p->rung || p->rung < 1)
        return; /* another sweep's rungs: not this run's decision */
    sweep_srow *w = &c->srows[i];
    if ((int)p->rung <= w->target)
        return;
    w->target = (int)p->rung;
    if (c->trials[i].st == TR_DONE) {
        c->trials[i].st = TR_PENDING;
        c->resumed--;
    }
}

void coord__search_finish(coord *c)
{
    if (!c->srows)
        return;
    /* trials that ended at a rung: their checkpoints would only fill the disk */
    for (size_t i = 0; i < c->s->n_trials; i++) {
        if (c->trials[i].st != TR_DONE || c->srows[i].final || c->trials[i].ckpt.writing)
            continue;
        char p[4096];
        coord__ckpt_path(c, (int)i, p, sizeof p);
        unlink(p);
    }
}

int coord_rung_reached(const coord *c, int i)
{
    return c->srows ? c->srows[i].reached : -1;
}

const char *coord_stop_reason(const coord *c, int i)
{
    const Tlsweep__TrialResult *r = c->trials[i].res;
    if (!r)
        return "";
    if (r->stopped_epoch)
        return "early_stopping";
    if (c->srows && c->srows[i].reached >= 0 && c->srows[i].reached + 1 < c->rungs.n)
        return "rung";
    return "epochs";
}

uint32_t coord_stopped_epoch(const coord *c, int i)
{
    const Tlsweep__TrialResult *r = c->trials[i].res;
    if (!r)
        return 0;
    if (r->stopped_epoch)
        return r->stopped_epoch;
    return strcmp(coord_stop_reason(c, i), "rung") ? 0 : r->epochs_done;
}

/* results.json's "search": the method, the draws, the rungs and the
 * sampled axes with their ranges (the report plots the metric against them). */
static void put_dist(json_t *o, const char *axis, const sweep_dist *d)
{
    static const char *const names[] = {"list", "uniform", "log_uniform", "int_uniform"};
    if (d->kind == SWEEP_DIST_LIST)
        return;
    json_object_set_new(o, axis, json_pack("{s:s, s:f, s:f}", "dist", names[d->kind], "low", d->lo,
                                           "high", d->hi));
}

json_t *coord__search_json(const coord *c)
{
    const sweep *s = c->s;
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(sweep_search_name(s->search)));
    json_object_set_new(o, "trials", json_integer((json_int_t)s->n_trials));
    json_object_set_new(o, "seed", sweep_draws(s) ? json_integer((json_int_t)s->search_seed) : json_null());
    json_t *rungs = json_array();
    for (int k = 0; k < c->rungs.n; k++)
        json_array_append_new(rungs, json_integer(c->rungs.epochs[k]));
    json_object_set_new(o, "rungs", rungs);
    if (sweep_has_rungs(s)) {
        json_object_set_new(o, "min_epochs", json_integer(s->min_epochs));
        json_object_set_new(o, "reduction_factor", json_integer(s->reduction_factor));
        json_object_set_new(o, "metric", json_string(sweep_metric_name(s->search_metric)));
        json_object_set_new(o, "goal", json_string(s->search_goal_max ? "max" : "min"));
    }
    json_t *sampled = json_object();
    put_dist(sampled, "learning_rate", &s->lr_dist);
    put_dist(sampled, "batch_size", &s->batch_dist);
    put_dist(sampled, "weight_decay", &s->wd_dist);
    put_dist(sampled, "momentum", &s->mom_dist);
    put_dist(sampled, "label_smoothing", &s->ls_dist);
    json_object_set_new(o, "sampled", sampled);
    return o;
}
