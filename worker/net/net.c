/* Network table: building, sizing, forward and backward. */
#include "worker/net/net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/rng.h"
#include "worker/net/net_dnn.h"
#include "worker/net/net_plan.h"

#define ALIGN_FLOATS 16  /* 64-byte alignment of every arena tensor */

void net_init(net *n, int h, int w, int c, net_convention cv)
{
    memset(n, 0, sizeof *n);
    n->convention = cv;
    n->features = -1;
    n->first_backward = 0;
    net_layer in = {0};
    in.kind = NET_INPUT;
    snprintf(in.name, sizeof in.name, "input");
    in.h = h;
    in.w = w;
    in.c = c;
    n->cap_layers = 64;
    n->layers = calloc((size_t)n->cap_layers, sizeof *n->layers);
    n->cap_params = 64;
    n->params = calloc((size_t)n->cap_params, sizeof *n->params);
    if (n->layers && n->params) {
        n->layers[0] = in;
        n->n_layers = 1;
    }
    n->keras_counter = 1;
}

void net_free(net *n)
{
    if (n->layers)
        net_dnn_free(n);
    free(n->layers);
    free(n->params);
    free(n->weights);
    free(n->grads);
    free(n->arena);
    free(n->fold);
    memset(n, 0, sizeof *n);
}

nn_pad net_pad_same(const net *n, int in, int kh, int kw, int sh, int sw)
{
    const net_layer *l = &n->layers[in];
    return nn_pad_same(l->h, l->w, kh, kw, sh, sw);
}

void net_keras_skip(net *n)
{
    n->keras_counter++;
}

/* Appends a layer with one input; returns its index or a negative code. */
static int add_layer(net *n, net_kind kind, const char *name, const int *ins, int n_in)
{
    if (!n->layers || n->finalized || n_in > NET_MAX_IN)
        return TL_EINVAL;
    for (int i = 0; i < n_in; i++)
        if (ins[i] < 0 || ins[i] >= n->n_layers)
            return TL_EINVAL;
    if (n->n_layers == n->cap_layers) {
        int cap = n->cap_layers * 2;
        net_layer *nl = realloc(n->layers, (size_t)cap * sizeof *nl);
        if (!nl)
            return TL_ENOMEM;
        n->layers = nl;
        n->cap_layers = cap;
    }
    int idx = n->n_layers++;
    net_layer *l = &n->layers[idx];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        l->in[i] = ins[i];
        n->layers[ins[i]].n_consumers++;
    }
    const net_layer *src = &n->layers[ins[0]];
    l->h = src->h;
    l->w = src->w;
    l->c = src->c;
    l->keras_index = n->keras_counter++;
    l->trainable = 1;
    l->param0 = n->n_params;
    return idx;
}

static int add_param(net *n, int layer, const char *suffix, int ndim, const int *shape,
                     int is_state)
{
    if (n->n_params == n->cap_params) {
        int cap = n->cap_params * 2;
        net_param *np = realloc(n->params, (size_t)cap * sizeof *np);
        if (!np)
            return TL_ENOMEM;
        n->params = np;
        n->cap_params = cap;
    }
    net_param *p = &n->params[n->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s/%s", n->layers[layer].name, suffix);
    p->ndim = ndim;
    p->n = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->n *= (size_t)shape[i];
    }
    p->layer = layer;
    p->is_state = is_state;
    n->layers[layer].n_params++;
    return 0;
}

