#include "common/data/fashion_mnist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

#include "common/base/fileio.h"

const char *const fmnist_class_names[FMNIST_CLASSES] = {
    "T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle_boot",
};

#define IDX_MAGIC_IMAGES 0x00000803u  /* unsigned bytes, 3 dims */
#define IDX_MAGIC_LABELS 0x00000801u  /* unsigned bytes, 1 dim */
#define IDX_MAX_SIDE 4096
/* Fashion-MNIST's training images are 47 MB. A gzip member inflates up to
 * ~1000 times, so a 4 MB file can honestly deliver what a header claims
 * up to GBs of: the header's size is bounded before anything is read. */
#define IDX_MAX_BYTES ((size_t)256 << 20)

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int gz_fail(gzFile f, const char *path, const char *doing, tl_err *e)
{
    int zerr = 0;
    const char *m = gzerror(f, &zerr);
    return tl_errf(e, TL_EIO, "fashion-mnist: '%s': %s: %s", path, doing,
                   zerr == Z_ERRNO ? strerror(errno) : m);
}

/* Reads an idx file of ndims dims (1 or 3) with the given magic: dims[]
 * and a malloc'd buffer of exactly prod(dims) bytes, all of the file. The
 * header's size is bounded by IDX_MAX_BYTES, inflating stops one byte past
 * it, and the buffer grows as bytes arrive, so a header that lies about
 * its size fails on the missing bytes rather than on a huge allocation. */
static int read_idx(const char *path, uint32_t magic, int ndims, uint32_t *dims, uint8_t **out,
                    tl_err *e)
{
    *out = NULL;
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return tl_errf(e, errno == ENOENT ? TL_ENOTFOUND : TL_EIO, "fashion-mnist: '%s': %s", path,
                       errno ? strerror(errno) : "cannot open");
    int rc = 0;
    uint8_t *buf = NULL;
    unsigned char hdr[16];
    unsigned hlen = 4u + 4u * (unsigned)ndims;
    int got = gzread(f, hdr, hlen);
    if (got < 0) {
        rc = gz_fail(f, path, "reading the header", e);
        goto done;
    }
    if ((unsigned)got < hlen) {
        rc = tl_errf(e, TL_EFORMAT, "fashion-mnist: '%s': truncated header (%d of %u bytes)", path,
                     got, hlen);
        goto done;
    }
    if (be32(hdr) != magic) {
        rc = tl_errf(e, TL_EFORMAT, "fashion-mnist: '%s': magic 0x%08x, expected 0x%08x (idx%d ubyte)",
                     path, be32(hdr), magic, ndims);
        goto done;
    }
    /* dims[0] < 2^32 and the others <= 4096: the product fits in 64 bits */
    uint64_t claimed = 1;
    for (int i = 0; i < ndims; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (i > 0 && (dims[i] == 0 || dims[i] > IDX_MAX_SIDE)) {
            rc = tl_errf(e, TL_EFORMAT, "fashion-mnist: '%s': dimension %d is %u (expected 1..%d)",
                         path, i, dims[i], IDX_MAX_SIDE);
            goto done;
        }
        claimed *= dims[i];
    }
    if (claimed > IDX_MAX_BYTES) {
        rc = tl_errf(e, TL_EFORMAT,
                     "fashion-mnist: '%s': header claims %llu bytes, over the limit of %zu", path,
                     (unsigned long long)claimed, IDX_MAX_BYTES);
        goto done;
    }
    size_t total = (size_t)claimed;
    size_t have = 0, cap = 0;
    while (have < total) {
        if (have == cap) {
            cap = cap ? 2 * cap : (size_t)1 << 20;
            if (cap > total)
                cap = total;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                rc = tl_errf(e, TL_ENOMEM, "fashion-mnist: '%s': out of memory", path);
                goto done;
            }
            buf = nb;
        }
        size_t want = cap - have;
        if (want > (1u << 30))
            want = 1u << 30;
        got = gzread(f, buf + have, (unsigned)want);
        if (got < 0) {
            rc = gz_fail(f, path, "reading", e);
            goto done;
        }
        if (got == 0) {
            rc = tl_errf(e, TL_EFORMAT, "fashion-mnist: '%s': truncated: %zu of %zu data bytes", path,
                         have, total);
            goto done;
        }
        have += (size_t)got;
    }
    unsigned char extra;
    got = gzread(f, &extra, 1);
    if (got < 0) {
        rc = gz_fail(f, path, "reading", e);
        goto done;
    }
    if (got > 0) {
        rc = tl_errf(e, TL_EFORMAT,
                     "fashion-mnist: '%s': longer than its header says (%zu data bytes expected)",
                     path, total);
        goto done;
    }
    *out = buf ? buf : malloc(1);
    buf = NULL;
    if (!*out)
        rc = tl_errf(e, TL_ENOMEM, "fashion-mnist: '%s': out of memory", path);
