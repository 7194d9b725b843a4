/* Scheduling: extraction shards first, then trials whose features are
 * ready, to whichever worker is free, alone or as a group of ranks
 * (ranks_per_trial; the decisions are sched_groups.c's); results taken in
 * trial order. */
#include "coordinator/coord_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/clock.h"
#include "common/msg/msg.h"
#include "common/store/ckpt.h"
#include "coordinator/sched_groups.h"

/* ---- scheduling ------------------------------------------------------------------------ */

/* Whether trial i's features are there: it needs no shared cache, or its
 * cache is written. */
static int features_ready(const coord *c, int i)
{
    const sweep_trial *t = &c->s->trials[i];
    return !sweep_trial_uses_cache(t) || c->groups[t->cache_group].state == CG_READY;
}

/* Workers still on trial i's last task: members of its group that have
 * not answered (the leader's answer came first). */
static int members_out(const coord *c, int i)
{
    int n = 0;
    for (int w = 0; w < c->n_workers; w++) {
        const cworker *k = &c->workers[w];
        n += (k->state == CW_BUSY || k->state == CW_STOPPING) && k->kind == CW_TASK_TRAIN &&
             k->trial == i;
    }
    return n;
}

/* A pending trial is given once its features are there, its last
 * checkpoint is on disk and every member of its last group has answered
 * (a yielded trial goes on from that checkpoint, on its next group). */
static int trial_ready(const coord *c, int i)
{
    const ctrial *t = &c->trials[i];
    if (t->st != TR_PENDING || coord__search_holds(c, i) || t->ckpt.writing)
        return 0;
    /* members_out last: it scans the workers */
    return features_ready(c, i) && !members_out(c, i);
}

int coord__group_member(const coord *c, const cworker *k, int i)
{
    return i >= 0 && (k->state == CW_BUSY || k->state == CW_STOPPING) &&
           k->kind == CW_TASK_TRAIN && k->trial == i && c->trials[i].worker != k->rank;
}

/* ---- groups of ranks ------------------------------------------------------------------- */

/* Whether trials may be trained by groups: workers are MPI ranks, more
 * than one, and ranks_per_trial is not 1. */
static int groups_on(const coord *c)
{
    return c->o->rank_groups && c->n_workers > 1 && c->s->ranks_per_trial != 1;
}

static int auto_groups(const coord *c)
{
    return groups_on(c) && c->s->ranks_per_trial == SWEEP_RANKS_AUTO;
}

/* The epoch trial i's task trains through. */
static int task_until(const coord *c, int i)
{
    uint32_t u = coord__until(c, i);
    return u ? (int)u : c->s->trials[i].epochs;
}

/* Whether trial i's task runs a whole-net stage: a frozen trial on the
 * feature cache never does, a two-stage one once past its frozen epochs. */
static int trial_eligible(const coord *c, int i)
{
    const sweep_trial *st = &c->s->trials[i];
    if (st->mode.kind == SWEEP_FROZEN)
        return !sweep_trial_uses_cache(st);
    if (st->mode.kind == SWEEP_FROZEN_THEN_FINE_TUNE)
        return task_until(c, i) > st->mode.frozen_epochs;
    return 1;
}

/* Epochs running trial i trains after the one in progress. */
static int epochs_left(const coord *c, int i)
{
    const ctrial *t = &c->trials[i];
    int now = t->cur_epoch > t->epochs_done ? t->cur_epoch : t->epochs_done + 1;
    int left = task_until(c, i) - now;
    return left > 0 ? left : 0;
}

static int idle_free(const cworker *k)
{
    return k->state == CW_IDLE && k->reserved < 0;
}

static int count_idle_free(const coord *c)
{
    int n = 0;
    for (int w = 0; w < c->n_workers; w++)
        n += idle_free(&c->workers[w]);
    return n;
}

/* Workers as the decisions see them; reservations for trials outside the
 * trial table (map: trial -> table index, NULL: trial indices) count as
 * reserved elsewhere (nt). */
static void worker_table(const coord *c, const int *map, int nt, sched_worker *w)
{
    for (int k = 0; k < c->n_workers; k++) {
        const cworker *x = &c->workers[k];
        w[k].idle = x->state == CW_IDLE;
        w[k].host = x->host_id;
        w[k].reserved = x->reserved < 0 || !map ? x->reserved : nt;
        for (int j = 0; map && x->reserved >= 0 && j < nt; j++)
            if (map[j] == x->reserved)
                w[k].reserved = j;
    }
}

/* The running trials (at most one per worker) into t, their indices into
 * map; returns how many. */
