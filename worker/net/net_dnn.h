/* The oneDNN side of a net: which convolutions oneDNN computes, their
 * primitives, fused activations and the one memory block their prepared
 * weights, scratchpads and staging live in. Internal to worker/net.
 *
 * Choice per conv, made once by net_dnn_plan() from net.backend:
 *  - openblas: none;
 *  - onednn: every conv oneDNN can compute;
 *  - auto: the same today (measured faster for every conv kind here,
 *    depthwise included: docs/engine.md); the rule lives in wants_onednn().
 * A conv on oneDNN followed by an in-place ReLU/ReLU6 (of it, or of the BN
 * folded into it) computes the activation as a post-op and the ReLU layer
 * does nothing in the forward pass. */
#ifndef TLSWEEP_NET_DNN_H
#define TLSWEEP_NET_DNN_H

#include "worker/net/net.h"

/* After net_plan: chooses, creates primitives for max_batch, allocates and
 * touches the block. A conv oneDNN cannot compute stays on OpenBLAS. */
int net_dnn_plan(net *n, int max_batch, tl_err *e);
void net_dnn_free(net *n);

/* Before a forward pass: prepared weights of every oneDNN conv that may
 * have changed (trainable ones always, frozen ones when dnn_stale). */
void net_dnn_prepare(net *n);

/* Layer l (a conv with l->onednn) for this batch: 0, or -1 when this batch
 * cannot run on oneDNN (nothing was computed: the caller uses OpenBLAS for
 * the call). A primitive that fails while running stops the process with
 * one line (it cannot: its memory is all allocated). bias: the layer's,
 * or the folded one. Backward: dinp written when l->dinp_write, else added. */
int net_dnn_forward(net *n, net_layer *l, const float *inp, const float *bias, int batch);
int net_dnn_backward(net *n, net_layer *l, float *dinp, float *dw, float *db, const float *inp,
                     int batch);

#endif
