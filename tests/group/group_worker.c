/* The worker's side of a group (worker/worker.c): rank 0 plays the
 * coordinator, ranks 1 and 2 run worker_main and get one TRAIN_TRIAL each
 * with group_ranks {1, 2}. Only the leader (rank 1) sends EpochReports
 * (with the ranks and comm_seconds), Progress, Checkpoints and the model;
 * both answer a TrialResult with the ranks. A Stop YIELD to the leader ends
 * both members' tasks after the epoch, its Checkpoint sent although
 * checkpoint_seconds is far off, both answering YIELDED.
 *
 *   mpirun -np 3 group_worker SWEEP.yaml   (a sweep of one fine-tune trial,
 *                                           2 epochs, checkpoint_seconds 1000) */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/data/data.h"
#include "common/msg/msg.h"
#include "common/msg/msg_link.h"
#include "common/sweep/sweep.h"
#include "worker/worker.h"

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL: ");                                       \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
            MPI_Abort(MPI_COMM_WORLD, 1);                                    \
        }                                                                    \
    } while (0)

static msg_link *link_;
static const int32_t members[2] = {1, 2};

static void send_to(int dest, Tlsweep__Envelope *env)
{
    tl_err e;
    CHECK(msg_link_send(link_, dest, env, &e) == 0, "send: %s", e.msg);
}

static Tlsweep__Envelope *recv_one(int *from)
{
    Tlsweep__Envelope *env = NULL;
    tl_err e;
    CHECK(msg_link_recv(link_, &env, from, 120000, &e) == 0 && env, "nothing from the workers");
    CHECK(env->body_case != TLSWEEP__ENVELOPE__BODY_ERROR || !env->error->fatal,
          "rank %d: %s", *from, env->error->message);
    return env;
}

static void setup(const char *path, const sweep *s, const char *text, size_t len,
                  const data_index *ix)
{
    (void)s;
    Tlsweep__Setup su = TLSWEEP__SETUP__INIT;
    su.sweep_file = (char *)path;
    su.sweep_text.data = (uint8_t *)text;
    su.sweep_text.len = len;
    su.threads = 1;
    su.index_items = ix->n_items;
    su.index_fingerprint = data_index_fingerprint(ix);
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_SETUP;
    env.setup = &su;
    for (int r = 1; r <= 2; r++)
        send_to(r, &env);
}

static void send_tasks(const sweep *s, uint64_t first_id)
{
    const sweep_trial *t = &s->trials[0];
    for (int r = 1; r <= 2; r++) {
        Tlsweep__Task task = TLSWEEP__TASK__INIT;
        task.task_id = first_id + (uint64_t)r;
        task.kind = TLSWEEP__TASK__KIND__TRAIN_TRIAL;
        task.trial_index = 0;
        task.trial_key = t->key;
        task.trial_id = (char *)t->id;
        task.n_group_ranks = 2;
        task.group_ranks = (int32_t *)members;
        task.group_id = first_id;
        Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
        env.body_case = TLSWEEP__ENVELOPE__BODY_TASK;
        env.task = &task;
        send_to(r, &env);
    }
}

static void stop(int r, Tlsweep__Stop__Reason reason)
{
    Tlsweep__Stop st = TLSWEEP__STOP__INIT;
    st.reason = reason;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_STOP;
    env.stop = &st;
    send_to(r, &env);
}

static int ranks_ok(const int32_t *r, size_t n)
{
    return n == 2 && r[0] == 1 && r[1] == 2;
}

/* Receives until both members answered; checks who sent what. Returns the
 * last epoch checkpointed (0: none). */
