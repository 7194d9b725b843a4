/* The coordinator against workers that send bad messages (issue 11,
 * failure 10): fake workers over the in-memory link (coordtest.h) send
 * each kind of message the coordinator must not trust, and coord_run
 * must end with exit status 1 and one line naming the rank and what was
 * wrong, tell the workers to stop, and never crash, overrun or hang (a
 * watchdog per case). Harmless oddities are dropped with a warning and the
 * run goes on. Then the heartbeat: a worker that falls silent is named
 * within the sweep's worker_timeout and the run stops resumably (75), one
 * silent in its setup after ten timeouts (heartbeats sent before the Setup
 * arrived do not end the setup, a ready one does); one that only heartbeats for
 * longer than the timeout is not given up on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/base/clock.h"
#include "common/base/fileio.h"
#include "coordinator/coordtest.h"

/* ---- a fake worker with one bad habit ------------------------------------------------------ */

typedef enum {
    BAD_FEATURES_OVERFLOW,   /* a (n, 2^62) tensor of no floats: n * dim wraps to 0 */
    BAD_FEATURES_DIM,        /* a second chunk with another feature size */
    BAD_FEATURES_ID,         /* an image id outside the shard it was given */
    BAD_FEATURES_GROUP,      /* a chunk for a cache group it does not extract */
    BAD_RESULT_OTHER_TRIAL,  /* a result for a trial it was not given */
    BAD_RESULT_DUPLICATE,    /* the same DONE result three times */
    BAD_RESULT_STOPPED,      /* STOPPED, with no stop asked for */
    BAD_RESULT_CONFUSION,    /* 3 classes and 4 confusion counts */
    BAD_EPOCH_ORDER,         /* epoch 2, then epoch 1 */
    BAD_EPOCH_RANGE,         /* epoch 99 of 2 */
    BAD_CHECKPOINT_EPOCH,    /* a checkpoint of an epoch never reported */
    BAD_BEFORE_HELLO,        /* progress before its Hello */
    BAD_OTHER_RANKS_TRIAL,   /* rank 2: an epoch report for rank 1's trial */
    BAD_RESULT_YIELDED,      /* YIELDED, with no yield asked for */
    BAD_MEMBER_RANKS,        /* ranks_per_trial 2: the member's result names a group of one */
    BAD_EPOCH_RANKS,         /* ranks_per_trial 2: the leader's epoch trained by it alone */
} bad_kind;

static bad_kind bad;
/* the group of each rank's first task (ranks_per_trial cases) */
static int32_t task_group[3][4];
static size_t task_group_n[3];
static uint64_t task_group_id[3];

#define STR_(x) #x
#define STR(x) STR_(x)

static int send_env(peer *p, Tlsweep__Envelope *env)
{
    return msg_link_send(p->l, 0, env, &p->e);
}

/* The first Task after the Setup; NULL when a Stop (its reason kept) or
 * nothing came. */
static Tlsweep__Envelope *await_task(peer *p)
{
    for (Tlsweep__Envelope *env; (env = fake_recv(p));) {
        if (env->body_case == TLSWEEP__ENVELOPE__BODY_TASK)
            return env;
        if (env->body_case == TLSWEEP__ENVELOPE__BODY_STOP)
            p->stop_reason = env->stop->reason;
        msg_free(env);
        if (p->stop_reason >= 0)
            break;
    }
    return NULL;
}

static void send_chunk(peer *p, const Tlsweep__Task *t, int group, const uint32_t *ids, size_t n,
                       int64_t dim, size_t n_data, int last)
{
    float data[64] = {0};
    int64_t shape[2] = {(int64_t)n, dim};
    Tlsweep__Tensor x = TLSWEEP__TENSOR__INIT;
    x.n_shape = 2;
    x.shape = shape;
    x.n_data = n_data;
    x.data = data;
    assert_true(n_data <= 64);
    Tlsweep__FeatureChunk f = TLSWEEP__FEATURE_CHUNK__INIT;
    f.task_id = t->task_id;
    f.cache_group = group;
    f.n_image_ids = n;
    f.image_ids = (uint32_t *)ids;
    f.features = &x;
    f.last = last;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_FEATURE_CHUNK;
    env.feature_chunk = &f;
    send_env(p, &env);
}

