/* Depthwise conv2d (groups == c == oc), NHWC, weight (KH,KW,1,C).
 *
 * NHWC keeps a pixel's channels contiguous, so every loop vectorises over
 * channels: one vector of DW_VW channels at a time, the last one masked.
 * Forward and the input gradient work on DW_P neighbouring pixels at once
 * so that each weight vector is loaded once per DW_P FMAs and the FMA
 * chains are independent.
 *
 * Threads: forward splits output rows (n, oh), the input gradient splits
 * input rows (n, ih) in gather form (each dinp row is written by one
 * thread); neither depends on the thread count. The weight gradient splits
 * output rows into per-thread partials reduced in thread order: no atomics,
 * bit-identical across runs for a given thread count. */
#include "worker/nn/nn.h"
#include "worker/nn/conv_internal.h"

#include <assert.h>
#include <omp.h>
#include <string.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#if defined(__AVX512F__)

#define DW_VW 16
typedef __m512 dw_vec;

static inline dw_vec dw_zero(void) { return _mm512_setzero_ps(); }
static inline dw_vec dw_load(const float *p, int n)
{
    return n == DW_VW ? _mm512_loadu_ps(p)
                      : _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
}
static inline void dw_store(float *p, dw_vec v, int n)
{
    if (n == DW_VW)
        _mm512_storeu_ps(p, v);
    else
        _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), v);
}
static inline dw_vec dw_fma(dw_vec a, dw_vec b, dw_vec c) { return _mm512_fmadd_ps(a, b, c); }
static inline dw_vec dw_add(dw_vec a, dw_vec b) { return _mm512_add_ps(a, b); }

#elif defined(__AVX2__) && defined(__FMA__)

#define DW_VW 8
typedef __m256 dw_vec;

static inline __m256i dw_mask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline dw_vec dw_zero(void) { return _mm256_setzero_ps(); }
static inline dw_vec dw_load(const float *p, int n)
{
    return n == DW_VW ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, dw_mask(n));
}
static inline void dw_store(float *p, dw_vec v, int n)
{
    if (n == DW_VW)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, dw_mask(n), v);
}
static inline dw_vec dw_fma(dw_vec a, dw_vec b, dw_vec c) { return _mm256_fmadd_ps(a, b, c); }
static inline dw_vec dw_add(dw_vec a, dw_vec b) { return _mm256_add_ps(a, b); }

#else

/* Portable fallback: one channel per "vector"; the compiler may still
 * vectorise across the unrolled pixels. */
#define DW_VW 1
typedef float dw_vec;

static inline dw_vec dw_zero(void) { return 0.0f; }
static inline dw_vec dw_load(const float *p, int n) { (void)n; return *p; }
static inline void dw_store(float *p, dw_vec v, int n) { (void)n; *p = v; }
static inline dw_vec dw_fma(dw_vec a, dw_vec b, dw_vec c) { return a * b + c; }
static inline dw_vec dw_add(dw_vec a, dw_vec b) { return a + b; }

#endif

/* pixels per inner block (the four accumulators a0..a3 below) */
#define DW_P 4

