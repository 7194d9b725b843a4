/* Image pipeline benchmarks, two modes.
 *
 *   tlsweep-data-bench [--size S] [--seconds T] [--dump FILE] IMAGE...
 *
 * Decode + resize + preprocess throughput of common/data/data_image.c on one
 * core, the number bench/data_compare.py sets against Pillow. Loads every
 * image in turn (files stay in the page cache after the first pass) for at
 * least T seconds and prints "images/s N". --dump writes the first image's
 * output before preprocessing (S*S*3 float32, RGB 0..255) for a pixel
 * comparison.
 *
 *   tlsweep-data-bench --starve [--sizes 96,224] [--batch B] [--images N]
 *                      [--seconds T] NAME=DIR...
 *
 * Does the loader keep up with training? For each DIR (class sub-folders as
 * `tlsweep data` writes them, or a flat folder of images) and size, in one
 * run: the rate worker/engine/loader.c delivers batches with 1 and 2 decoding
 * threads (plain, as for feature extraction, and augmented with flip and
 * random resized crop, as for fine-tuning), the rate of MobileNetV2 train
 * steps (random weights; frozen: backbone forward in inference mode + head
 * step, the cost of feature extraction; fine-tune: every layer), and the
 * rate of those train steps fed by the loader (1 thread) instead of a fixed
 * batch. loader/train >= 1: the loader alone outruns training; fed/train
 * near 1: it still does while both share the cores. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/data/data_image.h"
#include "common/base/rng.h"
#include "worker/engine/engine.h"
#include "worker/engine/loader.h"
#include "worker/net/backbones.h"
#include "worker/engine/train.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- decode mode --------------------------------------------------------------- */

static int decode_bench(int size, double seconds, const char *dump, char **files, int nfiles)
{
    data_image_ctx *c = data_image_ctx_new();
    float *out = malloc(sizeof(float) * size * size * 3);
    data_image_cfg cfg = {size, size, DATA_PRE_TF, 0, 0};
    tl_err e;
    if (!c || !out) {
        fprintf(stderr, "tlsweep-data-bench: out of memory\n");
        return 1;
    }
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

/* ---- starve mode ----------------------------------------------------------------- */

typedef struct {
    const char *name;
    data_index ix;       /* class folders; or items listed by hand (ix.items owned here) */
    int indexed;
} bench_set;

static int is_image_name(const char *s)
{
    const char *dot = strrchr(s, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const data_item *)a)->path, ((const data_item *)b)->path);
}

/* DIR with class sub-folders through data_index_build (every split), else
 * the images directly in DIR, all with label 0. */
static int set_open(bench_set *s, const char *name, const char *dir, tl_err *e)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    data_index_cfg ic = {.train_dir = dir};
    tl_err e1;
    if (data_index_build(&s->ix, &ic, &e1) == 0) {
        s->indexed = 1;
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d)
        return tl_errf(e, TL_EIO, "%s: %s", dir, e1.msg);
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !is_image_name(de->d_name))
            continue;
        if (s->ix.n_items == cap) {
            cap = cap ? 2 * cap : 16;
            data_item *q = realloc(s->ix.items, cap * sizeof *q);
            if (!q)
                break;
            s->ix.items = q;
        }
        data_item *it = &s->ix.items[s->ix.n_items];
        size_t n = strlen(dir) + strlen(de->d_name) + 2;
        it->path = malloc(n);
        if (!it->path)
            break;
        snprintf(it->path, n, "%s/%s", dir, de->d_name);
        it->label = 0;
        it->bytes = 0;
        s->ix.n_items++;
    }
    closedir(d);
    if (s->ix.n_items == 0)
        return tl_errf(e, TL_EINVAL, "%s: no class folders (%s) and no images", dir, e1.msg);
    qsort(s->ix.items, s->ix.n_items, sizeof *s->ix.items, cmp_item);
    return 0;
}

static void set_close(bench_set *s)
{
    if (s->indexed) {
        data_index_free(&s->ix);
        return;
    }
    for (size_t i = 0; i < s->ix.n_items; i++)
        free(s->ix.items[i].path);
    free(s->ix.items);
}

typedef struct {
    net n;
    train_ctx t;
    float *x;
    int *y;
    int batch;
} bench_net;

/* MobileNetV2 (alpha 1) + GAP + 10-way dense at size x size, random weights;
 * frozen: only the head trains. */
