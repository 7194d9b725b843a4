/* `tlsweep demo`: trains one backbone with a fresh head on a synthetic
 * separable task (demo_open/demo_epoch, worker/engine/demo.h) and prints
 * per-epoch figures. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "worker/engine/demo.h"
#include "worker/engine/engine.h"

int cli_demo(int argc, char **argv)
{
    demo_cfg cfg = DEMO_CFG_DEFAULT;
    int threads = 0;
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
        case 'b': cfg.backbone = optarg; break;
        case 's': cfg.size = atoi(optarg); break;
        case 'a': cfg.alpha = (float)atof(optarg); break;
        case 'e': cfg.epochs = atoi(optarg); break;
        case 'B': cfg.batch = atoi(optarg); break;
        case 'n': cfg.ntrain = atoi(optarg); break;
        case 'l': cfg.lr = atof(optarg); break;
        case 't': threads = atoi(optarg); break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: tlsweep demo [--backbone NAME] [--size S] [--alpha A] [--epochs E]\n"
                    "                    [--batch B] [--images N] [--lr LR] [--threads T]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (cfg.size < 8 || cfg.epochs < 1 || cfg.batch < 1 || cfg.ntrain < cfg.batch) {
        fprintf(stderr, "tlsweep demo: need --size >= 8, --epochs >= 1, --images >= --batch >= 1\n");
        return 2;
    }
    engine_threads_set(threads > 0 ? threads : engine_threads_default());
    char buf[256];
    printf("%s\n", engine_blas_describe(buf, sizeof buf));
    if (engine_blas_warning(buf, sizeof buf))
        fprintf(stderr, "warning: %s\n", buf);

    demo d;
    tl_err e = {0};
    if (demo_open(&d, &cfg, &e)) {
        fprintf(stderr, "tlsweep demo: %s\n", e.msg);
        return 1;
    }
    printf("%s %dx%d, %d layers, %.2f M weights, %.1f MiB allocated once\n", cfg.backbone,
           cfg.size, cfg.size, d.n.n_layers, d.n.n_weights / 1e6, net_bytes(&d.n) / 1048576.0);
    int rc = 1;
    if (demo_prepare(&d, &e)) {
        fprintf(stderr, "tlsweep demo: %s\n", e.msg);
        goto out;
    }
    for (int ep = 1; ep <= cfg.epochs; ep++) {
        demo_epoch_figs f;
        demo_epoch(&d, &f);
        printf("epoch %d/%d  loss %.4f  accuracy %.3f  val_loss %.4f  val_accuracy %.3f  "
               "%.1f img/s\n",
               ep, cfg.epochs, f.loss, f.accuracy, f.val_loss, f.val_accuracy, f.images_per_s);
    }
    rc = 0;
out:
    demo_close(&d);
    return rc;
}
