/* The coordinator (see coord.h): coord_run and its libuv loop, failing and
 * stopping, finishing. The rest of the state machine is in the coord_*.c
 * files listed in coord_int.h. */
#include "coordinator/coord_int.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/clock.h"
#include "common/base/fileio.h"
#include "common/base/sha256.h"
#include "common/msg/msg.h"
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

/* ---- failing and stopping ------------------------------------------------------------- */

void coord__send_stop(coord *c, Tlsweep__Stop__Reason reason)
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
        if (msg_link_send(c->l, k->rank, &env, &e)) {
            coord_log(c, "warning: rank %d: Stop not sent: %s", k->rank, e.msg);
            /* it was not told: cli_run must abort it, not wait in MPI_Finalize */
            c->o->abandoned = 1;
        }
        /* an idle worker leaves at once; a busy one answers first */
        k->state = k->state == CW_BUSY || k->state == CW_STOPPING ? CW_STOPPING : CW_STOPPED;
    }
}

/* A failure of the sweep, decided by the caller: logged here, once, and the
 * first one kept, code and line, for the journal's Stop record and the exit
 * path. The sweep goes on; coord_fail also stops it. */
void coord__note_failure(coord *c, const tl_err *e)
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
void coord__forget_workers(coord *c)
{
    for (int w = 0; w < c->n_workers; w++)
        c->workers[w].state = CW_STOPPED;
}

/* A worker's task is over (its last feature chunk or its result came): a
 * busy worker is idle again; one that was sent a Stop meanwhile has it
 * waiting and leaves. */
void coord__task_over(cworker *k)
{
    if (k->state == CW_BUSY)
        k->state = CW_IDLE;
    else if (k->state == CW_STOPPING)
        k->state = CW_STOPPED;
}

void coord_fail(coord *c, const tl_err *e)
{
    coord__note_failure(c, e);
    if (c->phase == COORD_RUNNING) {
        c->phase = COORD_STOPPING;
        coord__send_stop(c, TLSWEEP__STOP__REASON__ABORT);
        coord__forget_workers(c);
    }
    coord__check_finished(c);
}

void coord__fail_store(coord *c, const tl_err *e)
{
    if (c->store_failed) /* a knock-on of the first: the journal refuses now */
        return;
    if (c->outcome != COORD_FAILED)
        c->store_failed = 1;
    coord_fail(c, e);
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
        coord__forget_workers(c);
        if (c->outcome < COORD_INTERRUPTED)
            c->outcome = COORD_INTERRUPTED;
        coord__check_finished(c);
        return;
    }
    /* a failure stays one */
    if (c->outcome < COORD_INTERRUPTED)
        c->outcome = COORD_INTERRUPTED;
    c->phase = COORD_STOPPING;
    c->stop_time = tl_now();
    coord_log(c, "%s: asking the workers to stop at the next step; re-run the same command to "
                 "resume",
              strsignal(signum));
    coord__send_stop(c, TLSWEEP__STOP__REASON__PREEMPTED);
    coord__check_finished(c);
}

int coord_stop_unstarted(msg_link *l)
{
    Tlsweep__Stop st = TLSWEEP__STOP__INIT;
    st.reason = TLSWEEP__STOP__REASON__ABORT;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_STOP;
    env.stop = &st;
    int abandoned = 0;
    for (int r = 1; r < msg_link_size(l); r++)
        if (msg_link_send(l, r, &env, NULL))
            abandoned = 1;
    return abandoned;
}

/* Temporaries of writers killed mid-write (tl_atomic_open's names): out/
 * and its checkpoints are this run's alone while it holds the journal's
 * lock; the feature caches of a job array's slices are shared, so there
 * only old ones go (a live writer's file changes as it writes). */
#define SHARED_TMP_AGE_S 3600.0