static void send_result_ranks(peer *p, const Tlsweep__Task *t, uint32_t index, int status,
                              size_t n_confusion, int32_t *ranks, size_t n_ranks)
{
    uint64_t confusion[9] = {4, 0, 0, 0, 4, 0, 0, 0, 4};
    Tlsweep__TrialResult r = TLSWEEP__TRIAL_RESULT__INIT;
    r.task_id = t->task_id;
    r.trial_id = t->trial_id;
    r.trial_index = index;
    r.trial_key = t->trial_key;
    r.status = status;
    r.epochs_done = EPOCHS;
    r.best_epoch = 1;
    r.num_classes = 3;
    r.n_confusion = n_confusion;
    r.confusion = confusion;
    r.best_value = 0.5;
    r.n_ranks = n_ranks;
    r.ranks = ranks;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT;
    env.trial_result = &r;
    send_env(p, &env);
}

static void send_result(peer *p, const Tlsweep__Task *t, uint32_t index, int status,
                        size_t n_confusion)
{
    send_result_ranks(p, t, index, status, n_confusion, NULL, 0);
}

static void send_epoch_ranks(peer *p, const Tlsweep__Task *t, uint32_t index, uint32_t epoch,
                             int32_t *ranks, size_t n_ranks)
{
    Tlsweep__EpochReport er = TLSWEEP__EPOCH_REPORT__INIT;
    er.task_id = t->task_id;
    er.trial_id = t->trial_id;
    er.trial_index = index;
    er.epoch = epoch;
    er.n_ranks = n_ranks;
    er.ranks = ranks;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_EPOCH_REPORT;
    env.epoch_report = &er;
    send_env(p, &env);
}

static void send_epoch(peer *p, const Tlsweep__Task *t, uint32_t index, uint32_t epoch)
{
    send_epoch_ranks(p, t, index, epoch, NULL, 0);
}

static void send_progress(peer *p, uint64_t task_id)
{
    Tlsweep__Progress pr = TLSWEEP__PROGRESS__INIT;
    pr.task_id = task_id;
    pr.trial_id = "";
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_PROGRESS;
    env.progress = &pr;
    send_env(p, &env);
}

/* Says hello, takes its first task and answers it with the bad habit; then
 * waits for the coordinator's Stop (rc 0 when it came). */
