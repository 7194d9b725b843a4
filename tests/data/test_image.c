/* Decode, orientation, colour conversion, resize and preprocessing of
 * common/data/data_image.c, and its refusal of bad files. References: a naive
 * 2-D resampler written from Pillow's formula, hand-computed values, and
 * images the test writes itself (lossless PNGs, or JPEGs compared with a
 * tolerance). */
#include "testutil.h"
#include "data/imgutil.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/data/data_augment.h"
#include "common/data/data_image.h"

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = iu_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    iu_rmdir(dir);
    return 0;
}

/* Naive reference: every output pixel as a 2-D weighted sum over the
 * whole source with the triangle filter of Pillow's BILINEAR resample
 * (support scaled by the downscale factor), weights normalised per axis. */
static double tri(double x) { x = fabs(x); return x < 1 ? 1 - x : 0; }

static void axis_weights(int in, double b0, double b1, int out, int i, double *w)
{
    double scale = (b1 - b0) / out, fs = scale > 1 ? scale : 1;
    double center = b0 + (i + 0.5) * scale, sum = 0;
    for (int x = 0; x < in; x++) {
        /* Pillow only looks at taps within [center - support + 0.5, center + support + 0.5) */
        int lo = (int)(center - fs + 0.5), hi = (int)(center + fs + 0.5);
        w[x] = (x >= lo && x < hi) ? tri((x - center + 0.5) / fs) : 0;
        sum += w[x];
    }
    for (int x = 0; x < in; x++)
        w[x] /= sum;
}

static void naive_resize(const uint8_t *src, int sw, int sh, data_box b, double *dst, int dw, int dh)
{
    double *wx = malloc(sizeof(double) * sw), *wy = malloc(sizeof(double) * sh);
    for (int oy = 0; oy < dh; oy++) {
        axis_weights(sh, b.y0, b.y1, dh, oy, wy);
        for (int ox = 0; ox < dw; ox++) {
            axis_weights(sw, b.x0, b.x1, dw, ox, wx);
            for (int c = 0; c < 3; c++) {
                double s = 0;
                for (int y = 0; y < sh; y++)
                    for (int x = 0; x < sw; x++)
                        s += wy[y] * wx[x] * src[((size_t)y * sw + x) * 3 + c];
                dst[((size_t)oy * dw + ox) * 3 + c] = s;
            }
        }
    }
    free(wx);
    free(wy);
}

static void check_resize(int sw, int sh, data_box b, int dw, int dh)
{
    uint8_t *src = malloc((size_t)sw * sh * 3);
    for (size_t i = 0; i < (size_t)sw * sh * 3; i++)
        src[i] = (uint8_t)((i * 2654435761u) >> 13);
    float *got = malloc(sizeof(float) * dw * dh * 3);
    double *ref = malloc(sizeof(double) * dw * dh * 3);
    assert_int_equal(data_image_resize(NULL, src, sw, sh, &b, got, dw, dh), 0);
    naive_resize(src, sw, sh, b, ref, dw, dh);
    double worst = 0;
    for (size_t i = 0; i < (size_t)dw * dh * 3; i++)
        worst = fmax(worst, fabs(got[i] - ref[i]));
    if (worst > 1e-3)
        fprintf(stderr, "resize %dx%d -> %dx%d: worst %g\n", sw, sh, dw, dh, worst);
    assert_true(worst <= 1e-3);
    free(src);
    free(got);
    free(ref);
}

static void test_resize_naive_reference(void **state)
{
    (void)state;
    check_resize(37, 29, (data_box){0, 0, 37, 29}, 11, 13);    /* shrink, antialiased */
    check_resize(37, 29, (data_box){0, 0, 37, 29}, 80, 70);    /* enlarge: bilinear */
    check_resize(40, 30, (data_box){5, 3.5, 33, 27}, 9, 17);   /* box, fractional */
    check_resize(64, 64, (data_box){0, 0, 64, 64}, 64, 64);    /* identity */
    check_resize(1, 1, (data_box){0, 0, 1, 1}, 7, 5);          /* 1x1 up */
    check_resize(300, 7, (data_box){0, 0, 300, 7}, 3, 7);      /* factor 100 */
}

