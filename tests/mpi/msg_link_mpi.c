/* msg_link over real MPI ranks (run by ctest under mpirun -np 3).
 *
 * Rank 0 first waits 200 ms on a link nothing is sent to yet: the receive
 * must time out with no envelope, after about that long. It then sends each
 * worker a Heartbeat; each worker answers with a 1 MB FeatureChunk (in
 * 64 KiB chunks) and a Heartbeat. Rank 0 receives through msg_link_recv's
 * timeout and checks every answer's content, from_rank and seq (1, 2 per
 * worker), then sends Stop; workers check that rank 0's seq grows.
 * Exit status 0 only when every check held, on every rank.
 *
 * With the argument "stalled": rank 1 sends the first chunk of a 3-chunk
 * message by hand and then nothing (a sender killed or SIGSTOPped
 * mid-message). Rank 0's receive must fail after the 1 s chunk timeout with
 * one line naming rank 1, not block; then every worker is told to stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/msg/msg_link.h"

#define DIM 256
#define ROWS ((1u << 20) / sizeof(float) / DIM)
#define WAIT_MS 200

static int failures, my_rank;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "msg_link_mpi rank %d: %s:%d: ", my_rank, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ROWS x DIM features that depend on the rank */
static Tlsweep__Envelope *features_of(int rank)
{
    float *f = malloc(ROWS * DIM * sizeof *f);
    uint32_t *ids = malloc(ROWS * sizeof *ids);
    for (size_t i = 0; i < ROWS * DIM; i++)
        f[i] = (float)((i * 2654435761u + (size_t)rank * 97u) % 1000u) * 1e-3f;
    for (size_t i = 0; i < ROWS; i++)
        ids[i] = (uint32_t)(rank * 100000 + (int)i);
    Tlsweep__Envelope *env = msg_new_feature_chunk((uint64_t)rank, "test", ids, ROWS, f, DIM, 1);
    free(f);
    free(ids);
    return env;
}

static void send_or_fail(msg_link *l, int dest, Tlsweep__Envelope *env)
{
    tl_err e = {0};
    CHECK(env != NULL, "out of memory building a message");
    if (env && msg_link_send(l, dest, env, &e) < 0)
        CHECK(0, "%s", e.msg);
    msg_free(env);
}

static void coordinator(msg_link *l)
{
    tl_err e = {0};
    int size = msg_link_size(l);
    Tlsweep__Envelope *env;
    int from = -1;
    double t0 = now_s();
    if (msg_link_recv(l, &env, &from, WAIT_MS, &e) < 0)
        CHECK(0, "%s", e.msg);
    double dt = now_s() - t0;
    CHECK(env == NULL, "got %s before asking for anything", env ? msg_body_name(env) : "");
    msg_free(env);
    CHECK(dt >= WAIT_MS * 1e-3 * 0.97 && dt < 2.0, "200 ms timeout took %.3f s", dt);

    for (int r = 1; r < size; r++)
        send_or_fail(l, r, msg_new_heartbeat(1, 0, 0));

    int want = 2 * (size - 1), got = 0;
    int *count = calloc((size_t)size, sizeof *count);
    while (got < want) {
        if (msg_link_recv(l, &env, &from, 20000, &e) < 0) {
            CHECK(0, "%s", e.msg);
            break;
        }
        if (!env) {
            CHECK(0, "%d of %d answers within 20 s", got, want);
            break;
        }
        got++;
        CHECK(from >= 1 && from < size && env->from_rank == from, "from %d, from_rank %d", from,
              (int)env->from_rank);
        if (from < 1 || from >= size) {
            msg_free(env);
            continue;
        }
        count[from]++;
        CHECK(env->seq == (uint64_t)count[from], "rank %d: seq %llu, expected %d", from,
              (unsigned long long)env->seq, count[from]);
        if (count[from] == 1) {
            CHECK(env->body_case == TLSWEEP__ENVELOPE__BODY_FEATURE_CHUNK,
                  "rank %d: first answer %s", from, msg_body_name(env));
            Tlsweep__Envelope *ref = features_of(from);
            const Tlsweep__Tensor *a = env->feature_chunk ? env->feature_chunk->features : NULL;
            const Tlsweep__Tensor *b = ref->feature_chunk->features;
            CHECK(a && a->n_data == b->n_data &&
                  memcmp(a->data, b->data, b->n_data * sizeof(float)) == 0 &&
                  env->feature_chunk->task_id == (uint64_t)from,
                  "rank %d: features differ from what it should have sent", from);
            msg_free(ref);
        } else {
            CHECK(env->body_case == TLSWEEP__ENVELOPE__BODY_HEARTBEAT,
                  "rank %d: second answer %s", from, msg_body_name(env));
        }
        msg_free(env);
    }
    for (int r = 1; r < size; r++)
        CHECK(count[r] == 2, "rank %d: %d answers", r, count[r]);
    free(count);
    for (int r = 1; r < size; r++)
        send_or_fail(l, r, msg_new_stop(TLSWEEP__STOP__REASON__FINISHED));
    if (!failures)
        printf("msg_link_mpi: %d workers, timeout and %u-byte answers: ok\n", size - 1,
               (unsigned)(ROWS * DIM * sizeof(float)));
}

