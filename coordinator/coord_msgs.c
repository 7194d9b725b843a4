/* What workers send the coordinator, and the link's timers. */
#include "coordinator/coord_int.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/clock.h"
#include "common/msg/msg.h"

/* ---- messages -------------------------------------------------------------------------- */

/* Nothing a worker sends is trusted: every field the coordinator uses is
 * checked against what that worker was told to do. A message that breaks
 * the protocol is a worker error (bad_msg: the sweep stops with one line
 * naming the rank and what was wrong); one that harms nothing is dropped
 * with a warning (odd_msg). */

/* the widest feature row a backbone gives (Flatten of InceptionV3 at 299
 * is 131,072 floats); more is a corrupt chunk, not a feature */
#define FEATURE_DIM_MAX ((int64_t)1 << 24)
/* a worker's text in a line of ours */
#define WORKER_TEXT_MAX 400
/* a worker in its setup indexes the dataset, silent, as the coordinator
 * did before the run: it may take this many worker_timeouts */
#define SETUP_TIMEOUTS 10
#define STR_(x) #x
#define STR(x) STR_(x)

static cworker *worker_of(coord *c, int rank)
{
    for (int w = 0; w < c->n_workers; w++)
        if (c->workers[w].rank == rank)
            return &c->workers[w];
    return NULL;
}

static const char *host_of(const cworker *k)
{
    return k->host[0] ? k->host : "no hello yet";
}

/* A worker's text made one printable line of bounded length, in place
 * (an empty string may be protobuf-c's shared one: not written to). */
static void one_line(char *s)
{
    size_t n = 0;
    for (; s[n] && n < WORKER_TEXT_MAX; n++)
        if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f)
            s[n] = ' ';
    if (s[n])
        s[n] = '\0';
}

static void complain(coord *c, const cworker *k, const Tlsweep__Envelope *env, int harmless,
                     const char *fmt, va_list ap)
{
    char what[400];
    vsnprintf(what, sizeof what, fmt, ap);
    if (harmless)
        coord_log(c, "warning: rank %d (%s): %s message dropped: %s", k->rank, host_of(k),
                  msg_body_name(env), what);
    else {
        /* a worker out of step may not stop when told either: cli_run
         * aborts what is left rather than wait in MPI_Finalize */
        c->o->abandoned = 1;
        coord_failf(c, TL_EFORMAT, "rank %d (%s): bad %s message: %s", k->rank, host_of(k),
                    msg_body_name(env), what);
    }
}

