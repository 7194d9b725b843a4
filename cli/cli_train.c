/* `tlsweep train`: one transfer-learning trial in this process (the sweep
 * runs many across ranks); a thin wrapper over trial_run (worker/trial/trial.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/base/clock.h"
#include "worker/engine/engine.h"
#include "worker/trial/trial.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tlsweep train --weights W.tlm --data DIR -o OUT.tlm\n"
            "         [--val-dir DIR | --validation-split F] [--test-dir DIR] [--size S]\n"
            "         [--mode frozen|fine_tune|fine_tune_at=N] [--lr LR]\n"
            "         [--optimizer adam|sgd|rmsprop] [--batch B] [--epochs E]\n"
            "         [--head gap,dense128,dropout0.2] [--seed N] [--augment flip]\n"
            "         [--threads T] [--loader-threads T]\n");
}

static void print_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
    fflush(stdout);
}

static void report(const trial_result *r)
{
    size_t distinct = r->n_train + r->n_val + r->n_test;
    printf("backbone forward passes: %zu images, %.2f per image%s\n", r->backbone_images,
           distinct ? (double)r->backbone_images / distinct : 0.0,
           r->features_cached ? " (frozen: features cached)" : "");
    if (r->best_epoch)
        printf("best epoch %d: val_accuracy %.4f\n", r->best_epoch, r->best_val_accuracy);
    if (!r->eval_split)
        return;
    int n = r->n_classes;
    printf("%s: loss %.4f  accuracy %.4f\n", r->eval_split, r->eval_loss, r->eval_accuracy);
    printf("per-class %s accuracy and confusion matrix (rows: true, columns: predicted):\n",
           r->eval_split);
    int w = 4;
    for (int i = 0; i < n; i++)
        if ((int)strlen(r->classes[i]) > w)
            w = (int)strlen(r->classes[i]);
    printf("  %2s %-*s  %6s |", "#", w, "class", "acc");
    for (int j = 0; j < n; j++)
        printf(" %4d", j);
    printf("\n");
    for (int i = 0; i < n; i++) {
        int64_t row = 0;
        for (int j = 0; j < n; j++)
            row += r->confusion[(size_t)i * n + j];
        printf("  %2d %-*s  %6.3f |", i, w, r->classes[i],
               row ? (double)r->confusion[(size_t)i * n + i] / row : 0.0);
        for (int j = 0; j < n; j++)
            printf(" %4lld", (long long)r->confusion[(size_t)i * n + j]);
        printf("\n");
    }
}

int cli_train(int argc, char **argv)
{
    trial_cfg cfg;
    trial_cfg_default(&cfg);
    const char *head = NULL, *opt = "adam", *mode = "frozen", *augment = NULL;
    double lr = -1;
    int threads = 0;
    static const struct option opts[] = {
        {"weights", required_argument, 0, 'w'},
        {"data", required_argument, 0, 'd'},
        {"val-dir", required_argument, 0, 'V'},
        {"validation-split", required_argument, 0, 'v'},
        {"test-dir", required_argument, 0, 'T'},
        {"size", required_argument, 0, 's'},
        {"mode", required_argument, 0, 'm'},
        {"lr", required_argument, 0, 'l'},
        {"optimizer", required_argument, 0, 'O'},
        {"batch", required_argument, 0, 'b'},
        {"epochs", required_argument, 0, 'e'},
        {"head", required_argument, 0, 'H'},
        {"seed", required_argument, 0, 'S'},
        {"augment", required_argument, 0, 'a'},
        {"threads", required_argument, 0, 't'},
        {"loader-threads", required_argument, 0, 'L'},
        {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'w': cfg.weights = optarg; break;
        case 'd': cfg.train_dir = optarg; break;
        case 'V': cfg.val_dir = optarg; break;
        case 'v': cfg.validation_split = atof(optarg); break;
        case 'T': cfg.test_dir = optarg; break;
        case 's': cfg.size = atoi(optarg); break;
        case 'm': mode = optarg; break;
        case 'l': lr = atof(optarg); break;
        case 'O': opt = optarg; break;
        case 'b': cfg.batch = atoi(optarg); break;
        case 'e': cfg.epochs = atoi(optarg); break;
        case 'H': head = optarg; break;
        case 'S': cfg.seed = cfg.split_seed = strtoull(optarg, NULL, 10); break;
        case 'a': augment = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'L': cfg.loader_threads = atoi(optarg); break;
        case 'o': cfg.out = optarg; break;
        default: usage(c == 'h' ? stdout : stderr); return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc || !cfg.weights || !cfg.train_dir || !cfg.out) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(mode, "frozen"))
        cfg.mode = MODEL_FROZEN;
    else if (!strcmp(mode, "fine_tune"))
        cfg.mode = MODEL_FINE_TUNE;
    else if (!strncmp(mode, "fine_tune_at=", 13) && atoi(mode + 13) >= 0) {
        cfg.mode = MODEL_FINE_TUNE_AT;
        cfg.fine_tune_at = atoi(mode + 13);
    } else {
        fprintf(stderr, "tlsweep train: --mode must be frozen, fine_tune or fine_tune_at=N\n");
        return 2;
    }
    optim_kind ok;
    if (!strcmp(opt, "adam"))
        ok = OPTIM_ADAM;
    else if (!strcmp(opt, "sgd"))
        ok = OPTIM_SGD;
    else if (!strcmp(opt, "rmsprop"))
        ok = OPTIM_RMSPROP;
    else {
        fprintf(stderr, "tlsweep train: --optimizer must be adam, sgd or rmsprop\n");
        return 2;
    }
    cfg.optim = optim_cfg_default(ok);
    cfg.optim.learning_rate = lr > 0 ? lr : 1e-3;
    if (augment) {
        if (strcmp(augment, "flip") && strcmp(augment, "none")) {
            fprintf(stderr, "tlsweep train: --augment must be flip or none\n");
            return 2;
        }
        cfg.augment.horizontal_flip = !strcmp(augment, "flip");
    }
    if (cfg.batch < 1 || cfg.epochs < 1 || cfg.validation_split < 0 ||
        cfg.validation_split >= 1 || cfg.size < 0) {
        fprintf(stderr, "tlsweep train: need --batch >= 1, --epochs >= 1, "
                        "--validation-split in [0, 1)\n");
        return 2;
    }
    tl_err e = {0};
    model_head_op *ops = NULL;
    if (head && trial_parse_head(head, &ops, &cfg.n_head, &e)) {
        fprintf(stderr, "tlsweep train: %s\n", e.msg);
        return 2;
    }
    cfg.head = ops;
    engine_threads_set(threads > 0 ? threads : engine_threads_default());
    cfg.log = print_line;

    double t0 = tl_now();
    trial_result r;
    int rc = trial_run(&cfg, &r, &e);
    if (rc) {
        fprintf(stderr, "tlsweep train: %s\n", e.msg);
    } else {
        printf("train: %zu images, val: %zu, test: %zu, %d classes\n", r.n_train, r.n_val,
               r.n_test, r.n_classes);
        report(&r);
        printf("wrote %s (best epoch %d) in %.1fs\n", cfg.out, r.best_epoch, tl_now() - t0);
    }
    trial_result_free(&r);
    free(ops);
    return rc ? 1 : 0;
}
