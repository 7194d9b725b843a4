/* `tlsweep data check DIR`: is this folder a usable dataset? Indexes it as
 * `train_dir:` would be, then reads every image's header (or, with
 * --decode, all of its pixels at the smallest DCT scale, which also finds
 * truncated files), printing one line per bad file and a summary. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/data/data.h"
#include "common/data/data_image.h"
#include "cli/cli.h"

static int check_one(data_image_ctx *c, const char *path, int decode, int64_t max_pixels,
                     tl_err *e)
{
    int w, h;
    if (!decode)
        return data_image_probe(path, max_pixels, &w, &h, e);
    int rc = data_image_open(c, path, max_pixels, &w, &h, e);
    const uint8_t *rgb;
    return rc ? rc : data_image_decode(c, 1, 1, &rgb, &w, &h, e);
}

int cli_data_check(int argc, char **argv)
{
    static const char usage[] =
        "usage: tlsweep data check DIR [--decode] [--max-megapixels N]\n"
        "  DIR holds one sub-folder per class (as train_dir:); prints each bad image\n"
        "  (path: reason) and images per class; exit 1 when the dataset is unusable\n"
        "  (no readable image, fewer than two classes, or a class with none readable).\n"
        "  --decode  decode every image (finds truncated files; slower than headers)\n";
    static const struct option opts[] = {
        {"decode", no_argument, 0, 'd'}, {"max-megapixels", required_argument, 0, 'm'},
        {"help", no_argument, 0, 'h'},   {0, 0, 0, 0},
    };
    int decode = 0, ch;
    int64_t max_pixels = DATA_IMAGE_MAX_PIXELS_DEFAULT;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "dm:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': decode = 1; break;
        case 'm': {
            char *end;
            double mp = strtod(optarg, &end);
            if (*optarg == '\0' || *end != '\0' || !(mp > 0) || mp > 1e6) {
                fprintf(stderr, "tlsweep data check: --max-megapixels needs a positive number\n");
                return 2;
            }
            max_pixels = (int64_t)(mp * 1e6);
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
    data_index_cfg cfg = {.train_dir = argv[optind]};
    data_index ix;
    memset(&ix, 0, sizeof ix);
    tl_err e = {0};
    if (data_index_build(&ix, &cfg, &e) != 0) {
        fprintf(stderr, "tlsweep data check: %s\n", e.msg);
        return 1;
    }
    size_t *good = calloc((size_t)ix.n_classes, sizeof *good);
    size_t *total = calloc((size_t)ix.n_classes, sizeof *total);
    data_image_ctx *c = data_image_ctx_new();
    if (!good || !total || !c) {
        fprintf(stderr, "tlsweep data check: out of memory\n");
        free(good);
        free(total);
        data_image_ctx_free(c);
        data_index_free(&ix);
        return 1;
    }
    size_t bad = 0;
    for (size_t i = 0; i < ix.n_items; i++) {
        int l = ix.items[i].label;
        total[l]++;
        if (check_one(c, ix.items[i].path, decode, max_pixels, &e) == 0) {
            good[l]++;
        } else {
            printf("%s\n", e.msg);
            bad++;
        }
    }
    size_t usable = 0;
    int empty = 0, width = 5;
    for (int k = 0; k < ix.n_classes; k++) {
        usable += good[k];
        empty += good[k] == 0;
        int n = (int)strlen(ix.classes[k]);
        width = n > width ? n : width;
    }
    printf("%s: %d classes, %zu images, %zu bad (%s)\n", argv[optind], ix.n_classes, ix.n_items,
           bad, decode ? "decoded" : "headers read");
    for (int k = 0; k < ix.n_classes; k++)
        printf("  %-*s %8zu images%s\n", width, ix.classes[k], good[k],
               good[k] == total[k] ? "" : good[k] ? "  (some bad)" : "  (NONE readable)");
    int ok = usable > 0 && ix.n_classes >= 2 && empty == 0;
    if (!ok)
        fprintf(stderr, "tlsweep data check: %s is not usable: %s\n", argv[optind],
                usable == 0 ? "no readable image"
                : ix.n_classes < 2 ? "fewer than two classes"
                                   : "a class has no readable image");
    free(good);
    free(total);
    data_image_ctx_free(c);
    data_index_free(&ix);
    return ok ? 0 : 1;
}
