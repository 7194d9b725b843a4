/* results.json (coordinator/report/report.c): a hand-edited, truncated or
 * foreign file must give a one-line error or a page, never a crash. The
 * input is written to <dir>/results.json in a folder of this process's own
 * and report_write renders <dir>/report.html from it, as `tlsweep report`
 * does; the page is removed after each input. */
#include "coordinator/report/report.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[256];

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void cleanup(void)
{
    char p[512];
    path_in(p, sizeof p, "results.json");
    unlink(p);
    path_in(p, sizeof p, "report.html");
    unlink(p);
    rmdir(dir);
}

/* the folder, made at the first input and removed at exit */
static void scratch_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tlsweep-fuzz-report-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror(dir);
        abort();
    }
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char p[512];
    if (!dir[0])
        scratch_dir();
    path_in(p, sizeof p, "results.json");
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(p);
        abort();
    }
    tl_err e;
    report_write(dir, &e);
    path_in(p, sizeof p, "report.html");
    unlink(p);
    return 0;
}
