/* tlsweep-bench: images/s of one engine configuration, in its own process
 * so that its peak resident memory is its own. bench/compare.py runs every
 * configuration here and in PyTorch and prints the ratios.
 *
 *   tlsweep-bench --backbone resnet50 --size 224 --batch 32 --mode train
 *
 * modes: train (fine-tune every layer, BN in inference mode as Keras
 * advises), frozen (backbone forward in inference mode, head trained),
 * infer (forward only). Output: one JSON object on stdout. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/base/rng.h"
#include "worker/engine/engine.h"
#include "worker/net/backbones.h"
#include "worker/engine/train.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    engine_reexec_tuned(argv);
    const char *backbone = "mobilenet_v2", *mode = "train";
    int size = 224, batch = 32, steps = 5, warmup = 2, threads = 0, classes = 10;
    float alpha = 1.0f;
    static const struct option opts[] = {
        {"backbone", required_argument, 0, 'b'}, {"size", required_argument, 0, 's'},
        {"batch", required_argument, 0, 'B'},    {"mode", required_argument, 0, 'm'},
        {"steps", required_argument, 0, 'n'},    {"warmup", required_argument, 0, 'w'},
        {"threads", required_argument, 0, 't'},  {"alpha", required_argument, 0, 'a'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "b:s:B:m:n:w:t:a:", opts, NULL)) != -1) {
        switch (c) {
        case 'b': backbone = optarg; break;
        case 's': size = atoi(optarg); break;
        case 'B': batch = atoi(optarg); break;
        case 'm': mode = optarg; break;
        case 'n': steps = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'a': alpha = (float)atof(optarg); break;
        default:
            fprintf(stderr, "usage: tlsweep-bench [--backbone B] [--size S] [--batch N] "
                            "[--mode train|frozen|infer] [--steps K] [--warmup W] [--threads T]\n");
            return 2;
        }
    }
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
    double t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup)
            t0 = now();
        if (infer)
            net_forward(&n, x, batch, 0);
        else
            train_step(&t, x, y, batch, NULL);
    }
    double dt = now() - t0;
    double ips = (double)batch * steps / dt;
    /* fine-tune: forward + input grads + weight grads ~ 3x forward */
    double flops = 2.0 * net_macs_per_image(&n) * (train ? 3.0 : 1.0);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char blas[160];
    engine_blas_describe(blas, sizeof blas);
    printf("{\"impl\": \"tlsweep\", \"backbone\": \"%s\", \"size\": %d, \"batch\": %d, "
           "\"mode\": \"%s\", \"threads\": %d, \"images_per_s\": %.3f, \"gflops\": %.1f, "
           "\"peak_rss_mib\": %.1f, \"engine_mib\": %.1f, \"blas\": \"%s\"}\n",
           backbone, size, batch, mode, engine_threads_get(), ips, ips * flops / 1e9,
           ru.ru_maxrss / 1024.0, net_bytes(&n) / 1048576.0, blas);
    if (!infer)
        train_free(&t);
    free(x);
    free(y);
    net_free(&n);
    return 0;
}
