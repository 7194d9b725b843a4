/* The search on the page: the summary's line on the method and the epochs
 * it saved, the leaderboard's "stopped" column, the Rungs section (how many
 * trials each rung let go on, and which it stopped) and the select metric
 * against each sampled axis. A trial's rung is the highest rung whose end
 * it reached (search.rungs holds the epochs of each rung's end). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/report/report_int.h"

static const char *const axis_names[REP_N_AXES] = {"learning_rate", "batch_size", "weight_decay",
                                                   "momentum", "label_smoothing"};

const char *rep_axis_name(rep_axis_kind a)
{
    return axis_names[a];
}

double rep_axis_value(const rep_trial *t, rep_axis_kind a)
{
    switch (a) {
    case REP_AXIS_LEARNING_RATE: return t->learning_rate;
    case REP_AXIS_BATCH_SIZE: return (double)t->batch_size;
    case REP_AXIS_WEIGHT_DECAY: return t->weight_decay;
    case REP_AXIS_MOMENTUM: return t->momentum;
    default: return t->label_smoothing;
    }
}

static int has_rungs(const rep_results *r)
{
    return r->search.n_rungs > 1;
}

static int stopped_by(const rep_trial *t, const char *why)
{
    return t->stop_reason && strcmp(t->stop_reason, why) == 0;
}

/* ---- the leaderboard's "stopped" column ------------------------------------- */

int rep_search_stops(const rep_results *r)
{
    if (has_rungs(r))
        return 1;
    for (int i = 0; i < r->n_trials; i++)
        if (stopped_by(&r->trials[i], "early_stopping"))
            return 1;
    return 0;
}

void rep_search_stop_head(tl_strbuf *b, int shown)
{
    if (shown)
        tl_strbuf_puts(b, "<th class=\"l\">stopped</th>");
}

/* why a finished trial ended, and after which epoch */
static void stop_text(tl_strbuf *b, const rep_trial *t)
{
    if (stopped_by(t, "rung"))
        tl_strbuf_printf(b, "rung %d, epoch %ld", t->rung, t->stopped_epoch);
    else if (stopped_by(t, "early_stopping"))
        tl_strbuf_printf(b, "early stopping, epoch %ld", t->stopped_epoch);
    else if (stopped_by(t, "epochs"))
        tl_strbuf_printf(b, "all %ld epochs", t->epochs);
    else if (t->stop_reason)
        rep_esc(b, t->stop_reason);
}

void rep_search_stop_cell(tl_strbuf *b, int shown, const rep_trial *t)
{
    if (!shown)
        return;
    tl_strbuf_puts(b, "</td><td class=\"l\">");
    if (t->done)
        stop_text(b, t);
}

/* ---- the summary's line ------------------------------------------------------- */

/* the rungs, and the epochs trained against every trial trained to the end */
static void epoch_budget(tl_strbuf *b, const rep_results *r)
{
    const rep_search *s = &r->search;
    long last = s->rungs[s->n_rungs - 1];
    double trained = 0; /* a sum of untrusted counts: no overflow */
    for (int i = 0; i < r->n_trials; i++)
        if (r->trials[i].epochs_done > 0)
            trained += (double)r->trials[i].epochs_done;
    double full = (double)last * r->n_trials;
    tl_strbuf_puts(b, "; rungs at ");
    for (int k = 0; k < s->n_rungs; k++)
        tl_strbuf_printf(b, "%s%ld", k ? ", " : "", s->rungs[k]);
    tl_strbuf_printf(b, " epochs (min_epochs %ld, reduction_factor %ld). Epochs trained: <b>%.0f</b> "
                        "of %.0f for every trial to epoch %ld (%.0f%%)",
                     s->min_epochs, s->reduction_factor, trained, full, last,
                     full > 0 ? 100.0 * trained / full : 0.0);
}

