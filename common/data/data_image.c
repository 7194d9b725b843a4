#include "common/data/data_image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>
#ifdef __SSE4_1__
#include <smmintrin.h>
#endif

enum { KIND_JPEG = 1, KIND_PNG = 2 };

struct data_image_ctx {
    tjhandle tj;
    char name[256];           /* file named in messages */
    uint8_t *file;            /* the whole file */
    size_t file_n, file_cap;
    int kind;
    int stored_w, stored_h;   /* as in the file, before orientation */
    int orientation;          /* EXIF 1..8 */
    int jpeg_cs;              /* TJCS_* */
    uint8_t *pix, *pix2;      /* decoded RGB8 (or CMYK), oriented copy */
    size_t pix_cap, pix2_cap;
    float *tmp;               /* resize: horizontal pass */
    size_t tmp_cap;
    int *ci;                  /* resize: per output coordinate, first tap and count */
    float *cw;                /* resize: weights */
    size_t ci_cap, cw_cap;
};

static int grow(void **p, size_t *cap, size_t n)
{
    if (n <= *cap)
        return 0;
    void *q = realloc(*p, n);
    if (!q)
        return TL_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

data_image_ctx *data_image_ctx_new(void)
{
    data_image_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->tj = tjInitDecompress();
    if (!c->tj) {
        free(c);
        return NULL;
    }
    return c;
}

void data_image_ctx_free(data_image_ctx *c)
{
    if (!c)
        return;
    tjDestroy(c->tj);
    free(c->file);
    free(c->pix);
    free(c->pix2);
    free(c->tmp);
    free(c->ci);
    free(c->cw);
    free(c);
}

/* ---- reading ------------------------------------------------------------- */

/* Reads up to limit bytes (SIZE_MAX: all) of path into c->file. */
static int read_file(data_image_ctx *c, const char *path, size_t limit, size_t *total, tl_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tl_errf(e, TL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return tl_errf(e, TL_EIO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return tl_errf(e, TL_EIO, "%s: not a regular file%s", path,
                       S_ISDIR(st.st_mode) ? " (a directory)" : "");
    }
    if (st.st_size == 0) {
        close(fd);
        return tl_errf(e, TL_EFORMAT, "%s: empty file (0 bytes)", path);
    }
    size_t want = (size_t)st.st_size < limit ? (size_t)st.st_size : limit;
    if (grow((void **)&c->file, &c->file_cap, want) != 0) {
        close(fd);
        return tl_errf(e, TL_ENOMEM, "%s: out of memory reading %zu bytes", path, want);
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, c->file + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            return tl_errf(e, TL_EIO, "%s: read failed: %s", path, strerror(err));
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    c->file_n = got;
    if (total)
        *total = (size_t)st.st_size;
    return 0;
}

/* ---- EXIF orientation -------------------------------------------------------- */

static unsigned rd16(const uint8_t *p, int be) { return be ? (unsigned)(p[0] << 8 | p[1]) : (unsigned)(p[1] << 8 | p[0]); }
static uint32_t rd32(const uint8_t *p, int be)
{
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Orientation tag 0x0112 of IFD0 in a TIFF block (the APP1 payload after
 * "Exif\0\0"); 1 when absent or malformed. */
static int exif_orientation_tiff(const uint8_t *t, size_t n)
{
    if (n < 8)
        return 1;
    int be;
    if (t[0] == 'I' && t[1] == 'I')
        be = 0;
    else if (t[0] == 'M' && t[1] == 'M')
        be = 1;
    else
        return 1;
    if (rd16(t + 2, be) != 42)
        return 1;
    uint32_t ifd = rd32(t + 4, be);
    if (ifd > n || n - ifd < 2)
        return 1;
    unsigned count = rd16(t + ifd, be);
    if ((n - ifd - 2) / 12 < count)
        return 1;
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *ent = t + ifd + 2 + 12 * (size_t)i;
        if (rd16(ent, be) != 0x0112)
            continue;
        unsigned type = rd16(ent + 2, be);
        uint32_t cnt = rd32(ent + 4, be);
        if (type != 3 || cnt < 1)   /* SHORT; value sits in the first 2 bytes */
            return 1;
        unsigned v = rd16(ent + 8, be);
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* Walks the markers before the first SOS looking for APP1 Exif. */
static int exif_orientation_jpeg(const uint8_t *b, size_t n)
{
    size_t p = 2;
    while (p + 4 <= n) {
        if (b[p] != 0xFF)
            return 1;
        uint8_t m = b[p + 1];
        if (m == 0xFF) {            /* fill byte */
            p++;
            continue;
        }
        if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {
            p += 2;
            continue;
        }
        if (m == 0xDA || m == 0xD9)
            return 1;
        size_t len = (size_t)b[p + 2] << 8 | b[p + 3];
        if (len < 2 || len > n - p - 2)
            return 1;
        if (m == 0xE1 && len >= 2 + 6 + 8 && memcmp(b + p + 4, "Exif\0\0", 6) == 0)
            return exif_orientation_tiff(b + p + 10, len - 8);
        p += 2 + len;
    }
    return 1;
}

/* ---- headers --------------------------------------------------------------- */

static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};

static int sniff(const uint8_t *b, size_t n)
{
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return KIND_JPEG;
    if (n >= 8 && memcmp(b, png_sig, 8) == 0)
        return KIND_PNG;
    return 0;
}

static int64_t limit_or_default(int64_t max_pixels)
{
    return max_pixels > 0 ? max_pixels : DATA_IMAGE_MAX_PIXELS_DEFAULT;
}

/* PNG IHDR is always the first chunk: no libpng needed for the header. */
static int png_header(data_image_ctx *c, tl_err *e)
{
    const uint8_t *b = c->file;
    if (c->file_n < 8 + 8 + 13 || memcmp(b + 12, "IHDR", 4) != 0)
        return tl_errf(e, TL_EFORMAT, "%s: PNG without a readable IHDR header", c->name);
    uint32_t w = rd32(b + 16, 1), h = rd32(b + 20, 1);
    if (w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu)
        return tl_errf(e, TL_EFORMAT, "%s: PNG with invalid size %ux%u", c->name, w, h);
    c->stored_w = (int)w;
    c->stored_h = (int)h;
    c->orientation = 1;
    return 0;
}

/* A TurboJPEG handle that failed mid-header keeps libjpeg state that the
 * next image's decode trips over (valgrind: writes far past the output
 * buffer); a fresh handle after every failure costs nothing. */
static void jpeg_reset(data_image_ctx *c)
{
    tjhandle fresh = tjInitDecompress();
    if (fresh) {
        tjDestroy(c->tj);
        c->tj = fresh;
    }
}

static int jpeg_header(data_image_ctx *c, tl_err *e)
{
    /* Impossible values first: TurboJPEG 2.1 (Debian 12) returns success
     * for a file that ends before its SOF marker and leaves all four unset.
     * ss may be TJSAMP_UNKNOWN (-1) in TurboJPEG 3. */
    int w = -1, h = -1, ss = INT_MIN, cs = INT_MIN;
    if (tjDecompressHeader3(c->tj, c->file, (unsigned long)c->file_n, &w, &h, &ss, &cs) != 0) {
        tl_errf(e, TL_EFORMAT, "%s: bad JPEG header: %s", c->name, tjGetErrorStr2(c->tj));
        jpeg_reset(c);
        return TL_EFORMAT;
    }
    if (w <= 0 || h <= 0 || ss < -1 || ss >= TJ_NUMSAMP || cs < 0 || cs >= TJ_NUMCS) {
        tl_errf(e, TL_EFORMAT, "%s: bad JPEG header: no image size (the file's %zu bytes end "
                "before the frame header, SOF)", c->name, c->file_n);
        jpeg_reset(c);
        return TL_EFORMAT;
    }
    c->stored_w = w;
    c->stored_h = h;
    c->jpeg_cs = cs;
    c->orientation = exif_orientation_jpeg(c->file, c->file_n);
    return 0;
}

static int parse_header(data_image_ctx *c, int64_t max_pixels, int *w, int *h, tl_err *e)
{
    c->kind = sniff(c->file, c->file_n);
    int rc;
    if (c->kind == KIND_JPEG)
        rc = jpeg_header(c, e);
    else if (c->kind == KIND_PNG)
        rc = png_header(c, e);
    else
        return tl_errf(e, TL_EFORMAT, "%s: not a JPEG or PNG (content starts %02x %02x %02x %02x)",
                       c->name, c->file_n > 0 ? c->file[0] : 0, c->file_n > 1 ? c->file[1] : 0,
                       c->file_n > 2 ? c->file[2] : 0, c->file_n > 3 ? c->file[3] : 0);
    if (rc != 0)
        return rc;
    int64_t px = (int64_t)c->stored_w * c->stored_h;
    if (px > limit_or_default(max_pixels))
        return tl_errf(e, TL_EINVAL, "%s: %dx%d image (%.1f megapixels) is over the %.1f megapixel limit",
                       c->name, c->stored_w, c->stored_h, (double)px / 1e6,
                       (double)limit_or_default(max_pixels) / 1e6);
    int swap = c->orientation >= 5;
    *w = swap ? c->stored_h : c->stored_w;
    *h = swap ? c->stored_w : c->stored_h;
    return 0;
}

static void set_name(data_image_ctx *c, const char *name)
{
    snprintf(c->name, sizeof c->name, "%s", name ? name : "(memory)");
}

int data_image_open(data_image_ctx *c, const char *path, int64_t max_pixels, int *w, int *h,
                    tl_err *e)
{
    c->kind = 0;
    set_name(c, path);
    int rc = read_file(c, path, SIZE_MAX, NULL, e);
    if (rc != 0)
        return rc;
    return parse_header(c, max_pixels, w, h, e);
}

int data_image_open_mem(data_image_ctx *c, const uint8_t *buf, size_t n, const char *name,
                        int64_t max_pixels, int *w, int *h, tl_err *e)
{
    c->kind = 0;
    set_name(c, name);
    if (n == 0)
        return tl_errf(e, TL_EFORMAT, "%s: empty file (0 bytes)", c->name);
    if (grow((void **)&c->file, &c->file_cap, n) != 0)
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", c->name);
    memcpy(c->file, buf, n);
    c->file_n = n;
    return parse_header(c, max_pixels, w, h, e);
}

int data_image_probe(const char *path, int64_t max_pixels, int *w, int *h, tl_err *e)
{
    data_image_ctx *c = data_image_ctx_new();
    if (!c)
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
    set_name(c, path);
    /* Headers (with EXIF and ICC segments) nearly always fit in 256 KiB;
     * read the rest only when they do not. */
    size_t total = 0;
    int rc = read_file(c, path, 256 * 1024, &total, e);
    if (rc == 0) {
        tl_err e1;
        rc = parse_header(c, max_pixels, w, h, &e1);
        if (rc == TL_EFORMAT && c->kind != 0 && total > c->file_n) {
            rc = read_file(c, path, SIZE_MAX, NULL, e);
            if (rc == 0)
                rc = parse_header(c, max_pixels, w, h, e);
        } else if (rc != 0 && e) {
            *e = e1;
        }
    }
    data_image_ctx_free(c);
    return rc;
}

/* ---- decoding ---------------------------------------------------------------- */

static int decode_jpeg(data_image_ctx *c, int need_w, int need_h, int *ow, int *oh, tl_err *e)
{
    /* Stored orientation: a rotated image needs its sides swapped. */
    if (c->orientation >= 5) {
        int t = need_w;
        need_w = need_h;
        need_h = t;
    }
    int nsf = 0;
    tjscalingfactor *sf = tjGetScalingFactors(&nsf);
    tjscalingfactor best = {1, 1};
    long best_px = (long)c->stored_w * c->stored_h;
    int full = need_w <= 0 && need_h <= 0;
    for (int i = 0; sf && !full && i < nsf; i++) {
        if (sf[i].num > sf[i].denom)   /* DCT upscaling: never */
            continue;
        int sw = TJSCALED(c->stored_w, sf[i]), sh = TJSCALED(c->stored_h, sf[i]);
        if (sw >= need_w && sh >= need_h && (long)sw * sh < best_px) {
            best = sf[i];
            best_px = (long)sw * sh;
        }
    }
    int w = TJSCALED(c->stored_w, best), h = TJSCALED(c->stored_h, best);
    int cmyk = c->jpeg_cs == TJCS_CMYK || c->jpeg_cs == TJCS_YCCK;
    size_t nb = (size_t)w * h * (cmyk ? 4 : 3);
    if (grow((void **)&c->pix, &c->pix_cap, nb) != 0)
        return tl_errf(e, TL_ENOMEM, "%s: out of memory for %dx%d pixels", c->name, w, h);
    /* Any libjpeg warning (truncation, corrupt entropy data) is an error:
     * the image would be silently grey-filled otherwise. */
    if (tjDecompress2(c->tj, c->file, (unsigned long)c->file_n, c->pix, w, 0, h,
                      cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_STOPONWARNING) != 0) {
        int warn = tjGetErrorCode(c->tj) == TJERR_WARNING;
        tl_errf(e, TL_EFORMAT, "%s: %s JPEG: %s", c->name,
                warn ? "corrupt or truncated" : "undecodable", tjGetErrorStr2(c->tj));
        jpeg_reset(c);
        return TL_EFORMAT;
    }
    if (cmyk) {
        /* Adobe-inverted CMYK as libjpeg delivers it: R = C*K/255. */
        uint8_t *p = c->pix;
        size_t n = (size_t)w * h;
        for (size_t i = 0; i < n; i++) {
            unsigned k = p[4 * i + 3];
            uint8_t r = (uint8_t)((p[4 * i] * k + 127) / 255);
            uint8_t g = (uint8_t)((p[4 * i + 1] * k + 127) / 255);
            uint8_t b = (uint8_t)((p[4 * i + 2] * k + 127) / 255);
            p[3 * i] = r;     /* in place: later pixels sit at 4j > 3i+2 */
            p[3 * i + 1] = g;
            p[3 * i + 2] = b;
        }
    }
    *ow = w;
    *oh = h;
    return 0;
}

typedef struct {
    const uint8_t *p;
    size_t n, off;
} png_src;

typedef struct {
    jmp_buf jb;
    char msg[200];
} png_err_ctx;

static void png_read_mem(png_structp png, png_bytep out, size_t n)
{
    png_src *s = png_get_io_ptr(png);
    if (n > s->n - s->off)
        png_error(png, "file truncated");
    memcpy(out, s->p + s->off, n);
    s->off += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_err_ctx *ec = png_get_error_ptr(png);
    snprintf(ec->msg, sizeof ec->msg, "%s", msg);
    longjmp(ec->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;   /* benign (iCCP profiles, text chunks): ignored */
}

static int decode_png(data_image_ctx *c, int *ow, int *oh, tl_err *e)
{
    png_err_ctx ec;
    ec.msg[0] = 0;
    png_src src = {c->file, c->file_n, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ec, png_on_error, png_on_warning);
    if (!png)
        return tl_errf(e, TL_ENOMEM, "%s: out of memory (libpng)", c->name);
    png_infop info = png_create_info_struct(png);
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return tl_errf(e, TL_ENOMEM, "%s: out of memory (libpng)", c->name);
    }
    if (setjmp(ec.jb)) {
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return tl_errf(e, TL_EFORMAT, "%s: bad PNG: %s", c->name, ec.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);  /* our own pixel limit applies */
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((int64_t)w * h != (int64_t)c->stored_w * c->stored_h)
        png_error(png, "IHDR changed");
    int ct = png_get_color_type(png, info);
    if (ct == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) {
        png_set_expand_gray_1_2_4_to_8(png);
        png_set_gray_to_rgb(png);
    }
    if (png_get_bit_depth(png, info) == 16)
        png_set_scale_16(png);
    if (ct & PNG_COLOR_MASK_ALPHA)
        png_set_strip_alpha(png);
    /* tRNS is left alone: without png_set_tRNS_to_alpha it never becomes alpha. */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3)
        png_error(png, "unexpected row layout after transforms");
    if (grow((void **)&c->pix, &c->pix_cap, (size_t)w * h * 3) != 0)
        png_error(png, "out of memory");
    rows = malloc(sizeof *rows * h);
    if (!rows)
        png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = c->pix + (size_t)y * w * 3;
    png_read_image(png, rows);
    free(rows);
    rows = NULL;
    png_destroy_read_struct(&png, &info, NULL);
    *ow = (int)w;
    *oh = (int)h;
    return 0;
}

/* out(x, y) = in(sx, sy) for each EXIF orientation; out is (ow, oh). */
static void orient(const uint8_t *in, int w, int h, int o, uint8_t *out)
{
    int ow = o >= 5 ? h : w, oh = o >= 5 ? w : h;
    for (int y = 0; y < oh; y++) {
        uint8_t *d = out + (size_t)y * ow * 3;
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x; sy = y; break;
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;
            case 4: sx = x; sy = h - 1 - y; break;
            case 5: sx = y; sy = x; break;                      /* transpose */
            case 6: sx = y; sy = h - 1 - x; break;              /* rotate 90 clockwise */
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;      /* transverse */
            case 8: sx = w - 1 - y; sy = x; break;              /* rotate 90 anticlockwise */
            default: sx = x; sy = y; break;
            }
            const uint8_t *s = in + ((size_t)sy * w + sx) * 3;
            d[3 * x] = s[0];
            d[3 * x + 1] = s[1];
            d[3 * x + 2] = s[2];
        }
    }
}

int data_image_decode(data_image_ctx *c, int need_w, int need_h, const uint8_t **rgb, int *w,
                      int *h, tl_err *e)
{
    if (c->kind == 0)
        return tl_errf(e, TL_EINVAL, "%s: no image opened", c->name);
    int dw, dh, rc;
    if (c->kind == KIND_JPEG)
        rc = decode_jpeg(c, need_w, need_h, &dw, &dh, e);
    else
        rc = decode_png(c, &dw, &dh, e);
    if (rc != 0)
        return rc;
    if (c->orientation != 1) {
        if (grow((void **)&c->pix2, &c->pix2_cap, (size_t)dw * dh * 3) != 0)
            return tl_errf(e, TL_ENOMEM, "%s: out of memory", c->name);
        orient(c->pix, dw, dh, c->orientation, c->pix2);
        uint8_t *t = c->pix;
        size_t tc = c->pix_cap;
        c->pix = c->pix2;
        c->pix_cap = c->pix2_cap;
        c->pix2 = t;
        c->pix2_cap = tc;
        if (c->orientation >= 5) {
            int t2 = dw;
            dw = dh;
            dh = t2;
        }
    }
    *rgb = c->pix;
    *w = dw;
    *h = dh;
    return 0;
}

/* ---- resize ------------------------------------------------------------------- */

static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs for the bilinear filter (support 1): per
 * output i, taps start[i] .. start[i]+len[i]-1 with weights w[i*ksize..]. */
static int coeffs(int in_size, double in0, double in1, int out_size, int *start, int *len,
                  float *w, int ksize)
{
    double scale = (in1 - in0) / out_size;
    double fscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * fscale, ss = 1.0 / fscale;
    for (int i = 0; i < out_size; i++) {
        double center = in0 + (i + 0.5) * scale;
        int lo = (int)(center - support + 0.5);
        if (lo < 0)
            lo = 0;
        int hi = (int)(center + support + 0.5);
        if (hi > in_size)
            hi = in_size;
        int n = hi - lo;
        if (n > ksize)
            n = ksize;
        float *k = w + (size_t)i * ksize;
        double sum = 0.0;
        for (int x = 0; x < n; x++) {
            double v = triangle((x + lo - center + 0.5) * ss);
            k[x] = (float)v;
            sum += v;
        }
        if (n <= 0 || sum <= 0.0) {  /* degenerate box: nearest pixel */
            int p = (int)center;
            lo = p < 0 ? 0 : p >= in_size ? in_size - 1 : p;
            n = 1;
            k[0] = 1.0f;
            sum = 1.0;
        }
        /* Zero taps at either end (an edge pixel the triangle just
         * misses) cost a multiply-add each and add exactly 0. */
        int z = 0;
        while (n - z > 1 && k[z] == 0.0f)
            z++;
        while (n - z > 1 && k[n - 1] == 0.0f)
            n--;
        start[i] = lo + z;
        len[i] = n - z;
        for (int x = z; x < n; x++)
            k[x - z] = (float)(k[x] / sum);
    }
    return 0;
}

static int ksize_for(double in_len, int out_size)
{
    double scale = in_len / out_size;
    double support = scale < 1.0 ? 1.0 : scale;
    return (int)ceil(support) * 2 + 1;
}

/* One pixel as four floats (R, G, B, unused): a tap of the resize is then
 * one vector multiply-add instead of three scalar ones. */
typedef float v4f __attribute__((vector_size(16)));

static v4f v4_load(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The preprocessing of one pixel as vector arithmetic, the same operations
 * as data_image_preprocess: v = (x[perm] * mul - sub) / div, the division
 * only for torch. */
typedef struct {
    v4f mul, sub, div;
    int bgr, divide;
} pre_op;

static pre_op pre_op_for(int pre)
{
    pre_op o = {{1, 1, 1, 1}, {0, 0, 0, 0}, {1, 1, 1, 1}, 0, 0};
    switch (pre) {
    case DATA_PRE_TF:
        o.mul = (v4f){1.0f / 127.5f, 1.0f / 127.5f, 1.0f / 127.5f, 0};
        o.sub = (v4f){1.0f, 1.0f, 1.0f, 0};
        break;
    case DATA_PRE_CAFFE:
        o.sub = (v4f){103.939f, 116.779f, 123.68f, 0};
        o.bgr = 1;
        break;
    case DATA_PRE_TORCH:
        o.mul = (v4f){1.0f / 255.0f, 1.0f / 255.0f, 1.0f / 255.0f, 0};
        o.sub = (v4f){0.485f, 0.456f, 0.406f, 0};
        o.div = (v4f){0.229f, 0.224f, 0.225f, 1};
        o.divide = 1;
        break;
    case DATA_PRE_UNIT:
        o.mul = (v4f){1.0f / 255.0f, 1.0f / 255.0f, 1.0f / 255.0f, 0};
        break;
    default:   /* none: [0, 255] */
        break;
    }
    return o;
}

static v4f pre_pixel(v4f v, const pre_op *o)
{
    if (o->bgr)
        v = (v4f){v[2], v[1], v[0], 0};
    v = v * o->mul - o->sub;
    if (o->divide)
        v = v / o->div;
    return v;
}

/* Writes dw pixels of row (dw, 4) as (dw, 3) into d, preprocessed. Every
 * pixel but the last is stored as 4 floats, the fourth overwritten by the
 * next pixel. */
static void row_out(const float *row, int dw, const pre_op *o, float *d)
{
    for (int x = 0; x + 1 < dw; x++) {
        v4f v = pre_pixel(v4_load(row + 4 * x), o);
        memcpy(d + 3 * x, &v, sizeof v);
    }
    v4f v = pre_pixel(v4_load(row + 4 * (size_t)(dw - 1)), o);
    d += 3 * (size_t)(dw - 1);
    d[0] = v[0];
    d[1] = v[1];
    d[2] = v[2];
}

/* A row of n RGB8 pixels as (n, 4) floats, the fourth 0. */
static void row_to_float(const uint8_t *s, int n, float *f)
{
    int x = 0;
#ifdef __SSE4_1__
    /* Four bytes at a time (RGB and the next pixel's R, masked off): the
     * last pixel is left to the plain loop so as not to read past the row. */
    const __m128i keep = _mm_setr_epi32(-1, -1, -1, 0);
    for (; x + 1 < n; x++) {
        uint32_t w;
        memcpy(&w, s + 3 * x, sizeof w);
        __m128i u = _mm_and_si128(_mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)w)), keep);
        _mm_storeu_ps(f + 4 * x, _mm_cvtepi32_ps(u));
    }
#endif
    for (; x < n; x++) {
        f[4 * x] = s[3 * x];
        f[4 * x + 1] = s[3 * x + 1];
        f[4 * x + 2] = s[3 * x + 2];
        f[4 * x + 3] = 0.0f;
    }
}