/* By hand: a row [0 100 200 300] halved. Pillow's triangle of support 2
 * centred at 1.0 weighs pixels 0,1,2 by .75,.75,.25 (pixel 3 sits at 3.5,
 * outside [center-2+0.5, center+2+0.5)); the second output, centred at 3.0,
 * weighs pixels 1,2,3 by .25,.75,.75. */
static void test_resize_by_hand(void **state)
{
    (void)state;
    uint8_t src[12];
    for (int i = 0; i < 4; i++)
        src[3 * i] = src[3 * i + 1] = src[3 * i + 2] = (uint8_t)(i * 50);
    float out[6];
    data_box b = {0, 0, 4, 1};
    assert_int_equal(data_image_resize(NULL, src, 4, 1, &b, out, 2, 1), 0);
    assert_float_equal(out[0], (0 * .75 + 50 * .75 + 100 * .25) / 1.75, 1e-4);
    assert_float_equal(out[3], (50 * .25 + 100 * .75 + 150 * .75) / 1.75, 1e-4);
    /* enlarging 2 -> 4: plain bilinear with edge clamping: 0, 12.5, 37.5, 50 */
    uint8_t s2[6] = {0, 0, 0, 50, 50, 50};
    float o2[12];
    b = (data_box){0, 0, 2, 1};
    assert_int_equal(data_image_resize(NULL, s2, 2, 1, &b, o2, 4, 1), 0);
    assert_float_equal(o2[0], 0.0, 1e-5);
    assert_float_equal(o2[3], 12.5, 1e-5);
    assert_float_equal(o2[6], 37.5, 1e-5);
    assert_float_equal(o2[9], 50.0, 1e-5);
}

/* A lossless RGB PNG of iu_pattern's pixels (*pix, to free) in dir. */
static char *pattern_png(const char *name, int W, int H, uint8_t **pix)
{
    *pix = iu_pattern(W, H, 3);
    char *p = iu_path(dir, name);
    iu_png(p, *pix, W, H, PNG_COLOR_TYPE_RGB, 8, NULL, 0, 0);
    return p;
}

/* The whole path on a lossless PNG against the naive reference. */
static void test_load_png_vs_reference(void **state)
{
    (void)state;
    int W = 50, H = 40;
    uint8_t *pix;
    char *p = pattern_png("ref.png", W, H, &pix);
    float out[24 * 24 * 3];
    double ref[24 * 24 * 3];
    tl_err e;
    data_image_ctx *c = data_image_ctx_new();
    data_image_cfg cfg = {24, 24, DATA_PRE_TF, 0, 0};
    assert_int_equal(data_image_load(c, p, &cfg, out, &e), 0);
    naive_resize(pix, W, H, (data_box){0, 0, W, H}, ref, 24, 24);
    for (int i = 0; i < 24 * 24 * 3; i++)
        assert_float_equal(out[i], ref[i] / 127.5 - 1, 1e-5);
    /* crop_to_aspect_ratio: the centred 40x40 box, as Keras smart_resize */
    cfg.crop_to_aspect_ratio = 1;
    assert_int_equal(data_image_load(c, p, &cfg, out, &e), 0);
    naive_resize(pix, W, H, (data_box){5, 0, 45, 40}, ref, 24, 24);
    for (int i = 0; i < 24 * 24 * 3; i++)
        assert_float_equal(out[i], ref[i] / 127.5 - 1, 1e-5);
    data_image_ctx_free(c);
    free(pix);
    free(p);
}

/* TurboJPEG 2.1's factors below 1 are k/8; the smallest that keeps both
 * sides >= the need: 800x600 for 96 -> 1/4 (200x150: 1/8 gives 100x75);
 * for 224 -> 3/8 (300x225); for 600 -> 1 (no 7/8 fits 600 high); 0x0
 * means full size. */
