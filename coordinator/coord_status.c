/* `tlsweep status`: a sweep's state from its journal, read as resume reads
 * it but without its lock or its cuts, so a running coordinator goes on
 * appending undisturbed. */
#include "coordinator/coord_status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/store/journal.h"
#include "common/sweep/sweep.h"
#include "coordinator/coord_int.h"
#include "tlsweep.pb-c.h"

/* ---- reading ------------------------------------------------------------------------------ */

/* The trial a record names, by its grid position and id (the key needs the
 * dataset's fingerprint, which status does not index the data to learn). */
static coord_status_trial *trial_of(coord_status *st, uint32_t index, const char *id)
{
    if (index >= (uint32_t)st->n_trials || !id || strcmp(st->trials[index].id, id) != 0)
        return NULL;
    return &st->trials[index];
}

/* An epoch's time: the wall time since the trial's previous epoch record
 * in the same run (validation, checkpoint and messages included, which the
 * worker's own figure leaves out), else that figure. */
static double epoch_wall_seconds(const coord_status *st, const coord_status_trial *t,
                                 const Tlsweep__EpochReport *er, uint64_t ms)
{
    if (t->epoch_ms && t->epoch_run == st->runs && er->epoch == (uint32_t)t->epoch + 1 &&
        ms > t->epoch_ms)
        return (double)(ms - t->epoch_ms) / 1000.0;
    return er->seconds;
}

/* The ranks that train it, "1,2,3" (cut with "..." when long). */
static void set_ranks(coord_status_trial *t, const int32_t *ranks, size_t n)
{
    t->n_ranks = (int)n;
    size_t len = 0;
    t->ranks[0] = '\0';
    for (size_t k = 0; k < n && len < sizeof t->ranks; k++)
        len += (size_t)snprintf(t->ranks + len, sizeof t->ranks - len, "%s%d", k ? "," : "",
                                (int)ranks[k]);
    if (len >= sizeof t->ranks)
        memcpy(t->ranks + sizeof t->ranks - 4, "...", 4);
}

static void take_epoch(coord_status *st, const Tlsweep__EpochReport *er, uint64_t ms)
{
    coord_status_trial *t = trial_of(st, er->trial_index, er->trial_id);
    if (!t)
        return;
    double secs = epoch_wall_seconds(st, t, er, ms);
    if (secs > 0) {
        t->epoch_seconds += secs;
        t->n_epoch_seconds++;
    }
    t->epoch_ms = ms;
    t->epoch_run = st->runs;
    t->epoch = (int)er->epoch;
    t->loss = er->loss;
    t->accuracy = er->accuracy;
    t->val_loss = er->val_loss;
    t->val_accuracy = er->val_accuracy;
    set_ranks(t, er->ranks, er->n_ranks);
    t->run = st->runs;
    t->starting = 0;
    if (t->st == COORD_TRIAL_QUEUED)
        t->st = COORD_TRIAL_STARTED;
}

static void workers_on(coord_status *st, const int32_t *ranks, size_t n, int state,
                       const char *trial);

/* A task sent: the trial runs from here, on these ranks, from from_epoch
 * (0 until its first epoch is journaled) to until_epoch. */
static void take_task(coord_status *st, const Tlsweep__JournalTask *tk)
{
    coord_status_trial *t = trial_of(st, tk->trial_index, tk->trial_id);
    if (!t || t->st == COORD_TRIAL_DONE || t->st == COORD_TRIAL_FAILED)
        return;
    t->st = COORD_TRIAL_STARTED;
    t->run = st->runs;
    t->starting = 1;
    t->epoch = (int)tk->from_epoch;
    t->until_epoch = (int)tk->until_epoch;
    set_ranks(t, tk->ranks, tk->n_ranks);
    workers_on(st, tk->ranks, tk->n_ranks, TLSWEEP__WORKER_SEEN__STATE__TRAINING, t->id);
}

static void drop_workers(coord_status *st)
{
    free(st->workers);
    st->workers = NULL;
    st->n_workers = 0;
}

