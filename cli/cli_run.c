/* `tlsweep run SWEEP.yaml`: the sweep. Under mpirun (or srun) rank 0
 * coordinates and every other rank works; started alone, the coordinator
 * and one worker thread share the process. `--dry-run` only prints the
 * trial table and the estimated backbone work. */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "common/data/data.h"
#include "common/msg/msg.h"
#include "common/msg/msg_link.h"
#include "common/sweep/search.h"
#include "common/sweep/sweep.h"
#include "common/sweep/sweep_plan.h"
#include "cli/cli.h"
#include "coordinator/coord.h"
#include "worker/engine/engine.h"
#include "worker/worker.h"

/* The columns of the axes the file gives among image_size, augment and
 * head (or its parts), last since a head is long: their titles for t NULL. */
static void print_axes(const sweep *s, const sweep_trial *t)
{
    if (s->n_image_sizes && t)
        printf("  %4d", t->image_size);
    else if (s->n_image_sizes)
        printf("  %4s", "size");
    if (s->n_augments) {
        char aug[160];
        if (t)
            sweep_augment_str(s, t, aug, sizeof aug);
        printf("  %-8s", t ? aug : "augment");
    }
    if (s->n_heads || s->n_dense_units || s->n_dropouts) {
        sweep_head_op ops[SWEEP_MAX_HEAD_OPS];
        char head[256] = "head";
        if (t)
            sweep_head_str(ops, sweep_trial_head(s, t, ops), head, sizeof head);
        printf("  %s", head);
    }
}

static void print_table(const sweep *s)
{
    int w = 2;
    for (size_t i = 0; i < s->n_trials; i++) {
        int l = (int)strlen(s->trials[i].id);
        w = l > w ? l : w;
    }
    printf("%s: %zu trials (%s)\n", s->name, s->n_trials, s->file);
    if (sweep_draws(s))
        printf("search: %s, %d configurations drawn with seed %llu\n",
               sweep_search_name(s->search), s->search_trials,
               (unsigned long long)s->search_seed);
    if (s->early_stop.enabled)
        printf("early_stopping: %s, patience %d, min_delta %g (the fine-tune stage of a "
               "two-stage trial)\n", sweep_metric_name(s->early_stop.monitor),
               s->early_stop.patience, s->early_stop.min_delta);
    if (s->ranks_per_trial == SWEEP_RANKS_AUTO)
        printf("ranks_per_trial: auto (under mpirun, idle workers join the trials that have "
               "epochs left)\n");
    else
        printf("ranks_per_trial: %d (under mpirun, the ranks that train a fine-tune trial)\n",
               s->ranks_per_trial);
    if (s->engine_set)
        printf("engine: %s, for every trial\n", sweep_engine_name(s->engine));
    /* the precision column when the file gives grid.precision */
    int prec = s->n_precisions > 0;
    /* and label_smoothing when it gives grid.label_smoothing */
    int ls = s->n_label_smoothings > 0;
    int axes = s->n_image_sizes || s->n_augments || s->n_heads || s->n_dense_units || s->n_dropouts;
    /* drawn learning rates have 6 significant digits; the grid's are as given */
    int lw = sweep_draws(s) ? 11 : 8;
    int lp = sweep_draws(s) ? 6 : 2;
    printf("\n%4s  %-*s  %-12s  %-20s  %-*s  %-9s  %5s  %6s%s%s", "#", w, "id", "backbone", "mode",
           lw, "lr", "optimizer", "batch", "epochs", prec ? "  precision" : "",
           ls ? "  label_smoothing" : "");
    print_axes(s, NULL);
    printf("\n");
    for (size_t i = 0; i < s->n_trials; i++) {
        const sweep_trial *t = &s->trials[i];
        char mode[64];
        sweep_mode_str(&t->mode, mode, sizeof mode);
        printf("%4zu  %-*s  %-12s  %-20s  %-*.*g  %-9s  %5d  %6d%s%-*s", i + 1, w, t->id, t->backbone,
               mode, lw, lp, t->learning_rate, sweep_optimizer_name(t->optimizer), t->batch_size, t->epochs,
               prec ? "  " : "", prec && (ls || axes) ? 9 : 0, prec ? sweep_precision_name(t->precision) : "");
        if (ls)
            printf("  %-*.6g", axes ? 15 : 0, t->label_smoothing);
        print_axes(s, t);
        printf("\n");
    }
}