static int remove_stale_tmp(coord *c, tl_err *e)
{
    char ck[4200];
    snprintf(ck, sizeof ck, "%s/checkpoints", c->out);
    const char *dirs[3] = {c->out, ck, c->cache_dir};
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        size_t n = 0;
        int rc = tl_remove_stale_tmp(dirs[i], i == 2 && c->o->n_slices > 0 ? SHARED_TMP_AGE_S : 0,
                                     &n, e);
        if (rc)
            return rc;
        total += n;
    }
    if (total)
        coord_log(c, "warning: removed %zu temporar%s left by an interrupted run in %s", total,
                  total == 1 ? "y" : "ies", c->out);
    return 0;
}

/* The journal's last Start record names the sweep that runs on out/; a
 * different sweep would mix its results and best.tlm with that one's.
 * With --force it goes on: trials whose key is unchanged stay finished,
 * except the best of them, which runs again (*rerun_best), since best.tlm
 * may hold a trial of the other sweep. */
static int check_same_sweep(coord *c, const char *hex, int *rerun_best, tl_err *e)
{
    if (!c->start_sha[0] || !strcmp(c->start_sha, hex))
        return 0;
    if (!c->o->force)
        return tl_errf(e, TL_EINVAL,
                       "%s was started by another sweep (%s, sha256 %.12s, this one %.12s); "
                       "run it with --force to go on there anyway, or choose another out:",
                       c->out, c->start_file[0] ? c->start_file : "?", c->start_sha, hex);
    coord_log(c, "warning: --force: %s was started by another sweep (%s); finished trials of "
                 "the same configuration are kept, the best of them runs again for best.tlm",
              c->out, c->start_file[0] ? c->start_file : "?");
    *rerun_best = 1;
    return 0;
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

void coord__check_finished(coord *c)
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
    /* asha: a result processed after its worker was given nothing may have
     * qualified a trial for the next rung */
    if (coord__asha_promote(c, 0) >= 0) {
        coord__schedule(c);
        return;
    }
    /* every trial done or failed */
    coord__search_finish(c);
    c->phase = COORD_STOPPING;
    coord__send_stop(c, TLSWEEP__STOP__REASON__FINISHED);
    coord__forget_workers(c);
    shut_down(c);
}

/* A slice of a job array: its own journal and checkpoints under
 * out/slices/I (in outbuf), the feature caches shared in out/cache. */
static int open_slice(coord *c, char *outbuf, size_t outlen, tl_err *e)
{
    const coord_opts *o = c->o;
    const sweep *s = c->s;
    c->out = s->out;
    snprintf(c->cache_dir, sizeof c->cache_dir, "%s/cache", s->out);
    if (o->n_slices > 0) {
        /* a rung's decisions need every trial's result, in one journal */
        if (sweep_has_rungs(s))
            return tl_errf(e, TL_EINVAL, "%s: --slice: search method %s decides on all the trials' "
                           "results together; a job array (--slice, merge) supports methods grid "
                           "and random (run it as one job, e.g. srun over all the ranks)",
                           s->file ? s->file : "sweep", sweep_search_name(s->search));
        if (o->slice < 0 || o->slice >= o->n_slices)
            return tl_errf(e, TL_EINVAL, "slice %d of %d: expected 0 <= slice < %d", o->slice,
                           o->n_slices, o->n_slices);
        snprintf(outbuf, outlen, "%s/slices/%d", s->out, o->slice);
        c->out = outbuf;
        c->n_mine = 0;
        for (size_t i = 0; i < s->n_trials; i++) {
            if ((int)(i % (size_t)o->n_slices) != o->slice)
                c->trials[i].st = TR_OTHER;
            else
                c->n_mine++;
        }
    }
    return 0;
}

/* out/, its journal replayed, the sweep checked against the one that
 * started out/, the Start record, the feature-cache groups: from here on,
 * outputs exist. A failed write of the journal is COORD_EXIT_IO in *status. */
