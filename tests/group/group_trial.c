/* One trial trained by a group over every rank of the run (trial_cfg.group),
 * each rank calling trial_run itself: the tiny MobileNetV2 fine-tuned with a
 * dense + dropout head, augmentation on, a batch of 7 that does not divide
 * the train set, SGD. Rank 0 prints one line per epoch, which group_trial.sh
 * compares across group sizes; the program itself checks what one run can
 * (the members' weights identical, the protocol's outcomes).
 *
 *   group_trial DIR train EPOCHS            the trial; "identical 1" when every
 *                                           member ends with the same weights
 *   group_trial DIR save EPOCHS FILE        the same, the last snapshot into FILE
 *   group_trial DIR resume EPOCHS FILE      continues FILE's snapshot
 *   group_trial DIR stop STEP               the last rank stops at STEP of epoch 1
 *   group_trial DIR yield STEP              the leader wishes a yield at STEP of
 *                                           epoch 1 (of 3 epochs)
 *   group_trial DIR fail                    the last rank fails before training
 *   group_trial DIR fail_step STEP          the last rank fails after STEP batches
 *                                           (it leaves the group as a failing
 *                                           member does: one control, its error)
 *   group_trial DIR protocol STEP           group_* alone: the last rank fails at
 *                                           STEP while the others sum gradients
 *   group_trial DIR sum FLOATS REPS         seconds of one control + gradient sum of
 *                                           FLOATS floats over all ranks (DIR unused)
 *   group_trial DIR bench WEIGHTS SIZE BATCH THREADS
 *                                           one epoch fine-tuning WEIGHTS on DIR's
 *                                           class folders (a measurement, no test)
 *
 * DIR holds tiny.tlm and fm/train (tests/lib/tiny.sh's tiny_data). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/hash.h"
#include "worker/engine/engine.h"
#include "worker/group/group.h"
#include "worker/trial/trial.h"

static int rank, size;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL rank %d: ", rank);                         \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
            MPI_Abort(MPI_COMM_WORLD, 1);                                    \
        }                                                                    \
    } while (0)

/* what the callbacks see */
static const char *mode;
static int at_step;
static uint64_t last_hash;
static const char *save_path;

static void save_snapshot(const trial_snapshot *s)
{
    FILE *f = fopen(save_path, "wb");
    CHECK(f, "cannot write %s", save_path);
    int head[2] = {s->epoch, s->best_epoch};
    size_t sizes[2] = {s->n_weights, s->n_optim};
    fwrite(head, sizeof head, 1, f);
    fwrite(sizes, sizeof sizes, 1, f);
    fwrite(&s->best_value, sizeof s->best_value, 1, f);
    fwrite(s->weights, sizeof(float), s->n_weights, f);
    fwrite(s->best, sizeof(float), s->n_weights, f);
    fwrite(s->optim_state, sizeof(float), s->n_optim, f);
    fwrite(s->epochs, sizeof *s->epochs, (size_t)s->epoch, f);
    CHECK(fclose(f) == 0, "cannot write %s", save_path);
}

static float *loaded[3];
static trial_epoch *loaded_epochs;

static void load_snapshot(const char *path, trial_snapshot *s)
{
    FILE *f = fopen(path, "rb");
    CHECK(f, "cannot read %s", path);
    int head[2];
    size_t sizes[2];
    memset(s, 0, sizeof *s);
    CHECK(fread(head, sizeof head, 1, f) == 1 && fread(sizes, sizeof sizes, 1, f) == 1 &&
              fread(&s->best_value, sizeof s->best_value, 1, f) == 1,
          "%s: short", path);
    s->epoch = head[0];
    s->best_epoch = head[1];
    s->n_weights = sizes[0];
    s->n_optim = sizes[1];
    size_t n[3] = {sizes[0], sizes[0], sizes[1]};
    for (int i = 0; i < 3; i++) {
        loaded[i] = malloc(n[i] * sizeof(float));
        CHECK(loaded[i] && fread(loaded[i], sizeof(float), n[i], f) == n[i], "%s: short", path);
    }
    loaded_epochs = malloc((size_t)s->epoch * sizeof *loaded_epochs);
    CHECK(fread(loaded_epochs, sizeof *loaded_epochs, (size_t)s->epoch, f) == (size_t)s->epoch,
          "%s: short", path);
    fclose(f);
    s->weights = loaded[0];
    s->best = loaded[1];
    s->optim_state = loaded[2];
    s->epochs = loaded_epochs;
}

