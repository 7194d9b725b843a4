/* Private to worker/nn/conv2d.c and worker/nn/depthwise.c: the depthwise
 * kernels that nn_conv2d_forward/backward dispatch to, and helpers both
 * paths share. Not part of the engine's public header. */
#ifndef TLSWEEP_NN_CONV_INTERNAL_H
#define TLSWEEP_NN_CONV_INTERNAL_H

#include "worker/nn/nn.h"

/* groups == c == oc: one KHxKW filter per channel, weight (KH,KW,1,C). */
static inline int nn_conv2d_is_depthwise(const nn_conv2d_shape *s)
{
    return s->groups == s->c && s->oc == s->c;
}

/* Floats of weight-gradient partials each thread of the depthwise
 * backward keeps on its stack (two buffers of this size: 64 KB). KH*KW*C
 * above it is done in channel slices; KH*KW above it (a depthwise kernel
 * over 90x90) is rejected by nn_conv2d_init. */
#define NN_DW_PART 8192

void nn_dwconv_forward(float *out, const float *inp, const float *weight,
                       const float *bias, const nn_conv2d_shape *s);
void nn_dwconv_backward(float *dinp, float *dweight, const float *dout,
                        const float *inp, const float *weight,
                        const nn_conv2d_shape *s);

/* dbias (C) += column sums of dout (M, C). Threads sum fixed row ranges,
 * reduced in thread order: bit-identical runs for a given thread count. */
void nn_conv_bias_backward(float *dbias, const float *dout, size_t M, int C);

#endif
