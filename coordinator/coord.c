/* The coordinator's loop (see coord.h): state, scheduling, messages. */
#include "coordinator/coord_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/store/ckpt.h"
#include "common/base/clock.h"
#include "common/store/fcache.h"
#include "common/base/fileio.h"
#include "common/base/hash.h"
#include "common/weights/model_file.h"
#include "common/weights/tensors.h"
#include "common/msg/msg.h"
#include "common/base/sha256.h"
#include "coordinator/report/report.h"

/* Event lines go to stdout; the progress line (a terminal only) is
 * cleared first so the two do not mix. */
void coord_log(coord *c, const char *fmt, ...)
{
    if (c->progress.shown) {
        fputs("\r\033[K", stderr);
        c->progress.shown = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* images per extraction task; a multiple of worker.c's EXTRACT_BATCH (32) */
#define COORD_SHARD_IMAGES 256

/* ---- journal -------------------------------------------------------------------------- */

static int journal_put(coord *c, Tlsweep__JournalRecord *rec, int sync, tl_err *e)
{
    rec->unix_ms = tl_unix_ms();
    size_t n = tlsweep__journal_record__get_packed_size(rec);
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf)
        return tl_errf(e, TL_ENOMEM, "journal: out of memory");
    tlsweep__journal_record__pack(rec, buf);
    int rc = journal_append(c->journal, buf, n, e);
    free(buf);
    if (!rc && sync)
        rc = journal_sync(c->journal, e);
    return rc;
}

/* Results are journaled without the model bytes (best.tlm has them). */
static int journal_result(coord *c, const Tlsweep__TrialResult *r, tl_err *e)
{
    Tlsweep__TrialResult tmp = *r;
    tmp.model.data = NULL;
    tmp.model.len = 0;
    Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
    rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_RESULT;
    rec.result = &tmp;
    return journal_put(c, &rec, 1, e);
}

static int find_trial(const coord *c, uint32_t index, uint64_t key)
{
    if (index >= c->s->n_trials || c->s->trials[index].key != key)
        return -1;
    return (int)index;
}

static void keep_epoch(ctrial *t, const Tlsweep__EpochReport *er)
{
    if (er->epoch < 1 || (int)er->epoch > t->n_hist)
        return;
    cepoch *h = &t->hist[er->epoch - 1];
    *h = (cepoch){1, er->loss, er->accuracy, er->val_loss, er->val_accuracy, er->seconds,
                  er->images_per_second};
    if ((int)er->epoch > t->epochs_done)
        t->epochs_done = (int)er->epoch;
}

/* A deep copy of a result without its model bytes (pack and unpack). */
static Tlsweep__TrialResult *copy_result(const Tlsweep__TrialResult *r)
{
    Tlsweep__TrialResult tmp = *r;
    tmp.model.data = NULL;
    tmp.model.len = 0;
    size_t n = tlsweep__trial_result__get_packed_size(&tmp);
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf)
        return NULL;
    tlsweep__trial_result__pack(&tmp, buf);
    Tlsweep__TrialResult *out = tlsweep__trial_result__unpack(NULL, n, buf);
    free(buf);
    return out;
}

static int replay(void *ctx, const void *payload, size_t len)
{
    coord *c = ctx;
    Tlsweep__JournalRecord *rec = tlsweep__journal_record__unpack(NULL, len, payload);
    if (!rec)
        return 0; /* framed and checksummed but not ours: skipped */
    switch (rec->body_case) {
    case TLSWEEP__JOURNAL_RECORD__BODY_EPOCH: {
        /* epoch reports carry the index and id; keys are checked on results */
        int i = rec->epoch->trial_index < c->s->n_trials ? (int)rec->epoch->trial_index : -1;
        if (i >= 0 && !strcmp(rec->epoch->trial_id, c->s->trials[i].id))
            keep_epoch(&c->trials[i], rec->epoch);
        break;
    }
    case TLSWEEP__JOURNAL_RECORD__BODY_RESULT: {
        const Tlsweep__TrialResult *r = rec->result;
        int i = find_trial(c, r->trial_index, r->trial_key);
        if (i >= 0 && r->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE &&
            c->trials[i].st != TR_OTHER) {
            ctrial *t = &c->trials[i];
            t->slice = c->replay_slice;
            if (t->res)
                tlsweep__trial_result__free_unpacked(t->res, NULL);
            if (!(t->res = copy_result(r))) {
                int rc = tl_errf(&c->err, TL_ENOMEM, "journal: out of memory replaying %s",
                                 r->trial_id);
                tlsweep__journal_record__free_unpacked(rec, NULL);
                return rc;
            }
            t->st = TR_DONE;
            c->resumed++;
            coord_consider_best(c, i);
        }
        break;
    }
    case TLSWEEP__JOURNAL_RECORD__BODY_FEATURES:
        for (int g = 0; g < c->s->n_cache_groups; g++)
            if (c->groups[g].key == rec->features->cache_key) {
                c->groups[g].forward_images += rec->features->forward_images;
                c->groups[g].seconds += rec->features->seconds;
                c->groups[g].extractions++;
            }
        break;
    case TLSWEEP__JOURNAL_RECORD__BODY_START:
        c->restarts++;
        break;
    default:
        break;
    }
    tlsweep__journal_record__free_unpacked(rec, NULL);
    return 0;
}

/* ---- best trial ------------------------------------------------------------------------ */

/* Whether finished trial a beats b: the select metric, then the grid order,
 * so the winner does not depend on which worker finished first. */
int coord_better(const coord *c, int a, int b)
{
    if (b < 0)
        return 1;
    double va = c->trials[a].res->best_value, vb = c->trials[b].res->best_value;
    if (va != vb)
        return c->s->goal_max ? va > vb : va < vb;
    return a < b;
}

