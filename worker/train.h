/* One training step of a classifier: forward, softmax cross-entropy,
 * backward, optimizer update of the trainable parameters. */
#ifndef TLSWEEP_TRAIN_H
#define TLSWEEP_TRAIN_H

#include "worker/net/net.h"
#include "worker/optim/optim.h"

typedef struct {
    net *n;
    optim opt;
    int classes;
    uint64_t seed;    /* dropout masks: function of (seed, step) */
    float *probs;     /* (max_batch, classes) */
    float *dlogits;   /* (max_batch, classes) */
} train_ctx;

/* n must be finalized with a classifier head (last layer: logits). */
int train_init(train_ctx *t, net *n, const optim_cfg *cfg, uint64_t seed, tl_err *e);
void train_free(train_ctx *t);

/* x (batch, h, w, c), labels (batch). Returns the mean loss; *correct gets
 * the number of top-1 hits (may be NULL). */
float train_step(train_ctx *t, const float *x, const int *labels, int batch, int *correct);
/* Inference-mode forward and loss, no update. */
float train_eval(train_ctx *t, const float *x, const int *labels, int batch, int *correct);

#endif