static int epoch_done(void *ctx, const trial_snapshot *s)
{
    (void)ctx;
    last_hash = tl_fnv1a_bytes(TL_FNV1A_OFFSET, s->weights, s->n_weights * sizeof(float));
    if (save_path && rank == 0)
        save_snapshot(s);
    if (!strcmp(mode, "yield"))
        CHECK(s->yield == (s->epoch == 1), "epoch %d: snapshot yield %d", s->epoch, s->yield);
    return 0;
}

static int step_done(void *ctx, int epoch, size_t step, size_t steps, double loss)
{
    (void)ctx, (void)steps, (void)loss;
    if (epoch != 1 || (int)step != at_step)
        return 0;
    if (!strcmp(mode, "stop") && rank == size - 1)
        return 1;
    if (!strcmp(mode, "yield") && rank == 0)
        return TRIAL_YIELD;
    return 0;
}

static group *the_group;
static int batches;

/* fail_step: after STEP batches the last rank leaves with an error, as a
 * member whose loader failed would; its next control finds the group over */
static void alive(void *ctx)
{
    (void)ctx;
    if (!strcmp(mode, "fail_step") && rank == size - 1 && ++batches == at_step)
        group_leave(the_group, GROUP_ERROR);
}

static void base_cfg(trial_cfg *c, const char *dir, int epochs, model_head_op **head)
{
    static char weights[4096], train[4096];
    snprintf(weights, sizeof weights, "%s/tiny.tlm", dir);
    snprintf(train, sizeof train, "%s/fm/train", dir);
    trial_cfg_default(c);
    c->weights = !strcmp(mode, "fail") && rank == size - 1 && size > 1 ? "/nonexistent.tlm"
                                                                        : weights;
    c->train_dir = train;
    c->validation_split = 0.25;
    c->size = 32;
    c->mode = MODEL_FINE_TUNE;
    c->batch = 7;
    c->epochs = epochs;
    /* SGD: Adam turns the float noise of near-zero gradients into whole
     * steps of the learning rate, so on this chaotic random backbone its
     * runs part after the first epoch by more than the sums' rounding */
    c->optim = optim_cfg_default(OPTIM_SGD);
    c->optim.learning_rate = 0.01;
    c->seed = 5;
    c->augment.horizontal_flip = 1;
    c->loader_threads = 1;
    tl_err e;
    CHECK(trial_parse_head("gap,dense16,dropout0.3", head, &c->n_head, &e) == 0, "%s", e.msg);
    c->head = *head;
    c->epoch_done = epoch_done;
    c->step_done = step_done;
    c->alive = alive;
}

/* One fine-tune epoch of a real backbone, for measuring a group's cost. */
static void bench_cfg(trial_cfg *c, char **argv)
{
    trial_cfg_default(c);
    c->weights = argv[3];
    c->train_dir = argv[1];
    c->size = atoi(argv[4]);
    c->batch = atoi(argv[5]);
    c->mode = MODEL_FINE_TUNE;
    c->epochs = 1;
    c->optim.learning_rate = 1e-4;
    c->loader_threads = 1;
    engine_threads_set(atoi(argv[6]));
}

