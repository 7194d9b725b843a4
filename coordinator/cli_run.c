/* `tlsweep run SWEEP.yaml --dry-run`: load the sweep (parse, validate,
 * expand the grid), print the trial table and the estimated backbone work,
 * and stop. Nothing is trained and nothing is written. The distributed run
 * itself (without --dry-run) is the next piece of issue 5. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/data.h"
#include "common/sweep.h"
#include "coordinator/cli.h"

static void print_table(const sweep *s)
{
    int w = 2;
    for (size_t i = 0; i < s->n_trials; i++) {
        int l = (int)strlen(s->trials[i].id);
        w = l > w ? l : w;
    }
    printf("%s: %zu trials (%s)\n\n", s->name, s->n_trials, s->file);
    printf("%4s  %-*s  %-12s  %-20s  %-8s  %-9s  %5s  %6s\n", "#", w, "id", "backbone", "mode", "lr",
           "optimizer", "batch", "epochs");
    for (size_t i = 0; i < s->n_trials; i++) {
        const sweep_trial *t = &s->trials[i];
        char mode[64];
        sweep_mode_str(&t->mode, mode, sizeof mode);
        printf("%4zu  %-*s  %-12s  %-20s  %-8.2g  %-9s  %5d  %6d\n", i + 1, w, t->id, t->backbone, mode,
               t->learning_rate, sweep_optimizer_name(t->optimizer), t->batch_size, t->epochs);
    }
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
        int stage1 = t->mode.kind == SWEEP_FROZEN_THEN_FINE_TUNE ? t->mode.frozen_epochs : 0;
        if (sweep_trial_uses_cache(t)) {
            cached++;
            if (t->mode.kind == SWEEP_FROZEN_THEN_FINE_TUNE) {
                ft++;
                ft_epochs += (size_t)(t->epochs - stage1);
            }
        } else {
            ft++;
            ft_epochs += (size_t)t->epochs;
        }
    }
    printf("\nestimated work:\n");
    size_t n_all = 0, images = count_images(s, &n_all);
    if (images)
        printf("  images: %zu per epoch (train + validation), %zu indexed\n", images, n_all);
    else
        printf("  images: train_dir not readable now; counts are in units of the dataset (images)\n");
    printf("  trials: %zu (%zu on a frozen feature cache, %zu running the backbone each epoch)\n",
           s->n_trials, cached, ft);
    if (data_augment_active(&s->augment))
        printf("  augmentation is on: features are recomputed every epoch (no feature cache)\n");
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
    printf("  total: %zu x images of backbone work (the Keras way, backbone every epoch: %zu x images)\n",
           (size_t)s->n_cache_groups + ft_epochs, keras);
}

int cli_run(int argc, char **argv)
{
    static const char usage[] =
        "usage: tlsweep run SWEEP.yaml [--dry-run]\n"
        "  runs the sweep described by SWEEP.yaml (see examples/fashion-mnist.yaml)\n"
        "  --dry-run  parse and validate the file, print the trials and the estimated\n"
        "             work, and stop: nothing is trained or written\n";
    static const struct option opts[] = {
        {"dry-run", no_argument, 0, 'n'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int dry = 0, ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "nh", opts, NULL)) != -1) {
        switch (ch) {
        case 'n': dry = 1; break;
        default:
            fputs(usage, ch == 'h' ? stdout : stderr);
            return ch == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1) {
        fputs(usage, stderr);
        return 2;
    }
    if (!dry) {
        fprintf(stderr, "tlsweep run: not implemented yet: only --dry-run (the distributed run comes next)\n");
        return 2;
    }
    sweep s;
    tl_err e = {0};
    if (sweep_load(&s, argv[optind], &e) != 0) {
        fprintf(stderr, "tlsweep run: %s\n", e.msg);
        return 1;
    }
    print_table(&s);
    print_work(&s);
    printf("\ndry run: nothing trained, nothing written (out: %s)\n", s.out);
    sweep_free(&s);
    return 0;
}
