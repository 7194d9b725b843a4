/* The sweep protocol without mpirun: coord_run and worker_main (or fake
 * workers speaking through the msg API) in one process over an in-memory
 * link of 2 or 3 ends (common/msg/msg_link.h).
 *
 * The data: three classes told apart by colour (tests/trial/test_trial.c's
 * JPEGs), a MobileNetV2 alpha 0.35 at 32x32 with random weights calibrated
 * as tests/cli/tiny_model.c does, all under one /tmp directory. The grid:
 * fine_tune and frozen x 2 learning rates, 2 epochs, `threads: 1`, so a run
 * is bit-identical to any other (1 or 2 workers, interrupted or not).
 *
 * Every wait is bounded: a SIGALRM watchdog per case ends the program
 * (exit 3, naming the case) instead of letting a hang block ctest, and
 * worker threads must leave within a few seconds of coord_run's return. */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "common/base/clock.h"
#include "common/data/data.h"
#include "common/msg/msg.h"
#include "common/msg/msg_link.h"
#include "common/store/journal.h"
#include "common/sweep/sweep.h"
#include "common/weights/model_file.h"
#include "coordinator/coord.h"
#include "data/imgutil.h"
#include "testutil.h"
#include "tlsweep.pb-c.h"
#include "worker/engine/engine.h"
#include "worker/net/backbones.h"
#include "worker/net/net_io.h"
#include "worker/worker.h"

#define SIDE 32
#define N_TRIALS 4
#define EPOCHS 2
/* seconds: a whole run under the sanitizers on a shared machine, and the
 * grace for a thread to leave once coord_run has returned */
#define RUN_WATCHDOG_S 400
#define FAST_WATCHDOG_S 60
#define LEAVE_S 20

static char *root, *train_dir, *test_dir, *weights, *broken_weights;
static char *board_uninterrupted; /* the 1-worker run's leaderboard, for the stop case */

/* ---- watchdog --------------------------------------------------------------------------- */

static const char *watch_case = "?";

static void on_alarm(int sig)
{
    (void)sig;
    static const char a[] = "test_coord_loop: watchdog: no end in sight in case ";
    ssize_t w = write(2, a, sizeof a - 1);
    w = write(2, watch_case, strlen(watch_case));
    w = write(2, "\n", 1);
    (void)w;
    _exit(3);
}