static void print_epochs(const trial_result *r, double comm, double secs)
{
    if (rank != 0)
        return;
    for (int i = 0; i < r->n_epochs; i++) {
        const trial_epoch *x = &r->epochs[i];
        printf("epoch %d loss %.9g accuracy %.9g val_loss %.9g val_accuracy %.9g\n", x->epoch,
               x->loss, x->accuracy, x->val_loss, x->val_accuracy);
    }
    printf("ranks %d seconds %.3f comm_seconds %.3f comm_share %.4f\n", size, secs, comm,
           secs > 0 ? comm / secs : 0);
}

/* Every rank's h the same? */
static int all_same(uint64_t h)
{
    uint64_t v[2] = {h, ~h};
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    int same = v[0] == h && v[1] == ~h, all;
    MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all;
}

static group *world_group(void)
{
    if (size == 1)
        return NULL;
    int *ranks = malloc((size_t)size * sizeof *ranks);
    for (int i = 0; i < size; i++)
        ranks[i] = i;
    group *g;
    tl_err e;
    CHECK(group_open(&g, MPI_COMM_WORLD, ranks, size, 77, &e) == 0, "%s", e.msg);
    free(ranks);
    return g;
}

static int run_trial(const char *dir, int epochs, const char *resume, char **bench)
{
    trial_cfg c;
    model_head_op *head = NULL;
    if (bench)
        bench_cfg(&c, bench);
    else
        base_cfg(&c, dir, epochs, &head);
    trial_snapshot sn;
    if (resume) {
        load_snapshot(resume, &sn);
        c.resume = &sn;
    }
    c.group = the_group = world_group();
    trial_result r;
    tl_err e = {0};
    double t0 = MPI_Wtime();
    int rc = trial_run(&c, &r, &e);
    double secs = MPI_Wtime() - t0;
    double comm = 0;
    for (int i = 0; i < r.n_epochs; i++)
        comm += r.epochs[i].comm_seconds;
    if (bench) {
        CHECK(rc == 0, "trial: %s", e.msg);
        print_epochs(&r, comm, secs);
        if (rank == 0)
            printf("images/s %.2f (training part)\n", r.epochs[0].images_per_s);
    } else if (!strcmp(mode, "train") || !strcmp(mode, "save") || !strcmp(mode, "resume")) {
        CHECK(rc == 0, "trial: %s", e.msg);
        print_epochs(&r, comm, secs);
        int same = all_same(last_hash);
        if (rank == 0)
            printf("identical %d\n", same);
    } else if (!strcmp(mode, "stop")) {
        /* every member stops at the same step: no epoch recorded */
        CHECK(rc == TL_ESTOPPED && r.n_epochs == 0 && !r.yielded, "stop: rc %d, %d epochs: %s",
              rc, r.n_epochs, e.msg);
        if (rank == 0)
            printf("stopped %d\n", size);
    } else if (!strcmp(mode, "yield")) {
        CHECK(rc == TL_ESTOPPED && r.n_epochs == 1 && r.yielded, "yield: rc %d, %d epochs: %s",
              rc, r.n_epochs, e.msg);
        CHECK(strstr(e.msg, "yielded after 1 epoch"), "yield: %s", e.msg);
        if (rank == 0)
            printf("yielded %d\n", size);
    } else if (!strcmp(mode, "fail") || !strcmp(mode, "fail_step")) {
        CHECK(rc != 0 && rc != TL_ESTOPPED && r.n_epochs == 0, "%s: rc %d, %d epochs", mode,
              rc, r.n_epochs);
        if (rank < size - 1) {
            char want[64];
            snprintf(want, sizeof want, "rank %d of the group failed", size - 1);
            CHECK(strstr(e.msg, want), "fail: '%s' lacks '%s'", e.msg, want);
        }
        if (rank == 0)
            printf("failed %d\n", size);
    }
    trial_result_free(&r);
    group_close(c.group);
    free(head);
    return 0;
}

/* The rule at the level of group_*: the last rank fails at step k, the
 * others are about to sum; they see the error in their control and leave. */
