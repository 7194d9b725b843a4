/* The coordinator's state and internals, shared by its files:
 *   coord.c          coord_run: the libuv loop, failing and stopping, finishing
 *   coord_setup.c    preflight, cache groups and their keys, state, out/ layout
 *   coord_journal.c  journal records and their replay on resume
 *   coord_sched.c    tasks to free workers; results taken in order
 *   coord_msgs.c     what workers send (Hello, features, results, errors)
 *   coord_files.c    checkpoints, best.tlm, feature caches on libuv's pool
 *   coord_out.c      progress line, leaderboard, results files
 *   coord_merge.c    the slices of a job array into one run
 *   coord_search.c   rungs of successive_halving and asha: rows, promotions
 *   coord_live.c     results.json and report.html rewritten during the run
 *   coord_status.c   `tlsweep status`: a sweep's state read from its journal */
#ifndef TLSWEEP_COORD_INT_H
#define TLSWEEP_COORD_INT_H

#include <stdint.h>

#include <uv.h>

#include "common/data/data.h"
#include "common/store/journal.h"
#include "common/sweep/search.h"
#include "coordinator/coord.h"
#include "tlsweep.pb-c.h"

/* TR_OTHER: another slice's trial (job arrays); not run, not reported */
typedef enum { TR_PENDING, TR_RUNNING, TR_FINISHING, TR_DONE, TR_FAILED, TR_OTHER } ctrial_state;

typedef struct {
    int seen;
    float loss, accuracy, val_loss, val_accuracy;
    double seconds;
    float images_per_s;
    int32_t *ranks;             /* the ranks that trained it, the leader first (malloc'd);
                                 * NULL: not recorded (a journal from before groups) */
    int n_ranks;
    double comm_seconds;        /* of seconds, the leader's wait in the group's sums */
} cepoch;

typedef struct {
    ctrial_state st;
    Tlsweep__TrialResult *res;  /* DONE (and FAILED when journaled): no model bytes */
    cepoch *hist;               /* n_hist = the trial's epochs, by epoch - 1 */
    int n_hist;
    int epochs_done;            /* highest epoch reported */
    int cur_epoch;
    uint64_t step, steps;       /* progress inside the current epoch */
    int worker;
    int slice;                  /* merge: the slice whose journal finished it */
    double task_seconds;        /* its tasks that ended with a result, all runs (journal) */
    double started;
    int32_t *group;             /* the ranks of its last task, the leader first (malloc'd) */
    int n_group;
    int yielding;               /* its leader was sent Stop YIELD, no answer yet */
    struct {
        int writing;                /* a write of this trial's checkpoint is on the pool */
        Tlsweep__Envelope *next;    /* the newest one that came meanwhile, written after */
        int checked;                /* read back whole once before a resume (coord_sched.c) */
        uint32_t epoch;             /* epochs the file on disk holds (read back or written) */
    } ckpt;
} ctrial;

typedef enum { CG_NONE, CG_EXTRACTING, CG_WRITING, CG_READY } cgroup_state;

typedef struct {
    cgroup_state state;
    uint64_t key;               /* the cache file's (coord.c cache_key) */
    /* what runs, for people: the group's text with the preprocessing the
     * weights file records (coord.c group_label); "" when not known */
    char label[600];
    char path[4096];
    float *x;                   /* (n_items, dim) while being gathered */
    uint8_t *ok;
    size_t dim;
    size_t shard_size, n_shards, next_shard, shards_done;
    uint64_t run_images;        /* forwarded in this run */
    uint64_t forward_images;    /* over all runs (journal) */
    int extractions;            /* journaled extraction passes */
    double seconds;             /* their wall time */
    uint64_t skipped;
    double t0;
} cgroup;

/* A worker's life as the coordinator sees it:
 *   CW_NEW --Hello checked, Setup sent--> CW_IDLE <--task over-- CW_BUSY
 *   CW_IDLE --Task--> CW_BUSY --Stop--> CW_STOPPING --its answer--> CW_STOPPED
 *   CW_NEW, CW_IDLE --Stop--> CW_STOPPED (an idle worker leaves at once)
 * and any state --failure, second signal, grace over--> CW_STOPPED, when
 * the coordinator no longer waits for it. */
typedef enum { CW_NEW, CW_IDLE, CW_BUSY, CW_STOPPING, CW_STOPPED } cworker_state;
/* the kind of its last task (what a Progress or a stopped answer is about) */
typedef enum { CW_TASK_NONE, CW_TASK_EXTRACT, CW_TASK_TRAIN } cworker_task;