static void watchdog(const char *what, unsigned seconds)
{
    watch_case = what;
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

/* ---- the data --------------------------------------------------------------------------- */

static const uint8_t colours[3][3] = {{50, 60, 210}, {40, 180, 60}, {200, 40, 40}};
static const char *names[3] = {"blue", "green", "red"};

/* n noisy images of class k's colour into dir/<name>/, from an LCG */
static void write_class(const char *dir, int k, int n, uint64_t seed)
{
    char *cd = iu_path(dir, names[k]);
    mkdir(cd, 0755);
    uint64_t st = seed + (uint64_t)k;
    int w = 40, h = 40;
    uint8_t *pix = malloc((size_t)w * h * 3);
    assert_non_null(pix);
    for (int i = 0; i < n; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        float bright = 0.95f + 0.1f * (float)(st >> 40) / (float)(1 << 24);
        for (int p = 0; p < w * h * 3; p++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            float v = colours[k][p % 3] * bright + (float)((st >> 61) & 7) - 4.0f;
            pix[p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        size_t len;
        uint8_t *jpg = iu_jpeg(pix, w, h, TJPF_RGB, TJSAMP_444, 90, 0, 0, &len);
        char fn[32];
        snprintf(fn, sizeof fn, "%03d.jpg", i);
        char *path = iu_path(cd, fn);
        iu_write(path, jpg, len);
        free(path);
        free(jpg);
    }
    free(pix);
    free(cd);
}

/* tests/cli/tiny_model.c's backbone: random He weights whose BN moving
 * statistics are one batch of noise images' (else ReLU6 saturates) */
static void write_tiny_model(const char *path)
{
    tl_err e = {0};
    net n;
    net_init(&n, SIDE, SIDE, 3, NET_KERAS);
    net_backbone_cfg bc = {.alpha = 0.35f};
    assert_true(net_mobilenet_v2(&n, &bc, &e) >= 0);
    net_set_bn_update(&n, 1);
    for (int i = 0; i < n.n_layers; i++)
        if (n.layers[i].kind == NET_BN)
            n.layers[i].u.bn.momentum = 1.0f;
    assert_int_equal(net_finalize(&n, 16, 7, &e), 0);
    float *x = tu_alloc_uniform((size_t)16 * SIDE * SIDE * 3, 7, 0.0f, 1.0f);
    net_forward(&n, x, 16, 1);
    free(x);
    model_spec s;
    model_spec_init(&s);
    tset ts;
    tset_init(&ts);
    assert_int_equal(model_spec_set_str(&s.backbone, "mobilenet_v2", &e), 0);
    s.alpha = 0.35f;
    s.height = s.width = SIDE;
    s.preproc = MODEL_PREPROC_UNIT;
    assert_int_equal(net_to_tset(&n, &ts, 0, &e), 0);
    assert_int_equal(model_write(path, &s, &ts, &e), 0);
    tset_free(&ts);
    model_spec_free(&s);
    net_free(&n);
}

static int setup(void **state)
{
    (void)state;
    engine_threads_set(1);
    root = iu_tmpdir();
    train_dir = iu_path(root, "train");
    test_dir = iu_path(root, "test");
    weights = iu_path(root, "tiny.tlm");
    broken_weights = iu_path(root, "broken.tlm");
    mkdir(train_dir, 0755);
    mkdir(test_dir, 0755);
    for (int k = 0; k < 3; k++) {
        write_class(train_dir, k, 12, 1000);
        write_class(test_dir, k, 4, 5000);
    }
    write_tiny_model(weights);
    /* a torn copy: readable, so the preflight passes; the workers find out */
    size_t n;
    unsigned char *buf = tu_read_file(weights, &n);
    tu_write_file(broken_weights, buf, n / 2);
    free(buf);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(train_dir);
    free(test_dir);
    free(weights);
    free(broken_weights);
    free(board_uninterrupted);
    if (!getenv("TLSWEEP_TEST_KEEP")) /* to look at the files of a failure */
        iu_rmdir(root);
    return 0;
}

/* root/<name>.yaml, its out: root/<out>; the sweep file's path, malloc'd.
 * modes: the grid's mode list, NULL for the N_TRIALS grid. */
static char *write_sweep_modes(const char *name, const char *out, const char *wpath,
                               const char *modes)
{
    char text[2048];
    int n = snprintf(text, sizeof text,
                     "name: %s\n"
                     "data:\n"
                     "  train_dir: %s\n"
                     "  test_dir: %s\n"
                     "  validation_split: 0.25\n"
                     "  image_size: %d\n"
                     "model:\n"
                     "  head: [global_average_pooling, {dense: 16}]\n"
                     "weights:\n"
                     "  mobilenet_v2: %s\n"
                     "grid:\n"
                     "  backbone: [mobilenet_v2]\n"
                     "  mode: %s\n"
                     "  learning_rate: [1.0e-2, 1.0e-3]\n"
                     "  optimizer: [adam]\n"
                     "  batch_size: [8]\n"
                     "epochs: %d\n"
                     "threads: 1\n"
                     "seed: 7\n"
                     "checkpoint_seconds: 0\n"
                     "out: %s/%s\n",
                     name, train_dir, test_dir, SIDE, wpath, modes ? modes : "[fine_tune, frozen]",
                     EPOCHS, root, out);
    assert_true(n > 0 && (size_t)n < sizeof text);
    char fn[128];
    snprintf(fn, sizeof fn, "%s.yaml", name);
    char *path = iu_path(root, fn);
    tu_write_file(path, text, (size_t)n);
    return path;
}

static char *write_sweep(const char *name, const char *out, const char *wpath)
{
    return write_sweep_modes(name, out, wpath, NULL);
}

static char *out_path(const char *out, const char *rel)
{
    char *o = iu_path(root, out);
    char *p = iu_path(o, rel);
    free(o);
    return p;
}

/* ---- peers: real worker threads and fakes ------------------------------------------------ */

/* Set when coord_run has returned: fake workers that hang wait for it. */
static atomic_int run_over;

typedef struct peer peer;
typedef void (*peer_fn)(peer *p);

struct peer {
    msg_link *l;
    peer_fn fn;              /* NULL: worker_main */
    pthread_t th;
    int rc;                  /* worker_main's, or a fake's: 0 as scripted */
    tl_err e;
    int stop_reason;         /* fakes: the Stop received, -1 none */
};

static void *peer_main(void *arg)
{
    peer *p = arg;
    /* signals are the coordinator's (its libuv handles), as in cli_run.c */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (p->fn) {
        p->fn(p);
    } else {
        worker_opts o = {.threads = 1, .loader_threads = 1};
        p->rc = worker_main(p->l, &o, &p->e);
    }
    return NULL;
}

/* The next envelope within LEAVE_S seconds, or NULL. */
static Tlsweep__Envelope *fake_recv(peer *p)
{
    Tlsweep__Envelope *env = NULL;
    if (msg_link_recv(p->l, &env, NULL, LEAVE_S * 1000, &p->e))
        return NULL;
    return env;
}

/* Waits (bounded) for the coordinator's Stop, skipping anything else. */
static void fake_await_stop(peer *p)
{
    for (Tlsweep__Envelope *env; (env = fake_recv(p));) {
        int stop = env->body_case == TLSWEEP__ENVELOPE__BODY_STOP;
        if (stop)
            p->stop_reason = env->stop->reason;
        msg_free(env);
        if (stop)
            return;
    }
}

static int fake_hello(peer *p, int protocol_delta)
{
    Tlsweep__Envelope *hello = NULL;
    if (msg_new_hello(msg_link_rank(p->l), &hello, &p->e))
        return -1;
    hello->hello->protocol_version += (uint32_t)protocol_delta;
    int rc = msg_link_send(p->l, 0, hello, &p->e);
    msg_free(hello);
    return rc;
}

/* A worker that says hello, takes the setup and its first task, and
 * answers the task with a fatal Error, as worker.c does when it cannot
 * serve one. */
#define FAKE_TASK_ERROR "fake worker: /scratch/features.tmp: No space left on device"

static void fake_fails_task(peer *p)
{
    p->rc = -1;
    if (fake_hello(p, 0))
        return;
    Tlsweep__Envelope *env;
    while ((env = fake_recv(p)) && env->body_case != TLSWEEP__ENVELOPE__BODY_TASK)
        msg_free(env);
    if (!env)
        return;
    msg_free(env);
    Tlsweep__Envelope *er = msg_new_error(TL_EIO, FAKE_TASK_ERROR, 1);
    if (!er || msg_link_send(p->l, 0, er, &p->e)) {
        msg_free(er);
        return;
    }
    msg_free(er);
    fake_await_stop(p);
    p->rc = 0;
}

/* A worker that cannot train: every task it gets is answered with a
 * TrialResult FAILED, as worker.c answers a trial whose run failed. */
#define FAKE_TRIAL_ERROR "fake worker: loss is NaN at epoch 1 step 3"

static char fake_first_trial[128];

static void fake_fails_trials(peer *p)
{
    p->rc = -1;
    fake_first_trial[0] = '\0';
    if (fake_hello(p, 0))
        return;
    for (Tlsweep__Envelope *env; (env = fake_recv(p));) {
        if (env->body_case == TLSWEEP__ENVELOPE__BODY_STOP) {
            p->stop_reason = env->stop->reason;
            msg_free(env);
            p->rc = 0;
            return;
        }
        if (env->body_case == TLSWEEP__ENVELOPE__BODY_TASK) {
            const Tlsweep__Task *t = env->task;
            if (!fake_first_trial[0])
                snprintf(fake_first_trial, sizeof fake_first_trial, "%s", t->trial_id);
            Tlsweep__TrialResult r = TLSWEEP__TRIAL_RESULT__INIT;
            r.task_id = t->task_id;
            r.trial_id = t->trial_id;
            r.trial_index = t->trial_index;
            r.trial_key = t->trial_key;
            r.status = TLSWEEP__TRIAL_RESULT__STATUS__FAILED;
            r.message = FAKE_TRIAL_ERROR;
            Tlsweep__Envelope out = TLSWEEP__ENVELOPE__INIT;
            out.body_case = TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT;
            out.trial_result = &r;
            if (msg_link_send(p->l, 0, &out, &p->e)) {
                msg_free(env);
                return;
            }
        }
        msg_free(env);
    }
}

/* A worker that takes its task and then says nothing, not even to a
 * Stop (a deadlock, a node stuck in I/O); it asks for the stop itself. */
static void fake_hangs(peer *p)
{
    p->rc = -1;
    if (fake_hello(p, 0))
        return;
    Tlsweep__Envelope *env;
    while ((env = fake_recv(p)) && env->body_case != TLSWEEP__ENVELOPE__BODY_TASK)
        msg_free(env);
    if (!env)
        return;
    msg_free(env);
    kill(getpid(), SIGTERM); /* blocked here: another thread takes it to libuv */
    for (double t0 = tl_now(); !atomic_load(&run_over) && tl_now() - t0 < RUN_WATCHDOG_S;)
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
    p->rc = 0;
}

/* A worker built from another protocol version: its Hello says so. */
static void fake_other_protocol(peer *p)
{
    p->rc = -1;
    if (fake_hello(p, 1))
        return;
    fake_await_stop(p);
    p->rc = 0;
}

/* ---- relays: taps between the coordinator and a worker ------------------------------------ */

/* Sits between the coordinator and one worker (two local links), forwards
 * both ways and counts the worker's results. With stop_at_checkpoint, at
 * the worker's first Checkpoint it raises SIGTERM and holds the worker
 * inside that send (the link's notify runs on the sending thread) until
 * the coordinator's Stop is in the worker's queue: the stop then lands in
 * the trial's next epoch whatever the speed of the machine, instead of
 * racing a trial of a tenth of a second. */
typedef struct {
    int stop_at_checkpoint;
    msg_link *up;            /* the worker's rank on the coordinator's link */
    msg_link *down;          /* rank 0 of the worker's pair */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long sent, forwarded;    /* worker -> coordinator */
    int triggered, stop_forwarded;
    atomic_int quit;
    int done_results;        /* TrialResults DONE forwarded */
    double raised_at;        /* tl_now() of the raise, 0 none */
    int gate_timeouts;       /* a gate that opened by its bound, not by the relay */
} relay;

static void relay_gate(void *ctx)
{
    relay *r = ctx;
    pthread_mutex_lock(&r->mu);
    long mine = ++r->sent;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += LEAVE_S;
    while (!atomic_load(&r->quit) &&
           (r->forwarded < mine || (r->triggered && !r->stop_forwarded)))
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT) {
            r->gate_timeouts++;
            break;
        }
    pthread_mutex_unlock(&r->mu);
}

static void relay_set(relay *r, int *flag, long *count)
{
    pthread_mutex_lock(&r->mu);
    if (flag)
        *flag = 1;
    if (count)
        ++*count;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void *relay_main(void *arg)
{
    relay *r = arg;
    while (!atomic_load(&r->quit)) {
        int moved = 0, got = 0;
        Tlsweep__Envelope *env = NULL;
        if (!msg_link_poll(r->down, &env, NULL, &got, NULL) && got) {
            moved = 1;
            if (env->body_case == TLSWEEP__ENVELOPE__BODY_CHECKPOINT && r->stop_at_checkpoint &&
                !r->triggered) {
                relay_set(r, &r->triggered, NULL);
                r->raised_at = tl_now();
                raise(SIGTERM);
            }
            if (env->body_case == TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT &&
                env->trial_result->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE)
                r->done_results++;
            msg_link_send(r->up, 0, env, NULL);
            msg_free(env);
            relay_set(r, NULL, &r->forwarded);
        }
        if (!msg_link_poll(r->up, &env, NULL, &got, NULL) && got) {
            moved = 1;
            int stop = env->body_case == TLSWEEP__ENVELOPE__BODY_STOP;
            msg_link_send(r->down, 1, env, NULL);
            msg_free(env);
            if (stop)
                relay_set(r, &r->stop_forwarded, NULL);
        }
        if (!moved)
            nanosleep(&(struct timespec){0, 200000L}, NULL);
    }
    return NULL;
}

/* ---- one run ---------------------------------------------------------------------------- */

typedef struct {
    int n_peers;
    peer_fn fns[2];          /* per worker rank; NULL: a real worker */
    int relayed;             /* ranks 1..n_peers talk through relays[rank - 1] */
    int stop_at_checkpoint;  /* rank 1's relay raises SIGTERM (relayed runs) */
    int stop_grace_s;        /* coord_opts's; 0: LEAVE_S */
    int force, repair;       /* coord_opts's */
    peer peers[2];
    relay relays[2];
    tl_err e;                /* coord_run's */
    double seconds;
    int abandoned;           /* coord_opts's, after the run */
} run_ctx;

/* Loads and preflights yaml as `tlsweep run` does, then runs coord_run
 * against r->n_peers threads over one local link; every thread must leave
 * within LEAVE_S seconds of coord_run's return. Returns coord_run's status. */
static int run(const char *yaml, run_ctx *r)
{
    sweep s;
    char *text = NULL;
    size_t len = 0;
    data_index ix;
    memset(&ix, 0, sizeof ix);
    tl_err e = {0};
    if (sweep_load_text(&s, yaml, &text, &len, &e) || coord_preflight(&s, &ix, &e))
        fail_msg("%s: %s", yaml, e.msg);

    atomic_store(&run_over, 0);
    msg_link *ends[3], *pairs[2][2] = {{NULL, NULL}, {NULL, NULL}};
    assert_int_equal(msg_link_local(ends, r->n_peers + 1, &e), 0);
    for (int i = 0; r->relayed && i < r->n_peers; i++) {
        relay *rl = &r->relays[i];
        assert_int_equal(msg_link_local_pair(&pairs[i][0], &pairs[i][1], &e), 0);
        memset(rl, 0, sizeof *rl);
        rl->stop_at_checkpoint = i == 0 && r->stop_at_checkpoint;
        rl->up = ends[i + 1];
        rl->down = pairs[i][0];
        atomic_init(&rl->quit, 0);
        pthread_mutex_init(&rl->mu, NULL);
        pthread_cond_init(&rl->cv, NULL);
        msg_link_set_notify(rl->down, relay_gate, rl); /* before the worker sends */
        assert_int_equal(pthread_create(&rl->th, NULL, relay_main, rl), 0);
    }
    for (int i = 0; i < r->n_peers; i++) {
        peer *p = &r->peers[i];
        memset(p, 0, sizeof *p);
        p->l = r->relayed ? pairs[i][1] : ends[i + 1];
        p->fn = r->fns[i];
        p->stop_reason = -1;
        assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
    }
    coord_opts o = {.s = &s, .sweep_text = text, .sweep_len = len, .index = &ix, .quiet = 1,
                    .stop_grace_s = r->stop_grace_s ? r->stop_grace_s : LEAVE_S,
                    .force = r->force, .repair = r->repair};
    memset(&r->e, 0, sizeof r->e);
    double t0 = tl_now();
    int status = coord_run(&o, ends[0], &r->e);
    r->seconds = tl_now() - t0;
    r->abandoned = o.abandoned;
    atomic_store(&run_over, 1);
    printf("coord_run: status %d after %.1f s%s%s\n", status, r->seconds,
           r->e.msg[0] ? ": " : "", r->e.msg);
    for (int i = 0; i < r->n_peers; i++) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += LEAVE_S;
        int jr = pthread_timedjoin_np(r->peers[i].th, NULL, &until);
        if (jr)
            fail_msg("rank %d did not leave within %d s of coord_run's return (%s)", i + 1,
                     LEAVE_S, strerror(jr));
    }
    for (int i = 0; r->relayed && i < r->n_peers; i++) {
        relay *rl = &r->relays[i];
        relay_set(rl, NULL, NULL);
        atomic_store(&rl->quit, 1);
        relay_set(rl, NULL, NULL);
        pthread_join(rl->th, NULL);
        pthread_mutex_destroy(&rl->mu);
        pthread_cond_destroy(&rl->cv);
        msg_link_free(pairs[i][0]);
        msg_link_free(pairs[i][1]);
    }
    for (int i = 0; i <= r->n_peers; i++)
        msg_link_free(ends[i]);
    data_index_free(&ix);
    sweep_free(&s);
    free(text);
    return status;
}

/* ---- what a run left in out/ -------------------------------------------------------------- */

/* results.csv without its last column (seconds): rank, trial, status and
 * every metric, in leaderboard order. */
static char *board(const char *out)
{
    char *p = out_path(out, "results.csv");
    size_t n;
    char *csv = (char *)tu_read_file(p, &n);
    free(p);
    csv[n] = '\0';
    char *b = malloc(n + 1), *w = b;
    assert_non_null(b);
    for (char *line = csv, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        char *cut = line;
        for (char *q = line; q < nl; q++)
            if (*q == ',')
                cut = q;
        memcpy(w, line, (size_t)(cut - line));
        w += cut - line;
        *w++ = '\n';
    }
    *w = '\0';
    free(csv);
    return b;
}

typedef struct {
    int done[N_TRIALS];              /* DONE results journaled */
    int other[N_TRIALS];             /* any other result */
    int epochs[N_TRIALS][EPOCHS];    /* epoch reports journaled */
    int starts;
    int bad;
} journal_counts;

static int count_record(void *ctx, const void *payload, size_t len)
{
    journal_counts *jc = ctx;
    Tlsweep__JournalRecord *rec = tlsweep__journal_record__unpack(NULL, len, payload);
    if (!rec) {
        jc->bad++;
        return 0;
    }
    if (rec->body_case == TLSWEEP__JOURNAL_RECORD__BODY_RESULT) {
        uint32_t i = rec->result->trial_index;
        if (i >= N_TRIALS)
            jc->bad++;
        else if (rec->result->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE)
            jc->done[i]++;
        else
            jc->other[i]++;
    } else if (rec->body_case == TLSWEEP__JOURNAL_RECORD__BODY_EPOCH) {
        uint32_t i = rec->epoch->trial_index, ep = rec->epoch->epoch;
        if (i >= N_TRIALS || ep < 1 || ep > EPOCHS)
            jc->bad++;
        else
            jc->epochs[i][ep - 1]++;
    } else if (rec->body_case == TLSWEEP__JOURNAL_RECORD__BODY_START) {
        jc->starts++;
    }
    tlsweep__journal_record__free_unpacked(rec, NULL);
    return 0;
}

static journal_counts scan_journal(const char *out)
{
    journal_counts jc;
    memset(&jc, 0, sizeof jc);
    char *p = out_path(out, "journal");
    tl_err e = {0};
    size_t ignored = 0;
    if (journal_scan(p, count_record, &jc, &ignored, &e))
        fail_msg("%s", e.msg);
    free(p);
    assert_int_equal(ignored, 0);
    assert_int_equal(jc.bad, 0);
    return jc;
}

/* Every trial finished exactly once and reported each epoch exactly once
 * (a resumed trial continues after its checkpoint's epoch). */
static void assert_each_trial_once(const char *out, int starts)
{
    journal_counts jc = scan_journal(out);
    assert_int_equal(jc.starts, starts);
    for (int i = 0; i < N_TRIALS; i++) {
        assert_int_equal(jc.done[i], 1);
        assert_int_equal(jc.other[i], 0);
        for (int ep = 0; ep < EPOCHS; ep++)
            assert_int_equal(jc.epochs[i][ep], 1);
    }
}

static char *read_text(const char *out, const char *rel)
{
    char *p = out_path(out, rel);
    size_t n;
    char *t = (char *)tu_read_file(p, &n);
    t[n] = '\0';
    free(p);
    return t;
}

static int count_checkpoints(const char *out)
{
    char *p = out_path(out, "checkpoints");
    DIR *d = opendir(p);
    free(p);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        n += l > 5 && !strcmp(de->d_name + l - 5, ".ckpt");
    }
    closedir(d);
    return n;
}

/* A finished run's files: the leaderboard lists every trial as done,
 * results.json says finished, best.tlm is a model, no checkpoint is left. */
static void assert_finished_out(const char *out)
{
    char *b = board(out);
    int lines = 0;
    for (char *q = b; *q; q++)
        lines += *q == '\n';
    assert_int_equal(lines, 1 + N_TRIALS);
    for (int k = 1; k <= N_TRIALS; k++) {
        char rank[8];
        snprintf(rank, sizeof rank, "\n%d,", k);
        char *row = strstr(b, rank);
        assert_non_null(row);
        assert_non_null(strstr(row, ",done,"));
    }
    free(b);
    char *json = read_text(out, "results.json");
    assert_non_null(strstr(json, "\"state\": \"finished\""));
    assert_non_null(strstr(json, "\"model\": \"best.tlm\""));
    /* both frozen trials trained on one extraction of the backbone's features */
    assert_non_null(strstr(json, "\"extractions\": 1,"));
    free(json);
    char *best = out_path(out, "best.tlm");
    model_spec spec;
    model_spec_init(&spec);
    tset ts;
    tset_init(&ts);
    tl_err e = {0};
    if (model_read(best, &spec, &ts, &e))
        fail_msg("%s", e.msg);
    model_spec_free(&spec);
    tset_free(&ts);
    free(best);
    assert_int_equal(count_checkpoints(out), 0);
}

/* ---- the cases ---------------------------------------------------------------------------- */

/* The grid by one worker, then by two: each trial finishes once, the
 * files are complete, and the leaderboards are the same to the digit. */
static void test_schedule_one_and_two_workers(void **state)
{
    (void)state;
    watchdog("schedule", RUN_WATCHDOG_S);
    char *y1 = write_sweep("one", "out1", weights);
    run_ctx r1 = {.n_peers = 1};
    assert_int_equal(run(y1, &r1), 0);
    assert_int_equal(r1.peers[0].rc, 0);
    assert_int_equal(r1.abandoned, 0);
    assert_each_trial_once("out1", 1);
    assert_finished_out("out1");

    char *y2 = write_sweep("two", "out2", weights);
    run_ctx r2 = {.n_peers = 2, .relayed = 1};
    assert_int_equal(run(y2, &r2), 0);
    assert_int_equal(r2.peers[0].rc, 0);
    assert_int_equal(r2.peers[1].rc, 0);
    /* dynamic scheduling: both ranks trained, each trial once between them */
    printf("trials finished by rank 1: %d, by rank 2: %d\n", r2.relays[0].done_results,
           r2.relays[1].done_results);
    assert_true(r2.relays[0].done_results >= 1);
    assert_true(r2.relays[1].done_results >= 1);
    assert_int_equal(r2.relays[0].done_results + r2.relays[1].done_results, N_TRIALS);
    assert_int_equal(r2.abandoned, 0);
    assert_each_trial_once("out2", 1);
    assert_finished_out("out2");

    char *b1 = board("out1"), *b2 = board("out2");
    printf("%s", b1);
    assert_string_equal(b1, b2);
    free(b2);
    board_uninterrupted = b1;
    free(y1);
    free(y2);
    alarm(0);
}

/* Real workers that cannot read the weights (a torn file): coord_run
 * fails with one line naming the rank and the file, and both workers,
 * the one that failed and the one told to abort, leave. */
static void test_worker_error(void **state)
{
    (void)state;
    watchdog("worker error", RUN_WATCHDOG_S);
    char *y = write_sweep("broken", "out_broken", broken_weights);
    run_ctx r = {.n_peers = 2};
    assert_int_equal(run(y, &r), 1);
    tu_assert_one_line_error(&r.e, "rank ", "broken.tlm");
    /* the worker that failed says so too; worker_main returns its code */
    int failed = r.peers[0].rc < 0 ? 0 : 1;
    assert_true(r.peers[failed].rc < 0);
    tu_assert_one_line_error(&r.peers[failed].e, "broken.tlm");
    char *json = read_text("out_broken", "results.json");
    assert_non_null(strstr(json, "\"state\": \"failed\""));
    free(json);
    assert_int_equal(r.abandoned, 0);
    free(y);
    alarm(0);
}

/* A worker answering its task with a fatal Error envelope: coord_run
 * returns 1 with that worker's line, and tells it to stop (ABORT). */
static void test_fake_worker_error(void **state)
{
    (void)state;
    watchdog("fake worker error", FAST_WATCHDOG_S);
    char *y = write_sweep("fake", "out_fake", weights);
    run_ctx r = {.n_peers = 1, .fns = {fake_fails_task}};
    assert_int_equal(run(y, &r), 1);
    tu_assert_one_line_error(&r.e, "rank 1", FAKE_TASK_ERROR);
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.peers[0].stop_reason, TLSWEEP__STOP__REASON__ABORT);
    assert_true(r.seconds < LEAVE_S);
    assert_int_equal(r.abandoned, 0);
    free(y);
    alarm(0);
}