int net_conv(net *n, const char *name, int in, int oc, int kh, int kw, int sh, int sw,
             nn_pad pad, int groups, int bias)
{
    int idx = add_layer(n, NET_CONV, name, &in, 1);
    if (idx < 0)
        return idx;
    net_layer *l = &n->layers[idx];
    const net_layer *src = &n->layers[in];
    nn_conv2d_shape *s = &l->u.conv.s;
    s->n = 1;
    s->h = src->h;
    s->w = src->w;
    s->c = src->c;
    s->oc = oc;
    s->groups = groups;
    s->kh = kh;
    s->kw = kw;
    s->sh = sh;
    s->sw = sw;
    s->pad = pad;
    if (groups <= 0 || src->c % groups || oc % groups || nn_conv2d_init(s) != 0 ||
        s->oh <= 0 || s->ow <= 0) {
        n->n_layers--;
        return TL_ESHAPE;
    }
    l->h = s->oh;
    l->w = s->ow;
    l->c = oc;
    l->u.conv.bias = bias;
    int depthwise = groups == src->c && oc == src->c && groups > 1;
    int ks[4] = {kh, kw, depthwise ? src->c : src->c / groups, depthwise ? 1 : oc};
    int rc = add_param(n, idx, depthwise ? "depthwise_kernel" : "kernel", 4, ks, 0);
    if (!rc && bias)
        rc = add_param(n, idx, "bias", 1, &oc, 0);
    return rc ? rc : idx;
}

int net_bn(net *n, const char *name, int in, float eps, float momentum, int scale)
{
    int idx = add_layer(n, NET_BN, name, &in, 1);
    if (idx < 0)
        return idx;
    net_layer *l = &n->layers[idx];
    l->u.bn.eps = eps;
    l->u.bn.momentum = momentum;
    l->u.bn.scale = scale;
    int c = l->c, rc = 0;
    if (scale)
        rc = add_param(n, idx, "gamma", 1, &c, 0);
    if (!rc)
        rc = add_param(n, idx, "beta", 1, &c, 0);
    if (!rc)
        rc = add_param(n, idx, "moving_mean", 1, &c, 1);
    if (!rc)
        rc = add_param(n, idx, "moving_variance", 1, &c, 1);
    return rc ? rc : idx;
}

int net_relu(net *n, const char *name, int in)
{
    return add_layer(n, NET_RELU, name, &in, 1);
}

int net_relu6(net *n, const char *name, int in)
{
    return add_layer(n, NET_RELU6, name, &in, 1);
}

int net_add(net *n, const char *name, int a, int b)
{
    const net_layer *la = &n->layers[a], *lb = &n->layers[b];
    if (la->h != lb->h || la->w != lb->w || la->c != lb->c)
        return TL_ESHAPE;
    int ins[2] = {a, b};
    return add_layer(n, NET_ADD, name, ins, 2);
}

int net_concat(net *n, const char *name, const int *ins, int k)
{
    if (k < 1 || k > NET_MAX_IN)
        return TL_EINVAL;
    int c = 0;
    for (int i = 0; i < k; i++) {
        const net_layer *li = &n->layers[ins[i]];
        if (li->h != n->layers[ins[0]].h || li->w != n->layers[ins[0]].w)
            return TL_ESHAPE;
        c += li->c;
    }
    int idx = add_layer(n, NET_CONCAT, name, ins, k);
    if (idx >= 0)
        n->layers[idx].c = c;
    return idx;
}

static int add_pool(net *n, net_kind kind, const char *name, int in, int kh, int kw,
                    int sh, int sw, nn_pad pad, int count_include_pad)
{
    int idx = add_layer(n, kind, name, &in, 1);
    if (idx < 0)
        return idx;
    net_layer *l = &n->layers[idx];
    nn_pool2d_shape *s = &l->u.pool.s;
    s->n = 1;
    s->h = l->h;
    s->w = l->w;
    s->c = l->c;
    s->kh = kh;
    s->kw = kw;
    s->sh = sh;
    s->sw = sw;
    s->pad = pad;
    s->count_include_pad = count_include_pad;
    if (nn_pool2d_init(s) != 0 || s->oh <= 0 || s->ow <= 0) {
        n->n_layers--;
        return TL_ESHAPE;
    }
    l->h = s->oh;
    l->w = s->ow;
    return idx;
}