/* data_image_resize, with pre applied to each output row while it is in
 * cache (pre < 0: none, values stay in [0, 255]). */
static int resize_pre(data_image_ctx *c, const uint8_t *src, int sw, int sh, const data_box *box,
                      float *dst, int dw, int dh, int pre)
{
    if (dw <= 0 || dh <= 0)
        return 0;
    data_box b = box ? *box : (data_box){0, 0, sw, sh};
    data_image_ctx *own = NULL;
    if (!c) {
        own = calloc(1, sizeof *own);
        if (!own)
            return TL_ENOMEM;
        c = own;
    }
    int kx = ksize_for(b.x1 - b.x0, dw), ky = ksize_for(b.y1 - b.y0, dh);
    size_t ni = 2 * (size_t)(dw + dh), nw = (size_t)dw * kx + (size_t)dh * ky;
    int rc = TL_ENOMEM;
    if (grow((void **)&c->ci, &c->ci_cap, ni * sizeof(int)) != 0 ||
        grow((void **)&c->cw, &c->cw_cap, nw * sizeof(float)) != 0)
        goto out;
    int *xs = c->ci, *xl = xs + dw, *ys = xl + dw, *yl = ys + dh;
    float *wx = c->cw, *wy = wx + (size_t)dw * kx;
    coeffs(sw, b.x0, b.x1, dw, xs, xl, wx, kx);
    coeffs(sh, b.y0, b.y1, dh, ys, yl, wy, ky);
    /* Only source rows some output row reads need the horizontal pass. */
    int y_lo = ys[0], y_hi = ys[0] + yl[0];
    for (int i = 1; i < dh; i++) {
        if (ys[i] < y_lo) y_lo = ys[i];
        if (ys[i] + yl[i] > y_hi) y_hi = ys[i] + yl[i];
    }
    /* tmp: (y_hi - y_lo, dw, 4) horizontal pass, then one source row (sw, 4)
     * as floats, then one output row (dw, 4). */
    size_t rowf = (size_t)dw * 4;
    size_t ntmp = (size_t)(y_hi - y_lo) * rowf + (size_t)sw * 4 + rowf;
    if (grow((void **)&c->tmp, &c->tmp_cap, ntmp * sizeof(float)) != 0)
        goto out;
    float *srow = c->tmp + (size_t)(y_hi - y_lo) * rowf, *orow = srow + (size_t)sw * 4;
    /* Same width, whole rows: every tap is one source pixel at weight 1. */
    int same_x = dw == sw;
    for (int x = 0; same_x && x < dw; x++)
        same_x = xs[x] == x && xl[x] == 1 && wx[(size_t)x * kx] == 1.0f;
    for (int y = y_lo; y < y_hi; y++) {
        const uint8_t *s = src + (size_t)y * sw * 3;
        float *t = c->tmp + (size_t)(y - y_lo) * rowf;
        row_to_float(s, sw, same_x ? t : srow);
        if (same_x)
            continue;
        for (int x = 0; x < dw; x++) {
            const float *p = srow + (size_t)xs[x] * 4;
            const float *k = wx + (size_t)x * kx;
            v4f acc = k[0] * v4_load(p);
            for (int j = 1; j < xl[x]; j++)
                acc += k[j] * v4_load(p + 4 * j);
            memcpy(t + 4 * x, &acc, sizeof acc);
        }
    }
    pre_op op = pre_op_for(pre);
    for (int y = 0; y < dh; y++) {
        const float *k = wy + (size_t)y * ky;
        const float *t0 = c->tmp + (size_t)(ys[y] - y_lo) * rowf;
        int n = yl[y];
        const float *row = t0;
        if (n > 1 || k[0] != 1.0f) {
            for (int x = 0; x < dw; x++) {
                const float *p = t0 + 4 * (size_t)x;
                v4f acc = k[0] * v4_load(p);
                for (int j = 1; j < n; j++)
                    acc += k[j] * v4_load(p + (size_t)j * rowf);
                memcpy(orow + 4 * x, &acc, sizeof acc);
            }
            row = orow;
        }
        row_out(row, dw, &op, dst + (size_t)y * dw * 3);
    }
    rc = 0;
out:
    if (own) {
        free(own->ci);
        free(own->cw);
        free(own->tmp);
        free(own);
    }
    return rc;
}