/* successive_halving / asha: the rungs, how many trials reach each at most
 * and the epochs that costs, against every trial trained to the end. */
static void print_rungs(const sweep *s)
{
    if (!sweep_has_rungs(s))
        return;
    sweep_rungs r;
    sweep_rungs_of(s, &r);
    size_t n[SWEEP_MAX_RUNGS];
    double budget = sweep_rung_budget(&r, s->n_trials, n);
    printf("\nrungs (%s, min_epochs %d, reduction_factor %d, ranked by %s, %s):\n",
           sweep_search_name(s->search), s->min_epochs, s->reduction_factor,
           sweep_metric_name(s->search_metric), s->search_goal_max ? "max" : "min");
    for (int k = 0; k < r.n; k++) {
        int prev = k ? r.epochs[k - 1] : 0;
        printf("  rung %d: %s%zu trial%s to epoch %d, %zu epochs\n", k, k ? "at most " : "",
               n[k], n[k] == 1 ? "" : "s", r.epochs[k], n[k] * (size_t)(r.epochs[k] - prev));
    }
    double whole = (double)s->n_trials * s->epochs;
    printf("  epoch budget: at most %.0f epochs, against %.0f for every trial to epoch %d "
           "(%.0f%%)%s\n", budget, whole, s->epochs, 100.0 * budget / whole,
           s->search == SWEEP_SEARCH_ASHA ? "; asha promotes as results come, within this "
                                            "budget until workers would wait" : "");
}

