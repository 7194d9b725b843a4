/* 2-D max and average pooling over NHWC, and global average pooling.
 *
 * Forward passes split the N*OH output rows across threads. Backward
 * passes scatter into dinp, and windows of neighbouring output rows overlap
 * when sh < kh; so output rows are taken in P = ceil(kh/sh) phases, rows
 * oy = p, p+P, p+2P... within a phase touching disjoint input rows. Every
 * dinp element then receives its contributions in an order fixed by the
 * shape alone: results do not depend on the thread count.
 */
#include "worker/nn/nn.h"

#include <string.h>

#define POOL_TILE 64       /* channels per inner loop where a per-channel flag is kept */
#define POOL_PAR_MIN 16384 /* output elements below which one thread is faster */

int nn_pool2d_init(nn_pool2d_shape *s)
{
    if (s->n <= 0 || s->h <= 0 || s->w <= 0 || s->c <= 0 || s->kh <= 0 || s->kw <= 0 ||
        s->sh <= 0 || s->sw <= 0)
        return -1;
    /* A pad as wide as the kernel would allow windows with no real cell. */
    if (s->pad.top < 0 || s->pad.bottom < 0 || s->pad.left < 0 || s->pad.right < 0 ||
        s->pad.top >= s->kh || s->pad.bottom >= s->kh ||
        s->pad.left >= s->kw || s->pad.right >= s->kw)
        return -1;
    s->oh = nn_out_dim(s->h, s->kh, s->sh, s->pad.top, s->pad.bottom);
    s->ow = nn_out_dim(s->w, s->kw, s->sw, s->pad.left, s->pad.right);
    return s->oh > 0 && s->ow > 0 ? 0 : -1;
}

/* The real (unpadded) cells of an output's window: [*a, *b) along one axis. */
static void pool_span(int o, int k, int st, int p0, int in, int *a, int *b)
{
    int lo = o * st - p0, hi = lo + k;
    *a = lo < 0 ? 0 : lo;
    *b = hi > in ? in : hi;
}

/* inp (N,H,W,C) -> out (N,OH,OW,C) */
void nn_maxpool2d_forward(float *out, const float *inp, const nn_pool2d_shape *s)
{
    int C = s->c, rows = s->n * s->oh;
    #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
        if ((long)rows * s->ow * C >= POOL_PAR_MIN)
    for (int i = 0; i < rows; i++) {
        int n = i / s->oh, oy = i % s->oh, y0, y1;
        pool_span(oy, s->kh, s->sh, s->pad.top, s->h, &y0, &y1);
        const float *img = inp + (size_t)n * s->h * s->w * C;
        for (int ox = 0; ox < s->ow; ox++) {
            int x0, x1;
            pool_span(ox, s->kw, s->sw, s->pad.left, s->w, &x0, &x1);
            float *o = out + ((size_t)i * s->ow + ox) * C;
            memcpy(o, img + ((size_t)y0 * s->w + x0) * C, (size_t)C * sizeof *o);
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) {
                    const float *p = img + ((size_t)y * s->w + x) * C;
                    /* a NaN wins, so it reaches the output */
                    #pragma omp simd
                    for (int c = 0; c < C; c++)
                        o[c] = (p[c] > o[c] || p[c] != p[c]) ? p[c] : o[c];
                }
        }
    }
}

void nn_avgpool2d_forward(float *out, const float *inp, const nn_pool2d_shape *s)
{
    int C = s->c, rows = s->n * s->oh;
    #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
        if ((long)rows * s->ow * C >= POOL_PAR_MIN)
    for (int i = 0; i < rows; i++) {
        int n = i / s->oh, oy = i % s->oh, y0, y1;
        pool_span(oy, s->kh, s->sh, s->pad.top, s->h, &y0, &y1);
        const float *img = inp + (size_t)n * s->h * s->w * C;
        for (int ox = 0; ox < s->ow; ox++) {
            int x0, x1;
            pool_span(ox, s->kw, s->sw, s->pad.left, s->w, &x0, &x1);
            float *o = out + ((size_t)i * s->ow + ox) * C;
            /* windows never leave the padded extent, so the PyTorch
             * divisor with padding counted is always kh*kw */
            int cnt = s->count_include_pad ? s->kh * s->kw : (y1 - y0) * (x1 - x0);
            float inv = 1.0f / (float)cnt;
            memset(o, 0, (size_t)C * sizeof *o);
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) {
                    const float *p = img + ((size_t)y * s->w + x) * C;
                    #pragma omp simd
                    for (int c = 0; c < C; c++)
                        o[c] += p[c];
                }
            #pragma omp simd
            for (int c = 0; c < C; c++)
                o[c] *= inv;
        }
    }
}

