/* Fashion-MNIST idx parsing on small files written here (plain and gzip;
 * valid and corrupt, each error naming its file), the bilinear resize
 * against hand-computed values, and a round trip to class folders of JPEGs
 * checked with TurboJPEG's own decoder. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

#include "common/data/fashion_mnist.h"

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes an idx file: magic, dims, then len bytes of data; through zlib
 * when the name ends in .gz. */
static void write_idx(const char *rel, uint32_t magic, const uint32_t *dims, int nd,
                      const uint8_t *data, size_t len)
{
    unsigned char hdr[16];
    be32(hdr, magic);
    for (int i = 0; i < nd; i++)
        be32(hdr + 4 + 4 * i, dims[i]);
    size_t hl = 4 + 4 * (size_t)nd;
    const char *p = tu_tmp(rel);
    size_t n = strlen(p);
    if (n > 3 && !strcmp(p + n - 3, ".gz")) {
        gzFile f = gzopen(p, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, hdr, (unsigned)hl), (int)hl);
        if (len)
            assert_int_equal(gzwrite(f, data, (unsigned)len), (int)len);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(hdr, 1, hl, f), hl);
        if (len)
            assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
}

/* n images of 28x28, image i constant at 50 + 20 * label (label i % 10),
 * except pixel 0 which is i (so images are distinguishable). */
static uint8_t *make_pixels(int n)
{
    uint8_t *px = malloc((size_t)n * 784);
    for (int i = 0; i < n; i++) {
        memset(px + (size_t)i * 784, 50 + 20 * (i % 10), 784);
        px[(size_t)i * 784] = (uint8_t)i;
    }
    return px;
}

static uint8_t *make_labels(int n)
{
    uint8_t *lb = malloc((size_t)n);
    for (int i = 0; i < n; i++)
        lb[i] = (uint8_t)(i % 10);
    return lb;
}

/* A valid pair of files named <kind>-{images-idx3,labels-idx1}-ubyte<ext>. */
static void write_pair(const char *kind, const char *ext, int n)
{
    char ip[128], lp[128];
    snprintf(ip, sizeof ip, "%s-images-idx3-ubyte%s", kind, ext);
    snprintf(lp, sizeof lp, "%s-labels-idx1-ubyte%s", kind, ext);
    uint8_t *px = make_pixels(n), *lb = make_labels(n);
    uint32_t idims[3] = {(uint32_t)n, 28, 28}, ldims[1] = {(uint32_t)n};
    write_idx(ip, 0x803, idims, 3, px, (size_t)n * 784);
    write_idx(lp, 0x801, ldims, 1, lb, (size_t)n);
    free(px);
    free(lb);
}