int data_image_resize(data_image_ctx *c, const uint8_t *src, int sw, int sh, const data_box *box,
                      float *dst, int dw, int dh)
{
    return resize_pre(c, src, sw, sh, box, dst, dw, dh, -1);
}

data_box data_image_aspect_box(int w, int h, int out_w, int out_h)
{
    int ch = (int)((double)w * out_h / out_w), cw = (int)((double)h * out_w / out_h);
    if (ch > h) ch = h;
    if (cw > w) cw = w;
    if (ch < 1) ch = 1;
    if (cw < 1) cw = 1;
    int y0 = (h - ch) / 2, x0 = (w - cw) / 2;
    return (data_box){x0, y0, x0 + cw, y0 + ch};
}

/* ---- preprocessing ----------------------------------------------------------- */

void data_image_preprocess(float *x, size_t n, data_preprocess p)
{
    switch (p) {
    case DATA_PRE_TF:
        for (size_t i = 0; i < 3 * n; i++)
            x[i] = x[i] * (1.0f / 127.5f) - 1.0f;
        break;
    case DATA_PRE_CAFFE:
        for (size_t i = 0; i < n; i++) {
            float r = x[3 * i], b = x[3 * i + 2];
            x[3 * i] = b - 103.939f;
            x[3 * i + 1] -= 116.779f;
            x[3 * i + 2] = r - 123.68f;
        }
        break;
    case DATA_PRE_TORCH: {
        static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
        for (size_t i = 0; i < n; i++)
            for (int ch = 0; ch < 3; ch++)
                x[3 * i + ch] = (x[3 * i + ch] * (1.0f / 255.0f) - mean[ch]) / std[ch];
        break;
    }
    case DATA_PRE_UNIT:
        for (size_t i = 0; i < 3 * n; i++)
            x[i] *= 1.0f / 255.0f;
        break;
    }
}