static void test_dct_scaling(void **state)
{
    (void)state;
    uint8_t *pix = iu_pattern(800, 600, 1);
    size_t n;
    uint8_t *j = iu_jpeg(pix, 800, 600, TJPF_RGB, TJSAMP_420, 90, 0, 0, &n);
    data_image_ctx *c = data_image_ctx_new();
    struct { int need_w, need_h, w, h; } cases[] = {
        {96, 96, 200, 150}, {224, 224, 300, 225}, {600, 600, 800, 600}, {0, 0, 800, 600},
        {100, 75, 100, 75}, {101, 10, 200, 150}, {900, 900, 800, 600},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int W, H, w, h;
        const uint8_t *rgb;
        tl_err e;
        assert_int_equal(data_image_open_mem(c, j, n, "mem.jpg", 0, &W, &H, &e), 0);
        assert_int_equal(W, 800);
        assert_int_equal(H, 600);
        int rc = data_image_decode(c, cases[i].need_w, cases[i].need_h, &rgb, &w, &h, &e);
        assert_int_equal(rc, 0);
        assert_int_equal(w, cases[i].w);
        assert_int_equal(h, cases[i].h);
    }
    data_image_ctx_free(c);
    free(j);
    free(pix);
}

/* A 48x32 displayed image with a coloured quadrant in each corner. For
 * each orientation the file stores the pixels so that the EXIF
 * definitions (0th row / 0th column meaning) bring them back: stored_tl[o]
 * etc. name which displayed corner sits at each stored corner. */