void coord_consider_best(coord *c, int i)
{
    if (coord_better(c, i, c->best))
        c->best = i;
}

/* ---- files on the thread pool ---------------------------------------------------------- */

typedef enum {
    WRITE_CKPT,        /* checkpoints/<trial>.ckpt from a Checkpoint envelope */
    WRITE_BEST,        /* best.tlm: the model bytes of a TrialResult */
    WRITE_FCACHE,      /* cache/<key>.features from a group's gathered features */
} write_kind;

typedef struct {
    uv_work_t req;
    coord *c;
    write_kind kind;
    int index;         /* trial (CKPT, BEST) or cache group (FCACHE) */
    Tlsweep__Envelope *env;
    char path[4096];
    int rc;
    tl_err err;
} write_job;

static void write_work(uv_work_t *req)
{
    write_job *j = req->data;
    switch (j->kind) {
    case WRITE_CKPT:
        j->rc = ckpt_write(j->path, j->env->checkpoint, &j->err);
        break;
    case WRITE_BEST: {
        const Tlsweep__TrialResult *r = j->env->trial_result;
        j->rc = model_write_bytes(j->path, r->model.data, r->model.len, &j->err);
        break;
    }
    case WRITE_FCACHE: {
        cgroup *g = &j->c->groups[j->index];
        j->rc = fcache_write(j->path, g->key, j->c->s->cache_groups[j->index].text,
                             j->c->fingerprint, g->x, g->ok, j->c->ix.n_items, g->dim, &j->err);
        break;
    }
    }
}

static void start_ckpt(coord *c, int i, Tlsweep__Envelope *env);
static void result_done(coord *c, Tlsweep__Envelope *env);
static void process_results(coord *c);
static void schedule(coord *c);
static void check_finished(coord *c);
static void note_failure(coord *c, const tl_err *e);

static void ckpt_path(const coord *c, int i, char *buf, size_t n)
{
    snprintf(buf, n, "%s/checkpoints/%s.ckpt", c->out, c->s->trials[i].id);
}

static void write_after(uv_work_t *req, int status)
{
    (void)status;
    write_job *j = req->data;
    coord *c = j->c;
    c->writes--;
    if (j->kind == WRITE_CKPT) {
        ctrial *t = &c->trials[j->index];
        t->ckpt.writing = 0;
        if (j->rc)
            coord_log(c, "warning: checkpoint of %s not written: %s", c->s->trials[j->index].id,
                      j->err.msg);
        msg_free(j->env);
        if (t->st == TR_DONE) {
            char p[4096];
            ckpt_path(c, j->index, p, sizeof p);
            unlink(p);
            if (t->ckpt.next) {
                msg_free(t->ckpt.next);
                t->ckpt.next = NULL;
            }
        } else if (t->ckpt.next) {
            Tlsweep__Envelope *next = t->ckpt.next;
            t->ckpt.next = NULL;
            start_ckpt(c, j->index, next);
        }
    } else if (j->kind == WRITE_BEST) {
        c->best_writing = 0;
        if (j->rc) /* the sweep goes on; its best model is the one on disk */
            note_failure(c, &j->err);
        result_done(c, j->env);
        process_results(c);
    } else {
        cgroup *g = &c->groups[j->index];
        free(g->x);
        free(g->ok);
        g->x = NULL;
        g->ok = NULL;
        if (j->rc) {
            coord_fail(c, &j->err);
        } else {
            g->state = CG_READY;
            double secs = tl_now() - g->t0;
            Tlsweep__JournalFeatures jf = TLSWEEP__JOURNAL_FEATURES__INIT;
            jf.cache_key = g->key;
            jf.text = c->s->cache_groups[j->index].text;
            jf.path = g->path;
            jf.images = c->ix.n_items;
            jf.forward_images = g->run_images;
            jf.skipped = g->skipped;
            jf.seconds = secs;
            jf.dim = (uint32_t)g->dim;
            Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
            rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_FEATURES;
            rec.features = &jf;
            tl_err je = {0};
            if (journal_put(c, &rec, 1, &je))
                coord_fail(c, &je);
            g->forward_images += g->run_images;
            g->seconds += secs;
            g->extractions++;
            coord_log(c, "features: %s: %zu images through the frozen backbone once (%.1f s, "
                         "%.0f img/s), %zu floats each, cached in %s",
                      coord_group_label(c, j->index), c->ix.n_items, secs,
                      secs > 0 ? c->ix.n_items / secs : 0, g->dim, g->path);
        }
    }
    free(j);
    schedule(c);
    check_finished(c);
}

static void queue_write(coord *c, write_kind kind, int index, Tlsweep__Envelope *env, const char *path)
{
    write_job *j = calloc(1, sizeof *j);
    if (!j) {
        coord_failf(c, TL_ENOMEM, "out of memory queueing a file write");
        msg_free(env);
        return;
    }
    j->req.data = j;
    j->c = c;
    j->kind = kind;
    j->index = index;
    j->env = env;
    snprintf(j->path, sizeof j->path, "%s", path);
    c->writes++;
    uv_queue_work(&c->loop, &j->req, write_work, write_after);
}

/* One checkpoint write per trial at a time; a newer one waits (only the
 * newest), so an older write can never land over a newer file. */
static void start_ckpt(coord *c, int i, Tlsweep__Envelope *env)
{
    ctrial *t = &c->trials[i];
    if (t->ckpt.writing) {
        if (t->ckpt.next)
            msg_free(t->ckpt.next);
        t->ckpt.next = env;
        return;
    }
    t->ckpt.writing = 1;
    char p[4096];
    ckpt_path(c, i, p, sizeof p);
    queue_write(c, WRITE_CKPT, i, env, p);
}

