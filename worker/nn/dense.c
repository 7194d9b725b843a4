/* Fully connected layer on OpenBLAS: inp (N,IN), weight (IN,OUT) (Keras
 * layout), bias (OUT), out (N,OUT), all row-major. */
#include "worker/nn/nn.h"

#include <cblas.h>
#include <string.h>

void nn_dense_forward(float *out, const float *inp, const float *weight,
                      const float *bias, int N, int IN, int OUT)
{
    if (N <= 0 || OUT <= 0)
        return;
    /* start from the bias rows and let the GEMM add onto them */
    if (bias)
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OUT, bias, (size_t)OUT * sizeof *out);
    if (IN <= 0) {
        if (!bias)
            memset(out, 0, (size_t)N * OUT * sizeof *out);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OUT, IN,
                1.0f, inp, IN, weight, OUT, bias ? 1.0f : 0.0f, out, OUT);
}

/* dinp (N,IN) += dout @ weight^T; dweight (IN,OUT) += inp^T @ dout;
 * dbias (OUT) += column sums of dout. Any may be NULL. */
void nn_dense_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                       const float *inp, const float *weight, int N, int IN, int OUT)
{
    if (N <= 0 || OUT <= 0)
        return;
    if (dinp && IN > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, IN, OUT,
                    1.0f, dout, OUT, weight, OUT, 1.0f, dinp, IN);
    if (dweight && IN > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IN, OUT, N,
                    1.0f, inp, IN, dout, OUT, 1.0f, dweight, OUT);
    if (dbias)
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OUT;
            #pragma omp simd
            for (int o = 0; o < OUT; o++)
                dbias[o] += d[o];
        }
}
