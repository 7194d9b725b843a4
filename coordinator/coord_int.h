/* The coordinator's state, shared by coord.c (loop, scheduling) and
 * coord_out.c (progress line, leaderboard, results files). */
#ifndef TLSWEEP_COORD_INT_H
#define TLSWEEP_COORD_INT_H

#include <stdint.h>

#include <uv.h>

#include "common/data/data.h"
#include "common/store/journal.h"
#include "coordinator/coord.h"
#include "tlsweep.pb-c.h"

/* TR_OTHER: another slice's trial (job arrays); not run, not reported */
typedef enum { TR_PENDING, TR_RUNNING, TR_FINISHING, TR_DONE, TR_FAILED, TR_OTHER } ctrial_state;

typedef struct {
    int seen;
    float loss, accuracy, val_loss, val_accuracy;
    double seconds;
    float images_per_s;
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
    double started;
    int ckpt_busy;
    Tlsweep__Envelope *ckpt_next;
} ctrial;

typedef enum { CG_NONE, CG_EXTRACTING, CG_WRITING, CG_READY } cgroup_state;

typedef struct {
    cgroup_state state;
    uint64_t key;               /* the cache file's (coord.c cache_key) */
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

typedef enum { CW_IDLE, CW_EXTRACT, CW_TRAIN } cworker_kind;

typedef struct {
    int rank;
    char host[64];
    unsigned threads;
    int ready;                  /* Hello checked, Setup sent */
    int busy;
    uint64_t task;
    cworker_kind kind;
    int trial, group;
    double last_heard;
    int silent_warned;
    int stop_sent, stopped;
} cworker;

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
    cgroup *groups;
    cworker *workers;
    int n_workers, hellos;
    Tlsweep__Envelope **queue;  /* finished results waiting for best.tlm */
    int n_queue;
    int best;                   /* trial index, -1: none */
    int best_busy, writes;
    uint64_t seq, task_seq;
    int resumed, restarts, done_now, n_failed;
    int n_mine;                 /* trials of this run (its slice) */
    int replay_slice;
    char **bad;                 /* distinct bad-image lines */
    size_t n_bad, cap_bad;

    int stopping, interrupted, failed, closing;
    double t0, stop_time;
    tl_err err;

    uv_loop_t loop;
    uv_timer_t poll_timer, status_timer;
    uv_async_t async;
    uv_signal_t sig[3];

    int tty, progress_shown;
    double progress_at;
} coord;

void coord_log(coord *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void coord_fail(coord *c, const char *msg);
int coord_better(const coord *c, int a, int b);
void coord_consider_best(coord *c, int i);

/* coord_out.c */
int coord_count(const coord *c, ctrial_state st);
void coord_progress(coord *c, double now);
void coord_progress_clear(coord *c);
int coord_write_results(coord *c, tl_err *e);
void coord_leaderboard(coord *c);

#endif