static int worker_rank_cmp(const void *a, const void *b)
{
    const coord_status_worker *x = a, *y = b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* Worker `rank` in st's table, added when new (NULL: out of memory). */
static coord_status_worker *worker_of(coord_status *st, int rank)
{
    for (int i = 0; i < st->n_workers; i++)
        if (st->workers[i].rank == rank)
            return &st->workers[i];
    coord_status_worker *w = realloc(st->workers, ((size_t)st->n_workers + 1) * sizeof *w);
    if (!w)
        return NULL;
    st->workers = w;
    w = &w[st->n_workers++];
    memset(w, 0, sizeof *w);
    w->rank = rank;
    return w;
}

/* Tasks and results tell what workers do between two JournalWorkers
 * records (written a few seconds after a change): the ranks of a task train
 * its trial, those of a result are idle. Only workers a record named (with
 * their host) are kept; a LOST one stays lost. */
static void workers_on(coord_status *st, const int32_t *ranks, size_t n, int state,
                       const char *trial)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < st->n_workers; k++) {
            coord_status_worker *w = &st->workers[k];
            if (w->rank != ranks[i] || w->state == TLSWEEP__WORKER_SEEN__STATE__LOST)
                continue;
            w->state = state;
            snprintf(w->trial, sizeof w->trial, "%s", trial);
        }
}

/* The workers as last heard: records name every worker or only those that
 * changed, so each entry updates its rank's row (from the run's Start). */
static void take_workers(coord_status *st, const Tlsweep__JournalWorkers *w)
{
    st->workers_records++;
    for (size_t i = 0; i < w->n_workers; i++) {
        const Tlsweep__WorkerSeen *ws = w->workers[i];
        coord_status_worker *o = worker_of(st, ws->rank);
        if (!o)
            return;
        snprintf(o->host, sizeof o->host, "%s", ws->host ? ws->host : "");
        o->state = (int)ws->state;
        snprintf(o->trial, sizeof o->trial, "%s", ws->trial_id ? ws->trial_id : "");
        o->heard_ms = ws->heard_unix_ms;
    }
    if (st->n_workers > 1)
        qsort(st->workers, (size_t)st->n_workers, sizeof *st->workers, worker_rank_cmp);
}

/* Only final results are journaled: DONE and FAILED. */
static void take_result(coord_status *st, const Tlsweep__TrialResult *r)
{
    coord_status_trial *t = trial_of(st, r->trial_index, r->trial_id);
    if (!t)
        return;
    if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE) {
        t->st = COORD_TRIAL_DONE;
        t->best_value = r->best_value;
    } else if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__FAILED) {
        t->st = COORD_TRIAL_FAILED;
    }
    workers_on(st, r->ranks, r->n_ranks, TLSWEEP__WORKER_SEEN__STATE__IDLE, "");
}

/* A promotion (successive_halving, asha) sends a trial that ended a rung
 * back to the queue: it trains on to the next rung, and is started again
 * by its next epoch. */
static void take_promote(coord_status *st, const Tlsweep__JournalPromote *p)
{
    coord_status_trial *t = trial_of(st, p->trial_index, p->trial_id);
    if (!t)
        return;
    t->rung = (int)p->rung;
    if (t->st == COORD_TRIAL_DONE)
        t->st = COORD_TRIAL_QUEUED;
}

/* A Reset sends a finished trial back to the queue: it runs again. */
static void take_reset(coord_status *st, const Tlsweep__JournalReset *rs)
{
    coord_status_trial *t = trial_of(st, rs->trial_index, rs->trial_id);
    if (t && t->st == COORD_TRIAL_DONE)
        t->st = COORD_TRIAL_QUEUED;
}

/* A run's span, from its Start to end_ms (its last record, or now while it
 * runs), counts when the next Start (or the end of the journal) closes it. */
static void close_run(coord_status *st, uint64_t end_ms)
{
    if (st->start_ms && end_ms > st->start_ms)
        st->total_s += (double)(end_ms - st->start_ms) / 1000.0;
}

