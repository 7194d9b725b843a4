/* Writes the seeds that come straight from the library's writers, for
 * tests/fuzz/make_corpus.sh:
 *   DIR/msg/         Envelopes a worker sends (Hello, Heartbeat, Error,
 *                    FeatureChunk, TrialResult), whole (first byte 0) and
 *                    cut into chunks at the smallest chunk limit (first
 *                    byte 1, then u32 length + chunk, as fuzz_msg.c reads)
 *   DIR/coord/       what a worker sends the coordinator after its Hello, as
 *                    fuzz_coord.c reads it: (u32 length, packed Envelope)...
 *   DIR/safetensors/ small F32 tensors, with and without metadata
 *   DIR/tlm/         a head-sized .tlm (the real backbones are megabytes)
 *   DIR/ckpt/        a checkpoint of a trial at epoch 2, as a worker writes it
 *   DIR/fcache/      a feature cache of 6 images x 8 features
 *   DIR/image/       small JPEGs (4:2:0, 4:4:4, grey, EXIF orientations)
 *                    and PNGs (RGB, 16-bit grey, palette, RGBA interlaced,
 *                    1-bit), by the image tests' writers (tests/data/imgutil)
 *   usage: fuzz_seeds DIR */
#include "common/msg/msg.h"
#include "common/store/ckpt.h"
#include "common/store/fcache.h"
#include "common/weights/model_file.h"
#include "common/weights/safetensors.h"
#include "data/imgutil.h"

#include <png.h>
#include <turbojpeg.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void die(const char *what, const tl_err *e)
{
    fprintf(stderr, "fuzz_seeds: %s%s%s\n", what, e ? ": " : "", e ? e->msg : "");
    exit(1);
}

static void put(const char *dir, const char *name, const void *a, size_t na, const void *b,
                size_t nb)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f))
        die(path, NULL);
}

/* The packed Envelope, whole and (when over the chunk limit) chunked. */
static void envelope(const char *dir, const char *name, Tlsweep__Envelope *env)
{
    if (!env)
        die("out of memory", NULL);
    env->from_rank = 1;
    env->seq = 3;
    size_t n = tlsweep__envelope__get_packed_size(env);
    unsigned char *buf = malloc(n + 1);
    if (!buf)
        die("out of memory", NULL);
    tlsweep__envelope__pack(env, buf);
    char file[256];
    snprintf(file, sizeof file, "%s-whole", name);
    put(dir, file, "\0", 1, buf, n);

    size_t limit = MSG_CHUNK_LIMIT_MIN, piece = limit - MSG_CHUNK_HEADER_SIZE;
    uint32_t count = msg_chunk_count(n, limit);
    if (count > 1) {
        size_t cap = 1 + (size_t)count * (4 + MSG_CHUNK_HEADER_SIZE) + n, at = 0;
        unsigned char *s = malloc(cap);
        if (!s)
            die("out of memory", NULL);
        s[at++] = 1;
        for (uint32_t i = 0; i < count; i++) {
            size_t k = i + 1 < count ? piece : n - (size_t)i * piece;
            uint32_t len = (uint32_t)(MSG_CHUNK_HEADER_SIZE + k);
            for (int b = 0; b < 4; b++)
                s[at++] = (unsigned char)(len >> 8 * b);
            msg_chunk_header h = {.msg_id = 7, .index = i, .count = count, .total = n};
            msg_chunk_header_encode(&h, s + at);
            at += MSG_CHUNK_HEADER_SIZE;
            memcpy(s + at, buf + (size_t)i * piece, k);
            at += k;
        }
        snprintf(file, sizeof file, "%s-chunked", name);
        put(dir, file, s, at, NULL, 0);
        free(s);
    }
    free(buf);
    msg_free(env);
}

static void *zalloc(size_t n)
{
    void *p = calloc(1, n);
    if (!p)
        die("out of memory", NULL);
    return p;
}

/* A TrialResult of a trial (key 0: fuzz_coord finds the sweep's own). */
static Tlsweep__Envelope *result(Tlsweep__TrialResult__Status status, uint64_t task,
                                 uint32_t trial)
{
    Tlsweep__Envelope *env = zalloc(sizeof *env);
    Tlsweep__TrialResult *r = zalloc(sizeof *r);
    tlsweep__envelope__init(env);
    tlsweep__trial_result__init(r);
    r->task_id = task;
    r->trial_index = trial;
    r->status = status;
    r->epochs_done = 2;
    r->best_epoch = 1;
    r->val_accuracy = 0.5f;
    r->num_classes = 2;
    env->body_case = TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT;
    env->trial_result = r;
    return env;
}