/* ---- failing and stopping ------------------------------------------------------------- */

static void send_stop(coord *c, Tlsweep__Stop__Reason reason)
{
    Tlsweep__Stop st = TLSWEEP__STOP__INIT;
    st.reason = reason;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_STOP;
    env.stop = &st;
    for (int w = 0; w < c->n_workers; w++) {
        cworker *k = &c->workers[w];
        if (k->state == CW_STOPPED)
            continue;
        env.seq = ++c->seq;
        tl_err e = {0};
        if (msg_link_send(c->l, k->rank, &env, &e))
            coord_log(c, "warning: rank %d: Stop not sent: %s", k->rank, e.msg);
        /* an idle worker leaves at once; a busy one answers first */
        k->state = k->state == CW_BUSY || k->state == CW_STOPPING ? CW_STOPPING : CW_STOPPED;
    }
}

/* A failure of the sweep, decided by the caller: logged here, once, and the
 * first one kept, code and line, for the journal's Stop record and the exit
 * path. The sweep goes on; coord_fail also stops it. */
static void note_failure(coord *c, const tl_err *e)
{
    coord_log(c, "error: %s", e->msg);
    if (c->outcome != COORD_FAILED) {
        c->err = *e;
        if (c->err.code >= 0) /* a failure is never TL_OK */
            c->err.code = TL_EINVAL;
    }
    c->outcome = COORD_FAILED;
}

/* The coordinator waits for no worker any more. */
static void forget_workers(coord *c)
{
    for (int w = 0; w < c->n_workers; w++)
        c->workers[w].state = CW_STOPPED;
}

/* A worker's task is over (its last feature chunk or its result came): a
 * busy worker is idle again; one that was sent a Stop meanwhile has it
 * waiting and leaves. */
static void task_over(cworker *k)
{
    if (k->state == CW_BUSY)
        k->state = CW_IDLE;
    else if (k->state == CW_STOPPING)
        k->state = CW_STOPPED;
}

void coord_fail(coord *c, const tl_err *e)
{
    note_failure(c, e);
    if (c->phase == COORD_RUNNING) {
        c->phase = COORD_STOPPING;
        send_stop(c, TLSWEEP__STOP__REASON__ABORT);
        forget_workers(c);
    }
    check_finished(c);
}

void coord_failf(coord *c, int code, const char *fmt, ...)
{
    tl_err e = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    coord_fail(c, &e);
}

static void on_signal(uv_signal_t *h, int signum)
{
    coord *c = h->data;
    /* Slurm's TERM and the batch script's USR1 arrive together: one request */
    if (c->stop_time > 0 && tl_now() - c->stop_time < 2.0)
        return;
    if (c->phase != COORD_RUNNING) {
        /* a second signal: leave now; the journal is consistent as it is */
        coord_log(c, "%s again: leaving without waiting for the workers", strsignal(signum));
        forget_workers(c);
        if (c->outcome < COORD_INTERRUPTED)
            c->outcome = COORD_INTERRUPTED;
        check_finished(c);
        return;
    }
    /* a failure that did not stop the sweep (best.tlm not written) stays one */
    if (c->outcome < COORD_INTERRUPTED)
        c->outcome = COORD_INTERRUPTED;
    c->phase = COORD_STOPPING;
    c->stop_time = tl_now();
    coord_log(c, "%s: asking the workers to stop at the next step; re-run the same command to "
                 "resume",
              strsignal(signum));
    send_stop(c, TLSWEEP__STOP__REASON__PREEMPTED);
    check_finished(c);
}

/* ---- scheduling ------------------------------------------------------------------------ */

static int trial_ready(const coord *c, int i)
{
    const sweep_trial *t = &c->s->trials[i];
    if (c->trials[i].st != TR_PENDING)
        return 0;
    return !sweep_trial_uses_cache(t) || c->groups[t->cache_group].state == CG_READY;
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
        return 1;
    }
    return 0;
}

