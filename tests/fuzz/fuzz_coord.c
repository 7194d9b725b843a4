/* The coordinator's handling of what a worker sends, without MPI: per
 * input, coord_run on a tiny sweep (2 trials, one of them on a feature
 * cache) over a local link, against a fake worker thread that says Hello,
 * sends the input's Envelopes, then a fatal Error that ends the run. The
 * input is a list of (u32 little-endian length, packed Envelope); pieces
 * that do not unpack are skipped, as msg_link would refuse them. A
 * TrialResult or Checkpoint with trial_key 0 gets the key of the trial its
 * trial_index names (when there is one), so that mutations get past the
 * key check (a 64-bit hash) to the handling behind it: the sweep's keys as
 * coord_preflight binds them to the dataset's fingerprint, the ones
 * coord_run checks against. The seeds (fuzz_seeds.c) answer the first
 * task, the extraction, before sending a trial's messages.
 *
 * The sweep, its images and out/ live in a folder of this process's own
 * (TMPDIR, else /dev/shm, else /tmp); out/ is removed before every run. The
 * coordinator's log goes to /dev/null unless FUZZ_COORD_LOG=1. */
#include "common/msg/msg.h"
#include "common/msg/msg_link.h"
#include "coordinator/coord.h"

#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

static char root[256], out_dir[300];
static sweep s;
static char *text;
static size_t text_len;
static data_index ix;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "fuzz_coord: %s: %s\n", what, why);
    abort();
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

static void rm_rf(const char *p)
{
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void)
{
    sweep_free(&s);
    free(text);
    data_index_free(&ix);
    rm_rf(root);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f))
        die(path, "cannot write");
}

/* dir/<class>/<i>.jpg: 4 flat 8x8 JPEGs per class */
static void write_images(const char *dir)
{
    tjhandle tj = tjInitCompress();
    if (!tj)
        die("tjInitCompress", tjGetErrorStr());
    mkdir(dir, 0755);
    const char *classes[2] = {"ants", "bees"};
    for (int k = 0; k < 2; k++) {
        char cd[512];
        snprintf(cd, sizeof cd, "%s/%s", dir, classes[k]);
        mkdir(cd, 0755);
        for (int i = 0; i < 4; i++) {
            unsigned char pix[8 * 8 * 3], *jpg = NULL;
            unsigned long n = 0;
            for (int p = 0; p < 8 * 8 * 3; p++)
                pix[p] = (unsigned char)(k * 120 + i * 20 + p % 3 * 10);
            if (tjCompress2(tj, pix, 8, 0, 8, TJPF_RGB, &jpg, &n, TJSAMP_444, 90, 0))
                die("tjCompress2", tjGetErrorStr2(tj));
            char fn[600];
            snprintf(fn, sizeof fn, "%s/%d.jpg", cd, i);
            write_file(fn, jpg, n);
            tjFree(jpg);
        }
    }
    tjDestroy(tj);
}

static void init(void)
{
    if (!getenv("FUZZ_COORD_LOG") && !freopen("/dev/null", "w", stdout))
        die("/dev/null", "cannot open");
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(root, sizeof root, "%s/tlsweep-fuzz-coord-XXXXXX", tmp);
    if (!mkdtemp(root))
        die(root, "mkdtemp");
    atexit(cleanup);
    char p[512];
    snprintf(p, sizeof p, "%s/train", root);
    write_images(p);
    /* the coordinator only checks that the weights file is readable */
    snprintf(p, sizeof p, "%s/w.tlm", root);
    write_file(p, "w", 1);
    snprintf(out_dir, sizeof out_dir, "%s/out", root);
    char yaml[2048];
    int n = snprintf(yaml, sizeof yaml,
                     "name: fz\n"
                     "data: {train_dir: %s/train, validation_split: 0.25, image_size: 32}\n"
                     "model: {head: [global_average_pooling, {dense: 4}]}\n"
                     "weights: {mobilenet_v2: %s/w.tlm}\n"
                     "grid:\n"
                     "  backbone: [mobilenet_v2]\n"
                     "  mode: [frozen, fine_tune]\n"
                     "  learning_rate: [1.0e-2]\n"
                     "  optimizer: [adam]\n"
                     "  batch_size: [8]\n"
                     "epochs: 2\n"
                     "threads: 1\n"
                     "seed: 7\n"
                     "checkpoint_seconds: 0\n"
                     "out: %s\n",
                     root, root, out_dir);
    text = strdup(yaml);
    text_len = (size_t)n;
    tl_err e = {0};
    if (!text || sweep_parse(&s, "fuzz.yaml", text, text_len, &e) ||
        coord_preflight(&s, &ix, &e))
        die("the sweep", e.msg);
}

typedef struct {
    msg_link *l;
    const uint8_t *data;
    size_t size;
} worker;

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void send_free(msg_link *l, Tlsweep__Envelope *env)
{
    if (env)
        msg_link_send(l, 0, env, NULL);
    msg_free(env);
}

static void fix_key(uint32_t index, uint64_t *key)
{
    if (*key == 0 && index < s.n_trials)
        *key = s.trials[index].key;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    Tlsweep__Envelope *env = NULL;
    if (msg_new_hello(1, &env, NULL) == 0)
        send_free(w->l, env);
    const uint8_t *p = w->data;
    size_t n = w->size;
    while (n >= 4) {
        size_t k = le32(p);
        p += 4, n -= 4;
        if (k > n)
            k = n;
        env = tlsweep__envelope__unpack(NULL, k, p);
        if (env) {
            if (env->body_case == TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT && env->trial_result)
                fix_key(env->trial_result->trial_index, &env->trial_result->trial_key);
            if (env->body_case == TLSWEEP__ENVELOPE__BODY_CHECKPOINT && env->checkpoint)
                fix_key(env->checkpoint->trial_index, &env->checkpoint->trial_key);
            msg_link_send(w->l, 0, env, NULL);
            tlsweep__envelope__free_unpacked(env, NULL);
        }
        p += k, n -= k;
    }
    send_free(w->l, msg_new_error(TL_EINVAL, "fuzz: end of input", 1));
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!root[0])
        init();
    rm_rf(out_dir);
    msg_link *co = NULL, *wk = NULL;
    tl_err e = {0};
    if (msg_link_local_pair(&co, &wk, &e))
        die("msg_link_local_pair", e.msg);
    worker w = {wk, data, size};
    pthread_t th;
    if (pthread_create(&th, NULL, worker_main, &w))
        die("pthread_create", "failed");
    coord_opts o = {.s = &s, .sweep_text = text, .sweep_len = text_len, .index = &ix,
                    .quiet = 1, .stop_grace_s = 1};
    coord_run(&o, co, &e);
    pthread_join(th, NULL);
    msg_link_free(co);
    msg_link_free(wk);
    return 0;
}
