/* tlsweep merge: the slices of a job array into one run's results. */
#include "coordinator/coord_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base/fileio.h"
#include "common/weights/model_file.h"
#include "coordinator/report/report.h"

/* ---- merging the slices of a job array ---------------------------------------------- */

/* best.tlm of the winning slice, checked as a model on the way */
static int copy_model(const char *from, const char *to, tl_err *e)
{
    unsigned char *buf;
    size_t n;
    int rc = tl_read_file(from, SIZE_MAX - 1, &buf, &n, e);
    if (!rc)
        rc = model_write_bytes(to, buf, n, e);
    free(buf);
    return rc;
}

int coord_merge(const char *out, int quiet, tl_err *e)
{
    coord cc, *c = &cc;
    memset(c, 0, sizeof *c);
    coord_opts o = {.quiet = quiet};
    c->o = &o;
    c->out = out;
    sweep s;
    memset(&s, 0, sizeof s);
    char *text = NULL;
    int status = 1, n_slices = 0;
    char p[4096];
    /* slices are numbered from 0; the first gap ends the list */
    struct stat sb;
    for (;; n_slices++) {
        snprintf(p, sizeof p, "%s/slices/%d/journal", out, n_slices);
        if (stat(p, &sb) != 0)
            break;
    }
    if (!n_slices) {
        tl_errf(e, TL_ENOTFOUND, "%s/slices/0/journal: no slice of a job array to merge", out);
        goto done;
    }
    snprintf(p, sizeof p, "%s/slices/0/sweep.yaml", out);
    size_t len;
    if (sweep_load_text(&s, p, &text, &len, e))
        goto done;
    c->s = &s;
    if (coord__state_init(c, NULL, 0, e) || sweep_bind_data(&s, c->fingerprint, e))
        goto done;
    for (int k = 0; k < n_slices; k++) {
        snprintf(p, sizeof p, "%s/slices/%d/journal", out, k);
        c->replay_slice = k;
        size_t ignored = 0;
        int rc = journal_scan(p, JOURNAL_STRICT, coord__replay, c, &ignored, e);
        if (rc == TL_EFORMAT && !c->err.code && strstr(e->msg, "damaged record at byte")) {
            /* damage in the middle: the slice's own run repairs it */
            size_t n = strlen(e->msg);
            snprintf(e->msg + n, sizeof e->msg - n, " (slice %d: tlsweep run SWEEP.yaml "
                     "--slice %d/%d --repair, then merge again)", k, k, n_slices);
        }
        if (rc) {
            if (c->err.code) /* the coord__replay's own failure */
                *e = c->err;
            goto done;
        }
        if (ignored)
            coord_log(c, "warning: %s: %zu bytes after the last whole record ignored (a torn "
                         "append; that slice's next run cuts them)", p, ignored);
    }
    if (c->best >= 0) {
        char from[4096];
        snprintf(from, sizeof from, "%s/slices/%d/best.tlm", out, c->trials[c->best].slice);
        snprintf(p, sizeof p, "%s/best.tlm", out);
        if (copy_model(from, p, e))
            goto done;
    }
    tl_err oe = {0};
    if (coord_write_results(c, &oe) || report_write(out, &oe)) {
        *e = oe;
        goto done;
    }
    coord_leaderboard(c);
    coord_log(c, "report: %s/report.html", out);
    int done_n = coord_count(c, TR_DONE);
    coord_log(c, "merged %d slice%s: %d of %zu trials finished", n_slices,
              n_slices == 1 ? "" : "s", done_n, s.n_trials);
    if ((size_t)done_n == s.n_trials)
        status = 0;
    else
        tl_errf(e, TL_EINVAL, "%s: %zu of %zu trials have not finished; re-run their slices",
                out, s.n_trials - (size_t)done_n, s.n_trials);
done:
    if (c->s)
        coord__free_state(c);
    sweep_free(&s);
    free(text);
    return status;
}
