/* tlsweep-bench: images/s of one engine configuration, in its own process
 * so that its peak resident memory is its own. bench/compare.py runs every
 * configuration here and in PyTorch and prints the ratios.
 *
 *   tlsweep-bench --backbone resnet50 --size 224 --batch 32 --mode train
 *
 * modes: train (fine-tune every layer, BN in inference mode as Keras
 * advises), frozen (backbone forward in inference mode, head trained),
 * infer (forward only). Output: one JSON object on stdout.
 *
 *   tlsweep-bench ... --engine auto|openblas|onednn --precision fp32|bf16
 *
 * set the backend before the net is finalized (default: TLSWEEP_ENGINE /
 * TLSWEEP_PRECISION, else auto / fp32). Besides images/s over the timed
 * steps, the JSON has the median step, and the minor page faults per timed
 * step and of the very first step (getrusage): a step that reuses its
 * buffers faults ~0 times.
 *
 *   tlsweep-bench --peak [--threads T] [--precision fp32|bf16]
 *
 * measures the FMA peak instead (bench/peak.c). */
#include <getopt.h>
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
#include "worker/nn/backend.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* minor page faults and CPU seconds (user + system) of this process so far */
static void usage_now(long *minflt, double *cpu)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *minflt = ru.ru_minflt;
    *cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

/* s as a JSON string (the lines printed here are ASCII; quotes, backslashes
 * and control characters are escaped all the same) */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void)
{
    fprintf(stderr, "usage: tlsweep-bench [--backbone B] [--size S] [--batch N] "
                    "[--mode train|frozen|infer] [--steps K] [--warmup W] [--threads T]\n"
                    "                     [--engine auto|openblas|onednn] "
                    "[--precision fp32|bf16]\n"
                    "       tlsweep-bench --peak [--threads T] [--precision fp32|bf16]\n");
}