static void take_start(coord_status *st, const Tlsweep__JournalStart *s, uint64_t ms)
{
    close_run(st, st->last_ms);
    st->runs++;
    st->ranks = (int)s->ranks;
    st->start_ms = ms;
    st->state = COORD_STATUS_RUNNING;
    st->stop_message[0] = '\0';
    snprintf(st->host, sizeof st->host, "%s", s->host ? s->host : "");
    st->pid = s->pid;
    snprintf(st->sweep_file, sizeof st->sweep_file, "%s", s->sweep_file ? s->sweep_file : "");
    st->workers_records = 0; /* the workers of an earlier run are not this one's */
    drop_workers(st);
}

static void take_stop(coord_status *st, const Tlsweep__JournalStop *s)
{
    st->state = s->kind == TLSWEEP__JOURNAL_STOP__KIND__FINISHED ? COORD_STATUS_FINISHED
                : s->kind == TLSWEEP__JOURNAL_STOP__KIND__FAILED ? COORD_STATUS_FAILED
                                                                 : COORD_STATUS_INTERRUPTED;
    snprintf(st->stop_message, sizeof st->stop_message, "%s", s->message ? s->message : "");
}

/* A journal_cb: one record into st. Kinds it does not know (a newer
 * build's) and payloads that do not unpack are counted and skipped. */
static int take_record(void *ctx, const void *payload, size_t len)
{
    coord_status *st = ctx;
    st->records++;
    Tlsweep__JournalRecord *rec = tlsweep__journal_record__unpack(NULL, len, payload);
    if (!rec) {
        st->skipped++;
        return 0;
    }
    switch (rec->body_case) {
    case TLSWEEP__JOURNAL_RECORD__BODY_START: take_start(st, rec->start, rec->unix_ms); break;
    case TLSWEEP__JOURNAL_RECORD__BODY_STOP: take_stop(st, rec->stop); break;
    case TLSWEEP__JOURNAL_RECORD__BODY_EPOCH: take_epoch(st, rec->epoch, rec->unix_ms); break;
    case TLSWEEP__JOURNAL_RECORD__BODY_RESULT: take_result(st, rec->result); break;
    case TLSWEEP__JOURNAL_RECORD__BODY_RESET: take_reset(st, rec->reset); break;
    case TLSWEEP__JOURNAL_RECORD__BODY_PROMOTE: take_promote(st, rec->promote); break;
    case TLSWEEP__JOURNAL_RECORD__BODY_TASK: take_task(st, rec->task); break;
    case TLSWEEP__JOURNAL_RECORD__BODY_WORKERS: take_workers(st, rec->workers); break;
    case TLSWEEP__JOURNAL_RECORD__BODY_FEATURES: break;
    default: st->skipped++; break;
    }
    if (rec->unix_ms > st->last_ms)
        st->last_ms = rec->unix_ms;
    tlsweep__journal_record__free_unpacked(rec, NULL);
    return 0;
}

/* The trials of the sweep copy, in grid order, all queued. */
static int load_trials(coord_status *st, const char *out, tl_err *e)
{
    char p[4096];
    if ((size_t)snprintf(p, sizeof p, "%s/sweep.yaml", out) >= sizeof p)
        return tl_errf(e, TL_EINVAL, "%s: path too long", out);
    sweep s;
    int rc = sweep_load(&s, p, e);
    if (rc)
        return rc;
    snprintf(st->sweep, sizeof st->sweep, "%s", s.name);
    snprintf(st->metric, sizeof st->metric, "%s", sweep_metric_name(s.metric));
    st->goal_max = s.goal_max;
    st->trials = calloc(s.n_trials ? s.n_trials : 1, sizeof *st->trials);
    if (!st->trials) {
        sweep_free(&s);
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", p);
    }
    for (size_t i = 0; i < s.n_trials; i++) {
        coord_status_trial *t = &st->trials[i];
        snprintf(t->id, sizeof t->id, "%s", s.trials[i].id);
        t->index = (int)i;
        t->epochs = s.trials[i].epochs;
        t->uses_cache = sweep_trial_uses_cache(&s.trials[i]);
    }
    st->n_trials = (int)s.n_trials;
    sweep_free(&s);
    return 0;
}

/* journal_note: the tail journal_scan left unread, as a resume would see
 * it: a torn tail (cut quietly on resume; also the record the running
 * coordinator is appending right now) or damage in the middle (refused
 * without --repair: the strict scan's line says where). */