/* ---- the whole path ---------------------------------------------------------- */

/* data_image_decode_box, preprocessing as it resizes when pre >= 0. */
static int decode_box_pre(data_image_ctx *c, const char *path, int W, int H, const data_box *box,
                          const data_image_cfg *cfg, float *out, int pre, tl_err *e)
{
    /* Decode just large enough that the box still covers the output size. */
    int need_w = (int)ceil(cfg->width * (double)W / (box->x1 - box->x0) - 1e-6);
    int need_h = (int)ceil(cfg->height * (double)H / (box->y1 - box->y0) - 1e-6);
    const uint8_t *rgb;
    int w, h;
    int rc = data_image_decode(c, need_w, need_h, &rgb, &w, &h, e);
    if (rc != 0)
        return rc;
    double fx = (double)w / W, fy = (double)h / H;
    data_box sb = {box->x0 * fx, box->y0 * fy, box->x1 * fx, box->y1 * fy};
    if (resize_pre(c, rgb, w, h, &sb, out, cfg->width, cfg->height, pre) != 0)
        return tl_errf(e, TL_ENOMEM, "%s: out of memory resizing", path);
    return 0;
}

int data_image_decode_box(data_image_ctx *c, const char *path, int W, int H,
                          const data_box *box, const data_image_cfg *cfg, float *out,
                          tl_err *e)
{
    return decode_box_pre(c, path, W, H, box, cfg, out, -1, e);
}

int data_image_load(data_image_ctx *c, const char *path, const data_image_cfg *cfg, float *out,
                    tl_err *e)
{
    int W, H;
    int rc = data_image_open(c, path, cfg->max_pixels, &W, &H, e);
    if (rc != 0)
        return rc;
    data_box box = cfg->crop_to_aspect_ratio ? data_image_aspect_box(W, H, cfg->width, cfg->height)
                                             : (data_box){0, 0, W, H};
    return decode_box_pre(c, path, W, H, &box, cfg, out, (int)cfg->preprocess, e);
}