enum { TL, TR, BL, BR };
static const uint8_t corner_rgb[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
static const int stored_at[9][4] = {
    /* stored TL, TR, BL, BR <- displayed corner */
    {0}, {TL, TR, BL, BR}, {TR, TL, BR, BL}, {BR, BL, TR, TL}, {BL, BR, TL, TR},
    {TL, BL, TR, BR}, {TR, BR, TL, BL}, {BR, TR, BL, TL}, {BL, TL, BR, TR},
};

static void test_exif_orientation(void **state)
{
    (void)state;
    const int DW = 48, DH = 32;
    data_image_ctx *c = data_image_ctx_new();
    for (int be = 0; be < 2; be++)
        for (int o = 1; o <= 8; o++) {
            int sw = o >= 5 ? DH : DW, sh = o >= 5 ? DW : DH;
            uint8_t *s = malloc((size_t)sw * sh * 3);
            for (int y = 0; y < sh; y++)
                for (int x = 0; x < sw; x++) {
                    int q = (y < sh / 2 ? 0 : 2) + (x < sw / 2 ? 0 : 1);
                    memcpy(s + ((size_t)y * sw + x) * 3, corner_rgb[stored_at[o][q]], 3);
                }
            size_t n;
            uint8_t *j = iu_jpeg(s, sw, sh, TJPF_RGB, TJSAMP_444, 95, o, be, &n);
            int W, H, w, h;
            const uint8_t *rgb;
            tl_err e;
            assert_int_equal(data_image_open_mem(c, j, n, "exif.jpg", 0, &W, &H, &e), 0);
            assert_int_equal(W, DW);
            assert_int_equal(H, DH);
            assert_int_equal(data_image_decode(c, 0, 0, &rgb, &w, &h, &e), 0);
            assert_int_equal(w, DW);
            assert_int_equal(h, DH);
            int px[4][2] = {{5, 5}, {DW - 6, 5}, {5, DH - 6}, {DW - 6, DH - 6}};
            for (int k = 0; k < 4; k++)
                for (int ch = 0; ch < 3; ch++) {
                    int v = rgb[((size_t)px[k][1] * w + px[k][0]) * 3 + ch];
                    if (abs(v - corner_rgb[k][ch]) > 12)
                        fail_msg("orientation %d (%s): corner %d channel %d is %d, want %d", o,
                                 be ? "MM" : "II", k, ch, v, corner_rgb[k][ch]);
                }
            /* probe agrees */
            char *p = iu_path(dir, "exif.jpg");
            iu_write(p, j, n);
            assert_int_equal(data_image_probe(p, 0, &W, &H, &e), 0);
            assert_int_equal(W, DW);
            assert_int_equal(H, DH);
            free(p);
            free(j);
            free(s);
        }
    data_image_ctx_free(c);
}

static void test_gray_and_cmyk_jpeg(void **state)
{
    (void)state;
    data_image_ctx *c = data_image_ctx_new();
    int W, H, w, h;
    const uint8_t *rgb;
    tl_err e;
    size_t n;
    /* grayscale: R = G = B */
    uint8_t g[16 * 16];
    for (int i = 0; i < 256; i++)
        g[i] = (uint8_t)(i / 16 * 16);
    uint8_t *j = iu_jpeg(g, 16, 16, TJPF_GRAY, TJSAMP_GRAY, 100, 0, 0, &n);
    assert_int_equal(data_image_open_mem(c, j, n, "gray.jpg", 0, &W, &H, &e), 0);
    assert_int_equal(data_image_decode(c, 0, 0, &rgb, &w, &h, &e), 0);
    for (int i = 0; i < 256; i++) {
        assert_int_equal(rgb[3 * i], rgb[3 * i + 1]);
        assert_int_equal(rgb[3 * i], rgb[3 * i + 2]);
        assert_true(abs(rgb[3 * i] - g[i]) <= 3);
    }
    free(j);
    /* CMYK (Adobe-inverted values, as Photoshop writes them): flat
     * quadrants, expected R = C*K/255 etc. */
    uint8_t cm[32 * 32 * 4];
    const uint8_t inks[4][4] = {{255, 0, 0, 255}, {0, 255, 255, 255}, {200, 100, 50, 128}, {255, 255, 255, 0}};
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
            memcpy(cm + (y * 32 + x) * 4, inks[(y / 16) * 2 + x / 16], 4);
    j = iu_jpeg(cm, 32, 32, TJPF_CMYK, TJSAMP_444, 100, 0, 0, &n);
    assert_int_equal(data_image_open_mem(c, j, n, "cmyk.jpg", 0, &W, &H, &e), 0);
    assert_int_equal(data_image_decode(c, 0, 0, &rgb, &w, &h, &e), 0);
    assert_int_equal(w, 32);
    for (int q = 0; q < 4; q++) {
        int x = (q % 2) * 16 + 8, y = (q / 2) * 16 + 8;
        for (int ch = 0; ch < 3; ch++) {
            int want = inks[q][ch] * inks[q][3] / 255;
            int v = rgb[(y * 32 + x) * 3 + ch];
            if (abs(v - want) > 3)
                fail_msg("cmyk quadrant %d channel %d: %d, want %d", q, ch, v, want);
        }
    }
    free(j);
    data_image_ctx_free(c);
}

static void decode_file(const char *p, uint8_t *out, int w, int h)
{
    data_image_ctx *c = data_image_ctx_new();
    int W, H, dw = 0, dh = 0; /* clang: fail_msg is not known not to return */
    const uint8_t *rgb;
    tl_err e;
    int rc = data_image_open(c, p, 0, &W, &H, &e);
    if (rc == 0)
        rc = data_image_decode(c, 0, 0, &rgb, &dw, &dh, &e);
    if (rc != 0)
        fail_msg("%s", e.msg);
    assert_int_equal(dw, w);
    assert_int_equal(dh, h);
    memcpy(out, rgb, (size_t)w * h * 3);
    data_image_ctx_free(c);
}

static void test_png_variants(void **state)
{
    (void)state;
    enum { W = 13, H = 7 };
    uint8_t *rgb = iu_pattern(W, H, 9), got[W * H * 3], buf[W * H * 8];
    char *p = iu_path(dir, "v.png");
    for (int interlace = 0; interlace < 2; interlace++) {
        /* RGB 8 */
        iu_png(p, rgb, W, H, PNG_COLOR_TYPE_RGB, 8, NULL, 0, interlace);
        decode_file(p, got, W, H);
        assert_memory_equal(got, rgb, sizeof got);
        /* RGBA: alpha dropped, colour kept as stored (not composited) */
        for (int i = 0; i < W * H; i++) {
            memcpy(buf + 4 * i, rgb + 3 * i, 3);
            buf[4 * i + 3] = (uint8_t)(i * 7);
        }
        iu_png(p, buf, W, H, PNG_COLOR_TYPE_RGBA, 8, NULL, 0, interlace);
        decode_file(p, got, W, H);
        assert_memory_equal(got, rgb, sizeof got);
        /* RGB 16: high byte (libpng scales v16 * 255 / 65535, rounded) */
        for (int i = 0; i < W * H * 3; i++) {
            buf[2 * i] = rgb[i];
            buf[2 * i + 1] = rgb[i];   /* v16 = v * 257 -> exactly v */
        }
        iu_png(p, buf, W, H, PNG_COLOR_TYPE_RGB, 16, NULL, 0, interlace);
        decode_file(p, got, W, H);
        assert_memory_equal(got, rgb, sizeof got);
        /* gray 8 and gray+alpha */
        for (int i = 0; i < W * H; i++)
            buf[i] = rgb[3 * i];
        iu_png(p, buf, W, H, PNG_COLOR_TYPE_GRAY, 8, NULL, 0, interlace);
        decode_file(p, got, W, H);
        for (int i = 0; i < W * H; i++)
            for (int ch = 0; ch < 3; ch++)
                assert_int_equal(got[3 * i + ch], rgb[3 * i]);
        /* gray 16 */
        for (int i = 0; i < W * H; i++) {
            buf[2 * i] = rgb[3 * i];
            buf[2 * i + 1] = rgb[3 * i];
        }
        iu_png(p, buf, W, H, PNG_COLOR_TYPE_GRAY, 16, NULL, 0, interlace);
        decode_file(p, got, W, H);
        for (int i = 0; i < W * H; i++)
            assert_int_equal(got[3 * i + 2], rgb[3 * i]);
        /* gray 1-bit: 0 -> 0, 1 -> 255; one row is 2 bytes for 13 pixels */
        memset(buf, 0, sizeof buf);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if ((x + y) % 2)
                    buf[y * 2 + x / 8] |= (uint8_t)(0x80 >> (x % 8));
        iu_png(p, buf, W, H, PNG_COLOR_TYPE_GRAY, 1, NULL, 0, interlace);
        decode_file(p, got, W, H);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                assert_int_equal(got[(y * W + x) * 3 + 1], (x + y) % 2 ? 255 : 0);
        /* palette, 8-bit indices */
        uint8_t pal[3 * 4] = {10, 20, 30, 200, 100, 0, 0, 0, 255, 255, 255, 255};
        for (int i = 0; i < W * H; i++)
            buf[i] = (uint8_t)(i % 4);
        iu_png(p, buf, W, H, PNG_COLOR_TYPE_PALETTE, 8, pal, 4, interlace);
        decode_file(p, got, W, H);
        for (int i = 0; i < W * H; i++)
            assert_memory_equal(got + 3 * i, pal + 3 * (i % 4), 3);
    }
    free(p);
    free(rgb);
}

/* Every bad input is a one-line error naming the file and the reason. */
static void expect_bad(const char *path, const char *reason)
{
    data_image_ctx *c = data_image_ctx_new();
    float out[8 * 8 * 3];
    data_image_cfg cfg = {8, 8, DATA_PRE_TF, 0, 0};
    tl_err e = {0, ""};
    int rc = data_image_load(c, path, &cfg, out, &e);
    if (rc == 0)
        fail_msg("%s: loaded, expected '%s'", path, reason);
    assert_int_equal(rc, e.code);
    tu_assert_one_line_error(&e, path, reason);
    /* probe: header problems are found without decoding */
    int w, h;
    tl_err e2;
    rc = data_image_probe(path, 0, &w, &h, &e2);
    if (rc != 0)
        assert_non_null(strstr(e2.msg, path));
    data_image_ctx_free(c);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    uint8_t *pix = iu_pattern(64, 48, 5);
    size_t n;
    uint8_t *j = iu_jpeg(pix, 64, 48, TJPF_RGB, TJSAMP_420, 90, 0, 0, &n);

    char *p = iu_path(dir, "truncated.jpg");
    iu_write(p, j, n / 2);
    expect_bad(p, "truncated");
    free(p);

    p = iu_path(dir, "zero.jpg");
    iu_write(p, "", 0);
    expect_bad(p, "empty file");
    free(p);

    p = iu_path(dir, "text.jpg");
    const char *txt = "this is not an image\n";
    iu_write(p, txt, strlen(txt));
    expect_bad(p, "not a JPEG or PNG");
    free(p);

    p = iu_path(dir, "nosuch.jpg");
    expect_bad(p, "No such file");
    free(p);

    p = iu_path(dir, "dangling.jpg");
    assert_int_equal(symlink("/nonexistent/tlsweep/target.jpg", p), 0);
    expect_bad(p, "cannot open");
    free(p);

    p = iu_path(dir, "adir.jpg");   /* unreadable as a file (tests run as root) */
    assert_int_equal(mkdir(p, 0700), 0);
    expect_bad(p, "not a regular file");
    free(p);

    /* 30000x30000 in the SOF header of a real small JPEG: refused from the
     * header, before any pixel buffer (ASan would catch a 2.7 GB attempt). */
    uint8_t *big = malloc(n);
    memcpy(big, j, n);
    int patched = 0;
    for (size_t i = 2; i + 9 < n; i++)
        if (big[i] == 0xFF && big[i + 1] == 0xC0) {
            big[i + 5] = big[i + 7] = 0x75;
            big[i + 6] = big[i + 8] = 0x30;
            patched = 1;
            break;
        }
    assert_true(patched);
    p = iu_path(dir, "huge.jpg");
    iu_write(p, big, n);
    expect_bad(p, "megapixel limit");
    int w, h;
    tl_err e;
    assert_int_equal(data_image_probe(p, 0, &w, &h, &e), TL_EINVAL);
    assert_int_equal(data_image_probe(p, (int64_t)30000 * 30000, &w, &h, &e), 0);
    assert_int_equal(w, 30000);
    free(p);
    free(big);

    /* Cut just before its SOF0 marker (quantisation tables, no frame): some
     * TurboJPEG releases (Debian 12's) return success from the header call
     * and leave every output unset. Refused from the header, by path and in
     * memory; the cuts at and after the SOF segment are refused too. */
    size_t sof = 0;
    for (size_t i = 2; i + 1 < n && !sof; i++)
        if (j[i] == 0xFF && j[i + 1] == 0xC0)
            sof = i;
    assert_true(sof > 2);
    size_t sof_len = (size_t)j[sof + 2] << 8 | j[sof + 3];
    const size_t cuts[] = {sof, sof + 1, sof + 2 + sof_len};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        p = iu_path(dir, "nosof.jpg");
        iu_write(p, j, cuts[k]);
        expect_bad(p, "JPEG");
        w = h = -7;
        tl_err e3 = {0, ""};
        assert_int_equal(data_image_probe(p, 0, &w, &h, &e3), TL_EFORMAT);
        tu_assert_one_line_error(&e3, p, "JPEG");
        data_image_ctx *c3 = data_image_ctx_new();
        tl_err e4 = {0, ""};
        assert_int_equal(data_image_open_mem(c3, j, cuts[k], "cut-in-memory.jpg", 0, &w, &h, &e4),
                         TL_EFORMAT);
        tu_assert_one_line_error(&e4, "cut-in-memory.jpg", "JPEG");
        /* the context still decodes a whole image afterwards */
        assert_int_equal(data_image_open_mem(c3, j, n, "whole.jpg", 0, &w, &h, &e4), 0);
        assert_int_equal(w, 64);
        assert_int_equal(h, 48);
        data_image_ctx_free(c3);
        free(p);
    }

    /* the same for a PNG header (no rows written) */
    p = iu_path(dir, "huge.png");
    iu_png(p, NULL, 30000, 30000, PNG_COLOR_TYPE_RGB, 8, NULL, 0, 0);
    expect_bad(p, "megapixel limit");
    free(p);

    /* truncated PNG */
    p = iu_path(dir, "t.png");
    iu_png(p, pix, 64, 48, PNG_COLOR_TYPE_RGB, 8, NULL, 0, 0);
    FILE *f = fopen(p, "rb");
    uint8_t pb[20000];
    size_t pn = fread(pb, 1, sizeof pb, f);
    fclose(f);
    iu_write(p, pb, pn / 2);
    expect_bad(p, "bad PNG");
    free(p);

    /* a PNG named .jpg decodes as a PNG */
    p = iu_path(dir, "really_png.jpg");
    iu_png(p, pix, 64, 48, PNG_COLOR_TYPE_RGB, 8, NULL, 0, 0);
    uint8_t got[64 * 48 * 3];
    decode_file(p, got, 64, 48);
    assert_memory_equal(got, pix, sizeof got);
    free(p);

    /* a 1x1 image is upscaled fine */
    uint8_t one[3] = {10, 200, 30};
    free(j);
    j = iu_jpeg(one, 1, 1, TJPF_RGB, TJSAMP_444, 100, 0, 0, &n);
    p = iu_path(dir, "one.jpg");
    iu_write(p, j, n);
    float out[5 * 4 * 3];
    data_image_cfg cfg = {5, 4, DATA_PRE_TF, 1, 0};
    data_image_ctx *c = data_image_ctx_new();
    assert_int_equal(data_image_load(c, p, &cfg, out, &e), 0);
    for (int i = 0; i < 20; i++)
        for (int ch = 0; ch < 3; ch++)
            assert_float_equal(out[3 * i + ch], one[ch] / 127.5 - 1, 3 / 127.5);
    data_image_ctx_free(c);
    free(p);
    free(j);
    free(pix);
}