static void bad_msg(coord *c, const cworker *k, const Tlsweep__Envelope *env, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
static void bad_msg(coord *c, const cworker *k, const Tlsweep__Envelope *env, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    complain(c, k, env, 0, fmt, ap);
    va_end(ap);
}

static void odd_msg(coord *c, const cworker *k, const Tlsweep__Envelope *env, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
static void odd_msg(coord *c, const cworker *k, const Tlsweep__Envelope *env, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    complain(c, k, env, 1, fmt, ap);
    va_end(ap);
}

/* Is k working on task `task` of this kind (a Stop may be on its way)? */
static int on_task(const cworker *k, cworker_task kind, uint64_t task)
{
    return (k->state == CW_BUSY || k->state == CW_STOPPING) && k->kind == kind && k->task == task;
}

static const char *task_kind_name(cworker_task kind)
{
    return kind == CW_TASK_EXTRACT ? "extraction" : kind == CW_TASK_TRAIN ? "training" : "no";
}

/* 0 when a message about `task` comes from the worker on it; else -1 after
 * bad_msg (or odd_msg when harmless). */
static int check_task(coord *c, cworker *k, const Tlsweep__Envelope *env, cworker_task kind,
                      uint64_t task, int harmless)
{
    if (kind != CW_TASK_NONE && on_task(k, kind, task))
        return 0;
    (harmless ? odd_msg : bad_msg)(c, k, env, "for task %llu, but rank %d is on %s task %llu%s",
                                   (unsigned long long)task, k->rank, task_kind_name(k->kind),
                                   (unsigned long long)k->task,
                                   k->state == CW_BUSY || k->state == CW_STOPPING ? "" : " (over)");
    return -1;
}

/* The trial of a training message: task, index and key must be the ones k
 * was sent, and the trial still running there. -1 (after bad_msg) if not. */
static int task_trial(coord *c, cworker *k, const Tlsweep__Envelope *env, uint64_t task,
                      uint32_t index, const uint64_t *key)
{
    if (check_task(c, k, env, CW_TASK_TRAIN, task, 0))
        return -1;
    int i = k->trial;
    const ctrial *t = &c->trials[i];
    if ((int64_t)index != i || (key && *key != c->s->trials[i].key)) {
        bad_msg(c, k, env, "about trial %u%s, but rank %d trains trial %d (%s)", (unsigned)index,
                (int64_t)index == i ? " with another key" : "", k->rank, i, c->s->trials[i].id);
        return -1;
    }
    if (t->st != TR_RUNNING || t->worker != k->rank) {
        bad_msg(c, k, env, "about trial %s, which is not running on rank %d", c->s->trials[i].id,
                k->rank);
        return -1;
    }
    return i;
}

static void on_hello(coord *c, cworker *k, const Tlsweep__Envelope *env)
{
    tl_err e = {0};
    if (msg_hello_check(env, &e)) {
        coord_fail(c, &e);
        return;
    }
    const Tlsweep__Hello *h = env->hello;
    k->hello = 1;
    snprintf(k->host, sizeof k->host, "%s", h->host);
    one_line(k->host);
    k->host_id = (int)(k - c->workers);
    for (int w = 0; w < c->n_workers; w++)
        if (c->workers[w].hello && &c->workers[w] != k && !strcmp(c->workers[w].host, k->host)) {
            k->host_id = c->workers[w].host_id;
            break;
        }
    k->threads = h->threads;
    Tlsweep__Setup su = TLSWEEP__SETUP__INIT;
    su.sweep_file = c->s->file;
    su.sweep_text.data = (uint8_t *)c->o->sweep_text;
    su.sweep_text.len = c->o->sweep_len;
    su.out_dir = (char *)c->out;
    su.threads = (uint32_t)(c->s->threads > 0 ? c->s->threads : c->o->threads);
    su.index_items = c->ix.n_items;
    su.index_fingerprint = c->fingerprint;
    Tlsweep__Envelope out = TLSWEEP__ENVELOPE__INIT;
    out.body_case = TLSWEEP__ENVELOPE__BODY_SETUP;
    out.setup = &su;
    out.seq = ++c->seq;
    if (msg_link_send(c->l, k->rank, &out, &e)) {
        coord_fail(c, &e);
        return;
    }
    if (k->state == CW_NEW)
        k->state = CW_IDLE;
    k->in_setup = 1;
    c->hellos++;
    if (c->hellos == c->n_workers) {
        coord_log(c, "workers: %d ready (%s%s)", c->n_workers, k->host,
                  c->n_workers > 1 ? ", ..." : "");
        coord__journal_workers(c, 1);
    }
}

/* The tensor of a feature chunk against its ids and the group's earlier
 * chunks: *dim floats a row. 0, or -1 after bad_msg. */
static int feature_shape(coord *c, cworker *k, const Tlsweep__Envelope *env, size_t *dim)
{
    const Tlsweep__FeatureChunk *f = env->feature_chunk;
    const Tlsweep__Tensor *x = f->features;
    size_t n = f->n_image_ids;
    *dim = 0;
    if (!n) {
        if (x && x->n_data) {
            bad_msg(c, k, env, "%zu floats for no image id", x->n_data);
            return -1;
        }
        return 0;
    }
    if (!x || x->n_shape != 2 || x->offset) {
        bad_msg(c, k, env, "%zu image ids without a whole (images, features) tensor", n);
        return -1;
    }
    if (x->shape[0] < 0 || (uint64_t)x->shape[0] != n) {
        bad_msg(c, k, env, "%zu image ids, %lld rows of features", n, (long long)x->shape[0]);
        return -1;
    }
    if (x->shape[1] < 1 || x->shape[1] > FEATURE_DIM_MAX) {
        bad_msg(c, k, env, "%lld features per image, expected 1..%lld", (long long)x->shape[1],
                (long long)FEATURE_DIM_MAX);
        return -1;
    }
    size_t d = (size_t)x->shape[1];
    const cgroup *cg = &c->groups[k->group];
    if (cg->dim && d != cg->dim) {
        bad_msg(c, k, env, "%zu features per image, earlier chunks of %s had %zu", d,
                coord_group_label(c, k->group), cg->dim);
        return -1;
    }
    if (n > SIZE_MAX / d || x->n_data != n * d) {
        bad_msg(c, k, env, "%zu floats for %zu images of %zu features", x->n_data, n, d);
        return -1;
    }
    *dim = d;
    return 0;
}

static void on_features(coord *c, cworker *k, const Tlsweep__Envelope *env)
{
    const Tlsweep__FeatureChunk *f = env->feature_chunk;
    if (check_task(c, k, env, CW_TASK_EXTRACT, f->task_id, 0))
        return;
    int g = k->group;
    cgroup *cg = &c->groups[g];
    if (f->cache_group != g || cg->state != CG_EXTRACTING) {
        bad_msg(c, k, env, "for cache group %d, but rank %d extracts group %d", f->cache_group,
                k->rank, g);
        return;
    }
    size_t n = f->n_image_ids, dim;
    if (feature_shape(c, k, env, &dim))
        return;
    size_t shard = k->shard_hi - k->shard_lo;
    for (size_t i = 0; i < n + f->n_skipped_ids; i++) {
        uint32_t id = i < n ? f->image_ids[i] : f->skipped_ids[i - n];
        if (id < k->shard_lo || id >= k->shard_hi) {
            bad_msg(c, k, env, "image id %u outside its shard (ids %zu..%zu)", (unsigned)id,
                    k->shard_lo, k->shard_hi - 1);
            return;
        }
    }
    if (!f->last && f->n_skipped_ids) {
        bad_msg(c, k, env, "skipped ids before the last chunk");
        return;
    }
    k->answered += n + f->n_skipped_ids;
    if (k->answered > shard || (f->last && k->answered != shard)) {
        bad_msg(c, k, env, "%llu images answered for a shard of %zu",
                (unsigned long long)k->answered, shard);
        return;
    }
    if (n && !cg->x) {
        cg->dim = dim;
        cg->x = calloc(c->ix.n_items * dim, sizeof(float));
        cg->ok = calloc(c->ix.n_items, 1);
        if (!cg->x || !cg->ok) {
            coord_failf(c, TL_ENOMEM, "out of memory for the feature cache");
            return;
        }
    }
    const Tlsweep__Tensor *x = f->features;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = f->image_ids[i];
        memcpy(cg->x + (size_t)id * dim, x->data + i * dim, dim * sizeof(float));
        cg->ok[id] = 1;
    }
    cg->run_images += n;
    if (!f->last)
        return;
    cg->skipped += f->n_skipped_ids;
    cg->run_images += f->n_skipped_ids;
    coord__task_over(k);
    if (++cg->shards_done == cg->n_shards) {
        if (!cg->x) {
            coord_failf(c, TL_EINVAL, "no image of the dataset decoded");
            return;
        }
        cg->state = CG_WRITING;
        coord__queue_write(c, WRITE_FCACHE, g, NULL, cg->path);
    }
}

/* The figures of a DONE result that the coordinator indexes with. */
static int result_figures(coord *c, cworker *k, const Tlsweep__Envelope *env, int i)
{
    char what[300];
    if (coord__result_figures(c, i, env->trial_result, what, sizeof what)) {
        bad_msg(c, k, env, "%s", what);
        return -1;
    }
    return 0;
}

/* Whether ranks (a message's, n of them) are trial t's group. A trial on
 * one worker takes none (sent before groups existed) or one, whatever its
 * number: a worker on an in-process link knows itself by that link's rank
 * only, and the coordinator records the rank it knows. */
static int same_group(const ctrial *t, const int32_t *ranks, size_t n)
{
    if (t->n_group <= 1)
        return n <= 1;
    if (n != (size_t)t->n_group)
        return 0;
    for (size_t k = 0; k < n; k++)
        if (ranks[k] != t->group[k])
            return 0;
    return 1;
}

/* The status of a result against what k was asked: 0, or -1 after bad_msg. */
static int result_status(coord *c, cworker *k, const Tlsweep__Envelope *env)
{
    const Tlsweep__TrialResult *r = env->trial_result;
    if (r->status != TLSWEEP__TRIAL_RESULT__STATUS__DONE &&
        r->status != TLSWEEP__TRIAL_RESULT__STATUS__FAILED &&
        r->status != TLSWEEP__TRIAL_RESULT__STATUS__STOPPED &&
        r->status != TLSWEEP__TRIAL_RESULT__STATUS__YIELDED) {
        bad_msg(c, k, env, "status %d", (int)r->status);
        return -1;
    }
    /* a stop the coordinator did not ask for would be rescheduled, and
     * stop again, for ever */
    if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__STOPPED && k->state != CW_STOPPING) {
        bad_msg(c, k, env, "%s task %llu stopped, but no stop was asked for",
                task_kind_name(k->kind), (unsigned long long)r->task_id);
        return -1;
    }
    if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__YIELDED && !k->yield_asked) {
        bad_msg(c, k, env, "%s task %llu yielded, but no yield was asked for",
                task_kind_name(k->kind), (unsigned long long)r->task_id);
        return -1;
    }
    return 0;
}

