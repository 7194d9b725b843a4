/* `tlsweep export MODEL.tlm -o OUT [--format onnx|safetensors|tfjs|keras]
 * [--with-preprocessing]`:
 * a native model file to a format runtimes load, class names and
 * preprocessing with it. The export itself is net_export
 * (worker/net/net_export.h); this file turns argv into its options and
 * prints what it wrote. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "worker/net/net_export.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tlsweep export MODEL.tlm -o OUT [--format onnx|safetensors|tfjs|keras]\n"
               "                     [--with-preprocessing]\n"
               "The format is told by OUT's name (.onnx, .safetensors, .h5, model.json or DIR/)\n"
               "unless --format says it.\n"
               "--with-preprocessing (ONNX): the model takes RGB 0-255 and scales it itself.\n");
}

int cli_export(int argc, char **argv)
{
    const char *out = NULL, *format = NULL;
    int with_pre = 0;
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},
        {"format", required_argument, 0, 'f'},
        {"with-preprocessing", no_argument, 0, 'P'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'f': format = optarg; break;
        case 'P': with_pre = 1; break;
        default: usage(c == 'h' ? stdout : stderr); return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1 || !out) {
        usage(stderr);
        return 2;
    }
    net_export_opts o = {NET_EXPORT_UNKNOWN, with_pre};
    if (format && (o.format = net_export_format_parse(format)) == NET_EXPORT_UNKNOWN) {
        fprintf(stderr, "tlsweep export: --format must be onnx, safetensors, tfjs or keras, got '%s'\n", format);
        return 2;
    }
    net_export_result r;
    tl_err e = {0};
    if (net_export(argv[optind], out, &o, &r, &e)) {
        fprintf(stderr, "tlsweep export: %s\n", e.msg);
        return 1;
    }
    printf("wrote %s: %s, ", out, net_export_format_name(r.format));
    if (r.nodes)
        printf("%d nodes, ", r.nodes);
    printf("%d weight tensors, %.1f MiB\n", r.tensors, r.out_bytes / 1048576.0);
    printf("input: %s\noutput: %s\n", r.input, r.output);
    return 0;
}
