/* Inverted dropout. Element i is kept when rng_uniform_at(seed, first + i) >= rate,
 * so the mask is a pure function of (seed, i): the same for any thread
 * count and recomputable without storing it. */
#include "worker/nn/nn.h"

#include "common/base/rng.h"

#define DROP_PAR_MIN 65536 /* elements below which one thread is faster */

/* out, mask, inp (n); mask may be NULL when backward will not run */
void nn_dropout_forward(float *out, float *mask, const float *inp, size_t n,
                        float rate, uint64_t seed)
{
    nn_dropout_forward_at(out, mask, inp, n, rate, seed, 0);
}

void nn_dropout_forward_at(float *out, float *mask, const float *inp, size_t n,
                           float rate, uint64_t seed, size_t first)
{
    /* rate >= 1 drops everything; 1/(1-rate) would be inf */
    float scale = rate < 1.0f ? 1.0f / (1.0f - rate) : 0.0f;
    #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
        if (n >= DROP_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float m = rng_uniform_at(seed, first + i) >= rate ? scale : 0.0f;
        if (mask)
            mask[i] = m;
        out[i] = inp[i] * m;
    }
}

/* dinp += dout * mask */
void nn_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n)
{
    if (!dinp)
        return;
    #pragma omp parallel for simd schedule(static) num_threads(nn_get_threads()) \
        if (n >= DROP_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        dinp[i] += dout[i] * mask[i];
}
