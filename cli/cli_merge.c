/* `tlsweep merge OUT`: the slices a job array wrote (`tlsweep run --slice
 * I/N` into OUT/slices/I) as one sweep: the leaderboard, results.csv,
 * results.json and best.tlm in OUT. Run by the array's dependent job. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "coordinator/coord.h"

int cli_merge(int argc, char **argv)
{
    static const char usage[] =
        "usage: tlsweep merge OUT [--quiet]\n"
        "  joins OUT/slices/0, 1, ... (from `tlsweep run --slice I/N`) into OUT:\n"
        "  leaderboard, results.csv, results.json, best.tlm. Exit 0 when every\n"
        "  trial of the sweep finished, 1 otherwise (the others are still merged).\n";
    static const struct option opts[] = {
        {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int quiet = 0, ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (ch) {
        case 'q': quiet = 1; break;
        default:
            fputs(usage, ch == 'h' ? stdout : stderr);
            return ch == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1) {
        fputs(usage, stderr);
        return 2;
    }
    tl_err e = {0};
    int status = coord_merge(argv[optind], quiet, &e);
    if (status)
        fprintf(stderr, "tlsweep merge: %s\n", e.msg);
    return status;
}
