/* The worker side of a sweep: Hello, then Setup (the sweep text), then
 * tasks until a Stop. Transport-agnostic (common/msg/msg_link.h): the same
 * loop runs on an MPI rank and on a thread of a single-process run.
 *
 *   EXTRACT_FEATURES  the frozen backbone of a cache group over a shard of
 *                     image ids; answers FeatureChunks (rows of the ids that
 *                     decoded, skipped_ids for the rest).
 *   TRAIN_TRIAL       one grid point through worker/trial/trial.c; after each
 *                     epoch an EpochReport and a Checkpoint, Progress about
 *                     once a second, then a TrialResult carrying the kept
 *                     model (.tlm bytes).
 *
 * A TRAIN_TRIAL with group_ranks is trained by that group of ranks
 * (worker/group/group.h), the first one leading: only the leader sends
 * Progress, EpochReports (with ranks and comm_seconds), Checkpoints and
 * the model; every member answers a TrialResult with the ranks.
 *
 * A Stop PREEMPTED during a task ends it at the next step boundary (the
 * epoch in progress is dropped: the last Checkpoint is where a resumed run
 * continues), answers TrialResult STOPPED and leaves the loop. A Stop
 * YIELD (to a trial's leader) ends the task after the epoch in progress,
 * its Checkpoint sent whatever checkpoint_seconds says; the answer is
 * YIELDED and the worker stays for the next task. Bad images
 * are reported as non-fatal Errors, one per file. */
#ifndef TLSWEEP_WORKER_H
#define TLSWEEP_WORKER_H

#include <mpi.h>

#include "common/base/err.h"
#include "common/msg/msg_link.h"

typedef struct {
    int threads;          /* engine threads when the sweep sets none; 0: all cores */
    int loader_threads;   /* decoding threads per loader; 0: 2 */
    int heartbeat_ms;     /* idle heartbeat period; 0: 2000 */
    /* have_world: tasks for a group of ranks (Task.group_ranks) make their
     * communicator in `world` (MPI_COMM_WORLD under mpirun); else a task
     * for more than one rank fails */
    MPI_Comm world;
    int have_world;
} worker_opts;

/* Returns 0 after a Stop, or a negative TL_E* when the coordinator could
 * not be served (e has the line; a fatal Error was sent when possible). */
int worker_main(msg_link *l, const worker_opts *o, tl_err *e);

#endif
