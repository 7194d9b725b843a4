/* `tlsweep status OUT [--json] [--watch [SECONDS]]`: a running or finished
 * sweep's progress from OUT/journal (coordinator/coord_status.h), read
 * without disturbing the coordinator writing it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/base/clock.h"
#include "coordinator/coord_status.h"

static const char usage[] =
    "usage: tlsweep status OUT [--json] [--watch [SECONDS]]\n"
    "  what the sweep writing OUT has done, from OUT/journal (read-only: a running\n"
    "  sweep is not disturbed): trials done/running/queued/failed, each running\n"
    "  trial's epoch and last metrics, the best so far, elapsed time and ETA, the\n"
    "  workers; \"lost\" when the coordinator is gone without a Stop record (exit 0)\n"
    "  --json            one JSON object instead of lines\n"
    "  --watch [SECONDS] print it again every SECONDS (default 5) until the sweep ends\n"
    "                    (or is lost)\n";

typedef struct {
    const char *out;
    int json;
    double watch_s;  /* 0: once */
} status_args;

/* 0, or 2 after printing the usage to stderr */
static int parse_args(int argc, char **argv, status_args *a)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            a->json = 1;
        } else if (!strcmp(argv[i], "--watch")) {
            a->watch_s = 5;
            /* SECONDS is optional: a word that is not a number is OUT */
            char *end;
            double v = i + 1 < argc ? strtod(argv[i + 1], &end) : 0;
            if (i + 1 < argc && end != argv[i + 1] && *end == '\0') {
                if (!(v >= 0.1 && v <= 86400)) {
                    fprintf(stderr, "tlsweep status: --watch %s: expected seconds in [0.1, 86400]\n",
                            argv[i + 1]);
                    return 2;
                }
                a->watch_s = v;
                i++;
            }
        } else if (argv[i][0] != '-' && !a->out) {
            a->out = argv[i];
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!a->out) {
        fputs(usage, stderr);
        return 2;
    }
    return 0;
}

/* One reading, printed; *running says whether the sweep goes on. 0 or 1. */
static int show(const status_args *a, int clear, int *running)
{
    coord_status st;
    tl_err e = {0};
    if (coord_status_read(&st, a->out, tl_unix_ms(), &e)) {
        fprintf(stderr, "tlsweep status: %s\n", e.msg);
        return 1;
    }
    *running = st.state == COORD_STATUS_RUNNING;
    tl_strbuf b = TL_STRBUF_INIT;
    char *json = NULL;
    if (a->json)
        json = coord_status_json(&st);
    else
        coord_status_text(&st, &b);
    int rc = 0;
    if (a->json ? !json : b.oom) {
        fprintf(stderr, "tlsweep status: out of memory\n");
        rc = 1;
    } else {
        if (clear)
            fputs("\033[H\033[J", stdout);
        fputs(a->json ? json : b.s, stdout);
        if (a->json)
            fputc('\n', stdout);
        fflush(stdout);
        if (st.journal_note[0])
            fprintf(stderr, "warning: %s\n", st.journal_note);
    }
    free(json);
    tl_strbuf_free(&b);
    coord_status_free(&st);
    return rc;
}

int cli_status(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(usage, stdout);
        return 0;
    }
    status_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc;
    /* a terminal is redrawn in place; a pipe or a log gets one reading after another */
    int clear = a.watch_s > 0 && !a.json && isatty(1);
    int running = 0;
    while (!(rc = show(&a, clear, &running)) && a.watch_s > 0 && running)
        usleep((useconds_t)(a.watch_s * 1e6));
    return rc;
}
