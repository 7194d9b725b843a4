/* Channel concat: k inputs of (M, cs[i]) side by side in out (M, sum cs). */
#include "worker/nn/nn.h"

#include <string.h>

#define CAT_PAR_MIN 65536 /* output elements below which one thread is faster */

static int cat_width(const int *cs, int k)
{
    int ct = 0;
    for (int i = 0; i < k; i++)
        ct += cs[i];
    return ct;
}

void nn_concat_forward(float *out, const float *const *inps, const int *cs, int k, int M)
{
    int ct = cat_width(cs, k);
    #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
        if ((long)M * ct >= CAT_PAR_MIN)
    for (int r = 0; r < M; r++) {
        float *o = out + (size_t)r * ct;
        for (int i = 0; i < k; i++) {
            memcpy(o, inps[i] + (size_t)r * cs[i], (size_t)cs[i] * sizeof *o);
            o += cs[i];
        }
    }
}

/* dinps[i] (M, cs[i]) += its slice of dout; a NULL dinps[i] is skipped. */
void nn_concat_backward(float *const *dinps, const float *dout, const int *cs, int k, int M)
{
    int ct = cat_width(cs, k);
    #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
        if ((long)M * ct >= CAT_PAR_MIN)
    for (int r = 0; r < M; r++) {
        const float *d = dout + (size_t)r * ct;
        for (int i = 0; i < k; i++) {
            if (dinps[i]) {
                float *g = dinps[i] + (size_t)r * cs[i];
                #pragma omp simd
                for (int c = 0; c < cs[i]; c++)
                    g[c] += d[c];
            }
            d += cs[i];
        }
    }
}
