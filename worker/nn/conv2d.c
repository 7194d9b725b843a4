/* conv2d through im2col + OpenBLAS sgemm, with groups; depthwise convs
 * (groups == c == oc) go to depthwise.c.
 *
 * Batch folds into the GEMM M dimension. A flattened output row r = n*OH+oh
 * owns OW pixels; im2col writes, for each pixel, K = KH*KW*C floats laid out
 * [g][kh][kw][c/g], so group g's patch is the column block at g*Kg (Kg =
 * KH*KW*C/g) with lda = K, and HWIO weight rows for group g are exactly
 * [kh][kw][c/g] with column offset g*OC/g and ldb = OC. No transposes.
 *
 *   out (R*OW, OC/g) at column g*OC/g  = col_g (R*OW, Kg) @ W_g (Kg, OC/g)
 *   dW_g                              += col_g^T @ dout_g
 *   dcol_g                             = dout_g @ W_g^T,  then col2im (+=)
 *
 * Memory bound: rows are processed in chunks of R output rows, R chosen so
 * the col buffer holds at most NN_CONV_COL_MAX floats (4M floats = 16 MB),
 * but always at least one output row (R >= 1). At that size M = R*OW is
 * still in the thousands for the usual K, so the GEMMs stay large.
 *
 * A 1x1, stride 1, unpadded conv needs no im2col: inp (N*H*W, C) already is
 * the col matrix (with lda = C, also when groups > 1). */
#include "worker/nn/nn.h"
#include "worker/nn/conv_internal.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#define NN_CONV_COL_MAX ((size_t)1 << 22)

int nn_conv2d_init(nn_conv2d_shape *s)
{
    if (s->n <= 0 || s->h <= 0 || s->w <= 0 || s->c <= 0 || s->oc <= 0 ||
        s->groups <= 0 || s->kh <= 0 || s->kw <= 0 || s->sh <= 0 || s->sw <= 0)
        return -1;
    if (s->pad.top < 0 || s->pad.bottom < 0 || s->pad.left < 0 || s->pad.right < 0)
        return -1;
    if (s->c % s->groups != 0 || s->oc % s->groups != 0)
        return -1;
    s->oh = nn_out_dim(s->h, s->kh, s->sh, s->pad.top, s->pad.bottom);
    s->ow = nn_out_dim(s->w, s->kw, s->sw, s->pad.left, s->pad.right);
    if (s->oh <= 0 || s->ow <= 0)
        return -1;
    if (nn_conv2d_is_depthwise(s) && s->kh * s->kw > NN_DW_PART)
        return -1;
    return 0;
}

static int conv_is_plain_gemm(const nn_conv2d_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 &&
           s->pad.top == 0 && s->pad.bottom == 0 && s->pad.left == 0 &&
           s->pad.right == 0;
}

/* Output rows (of OW pixels each) per im2col chunk. */
static int conv_chunk_rows(const nn_conv2d_shape *s)
{
    size_t row = (size_t)s->ow * s->kh * s->kw * s->c;
    size_t rows = NN_CONV_COL_MAX / row;
    size_t total = (size_t)s->n * s->oh;
    if (rows < 1)
        rows = 1;
    if (rows > total)
        rows = total;
    return (int)rows;
}

size_t nn_conv2d_col_size(const nn_conv2d_shape *s)
{
    if (nn_conv2d_is_depthwise(s) || conv_is_plain_gemm(s))
        return 0;
    return (size_t)conv_chunk_rows(s) * s->ow * s->kh * s->kw * s->c;
}

/* col (nrows*OW, K) <- patches of output rows [r0, r0+nrows). */
static void im2col(float *col, const float *inp, const nn_conv2d_shape *s,
                   int r0, int nrows)
{
    const int H = s->h, W = s->w, C = s->c, OH = s->oh, OW = s->ow;
    const int kh = s->kh, kw = s->kw, G = s->groups, cg = C / G;
    const size_t K = (size_t)kh * kw * C;
    const long npix = (long)nrows * OW;

    #pragma omp parallel for schedule(static)
    for (long p = 0; p < npix; p++) {
        int r = r0 + (int)(p / OW), ow = (int)(p % OW);
        int n = r / OH, oh = r % OH;
        int ih0 = oh * s->sh - s->pad.top, iw0 = ow * s->sw - s->pad.left;
        /* kernel columns kj in [kj_lo, kj_hi) fall inside the image */
        int kj_lo = iw0 < 0 ? -iw0 : 0;
        if (kj_lo > kw)
            kj_lo = kw;
        int kj_hi = W - iw0 < kw ? W - iw0 : kw;
        if (kj_hi < kj_lo)
            kj_hi = kj_lo;
        float *dst = col + (size_t)p * K;
        for (int g = 0; g < G; g++) {
            for (int ki = 0; ki < kh; ki++) {
                int ih = ih0 + ki;
                if (ih < 0 || ih >= H) {
                    memset(dst, 0, (size_t)kw * cg * sizeof *dst);
                    dst += (size_t)kw * cg;
                    continue;
                }
                /* src is pixel (ih, iw0 + kj_lo), the first inside the image */
                const float *src = inp + (((size_t)n * H + ih) * W + (iw0 + kj_lo)) * C
                                   + (size_t)g * cg;
                memset(dst, 0, (size_t)kj_lo * cg * sizeof *dst);
                if (G == 1) {
                    /* adjacent pixels are adjacent in memory: one copy */
                    memcpy(dst + (size_t)kj_lo * C, src,
                           (size_t)(kj_hi - kj_lo) * C * sizeof *dst);
                } else {
                    for (int kj = kj_lo; kj < kj_hi; kj++)
                        memcpy(dst + (size_t)kj * cg, src + (size_t)(kj - kj_lo) * C,
                               (size_t)cg * sizeof *dst);
                }
                memset(dst + (size_t)kj_hi * cg, 0, (size_t)(kw - kj_hi) * cg * sizeof *dst);
                dst += (size_t)kw * cg;
            }
        }
    }
}

