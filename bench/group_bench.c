/* tlsweep-group-bench: what a trial trained by a group of ranks (issue 15)
 * costs on this machine, every figure measured in one run:
 *
 *   mpirun -np 2 --bind-to none build/tlsweep-group-bench > group.jsonl
 *   bench/group_scaling.py group.jsonl
 *
 * For MobileNetV2, ResNet50 and VGG16 (224 px, fine-tune every layer, BN in
 * inference mode, GAP + Dense(10) head, Keras convention) it measures, in
 * --rounds rounds whose sides run in alternating order (reversed every
 * other round):
 *   - the gradient's size: the trainable parameters the net builder makes;
 *   - MPI_Allreduce (SUM, float, in place) of that gradient over the 2 ranks;
 *   - one: a train step of the global batch (32) on rank 0 alone with
 *     --threads threads (default: the cores rank 0 may run on, 2 here with
 *     --bind-to none) while rank 1 sleeps;
 *   - group: the same global batch as a group of the 2 ranks would train it,
 *     1 thread each: each rank steps on its half of the rows, then the
 *     control allreduce (4 doubles) and the gradient allreduce. The step's
 *     optimizer update runs before the sum here (train_step updates), which
 *     moves no cost; the figures are the slower rank's;
 *   - the optimizer: one Adam step over the gradient on both ranks at once
 *     (1 thread each, what the design runs on every member) against an
 *     MPI_Bcast of the weights from rank 0 (what running it on one member
 *     would add).
 * Then small allreduces (latency) from 4 bytes to 4 MiB. Rank 1 waits in a
 * sleeping loop (MPI_Ibarrier + MPI_Test + 1 ms naps) while rank 0 works
 * alone, so it leaves the second core free.
 *
 * Each side has its own net, made with its own thread count. Options:
 * --rounds R (3), --threads T, --batch B (32), --size S (224), --reps K (5
 * gradient allreduces a round, their median), --models a,b,... (all three).
 *
 * Output (rank 0, stdout): JSON lines. The FMA peak of bench/peak.c (rank 0,
 * --threads threads), then {"what": "model", ...} per model with every
 * round's figures and their medians (and the one-rank step's CPU/wall: near
 * T when it had its cores), then {"what": "latency", ...} per small size.
 * Progress goes to stderr. */
#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/peak.h"
#include "common/base/rng.h"
#include "worker/engine/engine.h"
#include "worker/engine/train.h"
#include "worker/net/backbones.h"

#define GB_MAX_ROUNDS 15
#define GB_CLASSES 10
#define GB_CONTROL_DOUBLES 4

enum { SIDE_ALLREDUCE, SIDE_ONE, SIDE_GROUP, SIDE_ADAM, SIDE_BCAST, N_SIDES };
static const char *side_name[N_SIDES] = {"allreduce_s", "one_step_s", "group_step_s", "adam_s",
                                         "bcast_s"};

typedef struct {
    int rank, size;
    int rounds, batch, size_px, threads, reps;
} gb_cfg;

/* what a group step spends, per round: compute (the slower rank's train
 * step), comm (the leader's time in the two allreduces, waits included) */
typedef struct {
    double side[N_SIDES][GB_MAX_ROUNDS];
    double group_compute[GB_MAX_ROUNDS], group_comm[GB_MAX_ROUNDS];
    double one_cpu_per_wall[GB_MAX_ROUNDS];
} gb_rounds;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds (user + system) of this process so far */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[GB_MAX_ROUNDS * 64];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* A barrier that naps instead of spinning: the rank that waits here while
 * the other computes leaves it the core (Open MPI's blocking calls poll). */
static void quiet_barrier(void)
{
    MPI_Request rq;
    int done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &rq);
    const struct timespec nap = {0, 1000000};
    for (MPI_Test(&rq, &done, MPI_STATUS_IGNORE); !done;
         MPI_Test(&rq, &done, MPI_STATUS_IGNORE))
        nanosleep(&nap, NULL);
}

/* the slower rank's seconds */
static double max_over_ranks(double s)
{
    double m;
    MPI_Allreduce(&s, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return m;
}

/* Median seconds of `reps` in-place float allreduces of n floats. */
static double time_allreduce(float *buf, size_t n, int reps)
{
    double t[64];
    if (reps > 64)
        reps = 64;
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now();
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t[r] = max_over_ranks(now() - t0);
    }
    return median(t, reps);
}

static double time_bcast(float *buf, size_t n)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now();
    MPI_Bcast(buf, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    return max_over_ranks(now() - t0);
}

