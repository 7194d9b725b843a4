/* Test images written by the tests themselves: JPEGs through TurboJPEG
 * (with an EXIF orientation spliced in by hand), PNGs through libpng. */
#ifndef TLSWEEP_TESTS_IMGUTIL_H
#define TLSWEEP_TESTS_IMGUTIL_H

#include <stddef.h>
#include <stdint.h>

/* A fresh directory under /tmp; iu_rmdir removes it and its files, and
 * frees dir. Both, like iu_write, are testutil's tu_mkdtemp, tu_rm_rf and
 * tu_write_file: they fail the running cmocka test on error. */
char *iu_tmpdir(void);
void iu_rmdir(char *dir);
/* dir/name into a static-free malloc'd string. */
char *iu_path(const char *dir, const char *name);

/* JPEG of pix (w, h, channels per pixel format TJPF_*) at quality q with
 * subsampling TJSAMP_*. orientation 0: no EXIF; 1..8 with byte order be. */
uint8_t *iu_jpeg(const uint8_t *pix, int w, int h, int pf, int samp, int q, int orientation,
                 int be, size_t *n);
void iu_write(const char *path, const void *buf, size_t n);
/* PNG: color_type PNG_COLOR_TYPE_*, bit depth; pix rows packed as libpng
 * expects for that type/depth (16-bit big-endian). palette: n entries RGB. */
void iu_png(const char *path, const uint8_t *pix, int w, int h, int color_type, int depth,
            const uint8_t *palette, int npalette, int interlace);

/* Smooth test pattern, RGB8 (w, h). */
uint8_t *iu_pattern(int w, int h, uint64_t seed);

/* A three-class colour dataset: n 40x40 JPEGs of class k (0 blue, 1 green,
 * 2 red: sorted, so also the labels) into dir/<name>/000.jpg..., each the
 * class colour at a brightness of its own (0.95 .. 1.05) with a little
 * pixel noise, drawn by an LCG from seed + k. */
extern const char *const iu_colour_names[3];
void iu_colour_class(const char *dir, int k, int n, uint64_t seed);

#endif
