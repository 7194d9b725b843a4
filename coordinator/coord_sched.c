/* Scheduling: extraction shards first, then trials whose features are
 * ready, to whichever worker is free; results taken in trial order. */
#include "coordinator/coord_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/clock.h"
#include "common/msg/msg.h"
#include "common/store/ckpt.h"

/* ---- scheduling ------------------------------------------------------------------------ */

/* Whether trial i's features are there: it needs no shared cache, or its
 * cache is written. */
static int features_ready(const coord *c, int i)
{
    const sweep_trial *t = &c->s->trials[i];
    return !sweep_trial_uses_cache(t) || c->groups[t->cache_group].state == CG_READY;
}

static int trial_ready(const coord *c, int i)
{
    if (c->trials[i].st != TR_PENDING || coord__search_holds(c, i))
        return 0;
    return features_ready(c, i);
}

static void send_task(coord *c, cworker *k, Tlsweep__Task *task)
{
    task->task_id = ++c->task_seq;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_TASK;
    env.task = task;
    env.seq = ++c->seq;
    tl_err e = {0};
    if (msg_link_send(c->l, k->rank, &env, &e)) {
        coord_fail(c, &e);
        return;
    }
    k->state = CW_BUSY;
    k->task = task->task_id;
    k->answered = 0;
    k->epoch = 0;
}

static int give_extraction(coord *c, cworker *k)
{
    for (int g = 0; g < c->s->n_cache_groups; g++) {
        cgroup *cg = &c->groups[g];
        if (cg->state != CG_EXTRACTING || cg->next_shard >= cg->n_shards)
            continue;
        size_t a = cg->next_shard * cg->shard_size;
        size_t b = a + cg->shard_size < c->ix.n_items ? a + cg->shard_size : c->ix.n_items;
        uint32_t *ids = malloc((b - a) * sizeof *ids);
        if (!ids) {
            coord_failf(c, TL_ENOMEM, "out of memory");
            return 1;
        }
        for (size_t i = a; i < b; i++)
            ids[i - a] = (uint32_t)i;
        Tlsweep__Task t = TLSWEEP__TASK__INIT;
        t.kind = TLSWEEP__TASK__KIND__EXTRACT_FEATURES;
        t.cache_group = g;
        t.cache_key = cg->key;
        t.n_image_ids = b - a;
        t.image_ids = ids;
        t.trial_id = "";
        send_task(c, k, &t);
        free(ids);
        if (cg->next_shard == 0)
            cg->t0 = tl_now();
        cg->next_shard++;
        k->kind = CW_TASK_EXTRACT;
        k->group = g;
        k->shard_lo = a;
        k->shard_hi = b;
        return 1;
    }
    return 0;
}

/* Whether trial i resumes from its checkpoint at path: 1 yes, 0 from
 * scratch, -1 the sweep failed. A checkpoint is read back whole once per
 * run before a worker is sent to it (its digest, its key against the
 * trial's): one that is damaged, stale after an edit of the sweep or the
 * data, or unreadable is moved aside (path.bad; removed when that fails)
 * with one warning, and the trial starts again from scratch, instead of
 * failing on the worker and stopping the sweep on every rerun. */
static int resumable(coord *c, int i, const char *path)
{
    const sweep_trial *st = &c->s->trials[i];
    ctrial *t = &c->trials[i];
    struct stat sb;
    if (t->ckpt.writing || stat(path, &sb) != 0)
        return 0;
    if (t->ckpt.checked)
        return 1;
    Tlsweep__Checkpoint *ck = NULL;
    tl_err e = {0};
    int rc = ckpt_read_trial(path, st->key, st->id, &ck, &e);
    if (ck)
        tlsweep__checkpoint__free_unpacked(ck, NULL);
    if (rc == 0)
        t->ckpt.checked = 1;
    if (rc == 0 || rc == TL_ENOTFOUND)
        return rc == 0;
    if (rc == TL_ENOMEM) {
        coord_fail(c, &e);
        return -1;
    }
    char bad[4200];
    snprintf(bad, sizeof bad, "%s.bad", path);
    const char *fate = rename(path, bad) == 0 ? "moved to .bad"
                       : unlink(path) == 0    ? "removed"
                                              : "could not be moved or removed";
    coord_log(c, "warning: %s; trial %s starts again from scratch (the file %s)", e.msg, st->id,
              fate);
    return 0;
}

/* The next trial to give: the first ready one in grid order; under asha,
 * when none is, a promotion, else the first trial not started yet. -1: none. */
static int next_trial(coord *c)
{
    for (size_t i = 0; i < c->s->n_trials; i++)
        if (trial_ready(c, (int)i))
            return (int)i;
    if (c->s->search != SWEEP_SEARCH_ASHA)
        return -1;
    int p = coord__asha_promote(c, 1);
    if (p >= 0) /* given once its checkpoint is written, if it is not yet */
        return trial_ready(c, p) ? p : -1;
    if (c->phase != COORD_RUNNING)
        return -1;
    int fresh = 0;
    for (size_t i = 0; i < c->s->n_trials; i++) {
        if (c->trials[i].st != TR_PENDING || c->srows[i].target >= 0)
            continue;
        fresh = 1;
        if (features_ready(c, (int)i))
            return (int)i;
    }
    /* nothing new to start: the worker would wait; promote without the cap */
    if (fresh || (p = coord__asha_promote(c, 0)) < 0)
        return -1;
    return trial_ready(c, p) ? p : -1;
}