static void note_tail(coord_status *st, const char *path)
{
    if (!st->ignored)
        return;
    tl_err de = {0};
    if (journal_scan(path, JOURNAL_STRICT, NULL, NULL, NULL, &de) == TL_EFORMAT)
        snprintf(st->journal_note, sizeof st->journal_note, "%s", de.msg);
    else
        snprintf(st->journal_note, sizeof st->journal_note,
                 "%.300s: the last %zu bytes are not a whole record (a torn tail, or one being "
                 "written); read up to record %zu",
                 path, st->ignored, st->records);
}

/* Mean seconds of a journaled epoch of trials that do (cache 1) or do not
 * use the feature cache; -1 when none is journaled. */
static double mean_epoch(const coord_status *st, int cache)
{
    double s = 0;
    int n = 0;
    for (int i = 0; i < st->n_trials; i++)
        if (st->trials[i].uses_cache == cache) {
            s += st->trials[i].epoch_seconds;
            n += st->trials[i].n_epoch_seconds;
        }
    return n ? s / n : -1;
}

/* The epochs left, each at its kind's mean time (the other kind's when its
 * own has none yet), spread over the workers (ranks - 1). */
static double eta(const coord_status *st)
{
    double m[2] = {mean_epoch(st, 0), mean_epoch(st, 1)};
    if (m[0] < 0 && m[1] < 0)
        return -1;
    double left = 0;
    for (int i = 0; i < st->n_trials; i++) {
        const coord_status_trial *t = &st->trials[i];
        if (t->st == COORD_TRIAL_DONE || t->st == COORD_TRIAL_FAILED)
            continue;
        double per = m[t->uses_cache] >= 0 ? m[t->uses_cache] : m[!t->uses_cache];
        int todo = t->epochs - t->epoch;
        left += per * (todo > 0 ? todo : 0);
    }
    int workers = st->ranks > 1 ? st->ranks - 1 : 1;
    return left / workers;
}

/* A started trial runs while its run does; one an earlier run started waits
 * for this run's task (its coordinator was stopped mid-trial). */
static int trial_running(const coord_status *st, const coord_status_trial *t)
{
    return st->state == COORD_STATUS_RUNNING && t->run == st->runs;
}

/* Counts, and the best (the select metric, then the grid order, as the
 * coordinator picks it). */
static void count_trials(coord_status *st)
{
    st->best = -1;
    for (int i = 0; i < st->n_trials; i++) {
        const coord_status_trial *t = &st->trials[i];
        st->n_done += t->st == COORD_TRIAL_DONE;
        st->n_started += t->st == COORD_TRIAL_STARTED;
        st->n_running += t->st == COORD_TRIAL_STARTED && trial_running(st, t);
        st->n_queued += t->st == COORD_TRIAL_QUEUED;
        st->n_failed += t->st == COORD_TRIAL_FAILED;
        if (t->st != COORD_TRIAL_DONE)
            continue;
        double b = st->best >= 0 ? st->trials[st->best].best_value : NAN;
        if (st->best < 0 || (st->goal_max ? t->best_value > b : t->best_value < b))
            st->best = i;
    }
}

/* The resume command, for the line saying the coordinator is gone. */
static void resume_hint(const coord_status *st, char *buf, size_t n)
{
    if (st->sweep_file[0])
        snprintf(buf, n, "`tlsweep run %s` (or the command that started it)", st->sweep_file);
    else
        snprintf(buf, n, "`tlsweep run SWEEP` (the command that started it)");
}

/* A run without a Stop record: is its coordinator still there? On its own
 * machine the journal's lock says so (a killed process leaves none): free
 * before the scan (lock_before) and after it, so no writer was at work
 * while it read. Free only after, a run that ended (Stop, then the lock
 * let go) as the scan went would be called lost; free only before, one
 * that started. From another machine, only a run that writes the
 * once-a-minute workers records can be judged, by the age of its newest
 * record. */