static int give_trial(coord *c, cworker *k)
{
    for (size_t i = 0; i < c->s->n_trials; i++) {
        if (!trial_ready(c, (int)i))
            continue;
        const sweep_trial *st = &c->s->trials[i];
        ctrial *t = &c->trials[i];
        char ck[4096];
        ckpt_path(c, (int)i, ck, sizeof ck);
        struct stat sb;
        int resume = stat(ck, &sb) == 0 && !t->ckpt.writing;
        Tlsweep__Task task = TLSWEEP__TASK__INIT;
        task.kind = TLSWEEP__TASK__KIND__TRAIN_TRIAL;
        task.trial_index = (uint32_t)i;
        task.trial_key = st->key;
        task.trial_id = (char *)st->id;
        task.cache_group = st->cache_group;
        task.resume_from = resume ? ck : "";
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

static void schedule(coord *c)
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

/* ---- finishing ------------------------------------------------------------------------- */

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void shut_down(coord *c)
{
    if (c->phase == COORD_CLOSING)
        return;
    c->phase = COORD_CLOSING;
    uv_close((uv_handle_t *)&c->poll_timer, close_cb);
    uv_close((uv_handle_t *)&c->status_timer, close_cb);
    uv_close((uv_handle_t *)&c->async, close_cb);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&c->sig[i], close_cb);
}

static void check_finished(coord *c)
{
    if (c->phase == COORD_CLOSING || c->writes || c->best_writing || c->n_queue)
        return;
    int all_stopped = 1;
    for (int w = 0; w < c->n_workers; w++)
        all_stopped &= c->workers[w].state == CW_STOPPED;
    if (c->phase == COORD_STOPPING) {
        if (all_stopped)
            shut_down(c);
        return;
    }
    for (size_t i = 0; i < c->s->n_trials; i++)
        if (c->trials[i].st == TR_PENDING || c->trials[i].st == TR_RUNNING)
            return;
    /* every trial done or failed */
    c->phase = COORD_STOPPING;
    send_stop(c, TLSWEEP__STOP__REASON__FINISHED);
    forget_workers(c);
    shut_down(c);
}

/* ---- results ---------------------------------------------------------------------------- */

/* The result is final: journal it, count it, drop the checkpoint. */
static void result_done(coord *c, Tlsweep__Envelope *env)
{
    const Tlsweep__TrialResult *r = env->trial_result;
    int i = (int)r->trial_index;
    ctrial *t = &c->trials[i];
    tl_err je = {0};
    if (journal_result(c, r, &je)) {
        /* not DONE: a resume runs it again (from its checkpoint) */
        msg_free(env);
        coord_fail(c, &je);
        return;
    }
    if (t->res)
        tlsweep__trial_result__free_unpacked(t->res, NULL);
    if (!(t->res = copy_result(r))) {
        /* journaled: a resume finds it done */
        coord_failf(c, TL_ENOMEM, "out of memory keeping the result of %s", c->s->trials[i].id);
        msg_free(env);
        return;
    }
    t->st = TR_DONE;
    int was = c->best;
    coord_consider_best(c, i);
    const sweep_trial *st = &c->s->trials[i];
    char mode[64];
    sweep_mode_str(&st->mode, mode, sizeof mode);
    coord_log(c, "done %s: %s %.4f (epoch %u/%u)%s%s %.4f  %.1f s%s", st->id,
              sweep_metric_name(c->s->metric), r->best_value, r->best_epoch, r->epochs_done,
              r->eval_split[0] ? "  " : "", r->eval_split[0] ? r->eval_split : "",
              r->eval_accuracy, r->seconds, c->best == i && was != i ? "  (new best)" : "");
    if (!t->ckpt.writing) {
        char p[4096];
        ckpt_path(c, i, p, sizeof p);
        unlink(p);
    }
    msg_free(env);
}

/* Results wait in arrival order; one that beats the best first has its
 * model written as best.tlm, and only then is it journaled, so a run
 * killed in between redoes it (from its last checkpoint) rather than
 * believing a best.tlm that is not on disk. */
static void process_results(coord *c)
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
            queue_write(c, WRITE_BEST, i, env, p);
            return;
        }
        result_done(c, env);
    }
}

/* ---- messages -------------------------------------------------------------------------- */

static cworker *worker_of(coord *c, int rank)
{
    for (int w = 0; w < c->n_workers; w++)
        if (c->workers[w].rank == rank)
            return &c->workers[w];
    return NULL;
}

static void on_hello(coord *c, cworker *k, const Tlsweep__Envelope *env)
{
    tl_err e = {0};
    if (msg_hello_check(env, &e)) {
        coord_fail(c, &e);
        return;
    }
    const Tlsweep__Hello *h = env->hello;
    snprintf(k->host, sizeof k->host, "%s", h->host);
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
    if (k->state == CW_NEW) /* not one told to stop before its Hello came */
        k->state = CW_IDLE;
    c->hellos++;
    if (c->hellos == c->n_workers)
        coord_log(c, "workers: %d ready (%s%s)", c->n_workers, k->host,
                  c->n_workers > 1 ? ", ..." : "");
}

static void on_features(coord *c, cworker *k, const Tlsweep__FeatureChunk *f)
{
    int g = f->cache_group;
    if (g < 0 || g >= c->s->n_cache_groups || c->groups[g].state != CG_EXTRACTING) {
        coord_failf(c, TL_EINVAL, "a feature chunk for a cache group not being extracted");
        return;
    }
    cgroup *cg = &c->groups[g];
    const Tlsweep__Tensor *x = f->features;
    size_t n = f->n_image_ids;
    size_t dim = x && x->n_shape == 2 ? (size_t)x->shape[1] : 0;
    if (n && (!x || x->n_data != n * dim || (size_t)x->shape[0] != n || !dim ||
              (cg->dim && dim != cg->dim))) {
        coord_failf(c, TL_EFORMAT, "a feature chunk whose tensor does not match its image ids");
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
    for (size_t i = 0; i < n; i++) {
        uint32_t id = f->image_ids[i];
        if (id >= c->ix.n_items) {
            coord_failf(c, TL_EFORMAT, "a feature chunk with an image id outside the index");
            return;
        }
        memcpy(cg->x + (size_t)id * dim, x->data + i * dim, dim * sizeof(float));
        cg->ok[id] = 1;
    }
    cg->run_images += n;
    if (!f->last)
        return;
    cg->skipped += f->n_skipped_ids;
    cg->run_images += f->n_skipped_ids;
    task_over(k);
    if (++cg->shards_done == cg->n_shards) {
        if (!cg->x) {
            coord_failf(c, TL_EINVAL, "no image of the dataset decoded");
            return;
        }
        cg->state = CG_WRITING;
        queue_write(c, WRITE_FCACHE, g, NULL, cg->path);
    }
}

static void on_result(coord *c, cworker *k, Tlsweep__Envelope *env)
{
    const Tlsweep__TrialResult *r = env->trial_result;
    task_over(k);
    if (k->kind == CW_TASK_EXTRACT) {
        /* an extraction that stopped on request: the shard is lost */
        msg_free(env);
        return;
    }
    int i = find_trial(c, r->trial_index, r->trial_key);
    if (i < 0) {
        msg_free(env);
        coord_failf(c, TL_EINVAL, "a result for a trial not in this sweep");
        return;
    }
    ctrial *t = &c->trials[i];
    if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE) {
        t->st = TR_FINISHING;
        c->queue[c->n_queue++] = env;
        process_results(c);
        return;
    }
    if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__STOPPED) {
        t->st = TR_PENDING;
        coord_log(c, "stopped %s after %u epoch%s (checkpointed)", r->trial_id, r->epochs_done,
                  r->epochs_done == 1 ? "" : "s");
    } else {
        t->st = TR_FAILED;
        c->n_failed++;
        coord_log(c, "failed %s on rank %d: %s", r->trial_id, k->rank, r->message);
        tl_err je = {0};
        if (journal_result(c, r, &je))
            coord_fail(c, &je);
        if (t->res)
            tlsweep__trial_result__free_unpacked(t->res, NULL);
        t->res = copy_result(r); /* its message: results.json and coord_run's line */
    }
    msg_free(env);
}

