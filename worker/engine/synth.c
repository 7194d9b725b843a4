#include "worker/engine/synth.h"

#include <stddef.h>

#include "common/base/rng.h"

void synth_images(float *x, int *labels, int count, int size, int classes, uint64_t seed)
{
    rng_state r;
    rng_init(&r, seed);
    int grid = classes <= 4 ? 2 : 3;
    int cell = size / grid;
    for (int i = 0; i < count; i++) {
        int k = (int)(rng_next(&r) % (uint64_t)classes);
        labels[i] = k;
        float *img = x + (size_t)i * size * size * 3;
        for (int p = 0; p < size * size * 3; p++)
            img[p] = rng_uniform(&r) * 1.2f - 1.0f;
        int y0 = (k / grid) * cell, x0 = (k % grid) * cell;
        /* the square wanders inside its cell */
        int side = cell / 2 > 1 ? cell / 2 : 1;
        int dy = (int)(rng_next(&r) % (uint64_t)(cell - side + 1));
        int dx = (int)(rng_next(&r) % (uint64_t)(cell - side + 1));
        for (int yy = 0; yy < side; yy++)
            for (int xx = 0; xx < side; xx++) {
                float *px = img + ((size_t)(y0 + dy + yy) * size + (x0 + dx + xx)) * 3;
                px[0] = px[1] = px[2] = 1.0f;
            }
    }
}
