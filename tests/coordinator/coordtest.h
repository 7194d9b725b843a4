/* The harness of the coordinator tests, shared by test_coord_loop.c and
 * test_coord_msgs.c: coord_run and worker_main (or fake workers speaking
 * through the msg API) in one process over an in-memory link.
 *
 * The data (setup/teardown, a cmocka group's): three classes told apart by
 * colour, a MobileNetV2 alpha 0.35 at 32x32 with random weights calibrated
 * as tests/cli/tiny_model.c does, all under one /tmp directory (root). The
 * grid of write_sweep: fine_tune and frozen x 2 learning rates, EPOCHS
 * epochs, `threads: 1`, so a run is bit-identical to any other.
 *
 * Every wait is bounded: watchdog() arms a SIGALRM per case that ends the
 * program (exit 3, naming the case) instead of letting a hang block ctest,
 * and run() fails a case whose threads do not leave within LEAVE_S seconds
 * of coord_run's return. */
#ifndef TLSWEEP_TESTS_COORDTEST_H
#define TLSWEEP_TESTS_COORDTEST_H

#include <pthread.h>
#include <stdatomic.h>

#include "common/msg/msg.h"
#include "common/msg/msg_link.h"
#include "coordinator/coord.h"
#include "testutil.h"
#include "tlsweep.pb-c.h"

#define SIDE 32
#define N_TRIALS 4
#define EPOCHS 2
/* seconds: a whole run under the sanitizers on a shared machine, and the
 * grace for a thread to leave once coord_run has returned */
#define RUN_WATCHDOG_S 400
#define FAST_WATCHDOG_S 60
#define LEAVE_S 20

/* paths under root: the dataset, the tiny model, a torn copy of it */
extern char *root, *train_dir, *test_dir, *weights, *broken_weights;
/* YAML lines written into every sweep before out: ("" by default) */
extern const char *sweep_extra;
/* set when coord_run has returned: fake workers that hang wait for it */
extern atomic_int run_over;

void watchdog(const char *what, unsigned seconds);
int setup(void **state);
int teardown(void **state);

/* root/<name>.yaml, its out: root/<out>; the sweep file's path, malloc'd.
 * modes: the grid's mode list, NULL for the N_TRIALS grid. */
char *write_sweep_modes(const char *name, const char *out, const char *wpath,
                        const char *modes);
char *write_sweep(const char *name, const char *out, const char *wpath);
char *out_path(const char *out, const char *rel);

/* ---- peers: real worker threads and fakes ---- */

typedef struct peer peer;
typedef void (*peer_fn)(peer *p);

struct peer {
    msg_link *l;
    peer_fn fn;              /* NULL: worker_main */
    pthread_t th;
    int rc;                  /* worker_main's, or a fake's: 0 as scripted */
    tl_err e;
    int stop_reason;         /* fakes: the Stop received, -1 none */
};

/* The next envelope within LEAVE_S seconds, or NULL. */
Tlsweep__Envelope *fake_recv(peer *p);
/* Waits (bounded) for the coordinator's Stop, skipping anything else. */
void fake_await_stop(peer *p);
/* Sends this rank's Hello, its protocol version moved by protocol_delta. */
int fake_hello(peer *p, int protocol_delta);
/* Answers every Task with a TrialResult FAILED saying message, after
 * heartbeating through busy_s seconds of pretended work, until the Stop
 * (rc 0) or silence (rc -1). The first task's trial id is kept in
 * fake_first_trial (clear it first). */
void fake_fail_tasks(peer *p, const char *message, double busy_s);
extern char fake_first_trial[128];
/* Called by fake_fail_tasks before it answers its nth task (from 0), when
 * set: what a case looks at while the run goes on. */
extern void (*fake_before_answer)(peer *p, const Tlsweep__Task *t, int nth);

/* Sits between the coordinator and one worker (two local links), forwards
 * both ways and counts the worker's results. With stop_at_checkpoint, at
 * the worker's first Checkpoint it raises SIGTERM and holds the worker
 * inside that send (the link's notify runs on the sending thread) until
 * the coordinator's Stop is in the worker's queue: the stop then lands in
 * the trial's next epoch whatever the speed of the machine, instead of
 * racing a trial of a tenth of a second. */
typedef struct {
    int stop_at_checkpoint;
    msg_link *up;            /* the worker's rank on the coordinator's link */
    msg_link *down;          /* rank 0 of the worker's pair */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long sent, forwarded;    /* worker -> coordinator */
    int triggered, stop_forwarded;
    atomic_int quit;
    int done_results;        /* TrialResults DONE forwarded */
    double raised_at;        /* tl_now() of the raise, 0 none */
    int gate_timeouts;       /* a gate that opened by its bound, not by the relay */
} relay;

typedef struct {
    int n_peers;
    peer_fn fns[2];          /* per worker rank; NULL: a real worker */
    int relayed;             /* ranks 1..n_peers talk through relays[rank - 1] */
    int stop_at_checkpoint;  /* rank 1's relay raises SIGTERM (relayed runs) */
    int stop_grace_s;        /* coord_opts's; 0: LEAVE_S */
    double keepalive_s;      /* coord_opts's */
    int force, repair;       /* coord_opts's */
    int rank_groups;         /* coord_opts's: the peers are ranks that may form groups */
    peer peers[2];
    relay relays[2];
    tl_err e;                /* coord_run's */
    double seconds;
    int abandoned;           /* coord_opts's, after the run */
} run_ctx;

/* Loads and preflights yaml as `tlsweep run` does, then runs coord_run
 * against r->n_peers threads over one local link; every thread must leave
 * within LEAVE_S seconds of coord_run's return. Returns coord_run's status. */
int run(const char *yaml, run_ctx *r);

/* ---- what a run left in out/ ---- */

/* results.csv without its last column (seconds), in leaderboard order */
char *board(const char *out);
typedef struct {
    int done[N_TRIALS];              /* DONE results journaled */
    int other[N_TRIALS];             /* any other result */
    int epochs[N_TRIALS][EPOCHS];    /* epoch reports journaled */
    int starts;
    int resets[N_TRIALS];            /* JournalReset records: the trial ran again */
    int bad;
    /* JournalTask records: how many, and the last one's from and until */
    int tasks[N_TRIALS];
    uint32_t task_from[N_TRIALS], task_until[N_TRIALS];
    int untasked_epochs;             /* epochs with no task of theirs since the run's Start */
    int task_ranks_differ;           /* epochs whose ranks are not their task's */
    /* JournalWorkers records: how many, and what they say merged by rank
     * (a record names every worker or only those that changed) */
    int workers_records;
    int workers_partial;             /* records naming fewer workers than were known */
    int worker_state_of[64];         /* by rank: its last state + 1, 0 never named */
    int workers_n;                   /* ranks named */
    int workers_state[6];            /* ranks per WorkerSeen state, as last named */
    int workers_lost_rank;           /* a rank last said LOST, 0 none */
    int workers_bad;                 /* entries with another host, no hearing, or one later
                                      * than the record (any record) */
} journal_counts;

journal_counts scan_journal(const char *out);
char *read_text(const char *out, const char *rel);
int count_checkpoints(const char *out);

#endif
