/* One training step of a classifier: forward, softmax cross-entropy,
 * backward, optimizer update of the trainable parameters. */
#ifndef TLSWEEP_TRAIN_H
#define TLSWEEP_TRAIN_H

#include "worker/net/net.h"
#include "worker/optim/optim.h"

typedef enum {
    TRAIN_SOFTMAX = 0,  /* softmax + categorical cross-entropy, labels in [0, classes) */
    TRAIN_SIGMOID,      /* sigmoid + binary cross-entropy: one unit (labels 0/1) or one per
                           class (one-vs-rest on the integer label) */
} train_loss;

typedef struct {
    net *n;
    train_loss loss;
    float label_smoothing; /* softmax loss only (Keras's): 0 none */
    optim opt;
    int classes;
    uint64_t seed;    /* dropout masks: function of (seed, step) */
    float *probs;     /* (max_batch, classes) */
    float *dlogits;   /* (max_batch, classes) */
    float *targets;   /* (max_batch, classes), sigmoid loss only */
} train_ctx;

/* n must be finalized with a classifier head (last layer: logits).
 * The loss is softmax cross-entropy unless train_set_loss() says otherwise. */
int train_init(train_ctx *t, net *n, const optim_cfg *cfg, uint64_t seed, tl_err *e);
void train_set_loss(train_ctx *t, train_loss loss);
/* Keras's CategoricalCrossentropy(label_smoothing=ls), ls in [0, 1): the
 * softmax loss of train_step and train_eval against onehot*(1-ls) + ls/C. */
void train_set_label_smoothing(train_ctx *t, float ls);
void train_free(train_ctx *t);

/* x (batch, h, w, c), labels (batch). Returns the mean loss; *correct gets
 * the number of hits (may be NULL): top-1 for softmax and multi-unit
 * sigmoid, probability >= 0.5 matching the label for one sigmoid unit. */
float train_step(train_ctx *t, const float *x, const int *labels, int batch, int *correct);
/* train_step in two halves, for a group of ranks sharing a batch:
 * train_grads runs rows rows of a global batch of `global` (row 0 is its
 * row first_row: dropout masks) forward and backward, the loss gradient
 * divided by `global`, so summing the members' gradients gives the whole
 * batch's; returns the mean loss over its rows (0 without rows, whose
 * gradients are zero). train_apply is the optimizer step on the gradients
 * as they are then. train_step(batch) is train_grads(batch, batch, 0) and
 * train_apply, bit for bit. */
float train_grads(train_ctx *t, const float *x, const int *labels, int rows, int global,
                  int first_row, int *correct);
void train_apply(train_ctx *t);
/* The span of n->grads (and weights) holding every trainable parameter:
 * returns its length, *off its start (0, 0 when nothing trains). */
size_t train_grad_span(const train_ctx *t, size_t *off);
/* Inference-mode forward and loss, no update. */
float train_eval(train_ctx *t, const float *x, const int *labels, int batch, int *correct);

#endif