/* the train steps of both sides: one (rank 0 only) and this rank's group member */
typedef struct {
    train_ctx *one, *grp;
    int threads_one;
} gb_sides;

/* One Adam step over n weights on every rank at once, 1 thread each. */
static double time_adam(optim *o, float *w, const float *g, size_t n)
{
    engine_threads_set(1);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now();
    optim_step(o, w, g, 0, n, 1);
    optim_advance(o);
    return max_over_ranks(now() - t0);
}

/* The global batch on rank 0 alone; rank 1 naps. *cpu_per_wall gets rank
 * 0's CPU seconds over the step's wall time: near threads_one when the step
 * had its cores (else another job took them, and the round is suspect). */
static double time_one_step(const gb_cfg *c, const gb_sides *sd, const float *x, const int *y,
                            double *cpu_per_wall)
{
    double dt[2] = {0, 0};
    if (c->rank == 0) {
        engine_threads_set(sd->threads_one);
        double t0 = now(), c0 = cpu_now();
        train_step(sd->one, x, y, c->batch, NULL);
        dt[0] = now() - t0;
        dt[1] = (cpu_now() - c0) / dt[0];
    }
    quiet_barrier();
    MPI_Bcast(dt, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    *cpu_per_wall = dt[1];
    return dt[0];
}

/* The global batch as a group of c->size ranks trains it: rank i steps on
 * rows [i*B/G, (i+1)*B/G) with 1 thread, then the control and the gradient
 * sums. Returns the step's wall time (slower rank); *compute and *comm get
 * the slower rank's train step and the leader's time in the collectives. */
static double time_group_step(const gb_cfg *c, const gb_sides *sd, const float *x, const int *y,
                              float *grad, size_t n, double *compute, double *comm)
{
    size_t img = (size_t)c->size_px * c->size_px * 3;
    int lo = c->rank * c->batch / c->size, hi = (c->rank + 1) * c->batch / c->size;
    double control[GB_CONTROL_DOUBLES] = {0};
    engine_threads_set(1);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now();
    train_step(sd->grp, x + (size_t)lo * img, y + lo, hi - lo, NULL);
    double t1 = now();
    MPI_Allreduce(MPI_IN_PLACE, control, GB_CONTROL_DOUBLES, MPI_DOUBLE, MPI_SUM,
                  MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, grad, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double t2 = now();
    *compute = max_over_ranks(t1 - t0);
    double leader_comm = t2 - t1;
    MPI_Bcast(&leader_comm, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    *comm = leader_comm;
    return max_over_ranks(t2 - t0);
}

/* floats of the trainable parameters: the gradient a group sums */
static size_t trainable_floats(net *n)
{
    size_t k = 0;
    for (int i = 0; i < n->n_params; i++)
        if (!n->params[i].is_state && net_param_trainable(n, &n->params[i]))
            k += n->params[i].n;
    return k;
}

/* The backbone at c->size_px, GAP + Dense(10), every layer trainable,
 * for up to max_batch images. */
static int build_net(net *n, const char *backbone, const gb_cfg *c, int max_batch)
{
    tl_err e = {0};
    net_init(n, c->size_px, c->size_px, 3, NET_KERAS);
    net_backbone_cfg bc = {.alpha = 1.0f};
    int f = net_backbone(n, backbone, &bc, &e);
    net_head_op head[] = {{NET_HEAD_GAP, 0, NET_ACT_NONE, 0}};
    if (f < 0 || net_head(n, f, head, 1, GB_CLASSES, &e) < 0 ||
        net_finalize(n, max_batch, 1, &e)) {
        fprintf(stderr, "tlsweep-group-bench: %s: %s\n", backbone, e.msg);
        return -1;
    }
    return 0;
}

/* the same random batch on every rank (seeded): each takes its rows */
static void fill_batch(float *x, int *y, size_t floats, int batch)
{
    rng_state r;
    rng_init(&r, 3);
    for (size_t i = 0; i < floats; i++)
        x[i] = rng_uniform(&r) * 2 - 1;
    for (int i = 0; i < batch; i++)
        y[i] = i % GB_CLASSES;
}

static void print_rounds(const char *key, const double *v, int n)
{
    printf(", \"%s\": [", key);
    for (int r = 0; r < n; r++)
        printf("%s%.9g", r ? ", " : "", v[r]);
    printf("], \"%s_median\": %.9g", key, median(v, n));
}

static void print_model(const gb_cfg *c, const char *backbone, size_t floats, const gb_rounds *g)
{
    if (c->rank != 0)
        return;
    printf("{\"what\": \"model\", \"backbone\": \"%s\", \"size\": %d, \"batch\": %d, "
           "\"ranks\": %d, \"threads_one\": %d, \"trainable_params\": %zu, "
           "\"gradient_bytes\": %zu",
           backbone, c->size_px, c->batch, c->size, c->threads, floats, floats * sizeof(float));
    for (int s = 0; s < N_SIDES; s++)
        print_rounds(side_name[s], g->side[s], c->rounds);
    print_rounds("group_compute_s", g->group_compute, c->rounds);
    print_rounds("group_comm_s", g->group_comm, c->rounds);
    print_rounds("one_cpu_per_wall", g->one_cpu_per_wall, c->rounds);
    printf("}\n");
    fflush(stdout);
}

/* One round's sides for one model, in order (reversed when flip). */
static void run_round(const gb_cfg *c, const gb_sides *sd, const float *x, const int *y, float *grad,
                      float *w, optim *o, size_t n, gb_rounds *g, int r)
{
    for (int k = 0; k < N_SIDES; k++) {
        int s = r % 2 ? N_SIDES - 1 - k : k;
        double *v = &g->side[s][r];
        switch (s) {
        case SIDE_ALLREDUCE: *v = time_allreduce(grad, n, c->reps); break;
        case SIDE_ONE: *v = time_one_step(c, sd, x, y, &g->one_cpu_per_wall[r]); break;
        case SIDE_GROUP:
            *v = time_group_step(c, sd, x, y, grad, n, &g->group_compute[r], &g->group_comm[r]);
            break;
        case SIDE_ADAM: *v = time_adam(o, w, grad, n); break;
        case SIDE_BCAST: *v = time_bcast(w, n); break;
        }
    }
}

/* A net and its train step for one side: threads set before the net is
 * finalized (oneDNN decides a primitive's split over threads when it is
 * made) and again before every step of that side. */
typedef struct {
    net n;
    train_ctx t;
    int threads, ok;
} gb_side;

static void side_open(gb_side *s, const char *backbone, const gb_cfg *c, int threads, int max_batch)
{
    tl_err e = {0};
    optim_cfg oc = optim_cfg_default(OPTIM_ADAM);
    s->threads = threads;
    engine_threads_set(threads);
    s->ok = build_net(&s->n, backbone, c, max_batch) == 0;
    if (s->ok && train_init(&s->t, &s->n, &oc, 1, &e)) {
        fprintf(stderr, "tlsweep-group-bench: %s: %s\n", backbone, e.msg);
        net_free(&s->n);
        s->ok = 0;
    }
}

static void side_close(gb_side *s)
{
    if (!s->ok)
        return;
    train_free(&s->t);
    net_free(&s->n);
}

/* Builds the model's sides (rank 0: the whole batch on c->threads threads
 * and its share on 1; the others: their share), warms every side once,
 * then the rounds. */
static int bench_model(const gb_cfg *c, const char *backbone)
{
    gb_side one = {.ok = 1}, grp = {.ok = 1};
    if (c->rank == 0)
        side_open(&one, backbone, c, c->threads, c->batch);
    side_open(&grp, backbone, c, 1, (c->batch + c->size - 1) / c->size);
    int ok = one.ok && grp.ok, all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        side_close(&grp);
        if (c->rank == 0)
            side_close(&one);
        return -1;
    }
    size_t floats = trainable_floats(&grp.n), img = (size_t)c->size_px * c->size_px * 3;
    float *x = malloc((size_t)c->batch * img * sizeof(float));
    int *y = malloc((size_t)c->batch * sizeof(int));
    float *grad = calloc(floats, sizeof(float)), *w = calloc(floats, sizeof(float));
    gb_rounds *g = calloc(1, sizeof *g);
    tl_err e = {0};
    optim o;
    optim_cfg oc = optim_cfg_default(OPTIM_ADAM);
    if (!x || !y || !grad || !w || !g || optim_init(&o, &oc, floats, &e)) {
        fprintf(stderr, "tlsweep-group-bench: %s: %s\n", backbone, e.msg[0] ? e.msg : "out of memory");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    fill_batch(x, y, (size_t)c->batch * img, c->batch);
    gb_sides sd = {c->rank == 0 ? &one.t : NULL, &grp.t, c->threads};
    double sink[3];
    fprintf(stderr, "[rank %d] %s: %zu trainable parameters, warming up\n", c->rank, backbone, floats);
    time_one_step(c, &sd, x, y, &sink[2]);
    time_group_step(c, &sd, x, y, grad, floats, &sink[0], &sink[1]);
    time_adam(&o, w, grad, floats);
    time_bcast(w, floats);
    for (int r = 0; r < c->rounds; r++) {
        run_round(c, &sd, x, y, grad, w, &o, floats, g, r);
        if (c->rank == 0)
            fprintf(stderr, "%s round %d: one %.3f s (cpu/wall %.2f), group %.3f s (comm %.3f s)\n",
                    backbone, r + 1, g->side[SIDE_ONE][r], g->one_cpu_per_wall[r],
                    g->side[SIDE_GROUP][r], g->group_comm[r]);
    }
    print_model(c, backbone, floats, g);
    free(g);
    optim_free(&o);
    side_close(&grp);
    if (c->rank == 0)
        side_close(&one);
    free(x);
    free(y);
    free(grad);
    free(w);
    return 0;
}

/* Small allreduces: the per-step control and the latency term of the cost
 * model. Sizes alternate in order between rounds too. */
static void bench_latency(const gb_cfg *c)
{
    static const size_t bytes[] = {4, 32, 1024, 32768, 1048576, 4194304};
    enum { N_SIZES = sizeof bytes / sizeof bytes[0] };
    double t[N_SIZES][GB_MAX_ROUNDS];
    float *buf = calloc(bytes[N_SIZES - 1] / sizeof(float), sizeof(float));
    for (int r = 0; r < c->rounds; r++)
        for (int k = 0; k < N_SIZES; k++) {
            int s = r % 2 ? N_SIZES - 1 - k : k;
            size_t n = bytes[s] / sizeof(float);
            time_allreduce(buf, n, 8); /* warm this size's path */
            t[s][r] = time_allreduce(buf, n, 64);
        }
    for (int s = 0; s < N_SIZES && c->rank == 0; s++) {
        printf("{\"what\": \"latency\", \"bytes\": %zu, \"ranks\": %d", bytes[s], c->size);
        print_rounds("allreduce_s", t[s], c->rounds);
        printf("}\n");
    }
    fflush(stdout);
    free(buf);
}

static void usage(void)
{
    fprintf(stderr, "usage: mpirun -np 2 --bind-to none tlsweep-group-bench [--rounds R] "
                    "[--threads T] [--batch B] [--size S] [--reps K] [--models a,b,...]\n");
}

static int parse_args(int argc, char **argv, gb_cfg *c, char *models, size_t cap)
{
    static const struct option opts[] = {
        {"rounds", required_argument, 0, 'r'}, {"threads", required_argument, 0, 't'},
        {"batch", required_argument, 0, 'B'},  {"size", required_argument, 0, 's'},
        {"reps", required_argument, 0, 'k'},   {"models", required_argument, 0, 'm'},
        {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "r:t:B:s:k:m:", opts, NULL)) != -1) {
        switch (o) {
        case 'r': c->rounds = atoi(optarg); break;
        case 't': c->threads = atoi(optarg); break;
        case 'B': c->batch = atoi(optarg); break;
        case 's': c->size_px = atoi(optarg); break;
        case 'k': c->reps = atoi(optarg); break;
        case 'm': snprintf(models, cap, "%s", optarg); break;
        default: return -1;
        }
    }
    if (optind != argc || c->rounds < 1 || c->rounds > GB_MAX_ROUNDS || c->batch < c->size ||
        c->size_px < 32 || c->reps < 1 || c->reps > 64)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    engine_reexec_tuned(argv);
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    gb_cfg c = {.rounds = 3, .batch = 32, .size_px = 224, .threads = 0, .reps = 5};
    MPI_Comm_rank(MPI_COMM_WORLD, &c.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c.size);
    char models[256] = "mobilenet_v2,resnet50,vgg16";
    if (parse_args(argc, argv, &c, models, sizeof models) || c.size < 2) {
        if (c.rank == 0)
            usage();
        MPI_Finalize();
        return 2;
    }
    if (c.threads < 1)
        c.threads = engine_threads_default();
    MPI_Bcast(&c.threads, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (c.rank == 0)
        peak_main(c.threads, 0);
    fflush(stdout);
    quiet_barrier();
    int rc = 0;
    for (char *save = NULL, *m = strtok_r(models, ",", &save); m && !rc;
         m = strtok_r(NULL, ",", &save))
        rc = bench_model(&c, m);
    if (!rc)
        bench_latency(&c);
    MPI_Finalize();
    return rc ? 1 : 0;
}
