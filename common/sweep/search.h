/* Successive halving and ASHA: trials trained in rungs, the better part of
 * each rung going on to the next.
 *
 * Rungs end at min_epochs * eta^k epochs (k = 0, 1, ...) while that is
 * below the trials' epochs, and the last rung at the epochs themselves:
 * min 1, eta 3, epochs 9 gives rungs 1, 3, 9. A trial trains to its rung's
 * end, is checkpointed and evaluated, and waits; a promoted trial resumes
 * from that checkpoint and trains on to the next rung's end (its optimizer
 * state and learning-rate schedule continue: a schedule spans all epochs).
 *
 * The decisions are pure functions of a table with one row per trial, so
 * they are tested on tables and a resumed run that replays its journal
 * decides as before:
 *   successive_halving  a rung is decided once every trial that entered it
 *                       has reached its end (or failed, or stopped early):
 *                       the best max(1, floor(n / eta)) of its n entrants
 *                       by the value at that rung go on. The same decisions
 *                       for any number of workers.
 *   asha                a free worker promotes, from the highest rung down,
 *                       a trial that is among the best floor(m / eta) of
 *                       the m trials that reached that rung so far and has
 *                       not gone on yet, while fewer than floor(m / eta)
 *                       have gone on from that rung; else it starts a new
 *                       trial. No worker waits for a rung to fill. The cap
 *                       keeps asha within successive halving's epochs: a
 *                       trial promoted early that later results outrank
 *                       keeps its slot (without it, results arriving one
 *                       by one promote half again as many). A worker that
 *                       would otherwise wait (no new trial left, nothing
 *                       under the cap) promotes without it: the trials that
 *                       early promotions kept out of the best floor(m / eta)
 *                       go on with time that would be idle.
 * Values compare by the sweep's select metric (goal_max), ties to the
 * lower trial index. A trial that failed, stopped early, or ended at a rung
 * without going on keeps its result; it is "final" once it cannot go on. */
#ifndef TLSWEEP_SEARCH_H
#define TLSWEEP_SEARCH_H

#include <stddef.h>

#include "common/sweep/sweep.h"

enum { SWEEP_MAX_RUNGS = 24 };

typedef struct {
    int n;                          /* >= 1; the last is the trials' epochs */
    int epochs[SWEEP_MAX_RUNGS];    /* increasing */
    int eta;
    int goal_max;
    sweep_search_method method;
} sweep_rungs;

/* A trial as the decisions see it. */
typedef struct {
    int target;                     /* the rung it trains toward (or waits to); -1: not started */
    int reached;                    /* the highest rung whose end it reached; -1: none */
    int final;                      /* it goes no further: failed, stopped early, last rung */
    double value[SWEEP_MAX_RUNGS];  /* the select metric's best up to each rung reached */
} sweep_srow;

/* The rungs of s (any method: grid and random have one rung, the epochs). */
void sweep_rungs_of(const sweep *s, sweep_rungs *r);
/* The rung that ends at `epochs`, or -1. */
int sweep_rung_at(const sweep_rungs *r, int epochs);

/* A row that starts nowhere. */
void sweep_srow_init(sweep_srow *w);
/* Row w reached the end of rung k with value v; final when k is the last
 * rung or the trial stopped early there. */
void sweep_srow_reach(sweep_srow *w, const sweep_rungs *r, int k, double v, int stopped_early);

/* successive_halving: the trials that go on now, each rung decided once
 * complete (written to out, which holds n; returns how many). A row with
 * target -1 counts as entered in rung 0: every trial starts there. */
size_t sweep_sha_promotions(const sweep_rungs *r, const sweep_srow *rows, size_t n, int *out);
/* asha: the trial to promote now (its next rung is its target + 1), or -1;
 * capped 0: without the cap, for a worker with nothing else to do. */
int sweep_asha_promotion(const sweep_rungs *r, const sweep_srow *rows, size_t n, int capped);

/* The plan of a rung search over n trials: at most how many trials reach
 * each rung (out[k], k < r->n), and the epochs that costs at most
 * (each trial pays only the epochs past its previous rung). Compare with
 * n * the last rung's epochs, every trial trained whole. */
double sweep_rung_budget(const sweep_rungs *r, size_t n, size_t *out);

#endif