done:
    free(buf);
    gzclose(f);
    return rc;
}

int fmnist_read(fmnist_set *s, const char *images_path, const char *labels_path, tl_err *e)
{
    memset(s, 0, sizeof *s);
    uint32_t idims[3], ldims[1];
    int rc = read_idx(images_path, IDX_MAGIC_IMAGES, 3, idims, &s->pixels, e);
    if (rc == 0)
        rc = read_idx(labels_path, IDX_MAGIC_LABELS, 1, ldims, &s->labels, e);
    if (rc == 0 && idims[0] != ldims[0])
        rc = tl_errf(e, TL_EFORMAT, "fashion-mnist: '%s' has %u images but '%s' has %u labels",
                     images_path, idims[0], labels_path, ldims[0]);
    for (uint32_t i = 0; rc == 0 && i < ldims[0]; i++)
        if (s->labels[i] >= FMNIST_CLASSES)
            rc = tl_errf(e, TL_EFORMAT, "fashion-mnist: '%s': label %u of item %u (expected < %d)",
                         labels_path, s->labels[i], i, FMNIST_CLASSES);
    if (rc) {
        fmnist_free(s);
        return rc;
    }
    s->n = idims[0];
    s->rows = (int)idims[1];
    s->cols = (int)idims[2];
    return 0;
}

/* dir/name, or dir/name.gz when only that exists. */
static int idx_path(char *p, size_t n, const char *dir, const char *name, tl_err *e)
{
    if ((size_t)snprintf(p, n, "%s/%s.gz", dir, name) >= n)
        return tl_errf(e, TL_EINVAL, "fashion-mnist: folder name too long: '%s'", dir);
    if (access(p, F_OK) != 0)
        p[strlen(p) - 3] = '\0';
    return 0;
}

int fmnist_read_dir(fmnist_set *s, const char *dir, const char *kind, tl_err *e)
{
    memset(s, 0, sizeof *s);
    char name[64], ip[4096], lp[4096];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", kind);
    int rc = idx_path(ip, sizeof ip, dir, name, e);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", kind);
    if (rc == 0)
        rc = idx_path(lp, sizeof lp, dir, name, e);
    return rc ? rc : fmnist_read(s, ip, lp, e);
}