/* Rank 2 fails every trial it is given (rank 1 trains the others): the
 * run ends, coord_run returns 1 with one line naming the first failed
 * trial and the worker's reason, and results.json keeps that reason. */
static void test_failed_trial(void **state)
{
    (void)state;
    watchdog("failed trial", RUN_WATCHDOG_S);
    char *y = write_sweep_modes("failtrial", "out_failtrial", weights, "[fine_tune]");
    run_ctx r = {.n_peers = 2, .fns = {NULL, fake_fails_trials}};
    assert_int_equal(run(y, &r), 1);
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.peers[1].rc, 0);
    assert_int_equal(r.peers[1].stop_reason, TLSWEEP__STOP__REASON__FINISHED);
    assert_true(fake_first_trial[0]);
    tu_assert_one_line_error(&r.e, "failed", fake_first_trial, FAKE_TRIAL_ERROR);
    char *json = read_text("out_failtrial", "results.json");
    assert_non_null(strstr(json, "\"error\": \"" FAKE_TRIAL_ERROR "\""));
    free(json);
    assert_int_equal(r.abandoned, 0);
    free(y);
    alarm(0);
}

/* Rank 2 speaks another protocol version: coord_run fails at its Hello
 * with one line saying so, and both ranks (the real worker too) leave. */
