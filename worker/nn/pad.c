#include "worker/nn/nn.h"

#include <omp.h>

int nn_out_dim(int in, int k, int s, int p0, int p1)
{
    int span = in + p0 + p1 - k;
    if (span < 0 || s <= 0)
        return 0;
    return span / s + 1;
}

nn_pad nn_pad_same(int h, int w, int kh, int kw, int sh, int sw)
{
    /* TensorFlow: out = ceil(in / s); the odd pixel goes bottom/right. */
    int oh = (h + sh - 1) / sh, ow = (w + sw - 1) / sw;
    int th = (oh - 1) * sh + kh - h, tw = (ow - 1) * sw + kw - w;
    if (th < 0) th = 0;
    if (tw < 0) tw = 0;
    nn_pad p = {th / 2, th - th / 2, tw / 2, tw - tw / 2};
    return p;
}

nn_pad nn_pad_sym(int ph, int pw)
{
    nn_pad p = {ph, ph, pw, pw};
    return p;
}

static int nn_threads = 1;

void nn_set_threads(int n)
{
    nn_threads = n > 0 ? n : 1;
    omp_set_num_threads(nn_threads);
}

int nn_get_threads(void)
{
    return nn_threads;
}