static void fake_bad(peer *p)
{
    p->rc = -1;
    if (bad == BAD_BEFORE_HELLO)
        send_progress(p, 1);
    if (fake_hello(p, 0))
        return;
    Tlsweep__Envelope *env = await_task(p);
    if (!env) {
        p->rc = p->stop_reason >= 0 ? 0 : -1; /* told to stop before any task */
        return;
    }
    const Tlsweep__Task *t = env->task;
    const uint32_t *ids = t->image_ids;
    uint32_t other = t->trial_index == 0 ? 1 : 0;
    int me = msg_link_rank(p->l);
    int32_t alone[1] = {me};
    task_group_n[me] = t->n_group_ranks;
    task_group_id[me] = t->group_id;
    for (size_t k = 0; k < t->n_group_ranks && k < 4; k++)
        task_group[me][k] = t->group_ranks[k];
    Tlsweep__Checkpoint ck = TLSWEEP__CHECKPOINT__INIT;
    Tlsweep__Envelope cenv = TLSWEEP__ENVELOPE__INIT;
    switch (bad) {
    case BAD_FEATURES_OVERFLOW:
        assert_true(t->n_image_ids >= 4);
        send_chunk(p, t, t->cache_group, ids, 4, (int64_t)1 << 62, 0, 0);
        break;
    case BAD_FEATURES_DIM:
        send_chunk(p, t, t->cache_group, ids, 2, 8, 16, 0);
        send_chunk(p, t, t->cache_group, ids + 2, 2, 16, 32, 0);
        break;
    case BAD_FEATURES_ID: {
        uint32_t out[2] = {ids[0], ids[t->n_image_ids - 1] + 1000};
        send_chunk(p, t, t->cache_group, out, 2, 8, 16, 0);
        break;
    }
    case BAD_FEATURES_GROUP:
        send_chunk(p, t, t->cache_group + 7, ids, 2, 8, 16, 0);
        break;
    case BAD_RESULT_OTHER_TRIAL:
        send_result(p, t, other, TLSWEEP__TRIAL_RESULT__STATUS__DONE, 9);
        break;
    case BAD_RESULT_DUPLICATE:
        for (int i = 0; i < 3; i++)
            send_result(p, t, t->trial_index, TLSWEEP__TRIAL_RESULT__STATUS__DONE, 9);
        break;
    case BAD_RESULT_STOPPED:
        send_result(p, t, t->trial_index, TLSWEEP__TRIAL_RESULT__STATUS__STOPPED, 0);
        break;
    case BAD_RESULT_CONFUSION:
        send_result(p, t, t->trial_index, TLSWEEP__TRIAL_RESULT__STATUS__DONE, 4);
        break;
    case BAD_EPOCH_ORDER:
        send_epoch(p, t, t->trial_index, 2);
        send_epoch(p, t, t->trial_index, 1);
        break;
    case BAD_EPOCH_RANGE:
        send_epoch(p, t, t->trial_index, 99);
        break;
    case BAD_CHECKPOINT_EPOCH:
        ck.task_id = t->task_id;
        ck.trial_id = t->trial_id;
        ck.trial_index = t->trial_index;
        ck.trial_key = t->trial_key;
        ck.epoch = 1;
        cenv.body_case = TLSWEEP__ENVELOPE__BODY_CHECKPOINT;
        cenv.checkpoint = &ck;
        send_env(p, &cenv);
        break;
    case BAD_BEFORE_HELLO:
        break;
    case BAD_OTHER_RANKS_TRIAL:
        if (me == 2)
            send_epoch(p, t, other, 1);
        break;
    case BAD_RESULT_YIELDED:
        send_result(p, t, t->trial_index, TLSWEEP__TRIAL_RESULT__STATUS__YIELDED, 0);
        break;
    case BAD_MEMBER_RANKS:
        if (me == 2)
            send_result_ranks(p, t, t->trial_index, TLSWEEP__TRIAL_RESULT__STATUS__DONE, 0, alone,
                              1);
        break;
    case BAD_EPOCH_RANKS:
        if (me == 1)
            send_epoch_ranks(p, t, t->trial_index, 1, alone, 1);
        break;
    }
    msg_free(env);
    fake_await_stop(p);
    p->rc = p->stop_reason >= 0 ? 0 : -1;
}

/* One case: a sweep of `modes` against n fake_bad workers; coord_run
 * must fail (1) with one line naming `rank` and every fragment. */
static void expect_bad(const char *name, bad_kind kind, const char *modes, int n, int rank,
                       const char *frag1, const char *frag2)
{
    watchdog(name, FAST_WATCHDOG_S);
    bad = kind;
    int groups = kind == BAD_MEMBER_RANKS || kind == BAD_EPOCH_RANKS;
    sweep_extra = groups ? "ranks_per_trial: 2\n" : "";
    char *y = write_sweep_modes(name, name, weights, modes);
    sweep_extra = "";
    run_ctx r = {.n_peers = n, .fns = {fake_bad, fake_bad}, .rank_groups = groups};
    assert_int_equal(run(y, &r), 1);
    char who[32];
    snprintf(who, sizeof who, "rank %d (", rank);
    tu_assert_one_line_error(&r.e, who, frag1, frag2);
    for (int i = 0; i < n; i++) {
        assert_int_equal(r.peers[i].rc, 0);
        assert_int_equal(r.peers[i].stop_reason, TLSWEEP__STOP__REASON__ABORT);
    }
    assert_true(r.seconds < LEAVE_S);
    assert_int_equal(r.abandoned, 1); /* under MPI, cli_run aborts the ranks */
    char *json = read_text(name, "results.json");
    assert_non_null(strstr(json, "\"state\": \"failed\""));
    free(json);
    free(y);
    alarm(0);
}