static void test_protocol_mismatch(void **state)
{
    (void)state;
    watchdog("protocol mismatch", FAST_WATCHDOG_S);
    char *y = write_sweep("proto", "out_proto", weights);
    run_ctx r = {.n_peers = 2, .fns = {NULL, fake_other_protocol}};
    assert_int_equal(run(y, &r), 1);
    char other[16];
    snprintf(other, sizeof other, "%d", TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT + 1);
    tu_assert_one_line_error(&r.e, "rank 2", "protocol version", other);
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.peers[1].rc, 0);
    assert_int_equal(r.peers[1].stop_reason, TLSWEEP__STOP__REASON__ABORT);
    assert_true(r.seconds < LEAVE_S);
    assert_int_equal(r.abandoned, 0);
    free(y);
    alarm(0);
}

/* A stop mid-run ends coord_run promptly with COORD_EXIT_INTERRUPTED,
 * what finished journaled and the running trial checkpointed; a second
 * coord_run on the same out/ finishes the rest, every trial once, with
 * the uninterrupted run's leaderboard. */
static void test_stop_and_resume(void **state)
{
    (void)state;
    watchdog("stop and resume", RUN_WATCHDOG_S);
    assert_non_null(board_uninterrupted); /* from test_schedule_one_and_two_workers */
    char *y = write_sweep("stop", "out_stop", weights);
    /* grid order: trial 0 (fine_tune) runs first, after the extraction;
     * the relay raises SIGTERM at its first checkpoint */
    run_ctx r = {.n_peers = 1, .relayed = 1, .stop_at_checkpoint = 1};
    int status = run(y, &r);
    const relay *rl = &r.relays[0];
    assert_true(rl->raised_at > 0);
    assert_int_equal(rl->gate_timeouts, 0);
    assert_int_equal(status, COORD_EXIT_INTERRUPTED);
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.abandoned, 0);
    double took = tl_now() - rl->raised_at;
    printf("coord_run returned %.2f s after SIGTERM\n", took);
    assert_true(took < 10.0);

    char *json = read_text("out_stop", "results.json");
    assert_non_null(strstr(json, "\"state\": \"interrupted\""));
    free(json);
    /* trial 0 stopped in its second epoch: epoch 1 journaled and
     * checkpointed, nothing finished */
    journal_counts jc = scan_journal("out_stop");
    for (int i = 0; i < N_TRIALS; i++) {
        assert_int_equal(jc.done[i], 0);
        assert_int_equal(jc.other[i], 0);
        assert_int_equal(jc.epochs[i][0], i == 0);
        assert_int_equal(jc.epochs[i][1], 0);
    }
    assert_int_equal(count_checkpoints("out_stop"), 1);

    run_ctx r2 = {.n_peers = 1};
    assert_int_equal(run(y, &r2), 0);
    assert_int_equal(r2.peers[0].rc, 0);
    assert_each_trial_once("out_stop", 2);
    assert_finished_out("out_stop");
    char *b = board("out_stop");
    assert_string_equal(b, board_uninterrupted);
    free(b);
    free(y);
    alarm(0);
}

