/* `tlsweep status OUT`: what a running or finished sweep has done, read
 * from OUT/journal and OUT/sweep.yaml without disturbing the coordinator
 * that may be writing them: the journal is read with journal_scan (no
 * lock, no truncation, a read-only open), the sweep copy as a file; on the
 * coordinator's machine a shared lock is tried and let go at once
 * (journal_lock_held) to learn whether it is still there.
 *
 *   coord_status st;
 *   if ((rc = coord_status_read(&st, "runs/demo", now_ms, e)))
 *       return rc;                       // e: one line naming the file
 *   if (st.journal_note[0]) ...          // a torn or damaged tail, said once
 *   coord_status_text(&st, &b);          // or coord_status_json(&st)
 *   coord_status_free(&st);
 *
 * What the journal records decides what can be said: a trial counts as
 * started from the task sent for it (JournalTask; in a journal without
 * them, from its first journaled epoch), the workers by name and state
 * from the last JournalWorkers of the run (without them, only by number:
 * the Start record's ranks). Whether the coordinator still lives is told
 * by the journal's lock on its own machine, elsewhere by the age of the
 * newest record once the run writes the once-a-minute workers records.
 * Records of kinds this build does not know are skipped. */
#ifndef TLSWEEP_COORD_STATUS_H
#define TLSWEEP_COORD_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"
#include "common/base/strbuf.h"

/* The sweep as its journal leaves it: RUNNING while the last run has no
 * Stop record and its coordinator may be at work; LOST when it has none
 * but the coordinator is gone (killed before it could write one: its lock
 * is free on its machine, or its records stopped past
 * COORD_STATUS_SILENT_MS); the others are the last Stop record's kind. */
typedef enum {
    COORD_STATUS_RUNNING,
    COORD_STATUS_FINISHED,
    COORD_STATUS_INTERRUPTED,
    COORD_STATUS_FAILED,
    COORD_STATUS_LOST,
} coord_status_state;

/* A run whose coordinator writes a workers record at least once a minute
 * (its keepalive) and has written nothing for this long has stopped: three
 * missed keepalives. */
#define COORD_STATUS_SILENT_MS 180000u

/* A worker as the run's last JournalWorkers record saw it. */
typedef struct {
    int rank;
    char host[64];
    int state;                   /* Tlsweep__WorkerSeen__State */
    char trial[128];             /* training: its trial's id */
    uint64_t heard_ms;           /* its last message (unix ms), 0 never */
} coord_status_worker;

/* A trial: QUEUED (nothing journaled), STARTED (a task sent or epochs
 * journaled, no result: running, or interrupted mid-trial when the sweep
 * is not running or it was started by an earlier run), DONE, FAILED. */
typedef enum {
    COORD_TRIAL_QUEUED,
    COORD_TRIAL_STARTED,
    COORD_TRIAL_DONE,
    COORD_TRIAL_FAILED,
} coord_trial_state;

typedef struct {
    char id[128];
    int index, epochs;           /* position in the grid; epochs it runs */
    int uses_cache;              /* a head on cached features (its epochs are short) */
    coord_trial_state st;
    int epoch;                   /* the last journaled epoch, 0 none */
    float loss, accuracy, val_loss, val_accuracy; /* of that epoch */
    double epoch_seconds;        /* wall time of its journaled epochs (coord_status.c) */
    int n_epoch_seconds;         /* how many */
    uint64_t epoch_ms;           /* when its last epoch was journaled, and in which run */
    int epoch_run;
    double best_value;           /* DONE: the select metric */
    int rung;                    /* the rung it was last promoted to (a rung search), 0 none */
    int n_ranks;                 /* the ranks of its task or last epoch, 0 not recorded */
    char ranks[96];              /* and which, "1,2,3" (cut with "..." when long) */
    int run;                     /* the run that last sent it or journaled its epoch */
    int starting;                /* its task sent in that run, no epoch of it journaled yet */
    int until_epoch;             /* where its task stops (a rung's end), 0 its last epoch */
} coord_status_trial;

typedef struct {
    char sweep[128];             /* the sweep's name */
    char metric[32];             /* the select metric */
    int goal_max;
    coord_status_state state;
    char stop_message[512];      /* FAILED: the Stop record's line */
    int runs;                    /* Start records */
    int ranks;                   /* the last Start record's (coordinator included) */
    char host[64];               /* and its coordinator's node and pid ("", 0: not recorded) */
    unsigned pid;
    char sweep_file[256];        /* the sweep file it ran ("" not recorded) */
    char lost_why[200];          /* LOST: how that is known */
    uint64_t start_ms;           /* the last Start record's time (unix ms), 0 none */
    uint64_t last_ms;            /* the last record's */
    uint64_t now_ms;             /* when it was read */
    double elapsed_s;            /* this run: start to now (running) or to its last record */
    double total_s;              /* every run, each from its Start to its last record */
    double eta_s;                /* the remaining epochs at the mean journaled epoch time,
                                    over the workers; < 0 when no epoch is journaled */
    int n_done, n_started, n_queued, n_failed;
    int n_running;               /* of the started, those running now (the rest interrupted) */
    coord_status_worker *workers; /* the run's JournalWorkers merged by rank, NULL none */
    int n_workers;
    int workers_records;         /* JournalWorkers records in the last run */
    int best;                    /* index into trials, -1 none */
    coord_status_trial *trials;
    int n_trials;
    size_t records;              /* journal records read */
    size_t skipped;              /* of them, not understood (another build's kinds) */
    size_t ignored;              /* bytes after the last good record */
    char journal_note[600];      /* one line when ignored > 0: a torn or damaged tail */
} coord_status;

/* Reads out/sweep.yaml and out/journal as of now_ms (unix ms: elapsed time
 * and ETA count to it). A missing or unreadable file, or a journal whose
 * header is not one, is an error naming the file; a bad record stops the
 * reading there, as a resume would cut it, and journal_note says so. */
int coord_status_read(coord_status *st, const char *out, uint64_t now_ms, tl_err *e);
void coord_status_free(coord_status *st);

/* Lower-case names, as the text and the JSON say them. */
const char *coord_status_state_name(coord_status_state s);
const char *coord_status_trial_name(const coord_status *st, const coord_status_trial *t);

/* For people: a few lines (state, counts, best, workers, each started
 * trial; when LOST, how to resume). */
void coord_status_text(const coord_status *st, tl_strbuf *b);
/* For programs: one JSON object, NUL-terminated and malloc'd (NULL: out
 * of memory). docs/architecture.md lists its keys. */
char *coord_status_json(const coord_status *st);

#endif