void rep_search_summary(tl_strbuf *b, const rep_results *r)
{
    const rep_search *s = &r->search;
    if (!s->method && !isfinite(r->busy_share))
        return;
    tl_strbuf_puts(b, "<p class=\"note\" id=\"search\">");
    if (s->method) {
        tl_strbuf_puts(b, "Search: <b>");
        rep_esc(b, s->method);
        tl_strbuf_printf(b, "</b>, %ld trials", s->trials ? s->trials : (long)r->n_trials);
        if (s->seed >= 0)
            tl_strbuf_printf(b, " drawn with seed %ld", s->seed);
        if (has_rungs(r))
            epoch_budget(b, r);
        tl_strbuf_puts(b, ". ");
    }
    if (isfinite(r->busy_share))
        tl_strbuf_printf(b, "Workers: %ld, busy %.0f%% of the wall time.", r->workers,
                         100 * r->busy_share);
    tl_strbuf_puts(b, "</p>\n");
}

/* ---- the Rungs section -------------------------------------------------------- */

typedef struct {
    long reached, went_on;  /* reached the rung's end; trained past it */
} rung_count;

/* Finished trials only: a running one has not settled where it stops. */
static void count_rungs(const rep_results *r, rung_count *n)
{
    const long *ends = r->search.rungs;
    for (int i = 0; i < r->n_trials; i++) {
        const rep_trial *t = &r->trials[i];
        if (!t->done)
            continue;
        for (int k = 0; k <= t->rung; k++) {
            n[k].reached++;
            n[k].went_on += k < t->rung || t->epochs_done > ends[k];
        }
    }
}

/* The trials whose highest rung is k, with their metric (the best up to
 * where they ended); one that went on and early stopping ended before the
 * next rung says so. */
static void rung_trials(tl_strbuf *b, const rep_results *r, int k)
{
    int n = 0;
    for (int i = 0; i < r->n_trials; i++) {
        const rep_trial *t = &r->trials[i];
        if (!t->done || t->rung != k)
            continue;
        tl_strbuf_puts(b, n++ ? "; " : "");
        rep_esc(b, t->id);
        tl_strbuf_puts(b, " <b>");
        if (isfinite(t->metric))
            tl_strbuf_printf(b, "%.4f", t->metric);
        else
            tl_strbuf_puts(b, "&ndash;");
        tl_strbuf_puts(b, "</b>");
        if (stopped_by(t, "early_stopping"))
            tl_strbuf_printf(b, " (early stopping, epoch %ld)", t->stopped_epoch);
    }
}

static void rung_table(tl_strbuf *b, const rep_results *r, const rung_count *n)
{
    tl_strbuf_puts(b, "<table class=\"rungs\">\n<tr><th>rung</th><th>epochs</th><th>reached</th>"
                      "<th>went on</th><th>ended here</th><th class=\"l\">trials whose last rung "
                      "this is (");
    rep_esc(b, r->metric);
    tl_strbuf_puts(b, ")</th></tr>\n");
    for (int k = 0; k < r->search.n_rungs; k++) {
        tl_strbuf_printf(b, "<tr><td>%d</td><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td>"
                            "<td class=\"l\" style=\"white-space:normal;font-size:11.5px\">",
                         k, r->search.rungs[k], n[k].reached, n[k].went_on,
                         n[k].reached - n[k].went_on);
        rung_trials(b, r, k);
        tl_strbuf_puts(b, "</td></tr>\n");
    }
    tl_strbuf_puts(b, "</table>\n");
}

#define FW 1050
#define FL 170 /* label column */
#define FR 330 /* count column */
#define FROW 26

/* A funnel: per rung, a bar as long as the trials that reached it, its
 * dark part those that went on. */
