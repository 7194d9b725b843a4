/* Batch normalisation over the last axis: inp is (M, C) with M = N*H*W.
 *
 * Per-channel reductions are split into (row chunk, channel tile) work
 * items whose partial sums, in double, are added in chunk order. The split
 * depends only on M and C, never on the thread count, so statistics and
 * parameter gradients are bit-identical however many threads run. No
 * atomics, no allocation: the partial sums live on the stack (96 KiB).
 *
 * Channels are processed in groups of BN_GROUP so that per-channel
 * coefficients also fit on the stack; every element-wise pass is then a
 * subtract and one FMA per element in an inner loop over contiguous channels.
 *
 * Precision: element-wise passes work on d = x - m, m the float mean, never
 * on x itself. The fused forms x*a + b (b = beta - mean*a) and, in backward,
 * kb*x + kc each cancel two terms of size |mean|/std against a result of
 * size 1, losing log2(|mean|/std) bits; after a conv with a bias or a ReLU
 * |mean|/std reaches 6 in ResNet50, and the training-mode gradient amplifies
 * what is lost. The residual mean - m (mean in double) goes into the
 * per-channel constant, where it costs nothing.
 */
#include "worker/nn/nn.h"

#include <math.h>

#define BN_TILE 64       /* channels per work item: one vectorised inner loop */
#define BN_GROUP 256     /* channels handled per pass */
#define BN_PART 4096     /* (chunk, channel) partial sums held at once */
#define BN_MIN_ROWS 128  /* smaller chunks cost more in overhead than they gain */
#define BN_PAR_MIN 32768 /* elements below which a pass stays on one thread */

static int bn_min(int a, int b)
{
    return a < b ? a : b;
}

/* The (row chunk, channel tile) work items of a reduction over M rows and
 * cw channels: a function of the shape only, never of the thread count. */
typedef struct {
    int rows, nchunk, ntile;
} bn_split;

static bn_split bn_split_of(int M, int cw)
{
    bn_split sp;
    sp.rows = (M + BN_PART / cw - 1) / (BN_PART / cw);
    if (sp.rows < BN_MIN_ROWS)
        sp.rows = BN_MIN_ROWS;
    sp.nchunk = (M + sp.rows - 1) / sp.rows;
    sp.ntile = (cw + BN_TILE - 1) / BN_TILE;
    return sp;
}

/* For channels c0..c0+cw-1 (cw <= BN_GROUP), with d = x - shift:
 *   y == NULL: s1 = sum d,  s2 = sum d*d             (statistics, shift = a pivot)
 *   y != NULL: s1 = sum y,  s2 = sum y*d, s3 = sum d (backward, y = dout)
 * s3 may be NULL. s1, s2, s3 are indexed from 0 (channel c0). */
static void bn_sums(double *s1, double *s2, double *s3, const float *x, const float *y,
                    const float *shift, int M, int C, int c0, int cw)
{
    double part1[BN_PART], part2[BN_PART], part3[BN_PART];
    bn_split sp = bn_split_of(M, cw);
    int rows = sp.rows, nchunk = sp.nchunk, ntile = sp.ntile, items = nchunk * ntile;

    #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
        if (items > 1 && (long)M * cw >= BN_PAR_MIN)
    for (int it = 0; it < items; it++) {
        int k = it / ntile, t0 = (it % ntile) * BN_TILE;
        int tw = bn_min(BN_TILE, cw - t0);
        int r0 = k * rows, r1 = bn_min(M, r0 + rows);
        double a1[BN_TILE] = {0}, a2[BN_TILE] = {0}, a3[BN_TILE] = {0}, sh[BN_TILE];
        for (int c = 0; c < tw; c++)
            sh[c] = shift[c0 + t0 + c];
        if (y) {
            for (int r = r0; r < r1; r++) {
                const float *xr = x + (size_t)r * C + c0 + t0;
                const float *yr = y + (size_t)r * C + c0 + t0;
                #pragma omp simd
                for (int c = 0; c < tw; c++) {
                    double d = (double)xr[c] - sh[c];
                    a1[c] += yr[c];
                    a2[c] += yr[c] * d;
                    a3[c] += d;
                }
            }
        } else {
            for (int r = r0; r < r1; r++) {
                const float *xr = x + (size_t)r * C + c0 + t0;
                #pragma omp simd
                for (int c = 0; c < tw; c++) {
                    double d = (double)xr[c] - sh[c];
                    a1[c] += d;
                    a2[c] += d * d;
                }
            }
        }
        for (int c = 0; c < tw; c++) {
            part1[k * cw + t0 + c] = a1[c];
            part2[k * cw + t0 + c] = a2[c];
            part3[k * cw + t0 + c] = a3[c];
        }
    }

    for (int c = 0; c < cw; c++) {
        double t1 = 0, t2 = 0, t3 = 0;
        for (int k = 0; k < nchunk; k++) {
            t1 += part1[k * cw + c];
            t2 += part2[k * cw + c];
            t3 += part3[k * cw + c];
        }
        s1[c] = t1;
        s2[c] = t2;
        if (s3)
            s3[c] = t3;
    }
}