/* A stop while a worker hangs: coord_run waits stop_grace_s for it, then
 * leaves without it (abandoned, for cli_run to MPI_Abort) and returns the
 * interrupted status, instead of waiting forever. */
static void test_stop_with_hung_worker(void **state)
{
    (void)state;
    watchdog("stop with a hung worker", FAST_WATCHDOG_S);
    char *y = write_sweep("hung", "out_hung", weights);
    run_ctx r = {.n_peers = 1, .fns = {fake_hangs}, .stop_grace_s = 2};
    assert_int_equal(run(y, &r), COORD_EXIT_INTERRUPTED);
    assert_int_equal(r.abandoned, 1);
    assert_int_equal(r.peers[0].rc, 0);
    assert_true(r.seconds >= 2.0);
    assert_true(r.seconds < 2.0 + 5.0); /* the grace is checked once a second */
    char *json = read_text("out_hung", "results.json");
    assert_non_null(strstr(json, "\"state\": \"interrupted\""));
    free(json);
    free(y);
    alarm(0);
}


/* ---- setup errors, damaged journals, another sweep, stale temporaries ---------------------- */

/* A run that cannot start fails with one line holding the fragments, at
 * once, and both real workers (waiting for their Setup) are told to stop
 * and leave: before the fix they waited forever. */