static void test_features_overflow(void **state)
{
    (void)state;
    expect_bad("feat_overflow", BAD_FEATURES_OVERFLOW, "[frozen]", 1, 1, "bad feature_chunk",
               "4611686018427387904 features per image");
}

static void test_features_dim(void **state)
{
    (void)state;
    expect_bad("feat_dim", BAD_FEATURES_DIM, "[frozen]", 1, 1, "16 features per image",
               "earlier chunks");
}

static void test_features_id(void **state)
{
    (void)state;
    expect_bad("feat_id", BAD_FEATURES_ID, "[frozen]", 1, 1, "bad feature_chunk",
               "outside its shard");
}

static void test_features_group(void **state)
{
    (void)state;
    expect_bad("feat_group", BAD_FEATURES_GROUP, "[frozen]", 1, 1, "cache group 7",
               "extracts group 0");
}

static void test_result_other_trial(void **state)
{
    (void)state;
    expect_bad("res_other", BAD_RESULT_OTHER_TRIAL, "[fine_tune]", 1, 1, "bad trial_result",
               "but rank 1 trains trial 0");
}

/* Before: the second and third copies went into the results queue again
 * (n_trials long) and ran over it. */
static void test_result_duplicate(void **state)
{
    (void)state;
    expect_bad("res_dup", BAD_RESULT_DUPLICATE, "[fine_tune]", 1, 1, "bad trial_result",
               "for task 1, but rank 1 is on training task 2");
}

/* Before: the trial went back to pending and the worker was given it again. */
static void test_result_stopped(void **state)
{
    (void)state;
    expect_bad("res_stopped", BAD_RESULT_STOPPED, "[fine_tune]", 1, 1, "bad trial_result",
               "no stop was asked for");
}

/* Before: results.json read num_classes^2 counts out of 4. */
static void test_result_confusion(void **state)
{
    (void)state;
    expect_bad("res_conf", BAD_RESULT_CONFUSION, "[fine_tune]", 1, 1,
               "3 classes with a confusion matrix of 4 counts", NULL);
}

static void test_epoch_order(void **state)
{
    (void)state;
    expect_bad("ep_order", BAD_EPOCH_ORDER, "[fine_tune]", 1, 1, "bad epoch_report",
               "epoch 1 reported after epoch 2");
}

static void test_epoch_range(void **state)
{
    (void)state;
    expect_bad("ep_range", BAD_EPOCH_RANGE, "[fine_tune]", 1, 1, "bad epoch_report",
               "epoch 99 of 2");
}

static void test_checkpoint_epoch(void **state)
{
    (void)state;
    expect_bad("ck_epoch", BAD_CHECKPOINT_EPOCH, "[fine_tune]", 1, 1, "bad checkpoint",
               "after the report of epoch 0");
}

static void test_before_hello(void **state)
{
    (void)state;
    expect_bad("early", BAD_BEFORE_HELLO, "[fine_tune]", 1, 1, "bad progress",
               "sent before its hello");
}

/* The sender is checked against the worker the trial was given to. */
static void test_other_ranks_trial(void **state)
{
    (void)state;
    expect_bad("other_rank", BAD_OTHER_RANKS_TRIAL, "[fine_tune]", 2, 2, "bad epoch_report",
               "but rank 2 trains trial");
}

static void test_result_yielded(void **state)
{
    (void)state;
    expect_bad("res_yielded", BAD_RESULT_YIELDED, "[fine_tune]", 1, 1, "bad trial_result",
               "yielded, but no yield was asked for");
}