/* out[:, c0:c0+cw] = (x - m) * a + b, per channel; out may alias x. */
static void bn_affine(float *out, const float *x, const float *m, const float *a,
                      const float *b, int M, int C, int c0, int cw)
{
    #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
        if ((long)M * cw >= BN_PAR_MIN)
    for (int r = 0; r < M; r++) {
        const float *xr = x + (size_t)r * C + c0;
        float *orow = out + (size_t)r * C + c0;
        #pragma omp simd
        for (int c = 0; c < cw; c++)
            orow[c] = (xr[c] - m[c]) * a[c] + b[c];
    }
}

/* gamma / sqrt(var + eps), the scale of inference mode and of the fold. */
static double bn_scale(const float *gamma, const float *var, float eps, int c)
{
    double g = gamma ? gamma[c] : 1.0;
    return g / sqrt((double)var[c] + eps);
}

/* out, inp (M,C); mean, rstd (C) written; gamma, beta, run_* (C) or NULL. */
void nn_batchnorm_forward_train(float *out, float *mean, float *rstd,
                                const float *inp, const float *gamma, const float *beta,
                                float *run_mean, float *run_var,
                                nn_bn_cfg cfg, int M, int C)
{
    if (M <= 0)
        return;
    double s1[BN_GROUP], s2[BN_GROUP];
    float a[BN_GROUP], b[BN_GROUP];
    double mom = cfg.momentum;
    /* PyTorch's running variance is the unbiased estimate */
    double unbias = M > 1 ? (double)M / (M - 1) : 1.0;
    for (int c0 = 0; c0 < C; c0 += BN_GROUP) {
        int cw = bn_min(BN_GROUP, C - c0);
        /* shifted by the first row to keep sum d*d free of cancellation */
        bn_sums(s1, s2, NULL, inp, NULL, inp, M, C, c0, cw);
        for (int c = 0; c < cw; c++) {
            int ch = c0 + c;
            double dm = s1[c] / M;
            double var = s2[c] / M - dm * dm;
            if (var < 0)
                var = 0;
            double mu = (double)inp[ch] + dm;
            double rs = 1.0 / sqrt(var + cfg.eps);
            mean[ch] = (float)mu;
            rstd[ch] = (float)rs;
            if (run_mean)
                run_mean[ch] = (float)((1.0 - mom) * run_mean[ch] + mom * mu);
            if (run_var)
                run_var[ch] = (float)((1.0 - mom) * run_var[ch] + mom * var * unbias);
            double sc = gamma ? gamma[ch] * rs : rs;
            a[c] = (float)sc;
            /* y = (x - mu) * sc + beta with x - mu = (x - mean[ch]) - (mu - mean[ch]) */
            b[c] = (float)((beta ? beta[ch] : 0.0) - (mu - (double)mean[ch]) * sc);
        }
        bn_affine(out, inp, mean + c0, a, b, M, C, c0, cw);
    }
}

void nn_batchnorm_forward_infer(float *out, const float *inp, const float *gamma,
                                const float *beta, const float *run_mean,
                                const float *run_var, float eps, int M, int C)
{
    float a[BN_GROUP], b[BN_GROUP];
    for (int c0 = 0; c0 < C; c0 += BN_GROUP) {
        int cw = bn_min(BN_GROUP, C - c0);
        for (int c = 0; c < cw; c++) {
            a[c] = (float)bn_scale(gamma, run_var, eps, c0 + c);
            b[c] = beta ? beta[c0 + c] : 0.0f;
        }
        bn_affine(out, inp, run_mean + c0, a, b, M, C, c0, cw);
    }
}

