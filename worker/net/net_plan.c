/* Memory plan: buffer sharing, in-place activations, folded frozen BN. */
#include "worker/net/net_plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN_FLOATS 16

static size_t round_up(size_t x)
{
    return (x + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

static size_t layer_floats(const net_layer *l, int batch)
{
    return (size_t)batch * (size_t)l->h * (size_t)l->w * (size_t)l->c;
}

/* ---- interval allocation --------------------------------------------------
 * Buffers live over an interval of layer indices; two buffers may share
 * memory when their intervals are disjoint. Greedy first-fit by start. */

typedef struct {
    int start, end;  /* live over layers [start, end] */
    size_t size;     /* floats, rounded */
    size_t off;      /* result */
} span;

static int span_by_start(const void *a, const void *b)
{
    const span *x = *(const span *const *)a, *y = *(const span *const *)b;
    return x->start != y->start ? (x->start < y->start ? -1 : 1) : 0;
}

static int span_by_off(const void *a, const void *b)
{
    const span *x = *(const span *const *)a, *y = *(const span *const *)b;
    return x->off != y->off ? (x->off < y->off ? -1 : 1) : 0;
}

/* Places every span; returns the region's size, or (size_t)-1 on ENOMEM. */
static size_t place_spans(span *s, int n)
{
    if (n == 0)
        return 0;
    span **order = malloc((size_t)n * sizeof *order);
    span **live = malloc((size_t)n * sizeof *live);
    if (!order || !live) {
        free(order);
        free(live);
        return (size_t)-1;
    }
    for (int i = 0; i < n; i++)
        order[i] = &s[i];
    qsort(order, (size_t)n, sizeof *order, span_by_start);
    int nlive = 0;
    size_t top = 0;
    for (int k = 0; k < n; k++) {
        span *cur = order[k];
        int m = 0;
        for (int i = 0; i < nlive; i++)
            if (live[i]->end >= cur->start)
                live[m++] = live[i];
        nlive = m;
        qsort(live, (size_t)nlive, sizeof *live, span_by_off);
        size_t at = 0;
        for (int i = 0; i < nlive; i++) {
            if (live[i]->off >= at + cur->size)
                break;
            size_t end = live[i]->off + live[i]->size;
            if (end > at)
                at = end;
        }
        cur->off = at;
        if (at + cur->size > top)
            top = at + cur->size;
        live[nlive++] = cur;
    }
    free(order);
    free(live);
    return top;
}

static float *aligned_floats(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0)
        return NULL;
    return p;
}

/* ---- the plan ---------------------------------------------------------------- */

static int root_of(const net *n, int i)
{
    while (n->layers[i].out_root != i)
        i = n->layers[i].out_root;
    return i;
}

/* One planning run: what is known about every layer, then the sizes. */
typedef struct {
    net *n;
    int max_batch;
    int L, fb;           /* layers, first layer with a backward */
    int *last_use;       /* (L) last layer reading each layer's output */
    int *keep;           /* (L) roots whose output must survive the forward pass */
    span *outs, *douts;  /* shared-region spans of forward outputs, of gradients */
    int nout, ndout;
    int *out_span;       /* (L) root -> index in outs, -2 persistent, -1 none */
    int *dout_span;      /* (L) root -> index in douts, -1 none */
    size_t fold;         /* floats of folded conv weights and biases */
    size_t persistent, aux, col, unplanned;
} plan;

/* Every layer on its own buffer, read last by itself until the readers say. */
static void plan_reset(plan *p)
{
    net_layer *ly = p->n->layers;
    for (int i = 0; i < p->L; i++) {
        ly[i].out_root = i;
        ly[i].inplace = 0;
        ly[i].folded_into = -1;
        ly[i].fold_bn = -1;
        ly[i].fold_train = 0;
        ly[i].post_relu = -1;
        ly[i].fold_off = 0;
        ly[i].zero_dout_at = -1;
        p->last_use[i] = i;
    }
    for (int j = 0; j < p->L; j++)
        for (int k = 0; k < ly[j].n_in; k++)
            if (j > p->last_use[ly[j].in[k]])
                p->last_use[ly[j].in[k]] = j;
}

/* Layers that write into another layer's buffer: folded BN, in-place ReLU,
 * Flatten; then every out_root points at the buffer's owner. */
static void plan_share_outputs(plan *p)
{
    net *n = p->n;
    net_layer *ly = n->layers;
    int L = p->L, fb = p->fb;
    /* Frozen conv + BN: the conv writes the BN's output with folded weights. */
    for (int b = 1; b < fb; b++) {
        int c = ly[b].in[0];
        if (ly[b].kind == NET_BN && c > 0 && ly[c].kind == NET_CONV && ly[c].n_consumers == 1) {
            ly[b].folded_into = c;
            ly[b].out_root = c;
            ly[c].fold_bn = b;
            ly[c].fold_off = p->fold;
            p->fold += round_up(n->params[ly[c].param0].n) + round_up((size_t)ly[c].c);
        }
    }
    /* Trainable conv + BN in inference mode (Keras's fine-tuning: the base
     * called with training=False): the conv computes the BN's output with
     * weights folded again every step; the BN's backward only sums dgamma
     * and dbeta from its output, and the conv's backward takes the BN's
     * dout with the folded kernel (the BN's scale is in it). One buffer and
     * two passes fewer per BN. Nets that run their convs on oneDNN only. */
    for (int b = fb; b < L && n->train_fold; b++) {
        int c = ly[b].in[0];
        if (ly[b].kind == NET_BN && c >= fb && c > 0 && ly[c].kind == NET_CONV &&
            ly[c].n_consumers == 1 && !(ly[b].trainable && ly[b].bn_update)) {
            ly[b].folded_into = c;
            ly[b].out_root = c;
            ly[c].fold_bn = b;
            ly[c].fold_train = 1;
            ly[c].fold_off = p->fold;
            p->fold += round_up(n->params[ly[c].param0].n) + round_up((size_t)ly[c].c);
        }
    }
    /* In-place ReLU over a producer nobody else reads and whose own
     * backward does not read its output (conv, BN, add read inputs only). */
    for (int r = 1; r < L; r++) {
        if (ly[r].kind != NET_RELU && ly[r].kind != NET_RELU6)
            continue;
        int q = ly[r].in[0];
        net_kind pk = ly[q].kind;
        if (q == 0 || ly[q].n_consumers != 1 || (pk != NET_CONV && pk != NET_BN && pk != NET_ADD))
            continue;
        if (q < fb && r >= fb)
            continue; /* the producer has no gradient buffer to share */
        ly[r].out_root = q;
        ly[r].inplace = 1;
    }
    /* Flatten is a view of its producer. */
    for (int i = 1; i < L; i++)
        if (ly[i].kind == NET_FLATTEN)
            ly[i].out_root = ly[i].in[0];
    for (int i = 0; i < L; i++)
        ly[i].out_root = root_of(n, i);
}

/* Which roots must survive the forward pass (read by a backward, or read by
 * the caller afterwards: logits, backbone features), and the lifetime of
 * every other root and of every gradient buffer, as spans. */
static void plan_lifetimes(plan *p)
{
    net *n = p->n;
    net_layer *ly = n->layers;
    int L = p->L, fb = p->fb;
    for (int i = 0; i < L; i++) {
        int need = i >= fb || p->last_use[i] >= fb || i == L - 1 || i == n->features;
        if (need)
            p->keep[ly[i].out_root] = 1;
    }
    /* Lifetime of each root: until the last reader of any layer sharing it. */
    for (int i = 0; i < L; i++) {
        p->out_span[i] = p->dout_span[i] = -1;
        size_t sz = round_up(layer_floats(&ly[i], p->max_batch));
        if (ly[i].kind != NET_FLATTEN)
            p->unplanned += sz * (i >= fb ? 2 : 1);
        if (ly[i].out_root != i)
            continue;
        int end = i;
        for (int m = i; m < L; m++)
            if (ly[m].out_root == i && p->last_use[m] > end)
                end = p->last_use[m];
        if (p->keep[i]) {
            p->out_span[i] = -2; /* persistent: offset assigned below */
            p->persistent += sz;
        } else {
            p->outs[p->nout] = (span){i, end, sz, 0};
            p->out_span[i] = p->nout++;
        }
        if (i >= fb) {
            /* The gradient buffer is live from the first write into it (the
             * backward of the highest reader of any sharer) down to i. */
            int first_write = -1;
            for (int m = i; m < L; m++)
                if (ly[m].out_root == i && p->last_use[m] > m && p->last_use[m] > first_write)
                    first_write = p->last_use[m];
            ly[i].zero_dout_at = first_write;
            p->douts[p->ndout] = (span){i, first_write < 0 ? L - 1 : first_write, sz, 0};
            p->dout_span[i] = p->ndout++;
        }
    }
}

/* BN statistics and dropout masks (aux), and the largest im2col buffer. */
static void plan_scratch(plan *p)
{
    const net_layer *ly = p->n->layers;
    for (int i = 0; i < p->L; i++) {
        if (ly[i].kind == NET_BN)
            p->aux += round_up(2 * (size_t)ly[i].c);
        else if (ly[i].kind == NET_DROPOUT)
            p->aux += round_up(layer_floats(&ly[i], p->max_batch));
        else if (ly[i].kind == NET_CONV) {
            nn_conv2d_shape s = ly[i].u.conv.s;
            s.n = p->max_batch;
            size_t cs = nn_conv2d_col_size(&s);
            if (cs > p->col)
                p->col = cs;
        }
    }
}

/* Every layer's out, dout and aux pointers into the arena laid out as
 * [persistent outs | aux | col | shared: forward-only outs, or gradients]. */
static void plan_assign(plan *p)
{
    net *n = p->n;
    net_layer *ly = n->layers;
    float *pers = n->arena, *auxp = n->arena + p->persistent;
    float *colp = auxp + p->aux, *shp = colp + round_up(p->col);
    n->col = p->col ? colp : NULL;
    n->col_floats = p->col;
    for (int i = 0; i < p->L; i++) {
        net_layer *l = &ly[i];
        if (l->out_root == i) {
            size_t sz = round_up(layer_floats(l, p->max_batch));
            if (p->out_span[i] == -2) {
                l->out = pers;
                pers += sz;
            } else {
                l->out = shp + p->outs[p->out_span[i]].off;
            }
            l->dout = p->dout_span[i] >= 0 ? shp + p->douts[p->dout_span[i]].off : NULL;
        } else {
            l->out = ly[l->out_root].out;
            l->dout = i >= p->fb ? ly[l->out_root].dout : NULL;
        }
        l->aux = NULL;
        if (l->kind == NET_BN) {
            l->aux = auxp;
            auxp += round_up(2 * (size_t)l->c);
        } else if (l->kind == NET_DROPOUT) {
            l->aux = auxp;
            auxp += round_up(layer_floats(l, p->max_batch));
        }
    }
}

/* Places the spans, allocates the arena and the folded weights, touches
 * every page once (so training steps never fault) and hands out pointers. */
static int plan_allocate(plan *p, tl_err *e)
{
    net *n = p->n;
    size_t tpeak = place_spans(p->outs, p->nout), dpeak = place_spans(p->douts, p->ndout);
    if (tpeak == (size_t)-1 || dpeak == (size_t)-1)
        return tl_errf(e, TL_ENOMEM, "network: out of memory while planning");
    size_t shared = tpeak > dpeak ? tpeak : dpeak;
    size_t total = p->persistent + p->aux + round_up(p->col) + shared;
    size_t fold = p->fold;
    n->peak_floats = p->unplanned + p->aux + round_up(p->col);
    n->arena = aligned_floats(total);
    n->fold = fold ? aligned_floats(fold) : NULL;
    if (!n->arena || (fold && !n->fold))
        return tl_errf(e, TL_ENOMEM, "network: cannot allocate the %.1f MiB activation arena",
                       (double)total * 4 / 1048576.0);
    memset(n->arena, 0, total * sizeof(float));
    if (fold)
        memset(n->fold, 0, fold * sizeof(float));
    n->arena_floats = total;
    n->fold_floats = fold;
    n->fold_stale = 1;
    plan_assign(p);
    return 0;
}

int net_plan(net *n, int max_batch, tl_err *e)
{
    int L = n->n_layers;
    plan p = {.n = n, .max_batch = max_batch, .L = L, .fb = n->first_backward};
    p.last_use = malloc((size_t)L * sizeof *p.last_use);
    p.keep = calloc((size_t)L, sizeof *p.keep);
    p.outs = malloc((size_t)L * sizeof *p.outs);
    p.douts = malloc((size_t)L * sizeof *p.douts);
    p.out_span = malloc((size_t)L * sizeof *p.out_span);
    p.dout_span = malloc((size_t)L * sizeof *p.dout_span);
    int rc;
    if (!p.last_use || !p.keep || !p.outs || !p.douts || !p.out_span || !p.dout_span) {
        rc = tl_errf(e, TL_ENOMEM, "network: out of memory while planning");
    } else {
        plan_reset(&p);
        plan_share_outputs(&p);
        plan_lifetimes(&p);
        plan_scratch(&p);
        rc = plan_allocate(&p, e);
    }
    free(p.last_use);
    free(p.keep);
    free(p.outs);
    free(p.douts);
    free(p.out_span);
    free(p.dout_span);
    return rc;
}

void net_fold_refresh(net *n)
{
    for (int c = 1; c < n->n_layers; c++) {
        const net_layer *l = &n->layers[c];
        if (l->kind != NET_CONV || l->fold_bn < 0 || (!n->fold_stale && !l->fold_train))
            continue;
        const net_layer *b = &n->layers[l->fold_bn];
        const net_param *kp = &n->params[l->param0];
        const float *w = n->weights + kp->off;
        const float *b0 = l->u.conv.bias ? n->weights + n->params[l->param0 + 1].off : NULL;
        int k = 0;
        const float *gamma = NULL;
        if (b->u.bn.scale)
            gamma = n->weights + n->params[b->param0 + k++].off;
        const float *beta = n->weights + n->params[b->param0 + k].off;
        const float *mean = n->weights + n->params[b->param0 + k + 1].off;
        const float *var = n->weights + n->params[b->param0 + k + 2].off;
        int C = l->c;
        size_t K = kp->n / (size_t)C; /* HWIO: output channel last */
        float *fw = n->fold + l->fold_off;
        float *fb = fw + round_up(kp->n);
        double *sc = malloc((size_t)C * sizeof *sc);
        if (!sc)
            abort(); /* a few KB; nothing can be computed without it */
        for (int ch = 0; ch < C; ch++) {
            sc[ch] = (gamma ? gamma[ch] : 1.0) / sqrt((double)var[ch] + b->u.bn.eps);
            fb[ch] = (float)(beta[ch] + ((b0 ? b0[ch] : 0.0) - mean[ch]) * sc[ch]);
            b->aux[ch] = (float)sc[ch]; /* the scale, for the backward of a trained fold */
        }
        #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
            if (K * (size_t)C >= 65536)
        for (size_t r = 0; r < K; r++)
            for (int ch = 0; ch < C; ch++)
                fw[r * C + ch] = (float)(w[r * C + ch] * sc[ch]);
        free(sc);
    }
    n->fold_stale = 0;
}
