/* The message layer between real MPI ranks (run by ctest under mpirun -np 3).
 *
 *   msg_pingpong          rank 0 receives and checks every worker's Hello and
 *                         a Heartbeat, sends each a 5 MB feature tensor in
 *                         64 KiB chunks; each worker answers with the tensor's
 *                         FNV-1a checksum (a TrialResult) and a 1 MB tensor of
 *                         its own, so rank 0's msg_poll reassembles chunked
 *                         messages from two ranks at once; rank 0 checks both
 *                         against its own computation, then sends Stop.
 *   msg_pingpong mismatch the last rank says a newer protocol version: rank 0
 *                         gets the one-line error from msg_hello_check, prints
 *                         it, sends Stop{ABORT} to every worker, and all ranks
 *                         finalize and exit 0 (no MPI_Abort).
 * Exit status 0 only when every check held, on every rank. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/msg/msg.h"

#define TENSOR_BYTES (5u << 20)
#define REPLY_BYTES (1u << 20)
#define DIM 256
#define TIMEOUT_S 20.0

static int failures;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "msg_pingpong rank %d: %s:%d: ", my_rank, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
            failures++;                                                               \
        }                                                                             \
    } while (0)

static int my_rank;

/* rows*DIM floats, different for every seed */
static float *make_features(uint64_t seed, size_t rows)
{
    float *f = malloc(rows * DIM * sizeof *f);
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < rows * DIM; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        f[i] = (float)(x >> 40) / (float)(1 << 24) - 0.5f;
    }
    return f;
}

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static Tlsweep__Envelope *features_envelope(uint64_t task_id, uint64_t seed, size_t bytes,
                                            uint64_t *sum)
{
    size_t rows = bytes / sizeof(float) / DIM;
    float *f = make_features(seed, rows);
    uint32_t *ids = malloc(rows * sizeof *ids);
    for (size_t i = 0; i < rows; i++)
        ids[i] = (uint32_t)(seed * 100000 + i);
    *sum = fnv1a(f, rows * DIM * sizeof *f);
    Tlsweep__Envelope *env = msg_new_feature_chunk(task_id, "test", ids, rows, f, DIM, 1);
    free(f);
    free(ids);
    return env;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void send_or_fail(MPI_Comm comm, int dest, Tlsweep__Envelope *env)
{
    tl_err e = {0};
    CHECK(env != NULL, "out of memory building a message");
    if (env && msg_send(comm, dest, env, &e) < 0)
        CHECK(0, "%s", e.msg);
    msg_free(env);
}

static void coordinator(MPI_Comm comm, int size, int mismatch)
{
    tl_err e = {0};
    int bad_hellos = 0;
    /* each worker's first message is its Hello (a Heartbeat follows it) */
    for (int r = 1; r < size; r++) {
        Tlsweep__Envelope *env;
        int from;
        if (msg_recv(comm, r, &env, &from, &e) < 0) {
            CHECK(0, "%s", e.msg);
            continue;
        }
        CHECK(env->from_rank == from, "hello from rank %d says rank %d", from,
              (int)env->from_rank);
        if (msg_hello_check(env, &e) < 0) {
            bad_hellos++;
            fprintf(stderr, "tlsweep: %s\n", e.msg);
            CHECK(mismatch && from == size - 1, "unexpected: %s", e.msg);
            CHECK(strchr(e.msg, '\n') == NULL, "error is more than one line");
            char want[64];
            snprintf(want, sizeof want, "rank %d (host %s,", from, env->hello->host);
            CHECK(strstr(e.msg, want) != NULL, "error does not name '%s': %s", want, e.msg);
            snprintf(want, sizeof want, "protocol version %d, this coordinator speaks %d",
                     TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT + 1,
                     TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
            CHECK(strstr(e.msg, want) != NULL, "error does not say '%s': %s", want, e.msg);
        } else {
            CHECK(env->hello->cores >= 1 && env->hello->memory_bytes > 0 &&
                  *env->hello->host, "hello from rank %d is incomplete", from);
        }
        msg_free(env);
    }
    if (mismatch) {
        CHECK(bad_hellos == 1, "%d bad hellos, expected 1", bad_hellos);
        for (int r = 1; r < size; r++)
            send_or_fail(comm, r, msg_new_stop(TLSWEEP__STOP__REASON__ABORT));
        return;
    }

    /* 5 MB to each worker, through 64 KiB chunks */
    uint64_t *sent = calloc(size, sizeof *sent);
    for (int r = 1; r < size; r++)
        send_or_fail(comm, r, features_envelope(r, r, TENSOR_BYTES, &sent[r]));

    /* answers through the event-loop path: a checksum and a tensor per worker */
    int want = 3 * (size - 1), got_all = 0;
    int *checksums = calloc(size, sizeof *checksums), *tensors = calloc(size, sizeof *tensors);
    int *beats = calloc(size, sizeof *beats);
    double deadline = now() + TIMEOUT_S;
    while (got_all < want && now() < deadline) {
        Tlsweep__Envelope *env;
        int from, got;
        if (msg_poll(comm, &env, &from, &got, &e) < 0) {
            CHECK(0, "%s", e.msg);
            break;
        }
        if (!got) {
            nanosleep(&(struct timespec){0, 200000}, NULL);
            continue;
        }
        got_all++;
        if (env->body_case == TLSWEEP__ENVELOPE__BODY_HEARTBEAT) {
            beats[from]++;
            CHECK(env->heartbeat->task_id == 0, "heartbeat task %" PRIu64,
                  env->heartbeat->task_id);
        } else if (env->body_case == TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT) {
            checksums[from]++;
            char hex[32];
            snprintf(hex, sizeof hex, "%016" PRIx64, sent[from]);
            CHECK(env->trial_result->task_id == (uint64_t)from &&
                  strcmp(env->trial_result->message, hex) == 0,
                  "rank %d: checksum %s for task %" PRIu64 ", sent %s", from,
                  env->trial_result->message, env->trial_result->task_id, hex);
        } else if (env->body_case == TLSWEEP__ENVELOPE__BODY_FEATURE_CHUNK) {
            tensors[from]++;
            uint64_t sum;
            Tlsweep__Envelope *ref = features_envelope(100 + from, 100 + from, REPLY_BYTES, &sum);
            const Tlsweep__Tensor *a = env->feature_chunk->features, *b = ref->feature_chunk->features;
            CHECK(a && a->n_data == b->n_data && a->n_shape == 2 &&
                  a->shape[0] == b->shape[0] && a->shape[1] == DIM &&
                  memcmp(a->data, b->data, a->n_data * sizeof *a->data) == 0 &&
                  env->feature_chunk->n_image_ids == ref->feature_chunk->n_image_ids &&
                  memcmp(env->feature_chunk->image_ids, ref->feature_chunk->image_ids,
                         env->feature_chunk->n_image_ids * sizeof(uint32_t)) == 0,
                  "tensor from rank %d differs from what it should have sent", from);
            msg_free(ref);
        } else {
            CHECK(0, "unexpected %s from rank %d", msg_body_name(env), from);
        }
        msg_free(env);
    }
    CHECK(got_all == want, "%d of %d answers within %.0f s", got_all, want, TIMEOUT_S);
    for (int r = 1; r < size; r++)
        CHECK(checksums[r] == 1 && tensors[r] == 1 && beats[r] == 1,
              "rank %d: %d checksums, %d tensors, %d heartbeats", r, checksums[r], tensors[r],
              beats[r]);
    for (int r = 1; r < size; r++)
        send_or_fail(comm, r, msg_new_stop(TLSWEEP__STOP__REASON__FINISHED));
    free(sent);
    free(checksums);
    free(tensors);
    free(beats);
    if (!failures)
        printf("msg_pingpong: %d workers, %u-byte tensors in %zu-byte chunks: ok\n", size - 1,
               TENSOR_BYTES, msg_chunk_limit());
}

static void worker(MPI_Comm comm, int rank, int size, int mismatch)
{
    tl_err e = {0};
    Tlsweep__Envelope *env;
    if (msg_new_hello(rank, &env, &e) < 0) {
        CHECK(0, "%s", e.msg);
        return;
    }
    if (mismatch && rank == size - 1)
        env->hello->protocol_version = TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT + 1;
    send_or_fail(comm, 0, env);
    if (!mismatch)
        send_or_fail(comm, 0, msg_new_heartbeat(1, 0, 0));

    for (;;) {
        int from;
        if (msg_recv(comm, 0, &env, &from, &e) < 0) {
            CHECK(0, "%s", e.msg);
            return;
        }
        if (env->body_case == TLSWEEP__ENVELOPE__BODY_STOP) {
            int want = mismatch ? TLSWEEP__STOP__REASON__ABORT : TLSWEEP__STOP__REASON__FINISHED;
            CHECK((int)env->stop->reason == want, "stop reason %d, expected %d",
                  (int)env->stop->reason, want);
            msg_free(env);
            return;
        }
        CHECK(!mismatch, "got %s, expected stop", msg_body_name(env));
        if (env->body_case != TLSWEEP__ENVELOPE__BODY_FEATURE_CHUNK) {
            CHECK(0, "unexpected %s", msg_body_name(env));
            msg_free(env);
            continue;
        }
        const Tlsweep__FeatureChunk *c = env->feature_chunk;
        CHECK(c->features && c->features->n_data * sizeof(float) == TENSOR_BYTES,
              "tensor of %zu floats", c->features ? c->features->n_data : 0);

        Tlsweep__TrialResult *r = malloc(sizeof *r);
        tlsweep__trial_result__init(r);
        r->task_id = c->task_id;
        r->status = TLSWEEP__TRIAL_RESULT__STATUS__DONE;
        char hex[32];
        snprintf(hex, sizeof hex, "%016" PRIx64,
                 fnv1a(c->features->data, c->features->n_data * sizeof(float)));
        r->message = strdup(hex);
        Tlsweep__Envelope *reply = malloc(sizeof *reply);
        tlsweep__envelope__init(reply);
        reply->from_rank = rank;
        reply->body_case = TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT;
        reply->trial_result = r;
        send_or_fail(comm, 0, reply);

        uint64_t sum;
        send_or_fail(comm, 0, features_envelope(100 + rank, 100 + rank, REPLY_BYTES, &sum));
        msg_free(env);
    }
}

int main(int argc, char **argv)
{
    int mismatch = argc > 1 && strcmp(argv[1], "mismatch") == 0;
    MPI_Init(&argc, &argv);
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    int size;
    MPI_Comm_rank(comm, &my_rank);
    MPI_Comm_size(comm, &size);
    tl_err e = {0};
    if (msg_set_chunk_limit(64u << 10, &e) < 0)
        CHECK(0, "%s", e.msg);
    if (size < 2) {
        CHECK(0, "run me with at least 2 ranks");
    } else if (my_rank == 0) {
        coordinator(comm, size, mismatch);
    } else {
        worker(comm, my_rank, size, mismatch);
    }
    /* every rank's verdict, so that any failure fails the exit status of rank 0 too */
    int all = 0;
    MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, comm);
    MPI_Comm_free(&comm);
    MPI_Finalize();
    return all ? 1 : 0;
}
