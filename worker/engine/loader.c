#include "worker/engine/loader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { POS_UNKNOWN = 0, POS_GOOD = 1, POS_BAD = 2 };

typedef struct {
    float *x;
    int *labels;
    size_t *ids;
    int done;          /* slots filled, under mu */
    int failed;        /* a slot found no decodable image */
} ring_slot;

struct loader {
    loader_cfg cfg;
    size_t n_batches, img_floats;
    size_t *first;              /* cfg.sizes: batch b starts at position first[b] */
    ring_slot *ring;
    int depth;
    _Atomic uint8_t *state;     /* per position: POS_* */
    atomic_size_t skipped;

    pthread_mutex_t mu;
    pthread_cond_t space, ready;
    size_t next_pos;            /* next position a thread takes */
    size_t consumed;            /* batches handed out and released */
    int handed;                 /* batch `consumed` is with the consumer */
    int stop;
    char fail_msg[512];

    pthread_mutex_t warn_mu;
    pthread_t *threads;
    int n_threads;
};

static size_t batch_len(const loader *L, size_t b)
{
    if (L->first)
        return L->first[b + 1] - L->first[b];
    size_t B = (size_t)L->cfg.batch_size, lo = b * B;
    return L->cfg.n_ids - lo < B ? L->cfg.n_ids - lo : B;
}

/* The batch position pos falls in and its slot there; with sizes, the
 * last batch starting at or before pos that is not empty. */
static size_t batch_of(const loader *L, size_t pos, size_t *slot)
{
    if (!L->first) {
        size_t B = (size_t)L->cfg.batch_size;
        *slot = pos % B;
        return pos / B;
    }
    size_t lo = 0, hi = L->n_batches; /* first[lo] <= pos < first[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (L->first[mid] <= pos)
            lo = mid;
        else
            hi = mid;
    }
    *slot = pos - L->first[lo];
    return lo;
}

static void warn_bad(loader *L, size_t q, const tl_err *e)
{
    uint8_t was = atomic_exchange(&L->state[q], POS_BAD);
    if (was == POS_BAD)
        return;
    atomic_fetch_add(&L->skipped, 1);
    if (L->cfg.warn) {
        pthread_mutex_lock(&L->warn_mu);
        L->cfg.warn(L->cfg.warn_ctx, e->msg);
        pthread_mutex_unlock(&L->warn_mu);
    }
}

/* Fills slot `pos` with the first decodable image at pos, pos+1, ... */
static int fill(loader *L, data_image_ctx *c, float *scratch, size_t pos, float *x, int *label,
                size_t *id, tl_err *e)
{
    const loader_cfg *g = &L->cfg;
    int aug = data_augment_active(g->augment);
    for (size_t k = 0; k < g->n_ids; k++) {
        size_t q = (pos + k) % g->n_ids;
        if (atomic_load(&L->state[q]) == POS_BAD)
            continue;
        size_t it = g->ids[q];
        const data_item *item = &g->items[it];
        int rc = aug ? data_augment_load(c, item->path, &g->image, g->augment,
                                         data_augment_seed(g->seed, g->trial, g->epoch, it), x,
                                         scratch, e)
                     : data_image_load(c, item->path, &g->image, x, e);
        if (rc == 0) {
            atomic_store(&L->state[q], POS_GOOD);
            *label = item->label;
            *id = it;
            return 0;
        }
        warn_bad(L, q, e);
    }
    return tl_errf(e, TL_EFORMAT, "no decodable image among the %zu in the list", g->n_ids);
}

static void *worker(void *arg)
{
    loader *L = arg;
    data_image_ctx *c = data_image_ctx_new();
    float *scratch = malloc(L->img_floats * sizeof *scratch);
    tl_err e;
    for (;;) {
        pthread_mutex_lock(&L->mu);
        while (!L->stop && L->next_pos < L->cfg.n_ids &&
               batch_of(L, L->next_pos, &(size_t){0}) >= L->consumed + (size_t)L->depth)
            pthread_cond_wait(&L->space, &L->mu);
        if (L->stop || L->next_pos >= L->cfg.n_ids) {
            pthread_mutex_unlock(&L->mu);
            break;
        }
        size_t pos = L->next_pos++;
        pthread_mutex_unlock(&L->mu);

        size_t s, b = batch_of(L, pos, &s);
        ring_slot *r = &L->ring[b % (size_t)L->depth];
        int rc;
        if (!c || !scratch)
            rc = tl_errf(&e, TL_ENOMEM, "out of memory starting a decoding thread");
        else
            rc = fill(L, c, scratch, pos, r->x + s * L->img_floats, &r->labels[s], &r->ids[s], &e);

        pthread_mutex_lock(&L->mu);
        if (rc != 0 && !r->failed) {
            r->failed = 1;
            snprintf(L->fail_msg, sizeof L->fail_msg, "%s", e.msg);
        }
        if (++r->done == (int)batch_len(L, b))
            pthread_cond_broadcast(&L->ready);
        pthread_mutex_unlock(&L->mu);
    }
    free(scratch);
    data_image_ctx_free(c);
    return NULL;
}

void loader_close(loader *L)
{
    if (!L)
        return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->space);
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < L->n_threads; i++)
        pthread_join(L->threads[i], NULL);
    for (int i = 0; L->ring && i < L->depth; i++) {
        free(L->ring[i].x);
        free(L->ring[i].labels);
        free(L->ring[i].ids);
    }
    free(L->ring);
    free((void *)L->state);
    free(L->threads);
    free(L->first);
    pthread_mutex_destroy(&L->mu);
    pthread_mutex_destroy(&L->warn_mu);
    pthread_cond_destroy(&L->space);
    pthread_cond_destroy(&L->ready);
    free(L);
}