static int run_protocol(int k)
{
    group *g = world_group();
    CHECK(g, "protocol: needs 2 ranks or more");
    float grad[1000];
    tl_err e = {0};
    int rc = 0, step;
    for (step = 0; step < 10; step++) {
        if (rank == size - 1 && step == k) {
            group_leave(g, GROUP_ERROR);
            rc = TL_EINVAL;
            break;
        }
        for (int i = 0; i < 1000; i++)
            grad[i] = (float)(rank + 1);
        if ((rc = group_control(g, NULL, 0, &e)) || (rc = group_sum(g, grad, 1000, &e)))
            break;
        CHECK(grad[999] == (float)(size * (size + 1) / 2), "sum %g", grad[999]);
    }
    CHECK(step == k && rc != 0, "protocol: left at step %d (rc %d)", step, rc);
    CHECK(group_over(g), "protocol: the group is not over");
    if (rank < size - 1) {
        char want[64];
        snprintf(want, sizeof want, "rank %d of the group failed", size - 1);
        CHECK(strstr(e.msg, want), "protocol: '%s'", e.msg);
    }
    CHECK(group_sum(g, grad, 1000, &e) == TL_EINVAL, "a payload after the end ran");
    group_close(g);
    if (rank == 0)
        printf("protocol %d\n", size);
    return 0;
}

/* The cost of one step's collectives for a gradient span of n floats. */
static int run_sum(size_t n, int reps)
{
    group *g = world_group();
    CHECK(g, "sum: needs 2 ranks or more");
    float *x = calloc(n, sizeof *x);
    CHECK(x, "sum: out of memory");
    tl_err e;
    double t0 = 0;
    for (int i = 0; i <= reps; i++) {
        if (i == 1) { /* the first one warms the transport up */
            MPI_Barrier(MPI_COMM_WORLD);
            t0 = group_seconds(g);
        }
        CHECK(group_control(g, NULL, 0, &e) == 0 && group_sum(g, x, n, &e) == 0, "%s", e.msg);
    }
    double per = reps > 0 ? (group_seconds(g) - t0) / reps : 0;
    if (rank == 0)
        printf("ranks %d floats %zu seconds_per_step %.6f (%.2f GB/s of the span)\n", size, n,
               per, per > 0 ? n * 4.0 / per / 1e9 : 0);
    free(x);
    group_close(g);
    return 0;
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(argc >= 3, "usage: group_trial DIR MODE [N] [FILE]");
    engine_threads_set(1);
    mode = argv[2];
    int n = argc > 3 ? atoi(argv[3]) : 0;
    if (!strcmp(mode, "protocol"))
        run_protocol(n);
    else if (!strcmp(mode, "sum"))
        run_sum((size_t)atol(argv[3]), argc > 4 ? atoi(argv[4]) : 10);
    else if (!strcmp(mode, "save") || !strcmp(mode, "resume")) {
        CHECK(argc == 5, "%s: EPOCHS FILE", mode);
        save_path = !strcmp(mode, "save") ? argv[4] : NULL;
        run_trial(argv[1], n, !strcmp(mode, "resume") ? argv[4] : NULL, NULL);
    } else if (!strcmp(mode, "stop") || !strcmp(mode, "yield") ||
               !strcmp(mode, "fail_step")) {
        at_step = n;
        run_trial(argv[1], 3, NULL, NULL);
    } else if (!strcmp(mode, "fail") || !strcmp(mode, "train")) {
        run_trial(argv[1], !strcmp(mode, "fail") ? 2 : n, NULL, NULL);
    } else if (!strcmp(mode, "bench")) {
        CHECK(argc == 7, "bench: WEIGHTS SIZE BATCH THREADS");
        run_trial(argv[1], 1, NULL, argv);
    } else {
        CHECK(0, "unknown mode %s", mode);
    }
    fflush(stdout);
    for (int i = 0; i < 3; i++)
        free(loaded[i]);
    free(loaded_epochs);
    MPI_Finalize();
    return 0;
}
