#include "worker/engine/train.h"

#include <stdlib.h>
#include <string.h>

#include "common/base/rng.h"

int train_init(train_ctx *t, net *n, const optim_cfg *cfg, uint64_t seed, tl_err *e)
{
    memset(t, 0, sizeof *t);
    if (!n->finalized)
        return tl_errf(e, TL_EINVAL, "train: network is not finalized");
    t->n = n;
    t->classes = net_last(n)->c;
    t->seed = seed;
    size_t sz = (size_t)n->max_batch * (size_t)t->classes;
    t->probs = calloc(sz, sizeof(float));
    t->dlogits = calloc(sz, sizeof(float));
    t->targets = calloc(sz, sizeof(float));
    if (!t->probs || !t->dlogits || !t->targets) {
        train_free(t);
        return tl_errf(e, TL_ENOMEM, "train: out of memory");
    }
    int rc = optim_init(&t->opt, cfg, n->n_weights, e);
    if (rc) {
        train_free(t);
        return rc;
    }
    return 0;
}

void train_free(train_ctx *t)
{
    free(t->probs);
    free(t->dlogits);
    free(t->targets);
    if (t->opt.state)
        optim_free(&t->opt);
    memset(t, 0, sizeof *t);
}

void train_set_loss(train_ctx *t, train_loss loss)
{
    t->loss = loss;
}

void train_set_label_smoothing(train_ctx *t, float ls)
{
    t->label_smoothing = ls;
}

static int count_correct(const float *p, const int *labels, int batch, int classes)
{
    int hits = 0;
    if (classes == 1) {
        for (int i = 0; i < batch; i++)
            hits += (p[i] >= 0.5f) == (labels[i] != 0);
        return hits;
    }
    for (int i = 0; i < batch; i++) {
        const float *row = p + (size_t)i * classes;
        int best = 0;
        for (int k = 1; k < classes; k++)
            if (row[k] > row[best])
                best = k;
        hits += best == labels[i];
    }
    return hits;
}

/* Decoupled weight decay applies to kernels only, as Keras excludes
 * biases and BN parameters when users follow its examples. */
static int decays(const net_param *p)
{
    const char *s = strrchr(p->name, '/');
    return s && (!strcmp(s, "/kernel") || !strcmp(s, "/depthwise_kernel"));
}

/* Loss of the current logits into t->probs; fills t->targets for sigmoid. */
static float loss_forward(train_ctx *t, const int *labels, int batch)
{
    const float *logits = net_output(t->n);
    if (t->loss == TRAIN_SOFTMAX)
        return nn_softmax_xent_smooth_forward(t->probs, logits, labels, batch, t->classes,
                                              t->label_smoothing);
    int C = t->classes;
    for (int i = 0; i < batch; i++)
        for (int k = 0; k < C; k++)
            t->targets[(size_t)i * C + k] = C == 1 ? (labels[i] != 0) : (labels[i] == k);
    return nn_sigmoid_bce_forward(t->probs, logits, t->targets, batch, C);
}

static void zero_trainable_grads(net *n)
{
    for (int i = 0; i < n->n_params; i++) {
        const net_param *p = &n->params[i];
        if (net_param_trainable(n, p))
            memset(n->grads + p->off, 0, p->n * sizeof(float));
    }
}

float train_grads(train_ctx *t, const float *x, const int *labels, int rows, int global,
                  int first_row, int *correct)
{
    net *n = t->n;
    if (correct)
        *correct = 0;
    zero_trainable_grads(n);
    if (rows <= 0)
        return 0.0f;
    n->step_seed = rng_mix(t->seed, (uint64_t)optim_iterations(&t->opt));
    n->first_row = first_row;
    net_forward(n, x, rows, 1);
    n->first_row = 0;
    float loss = loss_forward(t, labels, rows);
    if (correct)
        *correct = count_correct(t->probs, labels, rows, t->classes);
    memset(t->dlogits, 0, (size_t)rows * t->classes * sizeof(float));
    if (t->loss == TRAIN_SOFTMAX)
        nn_softmax_xent_smooth_backward_over(t->dlogits, t->probs, labels, rows, t->classes,
                                             t->label_smoothing, global);
    else
        nn_sigmoid_bce_backward_over(t->dlogits, t->probs, t->targets, rows, t->classes, global);
    net_backward(n, t->dlogits, rows);
    return loss;
}

void train_apply(train_ctx *t)
{
    net *n = t->n;
    for (int i = 0; i < n->n_params; i++) {
        const net_param *p = &n->params[i];
        if (net_param_trainable(n, p))
            optim_step(&t->opt, n->weights, n->grads, p->off, p->n, decays(p));
    }
    optim_advance(&t->opt);
}

float train_step(train_ctx *t, const float *x, const int *labels, int batch, int *correct)
{
    float loss = train_grads(t, x, labels, batch, batch, 0, correct);
    train_apply(t);
    return loss;
}

size_t train_grad_span(const train_ctx *t, size_t *off)
{
    const net *n = t->n;
    size_t lo = n->n_weights, hi = 0;
    for (int i = 0; i < n->n_params; i++) {
        const net_param *p = &n->params[i];
        if (!net_param_trainable(n, p))
            continue;
        lo = p->off < lo ? p->off : lo;
        hi = p->off + p->n > hi ? p->off + p->n : hi;
    }
    *off = hi > lo ? lo : 0;
    return hi > lo ? hi - lo : 0;
}

float train_eval(train_ctx *t, const float *x, const int *labels, int batch, int *correct)
{
    net_forward(t->n, x, batch, 0);
    float loss = loss_forward(t, labels, batch);
    if (correct)
        *correct = count_correct(t->probs, labels, batch, t->classes);
    return loss;
}