/* With xhat = (x - mean) * rstd and y = gamma * xhat + beta:
 *   dbeta  = sum dout,  dgamma = sum dout * xhat,
 *   dx = gamma * rstd * (dout - mean(dout) - xhat * mean(dout * xhat)).
 * The saved mean is rounded to float; the batch mean itself is recovered
 * here, in double, from sum (x - mean[c]) (inp is the forward's input). */
void nn_batchnorm_backward_train(float *dinp, float *dgamma, float *dbeta,
                                 const float *dout, const float *inp,
                                 const float *mean, const float *rstd,
                                 const float *gamma, int M, int C)
{
    if (M <= 0)
        return;
    if (!gamma)
        dgamma = NULL;
    if (!dinp && !dgamma && !dbeta)
        return;
    double sd[BN_GROUP], sdx[BN_GROUP], sx[BN_GROUP];
    float ka[BN_GROUP], kb[BN_GROUP], kc[BN_GROUP];
    for (int c0 = 0; c0 < C; c0 += BN_GROUP) {
        int cw = bn_min(BN_GROUP, C - c0);
        /* with d = x - mean[c]: sd = sum dout, sdx = sum dout * d, sx = sum d */
        bn_sums(sd, sdx, sx, inp, dout, mean, M, C, c0, cw);
        for (int c = 0; c < cw; c++) {
            int ch = c0 + c;
            double rs = rstd[ch];
            double dmu = sx[c] / M;             /* batch mean - mean[ch] */
            double sdxc = sdx[c] - dmu * sd[c]; /* sum dout * (x - batch mean) */
            if (dbeta)
                dbeta[ch] += (float)sd[c];
            if (dgamma)
                dgamma[ch] += (float)(sdxc * rs);
            /* dx = k*dout - k*r2*d + k*(r2*dmu - sd/M), r2 = rstd^2 * sdxc / M */
            double k = (gamma ? gamma[ch] : 1.0) * rs;
            double r2 = rs * rs * sdxc / M;
            ka[c] = (float)k;
            kb[c] = (float)(-k * r2);
            kc[c] = (float)(k * (r2 * dmu - sd[c] / M));
        }
        if (!dinp)
            continue;
        const float *m = mean + c0;
        #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
            if ((long)M * cw >= BN_PAR_MIN)
        for (int r = 0; r < M; r++) {
            size_t o = (size_t)r * C + c0;
            const float *xr = inp + o, *dr = dout + o;
            float *gr = dinp + o;
            #pragma omp simd
            for (int c = 0; c < cw; c++)
                gr[c] += ka[c] * dr[c] + kb[c] * (xr[c] - m[c]) + kc[c];
        }
    }
}

/* Statistics are constants: dx = dout * gamma / sqrt(var + eps). */
void nn_batchnorm_backward_infer(float *dinp, float *dgamma, float *dbeta,
                                 const float *dout, const float *inp,
                                 const float *gamma, const float *run_mean,
                                 const float *run_var, float eps, int M, int C)
{
    if (M <= 0)
        return;
    if (!gamma)
        dgamma = NULL;
    double sd[BN_GROUP], sdx[BN_GROUP];
    float ka[BN_GROUP];
    for (int c0 = 0; c0 < C; c0 += BN_GROUP) {
        int cw = bn_min(BN_GROUP, C - c0);
        if (dgamma || dbeta) {
            bn_sums(sd, sdx, NULL, inp, dout, run_mean, M, C, c0, cw);
            for (int c = 0; c < cw; c++) {
                int ch = c0 + c;
                if (dbeta)
                    dbeta[ch] += (float)sd[c];
                if (dgamma)
                    dgamma[ch] += (float)(sdx[c] / sqrt((double)run_var[ch] + eps));
            }
        }
        if (!dinp)
            continue;
        for (int c = 0; c < cw; c++)
            ka[c] = (float)bn_scale(gamma, run_var, eps, c0 + c);
        #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
            if ((long)M * cw >= BN_PAR_MIN)
        for (int r = 0; r < M; r++) {
            size_t o = (size_t)r * C + c0;
            const float *dr = dout + o;
            float *gr = dinp + o;
            #pragma omp simd
            for (int c = 0; c < cw; c++)
                gr[c] += ka[c] * dr[c];
        }
    }
}