static void judge_alive(coord_status *st, const char *journal_path, int lock_before)
{
    if (st->state != COORD_STATUS_RUNNING)
        return;
    char here[256] = "";
    if (st->host[0] && gethostname(here, sizeof here - 1) == 0 && !strcmp(here, st->host)) {
        if (lock_before != 0 || journal_lock_held(journal_path, NULL) != 0)
            return; /* held, or not to be tested: as before, running */
        snprintf(st->lost_why, sizeof st->lost_why,
                 "pid %u on %.64s no longer holds the journal's lock", st->pid,
                 st->host);
    } else {
        if (!st->workers_records || st->now_ms <= st->last_ms ||
            st->now_ms - st->last_ms <= COORD_STATUS_SILENT_MS)
            return;
        char ago[32];
        coord__fmt_duration((double)(st->now_ms - st->last_ms) / 1000.0, ago, sizeof ago);
        snprintf(st->lost_why, sizeof st->lost_why,
                 "no journal record for %s, where it writes one a minute", ago);
    }
    st->state = COORD_STATUS_LOST;
}

/* Elapsed and total time, and the ETA: a running sweep's clock runs to
 * now, a stopped one's to its last record. */
static void clocks(coord_status *st)
{
    uint64_t end = st->state == COORD_STATUS_RUNNING && st->now_ms > st->last_ms ? st->now_ms
                                                                                 : st->last_ms;
    close_run(st, end);
    st->elapsed_s = st->start_ms && end > st->start_ms ? (double)(end - st->start_ms) / 1000.0 : 0;
    st->eta_s = eta(st);
}

int coord_status_read(coord_status *st, const char *out, uint64_t now_ms, tl_err *e)
{
    memset(st, 0, sizeof *st);
    st->now_ms = now_ms;
    st->best = -1;
    st->state = COORD_STATUS_INTERRUPTED; /* not running until a Start says so */
    int rc = load_trials(st, out, e);
    char p[4096];
    if (!rc && (size_t)snprintf(p, sizeof p, "%s/journal", out) >= sizeof p)
        rc = tl_errf(e, TL_EINVAL, "%s: path too long", out);
    int lock_before = -1;
    if (!rc) {
        lock_before = journal_lock_held(p, NULL);
        rc = journal_scan(p, 0, take_record, st, &st->ignored, e);
    }
    if (rc) {
        coord_status_free(st);
        return rc;
    }
    note_tail(st, p);
    judge_alive(st, p, lock_before);
    count_trials(st);
    clocks(st);
    return 0;
}

void coord_status_free(coord_status *st)
{
    drop_workers(st);
    free(st->trials);
    st->trials = NULL;
    st->n_trials = 0;
}

/* ---- telling it ------------------------------------------------------------------------------ */

const char *coord_status_state_name(coord_status_state s)
{
    switch (s) {
    case COORD_STATUS_RUNNING: return "running";
    case COORD_STATUS_FINISHED: return "finished";
    case COORD_STATUS_FAILED: return "failed";
    case COORD_STATUS_LOST: return "lost";
    default: return "interrupted";
    }
}

const char *coord_status_trial_name(const coord_status *st, const coord_status_trial *t)
{
    switch (t->st) {
    case COORD_TRIAL_DONE: return "done";
    case COORD_TRIAL_FAILED: return "failed";
    case COORD_TRIAL_STARTED: return trial_running(st, t) ? "running" : "interrupted";
    default: return "queued";
    }
}

/* A trial whose task is sent and no epoch of it journaled in this task
 * yet: where it starts (0, or a resume's checkpoint), where it stops, on
 * which ranks; the metrics of an earlier run's epochs are not news. */
static void text_starting(const coord_status *st, const coord_status_trial *t, tl_strbuf *b)
{
    tl_strbuf_printf(b, "  %-11s %s  epoch %d/%d  starting", coord_status_trial_name(st, t), t->id,
                     t->epoch, t->epochs);
    if (t->until_epoch > 0 && t->until_epoch < t->epochs)
        tl_strbuf_printf(b, "  to epoch %d", t->until_epoch);
    if (t->n_ranks > 1)
        tl_strbuf_printf(b, "  on ranks %s", t->ranks);
    tl_strbuf_putc(b, '\n');
}