/* Images per epoch when train_dir can be indexed now; 0 otherwise. */
static size_t count_images(const sweep *s, size_t *n_all)
{
    struct stat st;
    *n_all = 0;
    if (stat(s->train_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    data_index_cfg cfg = {.train_dir = s->train_dir, .val_dir = s->val_dir, .test_dir = s->test_dir,
                          .validation_split = s->validation_split, .seed = s->data_seed};
    data_index ix;
    memset(&ix, 0, sizeof ix);
    tl_err e = {0};
    if (data_index_build(&ix, &cfg, &e) != 0) {
        printf("  (dataset not counted: %s)\n", e.msg);
        return 0;
    }
    size_t n = data_index_count(&ix, DATA_TRAIN) + data_index_count(&ix, DATA_VAL);
    *n_all = ix.n_items;
    data_index_free(&ix);
    return n;
}

static void print_times(size_t passes, size_t images)
{
    if (images)
        printf(" = %zu image passes\n", passes * images);
    else
        printf("\n");
}

/* Backbone passes: a frozen cache key costs one pass over the images,
 * whatever the number of trials and epochs; a fine-tune trial costs one
 * (forward and backward) per image per epoch. */
static void print_work(const sweep *s)
{
    size_t cached = 0, ft = 0, ft_epochs = 0, keras = 0;
    for (size_t i = 0; i < s->n_trials; i++) {
        const sweep_trial *t = &s->trials[i];
        keras += (size_t)t->epochs;
        sweep_plan p;
        if (sweep_trial_plan(s, t, &p, NULL)) /* sweep_load made these plans already */
            continue;
        cached += (size_t)sweep_plan_uses_shared_cache(&p);
        int own = sweep_plan_own_epochs(&p);
        ft += own > 0;
        ft_epochs += (size_t)own;
    }
    printf("\nestimated work:\n");
    size_t n_all = 0, images = count_images(s, &n_all);
    if (images)
        printf("  images: %zu per epoch (train + validation), %zu indexed\n", images, n_all);
    else
        printf("  images: train_dir not readable now; counts are in units of the dataset (images)\n");
    printf("  trials: %zu (%zu on a frozen feature cache, %zu running the backbone each epoch)\n",
           s->n_trials, cached, ft);
    size_t augmented = 0;
    for (size_t i = 0; i < s->n_trials; i++)
        augmented += (size_t)data_augment_active(&s->trials[i].augment);
    if (augmented)
        printf("  augmentation is on in %zu trial%s: their features are recomputed every epoch "
               "(no feature cache)\n", augmented, augmented == 1 ? "" : "s");
    printf("  frozen: backbone forward passes: images x 1 per cache key, %d key%s:\n", s->n_cache_groups,
           s->n_cache_groups == 1 ? "" : "s");
    for (int g = 0; g < s->n_cache_groups; g++)
        printf("    %016llx  %s  (%d trials)\n", (unsigned long long)s->cache_groups[g].key,
               s->cache_groups[g].text, s->cache_groups[g].n_trials);
    printf("    = %d x images", s->n_cache_groups);
    print_times((size_t)s->n_cache_groups, images);
    printf("  fine-tune: backbone forward+backward: images x epochs: %zu trials, %zu epochs = %zu x images",
           ft, ft_epochs, ft_epochs);
    print_times(ft_epochs, images);
    for (int i = 0; i < s->n_backbones; i++) {
        const char *w = sweep_weights_path(s, s->backbones[i]);
        struct stat st;
        if (w && stat(w, &st) != 0)
            printf("  note: weights file %s (%s) not found here; a real run needs it\n", w, s->backbones[i]);
    }
    /* a login node may lack what the compute nodes have */
    tl_err he = {0};
    if (sweep_check_host(s, &he))
        printf("  note: %s (a real run here is refused)\n", he.msg);
    printf("  total: %zu x images of backbone work (the Keras way, backbone every epoch: %zu x images)\n",
           (size_t)s->n_cache_groups + ft_epochs, keras);
}

/* ---- the run ---------------------------------------------------------------------- */

/* Whether a launcher started us as one rank of several: then MPI is
 * initialised; a plain `tlsweep run` never touches MPI. */
static int launched_by_mpi(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

/* The sweep, its text and the dataset index, loaded and checked before
 * out/ exists; the coordinator goes on with the same index. */
typedef struct {
    sweep s;
    char *text;
    size_t len;
    data_index ix;
    int have_ix;
} loaded;

static int load_checked(const char *path, loaded *L, tl_err *e)
{
    memset(L, 0, sizeof *L);
    int rc = sweep_load_text(&L->s, path, &L->text, &L->len, e);
    if (!rc && !(rc = coord_preflight(&L->s, &L->ix, e)))
        L->have_ix = 1;
    return rc;
}

static void unload(loaded *L)
{
    sweep_free(&L->s);
    free(L->text);
    if (L->have_ix)
        data_index_free(&L->ix);
}

typedef struct {
    msg_link *l;
    worker_opts o;
    int rc;
    tl_err e;
} local_worker;

static void *local_worker_main(void *arg)
{
    local_worker *w = arg;
    /* signals are the coordinator's (libuv's handles) */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    w->rc = worker_main(w->l, &w->o, &w->e);
    return NULL;
}

/* What `tlsweep run` was asked besides the file. */
typedef struct {
    int quiet, slice, n_slices, force, repair;
} run_flags;

static coord_opts opts_for(const loaded *L, const run_flags *f)
{
    coord_opts o = {.s = &L->s, .sweep_text = L->text, .sweep_len = L->len, .index = &L->ix,
                    .quiet = f->quiet, .slice = f->slice, .n_slices = f->n_slices,
                    .force = f->force, .repair = f->repair};
    return o;
}

/* Seconds the worker thread has to leave once coord_run has returned: it
 * has been told to stop and leaves at its next step; one the coordinator
 * already gave up on (abandoned) gets a moment only. */
#define WORKER_LEAVE_S 60
#define ABANDONED_LEAVE_S 2

static int run_local(const char *path, const run_flags *f)
{
    loaded L;
    tl_err e = {0};
    int status = 1;
    if (load_checked(path, &L, &e) != 0) {
        fprintf(stderr, "tlsweep run: %s\n", e.msg);
        goto out;
    }
    msg_link *lc = NULL, *lw = NULL;
    if (msg_link_local_pair(&lc, &lw, &e) != 0) {
        fprintf(stderr, "tlsweep run: %s\n", e.msg);
        goto out;
    }
    local_worker w = {.l = lw};
    pthread_t th;
    if (pthread_create(&th, NULL, local_worker_main, &w) != 0) {
        fprintf(stderr, "tlsweep run: cannot start the worker thread\n");
        msg_link_free(lc);
        msg_link_free(lw);
        goto out;
    }
    coord_opts o = opts_for(&L, f);
    status = coord_run(&o, lc, &e);
    /* the line first: whatever the worker thread does next, it is out */
    if (status != 0 && status != COORD_EXIT_INTERRUPTED)
        fprintf(stderr, "tlsweep run: %s\n", e.msg);
    fflush(stdout);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += o.abandoned ? ABANDONED_LEAVE_S : WORKER_LEAVE_S;
    if (pthread_timedjoin_np(th, NULL, &until) != 0) {
        /* it still uses its link and the sweep: leave them to the exit */
        if (status == 0)
            fprintf(stderr, "tlsweep run: the worker thread did not stop within %d s\n",
                    o.abandoned ? ABANDONED_LEAVE_S : WORKER_LEAVE_S);
        return status ? status : 1;
    }
    if (status == 0 && w.rc) {
        fprintf(stderr, "tlsweep run: worker: %s\n", w.e.msg);
        status = 1;
    }
    msg_link_free(lc);
    msg_link_free(lw);
out:
    unload(&L);
    return status;
}

/* Engine threads of a worker: the node's cores shared by the workers on
 * it (the coordinator mostly sleeps), unless the user set OMP_NUM_THREADS. */
static int node_threads(MPI_Comm world, int rank)
{
    MPI_Comm node;
    MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    int on_node = 1, lowest = rank;
    MPI_Comm_size(node, &on_node);
    MPI_Allreduce(&rank, &lowest, 1, MPI_INT, MPI_MIN, node);
    MPI_Comm_free(&node);
    if (getenv("OMP_NUM_THREADS"))
        return 0;
    int workers = on_node - (lowest == 0 ? 1 : 0);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int t = workers > 0 && cores > 0 ? (int)(cores / workers) : 1;
    return t > 0 ? t : 1;
}

static int run_mpi(const char *path, const run_flags *f)
{
    int provided = 0, rank = 0, size = 1;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int threads = node_threads(MPI_COMM_WORLD, rank);
    if (size == 1) {
        MPI_Finalize();
        return run_local(path, f);
    }
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    msg_link *l = NULL;
    tl_err e = {0};
    int status = 1, abandoned = 0;
    if (msg_link_mpi(&l, comm, &e) != 0) {
        fprintf(stderr, "tlsweep run: rank %d: %s\n", rank, e.msg);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0) {
        loaded L;
        if (load_checked(path, &L, &e) != 0) {
            fprintf(stderr, "tlsweep run: %s\n", e.msg);
            /* the workers wait for a Setup: tell them to leave, or end
             * the job if one cannot be told */
            abandoned = coord_stop_unstarted(l);
        } else {
            coord_opts o = opts_for(&L, f);
            o.rank_groups = 1;
            status = coord_run(&o, l, &e);
            abandoned = o.abandoned;
            if (status != 0 && status != COORD_EXIT_INTERRUPTED)
                fprintf(stderr, "tlsweep run: %s\n", e.msg);
        }
        fflush(stdout);
        fflush(stderr);
        unload(&L);
    } else {
        /* mpirun hands SIGUSR1 and a terminal's SIGINT to every rank, and
         * Slurm sends SIGTERM to every task at a requeue or cancel; the
         * coordinator gets it too, decides and tells the workers, who stop
         * at the next step (Slurm's SIGKILL follows only after KillWait) */
        signal(SIGUSR1, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        worker_opts wo = {.threads = threads, .world = MPI_COMM_WORLD, .have_world = 1};
        int rc = worker_main(l, &wo, &e);
        if (rc)
            fprintf(stderr, "tlsweep run: rank %d: %s\n", rank, e.msg);
        status = rc ? 1 : 0;
    }
    msg_link_free(l);
    if (abandoned)
        MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Comm_free(&comm);
    MPI_Finalize();
    return status;
}

int cli_run(int argc, char **argv)
{
    static const char usage[] =
        "usage: tlsweep run SWEEP.yaml [--dry-run] [--quiet] [--slice I/N] [--force] [--repair]\n"
        "  runs the sweep described by SWEEP.yaml (see examples/fashion-mnist.yaml);\n"
        "  under mpirun/srun rank 0 coordinates and the other ranks train, alone it\n"
        "  runs coordinator and worker in one process. Re-running the same command on\n"
        "  the same out: resumes. Exit status: 0 done, 1 failed, 2 usage, 74 a write\n"
        "  of out/'s journal, best.tlm, caches or results failed (re-run once there is\n"
        "  space), 75 interrupted (SIGINT/SIGTERM/SIGUSR1; resumable). docs/failures.md\n"
        "  --dry-run  parse and validate the file, print the trials and the estimated\n"
        "             work, and stop: nothing is trained or written\n"
        "  --quiet    no progress line\n"
        "  --slice I/N  run only trials i with i % N == I (0 <= I < N), into\n"
        "             OUT/slices/I (a job array's task); `tlsweep merge OUT` joins them\n"
        "  --force    run on an out: that another sweep started (its finished trials\n"
        "             of the same configuration are kept)\n"
        "  --repair   cut a journal damaged in the middle at the damage, keeping the\n"
        "             records before it (the trials after it run again)\n";
    static const struct option opts[] = {{"dry-run", no_argument, 0, 'n'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"slice", required_argument, 0, 's'},
                                         {"force", no_argument, 0, 'f'},
                                         {"repair", no_argument, 0, 'r'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int dry = 0, ch;
    run_flags f = {0};
    optind = 1;
    while ((ch = getopt_long(argc, argv, "nqhfrs:", opts, NULL)) != -1) {
        switch (ch) {
        case 'n': dry = 1; break;
        case 'q': f.quiet = 1; break;
        case 'f': f.force = 1; break;
        case 'r': f.repair = 1; break;
        case 's': {
            char tail;
            if (sscanf(optarg, "%d/%d%c", &f.slice, &f.n_slices, &tail) != 2 || f.n_slices < 1 ||
                f.n_slices > 100000 || f.slice < 0 || f.slice >= f.n_slices) {
                fprintf(stderr, "tlsweep run: --slice %s: expected I/N with 0 <= I < N\n",
                        optarg);
                return 2;
            }
            break;
        }
        default:
            fputs(usage, ch == 'h' ? stdout : stderr);
            return ch == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1) {
        fputs(usage, stderr);
        return 2;
    }
    if (!dry)
        return launched_by_mpi() ? run_mpi(argv[optind], &f) : run_local(argv[optind], &f);
    sweep s;
    tl_err e = {0};
    if (sweep_load(&s, argv[optind], &e) != 0) {
        fprintf(stderr, "tlsweep run: %s\n", e.msg);
        return 1;
    }
    print_table(&s);
    print_rungs(&s);
    print_work(&s);
    printf("\ndry run: nothing trained, nothing written (out: %s)\n", s.out);
    sweep_free(&s);
    return 0;
}