int main(int argc, char **argv)
{
    engine_reexec_tuned(argv);
    const char *backbone = "mobilenet_v2", *mode = "train";
    int size = 224, batch = 32, steps = 5, warmup = 2, threads = 0, classes = 10;
    float alpha = 1.0f;
    int peak = 0;
    const char *engine_arg = NULL, *precision_arg = NULL;
    static const struct option opts[] = {
        {"backbone", required_argument, 0, 'b'}, {"size", required_argument, 0, 's'},
        {"batch", required_argument, 0, 'B'},    {"mode", required_argument, 0, 'm'},
        {"steps", required_argument, 0, 'n'},    {"warmup", required_argument, 0, 'w'},
        {"threads", required_argument, 0, 't'},  {"alpha", required_argument, 0, 'a'},
        {"engine", required_argument, 0, 'e'},   {"precision", required_argument, 0, 'p'},
        {"peak", no_argument, 0, 'P'},           {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "b:s:B:m:n:w:t:a:e:p:P", opts, NULL)) != -1) {
        switch (c) {
        case 'b': backbone = optarg; break;
        case 's': size = atoi(optarg); break;
        case 'B': batch = atoi(optarg); break;
        case 'm': mode = optarg; break;
        case 'n': steps = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'a': alpha = (float)atof(optarg); break;
        case 'e': engine_arg = optarg; break;
        case 'p': precision_arg = optarg; break;
        case 'P': peak = 1; break;
        default: usage(); return 2;
        }
    }
    nn_backend be;
    nn_precision prec;
    if (engine_arg) {
        if (nn_backend_parse(engine_arg, &be)) {
            fprintf(stderr, "tlsweep-bench: unknown engine '%s'\n", engine_arg);
            return 2;
        }
        nn_backend_set(be);
    }
    if (precision_arg) {
        if (nn_precision_parse(precision_arg, &prec)) {
            fprintf(stderr, "tlsweep-bench: unknown precision '%s'\n", precision_arg);
            return 2;
        }
        nn_precision_set(prec);
    }
    if (peak)
        return peak_main(threads > 0 ? threads : engine_threads_default(),
                         nn_precision_get() == NN_BF16);
    int train = !strcmp(mode, "train"), frozen = !strcmp(mode, "frozen"),
        infer = !strcmp(mode, "infer");
    if (!(train || frozen || infer) || size < 32 || batch < 1 || steps < 1) {
        fprintf(stderr, "tlsweep-bench: bad arguments\n");
        return 2;
    }
    engine_threads_set(threads > 0 ? threads : engine_threads_default());

    net n;
    tl_err e = {0};
    net_init(&n, size, size, 3, NET_TORCHVISION);
    net_backbone_cfg cfg = {.alpha = alpha};
    int f = net_backbone(&n, backbone, &cfg, &e);
    net_head_op head[] = {{NET_HEAD_GAP, 0, NET_ACT_NONE, 0}};
    if (f < 0 || net_head(&n, f, head, 1, classes, &e) < 0) {
        fprintf(stderr, "tlsweep-bench: %s\n", e.msg);
        return 1;
    }
    if (frozen)
        net_set_trainable_from(&n, f + 1);
    else if (infer)
        net_set_trainable_from(&n, n.n_layers);
    if (net_finalize(&n, batch, 1, &e)) {
        fprintf(stderr, "tlsweep-bench: %s\n", e.msg);
        return 1;
    }
    size_t img = (size_t)size * size * 3;
    float *x = malloc((size_t)batch * img * sizeof(float));
    int *y = malloc((size_t)batch * sizeof(int));
    rng_state r;
    rng_init(&r, 3);
    for (size_t i = 0; i < (size_t)batch * img; i++)
        x[i] = rng_uniform(&r) * 2 - 1;
    for (int i = 0; i < batch; i++)
        y[i] = i % classes;

    train_ctx t;
    optim_cfg oc = optim_cfg_default(OPTIM_SGD);
    oc.momentum = 0.9;
    if (!infer && train_init(&t, &n, &oc, 1, &e)) {
        fprintf(stderr, "tlsweep-bench: %s\n", e.msg);
        return 1;
    }
    /* step 0 alone (first touch of every buffer), then the timed steps */
    double *step_s = malloc((size_t)steps * sizeof(double));
    long flt0, flt1, flt_timed0 = 0, flt_end;
    double cpu_first, cpu_timed0 = 0, cpu_end, t0 = 0;
    usage_now(&flt0, &cpu_first);
    flt1 = flt0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            usage_now(&flt_timed0, &cpu_timed0);
            t0 = now();
        }
        double ts = now();
        if (infer)
            net_forward(&n, x, batch, 0);
        else
            train_step(&t, x, y, batch, NULL);
        if (s >= warmup)
            step_s[s - warmup] = now() - ts;
        if (s == 0)
            usage_now(&flt1, &cpu_first);
    }
    double dt = now() - t0;
    usage_now(&flt_end, &cpu_end);
    double ips = (double)batch * steps / dt;
    qsort(step_s, (size_t)steps, sizeof(double), cmp_double);
    double median = steps % 2 ? step_s[steps / 2]
                              : 0.5 * (step_s[steps / 2 - 1] + step_s[steps / 2]);
    /* fine-tune: forward + input grads + weight grads ~ 3x forward */
    double flops = 2.0 * net_macs_per_image(&n) * (train ? 3.0 : 1.0);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char blas[160], summary[512], onednn[160];
    engine_blas_describe(blas, sizeof blas);
    net_backend_summary(&n, summary, sizeof summary);
    nn_onednn_describe(onednn, sizeof onednn);
    printf("{\"impl\": \"tlsweep\", \"backbone\": \"%s\", \"size\": %d, \"batch\": %d, "
           "\"mode\": \"%s\", \"threads\": %d, \"images_per_s\": %.3f, \"gflops\": %.1f, "
           "\"peak_rss_mib\": %.1f, \"engine_mib\": %.1f, \"blas\": ",
           backbone, size, batch, mode, engine_threads_get(), ips, ips * flops / 1e9,
           ru.ru_maxrss / 1024.0, net_bytes(&n) / 1048576.0);
    json_str(blas);
    printf(", \"engine\": \"%s\", \"precision\": \"%s\", \"backend\": ",
           nn_backend_name(nn_backend_get()), nn_precision_name(nn_precision_get()));
    json_str(summary);
    printf(", \"onednn\": ");
    json_str(onednn);
    printf(", \"steps\": %d, \"warmup\": %d, \"flop_per_image\": %.6g, "
           "\"mean_step_s\": %.6f, \"median_step_s\": %.6f, \"min_step_s\": %.6f, "
           "\"max_step_s\": %.6f, \"step_cpu_per_wall\": %.3f, "
           "\"faults_per_step\": %.2f, \"first_step_faults\": %ld}\n",
           steps, warmup, flops, dt / steps, median, step_s[0], step_s[steps - 1],
           (cpu_end - cpu_timed0) / dt, (double)(flt_end - flt_timed0) / steps, flt1 - flt0);
    free(step_s);
    if (!infer)
        train_free(&t);
    free(x);
    free(y);
    net_free(&n);
    return 0;
}