static Tlsweep__Envelope *epoch(uint64_t task, uint32_t trial, uint32_t ep)
{
    Tlsweep__Envelope *env = zalloc(sizeof *env);
    Tlsweep__EpochReport *r = zalloc(sizeof *r);
    tlsweep__envelope__init(env);
    tlsweep__epoch_report__init(r);
    r->task_id = task;
    r->epoch = ep;
    r->trial_index = trial;
    r->loss = 0.7f;
    r->val_accuracy = 0.5f;
    env->body_case = TLSWEEP__ENVELOPE__BODY_EPOCH_REPORT;
    env->epoch_report = r;
    return env;
}

static void msgs(const char *dir)
{
    tl_err e;
    Tlsweep__Envelope *hello;
    if (msg_new_hello(1, &hello, &e))
        die("hello", &e);
    envelope(dir, "hello", hello);
    envelope(dir, "heartbeat", msg_new_heartbeat(1700000000000ull, 4, 123456789));
    envelope(dir, "error", msg_new_error(-4, "data/x.jpg: not a JPEG", 0));
    uint32_t ids[12];
    float f[12 * 32];
    for (int i = 0; i < 12; i++)
        ids[i] = (uint32_t)(3 * i);
    for (int i = 0; i < 12 * 32; i++)
        f[i] = (float)(i % 17) / 8.0f - 1.0f;
    envelope(dir, "features-small", msg_new_feature_chunk(2, "mobilenet_v2", ids, 2, f, 4, 0));
    envelope(dir, "features", msg_new_feature_chunk(2, "mobilenet_v2", ids, 12, f, 32, 1));

    /* a TrialResult as a worker ends a trial (the model bytes left out) */
    Tlsweep__Envelope *env = result(TLSWEEP__TRIAL_RESULT__STATUS__DONE, 9, 1);
    Tlsweep__TrialResult *r = env->trial_result;
    char *names[] = {"t-shirt", "trouser"};
    r->trial_id = strdup("mobilenet_v2-frozen-lr1e-03-adam-b16");
    r->val_loss = 0.5f;
    r->val_accuracy = 0.75f;
    r->trial_index = 1;
    r->trial_key = 0x1234abcdull;
    r->best_value = 0.75;
    r->eval_split = strdup("val");
    r->n_class_names = 2;
    r->class_names = calloc(2, sizeof *r->class_names);
    if (!r->trial_id || !r->eval_split || !r->class_names)
        die("out of memory", NULL);
    for (int i = 0; i < 2; i++)
        if (!(r->class_names[i] = strdup(names[i])))
            die("out of memory", NULL);
    envelope(dir, "trial-result", env);
}

static void safetensors(const char *dir)
{
    float a[6] = {1, -2, 0.5f, 3, 0, -0.25f}, b[3] = {7, 8, 9};
    weights_st_entry t[] = {
        {.name = "dense/kernel", .data = a, .ndim = 2, .shape = {3, 2}},
        {.name = "dense/bias", .data = b, .ndim = 1, .shape = {3}},
        {.name = "scalar", .data = b, .ndim = 0},
    };
    const char *meta[] = {"format", "pt", "note", "fuzz seed"};
    char path[1024];
    tl_err e;
    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    if (weights_st_write_meta(path, t, 3, meta, 2, &e))
        die("safetensors", &e);
    snprintf(path, sizeof path, "%s/plain.safetensors", dir);
    if (weights_st_write(path, t, 1, &e))
        die("safetensors", &e);
}