static void rung_funnel(tl_strbuf *b, const rep_results *r, const rung_count *n)
{
    int h = 30 + r->search.n_rungs * FROW + 8;
    long most = n[0].reached > 0 ? n[0].reached : 1;
    const double full = FW - FL - FR;
    tl_strbuf_printf(b, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                        "role=\"img\" aria-label=\"Trials per rung\">\n"
                        "<text x=\"0\" y=\"18\" class=\"ct\">Trials per rung</text>\n",
                     FW, h, FW, h);
    for (int k = 0; k < r->search.n_rungs; k++) {
        double y = 30 + k * FROW, w = full * (double)n[k].reached / (double)most;
        double won = full * (double)n[k].went_on / (double)most;
        tl_strbuf_printf(b, "<g><title>rung %d (epoch %ld): %ld reached, %ld went on</title>"
                            "<text x=\"%d\" y=\"%.0f\" class=\"bl\" text-anchor=\"end\">rung %d "
                            "&middot; epoch %ld</text>"
                            "<rect x=\"%d\" y=\"%.0f\" width=\"%.1f\" height=\"%d\" fill=\"#9ecae1\"/>"
                            "<rect x=\"%d\" y=\"%.0f\" width=\"%.1f\" height=\"%d\" fill=\"#2171b5\"/>"
                            "<text x=\"%.1f\" y=\"%.0f\" class=\"bv\">%ld reached &middot; %ld went "
                            "on &middot; %ld ended here</text></g>\n",
                         k, r->search.rungs[k], n[k].reached, n[k].went_on, FL - 8, y + 17, k,
                         r->search.rungs[k], FL, y + 3, w, FROW - 6, FL, y + 3, won, FROW - 6,
                         FL + w + 6, y + 17, n[k].reached, n[k].went_on,
                         n[k].reached - n[k].went_on);
    }
    tl_strbuf_puts(b, "</svg>\n");
}

void rep_search_rungs(tl_strbuf *b, const rep_results *r)
{
    if (!has_rungs(r))
        return;
    rung_count *n = calloc((size_t)r->search.n_rungs, sizeof *n);
    if (!n) {
        b->oom = 1;
        return;
    }
    count_rungs(r, n);
    int done = 0;
    for (int i = 0; i < r->n_trials; i++)
        done += r->trials[i].done;
    tl_strbuf_puts(b, "<h2>Rungs</h2>\n<p class=\"note\">");
    rep_esc(b, r->search.method);
    tl_strbuf_printf(b, ": a trial trains to a rung's end and goes on only if it ranks among the "
                        "rung's best. Counts are of the %d finished trials (%ld did not reach the "
                        "first rung's end); a trial is listed at the last rung it reached, with its "
                        "best ",
                     done, done - n[0].reached);
    rep_esc(b, r->metric);
    tl_strbuf_puts(b, " up to where it ended.</p>\n");
    rung_funnel(b, r, n);
    rung_table(b, r, n);
    free(n);
}

/* ---- the metric against each sampled axis --------------------------------------- */

#define SW 530
#define SH 300
#define SML 56
#define SMR 16
#define SMT 34
#define SMB 42

typedef struct {
    double lo, hi;
    int log;
} span;

/* v's place along [0, 1] of the span */
static double span_at(const span *s, double v)
{
    if (s->log)
        return (log10(v) - log10(s->lo)) / (log10(s->hi) - log10(s->lo));
    return (v - s->lo) / (s->hi - s->lo);
}

/* Each trial's colour: the last rung it reached in a rung search, else its
 * mode (the k-th mode met in rank order). */
static void point_groups(const rep_results *r, int *group)
{
    int n = 0;
    for (int i = 0; i < r->n_trials; i++) {
        const rep_trial *t = &r->trials[i];
        int k = 0;
        if (has_rungs(r)) {
            group[i] = t->rung;
            continue;
        }
        while (k < i && strcmp(r->trials[k].mode, t->mode) != 0)
            k++;
        group[i] = k < i ? group[k] : n++;
    }
}

static int plotted(const rep_trial *t, const rep_sampled *a)
{
    double v = rep_axis_value(t, a->axis);
    return t->done && isfinite(t->metric) && isfinite(v) &&
           (a->dist != REP_DIST_LOG_UNIFORM || v > 0);
}