static void test_preprocess(void **state)
{
    (void)state;
    float x[6] = {0, 127.5f, 255, 10, 20, 30};
    float y[6];
    memcpy(y, x, sizeof x);
    data_image_preprocess(y, 2, DATA_PRE_TF);
    float tf[6] = {-1, 0, 1, 10 / 127.5f - 1, 20 / 127.5f - 1, 30 / 127.5f - 1};
    for (int i = 0; i < 6; i++)
        assert_float_equal(y[i], tf[i], 1e-6);
    memcpy(y, x, sizeof x);
    data_image_preprocess(y, 2, DATA_PRE_CAFFE);
    float caffe[6] = {255 - 103.939f, 127.5f - 116.779f, 0 - 123.68f, 30 - 103.939f, 20 - 116.779f, 10 - 123.68f};
    for (int i = 0; i < 6; i++)
        assert_float_equal(y[i], caffe[i], 1e-4);
    memcpy(y, x, sizeof x);
    data_image_preprocess(y, 2, DATA_PRE_TORCH);
    float torch[6] = {(0 - .485f) / .229f, (.5f - .456f) / .224f, (1 - .406f) / .225f,
                      (10 / 255.f - .485f) / .229f, (20 / 255.f - .456f) / .224f, (30 / 255.f - .406f) / .225f};
    for (int i = 0; i < 6; i++)
        assert_float_equal(y[i], torch[i], 1e-5);
}