static inline int clampi(int x, int lo, int hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* out (N,OH,OW,C) = depthwise(inp (N,H,W,C), weight (KH,KW,1,C)) + bias */
void nn_dwconv_forward(float *out, const float *inp, const float *weight,
                       const float *bias, const nn_conv2d_shape *s)
{
    const int H = s->h, W = s->w, C = s->c, OH = s->oh, OW = s->ow;
    const int kh = s->kh, kw = s->kw, sh = s->sh, sw = s->sw;
    const int pt = s->pad.top, pl = s->pad.left;
    const long rows = (long)s->n * OH;

    #pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        int n = (int)(r / OH), oh = (int)(r % OH);
        int ih0 = oh * sh - pt;
        int ki_lo = clampi(-ih0, 0, kh), ki_hi = clampi(H - ih0, ki_lo, kh);
        int iwi[DW_P * kw]; /* input column of (pixel p, tap kj), or -1 */
        for (int ow0 = 0; ow0 < OW; ow0 += DW_P) {
            int np = OW - ow0 < DW_P ? OW - ow0 : DW_P;
            for (int p = 0; p < DW_P; p++)
                for (int kj = 0; kj < kw; kj++) {
                    int iw = (ow0 + p) * sw - pl + kj;
                    iwi[p * kw + kj] = p < np && iw >= 0 && iw < W ? iw : -1;
                }
            float *o = out + ((size_t)r * OW + ow0) * C;
            for (int c0 = 0; c0 < C; c0 += DW_VW) {
                int nc = C - c0 < DW_VW ? C - c0 : DW_VW;
                dw_vec a0 = bias ? dw_load(bias + c0, nc) : dw_zero();
                dw_vec a1 = a0, a2 = a0, a3 = a0;
                for (int ki = ki_lo; ki < ki_hi; ki++) {
                    const float *irow = inp + ((size_t)n * H + ih0 + ki) * W * C + c0;
                    const float *wrow = weight + (size_t)ki * kw * C + c0;
                    for (int kj = 0; kj < kw; kj++) {
                        dw_vec wv = dw_load(wrow + (size_t)kj * C, nc);
                        const int *iw = iwi + kj;
                        if (iw[0] >= 0)
                            a0 = dw_fma(dw_load(irow + (size_t)iw[0] * C, nc), wv, a0);
                        if (iw[kw] >= 0)
                            a1 = dw_fma(dw_load(irow + (size_t)iw[kw] * C, nc), wv, a1);
                        if (iw[2 * kw] >= 0)
                            a2 = dw_fma(dw_load(irow + (size_t)iw[2 * kw] * C, nc), wv, a2);
                        if (iw[3 * kw] >= 0)
                            a3 = dw_fma(dw_load(irow + (size_t)iw[3 * kw] * C, nc), wv, a3);
                    }
                }
                dw_store(o + c0, a0, nc);
                if (np > 1) dw_store(o + (size_t)C + c0, a1, nc);
                if (np > 2) dw_store(o + (size_t)2 * C + c0, a2, nc);
                if (np > 3) dw_store(o + (size_t)3 * C + c0, a3, nc);
            }
        }
    }
}

/* dinp (N,H,W,C) += sum over the taps that read each input pixel. */
static void dw_backward_input(float *dinp, const float *dout, const float *weight,
                              const nn_conv2d_shape *s)
{
    const int H = s->h, W = s->w, C = s->c, OH = s->oh, OW = s->ow;
    const int kh = s->kh, kw = s->kw, sh = s->sh, sw = s->sw;
    const int pt = s->pad.top, pl = s->pad.left;
    const long rows = (long)s->n * H;

    #pragma omp parallel for schedule(static)
    for (long q = 0; q < rows; q++) {
        int n = (int)(q / H), ih = (int)(q % H);
        /* kernel rows ki that read input row ih, and their output rows */
        int kis[kh], ohs[kh], nk = 0;
        for (int ki = 0; ki < kh; ki++) {
            int t = ih + pt - ki;
            if (t >= 0 && t % sh == 0 && t / sh < OH) {
                kis[nk] = ki;
                ohs[nk++] = t / sh;
            }
        }
        if (nk == 0)
            continue;
        int owi[DW_P * kw]; /* output column of (pixel p, tap kj), or -1 */
        for (int iw0 = 0; iw0 < W; iw0 += DW_P) {
            int np = W - iw0 < DW_P ? W - iw0 : DW_P;
            for (int p = 0; p < DW_P; p++)
                for (int kj = 0; kj < kw; kj++) {
                    int u = iw0 + p + pl - kj;
                    owi[p * kw + kj] = p < np && u >= 0 && u % sw == 0 && u / sw < OW
                                       ? u / sw : -1;
                }
            float *d = dinp + (((size_t)n * H + ih) * W + iw0) * C;
            for (int c0 = 0; c0 < C; c0 += DW_VW) {
                int nc = C - c0 < DW_VW ? C - c0 : DW_VW;
                dw_vec a0 = dw_zero(), a1 = a0, a2 = a0, a3 = a0;
                for (int j = 0; j < nk; j++) {
                    const float *drow = dout + ((size_t)n * OH + ohs[j]) * OW * C + c0;
                    const float *wrow = weight + (size_t)kis[j] * kw * C + c0;
                    for (int kj = 0; kj < kw; kj++) {
                        dw_vec wv = dw_load(wrow + (size_t)kj * C, nc);
                        const int *ow = owi + kj;
                        if (ow[0] >= 0)
                            a0 = dw_fma(dw_load(drow + (size_t)ow[0] * C, nc), wv, a0);
                        if (ow[kw] >= 0)
                            a1 = dw_fma(dw_load(drow + (size_t)ow[kw] * C, nc), wv, a1);
                        if (ow[2 * kw] >= 0)
                            a2 = dw_fma(dw_load(drow + (size_t)ow[2 * kw] * C, nc), wv, a2);
                        if (ow[3 * kw] >= 0)
                            a3 = dw_fma(dw_load(drow + (size_t)ow[3 * kw] * C, nc), wv, a3);
                    }
                }
                float *dp = d + c0;
                dw_store(dp, dw_add(dw_load(dp, nc), a0), nc);
                if (np > 1) { dp += C; dw_store(dp, dw_add(dw_load(dp, nc), a1), nc); }
                if (np > 2) { dp += C; dw_store(dp, dw_add(dw_load(dp, nc), a2), nc); }
                if (np > 3) { dp += C; dw_store(dp, dw_add(dw_load(dp, nc), a3), nc); }
            }
        }
    }
}