static void tlm(const char *dir)
{
    model_spec s;
    tset t;
    tl_err e;
    model_spec_init(&s);
    tset_init(&t);
    model_head_op ops[] = {{MODEL_HEAD_GAP, 0, MODEL_ACT_LINEAR, 0},
                           {MODEL_HEAD_DENSE, 4, MODEL_ACT_RELU6, 0},
                           {MODEL_HEAD_DROPOUT, 0, MODEL_ACT_LINEAR, 0.25f}};
    float k[8 * 4], b[4] = {0.5f, -0.5f, 0, 1};
    for (int i = 0; i < 32; i++)
        k[i] = (float)(i % 7) / 7.0f - 0.5f;
    int64_t ks[2] = {8, 4}, bs[1] = {4};
    char path[1024];
    snprintf(path, sizeof path, "%s/head.tlm", dir);
    int rc = model_spec_set_str(&s.backbone, "mobilenet_v2", &e);
    for (int i = 0; i < 3 && !rc; i++)
        rc = model_spec_add_head(&s, ops[i], &e);
    if (!rc)
        rc = model_spec_add_class(&s, "cat", &e);
    if (!rc)
        rc = model_spec_add_class(&s, "dog", &e);
    if (!rc)
        rc = model_spec_set_str(&s.importer, "tfjs", &e);
    s.alpha = 0.35f;
    s.height = s.width = 32;
    s.num_classes = 2;
    s.mode = MODEL_FINE_TUNE_AT;
    s.fine_tune_at = 100;
    s.preproc = MODEL_PREPROC_UNIT;
    if (!rc)
        rc = tset_add(&t, "head_dense/kernel", 2, ks, k, &e);
    if (!rc)
        rc = tset_add(&t, "head_dense/bias", 1, bs, b, &e);
    if (!rc)
        rc = model_write(path, &s, &t, &e);
    if (rc)
        die("tlm", &e);
    model_spec_free(&s);
    tset_free(&t);
}

/* A checkpoint as a worker writes it (worker.c): "weights" and "best" of
 * one length, "optim", one history entry per epoch. */
static void ckpt(const char *dir)
{
    float w[6] = {1, 2, 3, -1, -2, -3}, b[6] = {1, 2, 2.5f, -1, -2, -3}, o[5] = {12, 0.25f, 4};
    int64_t ws[1] = {6}, os[1] = {5};
    Tlsweep__Tensor t[3] = {TLSWEEP__TENSOR__INIT, TLSWEEP__TENSOR__INIT, TLSWEEP__TENSOR__INIT};
    t[0].name = "weights", t[0].n_shape = 1, t[0].shape = ws, t[0].n_data = 6, t[0].data = w;
    t[1].name = "best", t[1].n_shape = 1, t[1].shape = ws, t[1].n_data = 6, t[1].data = b;
    t[2].name = "optim", t[2].n_shape = 1, t[2].shape = os, t[2].n_data = 5, t[2].data = o;
    Tlsweep__Tensor *tp[3] = {&t[0], &t[1], &t[2]};
    Tlsweep__EpochReport h[2] = {TLSWEEP__EPOCH_REPORT__INIT, TLSWEEP__EPOCH_REPORT__INIT};
    Tlsweep__EpochReport *hp[2] = {&h[0], &h[1]};
    for (int i = 0; i < 2; i++) {
        h[i].task_id = 5;
        h[i].trial_id = "mobilenet_v2-ft100-lr1e-03-adam-b16";
        h[i].epoch = (uint32_t)i + 1;
        h[i].loss = 1.0f / (float)(i + 1);
        h[i].val_accuracy = 0.5f + 0.1f * (float)i;
        h[i].learning_rate = 1e-3;
    }
    Tlsweep__Checkpoint c = TLSWEEP__CHECKPOINT__INIT;
    c.task_id = 5;
    c.trial_id = "mobilenet_v2-ft100-lr1e-03-adam-b16";
    c.epoch = 2;
    c.step = 12;
    c.n_tensors = 3;
    c.tensors = tp;
    c.trial_index = 1;
    c.trial_key = 0x9e3779b97f4a7c15ull;
    c.best_epoch = 2;
    c.best_value = 0.6;
    c.n_history = 2;
    c.history = hp;
    char path[1024];
    tl_err e;
    snprintf(path, sizeof path, "%s/epoch2.ckpt", dir);
    if (ckpt_write(path, &c, &e))
        die("ckpt", &e);
}

static void features(const char *dir)
{
    float x[6 * 8];
    uint8_t ok[6] = {1, 1, 0, 1, 1, 1};
    for (int i = 0; i < 6 * 8; i++)
        x[i] = (float)(i % 5) * 0.75f;
    char path[1024];
    tl_err e;
    snprintf(path, sizeof path, "%s/4948bb210e61ecbf.features", dir);
    if (fcache_write(path, 0x4948bb210e61ecbfull, "mobilenet_v2|tiny.tlm|32|unit",
                     0x0123456789abcdefull, x, ok, 6, 8, &e))
        die("fcache", &e);
}

static void jpeg(const char *dir, const char *name, const uint8_t *pix, int pf, int samp,
                 int orientation, int be)
{
    size_t n;
    uint8_t *j = iu_jpeg(pix, 24, 16, pf, samp, 85, orientation, be, &n);
    put(dir, name, j, n, NULL, 0);
    free(j);
}

