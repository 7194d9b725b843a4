/* Stage WHOLE_NET trained by a group of ranks (trial_cfg.group): each
 * global batch split by position, member i of G taking rows
 * [floor(i*b/G), floor((i+1)*b/G)) of a batch of b; gradients summed over
 * the group before the same optimizer step on every member. The order of
 * collectives follows group.h's rule: each sequence opens with a control. */
#include <stdlib.h>
#include <string.h>

#include "common/base/hash.h"
#include "worker/group/group.h"
#include "worker/trial/trial_int.h"

/* Rows [lo, hi) of a global batch of b for member i of G. */
static void member_rows(size_t b, int i, int G, size_t *lo, size_t *hi)
{
    *lo = b * (size_t)i / (size_t)G;
    *hi = b * (size_t)(i + 1) / (size_t)G;
}

/* The leader's weights and optimizer state (step count included) to all. */
static int share_leaders_state(trial__state *st, tl_err *e)
{
    group *g = st->cfg->group;
    int rc = group_bcast(g, st->full.weights, st->full.n_weights, e);
    if (!rc)
        rc = group_bcast(g, st->tf.opt.state, st->tf.opt.nstate, e);
    net_weights_changed(&st->full);
    return rc;
}

int trial__group_open(trial__state *st, tl_err *e)
{
    group *g = st->cfg->group;
    for (int i = 0; i < st->full.n_layers; i++)
        if (st->full.layers[i].bn_update)
            return tl_errf(e, TL_EINVAL, "train: layer %s trains BN statistics, which a group "
                           "of ranks does not sum: run it on one rank",
                           st->full.layers[i].name);
    size_t n = st->nids[DATA_TRAIN], B = (size_t)st->cfg->batch;
    st->g_batches = (n + B - 1) / B;
    if (!(st->gids = malloc((n ? n : 1) * sizeof *st->gids)) ||
        !(st->gsizes = malloc((st->g_batches ? st->g_batches : 1) * sizeof *st->gsizes)))
        return tl_errf(e, TL_ENOMEM, "train: out of memory");
    int rc = group_control(g, NULL, 0, e);
    return rc ? rc : share_leaders_state(st, e);
}

void trial__group_rows(trial__state *st)
{
    group *g = st->cfg->group;
    size_t n = st->nids[DATA_TRAIN], B = (size_t)st->cfg->batch;
    st->g_n = 0;
    for (size_t k = 0; k < st->g_batches; k++) {
        size_t b = n - k * B < B ? n - k * B : B, lo, hi;
        member_rows(b, group_index(g), group_size(g), &lo, &hi);
        for (size_t j = lo; j < hi; j++)
            st->gids[st->g_n++] = st->tids[k * B + j];
        st->gsizes[k] = (int)(hi - lo);
    }
}

size_t trial__group_shard(const trial__state *st, size_t n, size_t *first)
{
    size_t hi;
    member_rows(n, group_index(st->cfg->group), group_size(st->cfg->group), first, &hi);
    return hi - *first;
}

int trial__group_step(trial__run *r, const loader_batch *b, int *hits, float *loss)
{
    size_t B = (size_t)r->cfg->batch, k = b->index;
    size_t gb = r->n_global - k * B < B ? r->n_global - k * B : B, lo, hi;
    member_rows(gb, group_index(r->g), group_size(r->g), &lo, &hi);
    *loss = train_grads(r->t, b->x, b->labels, b->n, (int)gb, (int)lo, hits);
    int rc = group_control(r->g, NULL, 0, r->e);
    if (rc)
        return rc;
    size_t off, len = train_grad_span(r->t, &off);
    if ((rc = group_sum(r->g, r->t->n->grads + off, len, r->e)))
        return rc;
    train_apply(r->t);
    return 0;
}

int trial__group_sum_figures(trial__state *st, trial__run *tr, trial__run *va, tl_err *e)
{
    double f[6] = {tr->loss, (double)tr->hits, (double)tr->seen,
                   va->loss, (double)va->hits, (double)va->seen};
    int rc = group_control(st->cfg->group, f, 6, e);
    if (rc)
        return rc;
    tr->loss = f[0];
    tr->hits = (long)f[1];
    tr->seen = (long)f[2];
    va->loss = f[3];
    va->hits = (long)f[4];
    va->seen = (long)f[5];
    return 0;
}

int trial__group_check(trial__state *st, tl_err *e)
{
    group *g = st->cfg->group;
    uint64_t h = tl_fnv1a_bytes(TL_FNV1A_OFFSET, st->full.weights,
                                st->full.n_weights * sizeof(float));
    h = tl_fnv1a_bytes(h, st->tf.opt.state, st->tf.opt.nstate * sizeof(float));
    int same = 1;
    int rc = group_check(g, h, &same, e);
    if (rc || same)
        return rc;
    trial__log(st->cfg, "warning: rank %d: the group's weights differ after epoch %d: the "
               "leader's are shared again", group_ranks(g)[group_index(g)], st->r->n_epochs);
    return share_leaders_state(st, e);
}