static int running_table(const coord *c, sched_trial *t, int *map)
{
    int n = 0;
    for (int w = 0; w < c->n_workers; w++) {
        const cworker *k = &c->workers[w];
        int i = k->trial;
        if (k->state != CW_BUSY || k->kind != CW_TASK_TRAIN || c->trials[i].st != TR_RUNNING ||
            c->trials[i].worker != k->rank)
            continue;
        const ctrial *x = &c->trials[i];
        map[n] = i;
        t[n] = (sched_trial){.running = 1, .eligible = trial_eligible(c, i),
                             .cap = c->s->trials[i].batch_size,
                             .members = x->n_group > 0 ? x->n_group : 1,
                             .epochs_left = epochs_left(c, i), .yielding = x->yielding};
        n++;
    }
    return n;
}

/* Trials that could start now, counted up to `most`. */
static int count_startable(const coord *c, int most)
{
    int n = 0;
    for (size_t i = 0; i < c->s->n_trials && n < most; i++)
        n += trial_ready(c, (int)i);
    return n;
}

static int reserved_for(const coord *c, int i)
{
    int n = 0;
    for (int w = 0; w < c->n_workers; w++)
        n += c->workers[w].state == CW_IDLE && c->workers[w].reserved == i;
    return n;
}

/* The group trial i starts on when `idle` free workers are idle. */
static int group_size(const coord *c, int i, int idle)
{
    if (!groups_on(c))
        return 1;
    int eligible = trial_eligible(c, i), cap = c->s->trials[i].batch_size;
    int rpt = c->s->ranks_per_trial;
    if (rpt != SWEEP_RANKS_AUTO)
        return sched_group_size(rpt, eligible, cap, c->n_workers, idle, 1);
    int share = sched_group_size(rpt, eligible, cap, c->n_workers, idle,
                                 idle > 1 && eligible ? count_startable(c, idle) : 1);
    int n = eligible ? share + reserved_for(c, i) : 1;
    int most = cap < c->n_workers ? cap : c->n_workers;
    return n < most ? n : most;
}

/* ranks_per_trial N: trial i starts only when its group's workers are idle. */
static int fits(const coord *c, int i, int idle)
{
    return auto_groups(c) || group_size(c, i, idle) <= idle;
}

/* Sends trial i's leader Stop YIELD: the group ends the task at its epoch
 * boundary, and each member's answer YIELDED is expected. */
static void send_yield(coord *c, int i, int joining)
{
    ctrial *t = &c->trials[i];
    Tlsweep__Stop st = TLSWEEP__STOP__INIT;
    st.reason = TLSWEEP__STOP__REASON__YIELD;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_STOP;
    env.stop = &st;
    env.seq = ++c->seq;
    tl_err e = {0};
    if (msg_link_send(c->l, t->worker, &env, &e)) {
        coord_fail(c, &e);
        return;
    }
    t->yielding = 1;
    for (int w = 0; w < c->n_workers; w++) {
        cworker *k = &c->workers[w];
        if (k->state == CW_BUSY && k->kind == CW_TASK_TRAIN && k->trial == i)
            k->yield_asked = 1;
    }
    coord_log(c, "trial %s: its %d rank%s yield at the end of the epoch, %s", c->s->trials[i].id,
              t->n_group > 0 ? t->n_group : 1, t->n_group > 1 ? "s" : "",
              joining ? "to take idle ranks" : "to share them with a waiting trial");
}

void coord__yielded(coord *c, cworker *k, int i)
{
    if (k->state == CW_IDLE && c->phase == COORD_RUNNING && reserved_for(c, i))
        k->reserved = i;
}

/* Reservations stand while their trial yields or waits for its next
 * group, and until something else becomes startable. */