/* For channels c0..c0+cw-1: dout masked in place by the activation that ran
 * in place on out (act 0: none, 1: ReLU, 6: ReLU6), then s1 = sum dout,
 * s2 = sum dout * (out - beta). One pass over both tensors; rows are summed
 * in float in blocks of 16 (16 terms of one sign pattern lose nothing that
 * matters next to the double sums of the blocks), chunks as in bn_sums. */
static void bn_fold_sums(double *s1, double *s2, float *y, const float *x, const float *beta,
                         int act, int M, int C, int c0, int cw)
{
    double part1[BN_PART], part2[BN_PART];
    bn_split sp = bn_split_of(M, cw);
    int rows = sp.rows, nchunk = sp.nchunk, ntile = sp.ntile, items = nchunk * ntile;
    const float hi = act == 6 ? 6.0f : INFINITY;

    #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
        if (items > 1 && (long)M * cw >= BN_PAR_MIN)
    for (int it = 0; it < items; it++) {
        int k = it / ntile, t0 = (it % ntile) * BN_TILE;
        int tw = bn_min(BN_TILE, cw - t0);
        int r0 = k * rows, r1 = bn_min(M, r0 + rows);
        double a1[BN_TILE] = {0}, a2[BN_TILE] = {0};
        float sh[BN_TILE];
        for (int c = 0; c < tw; c++)
            sh[c] = beta[c0 + t0 + c];
        for (int rb = r0; rb < r1; rb += 16) {
            int re = bn_min(r1, rb + 16);
            float b1[BN_TILE] = {0}, b2[BN_TILE] = {0};
            for (int r = rb; r < re; r++) {
                const float *xr = x + (size_t)r * C + c0 + t0;
                float *yr = y + (size_t)r * C + c0 + t0;
                if (act) {
                    #pragma omp simd
                    for (int c = 0; c < tw; c++)
                        yr[c] = xr[c] > 0.0f && xr[c] < hi ? yr[c] : 0.0f;
                }
                #pragma omp simd
                for (int c = 0; c < tw; c++) {
                    b1[c] += yr[c];
                    b2[c] += yr[c] * (xr[c] - sh[c]);
                }
            }
            for (int c = 0; c < tw; c++) {
                a1[c] += b1[c];
                a2[c] += b2[c];
            }
        }
        for (int c = 0; c < tw; c++) {
            part1[k * cw + t0 + c] = a1[c];
            part2[k * cw + t0 + c] = a2[c];
        }
    }
    for (int c = 0; c < cw; c++) {
        double t1 = 0, t2 = 0;
        for (int k = 0; k < nchunk; k++) {
            t1 += part1[k * cw + c];
            t2 += part2[k * cw + c];
        }
        s1[c] = t1;
        s2[c] = t2;
    }
}

void nn_batchnorm_backward_folded(float *dgamma, float *dbeta, float *dout, const float *out,
                                  const float *gamma, const float *beta, int act, int M, int C)
{
    if (M <= 0)
        return;
    if (!gamma)
        dgamma = NULL;
    double sd[BN_GROUP], sdo[BN_GROUP];
    for (int c0 = 0; c0 < C; c0 += BN_GROUP) {
        int cw = bn_min(BN_GROUP, C - c0);
        /* sd = sum dout, sdo = sum dout * (out - beta) = gamma * sum dout * xhat */
        bn_fold_sums(sd, sdo, dout, out, beta, act, M, C, c0, cw);
        for (int c = 0; c < cw; c++) {
            int ch = c0 + c;
            if (dbeta)
                dbeta[ch] += (float)sd[c];
            if (dgamma && gamma[ch] != 0.0f)
                dgamma[ch] += (float)(sdo[c] / gamma[ch]);
        }
    }
}

/* weight (K,C) *= s, bias (C) = beta - run_mean * s, s = gamma/sqrt(var+eps).
 * The conv is taken to have no bias of its own (conv -> BN uses none); the
 * old bias contents are not read. */
void nn_batchnorm_fold(float *weight, float *bias, const float *gamma,
                       const float *beta, const float *run_mean,
                       const float *run_var, float eps, int K, int C)
{
    for (int c = 0; c < C; c++) {
        double sc = bn_scale(gamma, run_var, eps, c);
        bias[c] = (float)((beta ? beta[c] : 0.0) - run_mean[c] * sc);
    }
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++)
            weight[(size_t)k * C + c] *= (float)bn_scale(gamma, run_var, eps, c);
}