static void worker(msg_link *l)
{
    tl_err e = {0};
    uint64_t last_seq = 0;
    for (;;) {
        Tlsweep__Envelope *env;
        int from = -1;
        if (msg_link_recv(l, &env, &from, -1, &e) < 0) {
            CHECK(0, "%s", e.msg);
            return;
        }
        CHECK(env != NULL, "receive without timeout returned nothing");
        if (!env)
            return;
        CHECK(from == 0 && env->from_rank == 0, "from %d, from_rank %d", from,
              (int)env->from_rank);
        CHECK(env->seq > last_seq, "seq %llu after %llu", (unsigned long long)env->seq,
              (unsigned long long)last_seq);
        last_seq = env->seq;
        int stop = env->body_case == TLSWEEP__ENVELOPE__BODY_STOP;
        if (!stop) {
            CHECK(env->body_case == TLSWEEP__ENVELOPE__BODY_HEARTBEAT, "got %s",
                  msg_body_name(env));
            send_or_fail(l, 0, features_of(my_rank));
            send_or_fail(l, 0, msg_new_heartbeat(2, 0, 0));
        }
        msg_free(env);
        if (stop)
            return;
    }
}

#define STALL_TIMEOUT_MS 1000

static void coordinator_stalled(msg_link *l)
{
    tl_err e = {0};
    CHECK(msg_set_chunk_timeout(STALL_TIMEOUT_MS, &e) == 0, "%s", e.msg);
    Tlsweep__Envelope *env = NULL;
    int from = -1;
    double t0 = now_s();
    int rc = msg_link_recv(l, &env, &from, 20000, &e);
    double dt = now_s() - t0;
    CHECK(rc == TL_ETIMEDOUT && env == NULL, "receive returned %d (%s)", rc, env ? msg_body_name(env) : e.msg);
    CHECK(strstr(e.msg, "rank 1") && strstr(e.msg, "silent") && !strchr(e.msg, '\n'),
          "not one line naming rank 1: %s", e.msg);
    CHECK(dt >= STALL_TIMEOUT_MS * 1e-3 * 0.97 && dt < 10.0, "gave up after %.2f s", dt);
    msg_free(env);
    for (int r = 1; r < msg_link_size(l); r++)
        send_or_fail(l, r, msg_new_stop(TLSWEEP__STOP__REASON__ABORT));
    if (!failures)
        printf("msg_link_mpi: a sender silent mid-message named after %.2f s: %s\n", dt, e.msg);
}

static void worker_stalled(msg_link *l, MPI_Comm comm)
{
    if (my_rank == 1) {
        unsigned char chunk[MSG_CHUNK_HEADER_SIZE + 2000];
        memset(chunk, 7, sizeof chunk);
        msg_chunk_header h = {.msg_id = 1, .index = 0, .count = 3, .total = 5000};
        msg_chunk_header_encode(&h, chunk);
        CHECK(MPI_Send(chunk, (int)sizeof chunk, MPI_BYTE, 0, MSG_TAG_CHUNK, comm) == MPI_SUCCESS,
              "MPI_Send");
    }
    tl_err e = {0};
    Tlsweep__Envelope *env = NULL;
    if (msg_link_recv(l, &env, NULL, 30000, &e) < 0)
        CHECK(0, "%s", e.msg);
    CHECK(env && env->body_case == TLSWEEP__ENVELOPE__BODY_STOP, "no Stop within 30 s");
    msg_free(env);
}

int main(int argc, char **argv)
{
    int stalled = argc > 1 && !strcmp(argv[1], "stalled");
    MPI_Init(&argc, &argv);
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    MPI_Comm_rank(comm, &my_rank);
    tl_err e = {0};
    if (msg_set_chunk_limit(64u << 10, &e) < 0)
        CHECK(0, "%s", e.msg);
    msg_link *l = NULL;
    if (msg_link_mpi(&l, comm, &e) < 0) {
        CHECK(0, "%s", e.msg);
    } else {
        CHECK(msg_link_rank(l) == my_rank, "link rank %d", msg_link_rank(l));
        if (msg_link_size(l) < 2)
            CHECK(0, "run me with at least 2 ranks");
        else if (my_rank == 0)
            stalled ? coordinator_stalled(l) : coordinator(l);
        else
            stalled ? worker_stalled(l, comm) : worker(l);
    }
    msg_link_free(l);
    int all = 0;
    MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, comm);
    MPI_Comm_free(&comm);
    MPI_Finalize();
    return all ? 1 : 0;
}
