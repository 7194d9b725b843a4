/* Element-wise layers: relu, relu6, residual add. All are memory-bound, so
 * they split the flat array across threads only when it is large enough to
 * pay for the fork. Comparisons are written so that NaN propagates to the
 * output (x < 0 ? 0 : x keeps a NaN) and the trainer's NaN check sees it. */
#include "worker/nn/nn.h"

#define ACT_PAR_MIN 65536 /* elements below which one thread is faster */

/* out, inp (n); out may alias inp */
void nn_relu_forward(float *out, const float *inp, size_t n)
{
    #pragma omp parallel for simd schedule(static) num_threads(nn_get_threads()) \
        if (n >= ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
}

/* dinp += dout where out > 0; out is the forward output */
void nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n)
{
    #pragma omp parallel for simd schedule(static) num_threads(nn_get_threads()) \
        if (n >= ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

void nn_relu6_forward(float *out, const float *inp, size_t n)
{
    #pragma omp parallel for simd schedule(static) num_threads(nn_get_threads()) \
        if (n >= ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
    }
}

/* dinp += dout where 0 < out < 6 */
void nn_relu6_backward(float *dinp, const float *dout, const float *out, size_t n)
{
    #pragma omp parallel for simd schedule(static) num_threads(nn_get_threads()) \
        if (n >= ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        dinp[i] += (out[i] > 0.0f && out[i] < 6.0f) ? dout[i] : 0.0f;
}

/* out = a + b; out may alias a or b */
void nn_add_forward(float *out, const float *a, const float *b, size_t n)
{
    #pragma omp parallel for simd schedule(static) num_threads(nn_get_threads()) \
        if (n >= ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void nn_add_backward(float *dinp, const float *dout, size_t n)
{
    if (!dinp)
        return;
    #pragma omp parallel for simd schedule(static) num_threads(nn_get_threads()) \
        if (n >= ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        dinp[i] += dout[i];
}