static void test_augment_determinism(void **state)
{
    (void)state;
    uint8_t *pix = iu_pattern(120, 90, 11);
    size_t n;
    uint8_t *j = iu_jpeg(pix, 120, 90, TJPF_RGB, TJSAMP_444, 95, 0, 0, &n);
    char *p = iu_path(dir, "aug.jpg");
    iu_write(p, j, n);
    data_augment_cfg a;
    data_augment_cfg_default(&a);
    a.horizontal_flip = 1;
    a.rotation_range = 15;
    a.width_shift_range = a.height_shift_range = 0.1f;
    a.zoom_range[0] = 0.9f;
    a.zoom_range[1] = 1.1f;
    a.brightness_range[0] = 0.8f;
    a.brightness_range[1] = 1.2f;
    a.contrast = 0.2f;
    a.random_resized_crop = 1;
    data_image_cfg cfg = {32, 32, DATA_PRE_TF, 0, 0};
    enum { N = 32 * 32 * 3 };
    float o1[N], o2[N], o3[N], plain[N], scratch[N];
    tl_err e;
    data_image_ctx *c1 = data_image_ctx_new(), *c2 = data_image_ctx_new();
    assert_int_equal(data_augment_load(c1, p, &cfg, &a, data_augment_seed(42, 3, 1, 7), o1, scratch, &e), 0);
    assert_int_equal(data_augment_load(c2, p, &cfg, &a, data_augment_seed(42, 3, 1, 7), o2, scratch, &e), 0);
    assert_memory_equal(o1, o2, sizeof o1);
    assert_int_equal(data_augment_load(c1, p, &cfg, &a, data_augment_seed(42, 3, 2, 7), o3, scratch, &e), 0);
    assert_true(tu_max_abs_diff(o1, o3, N) > 0.1);
    for (int i = 0; i < N; i++)
        assert_true(o1[i] >= -1.0001f && o1[i] <= 1.0001f);
    /* inactive config: the plain path exactly */
    data_augment_cfg off;
    data_augment_cfg_default(&off);
    assert_false(data_augment_active(&off));
    assert_int_equal(data_augment_load(c1, p, &cfg, &off, 123, o3, scratch, &e), 0);
    assert_int_equal(data_image_load(c2, p, &cfg, plain, &e), 0);
    assert_memory_equal(o3, plain, sizeof plain);
    /* flip alone: some stream flips, and then the image is mirrored */
    data_augment_cfg fl;
    data_augment_cfg_default(&fl);
    fl.horizontal_flip = 1;
    int flipped = 0, kept = 0;
    for (uint64_t id = 0; id < 16; id++) {
        data_augment_params prm;
        data_augment_draw(&fl, data_augment_seed(1, 0, 0, id), 120, 90, &prm);
        if (!prm.flip) {
            kept++;
            continue;
        }
        flipped++;
        assert_int_equal(data_augment_load(c1, p, &cfg, &fl, data_augment_seed(1, 0, 0, id), o3, scratch, &e), 0);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int ch = 0; ch < 3; ch++)
                    assert_float_equal(o3[(y * 32 + x) * 3 + ch], plain[(y * 32 + 31 - x) * 3 + ch], 1e-6);
    }
    assert_true(flipped > 0 && kept > 0);
    /* random resized crop boxes stay inside the image, within the ranges */
    for (uint64_t id = 0; id < 200; id++) {
        data_augment_params prm;
        data_augment_draw(&a, data_augment_seed(5, 0, 0, id), 120, 90, &prm);
        assert_true(prm.crop.x0 >= 0 && prm.crop.y0 >= 0 && prm.crop.x1 <= 120 && prm.crop.y1 <= 90);
        assert_true(prm.crop.x1 > prm.crop.x0 && prm.crop.y1 > prm.crop.y0);
        assert_true(fabsf(prm.theta) <= 15 * (float)M_PI / 180 + 1e-6f);
        assert_true(prm.zx >= 0.9f && prm.zx <= 1.1f);
    }
    data_image_ctx_free(c1);
    data_image_ctx_free(c2);
    free(p);
    free(j);
    free(pix);
}

