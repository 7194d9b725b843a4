#include "imgutil.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "testutil.h"

char *iu_tmpdir(void)
{
    return tu_mkdtemp("tlsweep-data-");
}

void iu_rmdir(char *dir)
{
    if (tu_rm_rf(dir) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
}

char *iu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void put16(uint8_t *p, unsigned v, int be)
{
    if (be) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
    else { p[1] = (uint8_t)(v >> 8); p[0] = (uint8_t)v; }
}

static void put32(uint8_t *p, uint32_t v, int be)
{
    if (be) { put16(p, v >> 16, 1); put16(p + 2, v & 0xffff, 1); }
    else { put16(p, v & 0xffff, 0); put16(p + 2, v >> 16, 0); }
}

uint8_t *iu_jpeg(const uint8_t *pix, int w, int h, int pf, int samp, int q, int orientation,
                 int be, size_t *n)
{
    tjhandle tj = tjInitCompress();
    unsigned char *jb = NULL;
    unsigned long jn = 0;
    if (tjCompress2(tj, pix, w, 0, h, pf, &jb, &jn, samp, q, 0) != 0) {
        fprintf(stderr, "tjCompress2: %s\n", tjGetErrorStr2(tj));
        exit(1);
    }
    tjDestroy(tj);
    /* APP1: FF E1, length, "Exif\0\0", TIFF header, IFD0 with one entry. */
    uint8_t app1[2 + 2 + 6 + 8 + 2 + 12 + 4];
    size_t an = 0;
    if (orientation > 0) {
        memset(app1, 0, sizeof app1);
        app1[0] = 0xFF;
        app1[1] = 0xE1;
        put16(app1 + 2, sizeof app1 - 2, 1);
        memcpy(app1 + 4, "Exif\0\0", 6);
        uint8_t *t = app1 + 10;
        t[0] = t[1] = be ? 'M' : 'I';
        put16(t + 2, 42, be);
        put32(t + 4, 8, be);
        put16(t + 8, 1, be);
        put16(t + 10, 0x0112, be);
        put16(t + 12, 3, be);
        put32(t + 14, 1, be);
        put16(t + 18, (unsigned)orientation, be);
        put32(t + 22, 0, be);
        an = sizeof app1;
    }
    /* Insert after SOI and a JFIF APP0 if there is one. */
    size_t at = 2;
    if (jn > 4 && jb[2] == 0xFF && jb[3] == 0xE0)
        at = 4 + ((size_t)jb[4] << 8 | jb[5]);
    uint8_t *out = malloc(jn + an);
    memcpy(out, jb, at);
    memcpy(out + at, app1, an);
    memcpy(out + at + an, jb + at, jn - at);
    tjFree(jb);
    *n = jn + an;
    return out;
}

void iu_write(const char *path, const void *buf, size_t n)
{
    tu_write_file(path, buf, n);
}

void iu_png(const char *path, const uint8_t *pix, int w, int h, int color_type, int depth,
            const uint8_t *palette, int npalette, int interlace)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette) {
        png_color pal[256];
        for (int i = 0; i < npalette; i++) {
            pal[i].red = palette[3 * i];
            pal[i].green = palette[3 * i + 1];
            pal[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, info, pal, npalette);
    }
    png_write_info(png, info);
    if (pix) {
        int ch = color_type == PNG_COLOR_TYPE_RGB ? 3 : color_type == PNG_COLOR_TYPE_RGBA ? 4
               : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
        size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
        png_bytep *rows = malloc(sizeof *rows * h);
        for (int y = 0; y < h; y++)
            rows[y] = (png_bytep)pix + (size_t)y * rowbytes;
        png_write_image(png, rows);
        png_write_end(png, NULL);
        free(rows);
    }
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

uint8_t *iu_pattern(int w, int h, uint64_t seed)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    double ph = (double)(seed % 97) / 97.0 * 6.28;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = 127.5 + 100 * sin(ph + c + x * 0.11 * (c + 1)) * cos(y * 0.07 * (3 - c));
                p[((size_t)y * w + x) * 3 + c] = (uint8_t)lround(v);
            }
    return p;
}

const char *const iu_colour_names[3] = {"blue", "green", "red"};

static uint8_t *colour_image(int k, int w, int h, uint64_t *st)
{
    static const uint8_t colours[3][3] = {{50, 60, 210}, {40, 180, 60}, {200, 40, 40}};
    uint8_t *pix = malloc((size_t)w * h * 3);
    if (!pix)
        return NULL;
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    float bright = 0.95f + 0.1f * (float)(*st >> 40) / (float)(1 << 24);
    for (int p = 0; p < w * h * 3; p++) {
        *st = *st * 6364136223846793005ull + 1442695040888963407ull;
        float v = colours[k][p % 3] * bright + (float)((*st >> 61) & 7) - 4.0f;
        pix[p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    return pix;
}

void iu_colour_class(const char *dir, int k, int n, uint64_t seed)
{
    char *cd = iu_path(dir, iu_colour_names[k]);
    mkdir(cd, 0755);
    uint64_t st = seed + (uint64_t)k;
    for (int i = 0; i < n; i++) {
        int w = 40, h = 40;
        uint8_t *pix = colour_image(k, w, h, &st);
        if (!pix)
            fail_msg("iu_colour_class: out of memory");
        size_t len;
        uint8_t *jpg = iu_jpeg(pix, w, h, TJPF_RGB, TJSAMP_444, 90, 0, 0, &len);
        char fn[32];
        snprintf(fn, sizeof fn, "%03d.jpg", i);
        char *path = iu_path(cd, fn);
        iu_write(path, jpg, len);
        free(path);
        free(jpg);
        free(pix);
    }
    free(cd);
}