static void expect_setup_error(const char *yaml, const char *frag1, const char *frag2)
{
    run_ctx r = {.n_peers = 2};
    assert_int_equal(run(yaml, &r), 1);
    tu_assert_one_line_error(&r.e, frag1, frag2);
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.peers[1].rc, 0);
    assert_int_equal(r.abandoned, 0);
    assert_true(r.seconds < LEAVE_S);
}

static void test_setup_errors_stop_workers(void **state)
{
    (void)state;
    watchdog("setup errors", FAST_WATCHDOG_S);
    /* another run holds the journal's lock */
    char *y = write_sweep("locked", "out_locked", weights);
    char *o = iu_path(root, "out_locked");
    mkdir(o, 0755);
    char *jp = out_path("out_locked", "journal");
    journal *held = NULL;
    tl_err e = {0};
    assert_int_equal(journal_open(&held, jp, 0, NULL, NULL, NULL, &e), 0);
    expect_setup_error(y, jp, "another writer");
    journal_close(held, NULL);
    /* a journal that is not one */
    tu_write_file(jp, "not a journal\n", 14);
    expect_setup_error(y, jp, "not a tlsweep journal");
    free(y);
    /* out: under a file, which no permission (not even root's) turns into
     * a folder */
    char *f = iu_path(root, "plainfile");
    tu_write_file(f, "x", 1);
    y = write_sweep("underfile", "plainfile/out", weights);
    expect_setup_error(y, "plainfile", "not a folder");
    free(f);
    free(y);
    free(jp);
    free(o);
    alarm(0);
}

