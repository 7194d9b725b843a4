/* Groups of ranks for data-parallel trials: the decisions (sched_groups.h). */
#include "coordinator/sched_groups.h"

#include <stddef.h>

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

int sched_group_size(int ranks_per_trial, int eligible, int cap, int workers, int idle,
                     int startable)
{
    int most = min_int(cap, workers);
    if (!eligible || most <= 1)
        return 1;
    if (ranks_per_trial > 0)
        return min_int(ranks_per_trial, most);
    if (startable < 1)
        startable = 1;
    int share = idle > 0 ? (idle + startable - 1) / startable : 1;
    return share < 1 ? 1 : min_int(share, most);
}

/* Whether worker w may join trial `trial`'s group: idle, and free or
 * waiting for that trial (reserved_only: only the latter). */
static int joinable(const sched_worker *w, int trial, int reserved_only)
{
    if (!w->idle)
        return 0;
    return reserved_only ? w->reserved == trial : w->reserved < 0;
}

int sched_pick_members(const sched_worker *w, int nw, int leader, int trial, int size, int *out)
{
    int n = 0;
    if (size < 1 || leader < 0 || leader >= nw)
        return 0;
    out[n++] = leader;
    /* passes: reserved for it, free on the leader's host, free elsewhere */
    for (int pass = 0; pass < 3 && n < size; pass++)
        for (int k = 0; k < nw && n < size; k++) {
            if (k == leader || !joinable(&w[k], trial, pass == 0))
                continue;
            if (pass == 1 && w[k].host != w[leader].host)
                continue;
            if (pass == 2 && w[k].host == w[leader].host)
                continue;
            out[n++] = k;
        }
    return n;
}

/* The trial that takes the next spare worker: the most epochs left per
 * rank (members and reservations), under its cap; -1 none. */
static int best_join(const sched_trial *t, const int *group, int nt)
{
    int best = -1;
    for (int j = 0; j < nt; j++) {
        if (!t[j].running || !t[j].eligible || t[j].epochs_left < 1 || group[j] >= t[j].cap)
            continue;
        /* a/b > c/d as a*d > c*b (groups are >= 1) */
        if (best < 0 || (long)t[j].epochs_left * group[best] > (long)t[best].epochs_left * group[j])
            best = j;
    }
    return best;
}

int sched_plan_joins(const sched_worker *w, int nw, const sched_trial *t, int nt, int *reserve,
                     int *yield)
{
    int group[nt > 0 ? nt : 1];
    for (int j = 0; j < nt; j++) {
        group[j] = t[j].members > 0 ? t[j].members : 1;
        yield[j] = 0;
    }
    for (int k = 0; k < nw; k++)
        if (w[k].reserved >= 0 && w[k].reserved < nt)
            group[w[k].reserved]++;
    int n = 0;
    for (int k = 0; k < nw; k++) {
        if (!w[k].idle || w[k].reserved >= 0)
            continue;
        int j = best_join(t, group, nt);
        if (j < 0)
            break;
        reserve[k] = j;
        group[j]++;
        yield[j] = !t[j].yielding;
        n++;
    }
    return n;
}

int sched_pick_shrink(const sched_trial *t, int nt)
{
    int best = -1;
    for (int j = 0; j < nt; j++) {
        if (t[j].running && t[j].yielding)
            return -1;
        if (t[j].running && t[j].members > 1 && (best < 0 || t[j].members > t[best].members))
            best = j;
    }
    return best;
}