static void images(const char *dir)
{
    uint8_t *rgb = iu_pattern(24, 16, 3), grey[24 * 16], grey16[24 * 16 * 2],
            rgba[24 * 16 * 4], idx[24 * 16], bits[16 * 3];
    uint8_t pal[4 * 3] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 255, 255, 255};
    for (int i = 0; i < 24 * 16; i++) {
        grey[i] = rgb[3 * i];
        grey16[2 * i] = rgb[3 * i], grey16[2 * i + 1] = rgb[3 * i + 1];
        memcpy(rgba + 4 * i, rgb + 3 * i, 3);
        rgba[4 * i + 3] = (uint8_t)(i * 7);
        idx[i] = (uint8_t)(i % 4);
    }
    for (int i = 0; i < 16 * 3; i++)
        bits[i] = (uint8_t)(0xA5 ^ i);
    jpeg(dir, "rgb420.jpg", rgb, TJPF_RGB, TJSAMP_420, 0, 0);
    jpeg(dir, "rgb444-exif6.jpg", rgb, TJPF_RGB, TJSAMP_444, 6, 0);
    jpeg(dir, "rgb422-exif3-be.jpg", rgb, TJPF_RGB, TJSAMP_422, 3, 1);
    jpeg(dir, "grey-exif8.jpg", grey, TJPF_GRAY, TJSAMP_GRAY, 8, 0);
    char *p;
    iu_png(p = iu_path(dir, "rgb.png"), rgb, 24, 16, PNG_COLOR_TYPE_RGB, 8, NULL, 0, 0);
    free(p);
    iu_png(p = iu_path(dir, "grey16.png"), grey16, 24, 16, PNG_COLOR_TYPE_GRAY, 16, NULL, 0, 0);
    free(p);
    iu_png(p = iu_path(dir, "palette.png"), idx, 24, 16, PNG_COLOR_TYPE_PALETTE, 8, pal, 4, 0);
    free(p);
    iu_png(p = iu_path(dir, "rgba-interlaced.png"), rgba, 24, 16, PNG_COLOR_TYPE_RGBA, 8, NULL,
           0, 1);
    free(p);
    iu_png(p = iu_path(dir, "grey1.png"), bits, 24, 16, PNG_COLOR_TYPE_GRAY, 1, NULL, 0, 0);
    free(p);
    free(rgb);
}

/* Envelopes for fuzz_coord.c, each as (u32 LE length, packed bytes); the
 * Envelopes are freed. */
static void framed(const char *dir, const char *name, Tlsweep__Envelope **envs, int n)
{
    unsigned char *all = NULL;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (!envs[i])
            die("out of memory", NULL);
        size_t k = tlsweep__envelope__get_packed_size(envs[i]);
        unsigned char *p = realloc(all, len + 4 + k);
        if (!p)
            die("out of memory", NULL);
        all = p;
        for (int b = 0; b < 4; b++)
            all[len++] = (unsigned char)(k >> 8 * b);
        tlsweep__envelope__pack(envs[i], all + len);
        len += k;
        msg_free(envs[i]);
    }
    put(dir, name, all, len, NULL, 0);
    free(all);
}

/* A Checkpoint of trial 1 at epoch 1 in task 2 (key 0, as result()), as a
 * worker sends it (worker.c: "weights", "best", "optim" and the history),
 * all on the heap. */
static Tlsweep__Envelope *checkpoint(void)
{
    Tlsweep__Envelope *env = zalloc(sizeof *env);
    Tlsweep__Checkpoint *c = zalloc(sizeof *c);
    const char *names[3] = {"weights", "best", "optim"};
    size_t n[3] = {4, 4, 9};
    tlsweep__envelope__init(env);
    tlsweep__checkpoint__init(c);
    c->tensors = zalloc(3 * sizeof *c->tensors);
    c->n_tensors = 3;
    for (int i = 0; i < 3; i++) {
        Tlsweep__Tensor *t = c->tensors[i] = zalloc(sizeof *t);
        tlsweep__tensor__init(t);
        t->name = strdup(names[i]);
        t->n_shape = 1;
        t->shape = zalloc(sizeof *t->shape);
        t->shape[0] = (int64_t)n[i];
        t->n_data = n[i];
        t->data = zalloc(n[i] * sizeof *t->data);
        for (size_t j = 0; j < n[i]; j++)
            t->data[j] = 0.125f * (float)(i + 1) * (float)j;
        if (!t->name)
            die("out of memory", NULL);
    }
    Tlsweep__Envelope *h = epoch(2, 1, 1);
    c->history = zalloc(sizeof *c->history);
    c->history[0] = h->epoch_report;
    c->n_history = 1;
    h->epoch_report = NULL;
    h->body_case = TLSWEEP__ENVELOPE__BODY__NOT_SET;
    msg_free(h);
    c->task_id = 2;
    c->epoch = 1;
    c->step = 3;
    c->trial_index = 1;
    c->best_epoch = 1;
    c->best_value = 0.5;
    env->body_case = TLSWEEP__ENVELOPE__BODY_CHECKPOINT;
    env->checkpoint = c;
    return env;
}

