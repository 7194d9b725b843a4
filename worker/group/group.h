/* A group of MPI ranks training one trial together (data parallel): its
 * communicator and the few collectives it runs, each timed.
 *
 * The ordering rule, which makes failures safe (no member ever waits in a
 * collective another member will not enter):
 *   1. Every sequence of collectives starts with group_control: an
 *      allreduce of GROUP_FIGS doubles, every member's flags and figures
 *      summed. Controls all have the same shape, so any member's control
 *      matches any other's.
 *   2. A payload collective (group_sum, group_bcast, group_check) runs only
 *      right after a control that came back clean (no member flagged).
 *      Every member sees the same control result, so all of them either
 *      run the payload or none does.
 *   3. A member that fails or wants to stop leaves with group_leave: one
 *      last control carrying its flag (unless it has already seen a flag).
 *   4. A member that sees a flag in a control makes no further collective:
 *      the group is then "over" and every payload call refuses.
 *   5. At the normal end every member makes one last (clean) control.
 * Wishes made between controls (group_wish) are sticky until the next
 * control carries them; a yield seen in a control stays seen.
 *
 * Single-threaded: the caller's thread makes every MPI call (the worker
 * asks MPI for MPI_THREAD_FUNNELED). */
#ifndef TLSWEEP_GROUP_H
#define TLSWEEP_GROUP_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"

enum {
    GROUP_STOP = 1,   /* stop now: the epoch in progress is dropped */
    GROUP_YIELD = 2,  /* end the task at the end of the epoch in progress */
    GROUP_ERROR = 4,  /* a member failed */
};
enum { GROUP_FIGS = 8 }; /* figures a control carries besides the flags */

typedef struct group group;

/* The communicator of world ranks ranks[0..n) (leader first) in comm
 * (MPI_COMM_WORLD), made with MPI_Comm_create_group, tag id & 0x7fff; every
 * member calls it with the same ranks and id. The caller must be one. */
int group_open(group **out, MPI_Comm comm, const int *ranks, int n, uint64_t id, tl_err *e);
void group_close(group *g);

int group_size(const group *g);
int group_index(const group *g);      /* this member's place, 0: the leader */
const int *group_ranks(const group *g);

/* A wish (GROUP_STOP, GROUP_YIELD, GROUP_ERROR) for the next control. */
void group_wish(group *g, int flags);
/* The control: flags (own wishes and those of every member) and figs[0..n)
 * (n <= GROUP_FIGS, NULL: none) summed over the group in place. Returns 0
 * when clean, TL_ESTOPPED when a member flagged stop (the group is over),
 * an error naming the failed rank when one did (over too); a yield seen
 * sets group_yielded and is clean. */
int group_control(group *g, double *figs, int n, tl_err *e);
/* 1 when a control since group_yield_clear carried a yield wish. */
int group_yielded(const group *g);
void group_yield_clear(group *g);
/* Leaves after an error or a stop of this member's (flags: GROUP_ERROR or
 * GROUP_STOP): one last control carrying it, unless the group is over. */
void group_leave(group *g, int flags);
/* 1 once a control carried a stop or an error: no collective follows. */
int group_over(const group *g);

/* Payloads, each right after a clean control (else TL_EINVAL):
 * x[0..n) summed over the group (float, the same order on every member); */
int group_sum(group *g, float *x, size_t n, tl_err *e);
/* x[0..n) from the leader to every member; */
int group_bcast(group *g, float *x, size_t n, tl_err *e);
/* whether every member's h is the same (*same). */
int group_check(group *g, uint64_t h, int *same, tl_err *e);

/* Seconds spent inside the group's collectives (waits included) since
 * open; callers take differences. */
double group_seconds(const group *g);

#endif
