/* Decode + resize + preprocess throughput of common/data_image.c on one
 * core, the number bench/data_compare.py sets against Pillow.
 *
 *   tlsweep-data-bench [--size S] [--seconds T] [--dump FILE] IMAGE...
 *
 * Loads every image in turn (files stay in the page cache after the first
 * pass) for at least T seconds and prints "images/s N". --dump writes the
 * first image's output before preprocessing (S*S*3 float32, RGB 0..255)
 * for a pixel comparison. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/data_image.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    int size = 224;
    double seconds = 3;
    const char *dump = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
            dump = argv[++i];
        else {
            fprintf(stderr, "usage: tlsweep-data-bench [--size S] [--seconds T] [--dump FILE] IMAGE...\n");
            return 2;
        }
    }
    int nfiles = argc - i;
    if (nfiles <= 0 || size <= 0) {
        fprintf(stderr, "tlsweep-data-bench: no images\n");
        return 2;
    }
    char **files = argv + i;
    data_image_ctx *c = data_image_ctx_new();
    float *out = malloc(sizeof(float) * size * size * 3);
    data_image_cfg cfg = {size, size, DATA_PRE_TF, 0, 0};
    tl_err e;
    if (dump) {
        if (data_image_load(c, files[0], &cfg, out, &e) != 0) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        for (int k = 0; k < size * size * 3; k++)   /* undo tf: back to 0..255 */
            out[k] = (out[k] + 1.0f) * 127.5f;
        FILE *f = fopen(dump, "wb");
        if (!f || fwrite(out, sizeof(float), (size_t)size * size * 3, f) != (size_t)size * size * 3) {
            perror(dump);
            return 1;
        }
        fclose(f);
    }
    /* warm-up pass: page cache, buffers grown */
    for (int k = 0; k < nfiles; k++)
        if (data_image_load(c, files[k], &cfg, out, &e) != 0) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
    long n = 0;
    double t0 = now(), t;
    do {
        for (int k = 0; k < nfiles; k++, n++)
            data_image_load(c, files[k], &cfg, out, &e);
        t = now() - t0;
    } while (t < seconds);
    printf("images/s %.1f  (%ld images, %d files, %dx%d, %.2f s)\n", n / t, n, nfiles, size, size, t);
    free(out);
    data_image_ctx_free(c);
    return 0;
}
