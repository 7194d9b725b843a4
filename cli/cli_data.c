/* `tlsweep data <subcommand>`: dataset preparation. Subcommands are a table
 * like the top-level one: adding one is one line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/data/fashion_mnist.h"
#include "cli/cli.h"

static int parse_int(const char *s, int lo, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > 1 << 20)
        return -1;
    *out = (int)v;
    return 0;
}

static int data_fashion_mnist(int argc, char **argv)
{
    static const char usage[] =
        "usage: tlsweep data fashion-mnist OUT [--per-class N] [--size S] [--src DIR]\n"
        "  writes OUT/train/<class>/<index>.jpg and OUT/test/... (RGB JPEG, S x S, default 96)\n"
        "  from the idx files in DIR (default " FMNIST_DEFAULT_DIR ", Debian dataset-fashion-mnist);\n"
        "  --per-class N keeps the first N images of each class per split (default: all)\n";
    const char *src = FMNIST_DEFAULT_DIR;
    fmnist_write_cfg cfg = {.size = 96, .per_class = 0, .quality = 90};
    static const struct option opts[] = {
        {"per-class", required_argument, 0, 'n'}, {"size", required_argument, 0, 's'},
        {"src", required_argument, 0, 'd'},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:s:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_int(optarg, 1, &cfg.per_class)) {
                fprintf(stderr, "tlsweep data fashion-mnist: --per-class needs an integer >= 1\n");
                return 2;
            }
            break;
        case 's':
            if (parse_int(optarg, 8, &cfg.size) || cfg.size > 4096) {
                fprintf(stderr, "tlsweep data fashion-mnist: --size needs an integer in 8..4096\n");
                return 2;
            }
            break;
        case 'd': src = optarg; break;
        default:
            fputs(usage, c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1) {
        fputs(usage, stderr);
        return 2;
    }
    const char *out = argv[optind];
    size_t written[2];
    tl_err e = {0};
    if (fmnist_convert(src, out, &cfg, written, &e)) {
        fprintf(stderr, "tlsweep data: %s\n", e.msg);
        return 1;
    }
    printf("fashion-mnist: %zu train + %zu test JPEGs (%dx%d RGB, %d classes) in %s/{train,test}\n",
           written[0], written[1], cfg.size, cfg.size, FMNIST_CLASSES, out);
    return 0;
}

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} data_command;

static const data_command data_commands[] = {
    {"fashion-mnist", data_fashion_mnist, "convert Debian's Fashion-MNIST to class folders of JPEGs"},
    {"check", cli_data_check, "index DIR and read every image: bad files, images per class"},
};
#define NDATA (sizeof data_commands / sizeof *data_commands)

static void data_usage(FILE *f)
{
    fprintf(f, "usage: tlsweep data <subcommand> [args]\n\nsubcommands:\n");
    for (size_t i = 0; i < NDATA; i++)
        fprintf(f, "  %-14s %s\n", data_commands[i].name, data_commands[i].summary);
}

int cli_data(int argc, char **argv)
{
    if (argc < 2) {
        data_usage(stderr);
        return 2;
    }
    for (size_t i = 0; i < NDATA; i++)
        if (strcmp(argv[1], data_commands[i].name) == 0)
            return data_commands[i].fn(argc - 1, argv + 1);
    int help = !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
    if (!help)
        fprintf(stderr, "tlsweep data: unknown subcommand '%s'\n\n", argv[1]);
    data_usage(help ? stdout : stderr);
    return help ? 0 : 2;
}