/* Backward of one output row (n, oy) into dinp; inp/out NULL for avg. */
static void pool_backward_row(float *dinp, const float *dout, const float *inp,
                              const float *out, const nn_pool2d_shape *s, int n, int oy)
{
    int C = s->c, y0, y1;
    pool_span(oy, s->kh, s->sh, s->pad.top, s->h, &y0, &y1);
    size_t img = (size_t)n * s->h * s->w * C;
    size_t orow = ((size_t)n * s->oh + oy) * s->ow;
    for (int ox = 0; ox < s->ow; ox++) {
        int x0, x1;
        pool_span(ox, s->kw, s->sw, s->pad.left, s->w, &x0, &x1);
        const float *d = dout + (orow + ox) * C;
        if (!out) {
            int cnt = s->count_include_pad ? s->kh * s->kw : (y1 - y0) * (x1 - x0);
            float inv = 1.0f / (float)cnt;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) {
                    float *g = dinp + img + ((size_t)y * s->w + x) * C;
                    #pragma omp simd
                    for (int c = 0; c < C; c++)
                        g[c] += d[c] * inv;
                }
            continue;
        }
        /* max: the first cell in scan order equal to the output takes the
         * gradient (a NaN output matches a NaN cell) */
        const float *o = out + (orow + ox) * C;
        for (int c0 = 0; c0 < C; c0 += POOL_TILE) {
            int cw = C - c0 < POOL_TILE ? C - c0 : POOL_TILE;
            unsigned char done[POOL_TILE] = {0};
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) {
                    size_t at = img + ((size_t)y * s->w + x) * C + c0;
                    const float *p = inp + at;
                    float *g = dinp + at;
                    #pragma omp simd
                    for (int c = 0; c < cw; c++) {
                        float v = p[c], m = o[c0 + c];
                        int hit = !done[c] && (v == m || (v != v && m != m));
                        g[c] += hit ? d[c0 + c] : 0.0f;
                        done[c] |= (unsigned char)hit;
                    }
                }
        }
    }
}

static void pool_backward(float *dinp, const float *dout, const float *inp,
                          const float *out, const nn_pool2d_shape *s)
{
    int phases = (s->kh + s->sh - 1) / s->sh;
    if (phases > s->oh)
        phases = s->oh;
    for (int p = 0; p < phases; p++) {
        int per = (s->oh - p + phases - 1) / phases; /* rows oy = p + j*phases */
        int rows = s->n * per;
        #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
            if ((long)rows * s->ow * s->c >= POOL_PAR_MIN)
        for (int i = 0; i < rows; i++)
            pool_backward_row(dinp, dout, inp, out, s, i / per, p + (i % per) * phases);
    }
}

/* dinp (N,H,W,C) += ...; inp and out are the forward's */
void nn_maxpool2d_backward(float *dinp, const float *dout, const float *inp,
                           const float *out, const nn_pool2d_shape *s)
{
    if (dinp)
        pool_backward(dinp, dout, inp, out, s);
}

void nn_avgpool2d_backward(float *dinp, const float *dout, const nn_pool2d_shape *s)
{
    if (dinp)
        pool_backward(dinp, dout, NULL, NULL, s);
}

/* inp (N,HW,C) -> out (N,C), summed in double per (image, channel tile) */
void nn_gap_forward(float *out, const float *inp, int N, int HW, int C)
{
    int ntile = (C + POOL_TILE - 1) / POOL_TILE, items = N * ntile;
    double inv = HW > 0 ? 1.0 / HW : 0.0;
    #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
        if ((long)N * HW * C >= POOL_PAR_MIN)
    for (int it = 0; it < items; it++) {
        int n = it / ntile, c0 = (it % ntile) * POOL_TILE;
        int cw = C - c0 < POOL_TILE ? C - c0 : POOL_TILE;
        double acc[POOL_TILE] = {0};
        for (int j = 0; j < HW; j++) {
            const float *p = inp + ((size_t)n * HW + j) * C + c0;
            #pragma omp simd
            for (int c = 0; c < cw; c++)
                acc[c] += p[c];
        }
        for (int c = 0; c < cw; c++)
            out[(size_t)n * C + c0 + c] = (float)(acc[c] * inv);
    }
}

void nn_gap_backward(float *dinp, const float *dout, int N, int HW, int C)
{
    if (!dinp || HW <= 0)
        return;
    float inv = 1.0f / (float)HW;
    int rows = N * HW;
    #pragma omp parallel for schedule(static) num_threads(nn_get_threads()) \
        if ((long)rows * C >= POOL_PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const float *d = dout + (size_t)(r / HW) * C;
        float *g = dinp + (size_t)r * C;
        #pragma omp simd
        for (int c = 0; c < C; c++)
            g[c] += d[c] * inv;
    }
}