/* Bad images arrive as warnings; each distinct file is printed and listed once. */
static void on_error(coord *c, cworker *k, const Tlsweep__Error *er)
{
    if (er->fatal) {
        /* the worker's own code (TL_E*) travels in the Error */
        coord_failf(c, er->code < 0 ? er->code : TL_EINVAL, "rank %d (%s): %s", k->rank, k->host,
                    er->message);
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
    if (!k) {
        msg_free(env);
        return;
    }
    k->last_heard = tl_now();
    k->silent_warned = 0;
    switch (env->body_case) {
    case TLSWEEP__ENVELOPE__BODY_HELLO:
        on_hello(c, k, env);
        break;
    case TLSWEEP__ENVELOPE__BODY_PROGRESS: {
        const Tlsweep__Progress *p = env->progress;
        if (k->kind == CW_TASK_TRAIN && k->trial >= 0) {
            c->trials[k->trial].step = p->step;
            c->trials[k->trial].steps = p->steps_total;
            c->trials[k->trial].cur_epoch = (int)p->epoch;
        }
        break;
    }
    case TLSWEEP__ENVELOPE__BODY_EPOCH_REPORT: {
        Tlsweep__EpochReport *er = env->epoch_report;
        int i = er->trial_index < c->s->n_trials ? (int)er->trial_index : -1;
        if (i >= 0) {
            keep_epoch(&c->trials[i], er);
            c->trials[i].step = 0;
            Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
            rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_EPOCH;
            rec.epoch = er;
            tl_err je = {0};
            if (journal_put(c, &rec, 1, &je))
                coord_fail(c, &je);
        }
        break;
    }
    case TLSWEEP__ENVELOPE__BODY_CHECKPOINT: {
        int i = find_trial(c, env->checkpoint->trial_index, env->checkpoint->trial_key);
        if (i >= 0) {
            start_ckpt(c, i, env);
            return; /* owned by the write now */
        }
        break;
    }
    case TLSWEEP__ENVELOPE__BODY_FEATURE_CHUNK:
        on_features(c, k, env->feature_chunk);
        break;
    case TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT:
        on_result(c, k, env);
        schedule(c);
        check_finished(c);
        return;
    case TLSWEEP__ENVELOPE__BODY_ERROR:
        on_error(c, k, env->error);
        break;
    default:
        break;
    }
    msg_free(env);
    schedule(c);
    check_finished(c);
}

static void drain(coord *c)
{
    for (int n = 0; n < 256 && c->phase != COORD_CLOSING; n++) {
        Tlsweep__Envelope *env = NULL;
        int from = -1, got = 0;
        tl_err e = {0};
        if (msg_link_poll(c->l, &env, &from, &got, &e)) {
            coord_fail(c, &e);
            return;
        }
        if (!got)
            return;
        handle(c, env, from);
    }
}

static void on_poll(uv_timer_t *h)
{
    drain(h->data);
}

static void on_async(uv_async_t *h)
{
    drain(h->data);
}

static void notify(void *ctx)
{
    uv_async_send(ctx);
}

static void on_status(uv_timer_t *h)
{
    coord *c = h->data;
    double t = tl_now();
    int hb = c->o->heartbeat_timeout_s > 0 ? c->o->heartbeat_timeout_s : 60;
    for (int w = 0; w < c->n_workers; w++) {
        cworker *k = &c->workers[w];
        if (k->state == CW_STOPPED || k->silent_warned || t - k->last_heard < hb)
            continue;
        k->silent_warned = 1;
        coord_log(c, "warning: rank %d (%s) silent for %.0f s%s", k->rank,
                  k->host[0] ? k->host : "no hello yet", t - k->last_heard,
                  k->state == CW_BUSY || k->state == CW_STOPPING ? " while on a task" : "");
    }
    if (c->phase == COORD_STOPPING) {
        int grace = c->o->stop_grace_s > 0 ? c->o->stop_grace_s : 30;
        if (t - c->stop_time > grace) {
            coord_log(c, "workers did not stop within %d s; leaving without them", grace);
            forget_workers(c);
            c->o->abandoned = 1;
            check_finished(c);
        }
    }
    coord_progress(c, t);
}

/* ---- setup ------------------------------------------------------------------------------- */

int coord_preflight(const sweep *s, data_index *ix, tl_err *e)
{
    for (int i = 0; i < s->n_backbones; i++) {
        const char *w = sweep_weights_path(s, s->backbones[i]);
        if (!w)
            return tl_errf(e, TL_EINVAL, "%s: weights: no file for backbone %s", s->file,
                           s->backbones[i]);
        if (access(w, R_OK) != 0)
            return tl_errf(e, TL_EIO, "%s: weights.%s: %s: %s", s->file, s->backbones[i], w,
                           strerror(errno));
    }
    data_index_cfg dc = {s->train_dir, s->val_dir, s->test_dir,
                         s->val_dir ? 0 : s->validation_split, s->data_seed};
    return data_index_build(ix, &dc, e);
}

/* The weights file of cache group g (its last trial's), or NULL. */
static const char *group_weights(const sweep *s, int g)
{
    const char *w = NULL;
    for (size_t i = 0; i < s->n_trials; i++)
        if (s->trials[i].cache_group == g)
            w = s->trials[i].weights;
    return w;
}

/* The cache file's key: the group's text plus the weights file's identity
 * (size and modification time), so replacing the weights file is a miss. */
static uint64_t cache_key(const sweep *s, int g)
{
    const sweep_cache_group *cg = &s->cache_groups[g];
    char buf[700];
    const char *w = group_weights(s, g);
    struct stat sb;
    memset(&sb, 0, sizeof sb);
    if (w)
        stat(w, &sb);
    snprintf(buf, sizeof buf, "%s|%lld|%lld.%09ld", cg->text, (long long)sb.st_size,
             (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
    return tl_fnv1a_str(TL_FNV1A_OFFSET, buf);
}

/* The group's text names the backbone's Keras preprocessing, but workers
 * run the one the weights file records (an import may choose another:
 * x/255 for the nsfwjs models), so the label people read puts that one in
 * its place. The text itself stays as it is: keys hash it, and since they
 * also hash the weights path and the file's identity they already tell
 * apart weights that preprocess differently. A file that cannot be read
 * keeps the text (the workers report the file). */
static void group_label(coord *c, int g)
{
    cgroup *cg = &c->groups[g];
    const char *text = c->s->cache_groups[g].text, *w = group_weights(c->s, g);
    snprintf(cg->label, sizeof cg->label, "%s", text);
    char *bar = strrchr(cg->label, '|');
    if (!w || !bar)
        return;
    model_spec spec;
    tset ts;
    model_spec_init(&spec);
    tset_init(&ts);
    tl_err e = {0};
    if (model_read(w, &spec, &ts, &e) == 0)
        snprintf(bar + 1, sizeof cg->label - (size_t)(bar + 1 - cg->label), "%s",
                 model_preproc_name(spec.preproc));
    model_spec_free(&spec);
    tset_free(&ts);
}

/* What the log and results name group g by. */
const char *coord_group_label(const coord *c, int g)
{
    return c->groups[g].label[0] ? c->groups[g].label : c->s->cache_groups[g].text;
}

static int prepare_groups(coord *c, tl_err *e)
{
    for (int g = 0; g < c->s->n_cache_groups; g++) {
        cgroup *cg = &c->groups[g];
        group_label(c, g);
        fcache_path(cg->path, sizeof cg->path, c->cache_dir, cg->key);
        int needed = 0;
        for (size_t i = 0; i < c->s->n_trials; i++)
            needed |= c->s->trials[i].cache_group == g && c->trials[i].st != TR_DONE &&
                      c->trials[i].st != TR_OTHER;
        if (!needed) {
            cg->state = CG_READY;
            continue;
        }
        fcache fc;
        tl_err fe = {0};
        int rc = fcache_read(cg->path, cg->key, c->fingerprint, &fc, &fe);
        if (rc == 0) {
            fcache_free(&fc);
            cg->state = CG_READY;
            coord_log(c, "features: reusing %s", cg->path);
            continue;
        }
        if (rc != TL_ENOTFOUND && rc != TL_EIO && rc != TL_EFORMAT)
            return tl_errf(e, rc, "%s", fe.msg);
        if (rc == TL_EFORMAT)
            coord_log(c, "warning: %s; computing the features again", fe.msg);
        cg->state = CG_EXTRACTING;
        /* Fixed shards, a multiple of the workers' extraction batch: every
         * image meets the same batch whatever the number of workers, so
         * its features are the same bits in any run (GEMM's blocking
         * follows the matrix shape). */
        size_t shard = COORD_SHARD_IMAGES;
        cg->shard_size = shard;
        cg->n_shards = (c->ix.n_items + shard - 1) / shard;
    }
    return 0;
}

static void free_state(coord *c)
{
    for (size_t i = 0; c->trials && i < c->s->n_trials; i++) {
        ctrial *t = &c->trials[i];
        if (t->res)
            tlsweep__trial_result__free_unpacked(t->res, NULL);
        if (t->ckpt.next)
            msg_free(t->ckpt.next);
        free(t->hist);
    }
    free(c->trials);
    for (int g = 0; c->groups && g < c->s->n_cache_groups; g++) {
        free(c->groups[g].x);
        free(c->groups[g].ok);
    }
    free(c->groups);
    free(c->workers);
    for (size_t i = 0; i < c->n_bad; i++)
        free(c->bad[i]);
    free(c->bad);
    for (int i = 0; i < c->n_queue; i++)
        msg_free(c->queue[i]);
    free(c->queue);
    if (c->have_ix)
        data_index_free(&c->ix);
}

static int write_sweep_copy(coord *c, tl_err *e)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/sweep.yaml", c->out);
    tl_atomic_file f = TL_ATOMIC_FILE_INIT;
    int rc = tl_atomic_open(&f, p, e);
    if (!rc)
        rc = tl_atomic_write(&f, c->o->sweep_text, c->o->sweep_len, e);
    if (!rc)
        rc = tl_atomic_commit(&f, e);
    tl_atomic_abort(&f);
    return rc;
}

/* Index, trials, groups and workers of sweep s; c->o/s/l set by the caller. */
static int state_init(coord *c, const data_index *ix, int n_workers, tl_err *e)
{
    const sweep *s = c->s;
    c->best = -1;
    c->t0 = c->progress.at = tl_now();
    if (ix) {
        c->ix = *ix; /* borrowed: the caller frees it */
    } else {
        data_index_cfg dc = {s->train_dir, s->val_dir, s->test_dir,
                             s->val_dir ? 0 : s->validation_split, s->data_seed};
        int rc = data_index_build(&c->ix, &dc, e);
        if (rc)
            return rc;
        c->have_ix = 1;
    }
    c->fingerprint = data_index_fingerprint(&c->ix);
    c->n_workers = n_workers;
    c->trials = calloc(s->n_trials, sizeof *c->trials);
    c->groups = calloc((size_t)(s->n_cache_groups ? s->n_cache_groups : 1), sizeof *c->groups);
    c->workers = calloc((size_t)(n_workers > 0 ? n_workers : 1), sizeof *c->workers);
    c->queue = calloc(s->n_trials, sizeof *c->queue);
    if (!c->trials || !c->groups || !c->workers || !c->queue)
        return tl_errf(e, TL_ENOMEM, "coordinator: out of memory");
    /* before any journal replay: feature records are matched by key */
    for (int g = 0; g < s->n_cache_groups; g++)
        c->groups[g].key = cache_key(s, g);
    for (size_t i = 0; i < s->n_trials; i++) {
        c->trials[i].worker = -1;
        c->trials[i].slice = -1;
        c->trials[i].n_hist = s->trials[i].epochs;
        c->trials[i].hist = calloc((size_t)s->trials[i].epochs, sizeof *c->trials[i].hist);
        if (!c->trials[i].hist)
            return tl_errf(e, TL_ENOMEM, "coordinator: out of memory");
    }
    for (int w = 0; w < n_workers; w++) {
        c->workers[w].rank = w + 1;
        c->workers[w].trial = -1;
        c->workers[w].last_heard = c->t0;
    }
    c->n_mine = (int)s->n_trials;
    return 0;
}

int coord_run(coord_opts *o, msg_link *l, tl_err *e)
{
    coord cc, *c = &cc;
    memset(c, 0, sizeof *c);
    c->o = o;
    c->s = o->s;
    c->l = l;
    c->progress.tty = isatty(2) && !o->quiet;
    int status = 1, rc;
    const sweep *s = c->s;
    char outbuf[4000];

    if (state_init(c, o->index, msg_link_size(l) - 1, e))
        goto out;
    if (c->n_workers < 1) {
        tl_errf(e, TL_EINVAL, "coordinator: no workers (the link has %d rank)", msg_link_size(l));
        goto out;
    }
    /* a slice of a job array: its own journal and checkpoints under
     * out/slices/I, the feature caches shared in out/cache */
    c->out = s->out;
    snprintf(c->cache_dir, sizeof c->cache_dir, "%s/cache", s->out);
    if (o->n_slices > 0) {
        if (o->slice < 0 || o->slice >= o->n_slices) {
            tl_errf(e, TL_EINVAL, "slice %d of %d: expected 0 <= slice < %d", o->slice,
                    o->n_slices, o->n_slices);
            goto out;
        }
        snprintf(outbuf, sizeof outbuf, "%s/slices/%d", s->out, o->slice);
        c->out = outbuf;
        c->n_mine = 0;
        for (size_t i = 0; i < s->n_trials; i++) {
            if ((int)(i % (size_t)o->n_slices) != o->slice)
                c->trials[i].st = TR_OTHER;
            else
                c->n_mine++;
        }
    }

    /* out/ and the journal: from here on, outputs exist */
    char p[4200];
    snprintf(p, sizeof p, "%s/checkpoints", c->out);
    if ((rc = tl_mkdir_p(c->out, 0755, e)) || (rc = tl_mkdir_p(c->cache_dir, 0755, e)) ||
        (rc = tl_mkdir_p(p, 0755, e)))
        goto out;
    snprintf(p, sizeof p, "%s/journal", c->out);
    size_t dropped = 0;
    if ((rc = journal_open(&c->journal, p, replay, c, &dropped, e))) {
        if (c->err.code) /* the replay's own failure */
            *e = c->err;
        goto out;
    }
    if (dropped)
        coord_log(c, "journal: %zu bytes of a torn last record dropped (%s)", dropped, p);
    if ((rc = write_sweep_copy(c, e)))
        goto out;
    if (c->resumed)
        coord_log(c, "resuming %s: %d of %d trials already finished", c->out, c->resumed,
                  c->n_mine);
    unsigned char digest[SHA256_DIGEST_SIZE];
    char hex[65];
    sha256(o->sweep_text, o->sweep_len, digest);
    sha256_hex(digest, hex);
    Tlsweep__JournalStart js = TLSWEEP__JOURNAL_START__INIT;
    js.sweep_file = s->file;
    js.sweep_sha256 = hex;
    js.trials = (uint32_t)s->n_trials;
    js.ranks = (uint32_t)msg_link_size(l);
    js.tlsweep_version = TLSWEEP_VERSION;
    js.resumed_trials = (uint32_t)c->resumed;
    Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
    rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_START;
    rec.start = &js;
    if ((rc = journal_put(c, &rec, 1, e)))
        goto out;
    if ((rc = prepare_groups(c, e)))
        goto out;
    coord_log(c, "%s: %d trials on %d worker%s, %zu images, out: %s", s->name, c->n_mine,
              c->n_workers, c->n_workers == 1 ? "" : "s", c->ix.n_items, c->out);

    uv_loop_init(&c->loop);
    uv_timer_init(&c->loop, &c->poll_timer);
    uv_timer_init(&c->loop, &c->status_timer);
    uv_async_init(&c->loop, &c->async, on_async);
    c->poll_timer.data = c->status_timer.data = c->async.data = c;
    static const int sigs[3] = {SIGINT, SIGTERM, SIGUSR1};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&c->loop, &c->sig[i]);
        c->sig[i].data = c;
        uv_signal_start(&c->sig[i], on_signal, sigs[i]);
    }
    msg_link_set_notify(l, notify, &c->async);
    uv_timer_start(&c->poll_timer, on_poll, 1, 1);
    uv_timer_start(&c->status_timer, on_status, 1000, 1000);
    check_finished(c); /* a fully resumed sweep has nothing to do */
    uv_run(&c->loop, UV_RUN_DEFAULT);
    msg_link_set_notify(l, NULL, NULL);
    uv_loop_close(&c->loop);

    coord_progress_clear(c);
    Tlsweep__JournalStop jst = TLSWEEP__JOURNAL_STOP__INIT;
    jst.kind = c->outcome == COORD_FAILED        ? TLSWEEP__JOURNAL_STOP__KIND__FAILED
               : c->outcome == COORD_INTERRUPTED ? TLSWEEP__JOURNAL_STOP__KIND__INTERRUPTED
                                                 : TLSWEEP__JOURNAL_STOP__KIND__FINISHED;
    jst.message = c->outcome == COORD_FAILED ? c->err.msg : "";
    Tlsweep__JournalRecord srec = TLSWEEP__JOURNAL_RECORD__INIT;
    srec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_STOP;
    srec.stop = &jst;
    tl_err je = {0};
    if (journal_put(c, &srec, 1, &je)) /* replay needs no Stop record: the run stands */
        coord_log(c, "warning: %s", je.msg);
    tl_err oe = {0};
    if (coord_write_results(c, &oe))
        coord_log(c, "warning: %s", oe.msg);
    else if (report_write(c->out, &oe))
        coord_log(c, "warning: %s", oe.msg);
    coord_leaderboard(c);
    coord_log(c, "report: %s/report.html", c->out);
    if (c->outcome == COORD_FAILED) {
        *e = c->err;
        status = 1;
    } else if (c->outcome == COORD_INTERRUPTED) {
        coord_log(c, "interrupted: %d of %d trials finished; re-run the same command to resume",
                  coord_count(c, TR_DONE), c->n_mine);
        status = COORD_EXIT_INTERRUPTED;
    } else if (c->n_failed) {
        size_t f = 0;
        while (f + 1 < s->n_trials && c->trials[f].st != TR_FAILED)
            f++;
        tl_errf(e, TL_EINVAL, "%d trial%s failed, the others finished; %s: %s", c->n_failed,
                c->n_failed == 1 ? "" : "s", s->trials[f].id,
                c->trials[f].res ? c->trials[f].res->message : "see above");
        status = 1;
    } else {
        status = 0;
    }
out:
    if (c->journal)
        journal_close(c->journal, NULL);
    free_state(c);
    return status;
}