/* ranks_per_trial 2 on two ranks: both are sent the trial, with the same
 * group (the leader first) and group id */
static void assert_one_group(void)
{
    for (int r = 1; r <= 2; r++) {
        assert_int_equal(task_group_n[r], 2);
        assert_int_equal(task_group[r][0], 1);
        assert_int_equal(task_group[r][1], 2);
    }
    assert_true(task_group_id[1] != 0 && task_group_id[1] == task_group_id[2]);
}

/* A member's answer must name the group it was sent. */
static void test_member_ranks(void **state)
{
    (void)state;
    expect_bad("member_ranks", BAD_MEMBER_RANKS, "[fine_tune]", 2, 2, "bad trial_result",
               "1 ranks from rank 2, not the 2 of its group");
    assert_one_group();
}

static void test_epoch_ranks(void **state)
{
    (void)state;
    expect_bad("epoch_ranks", BAD_EPOCH_RANKS, "[fine_tune]", 2, 1, "bad epoch_report",
               "epoch 1 trained by 1 ranks, not the 2 of its group");
    assert_one_group();
}

/* ---- harmless oddities: a warning, and the run goes on ----------------------------------- */

#define ODD_TRIAL_ERROR "fake worker: diverged"

/* Sends a Setup (a coordinator's message) and a Progress about another
 * task, then fails every trial it is given, as a worker may. */
static void fake_odd(peer *p)
{
    p->rc = -1;
    if (fake_hello(p, 0))
        return;
    Tlsweep__Setup su = TLSWEEP__SETUP__INIT;
    Tlsweep__Envelope senv = TLSWEEP__ENVELOPE__INIT;
    senv.body_case = TLSWEEP__ENVELOPE__BODY_SETUP;
    senv.setup = &su;
    send_env(p, &senv);
    send_progress(p, 12345);
    fake_fail_tasks(p, ODD_TRIAL_ERROR "\nsecond line", 0);
}

static void test_harmless_dropped(void **state)
{
    (void)state;
    watchdog("harmless", FAST_WATCHDOG_S);
    char *y = write_sweep_modes("odd", "odd", weights, "[fine_tune]");
    run_ctx r = {.n_peers = 1, .fns = {fake_odd}};
    assert_int_equal(run(y, &r), 1);
    /* the trials failed on their own; the odd messages stopped nothing, and
     * the worker's two-line message is printed as one */
    tu_assert_one_line_error(&r.e, "2 trials failed", ODD_TRIAL_ERROR " second line");
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.peers[0].stop_reason, TLSWEEP__STOP__REASON__FINISHED);
    assert_int_equal(r.abandoned, 0);
    free(y);
    alarm(0);
}

/* ---- the heartbeat ---------------------------------------------------------------------- */

#define TIMEOUT_S 2

/* a one-trial-kind sweep whose workers time out after TIMEOUT_S */
static char *timeout_sweep(const char *name)
{
    sweep_extra = "worker_timeout: " STR(TIMEOUT_S) "\n";
    char *y = write_sweep_modes(name, name, weights, "[fine_tune]");
    sweep_extra = "";
    return y;
}

/* Takes its task, heartbeats once (its setup is over), then says nothing
 * at all until coord_run has returned (a rank stopped with SIGSTOP, a
 * node that froze). */
static void fake_goes_silent(peer *p)
{
    p->rc = -1;
    if (fake_hello(p, 0))
        return;
    Tlsweep__Envelope *env = await_task(p);
    if (!env)
        return;
    Tlsweep__Envelope *hb = msg_new_heartbeat(tl_unix_ms(), env->task->task_id, 0);
    assert_non_null(hb);
    hb->heartbeat->ready = 1;
    send_env(p, hb);
    msg_free(hb);
    msg_free(env);
    for (double t0 = tl_now(); !atomic_load(&run_over) && tl_now() - t0 < FAST_WATCHDOG_S;)
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
    p->rc = 0;
}

