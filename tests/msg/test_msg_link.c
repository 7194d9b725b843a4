/* The in-process message link: two threads exchange envelopes of every size
 * through the packed-bytes path, in order, with seq and from_rank set and
 * the notify hook called; poll and the receive timeout on an empty queue.
 * The MPI link is tests/mpi/msg_link_mpi.c. */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/msg/msg_link.h"

#define N_MESSAGES 400
#define BIG_AT (N_MESSAGES / 2)
#define BIG_DIM 256
#define BIG_ROWS ((5u << 20) / sizeof(float) / BIG_DIM)  /* 5 MB of features */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Message i of the exchange: mostly heartbeats and errors, one 5 MB
 * FeatureChunk in the middle, a Stop last. */
static Tlsweep__Envelope *make_message(int i)
{
    if (i == N_MESSAGES - 1)
        return msg_new_stop(TLSWEEP__STOP__REASON__FINISHED);
    if (i == BIG_AT) {
        float *f = malloc(BIG_ROWS * BIG_DIM * sizeof *f);
        uint32_t *ids = malloc(BIG_ROWS * sizeof *ids);
        assert_non_null(f);
        assert_non_null(ids);
        tu_fill_uniform(f, BIG_ROWS * BIG_DIM, 42, -1.0f, 1.0f);
        for (size_t r = 0; r < BIG_ROWS; r++)
            ids[r] = (uint32_t)(r * 3 + 1);
        Tlsweep__Envelope *env = msg_new_feature_chunk(7, "mobilenet_v2", ids, BIG_ROWS, f,
                                                       BIG_DIM, 1);
        free(f);
        free(ids);
        return env;
    }
    if (i % 3 == 1) {
        char text[64];
        snprintf(text, sizeof text, "message %d", i);
        return msg_new_error(-i, text, i % 2);
    }
    return msg_new_heartbeat(1000 + (uint64_t)i, (uint64_t)i, (uint64_t)i << 20);
}

/* Checks that env is make_message(i). */
static void check_message(const Tlsweep__Envelope *env, int i)
{
    Tlsweep__Envelope *want = make_message(i);
    assert_non_null(want);
    assert_int_equal(env->body_case, want->body_case);
    switch (env->body_case) {
    case TLSWEEP__ENVELOPE__BODY_STOP:
        assert_int_equal(env->stop->reason, want->stop->reason);
        break;
    case TLSWEEP__ENVELOPE__BODY_FEATURE_CHUNK: {
        const Tlsweep__FeatureChunk *a = env->feature_chunk, *b = want->feature_chunk;
        assert_int_equal(a->task_id, b->task_id);
        assert_string_equal(a->backbone, b->backbone);
        assert_int_equal(a->n_image_ids, b->n_image_ids);
        assert_memory_equal(a->image_ids, b->image_ids, a->n_image_ids * sizeof(uint32_t));
        assert_non_null(a->features);
        assert_int_equal(a->features->n_shape, 2);
        assert_int_equal(a->features->shape[0], BIG_ROWS);
        assert_int_equal(a->features->shape[1], BIG_DIM);
        assert_int_equal(a->features->n_data, b->features->n_data);
        assert_memory_equal(a->features->data, b->features->data,
                            a->features->n_data * sizeof(float));
        assert_true(a->last);
        break;
    }
    case TLSWEEP__ENVELOPE__BODY_ERROR:
        assert_int_equal(env->error->code, want->error->code);
        assert_string_equal(env->error->message, want->error->message);
        assert_int_equal(env->error->fatal, want->error->fatal);
        break;
    case TLSWEEP__ENVELOPE__BODY_HEARTBEAT:
        assert_int_equal(env->heartbeat->unix_ms, want->heartbeat->unix_ms);
        assert_int_equal(env->heartbeat->task_id, want->heartbeat->task_id);
        assert_int_equal(env->heartbeat->rss_bytes, want->heartbeat->rss_bytes);
        break;
    default:
        fail_msg("message %d: unexpected %s", i, msg_body_name(env));
    }
    msg_free(want);
}

static void count_notify(void *ctx)
{
    atomic_fetch_add((atomic_int *)ctx, 1);
}

typedef struct {
    msg_link *link;
    int received, bad_seq, bad_from, failed;
    char err[600];
} echo_state;

/* The worker end: receives every message and sends it straight back, until
 * Stop (echoed too). Records what went wrong instead of asserting: cmocka
 * asserts belong to the test's thread. */
static void *echo_thread(void *arg)
{
    echo_state *s = arg;
    tl_err e = {0};
    for (;;) {
        Tlsweep__Envelope *env;
        int from = -1;
        int rc = msg_link_recv(s->link, &env, &from, 10000, &e);
        if (rc < 0 || !env) {
            snprintf(s->err, sizeof s->err, "worker: %s", rc < 0 ? e.msg : "timed out");
            s->failed = 1;
            return NULL;
        }
        s->received++;
        if (env->seq != (uint64_t)s->received)
            s->bad_seq++;
        if (from != 0 || env->from_rank != 0)
            s->bad_from++;
        int stop = env->body_case == TLSWEEP__ENVELOPE__BODY_STOP;
        if (msg_link_send(s->link, 0, env, &e) < 0) {
            snprintf(s->err, sizeof s->err, "worker: %s", e.msg);
            s->failed = 1;
        }
        msg_free(env);
        if (stop || s->failed)
            return NULL;
    }
}

