/* The coordinator's journal: what it appends, and the replay that rebuilds
 * the state of a sweep from it on resume. */
#include "coordinator/coord_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/clock.h"

/* ---- journal -------------------------------------------------------------------------- */

int coord__journal_put(coord *c, Tlsweep__JournalRecord *rec, int sync, tl_err *e)
{
    /* after a failed write of out/'s records nothing more is recorded: a
     * result journaled behind a best.tlm that is not on disk would be
     * believed by the re-run */
    if (c->store_failed)
        return tl_errf(e, TL_EIO, "journal: not written after an earlier failed write");
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
int coord__journal_result(coord *c, const Tlsweep__TrialResult *r, tl_err *e)
{
    Tlsweep__TrialResult tmp = *r;
    tmp.model.data = NULL;
    tmp.model.len = 0;
    Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
    rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_RESULT;
    rec.result = &tmp;
    return coord__journal_put(c, &rec, 1, e);
}

int coord__journal_task(coord *c, int i, uint32_t from, uint32_t until, tl_err *e)
{
    const ctrial *t = &c->trials[i];
    Tlsweep__JournalTask jt = TLSWEEP__JOURNAL_TASK__INIT;
    jt.trial_index = (uint32_t)i;
    jt.trial_key = c->s->trials[i].key;
    jt.trial_id = (char *)c->s->trials[i].id;
    jt.n_ranks = (size_t)t->n_group;
    jt.ranks = t->group;
    jt.from_epoch = from;
    jt.until_epoch = until;
    Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
    rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_TASK;
    rec.task = &jt;
    return coord__journal_put(c, &rec, 0, e);
}

/* What worker k is doing, in the journal's words. */
static Tlsweep__WorkerSeen__State worker_seen_state(const cworker *k)
{
    if (k->lost)
        return TLSWEEP__WORKER_SEEN__STATE__LOST;
    if (k->state == CW_NEW || k->in_setup)
        return TLSWEEP__WORKER_SEEN__STATE__STARTING;
    if (k->state == CW_BUSY || k->state == CW_STOPPING)
        return k->kind == CW_TASK_TRAIN ? TLSWEEP__WORKER_SEEN__STATE__TRAINING
               : k->kind == CW_TASK_EXTRACT ? TLSWEEP__WORKER_SEEN__STATE__EXTRACTING
                                            : TLSWEEP__WORKER_SEEN__STATE__IDLE;
    return TLSWEEP__WORKER_SEEN__STATE__IDLE;
}

/* Worker k's entry; heard on the wall clock, from the loop's clock. */
static void worker_seen(const coord *c, const cworker *k, double now, uint64_t now_ms,
                        Tlsweep__WorkerSeen *ws)
{
    tlsweep__worker_seen__init(ws);
    ws->rank = k->rank;
    ws->host = (char *)k->host;
    double ago_ms = (now - k->last_heard) * 1000.0;
    if (k->hello)
        ws->heard_unix_ms = ago_ms <= 0 ? now_ms
                            : ago_ms < (double)now_ms ? now_ms - (uint64_t)ago_ms : 0;
    ws->state = worker_seen_state(k);
    ws->trial_id = "";
    if (ws->state == TLSWEEP__WORKER_SEEN__STATE__TRAINING && k->trial >= 0 &&
        (size_t)k->trial < c->s->n_trials)
        ws->trial_id = (char *)c->s->trials[k->trial].id;
}

/* The trial worker k trains, -1 none: what a record names beside its state. */
static int worker_trial(const cworker *k)
{
    return worker_seen_state(k) == TLSWEEP__WORKER_SEEN__STATE__TRAINING ? k->trial : -1;
}

/* Worker k as a record would name it now differs from what one last said. */
static int worker_changed(const cworker *k)
{
    return k->jw_state != (int)worker_seen_state(k) || k->jw_trial != worker_trial(k);
}

void coord__journal_workers(coord *c, int all)
{
    size_t n = (size_t)c->n_workers + 1; /* never a malloc(0) */
    Tlsweep__WorkerSeen *seen = malloc(n * sizeof *seen);
    Tlsweep__WorkerSeen **ptrs = malloc(n * sizeof *ptrs);
    tl_err e = {0};
    int rc;
    if (!seen || !ptrs) {
        rc = tl_errf(&e, TL_ENOMEM, "journal: out of memory");
    } else {
        double now = tl_now();
        uint64_t now_ms = tl_unix_ms();
        size_t m = 0;
        for (int w = 0; w < c->n_workers; w++) {
            cworker *k = &c->workers[w];
            if (!all && !worker_changed(k))
                continue;
            worker_seen(c, k, now, now_ms, &seen[m]);
            k->jw_state = (int)seen[m].state;
            k->jw_trial = worker_trial(k);
            ptrs[m] = &seen[m];
            m++;
        }
        Tlsweep__JournalWorkers jw = TLSWEEP__JOURNAL_WORKERS__INIT;
        jw.n_workers = m;
        jw.workers = ptrs;
        Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
        rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_WORKERS;
        rec.workers = &jw;
        rc = coord__journal_put(c, &rec, 0, &e);
        c->workers_at = now;
        if (all)
            c->workers_full_at = now;
    }
    free(seen);
    free(ptrs);
    if (rc && c->phase != COORD_CLOSING)
        coord__fail_store(c, &e);
}

void coord__journal_workers_tick(coord *c, double now)
{
    if (c->phase == COORD_CLOSING || c->store_failed)
        return;
    double period = coord__keepalive_s(c);
    double last = c->workers_at > 0 ? c->workers_at : c->t0;
    int changed = 0;
    for (int w = 0; w < c->n_workers && !changed; w++)
        changed = c->workers[w].jw_state >= 0 && worker_changed(&c->workers[w]);
    if (now - last >= period) {
        /* every worker again, less often for many: heard times go stale
         * between, states never (changes are written as they come) */
        double every = period * (c->n_workers > COORD_WORKERS_FULL
                                     ? (double)c->n_workers / COORD_WORKERS_FULL : 1.0);
        double full = c->workers_full_at > 0 ? c->workers_full_at : c->t0;
        coord__journal_workers(c, now - full >= every - period / 2);
    } else if (changed && now - last >= COORD_WORKERS_MIN_S) {
        coord__journal_workers(c, 0);
    }
}

/* classes of a result's confusion matrix */
#define RESULT_CLASSES_MAX 100000u

int coord__result_figures(const coord *c, int i, const Tlsweep__TrialResult *r, char *what,
                          size_t n)
{
    int epochs = c->s->trials[i].epochs;
    if (r->epochs_done < 1 || r->epochs_done > (uint32_t)epochs || r->best_epoch < 1 ||
        r->best_epoch > r->epochs_done) {
        snprintf(what, n, "trial %s: best epoch %u of %u epochs done, of %d", c->s->trials[i].id,
                 (unsigned)r->best_epoch, (unsigned)r->epochs_done, epochs);
        return -1;
    }
    uint64_t nc = r->num_classes;
    if (nc > RESULT_CLASSES_MAX || (r->n_confusion && r->n_confusion != nc * nc) ||
        (r->n_class_names && r->n_class_names != nc)) {
        snprintf(what, n, "trial %s: %llu classes with a confusion matrix of %zu counts and %zu "
                 "class names", c->s->trials[i].id, (unsigned long long)nc, r->n_confusion,
                 r->n_class_names);
        return -1;
    }
    return 0;
}

int coord__find_trial(const coord *c, uint32_t index, uint64_t key)
{
    if (index >= c->s->n_trials || c->s->trials[index].key != key)
        return -1;
    return (int)index;
}

int coord__keep_epoch(ctrial *t, const Tlsweep__EpochReport *er)
{
    if (er->epoch < 1 || (int)er->epoch > t->n_hist)
        return 0;
    int *ranks = NULL;
    if (er->n_ranks) {
        if (!(ranks = malloc(er->n_ranks * sizeof *ranks)))
            return -1;
        for (size_t k = 0; k < er->n_ranks; k++)
            ranks[k] = er->ranks[k];
    }
    cepoch *h = &t->hist[er->epoch - 1];
    free(h->ranks);
    *h = (cepoch){1, er->loss, er->accuracy, er->val_loss, er->val_accuracy, er->seconds,
                  er->images_per_second, ranks, (int)er->n_ranks, er->comm_seconds};
    if ((int)er->epoch > t->epochs_done)
        t->epochs_done = (int)er->epoch;
    return 0;
}

/* A deep copy of a result without its model bytes (pack and unpack). */
Tlsweep__TrialResult *coord__copy_result(const Tlsweep__TrialResult *r)
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

int coord__replay(void *ctx, const void *payload, size_t len)
{
    coord *c = ctx;
    Tlsweep__JournalRecord *rec = tlsweep__journal_record__unpack(NULL, len, payload);
    if (!rec)
        return 0; /* framed and checksummed but not ours: skipped */
    switch (rec->body_case) {
    case TLSWEEP__JOURNAL_RECORD__BODY_EPOCH: {
        /* epoch reports carry the index and id; keys are checked on results */
        int i = rec->epoch->trial_index < c->s->n_trials ? (int)rec->epoch->trial_index : -1;
        if (i >= 0 && !strcmp(rec->epoch->trial_id, c->s->trials[i].id) &&
            coord__keep_epoch(&c->trials[i], rec->epoch)) {
            int rc = tl_errf(&c->err, TL_ENOMEM, "journal: out of memory replaying %s",
                             rec->epoch->trial_id);
            tlsweep__journal_record__free_unpacked(rec, NULL);
            return rc;
        }
        break;
    }
    case TLSWEEP__JOURNAL_RECORD__BODY_RESULT: {
        const Tlsweep__TrialResult *r = rec->result;
        int i = coord__find_trial(c, r->trial_index, r->trial_key);
        char what[300];
        if (i >= 0 && r->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE &&
            c->trials[i].st != TR_OTHER && coord__result_figures(c, i, r, what, sizeof what)) {
            /* checksummed, so written so (a bug, another build): not
             * believed, the trial runs again; results.json reads these */
            coord_log(c, "warning: journal: a result not believed: %s; %s", what,
                      c->trials[i].st == TR_DONE ? "its earlier one stands" : "it runs again");
        } else if (i >= 0 && r->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE &&
                   c->trials[i].st != TR_OTHER) {
            ctrial *t = &c->trials[i];
            int again = t->st == TR_DONE; /* a second DONE replaces the first */
            t->slice = c->replay_slice;
            if (t->res)
                tlsweep__trial_result__free_unpacked(t->res, NULL);
            if (!(t->res = coord__copy_result(r))) {
                t->st = again ? TR_PENDING : t->st;
                c->resumed -= again;
                int rc = tl_errf(&c->err, TL_ENOMEM, "journal: out of memory replaying %s",
                                 r->trial_id);
                tlsweep__journal_record__free_unpacked(rec, NULL);
                return rc;
            }
            t->st = TR_DONE;
            coord__search_result(c, i, r);
            if (again) {
                coord__best_again(c);
            } else {
                c->resumed++;
                coord_consider_best(c, i);
            }
        }
        break;
    }
    case TLSWEEP__JOURNAL_RECORD__BODY_PROMOTE:
        coord__replay_promote(c, rec->promote);
        break;
    case TLSWEEP__JOURNAL_RECORD__BODY_RESET: {
        int i = coord__find_trial(c, rec->reset->trial_index, rec->reset->trial_key);
        if (i >= 0)
            coord__reset_trial(c, i);
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
        snprintf(c->start_sha, sizeof c->start_sha, "%s",
                 rec->start->sweep_sha256 ? rec->start->sweep_sha256 : "");
        snprintf(c->start_file, sizeof c->start_file, "%s",
                 rec->start->sweep_file ? rec->start->sweep_file : "");
        break;
    case TLSWEEP__JOURNAL_RECORD__BODY_TASK:
    case TLSWEEP__JOURNAL_RECORD__BODY_WORKERS:
        break; /* for readers (coord_status.c): what they say, epochs and results decide */
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

void coord__best_again(coord *c)
{
    c->best = -1;
    /* a promoted trial keeps its rung's result until its next one */
    for (size_t i = 0; i < c->s->n_trials; i++) {
        const ctrial *t = &c->trials[i];
        if (t->st != TR_OTHER && t->st != TR_FAILED && t->res &&
            t->res->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE)
            coord_consider_best(c, (int)i);
    }
}

void coord__reset_trial(coord *c, int i)
{
    ctrial *t = &c->trials[i];
    if (t->st != TR_DONE)
        return;
    tlsweep__trial_result__free_unpacked(t->res, NULL);
    t->res = NULL;
    t->st = TR_PENDING;
    c->resumed--;
    coord__best_again(c);
}

int coord__rerun_best(coord *c, const char *reason, tl_err *e)
{
    if (c->best < 0)
        return 0;
    int i = c->best;
    Tlsweep__JournalReset rs = TLSWEEP__JOURNAL_RESET__INIT;
    rs.trial_index = (uint32_t)i;
    rs.trial_key = c->s->trials[i].key;
    rs.trial_id = (char *)c->s->trials[i].id;
    rs.reason = (char *)reason;
    Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
    rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_RESET;
    rec.reset = &rs;
    int rc = coord__journal_put(c, &rec, 1, e);
    if (rc)
        return rc;
    coord__reset_trial(c, i);
    return 0;
}