static void test_silent_worker_named(void **state)
{
    (void)state;
    watchdog("silent worker", FAST_WATCHDOG_S);
    char *y = timeout_sweep("silent");
    run_ctx r = {.n_peers = 1, .fns = {fake_goes_silent}};
    assert_int_equal(run(y, &r), COORD_EXIT_INTERRUPTED);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    char who[300];
    snprintf(who, sizeof who, "rank 1 (%s)", host);
    tu_assert_one_line_error(&r.e, who, "silent for", "worker_timeout", "resume");
    assert_int_equal(r.abandoned, 1);
    assert_int_equal(r.peers[0].rc, 0);
    /* named within the timeout and a tick of the status timer */
    printf("a silent worker given up on after %.1f s (worker_timeout %d s)\n", r.seconds,
           TIMEOUT_S);
    assert_true(r.seconds >= TIMEOUT_S);
    assert_true(r.seconds < TIMEOUT_S + 3.0);
    char *json = read_text("silent", "results.json");
    assert_non_null(strstr(json, "\"state\": \"interrupted\""));
    free(json);
    /* the journal tells readers which worker was lost, and where */
    journal_counts jc = scan_journal("silent");
    assert_true(jc.workers_records >= 2);
    assert_int_equal(jc.workers_n, 1);
    assert_int_equal(jc.workers_lost_rank, 1);
    assert_int_equal(jc.workers_bad, 0);
    free(y);
    alarm(0);
}

/* Says hello, then heartbeats once more without being ready (as a real
 * worker's idle heartbeat, queued while the coordinator preflights, reaches
 * it after the Setup went out), then nothing: to the coordinator, a worker
 * still in its setup (indexing a large dataset sends nothing for minutes).
 * With setup_ready, that heartbeat says the setup is over. */
static int setup_ready;

static void fake_silent_after_hello(peer *p)
{
    p->rc = -1;
    if (fake_hello(p, 0))
        return;
    Tlsweep__Envelope *hb = msg_new_heartbeat(tl_unix_ms(), 0, 0);
    assert_non_null(hb);
    hb->heartbeat->ready = setup_ready;
    send_env(p, hb);
    msg_free(hb);
    for (double t0 = tl_now(); !atomic_load(&run_over) && tl_now() - t0 < FAST_WATCHDOG_S;)
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
    p->rc = 0;
}

/* A worker in its setup gets ten worker_timeouts, then is named as well. */
static void test_silent_in_setup(void **state)
{
    (void)state;
    watchdog("silent in setup", FAST_WATCHDOG_S);
    sweep_extra = "worker_timeout: 1\n";
    char *y = write_sweep_modes("setup_silent", "setup_silent", weights, "[fine_tune]");
    sweep_extra = "";
    run_ctx r = {.n_peers = 1, .fns = {fake_silent_after_hello}};
    assert_int_equal(run(y, &r), COORD_EXIT_INTERRUPTED);
    tu_assert_one_line_error(&r.e, "rank 1 (", "silent for", "in its setup", "10 x worker_timeout");
    printf("a worker silent in its setup given up on after %.1f s (worker_timeout 1 s)\n",
           r.seconds);
    assert_true(r.seconds >= 10.0);
    assert_true(r.seconds < 10.0 + 3.0);
    assert_int_equal(r.abandoned, 1);
    free(y);
    alarm(0);
}

/* A heartbeat that says the setup is over ends the allowance: named after
 * one worker_timeout, not ten. */
static void test_silent_after_setup(void **state)
{
    (void)state;
    watchdog("silent after setup", FAST_WATCHDOG_S);
    sweep_extra = "worker_timeout: 1\n";
    char *y = write_sweep_modes("setup_done_silent", "setup_done_silent", weights, "[fine_tune]");
    sweep_extra = "";
    setup_ready = 1;
    run_ctx r = {.n_peers = 1, .fns = {fake_silent_after_hello}};
    assert_int_equal(run(y, &r), COORD_EXIT_INTERRUPTED);
    setup_ready = 0;
    tu_assert_one_line_error(&r.e, "rank 1 (", "silent for", "worker_timeout");
    assert_null(strstr(r.e.msg, "in its setup"));
    printf("a worker silent after its setup given up on after %.1f s (worker_timeout 1 s)\n",
           r.seconds);
    assert_true(r.seconds >= 1.0);
    assert_true(r.seconds < 1.0 + 3.0);
    assert_int_equal(r.abandoned, 1);
    free(y);
    alarm(0);
}

