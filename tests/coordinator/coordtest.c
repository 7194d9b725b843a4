/* The harness of the coordinator tests (test_coord_loop.c, test_coord_msgs.c):
 * coord_run against real worker threads or fakes over an in-memory link, on
 * a tiny dataset and backbone written once per program; see coordtest.h. */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "coordinator/coordtest.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "common/base/clock.h"
#include "common/data/data.h"
#include "common/store/journal.h"
#include "common/sweep/sweep.h"
#include "common/weights/model_file.h"
#include "data/imgutil.h"
#include "worker/engine/engine.h"
#include "worker/net/backbones.h"
#include "worker/net/net_io.h"
#include "worker/worker.h"

char *root, *train_dir, *test_dir, *weights, *broken_weights;
const char *sweep_extra = "";
char fake_first_trial[128];
void (*fake_before_answer)(peer *p, const Tlsweep__Task *t, int nth);

/* ---- watchdog --------------------------------------------------------------------------- */

static const char *watch_case = "?";

static void on_alarm(int sig)
{
    (void)sig;
    static const char a[] = "coordinator test: watchdog: no end in sight in case ";
    ssize_t w = write(2, a, sizeof a - 1);
    w = write(2, watch_case, strlen(watch_case));
    w = write(2, "\n", 1);
    (void)w;
    _exit(3);
}

void watchdog(const char *what, unsigned seconds)
{
    watch_case = what;
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

/* ---- the data --------------------------------------------------------------------------- */

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

int setup(void **state)
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
        iu_colour_class(train_dir, k, 12, 1000);
        iu_colour_class(test_dir, k, 4, 5000);
    }
    write_tiny_model(weights);
    /* a torn copy: readable, so the preflight passes; the workers find out */
    size_t n;
    unsigned char *buf = tu_read_file(weights, &n);
    tu_write_file(broken_weights, buf, n / 2);
    free(buf);
    return 0;
}

int teardown(void **state)
{
    (void)state;
    free(train_dir);
    free(test_dir);
    free(weights);
    free(broken_weights);
    if (!getenv("TLSWEEP_TEST_KEEP")) /* to look at the files of a failure */
        iu_rmdir(root);
    return 0;
}

/* root/<name>.yaml, its out: root/<out>; the sweep file's path, malloc'd.
 * modes: the grid's mode list, NULL for the N_TRIALS grid. */
char *write_sweep_modes(const char *name, const char *out, const char *wpath,
                               const char *modes)
{
    char text[4096];
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
                     "%s"
                     "out: %s/%s\n",
                     name, train_dir, test_dir, SIDE, wpath, modes ? modes : "[fine_tune, frozen]",
                     EPOCHS, sweep_extra, root, out);
    assert_true(n > 0 && (size_t)n < sizeof text);
    char fn[128];
    snprintf(fn, sizeof fn, "%s.yaml", name);
    char *path = iu_path(root, fn);
    tu_write_file(path, text, (size_t)n);
    return path;
}

char *write_sweep(const char *name, const char *out, const char *wpath)
{
    return write_sweep_modes(name, out, wpath, NULL);
}

char *out_path(const char *out, const char *rel)
{
    char *o = iu_path(root, out);
    char *p = iu_path(o, rel);
    free(o);
    return p;
}

/* ---- peers: real worker threads and fakes ------------------------------------------------ */

/* Set when coord_run has returned: fake workers that hang wait for it. */
atomic_int run_over;


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
Tlsweep__Envelope *fake_recv(peer *p)
{
    Tlsweep__Envelope *env = NULL;
    if (msg_link_recv(p->l, &env, NULL, LEAVE_S * 1000, &p->e))
        return NULL;
    return env;
}

/* Waits (bounded) for the coordinator's Stop, skipping anything else. */
void fake_await_stop(peer *p)
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

int fake_hello(peer *p, int protocol_delta)
{
    Tlsweep__Envelope *hello = NULL;
    if (msg_new_hello(msg_link_rank(p->l), &hello, &p->e))
        return -1;
    hello->hello->protocol_version += (uint32_t)protocol_delta;
    int rc = msg_link_send(p->l, 0, hello, &p->e);
    msg_free(hello);
    return rc;
}

void fake_fail_tasks(peer *p, const char *message, double busy_s)
{
    p->rc = -1;
    int nth = 0;
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
            for (double t0 = tl_now(); tl_now() - t0 < busy_s;) {
                Tlsweep__Envelope *hb = msg_new_heartbeat(tl_unix_ms(), t->task_id, 0);
                assert_non_null(hb);
                hb->heartbeat->ready = 1;
                msg_link_send(p->l, 0, hb, &p->e);
                msg_free(hb);
                nanosleep(&(struct timespec){0, 250000000L}, NULL);
            }
            if (fake_before_answer)
                fake_before_answer(p, t, nth);
            nth++;
            Tlsweep__TrialResult r = TLSWEEP__TRIAL_RESULT__INIT;
            r.task_id = t->task_id;
            r.trial_id = t->trial_id;
            r.trial_index = t->trial_index;
            r.trial_key = t->trial_key;
            r.status = TLSWEEP__TRIAL_RESULT__STATUS__FAILED;
            r.message = (char *)message;
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

/* ---- relays: taps between the coordinator and a worker ------------------------------------ */


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


/* Loads and preflights yaml as `tlsweep run` does, then runs coord_run
 * against r->n_peers threads over one local link; every thread must leave
 * within LEAVE_S seconds of coord_run's return. Returns coord_run's status. */
int run(const char *yaml, run_ctx *r)
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
                    .force = r->force, .repair = r->repair, .rank_groups = r->rank_groups,
                    .keepalive_s = r->keepalive_s};
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
char *board(const char *out)
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