typedef struct {
    int rank;
    char host[64];
    int host_id;                /* equal ids: the same node (the first worker seen on it) */
    unsigned threads;
    int hello;                  /* its Hello came (coord_msgs.c checks the order) */
    int in_setup;               /* sent its Setup, no sign since that it is over (indexing) */
    cworker_state state;
    uint64_t task;
    cworker_task kind;
    int trial, group;
    size_t shard_lo, shard_hi;  /* EXTRACT: the image ids of the task, [lo, hi) */
    uint64_t answered;          /* EXTRACT: ids answered so far (rows and skipped) */
    uint32_t epoch;             /* TRAIN: the last epoch it reported in this task, 0 none */
    int yield_asked;            /* TRAIN: its group was asked to YIELD (an answer YIELDED fits) */
    int reserved;               /* idle, kept for this trial's next group (auto); -1 none */
    double last_heard;
    int silent_warned;
    int lost;                   /* given up on: silent, or its link failed (journaled LOST) */
    int jw_state, jw_trial;     /* as the last JournalWorkers naming it said; jw_state -1: never */
} cworker;

/* The run's life: RUNNING until the trials are done, a failure or a
 * signal; STOPPING while the workers answer their Stop and writes drain;
 * CLOSING once the loop's handles are being closed. */
typedef enum { COORD_RUNNING, COORD_STOPPING, COORD_CLOSING } coord_phase;
/* How it ends; ordered, a run's outcome only rises (a failure after a
 * signal is a failure). */
typedef enum { COORD_FINISHED, COORD_INTERRUPTED, COORD_FAILED } coord_outcome;

typedef struct {
    coord_opts *o;
    const sweep *s;
    msg_link *l;
    const char *out;
    char cache_dir[4096];
    data_index ix;
    int have_ix;
    uint64_t fingerprint;
    journal *journal;

    ctrial *trials;
    sweep_rungs rungs;          /* one rung (the epochs) unless the search has rungs */
    sweep_srow *srows;          /* successive_halving / asha: a row per trial, else NULL */
    cgroup *groups;
    cworker *workers;
    int n_workers, hellos;
    Tlsweep__Envelope **queue;  /* finished results waiting for best.tlm */
    int n_queue;
    int best;                   /* trial index, -1: none */
    int best_writing;           /* best.tlm is being written; results wait in queue */
    int writes;                 /* file writes on the thread pool */
    uint64_t seq, task_seq, group_seq;
    int resumed, restarts, n_failed;
    int n_mine;                 /* trials of this run (its slice) */
    int replay_slice;
    char **bad;                 /* distinct bad-image lines */
    size_t n_bad, cap_bad;

    char start_sha[65];         /* the last Start record's sweep digest (journal), "" none */
    char start_file[256];       /* and its sweep file */

    coord_phase phase;
    coord_outcome outcome;
    int store_failed;           /* the failure is a write of out/'s records: COORD_EXIT_IO */
    double t0, stop_time;       /* start; the first signal, 0: none (the grace counts from it) */
    double status_at;           /* the status timer's last run (a stalled loop blames no worker) */
    tl_err err;                 /* the failure (COORD_FAILED) */

    uv_loop_t loop;
    uv_timer_t poll_timer, status_timer;
    uv_async_t async;
    uv_signal_t sig[3];

    double workers_at;          /* tl_now() of the last JournalWorkers record, 0 none */
    double workers_full_at;     /* and of the last naming every worker */

    struct {
        int mid_run;            /* results.json is being written mid-run: state running */
        int writing;            /* a mid-run write is on the thread pool */
        double at;              /* tl_now() of the last mid-run write, 0 none */
        int ended;              /* trials done or failed then */
        int epochs;             /* epochs reported then */
    } live;

    struct {
        int tty;                /* a live line on a terminal, else a line every 30 s */
        int shown;              /* the live line is on screen (cleared before a log line) */
        double at;              /* when it was last printed */
    } progress;
} coord;