/* A member's knock-on failure names the rank that failed first; any
 * other failure is the cause, and its line is worth a log. */
static int failure_is_cause(const char *message)
{
    int rank, end = 0;
    return !(sscanf(message, "rank %d of the group failed%n", &rank, &end) == 1 && end > 0);
}

/* The answer of a member of trial i's group (not its leader): it only
 * frees that worker; the leader's answer is the trial's. */
static void on_member_result(coord *c, cworker *k, Tlsweep__TrialResult *r, int i,
                             const Tlsweep__Envelope *env)
{
    const ctrial *t = &c->trials[i];
    if ((int64_t)r->trial_index != i || r->trial_key != c->s->trials[i].key) {
        bad_msg(c, k, env, "about trial %u, but rank %d trains trial %d (%s) in rank %d's group",
                (unsigned)r->trial_index, k->rank, i, c->s->trials[i].id, t->worker);
        return;
    }
    if (!same_group(t, r->ranks, r->n_ranks)) {
        bad_msg(c, k, env, "trial %s: %zu ranks from rank %d, not the %d of its group",
                c->s->trials[i].id, r->n_ranks, k->rank, t->n_group);
        return;
    }
    one_line(r->message);
    coord__task_over(k);
    if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__FAILED && failure_is_cause(r->message))
        coord_log(c, "failed %s on rank %d (of rank %d's group): %s", c->s->trials[i].id,
                  k->rank, t->worker, r->message);
    else if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__YIELDED)
        coord__yielded(c, k, i);
}