static int net_open(bench_net *b, int size, int batch, int frozen, tl_err *e)
{
    memset(b, 0, sizeof *b);
    b->batch = batch;
    net_init(&b->n, size, size, 3, NET_TORCHVISION);
    net_backbone_cfg cfg = {.alpha = 1.0f};
    int f = net_backbone(&b->n, "mobilenet_v2", &cfg, e);
    net_head_op head[] = {{NET_HEAD_GAP, 0, NET_ACT_NONE, 0}};
    if (f < 0 || net_head(&b->n, f, head, 1, 10, e) < 0)
        return TL_EINVAL;
    if (frozen)
        net_set_trainable_from(&b->n, f + 1);
    if (net_finalize(&b->n, batch, 1, e) != 0)
        return TL_EINVAL;
    optim_cfg oc = optim_cfg_default(OPTIM_SGD);
    oc.momentum = 0.9;
    if (train_init(&b->t, &b->n, &oc, 1, e) != 0)
        return TL_EINVAL;
    size_t nx = (size_t)batch * size * size * 3;
    b->x = malloc(nx * sizeof *b->x);
    b->y = malloc((size_t)batch * sizeof *b->y);
    if (!b->x || !b->y)
        return tl_errf(e, TL_ENOMEM, "out of memory");
    rng_state r;
    rng_init(&r, 3);
    for (size_t i = 0; i < nx; i++)
        b->x[i] = rng_uniform(&r) * 2 - 1;
    for (int i = 0; i < batch; i++)
        b->y[i] = i % 10;
    return 0;
}

static void net_close(bench_net *b)
{
    train_free(&b->t);
    net_free(&b->n);
    free(b->x);
    free(b->y);
}

/* images/s of train steps on a fixed batch, after one warm-up step: at
 * least 2 steps and `seconds`; *steps gets the count. */
static double train_rate(bench_net *b, double seconds, int *steps)
{
    train_step(&b->t, b->x, b->y, b->batch, NULL);
    int s = 0;
    double t0 = now(), t;
    do {
        train_step(&b->t, b->x, b->y, b->batch, NULL);
        t = now() - t0;
    } while (++s < 2 || t < seconds);
    *steps = s;
    return (double)b->batch * s / t;
}

typedef struct {
    const bench_set *set;
    size_t *ids;
    size_t n_ids;
    int size, batch;
    const data_augment_cfg *aug;
} starve_run;

/* images/s the loader delivers over r->ids; with b, each batch also goes
 * through a train step (the pipeline as training runs it). */
static double loader_rate(const starve_run *r, int threads, bench_net *b, tl_err *e)
{
    loader_cfg lc = {
        .items = r->set->ix.items, .ids = r->ids, .n_ids = r->n_ids, .batch_size = r->batch,
        .image = {r->size, r->size, DATA_PRE_TF, 0, 0}, .augment = r->aug,
        .seed = 1, .threads = threads, .depth = 2,
    };
    double t0 = now();
    loader *L;
    if (loader_open(&L, &lc, e) != 0)
        return -1;
    loader_batch lb;
    size_t n = 0;
    int rc;
    while ((rc = loader_next(L, &lb, e)) == 1) {
        if (b)
            train_step(&b->t, lb.x, lb.labels, lb.n, NULL);
        n += (size_t)lb.n;
    }
    double dt = now() - t0;
    loader_close(L);
    return rc < 0 ? -1 : (double)n / dt;
}

/* r->ids long enough for n images (the set repeated). */
static int ids_grow(starve_run *r, size_t **buf, size_t *cap, size_t n)
{
    if (n > *cap) {
        size_t *q = realloc(*buf, n * sizeof *q);
        if (!q)
            return TL_ENOMEM;
        *buf = q;
        *cap = n;
    }
    for (size_t i = 0; i < n; i++)
        (*buf)[i] = i % r->set->ix.n_items;
    r->ids = *buf;
    r->n_ids = n;
    return 0;
}

