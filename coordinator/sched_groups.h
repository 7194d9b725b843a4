/* Groups of ranks for data-parallel trials (ranks_per_trial): which
 * workers train a trial together, and when a running group is asked to
 * YIELD at its next epoch boundary so that its trial can be regrouped.
 *
 * The decisions are pure functions of two small tables (the workers, the
 * trials as the scheduler sees them), so they are tested on tables; the
 * coordinator (coord_sched.c) builds the tables and acts on the answers.
 *
 *   fixed N   an eligible trial starts on min(N, cap) workers at once, cap
 *             being its batch size and the number of workers; it waits
 *             until that many are idle (other work goes to idle workers).
 *   auto      (1) a trial being started takes ceil(idle / startable) of
 *             the idle workers (so the first ones of a short queue get the
 *             spare workers), preferring the leader's host; (2) idle
 *             workers with nothing to start are reserved for the running
 *             eligible trial with the most epochs left per rank, which is
 *             sent YIELD once: at its epoch boundary it is regrouped with
 *             them; (3) a startable trial with no idle worker makes the
 *             largest group (more than one member) YIELD, so that its
 *             ranks are shared out again, one yield outstanding at a time.
 * Ties go to the lower index: the same tables give the same answers. */
#ifndef TLSWEEP_SCHED_GROUPS_H
#define TLSWEEP_SCHED_GROUPS_H

typedef struct {
    int idle;           /* free for a task now */
    int host;           /* equal ids: the same node */
    int reserved;       /* the trial (index in the trial table) it waits for; -1 none */
} sched_worker;

typedef struct {
    int running;        /* its task is out on a group */
    int eligible;       /* its task runs a whole-net stage: a group may train it */
    int cap;            /* the largest group that may train it (>= 1) */
    int members;        /* running: the group's size */
    int epochs_left;    /* running: epochs its task trains after the one in progress */
    int yielding;       /* running: YIELD sent, not answered yet */
} sched_trial;

/* The size of the group a trial starts on: 1 when it is not eligible;
 * ranks_per_trial N (> 0): min(N, cap, workers); auto (0): ceil(idle /
 * startable) within 1..min(cap, workers), idle the workers free for new
 * work and startable the trials that could start now (this one included). */
int sched_group_size(int ranks_per_trial, int eligible, int cap, int workers, int idle,
                     int startable);

/* The members of trial `trial`'s group into out (at most size; returns how
 * many): the leader first, then the idle workers reserved for that trial,
 * then idle unreserved ones on the leader's host, then the others, each in
 * index order. */
int sched_pick_members(const sched_worker *w, int nw, int leader, int trial, int size, int *out);

/* auto (2): for each idle unreserved worker, reserve[w] = the trial it now
 * waits for (else left as it was); yield[j] = 1 for each trial to be sent
 * YIELD now (a trial already yielding is not sent another). A trial takes
 * workers while its group (members and reservations) is under its cap and
 * it has epochs left; the one with the most epochs left per rank first.
 * Returns how many workers were reserved. */
int sched_plan_joins(const sched_worker *w, int nw, const sched_trial *t, int nt, int *reserve,
                     int *yield);

/* auto (3): the running group to YIELD when a trial is startable and no
 * worker is idle: the largest of more than one member, none while a yield
 * is outstanding (its ranks are about to be free). -1: none. */
int sched_pick_shrink(const sched_trial *t, int nt);

#endif