static void on_result(coord *c, cworker *k, Tlsweep__Envelope *env)
{
    Tlsweep__TrialResult *r = env->trial_result;
    if (check_task(c, k, env, k->kind, r->task_id, 0) || result_status(c, k, env)) {
        msg_free(env);
        return;
    }
    if (k->kind == CW_TASK_EXTRACT) {
        if (r->status != TLSWEEP__TRIAL_RESULT__STATUS__STOPPED) {
            bad_msg(c, k, env, "an extraction task answered as a trial");
            msg_free(env);
            return;
        }
        /* an extraction that stopped on request: the shard is lost */
        coord__task_over(k);
        msg_free(env);
        return;
    }
    if (coord__group_member(c, k, k->trial)) {
        on_member_result(c, k, r, k->trial, env);
        msg_free(env);
        return;
    }
    int i = task_trial(c, k, env, r->task_id, r->trial_index, &r->trial_key);
    if (i >= 0 && !same_group(&c->trials[i], r->ranks, r->n_ranks)) {
        bad_msg(c, k, env, "trial %s: %zu ranks, not the %d of its group", c->s->trials[i].id,
                r->n_ranks, c->trials[i].n_group);
        i = -1;
    }
    if (i < 0 ||
        (r->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE && result_figures(c, k, env, i))) {
        msg_free(env);
        return;
    }
    one_line(r->message);
    coord__task_over(k);
    ctrial *t = &c->trials[i];
    t->yielding = 0;
    if (t->n_group == 1 && r->n_ranks == 1) /* alone: the rank the coordinator knows */
        r->ranks[0] = t->group[0];
    if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE) {
        /* one per running trial, and a trial runs on one worker at a time */
        assert(c->n_queue < (int)c->s->n_trials);
        t->st = TR_FINISHING;
        c->queue[c->n_queue++] = env;
        coord__process_results(c);
        return;
    }
    if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__YIELDED) {
        /* its next group is named when it is given */
        t->st = TR_PENDING;
        coord__yielded(c, k, i);
    } else if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__STOPPED) {
        t->st = TR_PENDING;
        coord_log(c, "stopped %s after %u epoch%s (checkpointed)", c->s->trials[i].id,
                  r->epochs_done, r->epochs_done == 1 ? "" : "s");
    } else {
        t->st = TR_FAILED;
        c->n_failed++;
        coord_log(c, "failed %s on rank %d: %s", c->s->trials[i].id, k->rank, r->message);
        tl_err je = {0};
        if (coord__journal_result(c, r, &je))
            coord__fail_store(c, &je);
        if (t->res)
            tlsweep__trial_result__free_unpacked(t->res, NULL);
        t->res = coord__copy_result(r); /* its message: results.json and coord_run's line */
        coord__search_result(c, i, r);
        coord__search_decide(c);
    }
    msg_free(env);
}