int net_maxpool(net *n, const char *name, int in, int kh, int kw, int sh, int sw, nn_pad pad)
{
    return add_pool(n, NET_MAXPOOL, name, in, kh, kw, sh, sw, pad, 0);
}

int net_avgpool(net *n, const char *name, int in, int kh, int kw, int sh, int sw, nn_pad pad,
                int count_include_pad)
{
    return add_pool(n, NET_AVGPOOL, name, in, kh, kw, sh, sw, pad, count_include_pad);
}

int net_gap(net *n, const char *name, int in)
{
    int idx = add_layer(n, NET_GAP, name, &in, 1);
    if (idx >= 0)
        n->layers[idx].h = n->layers[idx].w = 1;
    return idx;
}

int net_flatten(net *n, const char *name, int in)
{
    int idx = add_layer(n, NET_FLATTEN, name, &in, 1);
    if (idx >= 0) {
        net_layer *l = &n->layers[idx];
        l->c = l->h * l->w * l->c;
        l->h = l->w = 1;
    }
    return idx;
}

int net_dense(net *n, const char *name, int in, int units, int bias)
{
    const net_layer *src = &n->layers[in];
    if (src->h != 1 || src->w != 1)
        return TL_ESHAPE; /* dense takes (N, features): pool or flatten first */
    int idx = add_layer(n, NET_DENSE, name, &in, 1);
    if (idx < 0)
        return idx;
    net_layer *l = &n->layers[idx];
    int in_f = l->c;
    l->c = units;
    l->u.dense.units = units;
    l->u.dense.bias = bias;
    int ks[2] = {in_f, units};
    int rc = add_param(n, idx, "kernel", 2, ks, 0);
    if (!rc && bias)
        rc = add_param(n, idx, "bias", 1, &units, 0);
    return rc ? rc : idx;
}

int net_dropout(net *n, const char *name, int in, float rate)
{
    if (!(rate >= 0.0f && rate < 1.0f))
        return TL_EINVAL;
    int idx = add_layer(n, NET_DROPOUT, name, &in, 1);
    if (idx >= 0)
        n->layers[idx].u.dropout.rate = rate;
    return idx;
}

/* ---- trainability ---------------------------------------------------------- */

void net_set_trainable_from(net *n, int from)
{
    for (int i = 0; i < n->n_layers; i++)
        n->layers[i].trainable = i >= from;
}

void net_set_trainable_from_keras(net *n, int k)
{
    for (int i = 0; i < n->n_layers; i++)
        n->layers[i].trainable = n->layers[i].keras_index >= k;
}

void net_set_bn_update(net *n, int on)
{
    for (int i = 0; i < n->n_layers; i++)
        if (n->layers[i].kind == NET_BN)
            n->layers[i].bn_update = on;
}

/* ---- sizing ---------------------------------------------------------------- */