static void text_trial(const coord_status *st, const coord_status_trial *t, tl_strbuf *b)
{
    if (t->starting) {
        text_starting(st, t, b);
        return;
    }
    char d[32];
    double per = t->n_epoch_seconds ? t->epoch_seconds / t->n_epoch_seconds : -1;
    if (per >= 0 && per < 60) /* short epochs: tenths, not "0s" */
        snprintf(d, sizeof d, "%.1fs", per);
    else
        coord__fmt_duration(per, d, sizeof d);
    char rung[48] = "", ranks[120] = "";
    if (t->rung > 0 && t->until_epoch > t->epoch && t->until_epoch < t->epochs)
        snprintf(rung, sizeof rung, "  (rung %d, to epoch %d)", t->rung, t->until_epoch);
    else if (t->rung > 0)
        snprintf(rung, sizeof rung, "  (rung %d)", t->rung);
    else if (t->until_epoch > t->epoch && t->until_epoch < t->epochs)
        snprintf(rung, sizeof rung, "  (to epoch %d)", t->until_epoch);
    if (t->n_ranks > 1) /* a group trains it (its last epoch's) */
        snprintf(ranks, sizeof ranks, "  on ranks %s", t->ranks);
    tl_strbuf_printf(b, "  %-11s %s  epoch %d/%d  loss %.4f  accuracy %.4f  val_loss %.4f  "
                        "val_accuracy %.4f  (%s per epoch)%s%s\n",
                     coord_status_trial_name(st, t), t->id, t->epoch, t->epochs, t->loss,
                     t->accuracy, t->val_loss, t->val_accuracy, d, rung, ranks);
}

static const char *worker_state_name(int s)
{
    switch (s) {
    case TLSWEEP__WORKER_SEEN__STATE__IDLE: return "idle";
    case TLSWEEP__WORKER_SEEN__STATE__TRAINING: return "training";
    case TLSWEEP__WORKER_SEEN__STATE__EXTRACTING: return "extracting";
    case TLSWEEP__WORKER_SEEN__STATE__LOST: return "lost";
    default: return "starting";
    }
}

/* Seconds from ms to when the status was read (0 when ms is later). */
static double seconds_ago(const coord_status *st, uint64_t ms)
{
    return st->now_ms > ms ? (double)(st->now_ms - ms) / 1000.0 : 0;
}

/* "workers: 3 (2 training, 1 idle), last heard 4s ago; lost: rank 3
 * (node-b) 12m ago" */
static void text_workers(const coord_status *st, tl_strbuf *b)
{
    static const int order[] = {TLSWEEP__WORKER_SEEN__STATE__TRAINING,
                                TLSWEEP__WORKER_SEEN__STATE__EXTRACTING,
                                TLSWEEP__WORKER_SEEN__STATE__IDLE,
                                TLSWEEP__WORKER_SEEN__STATE__STARTING};
    int alive = 0, n_state[4] = {0};
    uint64_t heard = 0;
    for (int i = 0; i < st->n_workers; i++) {
        const coord_status_worker *w = &st->workers[i];
        if (w->state == TLSWEEP__WORKER_SEEN__STATE__LOST)
            continue;
        alive++;
        int k = 0;
        while (k < 3 && order[k] != w->state)
            k++;
        n_state[k]++; /* unknown states count as starting */
        if (w->heard_ms > heard)
            heard = w->heard_ms;
    }
    tl_strbuf_printf(b, "workers: %d", alive);
    const char *sep = " (";
    for (int k = 0; k < 4; k++)
        if (n_state[k]) {
            tl_strbuf_printf(b, "%s%d %s", sep, n_state[k], worker_state_name(order[k]));
            sep = ", ";
        }
    tl_strbuf_puts(b, alive ? ")" : "");
    char ago[32];
    if (heard) {
        coord__fmt_duration(seconds_ago(st, heard), ago, sizeof ago);
        tl_strbuf_printf(b, ", last heard %s ago", ago);
    }
    sep = "; lost: ";
    for (int i = 0; i < st->n_workers; i++) {
        const coord_status_worker *w = &st->workers[i];
        if (w->state != TLSWEEP__WORKER_SEEN__STATE__LOST)
            continue;
        tl_strbuf_printf(b, "%srank %d", sep, w->rank);
        if (w->host[0])
            tl_strbuf_printf(b, " (%s)", w->host);
        if (w->heard_ms) {
            coord__fmt_duration(seconds_ago(st, w->heard_ms), ago, sizeof ago);
            tl_strbuf_printf(b, " %s ago", ago);
        }
        sep = ", ";
    }
    tl_strbuf_putc(b, '\n');
}