/* The start of each batch of cfg.sizes (one more: the end), checked
 * against n_ids and batch_size. */
static int batch_starts(loader *L, tl_err *e)
{
    const loader_cfg *c = &L->cfg;
    L->n_batches = c->n_sizes;
    if (!(L->first = malloc((c->n_sizes + 1) * sizeof *L->first)))
        return tl_errf(e, TL_ENOMEM, "loader: out of memory");
    L->first[0] = 0;
    for (size_t b = 0; b < c->n_sizes; b++) {
        if (c->sizes[b] < 0 || c->sizes[b] > c->batch_size) {
            free(L->first);
            return tl_errf(e, TL_EINVAL, "loader: batch %zu holds %d images, not 0..%d", b,
                           c->sizes[b], c->batch_size);
        }
        L->first[b + 1] = L->first[b] + (size_t)c->sizes[b];
    }
    if (L->first[c->n_sizes] != c->n_ids) {
        size_t sum = L->first[c->n_sizes];
        free(L->first);
        return tl_errf(e, TL_EINVAL, "loader: the batch sizes sum to %zu, the list holds %zu",
                       sum, c->n_ids);
    }
    return 0;
}

int loader_open(loader **out, const loader_cfg *cfg, tl_err *e)
{
    *out = NULL;
    if (cfg->batch_size <= 0 || cfg->image.width <= 0 || cfg->image.height <= 0 ||
        (cfg->n_ids > 0 && (!cfg->items || !cfg->ids)))
        return tl_errf(e, TL_EINVAL, "loader: batch size %d, image %dx%d: must be positive",
                       cfg->batch_size, cfg->image.width, cfg->image.height);
    loader *L = calloc(1, sizeof *L);
    if (!L)
        return tl_errf(e, TL_ENOMEM, "loader: out of memory");
    L->cfg = *cfg;
    L->depth = cfg->depth > 0 ? cfg->depth : 2;
    L->n_threads = cfg->threads > 0 ? cfg->threads : 1;
    L->img_floats = (size_t)cfg->image.width * cfg->image.height * 3;
    L->n_batches = (cfg->n_ids + (size_t)cfg->batch_size - 1) / (size_t)cfg->batch_size;
    if (cfg->sizes) {
        int rc = batch_starts(L, e);
        if (rc) {
            free(L);
            return rc;
        }
    }
    pthread_mutex_init(&L->mu, NULL);
    pthread_mutex_init(&L->warn_mu, NULL);
    pthread_cond_init(&L->space, NULL);
    pthread_cond_init(&L->ready, NULL);
    atomic_init(&L->skipped, 0);
    size_t B = (size_t)cfg->batch_size;
    L->ring = calloc((size_t)L->depth, sizeof *L->ring);
    L->state = calloc(cfg->n_ids ? cfg->n_ids : 1, sizeof *L->state);
    L->threads = calloc((size_t)L->n_threads, sizeof *L->threads);
    int ok = L->ring && L->state && L->threads;
    for (int i = 0; ok && i < L->depth; i++) {
        ring_slot *r = &L->ring[i];
        r->x = malloc(B * L->img_floats * sizeof *r->x);
        r->labels = malloc(B * sizeof *r->labels);
        r->ids = malloc(B * sizeof *r->ids);
        ok = r->x && r->labels && r->ids;
    }
    if (!ok) {
        int depth = L->depth;
        L->n_threads = 0;
        loader_close(L);
        return tl_errf(e, TL_ENOMEM, "loader: out of memory for %d batches of %zu images %dx%d",
                       depth, B, cfg->image.width, cfg->image.height);
    }
    int started = 0;
    for (; started < L->n_threads; started++)
        if (pthread_create(&L->threads[started], NULL, worker, L) != 0)
            break;
    if (started == 0) {
        L->n_threads = 0;
        loader_close(L);
        return tl_errf(e, TL_EIO, "loader: cannot start a decoding thread");
    }
    L->n_threads = started;
    *out = L;
    return 0;
}

int loader_next(loader *L, loader_batch *b, tl_err *e)
{
    pthread_mutex_lock(&L->mu);
    if (L->handed) {   /* the consumer is done with the previous batch */
        L->ring[L->consumed % (size_t)L->depth].done = 0;
        L->ring[L->consumed % (size_t)L->depth].failed = 0;
        L->consumed++;
        L->handed = 0;
        pthread_cond_broadcast(&L->space);
    }
    if (L->consumed >= L->n_batches) {
        pthread_mutex_unlock(&L->mu);
        return 0;
    }
    ring_slot *r = &L->ring[L->consumed % (size_t)L->depth];
    int n = (int)batch_len(L, L->consumed);
    while (r->done < n)
        pthread_cond_wait(&L->ready, &L->mu);
    if (r->failed) {
        int rc = tl_errf(e, TL_EFORMAT, "%s", L->fail_msg);
        pthread_mutex_unlock(&L->mu);
        return rc;
    }
    b->x = r->x;
    b->labels = r->labels;
    b->ids = r->ids;
    b->n = n;
    b->index = L->consumed;
    L->handed = 1;
    pthread_mutex_unlock(&L->mu);
    return 1;
}

size_t loader_skipped(loader *L)
{
    return atomic_load(&L->skipped);
}

size_t loader_batches(const loader *L)
{
    return L->n_batches;
}