void coord_log(coord *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The sweep fails (the first failure's code and line are what coord_run
 * returns): e is logged as "error: ..." here, the workers are told to stop.
 * Callers decide and call this once; they do not log the error themselves. */
void coord_fail(coord *c, const tl_err *e);
/* coord_fail for a failed write of the journal, best.tlm, a feature cache
 * or the results: the run ends with COORD_EXIT_IO, and nothing more is
 * journaled (what is, is durable; a re-run redoes the rest). After an
 * earlier failure of another kind that one stands: the exit stays 1 and
 * the journal goes on taking records (the write that failed is not in
 * it; its absence is what the re-run redoes). Once the journal refuses,
 * later store failures are knock-ons of the first: not logged again. */
void coord__fail_store(coord *c, const tl_err *e);
void coord_failf(coord *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int coord_better(const coord *c, int a, int b);
/* Cache group g as people read it: backbone|weights|size|the preprocessing
 * that runs (the weights file's), or the group's text when that is unknown. */
const char *coord_group_label(const coord *c, int g);
void coord_consider_best(coord *c, int i);
/* The rung trial i reached (0-based), -1: none or no rungs. */
int coord_rung_reached(const coord *c, int i);
/* Why done trial i trained no further: "epochs", "early_stopping" or
 * "rung" (stopped at a rung, not promoted). */
const char *coord_stop_reason(const coord *c, int i);
/* The epoch after which done trial i stopped early or at a rung; 0 when it
 * ran all its epochs. */
uint32_t coord_stopped_epoch(const coord *c, int i);

/* seconds between the signs of life a running sweep leaves for readers
 * (coord_status.c): a JournalWorkers record and results.json with
 * report.html rewritten; under the 60 s promised them, less the status
 * timer's 1 s tick */
#define COORD_KEEPALIVE_S 55.0
/* the least time between two JournalWorkers records for changes alone */
#define COORD_WORKERS_MIN_S 2.0
/* a keepalive names every worker up to this many workers; above, only one
 * keepalive in n/COORD_WORKERS_FULL does (64 workers: 300 kB an hour) */
#define COORD_WORKERS_FULL 64
/* coord_opts's keepalive_s, else COORD_KEEPALIVE_S */
double coord__keepalive_s(const coord *c);

/* coord_out.c */
int coord_count(const coord *c, ctrial_state st);
void coord_progress(coord *c, double now);
void coord_progress_clear(coord *c);
int coord_write_results(coord *c, tl_err *e);
void coord_leaderboard(coord *c);


/* ---- internals shared by the coordinator's files (prefix coord__) ---- */

typedef enum {
    WRITE_CKPT,        /* checkpoints/<trial>.ckpt from a Checkpoint envelope */
    WRITE_BEST,        /* best.tlm: the model bytes of a TrialResult */
    WRITE_FCACHE,      /* cache/<key>.features from a group's gathered features */
} write_kind;

/* coord.c (the loop, failing and stopping, finishing) */
void coord__check_finished(coord *c);
void coord__note_failure(coord *c, const tl_err *e);
void coord__forget_workers(coord *c);
void coord__send_stop(coord *c, Tlsweep__Stop__Reason reason);
void coord__task_over(cworker *k);
/* coord_journal.c (journal records and their replay) */
int coord__journal_put(coord *c, Tlsweep__JournalRecord *rec, int sync, tl_err *e);
int coord__journal_result(coord *c, const Tlsweep__TrialResult *r, tl_err *e);
/* A training task of trial i sent to its group (t->group, the leader
 * first), resuming from epoch `from` (0: from scratch), until `until`.
 * Informational (a resume skips it): appended without an fsync of its
 * own; the epoch that follows syncs it. */
int coord__journal_task(coord *c, int i, uint32_t from, uint32_t until, tl_err *e);
/* The workers as last heard (JournalWorkers), without an fsync of its
 * own: every worker when `all`, else those whose state or trial changed
 * since a record last named them (possibly none: the keepalive alone). A
 * failed append fails the run as any journal write does, except once the
 * loop is closing (the Stop record's write decides then). */
void coord__journal_workers(coord *c, int all);
/* The status tick's part: the changes a second or two after they happen
 * (COORD_WORKERS_MIN_S apart), and the keepalive (coord_journal.c). */
void coord__journal_workers_tick(coord *c, double now);
int coord__find_trial(const coord *c, uint32_t index, uint64_t key);
/* Whether DONE result r's figures fit trial i (epochs, best epoch, the
 * confusion matrix and class names against its classes), as a worker's
 * message and as a replayed record: 0, or -1 with what is wrong in what. */
int coord__result_figures(const coord *c, int i, const Tlsweep__TrialResult *r, char *what,
                          size_t n);
/* Epoch er of trial t into its history (its ranks copied; -1 out of memory). */
int coord__keep_epoch(ctrial *t, const Tlsweep__EpochReport *er);
Tlsweep__TrialResult *coord__copy_result(const Tlsweep__TrialResult *r);
/* Replays one journal record (a journal_cb): a trial counts in resumed on
 * its move to done, a Reset record sends it back to pending. */
int coord__replay(void *ctx, const void *payload, size_t len);
/* c->best from the finished trials, from scratch. */
void coord__best_again(coord *c);
/* Finished trial i back to pending, its result dropped (nothing journaled). */
void coord__reset_trial(coord *c, int i);
/* The best finished trial runs again, because best.tlm may not hold its
 * model: a Reset record (durable) first, then back to pending, so that an
 * interrupted rerun is not replayed as done. Nothing to do without a best. */
int coord__rerun_best(coord *c, const char *reason, tl_err *e);
/* coord_files.c (checkpoints, best.tlm, feature caches on the thread pool) */
void coord__ckpt_path(const coord *c, int i, char *buf, size_t n);
void coord__queue_write(coord *c, write_kind kind, int index, Tlsweep__Envelope *env, const char *path);
void coord__start_ckpt(coord *c, int i, Tlsweep__Envelope *env);
/* coord_sched.c (tasks to free workers, results in order) */
void coord__schedule(coord *c);
void coord__result_done(coord *c, Tlsweep__Envelope *env);
void coord__process_results(coord *c);
/* Whether k trains trial i now as a member, not its leader. */
int coord__group_member(const coord *c, const cworker *k, int i);
/* A member's or the leader's answer YIELDED frees k: it waits for the
 * trial's next group when idle workers were reserved for it. */
void coord__yielded(coord *c, cworker *k, int i);
/* coord_search.c (successive_halving and asha; all no-ops without rungs) */
int coord__search_init(coord *c, tl_err *e);
void coord__search_free(coord *c);
/* Trial i's row after its result r (a worker's, or replayed). */
void coord__search_result(coord *c, int i, const Tlsweep__TrialResult *r);
/* The epoch trial i's next task trains until (Task.until_epoch), 0: all. */
uint32_t coord__until(const coord *c, int i);
/* Trial i's task is being sent: it enters rung 0 if it had not. */
void coord__search_started(coord *c, int i);
/* Whether pending trial i waits: a promotion whose checkpoint is still
 * being written, or a new asha trial (started only when no promotion is). */
int coord__search_holds(const coord *c, int i);
/* Whether done trial i's checkpoint is of no more use (removed). */
int coord__ckpt_spent(const coord *c, int i);
/* successive_halving: journals and applies the decisions of every rung now
 * complete; how many went on, -1 when the sweep failed. */
int coord__search_decide(coord *c);
/* asha: journals and applies one promotion if one qualifies (capped 0: for
 * a worker with nothing else to do, search.h): the trial, or -1. */
int coord__asha_promote(coord *c, int capped);
void coord__replay_promote(coord *c, const Tlsweep__JournalPromote *p);
/* The sweep finished: checkpoints of trials that ended at a rung go. */
void coord__search_finish(coord *c);
/* results.json's "search" object (a jansson json_t *, new reference). */
struct json_t;
struct json_t *coord__search_json(const coord *c);
/* coord_msgs.c (what workers send; the link and timers) */
void coord__notify(void *ctx);
void coord__on_async(uv_async_t *h);
void coord__on_poll(uv_timer_t *h);
void coord__on_status(uv_timer_t *h);
/* coord_out.c (progress line, leaderboard, results files) */
/* "42s", "3m05s", "2h10m"; "?" when negative or absurd */
void coord__fmt_duration(double s, char *buf, size_t n);
/* "2026-12-07T15:02:11Z" into buf (returned); "-" for 0 */
const char *coord__utc_iso(uint64_t unix_ms, char *buf, size_t n);
/* Writes path atomically (tmp + fsync + rename). */
int coord__write_text(const char *path, const char *text, size_t n, tl_err *e);
/* results.json's text as coord_write_results writes it (malloc'd; NULL:
 * out of memory) */
char *coord__results_json(coord *c);
/* results.csv's text likewise (malloc'd, its length in *n; NULL: out of
 * memory) */
char *coord__results_csv(coord *c, size_t *n);
/* coord_live.c (report.html while the sweep runs, from the status timer) */
void coord__live_report(coord *c, double now);
/* coord_setup.c (preflight, cache groups, state) */
uint64_t coord__cache_key(const sweep *s, int g);
int coord__prepare_groups(coord *c, tl_err *e);
int coord__state_init(coord *c, const data_index *ix, int n_workers, tl_err *e);
void coord__free_state(coord *c);
int coord__write_sweep_copy(coord *c, tl_err *e);

#endif