static size_t round_up(size_t x)
{
    return (x + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

static size_t layer_floats(const net_layer *l, int batch)
{
    return (size_t)batch * (size_t)l->h * (size_t)l->w * (size_t)l->c;
}

static float *aligned_floats(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0)
        return NULL;
    return p;
}

static void init_param(net *n, const net_param *p, rng_state *r)
{
    float *w = n->weights + p->off;
    const char *suffix = strrchr(p->name, '/');
    suffix = suffix ? suffix + 1 : p->name;
    if (!strcmp(suffix, "gamma") || !strcmp(suffix, "moving_variance")) {
        for (size_t i = 0; i < p->n; i++)
            w[i] = 1.0f;
        return;
    }
    if (strcmp(suffix, "kernel") && strcmp(suffix, "depthwise_kernel")) {
        memset(w, 0, p->n * sizeof *w);
        return;
    }
    /* Glorot uniform, Keras's default for Conv2D and Dense. */
    double fan_in, fan_out;
    if (p->ndim == 4) {
        double rf = (double)p->shape[0] * p->shape[1];
        fan_in = rf * p->shape[2];
        fan_out = rf * p->shape[3];
    } else {
        fan_in = p->shape[0];
        fan_out = p->shape[1];
    }
    float lim = (float)sqrt(6.0 / (fan_in + fan_out));
    for (size_t i = 0; i < p->n; i++)
        w[i] = (2.0f * rng_uniform(r) - 1.0f) * lim;
}

int net_finalize(net *n, int max_batch, uint64_t seed, tl_err *e)
{
    if (!n->layers || !n->params)
        return tl_errf(e, TL_ENOMEM, "network: out of memory while building");
    if (n->finalized)
        return tl_errf(e, TL_EINVAL, "network: already finalized");
    if (max_batch <= 0)
        return tl_errf(e, TL_EINVAL, "network: batch size must be positive, got %d", max_batch);
    n->max_batch = max_batch;

    /* parameters */
    size_t off = 0;
    for (int i = 0; i < n->n_params; i++) {
        n->params[i].off = off;
        off += round_up(n->params[i].n);
    }
    n->n_weights = off;
    n->weights = aligned_floats(off);
    n->grads = aligned_floats(off);
    if (!n->weights || !n->grads)
        return tl_errf(e, TL_ENOMEM, "network: cannot allocate %zu parameters", off);
    memset(n->weights, 0, off * sizeof(float)); /* alignment gaps too */
    memset(n->grads, 0, off * sizeof(float));
    rng_state r;
    rng_init(&r, seed);
    for (int i = 0; i < n->n_params; i++)
        init_param(n, &n->params[i], &r);

    /* the lowest layer whose backward must run: the first one with
     * trainable parameters */
    n->first_backward = n->n_layers;
    for (int i = 1; i < n->n_layers; i++) {
        const net_layer *l = &n->layers[i];
        if (l->trainable && l->n_params > 0) {
            n->first_backward = i;
            break;
        }
    }

    /* folding trained BN into convs pays on oneDNN; OpenBLAS nets keep the
     * layers as they are */
    n->train_fold = nn_have_onednn() && nn_backend_get() != NN_BACKEND_OPENBLAS;
    int rc = net_plan(n, max_batch, e);
    if (rc == 0)
        rc = net_dnn_plan(n, max_batch, e);
    if (rc)
        return rc;
    n->finalized = 1;
    return 0;
}

/* ---- lookup ------------------------------------------------------------------ */

net_param *net_find_param(net *n, const char *name)
{
    for (int i = 0; i < n->n_params; i++)
        if (!strcmp(n->params[i].name, name))
            return &n->params[i];
    return NULL;
}

int net_find_layer(const net *n, const char *name)
{
    for (int i = 0; i < n->n_layers; i++)
        if (!strcmp(n->layers[i].name, name))
            return i;
    return -1;
}

float *net_param_data(net *n, const net_param *p)
{
    n->fold_stale = 1; /* the caller may write */
    n->dnn_stale = 1;
    return n->weights + p->off;
}

void net_weights_changed(net *n)
{
    n->fold_stale = 1;
    n->dnn_stale = 1;
}

float *net_param_grad(net *n, const net_param *p)
{
    return n->grads + p->off;
}

int net_param_trainable(const net *n, const net_param *p)
{
    return !p->is_state && n->layers[p->layer].trainable;
}

float *net_output(const net *n)
{
    return n->layers[n->n_layers - 1].out;
}

const net_layer *net_last(const net *n)
{
    return &n->layers[n->n_layers - 1];
}

size_t net_bytes(const net *n)
{
    return (2 * n->n_weights + n->arena_floats + n->fold_floats) * sizeof(float) + n->dnn_bytes;
}

char *net_backend_summary(const net *n, char *buf, size_t len)
{
    int conv[2] = {0}, dw[2] = {0}, fused = 0, other = 0, folded = 0;
    for (int i = 1; i < n->n_layers; i++) {
        const net_layer *l = &n->layers[i];
        if (l->kind == NET_CONV) {
            const nn_conv2d_shape *s = &l->u.conv.s;
            if (s->groups == s->c && s->oc == s->c)
                dw[l->onednn]++;
            else
                conv[l->onednn]++;
        } else if (l->fused) {
            fused++;
        } else if (l->kind == NET_BN && l->folded_into >= 0) {
            folded++;
        } else if (l->kind != NET_FLATTEN) {
            other++;
        }
    }
    snprintf(buf, len,
             "%s, %s; onednn: conv %d, dwconv %d, fused relu %d; openblas: conv %d, dwconv %d, "
             "other layers %d; bn folded into convs %d",
             nn_backend_name(n->backend), nn_precision_name(n->precision), conv[1], dw[1], fused,
             conv[0], dw[0], other, folded);
    return buf;
}

double net_macs_per_image(const net *n)
{
    double macs = 0;
    for (int i = 0; i < n->n_layers; i++) {
        const net_layer *l = &n->layers[i];
        if (l->kind == NET_CONV) {
            const nn_conv2d_shape *s = &l->u.conv.s;
            macs += (double)s->oh * s->ow * s->oc * s->kh * s->kw * (s->c / s->groups);
        } else if (l->kind == NET_DENSE) {
            macs += (double)n->layers[l->in[0]].c * l->c;
        }
    }
    return macs;
}

/* ---- running ------------------------------------------------------------------ */

static float *pdata(net *n, const net_layer *l, int k)
{
    return n->weights + n->params[l->param0 + k].off;
}

/* Gradient slot of a layer's k-th parameter, or NULL when frozen. */
static float *pgrad(net *n, const net_layer *l, int k)
{
    return l->trainable ? n->grads + n->params[l->param0 + k].off : NULL;
}

/* BN param order: [gamma,] beta, moving_mean, moving_variance */
typedef struct {
    float *gamma, *beta, *mean, *var;
    float *dgamma, *dbeta;
} bn_params;

static bn_params bn_get(net *n, const net_layer *l)
{
    bn_params b = {0};
    int k = 0;
    if (l->u.bn.scale) {
        b.gamma = pdata(n, l, k);
        b.dgamma = pgrad(n, l, k);
        k++;
    }
    b.beta = pdata(n, l, k);
    b.dbeta = pgrad(n, l, k);
    b.mean = pdata(n, l, k + 1);
    b.var = pdata(n, l, k + 2);
    return b;
}

static int bn_batch_stats(const net_layer *l, int training)
{
    return training && l->trainable && l->bn_update;
}

/* Conv c ran on OpenBLAS although a ReLU was fused into it: apply it. */
static void relu_unfused(net *n, int c, size_t sz)
{
    const net_layer *l = &n->layers[c];
    if (l->post_relu < 0)
        return;
    if (n->layers[l->post_relu].kind == NET_RELU)
        nn_relu_forward(l->out, l->out, sz);
    else
        nn_relu6_forward(l->out, l->out, sz);
}

void net_forward(net *n, const float *x, int batch, int training)
{
    net_layer *L = n->layers;
    size_t in_sz = layer_floats(&L[0], batch);
    memcpy(L[0].out, x, in_sz * sizeof(float));
    if (n->fold)
        net_fold_refresh(n);
    net_dnn_prepare(n);
    for (int i = 1; i < n->n_layers; i++) {
        net_layer *l = &L[i];
        const net_layer *a = &L[l->in[0]];
        size_t sz = layer_floats(l, batch);
        int M = batch * l->h * l->w;
        switch (l->kind) {
        case NET_CONV: {
            nn_conv2d_shape s = l->u.conv.s;
            s.n = batch;
            /* frozen with its BN folded in: writes the BN's output */
            const float *w = l->fold_bn >= 0 ? n->fold + l->fold_off : pdata(n, l, 0);
            const float *bias = l->fold_bn >= 0  ? w + round_up(n->params[l->param0].n)
                                : l->u.conv.bias ? pdata(n, l, 1)
                                                 : NULL;
            if (l->onednn && net_dnn_forward(n, l, a->out, bias, batch) == 0)
                break;
            nn_conv2d_forward(l->out, a->out, w, bias, n->col, &s);
            if (l->onednn) /* this batch on OpenBLAS: the fused activation too */
                relu_unfused(n, i, sz);
            break;
        }
        case NET_BN: {
            if (l->folded_into >= 0)
                break;
            bn_params b = bn_get(n, l);
            if (bn_batch_stats(l, training)) {
                nn_bn_cfg cfg = {l->u.bn.eps, l->u.bn.momentum};
                nn_batchnorm_forward_train(l->out, l->aux, l->aux + l->c, a->out, b.gamma,
                                           b.beta, b.mean, b.var, cfg, M, l->c);
            } else {
                nn_batchnorm_forward_infer(l->out, a->out, b.gamma, b.beta, b.mean, b.var,
                                           l->u.bn.eps, M, l->c);
            }
            break;
        }
        case NET_RELU:
            if (!l->fused)
                nn_relu_forward(l->out, a->out, sz);
            break;
        case NET_RELU6:
            if (!l->fused)
                nn_relu6_forward(l->out, a->out, sz);
            break;
        case NET_ADD:
            nn_add_forward(l->out, a->out, L[l->in[1]].out, sz);
            break;
        case NET_CONCAT: {
            const float *ins[NET_MAX_IN];
            int cs[NET_MAX_IN];
            for (int k = 0; k < l->n_in; k++) {
                ins[k] = L[l->in[k]].out;
                cs[k] = L[l->in[k]].c;
            }
            nn_concat_forward(l->out, ins, cs, l->n_in, M);
            break;
        }
        case NET_MAXPOOL:
        case NET_AVGPOOL: {
            nn_pool2d_shape s = l->u.pool.s;
            s.n = batch;
            if (l->kind == NET_MAXPOOL)
                nn_maxpool2d_forward(l->out, a->out, &s);
            else
                nn_avgpool2d_forward(l->out, a->out, &s);
            break;
        }
        case NET_GAP:
            nn_gap_forward(l->out, a->out, batch, a->h * a->w, a->c);
            break;
        case NET_FLATTEN:
            break; /* aliases its input */
        case NET_DENSE:
            nn_dense_forward(l->out, a->out, pdata(n, l, 0),
                             l->u.dense.bias ? pdata(n, l, 1) : NULL, batch, a->c, l->c);
            break;
        case NET_DROPOUT:
            if (training && l->u.dropout.rate > 0.0f)
                nn_dropout_forward_at(l->out, l->aux, a->out, sz, l->u.dropout.rate,
                                      /* by position after the features, so a head net
                                       * built alone draws the masks it draws here */
                                      rng_mix(n->step_seed, (uint64_t)(i - (n->features > 0 ? n->features : 0))),
                                      (size_t)n->first_row * (sz / (size_t)batch));
            else
                memcpy(l->out, a->out, sz * sizeof(float));
            break;
        case NET_INPUT:
            break;
        }
        /* remembered for backward: which mode ran */
        if (l->kind == NET_BN)
            l->ran_train = bn_batch_stats(l, training);
        else if (l->kind == NET_DROPOUT)
            l->ran_train = training && l->u.dropout.rate > 0.0f;
    }
}

void net_zero_grads(net *n)
{
    memset(n->grads, 0, n->n_weights * sizeof(float));
}

/* Gradient buffer of input k of layer l, or NULL when nothing below needs it. */
static float *din(net *n, const net_layer *l, int k)
{
    return n->layers[l->in[k]].dout;
}

/* d = d where the forward output passed the gradient, else 0: the ReLU's
 * gradient buffer is its producer's. */
static void relu_backward_inplace(float *d, const float *out, size_t n, int six)
{
    if (six) {
        #pragma omp parallel for simd schedule(static) num_threads(nn_get_threads()) \
            if (n >= 65536)
        for (size_t i = 0; i < n; i++)
            d[i] = out[i] > 0.0f && out[i] < 6.0f ? d[i] : 0.0f;
    } else {
        #pragma omp parallel for simd schedule(static) num_threads(nn_get_threads()) \
            if (n >= 65536)
        for (size_t i = 0; i < n; i++)
            d[i] = out[i] > 0.0f ? d[i] : 0.0f;
    }
}

/* The activation fused into a folded BN b's conv (1 ReLU, 6 ReLU6, 0 none):
 * its backward masks dout in the BN's backward pass. */
static int fused_act_of(const net *n, int b)
{
    int r = n->layers[n->layers[b].folded_into].post_relu;
    return r < 0 ? 0 : n->layers[r].kind == NET_RELU ? 1 : 6;
}

/* Backward of a conv computing a trained BN's output with folded weights
 * w*s (s = gamma/sqrt(var+eps) per output channel): dout is the BN's. The
 * input gradient is the folded kernel's; the kernel's and bias's gradients
 * are s times those of the folded conv. */
static void conv_backward_folded(net *n, net_layer *l, float *d0, float *dw, float *db,
                                 const net_layer *a, int batch, const nn_conv2d_shape *s)
{
    const float *sc = n->layers[l->fold_bn].aux;
    size_t kn = n->params[l->param0].n;
    int C = l->c;
    float *wt = dw ? (float *)(void *)(n->dnn + n->wtmp_off) : NULL;
    float *bt = wt ? wt + round_up(kn) : NULL;
    if (wt)
        memset(wt, 0, (round_up(kn) + (size_t)C) * sizeof(float));
    if (!(l->onednn && net_dnn_backward(n, l, d0, wt, bt, a->out, batch) == 0)) {
        if (d0 && l->dinp_write)
            memset(d0, 0, layer_floats(a, batch) * sizeof(float));
        nn_conv2d_backward(d0, wt, bt, l->dout, a->out, n->fold + l->fold_off, n->col, s);
    }
    if (!wt)
        return;
    size_t K = kn / (size_t)C;
    #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) if (kn >= 65536)
    for (size_t r = 0; r < K; r++) {
        float *g = dw + r * (size_t)C;
        const float *t = wt + r * (size_t)C;
        #pragma omp simd
        for (int ch = 0; ch < C; ch++)
            g[ch] += sc[ch] * t[ch];
    }
    for (int ch = 0; db && ch < C; ch++)
        db[ch] += sc[ch] * bt[ch];
}

void net_backward(net *n, const float *dlast, int batch)
{
    net_layer *L = n->layers;
    int last = n->n_layers - 1;
    if (n->first_backward > last)
        return;
    /* Gradient buffers are shared by lifetime: each is zeroed just before
     * the first backward that accumulates into it. */
    memcpy(L[last].dout, dlast, layer_floats(&L[last], batch) * sizeof(float));

    for (int i = last; i >= n->first_backward; i--) {
        net_layer *l = &L[i];
        for (int k = 0; k < l->n_in; k++) {
            net_layer *r = &L[L[l->in[k]].out_root];
            if (r->dout && r->zero_dout_at == i && !l->dinp_write)
                memset(r->dout, 0, layer_floats(r, batch) * sizeof(float));
        }
        const net_layer *a = &L[l->in[0]];
        size_t sz = layer_floats(l, batch);
        int M = batch * l->h * l->w;
        float *d0 = din(n, l, 0);
        switch (l->kind) {
        case NET_CONV: {
            nn_conv2d_shape s = l->u.conv.s;
            s.n = batch;
            float *dw = pgrad(n, l, 0);
            float *db = l->u.conv.bias ? pgrad(n, l, 1) : NULL;
            if (!d0 && !dw && !db)
                break;
            if (l->fold_train) {
                conv_backward_folded(n, l, d0, dw, db, a, batch, &s);
                break;
            }
            if (l->onednn && net_dnn_backward(n, l, d0, dw, db, a->out, batch) == 0)
                break;
            if (d0 && l->dinp_write) /* this batch on OpenBLAS, which adds */
                memset(d0, 0, layer_floats(a, batch) * sizeof(float));
            nn_conv2d_backward(d0, dw, db, l->dout, a->out, pdata(n, l, 0), n->col, &s);
            break;
        }
        case NET_BN: {
            bn_params b = bn_get(n, l);
            if (l->folded_into >= 0) /* a trained fold: the conv takes dout as it is */
                nn_batchnorm_backward_folded(b.dgamma, b.dbeta, l->dout, l->out, b.gamma, b.beta,
                                             fused_act_of(n, i), M, l->c);
            else if (l->ran_train)
                nn_batchnorm_backward_train(d0, b.dgamma, b.dbeta, l->dout, a->out, l->aux,
                                            l->aux + l->c, b.gamma, M, l->c);
            else
                nn_batchnorm_backward_infer(d0, b.dgamma, b.dbeta, l->dout, a->out, b.gamma,
                                            b.mean, b.var, l->u.bn.eps, M, l->c);
            break;
        }
        case NET_RELU:
        case NET_RELU6:
            if (!d0 || (l->fused && L[l->in[0]].folded_into >= 0))
                break; /* done by the folded BN's backward (fused_act_of) */
            if (l->inplace)
                relu_backward_inplace(d0, l->out, sz, l->kind == NET_RELU6);
            else if (l->kind == NET_RELU)
                nn_relu_backward(d0, l->dout, l->out, sz);
            else
                nn_relu6_backward(d0, l->dout, l->out, sz);
            break;
        case NET_ADD:
            if (d0)
                nn_add_backward(d0, l->dout, sz);
            if (din(n, l, 1))
                nn_add_backward(din(n, l, 1), l->dout, sz);
            break;
        case NET_CONCAT: {
            float *ds[NET_MAX_IN];
            int cs[NET_MAX_IN];
            int any = 0;
            for (int k = 0; k < l->n_in; k++) {
                ds[k] = din(n, l, k);
                cs[k] = L[l->in[k]].c;
                any |= ds[k] != NULL;
            }
            if (any)
                nn_concat_backward(ds, l->dout, cs, l->n_in, M);
            break;
        }
        case NET_MAXPOOL:
        case NET_AVGPOOL: {
            if (!d0)
                break;
            nn_pool2d_shape s = l->u.pool.s;
            s.n = batch;
            if (l->kind == NET_MAXPOOL)
                nn_maxpool2d_backward(d0, l->dout, a->out, l->out, &s);
            else
                nn_avgpool2d_backward(d0, l->dout, &s);
            break;
        }
        case NET_GAP:
            if (d0)
                nn_gap_backward(d0, l->dout, batch, a->h * a->w, a->c);
            break;
        case NET_FLATTEN:
            break; /* its dout is its producer's */
        case NET_DENSE: {
            float *dw = pgrad(n, l, 0);
            float *db = l->u.dense.bias ? pgrad(n, l, 1) : NULL;
            nn_dense_backward(d0, dw, db, l->dout, a->out, pdata(n, l, 0), batch, a->c, l->c);
            break;
        }
        case NET_DROPOUT:
            if (!d0)
                break;
            if (l->ran_train)
                nn_dropout_backward(d0, l->dout, l->aux, sz);
            else
                nn_add_backward(d0, l->dout, sz);
            break;
        case NET_INPUT:
            break;
        }
    }
}