/* dweight (KH,KW,1,C) += sum over all output pixels of dout * input patch.
 * Each thread sums a fixed, contiguous range of output rows into its own
 * partials (per row first, then into the thread total), then the thread
 * totals are added in thread order. No atomics; for a given thread count
 * the result is the same on every run. */
static void dw_backward_weight(float *dweight, const float *dout, const float *inp,
                               const nn_conv2d_shape *s)
{
    const int H = s->h, W = s->w, C = s->c, OH = s->oh, OW = s->ow;
    const int kh = s->kh, kw = s->kw, sh = s->sh, sw = s->sw;
    const int pt = s->pad.top, pl = s->pad.left;
    const long rows = (long)s->n * OH;
    const int taps = kh * kw;
    assert(taps <= NN_DW_PART); /* nn_conv2d_init refuses larger kernels */
    int cc = NN_DW_PART / taps; /* channels per slice */
    if (cc > DW_VW)
        cc -= cc % DW_VW;
    if (cc > C)
        cc = C;
    float *parts[omp_get_max_threads()];

    for (int c_lo = 0; c_lo < C; c_lo += cc) {
        const int ncc = C - c_lo < cc ? C - c_lo : cc;
        const int K = taps * ncc; /* partials laid out [tap][channel] */

        #pragma omp parallel
        {
            float part[NN_DW_PART], rowp[NN_DW_PART];
            const int t = omp_get_thread_num(), T = omp_get_num_threads();
            parts[t] = part;
            memset(part, 0, (size_t)K * sizeof *part);
            for (long r = rows * t / T; r < rows * (t + 1) / T; r++) {
                int n = (int)(r / OH), oh = (int)(r % OH);
                int ih0 = oh * sh - pt;
                int ki_lo = clampi(-ih0, 0, kh), ki_hi = clampi(H - ih0, ki_lo, kh);
                memset(rowp, 0, (size_t)K * sizeof *rowp);
                for (int ow = 0; ow < OW; ow++) {
                    int iw0 = ow * sw - pl;
                    int kj_lo = clampi(-iw0, 0, kw), kj_hi = clampi(W - iw0, kj_lo, kw);
                    const float *d = dout + ((size_t)r * OW + ow) * C + c_lo;
                    for (int c0 = 0; c0 < ncc; c0 += DW_VW) {
                        int nc = ncc - c0 < DW_VW ? ncc - c0 : DW_VW;
                        dw_vec dv = dw_load(d + c0, nc);
                        for (int ki = ki_lo; ki < ki_hi; ki++) {
                            /* ip is pixel (ih0 + ki, iw0 + kj_lo) */
                            const float *ip = inp + (((size_t)n * H + ih0 + ki) * W
                                                     + (iw0 + kj_lo)) * C + c_lo + c0;
                            float *pp = rowp + (size_t)ki * kw * ncc + c0;
                            for (int kj = kj_lo; kj < kj_hi; kj++) {
                                float *q = pp + (size_t)kj * ncc;
                                dw_store(q, dw_fma(dv, dw_load(ip + (size_t)(kj - kj_lo) * C, nc),
                                                   dw_load(q, nc)), nc);
                            }
                        }
                    }
                }
                for (int j = 0; j < K; j++)
                    part[j] += rowp[j];
            }
            /* every thread's partials are complete and stay alive (on
             * their owners' stacks) until the implicit barrier of the
             * loop below */
            #pragma omp barrier
            #pragma omp for schedule(static)
            for (int j = 0; j < K; j++) {
                float sum = 0.0f;
                for (int u = 0; u < T; u++)
                    sum += parts[u][j];
                dweight[(size_t)(j / ncc) * C + c_lo + j % ncc] += sum;
            }
        }
    }
}

void nn_dwconv_backward(float *dinp, float *dweight, const float *dout,
                        const float *inp, const float *weight,
                        const nn_conv2d_shape *s)
{
    if (dinp)
        dw_backward_input(dinp, dout, weight, s);
    if (dweight)
        dw_backward_weight(dweight, dout, inp, s);
}