static int parse_sizes(const char *s, int *sizes, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 32 || v > 1024)
            return -1;
        sizes[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static int starve_bench(const int *sizes, int n_sizes, int batch, int images, double seconds,
                        char **sets, int n_sets)
{
    data_augment_cfg aug;
    data_augment_cfg_default(&aug);
    aug.horizontal_flip = 1;
    aug.random_resized_crop = 1;
    engine_threads_set(engine_threads_default());
    int nb = (images + batch - 1) / batch;
    size_t n_ids = (size_t)nb * batch;
    size_t *ids = NULL, ids_cap = 0;
    printf("# images/s; batch %d; loader over %zu images (the set repeated); train: MobileNetV2, "
           "%d engine threads, >= %.1f s each\n",
           batch, n_ids, engine_threads_get(), seconds);
    printf("%-8s %4s | %8s %8s %8s | %8s %8s %8s | %7s %7s %7s | %7s %7s %7s\n", "set", "size",
           "load1", "load2", "frozen", "l1/fz", "l2/fz", "fed1/fz", "aug1", "aug2", "tune",
           "a1/tn", "a2/tn", "fed1/tn");
    int rc = 0;
    for (int si = 0; si < n_sets && rc == 0; si++) {
        char *eq = strchr(sets[si], '=');
        const char *name = sets[si], *dir = eq ? eq + 1 : sets[si];
        if (eq)
            *eq = 0;
        bench_set set;
        tl_err e = {0};
        if (set_open(&set, name, dir, &e) != 0) {
            fprintf(stderr, "tlsweep-data-bench: %s\n", e.msg);
            return 1;
        }
        /* Files into the page cache, so the first loader run is not the
         * only one reading the disk. */
        data_image_ctx *c = data_image_ctx_new();
        float *tmp = malloc(sizeof(float) * 64 * 64 * 3);
        data_image_cfg wc = {64, 64, DATA_PRE_TF, 0, 0};
        for (size_t i = 0; c && tmp && i < n_ids && i < set.ix.n_items; i++)
            data_image_load(c, set.ix.items[i].path, &wc, tmp, &e);
        free(tmp);
        data_image_ctx_free(c);
        for (int zi = 0; zi < n_sizes && rc == 0; zi++) {
            starve_run r = {&set, NULL, 0, sizes[zi], batch, NULL}, fed = r;
            bench_net fz, tn;
            double l[2], a[2], ffz, ftn, rfz, rtn;
            int sfz, stn;
            if (net_open(&fz, sizes[zi], batch, 1, &e) != 0 ||
                net_open(&tn, sizes[zi], batch, 0, &e) != 0) {
                fprintf(stderr, "tlsweep-data-bench: %s\n", e.msg);
                return 1;
            }
            /* Interleaved, so that a change in the machine's load hits both. */
            if (ids_grow(&r, &ids, &ids_cap, n_ids) != 0)
                return 1;
            rfz = train_rate(&fz, seconds, &sfz);
            l[0] = loader_rate(&r, 1, NULL, &e);
            l[1] = loader_rate(&r, 2, NULL, &e);
            size_t *fids = NULL, fcap = 0;
            if (ids_grow(&fed, &fids, &fcap, (size_t)batch * (size_t)(sfz + 1)) != 0)
                return 1;
            ffz = loader_rate(&fed, 1, &fz, &e);
            r.aug = fed.aug = &aug;
            rtn = train_rate(&tn, seconds, &stn);
            a[0] = loader_rate(&r, 1, NULL, &e);
            a[1] = loader_rate(&r, 2, NULL, &e);
            if (ids_grow(&fed, &fids, &fcap, (size_t)batch * (size_t)(stn + 1)) != 0)
                return 1;
            ftn = loader_rate(&fed, 1, &tn, &e);
            if (l[0] < 0 || l[1] < 0 || a[0] < 0 || a[1] < 0 || ffz < 0 || ftn < 0) {
                fprintf(stderr, "tlsweep-data-bench: %s\n", e.msg);
                rc = 1;
            } else {
                printf("%-8s %4d | %8.1f %8.1f %8.1f | %8.2f %8.2f %8.2f | %7.1f %7.1f %7.1f | "
                       "%7.2f %7.2f %7.2f\n",
                       name, sizes[zi], l[0], l[1], rfz, l[0] / rfz, l[1] / rfz, ffz / rfz, a[0],
                       a[1], rtn, a[0] / rtn, a[1] / rtn, ftn / rtn);
                fflush(stdout);
            }
            free(fids);
            net_close(&fz);
            net_close(&tn);
        }
        set_close(&set);
    }
    free(ids);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tlsweep-data-bench [--size S] [--seconds T] [--dump FILE] IMAGE...\n"
            "       tlsweep-data-bench --starve [--sizes 96,224] [--batch B] [--images N] "
            "[--seconds T] NAME=DIR...\n");
}

int main(int argc, char **argv)
{
    int size = 224, starve = 0, batch = 32, images = 640;
    int sizes[8] = {96, 224}, n_sizes = 2;
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
        else if (!strcmp(argv[i], "--starve"))
            starve = 1;
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc)
            n_sizes = parse_sizes(argv[++i], sizes, 8);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--images") && i + 1 < argc)
            images = atoi(argv[++i]);
        else {
            usage();
            return 2;
        }
    }
    int nfiles = argc - i;
    if (nfiles <= 0 || size <= 0 || n_sizes <= 0 || batch < 1 || images < 1 || seconds <= 0) {
        usage();
        return 2;
    }
    if (starve) {
        engine_reexec_tuned(argv);   /* passive OpenMP waiters, as the tlsweep program runs */
        return starve_bench(sizes, n_sizes, batch, images, seconds, argv + i, nfiles);
    }
    return decode_bench(size, seconds, dump, argv + i, nfiles);
}