static void x_ticks(tl_strbuf *b, const span *x)
{
    const double pw = SW - SML - SMR, base = SH - SMB;
    int n = 0;
    if (x->log) /* decades */
        for (int d = (int)ceil(log10(x->lo) - 1e-9); d <= (int)floor(log10(x->hi) + 1e-9); d++, n++) {
            double px = SML + span_at(x, pow(10, d)) * pw;
            tl_strbuf_printf(b, "<line x1=\"%.2f\" x2=\"%.2f\" y1=\"%d\" y2=\"%.0f\" class=\"grid\"/>"
                                "<text x=\"%.2f\" y=\"%.0f\" class=\"tick\" text-anchor=\"middle\">1e%d"
                                "</text>\n",
                             px, px, SMT, base, px, base + 17, d);
        }
    if (n)
        return;
    double step = rep_nice_step(x->hi - x->lo, 6), first = ceil(x->lo / step - 1e-9) * step;
    for (int k = 0; k <= 20 && first + k * step <= x->hi + step * 1e-9; k++) {
        double v = first + k * step, px = SML + span_at(x, v) * pw;
        tl_strbuf_printf(b, "<line x1=\"%.2f\" x2=\"%.2f\" y1=\"%d\" y2=\"%.0f\" class=\"grid\"/>"
                            "<text x=\"%.2f\" y=\"%.0f\" class=\"tick\" text-anchor=\"middle\">%g"
                            "</text>\n",
                         px, px, SMT, base, px, base + 17, fabs(v) < step * 1e-9 ? 0.0 : v);
    }
}

static void y_ticks(tl_strbuf *b, const span *y, double step)
{
    const double pw = SW - SML - SMR, ph = SH - SMT - SMB;
    for (int k = 0; k <= 20 && y->lo + k * step <= y->hi + step * 1e-6; k++) {
        double v = y->lo + k * step, py = SMT + ph - span_at(y, v) * ph;
        tl_strbuf_printf(b, "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.2f\" y2=\"%.2f\" class=\"grid\"/>"
                            "<text x=\"%d\" y=\"%.2f\" class=\"tick\" text-anchor=\"end\">%g</text>\n",
                         SML, SML + pw, py, py, SML - 6, py + 4, fabs(v) < step * 1e-9 ? 0.0 : v);
    }
}

static void point(tl_strbuf *b, const rep_results *r, int i, const rep_sampled *a, const span *x,
                  const span *y, int group)
{
    const rep_trial *t = &r->trials[i];
    const double pw = SW - SML - SMR, ph = SH - SMT - SMB;
    double v = rep_axis_value(t, a->axis);
    double px = SML + span_at(x, v) * pw, py = SMT + ph - span_at(y, t->metric) * ph;
    tl_strbuf_printf(b, "<circle class=\"pt\" cx=\"%.2f\" cy=\"%.2f\" r=\"%s\" fill=\"%s\" "
                        "fill-opacity=\"0.85\" stroke=\"%s\"><title>",
                     px, py, i == r->best ? "6.5" : "4.5", group >= 0 ? rep_colour(group) : "#999",
                     i == r->best ? "#000" : "#fff");
    rep_esc(b, t->id);
    tl_strbuf_printf(b, ": %.4f at %s %g</title></circle>\n", t->metric, axis_names[a->axis], v);
}

/* the y span: the plotted metrics, widened to round steps; returns the
 * step, 0 when no point is plotted */
static double metric_span(const rep_results *r, const rep_sampled *a, span *y)
{
    y->lo = INFINITY, y->hi = -INFINITY, y->log = 0;
    for (int i = 0; i < r->n_trials; i++)
        if (plotted(&r->trials[i], a)) {
            y->lo = fmin(y->lo, r->trials[i].metric);
            y->hi = fmax(y->hi, r->trials[i].metric);
        }
    if (!(y->hi >= y->lo))
        return 0;
    double w = y->hi - y->lo;
    double step = rep_nice_step(w > 0 ? w : fabs(y->hi) > 0 ? fabs(y->hi) / 10 : 0.1, 5);
    y->lo = floor(y->lo / step) * step;
    y->hi = fmax(ceil(y->hi / step) * step, y->lo + step);
    return step;
}

/* the x span: the axis's range, widened to any value outside it */
static void axis_span(const rep_results *r, const rep_sampled *a, span *x)
{
    x->lo = a->low, x->hi = a->high, x->log = a->dist == REP_DIST_LOG_UNIFORM;
    for (int i = 0; i < r->n_trials; i++)
        if (plotted(&r->trials[i], a)) {
            x->lo = fmin(x->lo, rep_axis_value(&r->trials[i], a->axis));
            x->hi = fmax(x->hi, rep_axis_value(&r->trials[i], a->axis));
        }
}