/* The whole path applies the preprocessing as it resizes: every
 * convention, at an identity size (each tap one pixel at weight 1, which
 * skips both passes) and a shrink, against the naive reference and the
 * conventions' formulas in double. */
static void test_load_preprocess_fused(void **state)
{
    (void)state;
    int W = 30, H = 20;
    uint8_t *pix;
    char *p = pattern_png("pre.png", W, H, &pix);
    static const data_preprocess pres[] = {DATA_PRE_TF, DATA_PRE_CAFFE, DATA_PRE_TORCH, DATA_PRE_UNIT};
    static const int sizes[][2] = {{30, 20}, {13, 7}, {41, 33}};
    float out[41 * 33 * 3];
    double ref[41 * 33 * 3];
    tl_err e;
    data_image_ctx *c = data_image_ctx_new();
    for (int si = 0; si < 3; si++) {
        int ow = sizes[si][0], oh = sizes[si][1];
        naive_resize(pix, W, H, (data_box){0, 0, W, H}, ref, ow, oh);
        for (int pi = 0; pi < 4; pi++) {
            data_image_cfg cfg = {ow, oh, pres[pi], 0, 0};
            assert_int_equal(data_image_load(c, p, &cfg, out, &e), 0);
            for (int i = 0; i < ow * oh; i++)
                for (int ch = 0; ch < 3; ch++) {
                    const double *r = ref + 3 * i;
                    double want, per255;   /* output units per 0..255 unit */
                    switch (pres[pi]) {
                    case DATA_PRE_TF: want = r[ch] / 127.5 - 1; per255 = 1 / 127.5; break;
                    case DATA_PRE_CAFFE: {
                        static const double mean[3] = {103.939, 116.779, 123.68};
                        want = r[2 - ch] - mean[ch];
                        per255 = 1;
                        break;
                    }
                    case DATA_PRE_TORCH: {
                        static const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
                        want = (r[ch] / 255 - mean[ch]) / sd[ch];
                        per255 = 1 / (255 * sd[ch]);
                        break;
                    }
                    default: want = r[ch] / 255; per255 = 1.0 / 255; break;
                    }
                    /* the resize tests' 1e-3 on the 0..255 scale */
                    assert_float_equal(out[3 * i + ch], want, 1e-3 * per255);
                }
        }
    }
    data_image_ctx_free(c);
    free(pix);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_naive_reference),
        cmocka_unit_test(test_resize_by_hand),
        cmocka_unit_test(test_load_png_vs_reference),
        cmocka_unit_test(test_load_preprocess_fused),
        cmocka_unit_test(test_dct_scaling),
        cmocka_unit_test(test_exif_orientation),
        cmocka_unit_test(test_gray_and_cmyk_jpeg),
        cmocka_unit_test(test_png_variants),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_preprocess),
        cmocka_unit_test(test_augment_determinism),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