static int collect(int want_status, int want_epochs)
{
    int results = 0, reports = 0, ckpt_epoch = 0;
    while (results < 2) {
        int from = -1;
        Tlsweep__Envelope *env = recv_one(&from);
        switch (env->body_case) {
        case TLSWEEP__ENVELOPE__BODY_EPOCH_REPORT: {
            const Tlsweep__EpochReport *r = env->epoch_report;
            CHECK(from == 1, "an EpochReport from rank %d", from);
            CHECK(ranks_ok(r->ranks, r->n_ranks), "EpochReport %u: ranks", r->epoch);
            CHECK(r->comm_seconds > 0 && r->comm_seconds < r->seconds + 60,
                  "EpochReport %u: comm_seconds %g", r->epoch, r->comm_seconds);
            reports++;
            break;
        }
        case TLSWEEP__ENVELOPE__BODY_CHECKPOINT:
            CHECK(from == 1, "a Checkpoint from rank %d", from);
            ckpt_epoch = (int)env->checkpoint->epoch;
            break;
        case TLSWEEP__ENVELOPE__BODY_PROGRESS:
            CHECK(from == 1, "Progress from rank %d", from);
            break;
        case TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT: {
            const Tlsweep__TrialResult *r = env->trial_result;
            CHECK((int)r->status == want_status, "rank %d: status %d, not %d: %s", from,
                  (int)r->status, want_status, r->message);
            CHECK(ranks_ok(r->ranks, r->n_ranks), "rank %d: TrialResult ranks", from);
            CHECK((int)r->epochs_done == want_epochs, "rank %d: %u epochs", from, r->epochs_done);
            int done = want_status == TLSWEEP__TRIAL_RESULT__STATUS__DONE;
            CHECK((r->model.len > 0) == (done && from == 1), "rank %d: model of %zu bytes", from,
                  r->model.len);
            results++;
            break;
        }
        default:
            break;
        }
        msg_free(env);
    }
    CHECK(reports == want_epochs, "%d EpochReports, not %d", reports, want_epochs);
    return ckpt_epoch;
}

static void coordinator(const char *path)
{
    sweep s;
    char *text;
    size_t len;
    tl_err e;
    CHECK(sweep_load_text(&s, path, &text, &len, &e) == 0, "%s", e.msg);
    data_index ix;
    data_index_cfg dc = {s.train_dir, s.val_dir, s.test_dir,
                         s.val_dir ? 0 : s.validation_split, s.data_seed};
    CHECK(data_index_build(&ix, &dc, &e) == 0, "%s", e.msg);
    CHECK(sweep_bind_data(&s, data_index_fingerprint(&ix), &e) == 0, "%s", e.msg);
    for (int hellos = 0; hellos < 2;) {
        int from;
        Tlsweep__Envelope *env = recv_one(&from);
        hellos += env->body_case == TLSWEEP__ENVELOPE__BODY_HELLO;
        msg_free(env);
    }
    setup(path, &s, text, len, &ix);
    int epochs = s.trials[0].epochs;
    send_tasks(&s, 100);
    CHECK(collect(TLSWEEP__TRIAL_RESULT__STATUS__DONE, epochs) == 0,
          "a checkpoint before checkpoint_seconds");
    printf("done: %d epochs\n", epochs);
    send_tasks(&s, 200);
    stop(1, TLSWEEP__STOP__REASON__YIELD);
    CHECK(collect(TLSWEEP__TRIAL_RESULT__STATUS__YIELDED, 1) == 1,
          "the yielding epoch was not checkpointed");
    printf("yielded after 1 epoch\n");
    for (int r = 1; r <= 2; r++)
        stop(r, TLSWEEP__STOP__REASON__FINISHED);
    data_index_free(&ix);
    sweep_free(&s);
    free(text);
}

int main(int argc, char **argv)
{
    int provided, rank, size;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(size == 3 && argc == 2, "usage: mpirun -np 3 group_worker SWEEP.yaml");
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    tl_err e;
    CHECK(msg_link_mpi(&link_, comm, &e) == 0, "%s", e.msg);
    if (rank == 0) {
        coordinator(argv[1]);
    } else {
        worker_opts o = {.threads = 1, .loader_threads = 1, .world = MPI_COMM_WORLD,
                         .have_world = 1};
        CHECK(worker_main(link_, &o, &e) == 0, "rank %d: %s", rank, e.msg);
    }
    msg_link_free(link_);
    MPI_Comm_free(&comm);
    fflush(stdout);
    MPI_Finalize();
    return 0;
}