static int open_out(coord *c, int *status, tl_err *e)
{
    const coord_opts *o = c->o;
    const sweep *s = c->s;
    int rc;
    char p[4200];
    snprintf(p, sizeof p, "%s/checkpoints", c->out);
    if ((rc = tl_mkdir_p(c->out, 0755, e)) || (rc = tl_mkdir_p(c->cache_dir, 0755, e)) ||
        (rc = tl_mkdir_p(p, 0755, e)))
        return rc;
    snprintf(p, sizeof p, "%s/journal", c->out);
    size_t dropped = 0;
    if ((rc = journal_open(&c->journal, p, o->repair ? JOURNAL_REPAIR : 0, coord__replay, c,
                           &dropped, e))) {
        if (c->err.code) /* the coord__replay's own failure */
            *e = c->err;
        return rc;
    }
    if (dropped)
        coord_log(c, "warning: journal: %zu bytes after the last whole record cut off (%s); "
                     "what they recorded runs again",
                  dropped, p);
    unsigned char digest[SHA256_DIGEST_SIZE];
    char hex[65];
    sha256(o->sweep_text, o->sweep_len, digest);
    sha256_hex(digest, hex);
    int rerun_best = 0;
    if ((rc = check_same_sweep(c, hex, &rerun_best, e)) || (rc = remove_stale_tmp(c, e)))
        return rc;
    /* records cut by --repair may have held the best result, whose model
     * best.tlm holds while the replayed best is another trial's */
    if (o->repair && dropped && c->best >= 0) {
        coord_log(c, "warning: --repair: the journal was cut; %s, the best trial kept, runs "
                     "again for best.tlm", s->trials[c->best].id);
        rerun_best = 1;
    }
    if (rerun_best &&
        (rc = coord__rerun_best(c, o->repair && dropped ? "--repair" : "--force", e))) {
        *status = COORD_EXIT_IO; /* as for the Start record below */
        return rc;
    }
    if ((rc = coord__write_sweep_copy(c, e)))
        return rc;
    if (c->resumed)
        coord_log(c, "resuming %s: %d of %d trials already finished", c->out, c->resumed,
                  c->n_mine);
    Tlsweep__JournalStart js = TLSWEEP__JOURNAL_START__INIT;
    js.sweep_file = s->file;
    js.sweep_sha256 = hex;
    js.trials = (uint32_t)s->n_trials;
    js.ranks = (uint32_t)msg_link_size(c->l);
    js.tlsweep_version = TLSWEEP_VERSION;
    js.resumed_trials = (uint32_t)c->resumed;
    /* where the journal's lock can be tested (coord_status.c) */
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0)
        js.host = host;
    js.pid = (uint32_t)getpid();
    Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
    rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_START;
    rec.start = &js;
    if ((rc = coord__journal_put(c, &rec, 1, e))) {
        *status = COORD_EXIT_IO;
        return rc;
    }
    if ((rc = coord__prepare_groups(c, e)))
        return rc;
    coord_log(c, "%s: %d trials on %d worker%s, %zu images, out: %s", s->name, c->n_mine,
              c->n_workers, c->n_workers == 1 ? "" : "s", c->ix.n_items, c->out);

    return 0;
}

double coord__keepalive_s(const coord *c)
{
    return c->o->keepalive_s > 0 ? c->o->keepalive_s : COORD_KEEPALIVE_S;
}

/* The status timer's tick: workers' silence, the progress line, the
 * journal's keepalive, then the report rewritten when there is news or
 * its keepalive is due (coord_live.c). */
static void on_status_tick(uv_timer_t *h)
{
    coord__on_status(h);
    coord__journal_workers_tick(h->data, tl_now());
    coord__live_report(h->data, tl_now());
}

/* The libuv loop until every worker has stopped: the link's timer and
 * wake-up, SIGINT/SIGTERM/SIGUSR1, the status line. */
static void run_loop(coord *c)
{
    uv_loop_init(&c->loop);
    uv_timer_init(&c->loop, &c->poll_timer);
    uv_timer_init(&c->loop, &c->status_timer);
    uv_async_init(&c->loop, &c->async, coord__on_async);
    c->poll_timer.data = c->status_timer.data = c->async.data = c;
    static const int sigs[3] = {SIGINT, SIGTERM, SIGUSR1};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&c->loop, &c->sig[i]);
        c->sig[i].data = c;
        uv_signal_start(&c->sig[i], on_signal, sigs[i]);
    }
    msg_link_set_notify(c->l, coord__notify, &c->async);
    uv_timer_start(&c->poll_timer, coord__on_poll, 1, 1);
    uv_timer_start(&c->status_timer, on_status_tick, 1000, 1000);
    /* successive_halving: a rung completed by the last run's last result,
     * its decisions not journaled yet (a failure stops the run, resumably) */
    coord__search_decide(c);
    coord__check_finished(c); /* a fully resumed sweep has nothing to do */
    uv_run(&c->loop, UV_RUN_DEFAULT);
    msg_link_set_notify(c->l, NULL, NULL);
    uv_loop_close(&c->loop);

}