static void scatter(tl_strbuf *b, const rep_results *r, const rep_sampled *a, const int *group)
{
    const double pw = SW - SML - SMR, ph = SH - SMT - SMB;
    span x, y;
    axis_span(r, a, &x);
    tl_strbuf_printf(b, "<svg class=\"chart scatter\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                        "role=\"img\" aria-label=\"%s\">\n<text x=\"%d\" y=\"20\" class=\"ct\">",
                     SW, SH, SW, SH, axis_names[a->axis], SML);
    rep_esc(b, r->metric);
    tl_strbuf_printf(b, " against %s%s</text>\n", axis_names[a->axis], x.log ? " (log scale)" : "");
    double ystep = metric_span(r, a, &y);
    if (ystep == 0) {
        tl_strbuf_printf(b, "<text x=\"%.0f\" y=\"%.0f\" class=\"muted\" text-anchor=\"middle\">"
                            "no finished trial</text>\n</svg>\n",
                         SML + pw / 2, SMT + ph / 2);
        return;
    }
    x_ticks(b, &x);
    y_ticks(b, &y, ystep);
    tl_strbuf_printf(b, "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" class=\"axis\"/>\n"
                        "<text x=\"%.0f\" y=\"%d\" class=\"tick\" text-anchor=\"middle\">%s</text>\n",
                     SML, SML + pw, SMT + ph, SMT + ph, SML + pw / 2, SH - 6, axis_names[a->axis]);
    /* worst first, so the best trial is drawn on top */
    for (int i = r->n_trials - 1; i >= 0; i--)
        if (plotted(&r->trials[i], a))
            point(b, r, i, a, &x, &y, group[i]);
    tl_strbuf_puts(b, "</svg>\n");
}

static void legend_entry(tl_strbuf *b, int group)
{
    tl_strbuf_printf(b, "<div><span style=\"display:inline-block;width:10px;height:10px;"
                        "border-radius:50%%;margin-right:6px;background:%s\"></span>",
                     group >= 0 ? rep_colour(group) : "#999");
}

/* what the points' colours say: rungs, or the modes in rank order */
static void scatter_legend(tl_strbuf *b, const rep_results *r, const int *group)
{
    int shown = 0;
    tl_strbuf_puts(b, "<div class=\"legend\">\n");
    if (has_rungs(r)) {
        int early = 0; /* finished before the first rung's end: early stopping */
        for (int i = 0; i < r->n_trials; i++)
            early |= r->trials[i].done && group[i] < 0;
        if (early) {
            legend_entry(b, -1);
            tl_strbuf_puts(b, "before the first rung's end</div>\n");
        }
        for (int k = 0; k < r->search.n_rungs; k++) {
            legend_entry(b, k);
            tl_strbuf_printf(b, "reached rung %d (epoch %ld)</div>\n", k, r->search.rungs[k]);
        }
    } else {
        for (int i = 0; i < r->n_trials; i++) {
            if (group[i] != shown) /* a mode met before */
                continue;
            legend_entry(b, shown++);
            rep_esc(b, r->trials[i].mode);
            tl_strbuf_puts(b, "</div>\n");
        }
    }
    tl_strbuf_puts(b, "</div>\n");
}

void rep_search_sampled(tl_strbuf *b, const rep_results *r)
{
    if (r->search.n_sampled == 0)
        return;
    int *group = malloc(((size_t)r->n_trials + 1) * sizeof *group);
    if (!group) {
        b->oom = 1;
        return;
    }
    point_groups(r, group);
    tl_strbuf_puts(b, "<h2>Sampled axes</h2>\n<p class=\"note\">");
    rep_esc(b, r->metric);
    tl_strbuf_printf(b, " of each finished trial against the value drawn for it, over the range it "
                        "was drawn from; the best trial has a black ring. Hover a point for its "
                        "trial. The colour is %s.</p>\n",
                     has_rungs(r) ? "the last rung the trial reached" : "the trial's mode");
    scatter_legend(b, r, group);
    tl_strbuf_puts(b, "<div class=\"charts\">\n");
    for (int k = 0; k < r->search.n_sampled; k++)
        scatter(b, r, &r->search.sampled[k], group);
    tl_strbuf_puts(b, "</div>\n");
    free(group);
}