void coord_status_text(const coord_status *st, tl_strbuf *b)
{
    char at[40], el[32], tot[32], eta_txt[32];
    coord__utc_iso(st->start_ms, at, sizeof at);
    coord__fmt_duration(st->elapsed_s, el, sizeof el);
    coord__fmt_duration(st->total_s, tot, sizeof tot);
    coord__fmt_duration(st->eta_s, eta_txt, sizeof eta_txt);
    tl_strbuf_printf(b, "%s: %s", st->sweep, coord_status_state_name(st->state));
    if (st->state == COORD_STATUS_FAILED && st->stop_message[0])
        tl_strbuf_printf(b, " (%s)", st->stop_message);
    tl_strbuf_printf(b, "; run %d started %s on %d rank%s, elapsed %s (%s over all runs)\n",
                     st->runs, at, st->ranks, st->ranks == 1 ? "" : "s", el, tot);
    int n_interrupted = st->n_started - st->n_running;
    tl_strbuf_printf(b, "trials: %d done, ", st->n_done);
    if (st->state == COORD_STATUS_RUNNING)
        tl_strbuf_printf(b, "%d running, ", st->n_running);
    if (st->state != COORD_STATUS_RUNNING || n_interrupted)
        tl_strbuf_printf(b, "%d interrupted, ", n_interrupted);
    tl_strbuf_printf(b, "%d queued, %d failed, of %d", st->n_queued, st->n_failed, st->n_trials);
    if (st->n_started + st->n_queued)
        tl_strbuf_printf(b, "; ETA %s%s", eta_txt,
                         st->state == COORD_STATUS_RUNNING ? "" : " (the work left, on resume)");
    tl_strbuf_putc(b, '\n');
    if (st->best >= 0)
        tl_strbuf_printf(b, "best: %s %.4f (%s)\n", st->metric, st->trials[st->best].best_value,
                         st->trials[st->best].id);
    else
        tl_strbuf_printf(b, "best: none finished yet\n");
    if (st->n_workers)
        text_workers(st, b);
    for (int i = 0; i < st->n_trials; i++)
        if (st->trials[i].st == COORD_TRIAL_STARTED)
            text_trial(st, &st->trials[i], b);
    if (st->state == COORD_STATUS_LOST) {
        char how[320];
        resume_hint(st, how, sizeof how);
        tl_strbuf_printf(b, "the coordinator is gone (%s), with no Stop record: %s resumes the "
                            "sweep\n",
                         st->lost_why, how);
    }
    if (st->state == COORD_STATUS_RUNNING && st->now_ms >= st->last_ms) {
        char ago[32];
        coord__fmt_duration((double)(st->now_ms - st->last_ms) / 1000.0, ago, sizeof ago);
        tl_strbuf_printf(b, "last journal record %s ago\n", ago);
    }
}

/* ---- JSON ---------------------------------------------------------------------------------------- */

static json_t *seconds_or_null(double s)
{
    return s >= 0 ? json_real(s) : json_null();
}

static json_t *trial_json(const coord_status *st, const coord_status_trial *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "trial", json_string(t->id));
    json_object_set_new(o, "index", json_integer(t->index));
    json_object_set_new(o, "status", json_string(coord_status_trial_name(st, t)));
    json_object_set_new(o, "epoch", json_integer(t->epoch));
    json_object_set_new(o, "epochs", json_integer(t->epochs));
    /* a rung search: the rung it was promoted to (null: none, or rung 0) */
    json_object_set_new(o, "rung", t->rung > 0 ? json_integer(t->rung) : json_null());
    json_object_set_new(o, "loss", json_real(t->loss));
    json_object_set_new(o, "accuracy", json_real(t->accuracy));
    json_object_set_new(o, "val_loss", json_real(t->val_loss));
    json_object_set_new(o, "val_accuracy", json_real(t->val_accuracy));
    /* how many ranks trained its last epoch (null: not recorded) */
    json_object_set_new(o, "ranks", t->n_ranks ? json_integer(t->n_ranks) : json_null());
    /* its task sent, no epoch of it journaled yet */
    json_object_set_new(o, "starting", json_boolean(t->starting && t->st == COORD_TRIAL_STARTED));
    /* where its task stops (a rung's end; null: its last epoch or not recorded) */
    json_object_set_new(o, "until_epoch",
                        t->until_epoch > 0 ? json_integer(t->until_epoch) : json_null());
    json_object_set_new(o, "seconds_per_epoch",
                        seconds_or_null(t->n_epoch_seconds ? t->epoch_seconds / t->n_epoch_seconds
                                                           : -1));
    return o;
}