/* the task records of the run being scanned, by trial (ranks leader first) */
typedef struct {
    journal_counts *jc;
    int32_t ranks[N_TRIALS][8];
    size_t n_ranks[N_TRIALS];
    int tasked[N_TRIALS];
} scan_state;

static void count_task(scan_state *ss, const Tlsweep__JournalTask *t)
{
    journal_counts *jc = ss->jc;
    uint32_t i = t->trial_index;
    if (i >= N_TRIALS || t->n_ranks < 1 || t->n_ranks > 8) {
        jc->bad++;
        return;
    }
    jc->tasks[i]++;
    jc->task_from[i] = t->from_epoch;
    jc->task_until[i] = t->until_epoch;
    ss->tasked[i] = 1;
    ss->n_ranks[i] = t->n_ranks;
    memcpy(ss->ranks[i], t->ranks, t->n_ranks * sizeof *t->ranks);
}

static void count_epoch_task(scan_state *ss, const Tlsweep__EpochReport *er)
{
    uint32_t i = er->trial_index;
    if (!ss->tasked[i]) {
        ss->jc->untasked_epochs++;
        return;
    }
    if (er->n_ranks != ss->n_ranks[i] ||
        memcmp(er->ranks, ss->ranks[i], er->n_ranks * sizeof *er->ranks))
        ss->jc->task_ranks_differ++;
}

static void count_workers(journal_counts *jc, const Tlsweep__JournalRecord *rec)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    const Tlsweep__JournalWorkers *w = rec->workers;
    jc->workers_records++;
    if ((int)w->n_workers < jc->workers_n)
        jc->workers_partial++;
    for (size_t k = 0; k < w->n_workers; k++) {
        const Tlsweep__WorkerSeen *ws = w->workers[k];
        if (ws->rank >= 0 && ws->rank < 64 && (unsigned)ws->state < 6)
            jc->worker_state_of[ws->rank] = (int)ws->state + 1;
        else
            jc->workers_bad++;
        if (strcmp(ws->host, host) || !ws->heard_unix_ms || ws->heard_unix_ms > rec->unix_ms)
            jc->workers_bad++;
    }
    jc->workers_n = 0;
    jc->workers_lost_rank = 0;
    memset(jc->workers_state, 0, sizeof jc->workers_state);
    for (int r = 0; r < 64; r++) {
        if (!jc->worker_state_of[r])
            continue;
        int st = jc->worker_state_of[r] - 1;
        jc->workers_n++;
        jc->workers_state[st]++;
        if (st == TLSWEEP__WORKER_SEEN__STATE__LOST)
            jc->workers_lost_rank = r;
    }
}

static int count_record(void *ctx, const void *payload, size_t len)
{
    scan_state *ss = ctx;
    journal_counts *jc = ss->jc;
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
        else {
            jc->epochs[i][ep - 1]++;
            count_epoch_task(ss, rec->epoch);
        }
    } else if (rec->body_case == TLSWEEP__JOURNAL_RECORD__BODY_START) {
        jc->starts++;
        memset(ss->tasked, 0, sizeof ss->tasked);
        memset(jc->worker_state_of, 0, sizeof jc->worker_state_of); /* a run's own workers */
        jc->workers_n = 0;
    } else if (rec->body_case == TLSWEEP__JOURNAL_RECORD__BODY_TASK) {
        count_task(ss, rec->task);
    } else if (rec->body_case == TLSWEEP__JOURNAL_RECORD__BODY_WORKERS) {
        count_workers(jc, rec);
    } else if (rec->body_case == TLSWEEP__JOURNAL_RECORD__BODY_RESET) {
        if (rec->reset->trial_index >= N_TRIALS)
            jc->bad++;
        else
            jc->resets[rec->reset->trial_index]++;
    }
    tlsweep__journal_record__free_unpacked(rec, NULL);
    return 0;
}

journal_counts scan_journal(const char *out)
{
    journal_counts jc;
    memset(&jc, 0, sizeof jc);
    scan_state ss;
    memset(&ss, 0, sizeof ss);
    ss.jc = &jc;
    char *p = out_path(out, "journal");
    tl_err e = {0};
    size_t ignored = 0;
    if (journal_scan(p, JOURNAL_STRICT, count_record, &ss, &ignored, &e))
        fail_msg("%s", e.msg);
    free(p);
    assert_int_equal(ignored, 0);
    assert_int_equal(jc.bad, 0);
    return jc;
}

char *read_text(const char *out, const char *rel)
{
    char *p = out_path(out, rel);
    size_t n;
    char *t = (char *)tu_read_file(p, &n);
    t[n] = '\0';
    free(p);
    return t;
}

int count_checkpoints(const char *out)
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