static void lapse_reservations(coord *c)
{
    int any = 0, lapse = 0;
    for (int w = 0; w < c->n_workers; w++) {
        cworker *k = &c->workers[w];
        if (k->reserved < 0)
            continue;
        ctrial_state st = c->trials[k->reserved].st;
        if (k->state != CW_IDLE || (st != TR_RUNNING && st != TR_PENDING))
            k->reserved = -1;
        any |= k->reserved >= 0;
    }
    for (size_t i = 0; any && !lapse && i < c->s->n_trials; i++)
        lapse = trial_ready(c, (int)i) && !reserved_for(c, (int)i);
    for (int w = 0; lapse && w < c->n_workers; w++)
        c->workers[w].reserved = -1;
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
    k->yield_asked = 0;
    k->reserved = -1;
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
    if (rc == 0) {
        t->ckpt.checked = 1;
        t->ckpt.epoch = ck->epoch;
    }
    if (ck)
        tlsweep__checkpoint__free_unpacked(ck, NULL);
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

/* The next trial to give when `idle` free workers are idle: the first
 * ready one in grid order whose group fits; under asha, when none is, a
 * promotion, else the first trial not started yet. -1: none. */
static int next_trial(coord *c, int idle)
{
    for (size_t i = 0; i < c->s->n_trials; i++)
        if (trial_ready(c, (int)i) && fits(c, (int)i, idle))
            return (int)i;
    if (c->s->search != SWEEP_SEARCH_ASHA)
        return -1;
    int p = coord__asha_promote(c, 1);
    if (p >= 0) /* given once its checkpoint is written, if it is not yet */
        return trial_ready(c, p) && fits(c, p, idle) ? p : -1;
    if (c->phase != COORD_RUNNING)
        return -1;
    int fresh = 0;
    for (size_t i = 0; i < c->s->n_trials; i++) {
        if (c->trials[i].st != TR_PENDING || c->srows[i].target >= 0)
            continue;
        fresh = 1;
        if (features_ready(c, (int)i) && fits(c, (int)i, idle))
            return (int)i;
    }
    /* nothing new to start: the worker would wait; promote without the cap */
    if (fresh || (p = coord__asha_promote(c, 0)) < 0)
        return -1;
    return trial_ready(c, p) && fits(c, p, idle) ? p : -1;
}

/* "1,2,3" into buf */
static void ranks_text(const int32_t *r, int n, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int k = 0; k < n && len < size; k++)
        len += (size_t)snprintf(buf + len, size - len, "%s%d", k ? "," : "", (int)r[k]);
}

/* Trial i's group of n workers (indices; the leader first) as its ranks. */
static int keep_group(coord *c, int i, const int *members, int n)
{
    ctrial *t = &c->trials[i];
    int32_t *g = malloc((size_t)n * sizeof *g);
    if (!g) {
        coord_failf(c, TL_ENOMEM, "out of memory");
        return -1;
    }
    for (int k = 0; k < n; k++)
        g[k] = c->workers[members[k]].rank;
    free(t->group);
    t->group = g;
    t->n_group = n;
    return 0;
}

/* Trial i to the workers members[0..n) (the first leads): a Task each,
 * the same group_ranks and group_id on all when n > 1. */
static int start_trial(coord *c, int i, const int *members, int n)
{
    const sweep_trial *st = &c->s->trials[i];
    ctrial *t = &c->trials[i];
    char ck[4096];
    coord__ckpt_path(c, i, ck, sizeof ck);
    int resume = resumable(c, i, ck);
    int regroup = t->n_group > 1 || n > 1;
    if (resume < 0 || keep_group(c, i, members, n))
        return 0;
    Tlsweep__Task task = TLSWEEP__TASK__INIT;
    task.kind = TLSWEEP__TASK__KIND__TRAIN_TRIAL;
    task.trial_index = (uint32_t)i;
    task.trial_key = st->key;
    task.trial_id = (char *)st->id;
    task.cache_group = st->cache_group;
    task.resume_from = resume ? ck : "";
    task.until_epoch = coord__until(c, i);
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
    if (n > 1) {
        task.n_group_ranks = (size_t)n;
        task.group_ranks = t->group;
        task.group_id = ++c->group_seq;
    }
    coord__search_started(c, i);
    for (int m = 0; m < n && c->phase == COORD_RUNNING; m++) {
        cworker *k = &c->workers[members[m]];
        send_task(c, k, &task);
        k->kind = CW_TASK_TRAIN;
        k->trial = i;
    }
    tl_err je = {0};
    if (c->phase == COORD_RUNNING &&
        coord__journal_task(c, i, resume ? t->ckpt.epoch : 0, task.until_epoch, &je))
        coord__fail_store(c, &je);
    t->st = TR_RUNNING;
    t->worker = t->group[0];
    t->started = tl_now();
    t->yielding = 0;
    char rk[200];
    ranks_text(t->group, n, rk, sizeof rk);
    if (resume)
        coord_log(c, "trial %s: resuming from its checkpoint on rank%s %s", st->id,
                  n > 1 ? "s" : "", rk);
    else if (regroup)
        coord_log(c, "trial %s: on ranks %s", st->id, rk);
    return 1;
}

/* The workers (indices) of trial i's group led by worker `leader`. */
static int pick_group(coord *c, int i, int leader, int size, int *members)
{
    sched_worker *w = malloc((size_t)c->n_workers * sizeof *w);
    if (!w) {
        coord_failf(c, TL_ENOMEM, "out of memory");
        return 0;
    }
    worker_table(c, NULL, 0, w);
    int n = sched_pick_members(w, c->n_workers, leader, i, size, members);
    free(w);
    return n;
}