static void test_read_valid(void **st)
{
    (void)st;
    const char *exts[] = {"", ".gz"};
    for (int k = 0; k < 2; k++) {
        char ip[128], lp[128];
        write_pair("train", exts[k], 20);
        snprintf(ip, sizeof ip, "%s", tu_tmp(k ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte"));
        snprintf(lp, sizeof lp, "%s", tu_tmp(k ? "train-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte"));
        fmnist_set s;
        tl_err e = {0};
        int rc = fmnist_read(&s, ip, lp, &e);
        if (rc)
            print_error("%s\n", e.msg);
        assert_int_equal(rc, 0);
        assert_int_equal(s.n, 20);
        assert_int_equal(s.rows, 28);
        assert_int_equal(s.cols, 28);
        for (int i = 0; i < 20; i++) {
            assert_int_equal(s.labels[i], i % 10);
            assert_int_equal(s.pixels[(size_t)i * 784], i);
            assert_int_equal(s.pixels[(size_t)i * 784 + 783], 50 + 20 * (i % 10));
        }
        fmnist_free(&s);
        assert_null(s.pixels);
    }
    /* fmnist_read_dir finds the .gz files when the plain ones are absent */
    remove(tu_tmp("train-images-idx3-ubyte"));
    remove(tu_tmp("train-labels-idx1-ubyte"));
    fmnist_set s;
    tl_err e = {0};
    assert_int_equal(fmnist_read_dir(&s, tu_tmpdir(), "train", &e), 0);
    assert_int_equal(s.n, 20);
    fmnist_free(&s);
}

/* Expects fmnist_read to fail with a message naming `names` and containing
 * `what`. */
static void read_fails(const char *img, const char *lab, const char *names, const char *what)
{
    fmnist_set s;
    tl_err e = {0};
    char ip[512], lp[512];
    snprintf(ip, sizeof ip, "%s", tu_tmp(img));
    snprintf(lp, sizeof lp, "%s", tu_tmp(lab));
    int rc = fmnist_read(&s, ip, lp, &e);
    assert_true(rc < 0);
    assert_null(s.pixels);
    assert_null(s.labels);
    tu_assert_one_line_error(&e, tu_tmp(names), what);
}

static void test_read_corrupt(void **st)
{
    (void)st;
    const int n = 10;
    uint8_t *px = make_pixels(n), *lb = make_labels(n);
    uint32_t idims[3] = {n, 28, 28}, ldims[1] = {n};
    write_idx("img", 0x803, idims, 3, px, (size_t)n * 784);
    write_idx("lab", 0x801, ldims, 1, lb, n);
    write_idx("img.gz", 0x803, idims, 3, px, (size_t)n * 784);

    write_idx("img_magic", 0x801, idims, 3, px, (size_t)n * 784);
    read_fails("img_magic", "lab", "img_magic", "magic 0x00000801");
    write_idx("lab_magic", 0x803, ldims, 1, lb, n);
    read_fails("img", "lab_magic", "lab_magic", "magic");

    write_idx("img_short", 0x803, idims, 3, px, (size_t)n * 784 - 1);
    read_fails("img_short", "lab", "img_short", "truncated");
    write_idx("img_short.gz", 0x803, idims, 3, px, (size_t)n * 784 - 100);
    read_fails("img_short.gz", "lab", "img_short.gz", "truncated");
    write_idx("hdr_short", 0x803, idims, 1, NULL, 0);  /* 8 of 16 header bytes */
    read_fails("hdr_short", "lab", "hdr_short", "truncated header");

    write_idx("img_long", 0x803, idims, 3, px, (size_t)n * 784);
    FILE *f = fopen(tu_tmp("img_long"), "ab");
    fputc(0, f);
    fclose(f);
    read_fails("img_long", "lab", "img_long", "longer than its header");

    uint32_t lying[3] = {0xffffffffu, 4096, 4096};  /* 2^56 bytes claimed */
    write_idx("img_huge", 0x803, lying, 3, px, 784);
    read_fails("img_huge", "lab", "img_huge", "header claims");
    uint32_t zero_side[3] = {n, 0, 28};
    write_idx("img_zero", 0x803, zero_side, 3, NULL, 0);
    read_fails("img_zero", "lab", "img_zero", "dimension 1");

    uint32_t fewer[1] = {n - 1};
    write_idx("lab_fewer", 0x801, fewer, 1, lb, n - 1);
    read_fails("img", "lab_fewer", "lab_fewer", "10 images");
    read_fails("img.gz", "lab_fewer", "img.gz", "9 labels");

    lb[7] = 10;
    write_idx("lab_10", 0x801, ldims, 1, lb, n);
    read_fails("img", "lab_10", "lab_10", "label 10 of item 7");

    read_fails("absent", "lab", "absent", "No such file");

    /* not gzip, not idx: a gzip header with garbage after it */
    const unsigned char junk[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef,
                                  0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef};
    tu_write_file(tu_tmp("bad.gz"), junk, sizeof junk);
    read_fails("bad.gz", "lab", "bad.gz", "");
    free(px);
    free(lb);
}

/* A gzip bomb: an idx header (magic, dims) then `members` gzip members of
 * 1 MiB of zeros each, about 1 KiB apiece on disk; gzread reads
 * concatenated members as one stream, as gunzip does. */
static void write_bomb(const char *rel, const uint32_t dims[3], int members)
{
    unsigned char hdr[16];
    be32(hdr, 0x803);
    for (int i = 0; i < 3; i++)
        be32(hdr + 4 + 4 * i, dims[i]);
    const size_t mib = (size_t)1 << 20;
    unsigned char *zeros = calloc(1, mib);
    uLong cap = compressBound((uLong)mib) + 64;
    unsigned char *z = malloc(cap);
    assert_non_null(zeros);
    assert_non_null(z);
    z_stream s;
    memset(&s, 0, sizeof s);
    /* windowBits 31: a gzip member, not a zlib stream */
    assert_int_equal(deflateInit2(&s, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY), Z_OK);
    s.next_in = zeros;
    s.avail_in = (uInt)mib;
    s.next_out = z;
    s.avail_out = (uInt)cap;
    assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
    size_t zn = cap - s.avail_out;
    deflateEnd(&s);
    FILE *f = fopen(tu_tmp(rel), "wb");
    assert_non_null(f);
    gzFile g = gzdopen(dup(fileno(f)), "wb");   /* the header as a member of its own */
    assert_non_null(g);
    assert_int_equal(gzwrite(g, hdr, 16), 16);
    assert_int_equal(gzclose(g), Z_OK);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    for (int i = 0; i < members; i++)
        assert_int_equal(fwrite(z, 1, zn, f), zn);
    assert_int_equal(fclose(f), 0);
    free(z);
    free(zeros);
}

static long peak_rss_kib(void)
{
    struct rusage u;
    assert_int_equal(getrusage(RUSAGE_SELF, &u), 0);
    return u.ru_maxrss;
}

/* A 4 MB .gz that inflates to 3.9 GB, every byte of it announced by the
 * header (60000 images of 256x256): refused from the header as over the
 * idx size limit, with no allocation. A bomb behind an honest small
 * header stops one byte after the header's size. Peak RSS may not grow by
 * more than 64 MiB (it grew by 3.9 GB when the limit was 4 GiB). */
static void test_gzip_bomb(void **st)
{
    (void)st;
    const uint32_t big[3] = {60000, 256, 256}, small[3] = {100, 28, 28};
    write_bomb("bomb-images.gz", big, 3750);
    write_bomb("long-images.gz", small, 1024);
    uint8_t *lb = make_labels(100);
    uint32_t ldims[1] = {100};
    write_idx("lab", 0x801, ldims, 1, lb, 100);
    free(lb);
    struct stat sb;
    assert_int_equal(stat(tu_tmp("bomb-images.gz"), &sb), 0);
    assert_true(sb.st_size < 8 << 20);
    long before = peak_rss_kib();
    read_fails("bomb-images.gz", "lab", "bomb-images.gz", "header claims 3932160000 bytes");
    read_fails("long-images.gz", "lab", "long-images.gz", "longer than its header");
    long grew = peak_rss_kib() - before;
    if (grew > 64 * 1024)
        fail_msg("peak RSS grew by %ld MiB reading gzip bombs", grew / 1024);
}

static void test_resize(void **st)
{
    (void)st;
    /* 2x2 [0 255; 0 255] to 4x4: sample x = (i + 0.5) / 2 - 0.5, clamped:
     * 0, 0.25, 0.75, 1 -> 0, 63.75, 191.25, 255 (PIL / tf.image.resize) */
    const uint8_t src[4] = {0, 255, 0, 255};
    uint8_t dst[4 * 4 * 3];
    fmnist_resize_rgb(src, 2, 2, dst, 4);
    const uint8_t want[4] = {0, 64, 191, 255};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            for (int c = 0; c < 3; c++)
                assert_int_equal(dst[3 * (y * 4 + x) + c], want[x]);
    /* identity at the same size */
    uint8_t g[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, o[27];
    fmnist_resize_rgb(g, 3, 3, o, 3);
    for (int i = 0; i < 9; i++)
        assert_int_equal(o[3 * i + 1], g[i]);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void check_jpeg(const char *path, int size, int value)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("missing %s", path);
    unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    tjhandle tj = tjInitDecompress();
    int w, h, sub, cs;
    assert_int_equal(tjDecompressHeader3(tj, buf, n, &w, &h, &sub, &cs), 0);
    assert_int_equal(w, size);
    assert_int_equal(h, size);
    uint8_t *rgb = malloc((size_t)w * h * 3);
    assert_int_equal(tjDecompress2(tj, buf, n, rgb, w, 0, h, TJPF_RGB, 0), 0);
    /* the centre is far from the odd pixel 0: close to the constant */
    const uint8_t *c = rgb + 3 * ((size_t)(h / 2) * w + w / 2);
    for (int k = 0; k < 3; k++)
        assert_in_range(c[k], value - 4, value + 4);
    free(rgb);
    tjDestroy(tj);
}

static void test_round_trip(void **st)
{
    (void)st;
    write_pair("train", ".gz", 30);  /* 3 per class */
    write_pair("t10k", "", 20);      /* 2 per class */
    fmnist_write_cfg cfg = {.size = 32, .per_class = 2, .quality = 90};
    char out[512];
    snprintf(out, sizeof out, "%s", tu_tmp("out/deeper"));
    for (int run = 0; run < 2; run++) {  /* the rerun overwrites */
        size_t written[2];
        tl_err e = {0};
        int rc = fmnist_convert(tu_tmpdir(), out, &cfg, written, &e);
        if (rc)
            print_error("%s\n", e.msg);
        assert_int_equal(rc, 0);
        assert_int_equal(written[0], 20);
        assert_int_equal(written[1], 20);
        assert_int_equal(count_files(out), 2);
        char d[600], p[700];
        for (int s = 0; s < 2; s++) {
            snprintf(d, sizeof d, "%s/%s", out, s ? "test" : "train");
            assert_int_equal(count_files(d), 10);
            for (int c = 0; c < 10; c++) {
                snprintf(d, sizeof d, "%s/%s/%s", out, s ? "test" : "train", fmnist_class_names[c]);
                assert_int_equal(count_files(d), 2);
                /* the first two of class c: items c and c + 10 */
                for (int j = 0; j < 2; j++) {
                    snprintf(p, sizeof p, "%s/%05d.jpg", d, c + 10 * j);
                    check_jpeg(p, 32, 50 + 20 * c);
                }
            }
        }
    }
    /* the names are folder-safe */
    for (int c = 0; c < 10; c++)
        assert_null(strpbrk(fmnist_class_names[c], "/ \\:*?\"<>|"));
    assert_string_equal(fmnist_class_names[0], "T-shirt_top");
    assert_string_equal(fmnist_class_names[9], "Ankle_boot");

    /* an output path through a file fails, naming it */
    tu_write_file(tu_tmp("plain"), NULL, 0);
    snprintf(out, sizeof out, "%s", tu_tmp("plain/x"));
    size_t written[2];
    tl_err e = {0};
    assert_true(fmnist_convert(tu_tmpdir(), out, &cfg, written, &e) < 0);
    assert_non_null(strstr(e.msg, tu_tmp("plain")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_valid, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_read_corrupt, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_gzip_bomb, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test(test_resize),
        cmocka_unit_test_setup_teardown(test_round_trip, tu_tmpdir_setup, tu_tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