/* dinp += col2im(dcol) for output rows [r0, r0+nrows). Gather form: each
 * input row is owned by one iteration, which adds its contributions in a
 * fixed (oh, ow, kj) order, so there are no races and no thread-dependent
 * rounding. */
static void col2im_add(float *dinp, const float *dcol, const nn_conv2d_shape *s,
                       int r0, int nrows)
{
    const int H = s->h, W = s->w, C = s->c, OH = s->oh, OW = s->ow;
    const int kh = s->kh, kw = s->kw, sh = s->sh, sw = s->sw, G = s->groups;
    const int cg = C / G, pt = s->pad.top, pl = s->pad.left;
    const size_t K = (size_t)kh * kw * C, Kg = (size_t)kh * kw * cg;
    const int r1 = r0 + nrows;
    const long first = (long)(r0 / OH) * H, last = (long)((r1 - 1) / OH + 1) * H;

    #pragma omp parallel for schedule(static)
    for (long q = first; q < last; q++) {
        int n = (int)(q / H), ih = (int)(q % H);
        /* output rows whose window covers ih: 0 <= ih + pt - oh*sh < kh */
        int a = ih + pt - kh + 1;
        int oh_lo = a <= 0 ? 0 : (a + sh - 1) / sh;
        int oh_hi = (ih + pt) / sh;
        if (oh_hi > OH - 1)
            oh_hi = OH - 1;
        float *drow = dinp + ((size_t)n * H + ih) * W * C;
        for (int oh = oh_lo; oh <= oh_hi; oh++) {
            int r = n * OH + oh;
            if (r < r0 || r >= r1)
                continue;
            int ki = ih + pt - oh * sh;
            for (int ow = 0; ow < OW; ow++) {
                int iw0 = ow * sw - pl;
                int kj_lo = iw0 < 0 ? -iw0 : 0;
                int kj_hi = W - iw0 < kw ? W - iw0 : kw;
                if (kj_hi <= kj_lo)
                    continue;
                const float *src = dcol + ((size_t)(r - r0) * OW + ow) * K;
                /* dst is pixel (ih, iw0 + kj_lo), the first inside the image */
                float *dst = drow + (size_t)(iw0 + kj_lo) * C;
                if (G == 1) {
                    const float *restrict sp = src + ((size_t)ki * kw + kj_lo) * C;
                    float *restrict dp = dst;
                    size_t len = (size_t)(kj_hi - kj_lo) * C;
                    #pragma omp simd
                    for (size_t i = 0; i < len; i++)
                        dp[i] += sp[i];
                    continue;
                }
                for (int g = 0; g < G; g++) {
                    for (int kj = kj_lo; kj < kj_hi; kj++) {
                        const float *restrict sp = src + g * Kg + ((size_t)ki * kw + kj) * cg;
                        float *restrict dp = dst + (size_t)(kj - kj_lo) * C + (size_t)g * cg;
                        #pragma omp simd
                        for (int i = 0; i < cg; i++)
                            dp[i] += sp[i];
                    }
                }
            }
        }
    }
}

void nn_conv2d_forward(float *out, const float *inp, const float *weight,
                       const float *bias, float *col, const nn_conv2d_shape *s)
{
    if (nn_conv2d_is_depthwise(s)) {
        nn_dwconv_forward(out, inp, weight, bias, s);
        return;
    }
    const int OC = s->oc, G = s->groups, ocg = OC / G, cg = s->c / G;
    const int OW = s->ow;
    const long M = (long)s->n * s->oh * OW;
    float beta = 0.0f;

    if (bias) {
        #pragma omp parallel for schedule(static)
        for (long m = 0; m < M; m++)
            memcpy(out + (size_t)m * OC, bias, (size_t)OC * sizeof *out);
        beta = 1.0f;
    }
    if (conv_is_plain_gemm(s)) {
        for (int g = 0; g < G; g++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, ocg, cg,
                        1.0f, inp + (size_t)g * cg, s->c, weight + (size_t)g * ocg, OC,
                        beta, out + (size_t)g * ocg, OC);
        return;
    }
    const int K = s->kh * s->kw * s->c, Kg = K / G;
    const int total = s->n * s->oh, chunk = conv_chunk_rows(s);
    for (int r0 = 0; r0 < total; r0 += chunk) {
        int nrows = total - r0 < chunk ? total - r0 : chunk;
        int m = nrows * OW;
        float *o = out + (size_t)r0 * OW * OC;
        im2col(col, inp, s, r0, nrows);
        for (int g = 0; g < G; g++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, ocg, Kg,
                        1.0f, col + (size_t)g * Kg, K, weight + (size_t)g * ocg, OC,
                        beta, o + (size_t)g * ocg, OC);
    }
}