/* Answers each task after heartbeating through twice the timeout. */
static void fake_slow_but_alive(peer *p)
{
    p->rc = -1;
    if (fake_hello(p, 0))
        return;
    fake_fail_tasks(p, ODD_TRIAL_ERROR, 2 * TIMEOUT_S);
}

/* results.json as the first task was answered, after its busy seconds
 * without an epoch: written by the keepalive alone ("" none) */
static char json_before_news[64];

static void read_json_before_news(peer *p, const Tlsweep__Task *t, int nth)
{
    (void)p;
    (void)t;
    if (nth)
        return;
    char *path = out_path("alive", "results.json");
    unsigned char *text = NULL;
    size_t n;
    tl_err e = {0};
    /* off the main thread: what it saw is asserted there */
    if (!tl_read_file(path, 1u << 20, &text, &n, &e))
        snprintf(json_before_news, sizeof json_before_news, "%s",
                 strstr((char *)text, "\"state\": \"running\"") ? "running" : "other");
    free(text);
    free(path);
}

/* Heartbeats keep a slow worker from being given up on; meanwhile the
 * keepalive (shortened to 1 s) journals the workers and rewrites the
 * report with no news to tell. */
static void test_heartbeats_keep_alive(void **state)
{
    (void)state;
    watchdog("heartbeats", FAST_WATCHDOG_S);
    char *y = timeout_sweep("alive");
    json_before_news[0] = '\0';
    fake_before_answer = read_json_before_news;
    run_ctx r = {.n_peers = 1, .fns = {fake_slow_but_alive}, .keepalive_s = 1.0};
    assert_int_equal(run(y, &r), 1); /* the trials' own failure, not the timeout */
    fake_before_answer = NULL;
    assert_string_equal(json_before_news, "running");
    journal_counts jc = scan_journal("alive");
    printf("%d workers records in %.1f s (keepalive 1 s)\n", jc.workers_records, r.seconds);
    /* every Hello in, one a second or two of the run's 8, the end */
    assert_true(jc.workers_records >= 5);
    assert_int_equal(jc.workers_bad, 0);
    tu_assert_one_line_error(&r.e, "2 trials failed", ODD_TRIAL_ERROR);
    assert_int_equal(r.abandoned, 0);
    assert_int_equal(r.peers[0].stop_reason, TLSWEEP__STOP__REASON__FINISHED);
    assert_true(r.seconds >= 4 * TIMEOUT_S);
    free(y);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features_overflow),
        cmocka_unit_test(test_features_dim),
        cmocka_unit_test(test_features_id),
        cmocka_unit_test(test_features_group),
        cmocka_unit_test(test_result_other_trial),
        cmocka_unit_test(test_result_duplicate),
        cmocka_unit_test(test_result_stopped),
        cmocka_unit_test(test_result_confusion),
        cmocka_unit_test(test_epoch_order),
        cmocka_unit_test(test_epoch_range),
        cmocka_unit_test(test_checkpoint_epoch),
        cmocka_unit_test(test_before_hello),
        cmocka_unit_test(test_other_ranks_trial),
        cmocka_unit_test(test_result_yielded),
        cmocka_unit_test(test_member_ranks),
        cmocka_unit_test(test_epoch_ranks),
        cmocka_unit_test(test_harmless_dropped),
        cmocka_unit_test(test_silent_worker_named),
        cmocka_unit_test(test_silent_in_setup),
        cmocka_unit_test(test_silent_after_setup),
        cmocka_unit_test(test_heartbeats_keep_alive),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