/* The coordinator's first task for the one worker is the extraction of the
 * frozen trial's features (task 1, 8 images), answered here in two
 * chunks; the next, given while the cache is written, is trial 1
 * (fine_tune) as task 2. So every seed but hello-again starts with the
 * extraction, and the trial messages are task 2's, to reach the handlers
 * behind the task checks (FUZZ_COORD_LOG=1 shows what each seed reaches). */
static void extraction(Tlsweep__Envelope **a)
{
    static uint32_t ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    static float f[8 * 4];
    for (int i = 0; i < 8 * 4; i++)
        f[i] = (float)i / 4.0f;
    a[0] = msg_new_feature_chunk(1, "mobilenet_v2", ids, 3, f, 4, 0);
    a[1] = msg_new_feature_chunk(1, "mobilenet_v2", ids + 3, 5, f + 12, 4, 1);
}

static void coord(const char *dir)
{
    const Tlsweep__TrialResult__Status done = TLSWEEP__TRIAL_RESULT__STATUS__DONE;
    Tlsweep__Envelope *a[3] = {msg_new_heartbeat(1700000000000ull, 1, 1 << 20)};
    extraction(a + 1);
    framed(dir, "features", a, 3);
    Tlsweep__Envelope *b[5];
    extraction(b);
    b[2] = epoch(2, 1, 1), b[3] = epoch(2, 1, 2), b[4] = result(done, 2, 1);
    framed(dir, "trial-done", b, 5);
    Tlsweep__Envelope *c[5];
    extraction(c);
    c[2] = epoch(2, 1, 1), c[3] = result(done, 2, 1), c[4] = result(done, 2, 1);
    framed(dir, "done-twice", c, 5);
    Tlsweep__Envelope *d[5];
    extraction(d);
    d[2] = msg_new_error(-4, "train/ants/0.jpg: not a JPEG", 0), d[3] = epoch(2, 1, 1);
    d[4] = result(TLSWEEP__TRIAL_RESULT__STATUS__FAILED, 2, 1);
    framed(dir, "failed", d, 5);
    Tlsweep__Envelope *k[6];
    extraction(k);
    k[2] = epoch(2, 1, 1), k[3] = checkpoint(), k[4] = epoch(2, 1, 2), k[5] = result(done, 2, 1);
    framed(dir, "checkpoint", k, 6);
    /* a stop the coordinator did not ask for */
    Tlsweep__Envelope *s[3];
    extraction(s);
    s[2] = result(TLSWEEP__TRIAL_RESULT__STATUS__STOPPED, 2, 1);
    framed(dir, "stopped-unasked", s, 3);
    Tlsweep__Envelope *hello;
    tl_err e;
    if (msg_new_hello(1, &hello, &e))
        die("hello", &e);
    Tlsweep__Envelope *h[] = {hello};
    framed(dir, "hello-again", h, 1);
}

/* DIR/sub, created */
static const char *subdir(char *d, size_t n, const char *dir, const char *sub)
{
    snprintf(d, n, "%s/%s", dir, sub);
    if (mkdir(d, 0755) && errno != EEXIST)
        die(d, NULL);
    return d;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    char d[1024];
    msgs(subdir(d, sizeof d, argv[1], "msg"));
    coord(subdir(d, sizeof d, argv[1], "coord"));
    safetensors(subdir(d, sizeof d, argv[1], "safetensors"));
    tlm(subdir(d, sizeof d, argv[1], "tlm"));
    ckpt(subdir(d, sizeof d, argv[1], "ckpt"));
    features(subdir(d, sizeof d, argv[1], "fcache"));
    images(subdir(d, sizeof d, argv[1], "image"));
    return 0;
}
