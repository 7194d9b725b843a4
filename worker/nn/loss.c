/* Losses, averaged over the batch. Row sums and logs are taken in double:
 * the tensors are (N, classes), small next to any activation. */
#include "worker/nn/nn.h"

#include <assert.h>
#include <math.h>

/* logits, probs (N,C); labels (N) in [0, C). Keras's label_smoothing ls:
 * the target row is onehot(y)*(1-ls) + ls/C, so the row's loss is
 * -sum_c t_c log p_c = lse - (1-ls) z_y - (ls/C) sum_c z_c (z less its max). */
float nn_softmax_xent_smooth_forward(float *probs, const float *logits, const int *labels,
                                     int N, int C, float smoothing)
{
    double total = 0, on = 1.0 - (double)smoothing, off = (double)smoothing / C;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * C;
        float *p = probs + (size_t)n * C;
        int y = labels[n];
        assert(y >= 0 && y < C);
        /* subtract the row max so exp never overflows */
        float mx = z[0];
        for (int c = 1; c < C; c++)
            mx = z[c] > mx ? z[c] : mx;
        double sum = 0, zsum = 0;
        for (int c = 0; c < C; c++) {
            sum += exp((double)z[c] - mx);
            zsum += (double)z[c] - mx;
        }
        double inv = 1.0 / sum;
        for (int c = 0; c < C; c++)
            p[c] = (float)(exp((double)z[c] - mx) * inv);
        total += log(sum) - (on * ((double)z[y] - mx) + off * zsum);
    }
    return N > 0 ? (float)(total / N) : 0.0f;
}

float nn_softmax_xent_forward(float *probs, const float *logits, const int *labels,
                              int N, int C)
{
    return nn_softmax_xent_smooth_forward(probs, logits, labels, N, C, 0.0f);
}

/* dlogits (N,C) += (probs - targets) / N, targets as in the forward */
void nn_softmax_xent_smooth_backward(float *dlogits, const float *probs, const int *labels,
                                     int N, int C, float smoothing)
{
    nn_softmax_xent_smooth_backward_over(dlogits, probs, labels, N, C, smoothing, N);
}

/* dlogits (N,C) += (probs - targets) / denom: N rows of a batch of denom */
void nn_softmax_xent_smooth_backward_over(float *dlogits, const float *probs, const int *labels,
                                          int N, int C, float smoothing, int denom)
{
    if (!dlogits || N <= 0)
        return;
    float inv = 1.0f / (float)denom;
    float off = smoothing / (float)C * inv, on = (1.0f - smoothing) * inv;
    for (int n = 0; n < N; n++) {
        const float *p = probs + (size_t)n * C;
        float *g = dlogits + (size_t)n * C;
        for (int c = 0; c < C; c++)
            g[c] += p[c] * inv - off;
        g[labels[n]] -= on;
    }
}

void nn_softmax_xent_backward(float *dlogits, const float *probs, const int *labels,
                              int N, int C)
{
    nn_softmax_xent_smooth_backward(dlogits, probs, labels, N, C, 0.0f);
}

/* logits, probs, targets (N,C); loss per element in the overflow-free form
 * max(z,0) - z*t + log1p(exp(-|z|)) */
float nn_sigmoid_bce_forward(float *probs, const float *logits, const float *targets,
                             int N, int C)
{
    size_t n = (size_t)N * C;
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        double z = logits[i], t = targets[i];
        double e = exp(-fabs(z));
        probs[i] = (float)(z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e));
        total += (z > 0 ? z : 0.0) - z * t + log1p(e);
    }
    return n > 0 ? (float)(total / (double)n) : 0.0f;
}

/* dlogits += (probs - targets) / (N*C) */
void nn_sigmoid_bce_backward(float *dlogits, const float *probs, const float *targets,
                             int N, int C)
{
    nn_sigmoid_bce_backward_over(dlogits, probs, targets, N, C, N);
}

/* dlogits (N,C) += (probs - targets) / (denom*C): N rows of a batch of denom */
void nn_sigmoid_bce_backward_over(float *dlogits, const float *probs, const float *targets,
                                  int N, int C, int denom)
{
    size_t n = (size_t)N * C;
    if (!dlogits || n == 0)
        return;
    float inv = 1.0f / (float)((size_t)denom * C);
    for (size_t i = 0; i < n; i++)
        dlogits[i] += (probs[i] - targets[i]) * inv;
}