/* ---- merging the slices of a job array ---------------------------------------------- */

/* best.tlm of the winning slice, checked as a model on the way */
static int copy_model(const char *from, const char *to, tl_err *e)
{
    unsigned char *buf;
    size_t n;
    int rc = tl_read_file(from, SIZE_MAX - 1, &buf, &n, e);
    if (!rc)
        rc = model_write_bytes(to, buf, n, e);
    free(buf);
    return rc;
}

int coord_merge(const char *out, int quiet, tl_err *e)
{
    coord cc, *c = &cc;
    memset(c, 0, sizeof *c);
    coord_opts o = {.quiet = quiet};
    c->o = &o;
    c->out = out;
    sweep s;
    memset(&s, 0, sizeof s);
    char *text = NULL;
    int status = 1, n_slices = 0;
    char p[4096];
    /* slices are numbered from 0; the first gap ends the list */
    struct stat sb;
    for (;; n_slices++) {
        snprintf(p, sizeof p, "%s/slices/%d/journal", out, n_slices);
        if (stat(p, &sb) != 0)
            break;
    }
    if (!n_slices) {
        tl_errf(e, TL_ENOTFOUND, "%s/slices/0/journal: no slice of a job array to merge", out);
        goto done;
    }
    snprintf(p, sizeof p, "%s/slices/0/sweep.yaml", out);
    size_t len;
    if (sweep_load_text(&s, p, &text, &len, e))
        goto done;
    c->s = &s;
    if (state_init(c, NULL, 0, e))
        goto done;
    for (int k = 0; k < n_slices; k++) {
        snprintf(p, sizeof p, "%s/slices/%d/journal", out, k);
        c->replay_slice = k;
        size_t ignored = 0;
        if (journal_scan(p, replay, c, &ignored, e)) {
            if (c->err.code) /* the replay's own failure */
                *e = c->err;
            goto done;
        }
    }
    if (c->best >= 0) {
        char from[4096];
        snprintf(from, sizeof from, "%s/slices/%d/best.tlm", out, c->trials[c->best].slice);
        snprintf(p, sizeof p, "%s/best.tlm", out);
        if (copy_model(from, p, e))
            goto done;
    }
    tl_err oe = {0};
    if (coord_write_results(c, &oe) || report_write(out, &oe)) {
        *e = oe;
        goto done;
    }
    coord_leaderboard(c);
    coord_log(c, "report: %s/report.html", out);
    int done_n = coord_count(c, TR_DONE);
    coord_log(c, "merged %d slice%s: %d of %zu trials finished", n_slices,
              n_slices == 1 ? "" : "s", done_n, s.n_trials);
    if ((size_t)done_n == s.n_trials)
        status = 0;
    else
        tl_errf(e, TL_EINVAL, "%s: %zu of %zu trials have not finished; re-run their slices",
                out, s.n_trials - (size_t)done_n, s.n_trials);
done:
    if (c->s)
        free_state(c);
    sweep_free(&s);
    free(text);
    return status;
}