static int give_trial(coord *c, cworker *k)
{
    int i = next_trial(c);
    if (i >= 0) {
        const sweep_trial *st = &c->s->trials[i];
        ctrial *t = &c->trials[i];
        char ck[4096];
        coord__ckpt_path(c, (int)i, ck, sizeof ck);
        int resume = resumable(c, (int)i, ck);
        if (resume < 0)
            return 0;
        Tlsweep__Task task = TLSWEEP__TASK__INIT;
        task.kind = TLSWEEP__TASK__KIND__TRAIN_TRIAL;
        task.trial_index = (uint32_t)i;
        task.trial_key = st->key;
        task.trial_id = (char *)st->id;
        task.cache_group = st->cache_group;
        task.resume_from = resume ? ck : "";
        task.until_epoch = coord__until(c, (int)i);
        task.feature_cache = "";
        if (sweep_trial_uses_cache(st)) {
            task.feature_cache = c->groups[st->cache_group].path;
            task.cache_key = c->groups[st->cache_group].key;
        }
        if (c->best >= 0) {
            task.has_best = 1;
            task.best_value = c->trials[c->best].res->best_value;
            task.best_index = (uint32_t)c->best;
            task.goal_max = c->s->goal_max;
        }
        coord__search_started(c, (int)i);
        send_task(c, k, &task);
        t->st = TR_RUNNING;
        t->worker = k->rank;
        t->started = tl_now();
        k->kind = CW_TASK_TRAIN;
        k->trial = (int)i;
        if (resume)
            coord_log(c, "trial %s: resuming from its checkpoint on rank %d", st->id, k->rank);
        return 1;
    }
    return 0;
}

void coord__schedule(coord *c)
{
    if (c->phase != COORD_RUNNING)
        return;
    for (int w = 0; w < c->n_workers; w++) {
        cworker *k = &c->workers[w];
        if (k->state != CW_IDLE)
            continue;
        if (!give_extraction(c, k) && !give_trial(c, k))
            break;
    }
}

/* ---- results ---------------------------------------------------------------------------- */

/* The result is final: journal it, count it, drop the checkpoint. */
void coord__result_done(coord *c, Tlsweep__Envelope *env)
{
    const Tlsweep__TrialResult *r = env->trial_result;
    int i = (int)r->trial_index;
    ctrial *t = &c->trials[i];
    tl_err je = {0};
    if (coord__journal_result(c, r, &je)) {
        /* not DONE: a resume runs it again (from its checkpoint) */
        msg_free(env);
        coord__fail_store(c, &je);
        return;
    }
    if (t->res)
        tlsweep__trial_result__free_unpacked(t->res, NULL);
    if (!(t->res = coord__copy_result(r))) {
        /* journaled: a resume finds it done */
        coord_failf(c, TL_ENOMEM, "out of memory keeping the result of %s", c->s->trials[i].id);
        msg_free(env);
        return;
    }
    t->st = TR_DONE;
    coord__search_result(c, i, r);
    int was = c->best;
    coord_consider_best(c, i);
    const sweep_trial *st = &c->s->trials[i];
    int rung = coord_rung_reached(c, i);
    char at[48] = "";
    if (rung >= 0)
        snprintf(at, sizeof at, "rung %d/%d ", rung, c->rungs.n - 1);
    coord_log(c, "done %s%s: %s %.4f (epoch %u/%u)%s%s %.4f  %.1f s%s", at, st->id,
              sweep_metric_name(c->s->metric), r->best_value, r->best_epoch, r->epochs_done,
              r->eval_split[0] ? "  " : "", r->eval_split[0] ? r->eval_split : "",
              r->eval_accuracy, r->seconds, c->best == i && was != i ? "  (new best)" : "");
    int decided = coord__search_decide(c);
    if (decided < 0) {
        msg_free(env);
        return;
    }
    if (coord__ckpt_spent(c, i) && !t->ckpt.writing) {
        char p[4096];
        coord__ckpt_path(c, i, p, sizeof p);
        unlink(p);
    }
    msg_free(env);
}

/* Results wait in arrival order; one that beats the best first has its
 * model written as best.tlm, and only then is it journaled, so a run
 * killed in between redoes it (from its last checkpoint) rather than
 * believing a best.tlm that is not on disk. */
void coord__process_results(coord *c)
{
    while (!c->best_writing && c->n_queue) {
        Tlsweep__Envelope *env = c->queue[0];
        memmove(c->queue, c->queue + 1, (size_t)(--c->n_queue) * sizeof *c->queue);
        const Tlsweep__TrialResult *r = env->trial_result;
        int i = (int)r->trial_index;
        /* is it better than the best so far? compare as if done */
        Tlsweep__TrialResult *saved = c->trials[i].res;
        Tlsweep__TrialResult probe = *r;
        c->trials[i].res = &probe;
        int better = coord_better(c, i, c->best);
        c->trials[i].res = saved;
        if (better && r->model.len) {
            c->best_writing = 1;
            char p[4096];
            snprintf(p, sizeof p, "%s/best.tlm", c->out);
            coord__queue_write(c, WRITE_BEST, i, env, p);
            return;
        }
        coord__result_done(c, env);
    }
}