/* After the loop: the Stop record, results, report and leaderboard, and
 * the exit status (the first failure stands). */
static int finish(coord *c, tl_err *e)
{
    const sweep *s = c->s;
    int status;
    coord_progress_clear(c);
    Tlsweep__JournalStop jst = TLSWEEP__JOURNAL_STOP__INIT;
    jst.kind = c->outcome == COORD_FAILED        ? TLSWEEP__JOURNAL_STOP__KIND__FAILED
               : c->outcome == COORD_INTERRUPTED ? TLSWEEP__JOURNAL_STOP__KIND__INTERRUPTED
                                                 : TLSWEEP__JOURNAL_STOP__KIND__FINISHED;
    jst.message = c->outcome == COORD_FAILED ? c->err.msg : "";
    Tlsweep__JournalRecord srec = TLSWEEP__JOURNAL_RECORD__INIT;
    srec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_STOP;
    srec.stop = &jst;
    /* a failed write of the Stop record or of the results ends an
     * otherwise good run with COORD_EXIT_IO; after a failure, the first
     * one stands (and the journal takes nothing more after a store one) */
    coord__journal_workers(c, 0); /* how each worker ended: stopped (idle) or LOST */
    tl_err je = {0};
    if (coord__journal_put(c, &srec, 1, &je) && c->outcome != COORD_FAILED) {
        c->outcome = COORD_FAILED;
        c->store_failed = 1;
        c->err = je;
    }
    tl_err oe = {0};
    if (coord_write_results(c, &oe)) {
        if (c->outcome != COORD_FAILED) {
            c->outcome = COORD_FAILED;
            c->store_failed = 1;
            c->err = oe;
        } else {
            coord_log(c, "warning: %s", oe.msg);
        }
    } else if (report_write(c->out, &oe)) {
        coord_log(c, "warning: %s", oe.msg);
    }
    coord_leaderboard(c);
    coord_log(c, "report: %s/report.html", c->out);
    if (c->outcome == COORD_FAILED) {
        *e = c->err;
        status = c->store_failed ? COORD_EXIT_IO : 1;
    } else if (c->outcome == COORD_INTERRUPTED) {
        if (c->err.msg[0]) /* why, when not a signal (a silent worker) */
            *e = c->err;
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
    return status;
}

int coord_run(coord_opts *o, msg_link *l, tl_err *e)
{
    coord cc, *c = &cc;
    memset(c, 0, sizeof *c);
    c->o = o;
    c->s = o->s;
    c->l = l;
    c->progress.tty = isatty(2) && !o->quiet;
    int status = 1, looped = 0;
    const sweep *s = c->s;
    char outbuf[4000];

    if (coord__state_init(c, o->index, msg_link_size(l) - 1, e))
        goto out;
    /* a worker silent in the middle of a message is given up on as soon */
    msg_set_chunk_timeout((int)(s->worker_timeout > 0 ? s->worker_timeout * 1000 : 60000), NULL);
    if (c->n_workers < 1) {
        tl_errf(e, TL_EINVAL, "coordinator: no workers (the link has %d rank)", msg_link_size(l));
        goto out;
    }
    if (open_slice(c, outbuf, sizeof outbuf, e) || open_out(c, &status, e))
        goto out;
    looped = 1;
    run_loop(c);
    status = finish(c, e);
out:
    if (!looped && coord_stop_unstarted(l))
        o->abandoned = 1;
    if (c->journal)
        journal_close(c->journal, NULL);
    coord__free_state(c);
    return status;
}