void fmnist_free(fmnist_set *s)
{
    free(s->pixels);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

/* Output index o of size along an axis of n source pixels (half-pixel
 * centres, clamped at the edges): the two source neighbours i0, i1 and the
 * weight w of i1. */
static void resize_axis(int o, int n, int size, int *i0, int *i1, float *w)
{
    float f = ((float)o + 0.5f) * (float)n / (float)size - 0.5f;
    if (f < 0)
        f = 0;
    int a = (int)f;
    if (a > n - 1)
        a = n - 1;
    *i0 = a;
    *i1 = a + 1 < n ? a + 1 : n - 1;
    *w = f - (float)a;
    if (*w > 1)
        *w = 1;
}

void fmnist_resize_rgb(const uint8_t *src, int sh, int sw, uint8_t *dst, int size)
{
    for (int y = 0; y < size; y++) {
        int y0, y1;
        float wy;
        resize_axis(y, sh, size, &y0, &y1, &wy);
        for (int x = 0; x < size; x++) {
            int x0, x1;
            float wx;
            resize_axis(x, sw, size, &x0, &x1, &wx);
            float top = src[y0 * sw + x0] * (1 - wx) + src[y0 * sw + x1] * wx;
            float bot = src[y1 * sw + x0] * (1 - wx) + src[y1 * sw + x1] * wx;
            float v = top * (1 - wy) + bot * wy + 0.5f;
            uint8_t b = (uint8_t)(v > 255.f ? 255.f : v);
            uint8_t *o = dst + 3 * ((size_t)y * size + x);
            o[0] = o[1] = o[2] = b;
        }
    }
}

int fmnist_write_jpegs(const fmnist_set *s, const char *out_dir, const fmnist_write_cfg *cfg,
                       size_t *n_written, tl_err *e)
{
    int size = cfg->size > 0 ? cfg->size : 96;
    int quality = cfg->quality > 0 ? cfg->quality : 90;
    if (n_written)
        *n_written = 0;
    if (size > IDX_MAX_SIDE)
        return tl_errf(e, TL_EINVAL, "fashion-mnist: size %d is larger than %d", size, IDX_MAX_SIDE);
    char p[4096];
    /* room for "/<class>/<index>.jpg" below */
    if (strlen(out_dir) > sizeof p - 64)
        return tl_errf(e, TL_EINVAL, "fashion-mnist: folder name too long: '%s'", out_dir);
    for (int c = 0; c < FMNIST_CLASSES; c++) {
        snprintf(p, sizeof p, "%s/%s", out_dir, fmnist_class_names[c]);
        tl_err me = {0};
        int rc = tl_mkdir_p(p, 0777, &me);
        if (rc)
            return tl_errf(e, rc, "fashion-mnist: %s", me.msg);
    }
    tjhandle tj = tjInitCompress();
    uint8_t *rgb = malloc((size_t)size * size * 3);
    if (!tj || !rgb) {
        if (tj)
            tjDestroy(tj);
        free(rgb);
        return tl_errf(e, TL_ENOMEM, "fashion-mnist: out of memory (TurboJPEG or image buffer)");
    }
    unsigned char *jpeg = NULL;
    unsigned long jsize = 0;
    size_t counts[FMNIST_CLASSES] = {0}, written = 0;
    int rc = 0;
    size_t plane = (size_t)s->rows * s->cols;
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        int c = s->labels[i];
        if (cfg->per_class > 0 && counts[c] >= (size_t)cfg->per_class)
            continue;
        fmnist_resize_rgb(s->pixels + i * plane, s->rows, s->cols, rgb, size);
        if (tjCompress2(tj, rgb, size, 0, size, TJPF_RGB, &jpeg, &jsize, TJSAMP_420, quality, 0)) {
            rc = tl_errf(e, TL_EIO, "fashion-mnist: JPEG compression of item %zu: %s", i,
                         tjGetErrorStr2(tj));
            break;
        }
        snprintf(p, sizeof p, "%s/%s/%05zu.jpg", out_dir, fmnist_class_names[c], i);
        FILE *f = fopen(p, "wb");
        if (!f) {
            rc = tl_errf(e, TL_EIO, "fashion-mnist: cannot write '%s': %s", p, strerror(errno));
            break;
        }
        size_t w = fwrite(jpeg, 1, jsize, f);
        if (fclose(f) != 0 || w != jsize) {
            rc = tl_errf(e, TL_EIO, "fashion-mnist: cannot write '%s': %s", p, strerror(errno));
            break;
        }
        counts[c]++;
        written++;
    }
    tjFree(jpeg);
    tjDestroy(tj);
    free(rgb);
    if (n_written)
        *n_written = written;
    return rc;
}

int fmnist_convert(const char *src_dir, const char *out_dir, const fmnist_write_cfg *cfg,
                   size_t written[2], tl_err *e)
{
    static const char *const kinds[2] = {"train", "t10k"};
    static const char *const splits[2] = {"train", "test"};
    written[0] = written[1] = 0;
    for (int k = 0; k < 2; k++) {
        fmnist_set s;
        int rc = fmnist_read_dir(&s, src_dir, kinds[k], e);
        if (rc)
            return rc;
        char p[4096];
        if ((size_t)snprintf(p, sizeof p, "%s/%s", out_dir, splits[k]) >= sizeof p) {
            fmnist_free(&s);
            return tl_errf(e, TL_EINVAL, "fashion-mnist: folder name too long: '%s'", out_dir);
        }
        rc = fmnist_write_jpegs(&s, p, cfg, &written[k], e);
        fmnist_free(&s);
        if (rc)
            return rc;
    }
    return 0;
}