static void on_epoch(coord *c, cworker *k, const Tlsweep__Envelope *env)
{
    Tlsweep__EpochReport *er = env->epoch_report;
    int i = task_trial(c, k, env, er->task_id, er->trial_index, NULL);
    if (i < 0)
        return;
    int epochs = c->s->trials[i].epochs;
    if (er->epoch < 1 || er->epoch > (uint32_t)epochs) {
        bad_msg(c, k, env, "trial %s: epoch %u of %d", c->s->trials[i].id, (unsigned)er->epoch,
                epochs);
        return;
    }
    /* the first report of a task may follow a checkpoint; the others follow it */
    if (k->epoch && er->epoch != k->epoch + 1) {
        bad_msg(c, k, env, "trial %s: epoch %u reported after epoch %u", c->s->trials[i].id,
                (unsigned)er->epoch, (unsigned)k->epoch);
        return;
    }
    ctrial *t = &c->trials[i];
    if (!same_group(t, er->ranks, er->n_ranks)) {
        bad_msg(c, k, env, "trial %s: epoch %u trained by %zu ranks, not the %d of its group",
                c->s->trials[i].id, (unsigned)er->epoch, er->n_ranks, t->n_group);
        return;
    }
    k->epoch = er->epoch;
    /* kept and journaled with the ranks that trained it as the coordinator
     * knows them, also when its worker sent none (alone) */
    Tlsweep__EpochReport with = *er;
    if (t->n_group == 1) {
        with.n_ranks = (size_t)t->n_group;
        with.ranks = t->group;
    }
    if (coord__keep_epoch(t, &with)) {
        coord_failf(c, TL_ENOMEM, "out of memory keeping an epoch of %s", c->s->trials[i].id);
        return;
    }
    t->step = 0;
    Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
    rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_EPOCH;
    rec.epoch = &with;
    tl_err je = {0};
    if (coord__journal_put(c, &rec, 1, &je))
        coord__fail_store(c, &je);
}

/* 1 when the checkpoint is now owned by its write. */
static int on_checkpoint(coord *c, cworker *k, Tlsweep__Envelope *env)
{
    const Tlsweep__Checkpoint *ck = env->checkpoint;
    int i = task_trial(c, k, env, ck->task_id, ck->trial_index, &ck->trial_key);
    if (i < 0)
        return 0;
    /* it follows the report of its epoch */
    if (ck->epoch != k->epoch || ck->n_history != ck->epoch) {
        bad_msg(c, k, env, "trial %s: a checkpoint of epoch %u with %zu epochs of history, after "
                "the report of epoch %u", c->s->trials[i].id, (unsigned)ck->epoch,
                ck->n_history, (unsigned)k->epoch);
        return 0;
    }
    coord__start_ckpt(c, i, env);
    return 1;
}

static void on_progress(coord *c, cworker *k, const Tlsweep__Envelope *env)
{
    const Tlsweep__Progress *p = env->progress;
    if (check_task(c, k, env, CW_TASK_TRAIN, p->task_id, 1) || coord__group_member(c, k, k->trial))
        return;
    ctrial *t = &c->trials[k->trial];
    t->steps = p->steps_total;
    t->step = p->step < p->steps_total ? p->step : p->steps_total;
    t->cur_epoch = p->epoch <= (uint32_t)c->s->trials[k->trial].epochs ? (int)p->epoch : 0;
}