static int give_trial(coord *c, cworker *k)
{
    /* auto shares the workers out among the first trials: all of them */
    if (auto_groups(c) && c->hellos < c->n_workers)
        return 0;
    int idle = count_idle_free(c);
    int i = next_trial(c, idle);
    if (i < 0)
        return 0;
    int *members = malloc((size_t)c->n_workers * sizeof *members);
    if (!members) {
        coord_failf(c, TL_ENOMEM, "out of memory");
        return 0;
    }
    int n = pick_group(c, i, (int)(k - c->workers), group_size(c, i, idle), members);
    int ok = n > 0 && start_trial(c, i, members, n);
    free(members);
    return ok;
}

/* auto: trials whose reserved workers wait for them start on those once
 * ready, led by their last leader when it is among them. */
static void start_reserved(coord *c)
{
    for (int w = 0; w < c->n_workers && c->phase == COORD_RUNNING; w++) {
        int i = c->workers[w].reserved;
        if (i < 0 || c->workers[w].state != CW_IDLE || !trial_ready(c, i))
            continue;
        int leader = w;
        for (int x = 0; x < c->n_workers; x++)
            if (c->workers[x].rank == c->trials[i].worker && c->workers[x].state == CW_IDLE &&
                c->workers[x].reserved == i)
                leader = x;
        int cap = c->s->trials[i].batch_size, n_res = reserved_for(c, i);
        int *members = malloc((size_t)c->n_workers * sizeof *members);
        if (!members) {
            coord_failf(c, TL_ENOMEM, "out of memory");
            return;
        }
        int n = pick_group(c, i, leader, n_res < cap ? n_res : cap, members);
        if (n > 0)
            start_trial(c, i, members, n);
        free(members);
        for (int x = 0; x < c->n_workers; x++)
            if (c->workers[x].reserved == i)
                c->workers[x].reserved = -1;
    }
}

/* Whether a trial is about to be startable: one that stopped or yielded
 * waits for its checkpoint or its members' answers, or a feature cache is
 * on its way. Idle workers wait for it rather than join a running trial
 * and leave it again at the next boundary. */
static int startable_soon(const coord *c)
{
    for (int g = 0; g < c->s->n_cache_groups; g++)
        if (c->groups[g].state == CG_EXTRACTING || c->groups[g].state == CG_WRITING)
            return 1;
    for (size_t i = 0; i < c->s->n_trials; i++) {
        const ctrial *t = &c->trials[i];
        if (t->st == TR_PENDING && t->n_group && (t->ckpt.writing || members_out(c, (int)i)))
            return 1;
    }
    return 0;
}

/* auto (2) and (3): idle workers join running trials, or a startable
 * trial with no idle worker makes the largest group yield. */
static void plan_groups(coord *c)
{
    int nw = c->n_workers, idle = count_idle_free(c);
    sched_worker *w = malloc((size_t)nw * sizeof *w);
    sched_trial *t = malloc((size_t)nw * sizeof *t);
    int *map = malloc((size_t)nw * sizeof *map), *reserve = malloc((size_t)nw * sizeof *reserve);
    int *yield = malloc((size_t)nw * sizeof *yield);
    if (!w || !t || !map || !reserve || !yield) {
        coord_failf(c, TL_ENOMEM, "out of memory");
        goto out;
    }
    int nt = running_table(c, t, map);
    worker_table(c, map, nt, w);
    if (idle) {
        if (startable_soon(c))
            goto out;
        for (int k = 0; k < nw; k++)
            reserve[k] = -1;
        sched_plan_joins(w, nw, t, nt, reserve, yield);
        for (int k = 0; k < nw; k++)
            if (reserve[k] >= 0)
                c->workers[k].reserved = map[reserve[k]];
        for (int j = 0; j < nt && c->phase == COORD_RUNNING; j++)
            if (yield[j])
                send_yield(c, map[j], 1);
    } else if (count_startable(c, 1)) {
        int j = sched_pick_shrink(t, nt);
        if (j >= 0)
            send_yield(c, map[j], 0);
    }
out:
    free(w);
    free(t);
    free(map);
    free(reserve);
    free(yield);
}

void coord__schedule(coord *c)
{
    if (c->phase != COORD_RUNNING)
        return;
    if (auto_groups(c))
        lapse_reservations(c);
    for (int w = 0; w < c->n_workers; w++) {
        cworker *k = &c->workers[w];
        if (!idle_free(k))
            continue;
        if (!give_extraction(c, k) && !give_trial(c, k))
            break;
    }
    if (!auto_groups(c) || c->phase != COORD_RUNNING)
        return;
    start_reserved(c);
    if (c->phase == COORD_RUNNING)
        plan_groups(c);
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