static void test_exchange(void **st)
{
    (void)st;
    tl_err e = {0};
    msg_link *coord, *worker;
    assert_int_equal(msg_link_local_pair(&coord, &worker, &e), 0);
    assert_int_equal(msg_link_rank(coord), 0);
    assert_int_equal(msg_link_rank(worker), 1);
    assert_int_equal(msg_link_size(coord), 2);
    assert_int_equal(msg_link_size(worker), 2);

    atomic_int to_coord = 0, to_worker = 0;
    msg_link_set_notify(coord, count_notify, &to_coord);
    msg_link_set_notify(worker, count_notify, &to_worker);

    echo_state s = {.link = worker};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, echo_thread, &s), 0);

    /* send everything first: the queues are unbounded, so the echoes pile
     * up while we send, and order must hold across both */
    for (int i = 0; i < N_MESSAGES; i++) {
        Tlsweep__Envelope *env = make_message(i);
        assert_non_null(env);
        assert_int_equal(msg_link_send(coord, 1, env, &e), 0);
        assert_int_equal(env->seq, 0);   /* the caller's envelope is untouched */
        assert_int_equal(env->from_rank, 0);
        msg_free(env);
    }
    for (int i = 0; i < N_MESSAGES; i++) {
        Tlsweep__Envelope *env;
        int from = -1;
        assert_int_equal(msg_link_recv(coord, &env, &from, 10000, &e), 0);
        assert_non_null(env);
        assert_int_equal(from, 1);
        assert_int_equal(env->from_rank, 1);
        assert_int_equal(env->seq, (uint64_t)i + 1);
        check_message(env, i);
        msg_free(env);
    }
    pthread_join(t, NULL);
    if (s.failed)
        fail_msg("%s", s.err);
    assert_int_equal(s.received, N_MESSAGES);
    assert_int_equal(s.bad_seq, 0);
    assert_int_equal(s.bad_from, 0);
    assert_int_equal(atomic_load(&to_worker), N_MESSAGES);
    assert_int_equal(atomic_load(&to_coord), N_MESSAGES);

    msg_link_free(worker);
    msg_link_free(coord);
}

static void test_poll_empty_and_queued(void **st)
{
    (void)st;
    tl_err e = {0};
    msg_link *coord, *worker;
    assert_int_equal(msg_link_local_pair(&coord, &worker, &e), 0);
    Tlsweep__Envelope dummy, *env = &dummy;  /* poll must clear it */
    int from = -1, got = -1;
    assert_int_equal(msg_link_poll(coord, &env, &from, &got, &e), 0);
    assert_int_equal(got, 0);
    assert_null(env);
    assert_int_equal(msg_link_poll(worker, &env, &from, &got, &e), 0);
    assert_int_equal(got, 0);

    /* two queued for the worker: poll takes them in order, then none */
    for (int i = 0; i < 2; i++) {
        Tlsweep__Envelope *hb = msg_new_heartbeat(0, (uint64_t)i + 10, 0);
        assert_int_equal(msg_link_send(coord, 1, hb, &e), 0);
        msg_free(hb);
    }
    assert_int_equal(msg_link_poll(coord, &env, &from, &got, &e), 0);
    assert_int_equal(got, 0);       /* nothing crossed over to the sender's own end */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(msg_link_poll(worker, &env, &from, &got, &e), 0);
        assert_int_equal(got, 1);
        assert_int_equal(from, 0);
        assert_int_equal(env->heartbeat->task_id, (uint64_t)i + 10);
        msg_free(env);
    }
    assert_int_equal(msg_link_poll(worker, &env, &from, &got, &e), 0);
    assert_int_equal(got, 0);

    /* queued messages left behind are freed with the pair (ASan checks) */
    Tlsweep__Envelope *hb = msg_new_heartbeat(0, 0, 0);
    assert_int_equal(msg_link_send(worker, 0, hb, &e), 0);
    msg_free(hb);
    msg_link_free(coord);
    msg_link_free(worker);
}

static void test_recv_timeout(void **st)
{
    (void)st;
    tl_err e = {0};
    msg_link *coord, *worker;
    assert_int_equal(msg_link_local_pair(&coord, &worker, &e), 0);
    Tlsweep__Envelope dummy, *env = &dummy;
    double t0 = now_s();
    assert_int_equal(msg_link_recv(coord, &env, NULL, 150, &e), 0);
    double dt = now_s() - t0;
    assert_null(env);
    assert_true(dt >= 0.145);
    assert_true(dt < 2.0);

    env = &dummy;
    t0 = now_s();
    assert_int_equal(msg_link_recv(worker, &env, NULL, 0, &e), 0);
    assert_null(env);
    assert_true(now_s() - t0 < 0.1);
    msg_link_free(worker);
    msg_link_free(coord);
}