/* Bad images arrive as warnings; each distinct file is printed and listed once. */
static void on_error(coord *c, cworker *k, Tlsweep__Error *er)
{
    one_line(er->message);
    if (er->fatal) {
        /* the worker's own code (TL_E*) travels in the Error */
        coord_failf(c, er->code < 0 ? er->code : TL_EINVAL, "rank %d (%s): %s", k->rank,
                    host_of(k), er->message);
        return;
    }
    for (size_t i = 0; i < c->n_bad; i++)
        if (!strcmp(c->bad[i], er->message))
            return;
    if (c->n_bad == c->cap_bad) {
        size_t cap = c->cap_bad ? 2 * c->cap_bad : 16;
        char **b = realloc(c->bad, cap * sizeof *b);
        if (!b)
            return;
        c->bad = b;
        c->cap_bad = cap;
    }
    c->bad[c->n_bad] = strdup(er->message);
    if (c->bad[c->n_bad]) {
        coord_log(c, "warning: %s", er->message);
        c->n_bad++;
    }
}

static void handle(coord *c, Tlsweep__Envelope *env, int from)
{
    cworker *k = worker_of(c, from);
    if (!k || k->state == CW_STOPPED) {
        /* not a worker, or one the coordinator no longer waits for */
        msg_free(env);
        return;
    }
    k->last_heard = tl_now();
    k->silent_warned = 0;
    /* heartbeats queued before the Setup arrived do not end the setup's
     * allowance; a ready one, or any other message, does */
    if (env->body_case != TLSWEEP__ENVELOPE__BODY_HEARTBEAT || !env->heartbeat ||
        env->heartbeat->ready)
        k->in_setup = 0;
    if (env->from_rank != from)
        bad_msg(c, k, env, "it says it is from rank %d", (int)env->from_rank);
    else if (!k->hello && env->body_case != TLSWEEP__ENVELOPE__BODY_HELLO)
        bad_msg(c, k, env, "sent before its hello");
    else if (k->hello && env->body_case == TLSWEEP__ENVELOPE__BODY_HELLO)
        bad_msg(c, k, env, "a second hello");
    else {
        switch (env->body_case) {
        case TLSWEEP__ENVELOPE__BODY_HELLO:
            on_hello(c, k, env);
            break;
        case TLSWEEP__ENVELOPE__BODY_PROGRESS:
            on_progress(c, k, env);
            break;
        case TLSWEEP__ENVELOPE__BODY_EPOCH_REPORT:
            on_epoch(c, k, env);
            break;
        case TLSWEEP__ENVELOPE__BODY_CHECKPOINT:
            if (on_checkpoint(c, k, env))
                env = NULL; /* owned by the write now */
            break;
        case TLSWEEP__ENVELOPE__BODY_FEATURE_CHUNK:
            on_features(c, k, env);
            break;
        case TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT:
            on_result(c, k, env);
            env = NULL; /* freed or queued there */
            break;
        case TLSWEEP__ENVELOPE__BODY_ERROR:
            on_error(c, k, env->error);
            break;
        case TLSWEEP__ENVELOPE__BODY_HEARTBEAT:
            break;
        default: /* a task, setup or stop from a worker, or a body we do not know */
            odd_msg(c, k, env, "not a message a worker sends");
            break;
        }
    }
    msg_free(env);
    coord__schedule(c);
    coord__check_finished(c);
}

static void stop_without(coord *c, cworker *k, const tl_err *e);

/* A receive that failed part way: from (the sender, -1 unknown) may have
 * stopped mid-message or sent what is not a message; either way it is out
 * of step, and cli_run aborts it rather than wait in MPI_Finalize. A
 * sender silent between chunks (TL_ETIMEDOUT, the chunk timeout) is given up on
 * as a silent worker is (75, resumable); bytes that are not an Envelope
 * are a bad message (1). */
static void link_failed(coord *c, int from, const tl_err *e)
{
    cworker *k = worker_of(c, from);
    c->o->abandoned = 1;
    if (!k || k->state == CW_STOPPED) {
        coord_fail(c, e);
        return;
    }
    if (e->code == TL_ETIMEDOUT) {
        tl_err s = {.code = TL_EIO};
        snprintf(s.msg, sizeof s.msg, "rank %d (%.64s): %.300s, over worker_timeout: stopping the "
                 "sweep; re-run the same command to resume", k->rank, host_of(k), e->msg);
        stop_without(c, k, &s);
        return;
    }
    /* journaled before the failure forgets every worker */
    k->lost = 1;
    coord__journal_workers(c, 0);
    if (e->code == TL_EFORMAT) {
        coord_failf(c, TL_EFORMAT, "rank %d (%s): bad message: %s", k->rank, host_of(k),
                    e->msg);
    } else {
        coord_failf(c, e->code, "rank %d (%s): %s", k->rank, host_of(k), e->msg);
    }
}