static unsigned char *read_out(const char *out, const char *rel, size_t *n)
{
    char *p = out_path(out, rel);
    unsigned char *b = tu_read_file(p, n);
    free(p);
    return b;
}

/* best.tlm cannot be written (a folder sits on its name; rename fails even
 * for root): the run stops with COORD_EXIT_IO and the line naming best.tlm,
 * and the trial is not journaled as done, its checkpoint kept. Once the
 * name is free, a re-run finishes with the uninterrupted leaderboard, each
 * trial journaled done once, and best.tlm byte for byte the uninterrupted
 * run's. Before the fix the trial was recorded done and best.tlm stayed
 * another trial's model for good. */
static void test_best_write_fails(void **state)
{
    (void)state;
    watchdog("best.tlm write fails", RUN_WATCHDOG_S);
    assert_non_null(board_uninterrupted);
    char *y = write_sweep("bestfail", "out_bestfail", weights);
    char *o = iu_path(root, "out_bestfail"), *bp = out_path("out_bestfail", "best.tlm");
    mkdir(o, 0755);
    assert_int_equal(mkdir(bp, 0755), 0);
    run_ctx r = {.n_peers = 1};
    assert_int_equal(run(y, &r), COORD_EXIT_IO);
    tu_assert_one_line_error(&r.e, "best.tlm", "rename");
    assert_int_equal(r.peers[0].rc, 0);
    journal_counts jc = scan_journal("out_bestfail");
    for (int i = 0; i < N_TRIALS; i++)
        assert_int_equal(jc.done[i], 0);
    assert_true(count_checkpoints("out_bestfail") >= 1);
    assert_int_equal(rmdir(bp), 0);

    run_ctx r2 = {.n_peers = 1};
    assert_int_equal(run(y, &r2), 0);
    jc = scan_journal("out_bestfail");
    for (int i = 0; i < N_TRIALS; i++)
        assert_int_equal(jc.done[i], 1);
    assert_finished_out("out_bestfail");
    char *b = board("out_bestfail");
    assert_string_equal(b, board_uninterrupted);
    size_t n1, n2;
    unsigned char *m1 = read_out("out1", "best.tlm", &n1), *m2 = read_out("out_bestfail", "best.tlm", &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(m1, m2, n1);
    free(m1);
    free(m2);
    free(b);
    free(bp);
    free(o);
    free(y);
    alarm(0);
}

/* A bit flipped in the middle of a finished run's journal: the re-run is
 * refused with one line giving the byte and `--repair`, nothing changed;
 * with repair it keeps the records before the damage, runs again what
 * they do not record, and ends with the uninterrupted leaderboard. */
static void test_damaged_journal_repair(void **state)
{
    (void)state;
    watchdog("damaged journal", RUN_WATCHDOG_S);
    assert_non_null(board_uninterrupted);
    char *y = write_sweep("flip", "out_flip", weights);
    run_ctx r = {.n_peers = 1};
    assert_int_equal(run(y, &r), 0);
    size_t n;
    unsigned char *j = read_out("out_flip", "journal", &n);
    size_t at = n / 2;
    j[at] ^= 0x04;
    char *jp = out_path("out_flip", "journal");
    tu_write_file(jp, j, n);
    run_ctx r2 = {.n_peers = 1};
    assert_int_equal(run(y, &r2), 1);
    tu_assert_one_line_error(&r2.e, jp, "damaged record at byte", "--repair");
    size_t n2;
    unsigned char *j2 = read_out("out_flip", "journal", &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(j2, j, n);
    free(j2);
    run_ctx r3 = {.n_peers = 1, .repair = 1};
    assert_int_equal(run(y, &r3), 0);
    journal_counts jc = scan_journal("out_flip");
    for (int i = 0; i < N_TRIALS; i++)
        assert_int_equal(jc.done[i], 1);
    assert_finished_out("out_flip");
    char *b = board("out_flip");
    assert_string_equal(b, board_uninterrupted);
    free(b);
    free(j);
    free(jp);
    free(y);
    alarm(0);
}

/* Another sweep on a finished out/ (out1 of the first case): refused with
 * one line naming --force, nothing written; with --force, trials of the
 * same configuration stay finished but the best runs again, so best.tlm is
 * its model (the same bytes) and the leaderboard is the same. Temporaries
 * left by a killed writer go at start; other files stay. */
static void test_other_sweep_and_stale_tmp(void **state)
{
    (void)state;
    watchdog("other sweep", RUN_WATCHDOG_S);
    assert_non_null(board_uninterrupted);
    char *y = write_sweep_modes("another", "out1", weights, "[fine_tune, frozen]");
    size_t n0;
    unsigned char *j0 = read_out("out1", "journal", &n0);
    run_ctx r = {.n_peers = 2};
    assert_int_equal(run(y, &r), 1);
    tu_assert_one_line_error(&r.e, "out1", "another sweep", "one.yaml", "--force");
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.peers[1].rc, 0);
    size_t n1;
    unsigned char *j1 = read_out("out1", "journal", &n1);
    assert_int_equal(n1, n0);
    free(j1);
    free(j0);

    static const char *stale[] = {"best.tlm.tmp.4242.1", "checkpoints/t.ckpt.tmp.17.3",
                                  "cache/00ab.features.tmp.99.12"};
    static const char *kept[] = {"notes.tmp.txt", "checkpoints/x.tmp.1"};
    for (int i = 0; i < 3; i++) {
        char *p = out_path("out1", stale[i]);
        tu_write_file(p, "partial", 7);
        free(p);
    }
    for (int i = 0; i < 2; i++) {
        char *p = out_path("out1", kept[i]);
        tu_write_file(p, "mine", 4);
        free(p);
    }
    size_t nb;
    unsigned char *best0 = read_out("out1", "best.tlm", &nb);
    run_ctx r2 = {.n_peers = 1, .force = 1};
    assert_int_equal(run(y, &r2), 0);
    journal_counts jc = scan_journal("out1");
    int twice = 0;
    for (int i = 0; i < N_TRIALS; i++) {
        assert_true(jc.done[i] == 1 || jc.done[i] == 2);
        twice += jc.done[i] == 2;
    }
    assert_int_equal(twice, 1);
    char *b = board("out1");
    assert_string_equal(b, board_uninterrupted);
    free(b);
    size_t nb2;
    unsigned char *best1 = read_out("out1", "best.tlm", &nb2);
    assert_int_equal(nb, nb2);
    assert_memory_equal(best0, best1, nb);
    free(best0);
    free(best1);
    for (int i = 0; i < 3; i++) {
        char *p = out_path("out1", stale[i]);
        assert_int_equal(access(p, F_OK), -1);
        free(p);
    }
    for (int i = 0; i < 2; i++) {
        char *p = out_path("out1", kept[i]);
        assert_int_equal(access(p, F_OK), 0);
        unlink(p);
        free(p);
    }
    free(y);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_one_and_two_workers),
        cmocka_unit_test(test_worker_error),
        cmocka_unit_test(test_fake_worker_error),
        cmocka_unit_test(test_failed_trial),
        cmocka_unit_test(test_protocol_mismatch),
        cmocka_unit_test(test_stop_and_resume),
        cmocka_unit_test(test_stop_with_hung_worker),
        cmocka_unit_test(test_setup_errors_stop_workers),
        cmocka_unit_test(test_best_write_fails),
        cmocka_unit_test(test_damaged_journal_repair),
        cmocka_unit_test(test_other_sweep_and_stale_tmp),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
