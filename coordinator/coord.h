/* The coordinator of a sweep (rank 0, or the main thread of a
 * single-process run): owns out/, hands tasks to workers over a msg_link,
 * journals what comes back, writes checkpoints, the feature caches,
 * best.tlm and the summaries, and prints progress.
 *
 * Its loop is libuv's: a timer drains the link (MPI probes are
 * non-blocking; a local link also wakes it through uv_async), signal
 * handles turn SIGINT/SIGTERM/SIGUSR1 into a Stop for every worker, a
 * status timer prints progress and names workers that fell silent (one
 * silent for the sweep's worker_timeout stops the run, resumably), and
 * large files are written on libuv's thread pool.
 *
 * out/ holds:
 *   journal               append-only records (common/store/journal.h, JournalRecord)
 *   sweep.yaml            the sweep text of the last run
 *   cache/<key>.features  frozen backbone features, one file per cache key
 *   checkpoints/<id>.ckpt the last epoch of every unfinished trial (<id>.ckpt.bad: one
 *                         that could not be resumed from, moved aside; the trial restarted)
 *   best.tlm              the best trial's model so far
 *   results.csv, results.json, report.html (results.json and the page are
 *                         also rewritten during the run: coord_live.c)
 *
 * A re-run on the same out/ resumes: finished trials (journaled results
 * whose key matches: the same configuration and dataset index) are
 * skipped, unfinished ones continue from their checkpoint when it reads
 * back whole and is theirs (else they restart, with a warning), caches
 * whose key, dataset fingerprint and checksums match are reused (else
 * they are computed again, with a warning). */
#ifndef TLSWEEP_COORD_H
#define TLSWEEP_COORD_H

#include <stddef.h>

#include "common/data/data.h"
#include "common/base/err.h"
#include "common/msg/msg_link.h"
#include "common/sweep/sweep.h"

/* Exit statuses (docs/failures.md): a file the run records its progress in
 * could not be written (journal, best.tlm, feature cache, results files;
 * EX_IOERR): nothing that is not durable was recorded, and a re-run once
 * the storage is fixed redoes the rest; an interrupted run that a re-run
 * resumes (EX_TEMPFAIL). */
enum { COORD_EXIT_IO = 74, COORD_EXIT_INTERRUPTED = 75 };

typedef struct {
    const sweep *s;
    const char *sweep_text;     /* the file's bytes, sent to workers */
    size_t sweep_len;
    const data_index *index;    /* the dataset as coord_preflight indexed it (borrowed) */
    int threads;                /* engine threads per worker for Setup; 0: each worker's own */
    int stop_grace_s;           /* after a signal, wait this long for workers; 0: 30 */
    double keepalive_s;         /* between the signs of life a running sweep leaves in the
                                 * journal and the report; 0: COORD_KEEPALIVE_S (tests
                                 * shorten it) */
    int quiet;                  /* no progress line */
    int slice, n_slices;        /* n_slices > 0: run trials i with i % n_slices == slice */
    int force;                  /* run even if out/ was started by another sweep */
    int repair;                 /* cut a journal damaged in the middle (JOURNAL_REPAIR) */
    int rank_groups;            /* workers are MPI ranks: a trial may be trained by a group
                                 * of them (ranks_per_trial); 0: one process, one worker */
    int abandoned;              /* out: workers left behind (did not stop in time, could not
                                 * be told to stop, fell silent, sent a bad message):
                                 * under MPI, abort them */
} coord_opts;

/* Checks that the sweep can start (this host can run its precision and
 * engine, sweep_check_host; weights readable; dataset indexable) before
 * anything is created, so a bad setup leaves no output. The index
 * (data_index_free it) is the one coord_run goes on with; s's trial keys
 * are bound to its fingerprint (sweep_bind_data), as coord_run requires. */
int coord_preflight(sweep *s, data_index *ix, tl_err *e);

/* Runs the sweep to the end. Returns the process exit status: 0 every
 * trial finished, 1 a failure (e has the line; what finished is kept),
 * COORD_EXIT_IO a failed write of the journal, best.tlm, a feature cache or
 * the results (e has the line), COORD_EXIT_INTERRUPTED after a signal, or
 * when a worker fell silent for worker_timeout (e then has the line naming
 * its rank and host, and o->abandoned is set: that rank must be aborted, it
 * will not answer). Whatever the status, every worker rank has been sent a
 * Stop (or o->abandoned is set), also when the run fails before it starts:
 * a journal another run holds, a journal damaged in the middle (unless
 * o->repair), an out/ started by another sweep (unless o->force). */
int coord_run(coord_opts *o, msg_link *l, tl_err *e);

/* A run that ends before coord_run could start it (a sweep that does not
 * load, a setup error): every worker rank waits for a Setup or a Stop,
 * whatever it sent, so each is sent a Stop (ABORT). Returns 1 when one
 * could not be told (that rank waits: end the job, MPI_Abort), else 0. */
int coord_stop_unstarted(msg_link *l);

/* `tlsweep merge OUT`: the slices of a job array (OUT/slices/N) as one
 * sweep: leaderboard, results.csv/json and best.tlm in OUT. Returns the
 * exit status: 0 every trial finished, 1 an error or trials missing. */
int coord_merge(const char *out, int quiet, tl_err *e);

#endif
