/* `tlsweep report OUT`: OUT/report.html from OUT/results.json, again (a run
 * writes it at its end); prints the path written. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "coordinator/report/report.h"

int cli_report(int argc, char **argv)
{
    static const char usage[] =
        "usage: tlsweep report OUT\n"
        "  writes OUT/report.html (one self-contained page: leaderboard, learning curves,\n"
        "  the grid as a heat map, the best trial's confusion matrix, bad images, time per\n"
        "  phase) from OUT/results.json\n";
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fputs(usage, stderr);
        return 2;
    }
    tl_err e = {0};
    if (report_write(argv[1], &e)) {
        fprintf(stderr, "tlsweep report: %s\n", e.msg);
        return 1;
    }
    printf("%s/report.html\n", argv[1]);
    return 0;
}
