/* Memory plan of a network, computed once by net_finalize():
 *  - a frozen conv followed by its BN computes the BN's output directly
 *    with folded weights (inference-mode BN is an affine map);
 *  - a ReLU/ReLU6 that is its producer's only consumer runs in place;
 *  - outputs needed only during the forward pass share memory by
 *    lifetime, and so do activation gradients during the backward pass;
 *    the two pools overlap since they are never live at the same time.
 * Internal to worker/net. */
#ifndef TLSWEEP_NET_PLAN_H
#define TLSWEEP_NET_PLAN_H

#include "worker/net/net.h"

/* Sets out/dout/aux pointers, fold offsets, col; allocates and touches the
 * arena and the fold buffer. */
int net_plan(net *n, int max_batch, tl_err *e);

/* Recomputes folded weights when stale. */
void net_fold_refresh(net *n);

#endif