static void drain(coord *c)
{
    for (int n = 0; n < 256 && c->phase != COORD_CLOSING; n++) {
        Tlsweep__Envelope *env = NULL;
        int from = -1, got = 0;
        tl_err e = {0};
        if (msg_link_poll(c->l, &env, &from, &got, &e)) {
            link_failed(c, from, &e);
            return;
        }
        if (!got)
            return;
        handle(c, env, from);
    }
}

void coord__on_poll(uv_timer_t *h)
{
    drain(h->data);
}

void coord__on_async(uv_async_t *h)
{
    drain(h->data);
}

void coord__notify(void *ctx)
{
    uv_async_send(ctx);
}

/* Gives up on worker k for the reason in e (a silence): the run stops as
 * a signal stops it (the others checkpoint, exit 75, a re-run resumes),
 * and the coordinator leaves without k (under MPI cli_run aborts it). */
static void stop_without(coord *c, cworker *k, const tl_err *e)
{
    coord_log(c, "error: %s", e->msg);
    k->state = CW_STOPPED; /* no answer will come */
    k->lost = 1;
    coord__journal_workers(c, 0);
    c->o->abandoned = 1;
    if (c->outcome == COORD_FINISHED) {
        c->outcome = COORD_INTERRUPTED;
        c->err = *e;
    }
    if (c->phase == COORD_RUNNING) {
        c->phase = COORD_STOPPING;
        c->stop_time = tl_now();
        coord__send_stop(c, TLSWEEP__STOP__REASON__PREEMPTED);
    }
    coord__check_finished(c);
}

/* Gives up on worker k, silent for `silent` seconds. */
static void give_up(coord *c, cworker *k, double silent, double limit)
{
    tl_err e = {.code = TL_EIO};
    snprintf(e.msg, sizeof e.msg,
             "rank %d (%s) silent for %.0f s%s, over %sworker_timeout (%g s): stopping the "
             "sweep; re-run the same command to resume", k->rank, host_of(k), silent,
             k->in_setup ? " in its setup"
             : k->state == CW_BUSY || k->state == CW_STOPPING ? " on a task" : "",
             k->in_setup ? STR(SETUP_TIMEOUTS) " x " : "", limit);
    stop_without(c, k, &e);
}

void coord__on_status(uv_timer_t *h)
{
    coord *c = h->data;
    double t = tl_now();
    double limit = c->s->worker_timeout > 0 ? c->s->worker_timeout : SWEEP_WORKER_TIMEOUT_DEFAULT;
    /* the loop itself stood still (the coordinator was stopped, or a long
     * call blocked it) well past its 1 s tick: the silence was its own */
    if (c->status_at > 0 && t - c->status_at > 1.0 + limit / 2)
        for (int w = 0; w < c->n_workers; w++)
            c->workers[w].last_heard = t;
    c->status_at = t;
    for (int w = 0; w < c->n_workers && c->phase != COORD_CLOSING; w++) {
        cworker *k = &c->workers[w];
        double silent = t - k->last_heard;
        double lim = k->in_setup ? SETUP_TIMEOUTS * limit : limit;
        if (k->state == CW_STOPPED)
            continue;
        if (silent >= lim) {
            give_up(c, k, silent, lim);
        } else if (!k->silent_warned && silent >= lim / 2) {
            k->silent_warned = 1;
            coord_log(c, "warning: rank %d (%s) silent for %.0f s%s (worker_timeout: %g s)",
                      k->rank, host_of(k), silent,
                      k->in_setup ? " in its setup"
                      : k->state == CW_BUSY || k->state == CW_STOPPING ? " while on a task" : "",
                      lim);
        }
    }
    if (c->phase == COORD_STOPPING) {
        int grace = c->o->stop_grace_s > 0 ? c->o->stop_grace_s : 30;
        if (t - c->stop_time > grace) {
            coord_log(c, "workers did not stop within %d s; leaving without them", grace);
            coord__forget_workers(c);
            c->o->abandoned = 1;
            coord__check_finished(c);
        }
    }
    if (c->phase != COORD_CLOSING)
        coord_progress(c, t);
}
