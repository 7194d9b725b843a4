/* `tlsweep import SRC -o OUT.tlm`: any weights file the engine can read
 * (tfjs layers model, Keras .h5, safetensors with Keras or torch names, a
 * .tlm) into a native model file, checked against the backbone it is for.
 * The import itself is net_import (worker/net/net_import.h); this file
 * turns argv into its options and prints what it did. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "worker/net/net_import.h"

/* What net_import did, as far as it got: the source and the model once the
 * net is built, the weights once matched, the file once written. */
static void print_result(const char *src, const char *out, const net_import_result *r)
{
    if (r->stage < NET_IMPORT_BUILT)
        return;
    printf("import %s: %s", src, net_import_format_name(r->format));
    if (r->summary[0])
        printf(" (%s)", r->summary);
    printf("\nmodel: %s", r->backbone);
    if (r->alpha > 0)
        printf(" alpha %.2f", (double)r->alpha);
    printf(" %dx%d, %s convention, preprocessing %s, %s\n", r->size, r->size,
           model_convention_name(r->convention), model_preproc_name(r->preproc),
           r->num_classes ? "with its classifier" : "backbone only");
    if (r->stage < NET_IMPORT_LOADED)
        return;
    if (r->torch_names) {
        printf("weights: %d parameters loaded (torch names), %d missing\n", r->load.matched,
               r->load.missing);
    } else {
        char line[256];
        printf("weights: %s\n", net_load_summary_str(&r->load, line, sizeof line));
        if (r->load.unused)
            fprintf(stderr, "warning: %d tensors fit no parameter, first '%s'\n", r->load.unused,
                    r->load.first_unused);
    }
    if (r->stage < NET_IMPORT_WRITTEN)
        return;
    printf("wrote %s: %zu tensors, %.1f MiB (source sha256 %s)\n", out, r->n_tensors,
           r->out_bytes / 1048576.0, r->sha256);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tlsweep import SRC -o OUT.tlm [--backbone B] [--alpha A] [--size S]\n"
               "                     [--convention keras|torchvision] [--with-head]\n"
               "                     [--preprocessing tf|caffe|torch|unit]\n"
               "SRC: a tfjs model (directory, model.json, nsfwjs model.min.js), a Keras .h5,\n"
               "safetensors (Keras or torch names) or a .tlm.\n");
}

int cli_import(int argc, char **argv)
{
    const char *out = NULL, *backbone = NULL, *conv_flag = NULL, *pre_flag = NULL;
    float alpha = 0;
    int size = 0, with_head = 0;
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},     {"backbone", required_argument, 0, 'b'},
        {"alpha", required_argument, 0, 'a'},      {"size", required_argument, 0, 's'},
        {"convention", required_argument, 0, 'c'}, {"with-head", no_argument, 0, 'H'},
        {"preprocessing", required_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:b:a:s:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'b': backbone = optarg; break;
        case 'a': alpha = (float)atof(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'c': conv_flag = optarg; break;
        case 'H': with_head = 1; break;
        case 'p': pre_flag = optarg; break;
        default: usage(c == 'h' ? stdout : stderr); return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1 || !out) {
        usage(stderr);
        return 2;
    }
    net_import_opts o = NET_IMPORT_OPTS_DEFAULT;
    if (pre_flag && (o.preproc = model_preproc_parse(pre_flag)) < 0) {
        fprintf(stderr, "tlsweep import: --preprocessing must be tf, caffe, torch or unit\n");
        return 2;
    }
    if (conv_flag && (o.convention = model_convention_parse(conv_flag)) < 0) {
        fprintf(stderr, "tlsweep import: --convention must be keras or torchvision\n");
        return 2;
    }
    o.backbone = backbone;
    o.alpha = alpha;
    o.size = size;
    o.with_head = with_head;
    const char *src = argv[optind];
    net_import_result r;
    tl_err e = {0};
    int rc = net_import(src, out, &o, &r, &e);
    print_result(src, out, &r);
    if (rc) {
        fprintf(stderr, "tlsweep import: %s\n", e.msg);
        return 1;
    }
    return 0;
}