/* Channels per slice and rows per float block of the bias gradient: each
 * block of rows is summed in float, blocks are summed in double. */
#define BIAS_SLICE 1024
#define BIAS_BLOCK 64

void nn_conv_bias_backward(float *dbias, const float *dout, size_t M, int C)
{
    double *parts[omp_get_max_threads()];

    for (int c_lo = 0; c_lo < C; c_lo += BIAS_SLICE) {
        const int nc = C - c_lo < BIAS_SLICE ? C - c_lo : BIAS_SLICE;

        #pragma omp parallel
        {
            double part[BIAS_SLICE];
            float blk[BIAS_SLICE];
            const int t = omp_get_thread_num(), T = omp_get_num_threads();
            const size_t m_hi = M * (t + 1) / T;
            parts[t] = part;
            for (int j = 0; j < nc; j++)
                part[j] = 0.0;
            for (size_t m0 = M * t / T; m0 < m_hi; m0 += BIAS_BLOCK) {
                size_t m1 = m_hi - m0 < BIAS_BLOCK ? m_hi : m0 + BIAS_BLOCK;
                for (int j = 0; j < nc; j++)
                    blk[j] = 0.0f;
                for (size_t m = m0; m < m1; m++) {
                    const float *restrict d = dout + m * C + c_lo;
                    #pragma omp simd
                    for (int j = 0; j < nc; j++)
                        blk[j] += d[j];
                }
                #pragma omp simd
                for (int j = 0; j < nc; j++)
                    part[j] += blk[j];
            }
            /* partials stay alive until the loop's implicit barrier */
            #pragma omp barrier
            #pragma omp for schedule(static)
            for (int j = 0; j < nc; j++) {
                double sum = 0.0;
                for (int u = 0; u < T; u++)
                    sum += parts[u][j];
                dbias[c_lo + j] += (float)sum;
            }
        }
    }
}

void nn_conv2d_backward(float *dinp, float *dweight, float *dbias,
                        const float *dout, const float *inp, const float *weight,
                        float *col, const nn_conv2d_shape *s)
{
    const int OC = s->oc, G = s->groups, ocg = OC / G, C = s->c, cg = C / G;
    const int OW = s->ow;
    const long M = (long)s->n * s->oh * OW;

    if (dbias)
        nn_conv_bias_backward(dbias, dout, (size_t)M, OC);
    if (nn_conv2d_is_depthwise(s)) {
        nn_dwconv_backward(dinp, dweight, dout, inp, weight, s);
        return;
    }
    if (conv_is_plain_gemm(s)) {
        for (int g = 0; g < G; g++) {
            if (dweight)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cg, ocg, (int)M,
                            1.0f, inp + (size_t)g * cg, C, dout + (size_t)g * ocg, OC,
                            1.0f, dweight + (size_t)g * ocg, OC);
            if (dinp)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, cg, ocg,
                            1.0f, dout + (size_t)g * ocg, OC, weight + (size_t)g * ocg, OC,
                            1.0f, dinp + (size_t)g * cg, C);
        }
        return;
    }
    if (!dinp && !dweight)
        return;
    const int K = s->kh * s->kw * C, Kg = K / G;
    const int total = s->n * s->oh, chunk = conv_chunk_rows(s);
    for (int r0 = 0; r0 < total; r0 += chunk) {
        int nrows = total - r0 < chunk ? total - r0 : chunk;
        int m = nrows * OW;
        const float *d = dout + (size_t)r0 * OW * OC;
        if (dweight) {
            im2col(col, inp, s, r0, nrows);
            for (int g = 0; g < G; g++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Kg, ocg, m,
                            1.0f, col + (size_t)g * Kg, K, d + (size_t)g * ocg, OC,
                            1.0f, dweight + (size_t)g * ocg, OC);
        }
        if (dinp) {
            /* col now holds dcol; the patches are no longer needed */
            for (int g = 0; g < G; g++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, Kg, ocg,
                            1.0f, d + (size_t)g * ocg, OC, weight + (size_t)g * ocg, OC,
                            0.0f, col + (size_t)g * Kg, K);
            col2im_add(dinp, col, s, r0, nrows);
        }
    }
}