static void test_bad_destination(void **st)
{
    (void)st;
    tl_err e = {0};
    msg_link *coord, *worker;
    assert_int_equal(msg_link_local_pair(&coord, &worker, &e), 0);
    Tlsweep__Envelope *hb = msg_new_heartbeat(0, 0, 0);
    assert_int_equal(msg_link_send(coord, 0, hb, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, "rank 0", "destination rank 0");
    assert_int_equal(msg_link_send(worker, 2, hb, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, "rank 1", "destination rank 2");
    /* a refused send does not use up a seq number */
    assert_int_equal(msg_link_send(worker, 0, hb, &e), 0);
    msg_free(hb);
    Tlsweep__Envelope *env;
    assert_int_equal(msg_link_recv(coord, &env, NULL, 1000, &e), 0);
    assert_non_null(env);
    assert_int_equal(env->seq, 1);
    msg_free(env);
    msg_link_free(coord);
    msg_link_free(worker);
}

/* An Envelope over the 2 GiB a message may carry (here a checkpoint of a
 * 2.4 GB tensor, sized but never read) is refused before anything is
 * packed or queued, with a line naming the kind and the size. */
static void test_too_large(void **st)
{
    (void)st;
    tl_err e = {0};
    msg_link *coord, *worker;
    assert_int_equal(msg_link_local_pair(&coord, &worker, &e), 0);
    float few[4] = {0};
    int64_t shape[1] = {600000000};
    Tlsweep__Tensor t = TLSWEEP__TENSOR__INIT;
    t.name = "weights";
    t.n_shape = 1;
    t.shape = shape;
    t.n_data = 600000000;
    t.data = few;
    Tlsweep__Tensor *ts[1] = {&t};
    Tlsweep__Checkpoint ck = TLSWEEP__CHECKPOINT__INIT;
    ck.trial_id = "big";
    ck.n_tensors = 1;
    ck.tensors = ts;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_CHECKPOINT;
    env.checkpoint = &ck;
    env.seq = 1; /* as the link sends it, header fields included */
    env.from_rank = 1;
    size_t n = tlsweep__envelope__get_packed_size(&env);
    assert_true(n > MSG_MAX_MESSAGE);
    char size[32];
    snprintf(size, sizeof size, "%zu bytes", n);
    assert_int_equal(msg_link_send(worker, 0, &env, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, "checkpoint", size, "limit");
    Tlsweep__Envelope *got = NULL;
    assert_int_equal(msg_link_recv(coord, &got, NULL, 0, &e), 0);
    assert_null(got);
    msg_link_free(coord);
    msg_link_free(worker);
}

/* A local link of three ends: the coordinator tells the workers apart by
 * the sender's rank, each worker's seq counts on its own, workers reach
 * only their own queue, and the ends can be freed in any order. */
static void test_three_ends(void **st)
{
    (void)st;
    tl_err e = {0};
    msg_link *ends[3];
    assert_int_equal(msg_link_local(ends, 1, &e), TL_EINVAL);
    assert_int_equal(msg_link_local(ends, 3, &e), 0);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(msg_link_rank(ends[r]), r);
        assert_int_equal(msg_link_size(ends[r]), 3);
    }
    Tlsweep__Envelope *hb = msg_new_heartbeat(0, 0, 0);
    assert_int_equal(msg_link_send(ends[2], 0, hb, &e), 0);
    assert_int_equal(msg_link_send(ends[1], 0, hb, &e), 0);
    assert_int_equal(msg_link_send(ends[2], 0, hb, &e), 0);
    assert_int_equal(msg_link_send(ends[0], 2, hb, &e), 0);
    msg_free(hb);
    static const int from_want[3] = {2, 1, 2}, seq_want[3] = {1, 1, 2};
    for (int i = 0; i < 3; i++) {
        Tlsweep__Envelope *env;
        int from = -1;
        assert_int_equal(msg_link_recv(ends[0], &env, &from, 1000, &e), 0);
        assert_non_null(env);
        assert_int_equal(from, from_want[i]);
        assert_int_equal(env->from_rank, from_want[i]);
        assert_int_equal(env->seq, seq_want[i]);
        msg_free(env);
    }
    Tlsweep__Envelope *env;
    assert_int_equal(msg_link_recv(ends[1], &env, NULL, 0, &e), 0);
    assert_null(env);   /* the coordinator's message went to rank 2 only */
    assert_int_equal(msg_link_recv(ends[2], &env, NULL, 1000, &e), 0);
    assert_non_null(env);
    assert_int_equal(env->from_rank, 0);
    msg_free(env);
    msg_link_free(ends[1]);
    msg_link_free(ends[0]);
    msg_link_free(ends[2]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange),
        cmocka_unit_test(test_poll_empty_and_queued),
        cmocka_unit_test(test_recv_timeout),
        cmocka_unit_test(test_bad_destination),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_three_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
