/* `tlsweep demo`: trains one backbone with a fresh head on a synthetic
 * separable task and prints per-epoch figures. It exercises the engine end
 * to end before real data and the sweep exist. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/base/clock.h"
#include "worker/engine/engine.h"
#include "worker/net/backbones.h"
#include "worker/engine/synth.h"
#include "worker/engine/train.h"

int cli_demo(int argc, char **argv)
{
    const char *backbone = "mobilenet_v2";
    int size = 32, epochs = 3, batch = 32, ntrain = 512, nval = 128, classes = 4, threads = 0;
    float alpha = 0.35f;
    double lr = 1e-3;
    static const struct option opts[] = {
        {"backbone", required_argument, 0, 'b'}, {"size", required_argument, 0, 's'},
        {"alpha", required_argument, 0, 'a'},    {"epochs", required_argument, 0, 'e'},
        {"batch", required_argument, 0, 'B'},    {"images", required_argument, 0, 'n'},
        {"lr", required_argument, 0, 'l'},       {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:s:a:e:B:n:l:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': backbone = optarg; break;
        case 's': size = atoi(optarg); break;
        case 'a': alpha = (float)atof(optarg); break;
        case 'e': epochs = atoi(optarg); break;
        case 'B': batch = atoi(optarg); break;
        case 'n': ntrain = atoi(optarg); break;
        case 'l': lr = atof(optarg); break;
        case 't': threads = atoi(optarg); break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: tlsweep demo [--backbone NAME] [--size S] [--alpha A] [--epochs E]\n"
                    "                    [--batch B] [--images N] [--lr LR] [--threads T]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (size < 8 || epochs < 1 || batch < 1 || ntrain < batch) {
        fprintf(stderr, "tlsweep demo: need --size >= 8, --epochs >= 1, --images >= --batch >= 1\n");
        return 2;
    }
    engine_threads_set(threads > 0 ? threads : engine_threads_default());
    char buf[256];
    printf("%s\n", engine_blas_describe(buf, sizeof buf));
    if (engine_blas_warning(buf, sizeof buf))
        fprintf(stderr, "warning: %s\n", buf);

    net n;
    tl_err e = {0};
    net_init(&n, size, size, 3, NET_KERAS);
    net_backbone_cfg cfg = {.alpha = alpha};
    int f = net_backbone(&n, backbone, &cfg, &e);
    net_head_op head[] = {{NET_HEAD_GAP, 0, NET_ACT_NONE, 0},
                          {NET_HEAD_DENSE, 64, NET_ACT_RELU, 0},
                          {NET_HEAD_DROPOUT, 0, NET_ACT_NONE, 0.2f}};
    /* random weights: BN must learn its statistics (with pretrained weights
     * the default keeps them, as Keras advises) */
    net_set_bn_update(&n, 1);
    /* and track them quickly, or validation (inference mode) lags far
     * behind training with Keras's momentum 0.999 over a few hundred steps */
    for (int i = 0; i < n.n_layers; i++)
        if (n.layers[i].kind == NET_BN)
            n.layers[i].u.bn.momentum = 0.1f;
    if (f < 0 || net_head(&n, f, head, 3, classes, &e) < 0 ||
        net_finalize(&n, batch, 42, &e) < 0) {
        fprintf(stderr, "tlsweep demo: %s\n", e.msg);
        net_free(&n);
        return 1;
    }
    printf("%s %dx%d, %d layers, %.2f M weights, %.1f MiB allocated once\n", backbone, size,
           size, n.n_layers, n.n_weights / 1e6, net_bytes(&n) / 1048576.0);

    size_t img = (size_t)size * size * 3;
    float *xtr = malloc((size_t)ntrain * img * sizeof(float));
    float *xva = malloc((size_t)nval * img * sizeof(float));
    int *ytr = malloc((size_t)ntrain * sizeof(int)), *yva = malloc((size_t)nval * sizeof(int));
    train_ctx t;
    optim_cfg oc = optim_cfg_default(OPTIM_ADAM);
    oc.learning_rate = lr;
    int rc = 1;
    if (!xtr || !xva || !ytr || !yva) {
        fprintf(stderr, "tlsweep demo: out of memory for %d images\n", ntrain);
        goto out;
    }
    synth_images(xtr, ytr, ntrain, size, classes, 1);
    synth_images(xva, yva, nval, size, classes, 2);
    if (train_init(&t, &n, &oc, 7, &e)) {
        fprintf(stderr, "tlsweep demo: %s\n", e.msg);
        goto out;
    }
    for (int ep = 1; ep <= epochs; ep++) {
        double t0 = tl_now(), loss = 0;
        int hits = 0, seen = 0;
        for (int b = 0; b + batch <= ntrain; b += batch) {
            int h = 0;
            loss += train_step(&t, xtr + (size_t)b * img, ytr + b, batch, &h) * batch;
            hits += h;
            seen += batch;
        }
        double dt = tl_now() - t0;
        int vh = 0, vs = 0;
        double vloss = 0;
        for (int b = 0; b < nval; b += batch) {
            int bs = nval - b < batch ? nval - b : batch, h = 0;
            vloss += train_eval(&t, xva + (size_t)b * img, yva + b, bs, &h) * bs;
            vh += h;
            vs += bs;
        }
        printf("epoch %d/%d  loss %.4f  accuracy %.3f  val_loss %.4f  val_accuracy %.3f  "
               "%.1f img/s\n",
               ep, epochs, loss / seen, (double)hits / seen, vloss / vs, (double)vh / vs,
               seen / dt);
    }
    train_free(&t);
    rc = 0;
out:
    free(xtr);
    free(xva);
    free(ytr);
    free(yva);
    net_free(&n);
    return rc;
}
