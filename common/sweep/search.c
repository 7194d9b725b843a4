/* Rungs and the promotion decisions of successive halving and ASHA (search.h). */
#include "common/sweep/search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sweep_rungs_of(const sweep *s, sweep_rungs *r)
{
    memset(r, 0, sizeof *r);
    r->eta = s->reduction_factor > 1 ? s->reduction_factor : 3;
    r->goal_max = s->search_goal_max;
    r->method = s->search;
    if (sweep_has_rungs(s)) {
        /* min_epochs * eta^k below the epochs; in doubles, no overflow */
        for (double e = s->min_epochs > 0 ? s->min_epochs : 1;
             e < s->epochs && r->n < SWEEP_MAX_RUNGS - 1; e *= r->eta)
            r->epochs[r->n++] = (int)e;
    }
    r->epochs[r->n++] = s->epochs;
}

int sweep_rung_at(const sweep_rungs *r, int epochs)
{
    for (int k = 0; k < r->n; k++)
        if (r->epochs[k] == epochs)
            return k;
    return -1;
}

void sweep_srow_init(sweep_srow *w)
{
    memset(w, 0, sizeof *w);
    w->target = -1;
    w->reached = -1;
}

void sweep_srow_reach(sweep_srow *w, const sweep_rungs *r, int k, double v, int stopped_early)
{
    if (k < 0 || k >= r->n)
        return;
    w->value[k] = v;
    if (k > w->reached)
        w->reached = k;
    if (w->target < k)
        w->target = k;
    if (stopped_early || k == r->n - 1)
        w->final = 1;
}

/* ---- ranking a rung --------------------------------------------------------------------- */

typedef struct {
    double key;     /* smaller is better */
    size_t i;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Ended at rung k: reached it, could not or did not go on, and never was
 * promoted past it (stopped early at its end). Not a candidate there. */
static int ended_at(const sweep_srow *w, int k)
{
    return w->reached == k && w->final && w->target == k;
}

/* The trials ranked at rung k, best first, into out (holds n): those that
 * reached it, but not those that ended there stopped early. *reached gets
 * how many reached it in all. Returns how many are ranked. */
static size_t rank_rung(const sweep_rungs *r, const sweep_srow *rows, size_t n, int k,
                        ranked *out, size_t *reached)
{
    size_t m = 0, all = 0;
    for (size_t i = 0; i < n; i++) {
        const sweep_srow *w = &rows[i];
        if (w->reached < k)
            continue;
        all++;
        if (ended_at(w, k) && k < r->n - 1)
            continue;
        double v = w->value[k];
        /* NaN last, whichever way the metric goes */
        out[m++] = (ranked){isnan(v) ? INFINITY : r->goal_max ? -v : v, i};
    }
    qsort(out, m, sizeof *out, cmp_ranked);
    *reached = all;
    return m;
}

static int can_go_on(const sweep_srow *w, int k)
{
    return w->target == k && w->reached == k && !w->final;
}

/* ---- successive halving ------------------------------------------------------------------ */

/* Rung k is decided once none of its entrants is still on the way to it. */
static int rung_complete(const sweep_srow *rows, size_t n, int k, size_t *entrants)
{
    size_t e = 0;
    for (size_t i = 0; i < n; i++) {
        const sweep_srow *w = &rows[i];
        int target = w->target < 0 ? 0 : w->target;
        if (target < k)
            continue;
        e++;
        if (target == k && w->reached < k && !w->final)
            return 0;
    }
    *entrants = e;
    return 1;
}

size_t sweep_sha_promotions(const sweep_rungs *r, const sweep_srow *rows, size_t n, int *out)
{
    ranked *rk = malloc((n ? n : 1) * sizeof *rk);
    size_t got = 0;
    if (!rk)
        return 0; /* nothing goes on now; asked again after the next result */
    for (int k = 0; k + 1 < r->n; k++) {
        size_t entrants = 0, reached = 0;
        if (!rung_complete(rows, n, k, &entrants) || entrants == 0)
            continue;
        size_t m = rank_rung(r, rows, n, k, rk, &reached);
        size_t q = entrants / (size_t)r->eta;
        if (q < 1)
            q = 1;
        for (size_t j = 0; j < m && j < q; j++)
            if (can_go_on(&rows[rk[j].i], k))
                out[got++] = (int)rk[j].i;
    }
    free(rk);
    return got;
}

/* ---- asha ----------------------------------------------------------------------------------- */

int sweep_asha_promotion(const sweep_rungs *r, const sweep_srow *rows, size_t n, int capped)
{
    ranked *rk = malloc((n ? n : 1) * sizeof *rk);
    if (!rk)
        return -1;
    int pick = -1;
    for (int k = r->n - 2; k >= 0 && pick < 0; k--) {
        size_t reached = 0, gone = 0;
        size_t m = rank_rung(r, rows, n, k, rk, &reached);
        size_t q = reached / (size_t)r->eta;
        /* the slots of the rung: a trial promoted early that later results
         * outrank still holds its own, so no more go on than successive
         * halving would let */
        for (size_t i = 0; i < n; i++)
            gone += rows[i].reached >= k && rows[i].target > k;
        if (capped && gone >= q)
            continue;
        for (size_t j = 0; j < m && j < q; j++)
            if (can_go_on(&rows[rk[j].i], k)) {
                pick = (int)rk[j].i;
                break;
            }
    }
    free(rk);
    return pick;
}

/* ---- the budget ------------------------------------------------------------------------------ */

double sweep_rung_budget(const sweep_rungs *r, size_t n, size_t *out)
{
    double epochs = 0;
    size_t in = n;
    for (int k = 0; k < r->n; k++) {
        if (k > 0) {
            size_t q = in / (size_t)r->eta;
            /* successive halving keeps at least one; asha may keep none */
            in = q < 1 && r->method == SWEEP_SEARCH_SHA && in > 0 ? 1 : q;
        }
        out[k] = in;
        epochs += (double)in * (r->epochs[k] - (k ? r->epochs[k - 1] : 0));
    }
    return epochs;
}