static json_t *counts_json(const coord_status *st)
{
    /* started trials are running or, once their run stopped, interrupted */
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "total", st->n_trials, "done", st->n_done,
                     "running", st->n_running, "interrupted", st->n_started - st->n_running,
                     "queued", st->n_queued, "failed", st->n_failed);
}

/* The run's last workers record, null without one (an older journal). */
static json_t *workers_json(const coord_status *st)
{
    if (!st->workers_records)
        return json_null();
    json_t *a = json_array();
    for (int i = 0; i < st->n_workers; i++) {
        const coord_status_worker *w = &st->workers[i];
        json_array_append_new(
            a, json_pack("{s:i, s:s, s:s, s:o, s:o}", "rank", w->rank, "host", w->host, "state",
                         worker_state_name(w->state), "trial",
                         w->trial[0] ? json_string(w->trial) : json_null(), "heard_seconds_ago",
                         w->heard_ms ? json_real(seconds_ago(st, w->heard_ms)) : json_null()));
    }
    return a;
}

static json_t *journal_json(const coord_status *st)
{
    json_t *o = json_pack("{s:I, s:I, s:I}", "records", (json_int_t)st->records, "skipped",
                          (json_int_t)st->skipped, "ignored_bytes", (json_int_t)st->ignored);
    json_object_set_new(o, "note", st->journal_note[0] ? json_string(st->journal_note)
                                                       : json_null());
    return o;
}

char *coord_status_json(const coord_status *st)
{
    json_t *root = json_object();
    json_object_set_new(root, "sweep", json_string(st->sweep));
    json_object_set_new(root, "state", json_string(coord_status_state_name(st->state)));
    json_object_set_new(root, "stop_message",
                        st->stop_message[0] ? json_string(st->stop_message) : json_null());
    json_object_set_new(root, "runs", json_integer(st->runs));
    json_object_set_new(root, "ranks", json_integer(st->ranks));
    json_object_set_new(root, "host", st->host[0] ? json_string(st->host) : json_null());
    json_object_set_new(root, "pid", st->pid ? json_integer(st->pid) : json_null());
    json_object_set_new(root, "lost_reason", st->lost_why[0] ? json_string(st->lost_why)
                                                             : json_null());
    json_object_set_new(root, "workers", workers_json(st));
    json_object_set_new(root, "started_unix_ms", json_integer((json_int_t)st->start_ms));
    json_object_set_new(root, "last_record_unix_ms", json_integer((json_int_t)st->last_ms));
    json_object_set_new(root, "elapsed_seconds", json_real(st->elapsed_s));
    json_object_set_new(root, "total_seconds", json_real(st->total_s));
    json_object_set_new(root, "eta_seconds", seconds_or_null(st->eta_s));
    json_object_set_new(root, "select", json_pack("{s:s, s:s}", "metric", st->metric, "goal",
                                                  st->goal_max ? "max" : "min"));
    json_object_set_new(root, "trials", counts_json(st));
    json_object_set_new(root, "best",
                        st->best < 0 ? json_null()
                                     : json_pack("{s:s, s:f}", "trial", st->trials[st->best].id,
                                                 "value", st->trials[st->best].best_value));
    json_t *started = json_array();
    for (int i = 0; i < st->n_trials; i++)
        if (st->trials[i].st == COORD_TRIAL_STARTED)
            json_array_append_new(started, trial_json(st, &st->trials[i]));
    json_object_set_new(root, "started", started);
    json_object_set_new(root, "journal", journal_json(st));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(root);
    return text;
}
