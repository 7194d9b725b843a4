#include "worker/train.h"

#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

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
    if (!t->probs || !t->dlogits) {
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
    if (t->opt.state)
        optim_free(&t->opt);
    memset(t, 0, sizeof *t);
}

static int count_correct(const float *p, const int *labels, int batch, int classes)
{
    int hits = 0;
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

float train_step(train_ctx *t, const float *x, const int *labels, int batch, int *correct)
{
    net *n = t->n;
    n->step_seed = rng_mix(t->seed, (uint64_t)optim_iterations(&t->opt));
    net_forward(n, x, batch, 1);
    const float *logits = net_output(n);
    float loss = nn_softmax_xent_forward(t->probs, logits, labels, batch, t->classes);
    if (correct)
        *correct = count_correct(t->probs, labels, batch, t->classes);
    memset(t->dlogits, 0, (size_t)batch * t->classes * sizeof(float));
    nn_softmax_xent_backward(t->dlogits, t->probs, labels, batch, t->classes);
    for (int i = 0; i < n->n_params; i++) {
        const net_param *p = &n->params[i];
        if (net_param_trainable(n, p))
            memset(n->grads + p->off, 0, p->n * sizeof(float));
    }
    net_backward(n, t->dlogits, batch);
    for (int i = 0; i < n->n_params; i++) {
        const net_param *p = &n->params[i];
        if (net_param_trainable(n, p))
            optim_step(&t->opt, n->weights, n->grads, p->off, p->n, decays(p));
    }
    optim_advance(&t->opt);
    return loss;
}

float train_eval(train_ctx *t, const float *x, const int *labels, int batch, int *correct)
{
    net_forward(t->n, x, batch, 0);
    float loss = nn_softmax_xent_forward(t->probs, net_output(t->n), labels, batch, t->classes);
    if (correct)
        *correct = count_correct(t->probs, labels, batch, t->classes);
    return loss;
}
