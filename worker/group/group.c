/* A group's communicator and collectives (see group.h for the rule). */
#include "worker/group/group.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/clock.h"

/* The control's doubles: stop, yield and error counts, the sum of the
 * failed members' world ranks (exact when one failed), then the figures. */
enum { C_STOP, C_YIELD, C_ERROR, C_ERANK, C_FIGS, C_LEN = C_FIGS + GROUP_FIGS };

struct group {
    MPI_Comm comm;
    int size, index;
    int *ranks;
    int wish;        /* own flags for the next control */
    int yielded;     /* a control carried a yield */
    int over;        /* a control carried a stop or an error */
    int clean;       /* the last collective was a clean control */
    double seconds;
};

static int mpi_fail(int rc, const char *what, tl_err *e)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return tl_errf(e, TL_EIO, "group: %s: %s", what, msg);
}

int group_open(group **out, MPI_Comm comm, const int *ranks, int n, uint64_t id, tl_err *e)
{
    *out = NULL;
    int me;
    MPI_Comm_rank(comm, &me);
    group *g = calloc(1, sizeof *g);
    if (!g || !(g->ranks = malloc((size_t)(n > 0 ? n : 1) * sizeof *g->ranks))) {
        free(g);
        return tl_errf(e, TL_ENOMEM, "group: out of memory");
    }
    memcpy(g->ranks, ranks, (size_t)n * sizeof *ranks);
    g->size = n;
    g->index = -1;
    for (int i = 0; i < n; i++)
        if (ranks[i] == me)
            g->index = i;
    if (n < 1 || g->index < 0) {
        free(g->ranks);
        free(g);
        return tl_errf(e, TL_EINVAL, "group: rank %d is not among the group's %d ranks", me, n);
    }
    MPI_Group world, sub;
    MPI_Comm_group(comm, &world);
    int rc = MPI_Group_incl(world, n, ranks, &sub);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_create_group(comm, sub, (int)(id & 0x7fff), &g->comm);
    MPI_Group_free(&world);
    if (rc == MPI_SUCCESS)
        MPI_Group_free(&sub);
    if (rc != MPI_SUCCESS) {
        free(g->ranks);
        free(g);
        return mpi_fail(rc, "making the communicator", e);
    }
    *out = g;
    return 0;
}

void group_close(group *g)
{
    if (!g)
        return;
    if (g->comm != MPI_COMM_NULL)
        MPI_Comm_free(&g->comm);
    free(g->ranks);
    free(g);
}

int group_size(const group *g) { return g->size; }
int group_index(const group *g) { return g->index; }
const int *group_ranks(const group *g) { return g->ranks; }
int group_yielded(const group *g) { return g->yielded; }
void group_yield_clear(group *g) { g->yielded = 0; }
int group_over(const group *g) { return g->over; }
double group_seconds(const group *g) { return g->seconds; }

void group_wish(group *g, int flags)
{
    g->wish |= flags;
}

static int timed_allreduce(group *g, void *buf, int count, MPI_Datatype t, MPI_Op op)
{
    double t0 = tl_now();
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, count, t, op, g->comm);
    g->seconds += tl_now() - t0;
    return rc;
}

int group_control(group *g, double *figs, int n, tl_err *e)
{
    if (g->over)
        return tl_errf(e, TL_EINVAL, "group: a control after the group ended");
    double c[C_LEN] = {0};
    c[C_STOP] = (g->wish & GROUP_STOP) != 0;
    c[C_YIELD] = (g->wish & GROUP_YIELD) != 0;
    c[C_ERROR] = (g->wish & GROUP_ERROR) != 0;
    c[C_ERANK] = c[C_ERROR] ? g->ranks[g->index] : 0;
    for (int i = 0; i < n && i < GROUP_FIGS; i++)
        c[C_FIGS + i] = figs[i];
    g->wish = 0;
    g->clean = 0;
    int rc = timed_allreduce(g, c, C_LEN, MPI_DOUBLE, MPI_SUM);
    if (rc != MPI_SUCCESS) {
        g->over = 1;
        return mpi_fail(rc, "control", e);
    }
    for (int i = 0; i < n && i < GROUP_FIGS; i++)
        figs[i] = c[C_FIGS + i];
    if (c[C_YIELD] > 0)
        g->yielded = 1;
    if (c[C_ERROR] > 0) {
        g->over = 1;
        if (c[C_ERROR] == 1)
            return tl_errf(e, TL_EINVAL, "rank %.0f of the group failed", c[C_ERANK]);
        return tl_errf(e, TL_EINVAL, "%.0f ranks of the group failed", c[C_ERROR]);
    }
    if (c[C_STOP] > 0) {
        g->over = 1;
        return tl_errf(e, TL_ESTOPPED, "group: stopped on request");
    }
    g->clean = 1;
    return 0;
}

void group_leave(group *g, int flags)
{
    if (!g || g->over)
        return;
    group_wish(g, flags);
    tl_err ignored;
    group_control(g, NULL, 0, &ignored);
    g->over = 1;
}

static int payload_allowed(group *g, tl_err *e)
{
    if (!g->clean)
        return tl_errf(e, TL_EINVAL, "group: a payload collective without a clean control");
    return 0;
}

/* MPI counts are ints: long spans go in pieces, the same on every member. */
#define GROUP_PIECE ((size_t)1 << 28)

int group_sum(group *g, float *x, size_t n, tl_err *e)
{
    int rc = payload_allowed(g, e);
    for (size_t at = 0; !rc && at < n; at += GROUP_PIECE) {
        size_t k = n - at < GROUP_PIECE ? n - at : GROUP_PIECE;
        if ((rc = timed_allreduce(g, x + at, (int)k, MPI_FLOAT, MPI_SUM)) != MPI_SUCCESS)
            rc = mpi_fail(rc, "gradient sum", e);
    }
    return rc;
}

int group_bcast(group *g, float *x, size_t n, tl_err *e)
{
    int rc = payload_allowed(g, e);
    for (size_t at = 0; !rc && at < n; at += GROUP_PIECE) {
        size_t k = n - at < GROUP_PIECE ? n - at : GROUP_PIECE;
        double t0 = tl_now();
        rc = MPI_Bcast(x + at, (int)k, MPI_FLOAT, 0, g->comm);
        g->seconds += tl_now() - t0;
        if (rc != MPI_SUCCESS)
            rc = mpi_fail(rc, "broadcast", e);
    }
    return rc;
}

int group_check(group *g, uint64_t h, int *same, tl_err *e)
{
    int rc = payload_allowed(g, e);
    if (rc)
        return rc;
    /* the max of h and of ~h: both are this member's only when all agree */
    uint64_t v[2] = {h, ~h};
    if ((rc = timed_allreduce(g, v, 2, MPI_UINT64_T, MPI_MAX)) != MPI_SUCCESS)
        return mpi_fail(rc, "weights check", e);
    *same = v[0] == h && v[1] == ~h;
    return 0;
}
