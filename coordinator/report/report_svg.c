/* The report's HTML escaping and its charts: line charts of the learning
 * curves and horizontal bar charts, drawn as inline SVG (no scripts, no
 * fonts or files fetched), and the colour scales of the heat maps. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/report/report_int.h"

/* ---- escaping --------------------------------------------------------------- */

void rep_esc(tl_strbuf *b, const char *s)
{
    for (const char *q = s; *q; q++) {
        switch (*q) {
        case '&': tl_strbuf_puts(b, "&amp;"); break;
        case '<': tl_strbuf_puts(b, "&lt;"); break;
        case '>': tl_strbuf_puts(b, "&gt;"); break;
        case '"': tl_strbuf_puts(b, "&quot;"); break;
        case '\'': tl_strbuf_puts(b, "&#39;"); break;
        default: tl_strbuf_putc(b, *q); break;
        }
    }
}

/* ---- colours -------------------------------------------------------------------- */

/* d3's category10: ten colours told apart at a glance */
static const char *const palette[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
static const char *const dashes[4] = {"", "7 3", "2 2", "9 3 2 3"};

const char *rep_colour(int k)
{
    return palette[k % 10];
}

const char *rep_dash(int k)
{
    return dashes[(k / 10) % 4];
}

int rep_heat(double t, char out[8])
{
    /* ColorBrewer's Blues, light to dark */
    static const unsigned char stops[5][3] = {
        {247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
    if (!(t >= 0))
        t = 0;
    if (t > 1)
        t = 1;
    double x = t * 4;
    int i = x >= 4 ? 3 : (int)x;
    double f = x - i;
    unsigned char c[3];
    for (int k = 0; k < 3; k++)
        c[k] = (unsigned char)lround(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]));
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
    return t > 0.55;
}

/* ---- axes --------------------------------------------------------------------- */

/* a round step (1, 2 or 5 times a power of ten) giving about n ticks up to max */
double rep_nice_step(double max, int n)
{
    double raw = max / n;
    double mag = pow(10, floor(log10(raw)));
    double norm = raw / mag;
    return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

/* A label at most max_chars long, cut on a UTF-8 character boundary. */
static void esc_cut(tl_strbuf *b, const char *s, size_t max_chars)
{
    size_t n = 0, i = 0;
    for (; s[i]; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80 && n++ == max_chars)
            break;
    if (!s[i]) {
        rep_esc(b, s);
        return;
    }
    char *cut = strndup(s, i);
    if (!cut) {
        b->oom = 1;
        return;
    }
    rep_esc(b, cut);
    tl_strbuf_puts(b, "\xe2\x80\xa6"); /* ellipsis */
    free(cut);
}

/* ---- learning curves ------------------------------------------------------------ */

#define CW 530
#define CH 300
#define ML 56
#define MR 14
#define MT 34
#define MB 42

static double field(const rep_epoch *ep, size_t off)
{
    double v;
    memcpy(&v, (const char *)ep + off, sizeof v);
    return v;
}

static void curve(tl_strbuf *b, const rep_trial *t, size_t off, double x0, double x1, double ytop,
                  int best)
{
    const double pw = CW - ML - MR, ph = CH - MT - MB;
    double sx = x1 > x0 ? pw / (x1 - x0) : 0, sy = ph / ytop;
    const char *col = rep_colour(t->colour), *dash = rep_dash(t->colour);
    int open = 0;
    for (int k = 0; k < t->n_hist; k++) {
        double y = field(&t->hist[k], off), x = t->hist[k].epoch;
        if (!isfinite(y)) { /* a gap */
            if (open)
                tl_strbuf_puts(b, "\"/>\n");
            open = 0;
            continue;
        }
        if (y > ytop)
            y = ytop;
        if (y < 0)
            y = 0;
        double px = x1 > x0 ? ML + (x - x0) * sx : ML + pw / 2, py = MT + ph - y * sy;
        if (!open) {
            tl_strbuf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s%s%s "
                          "stroke-linejoin=\"round\"%s points=\"",
                       col, best ? "3.5" : "1.6", dash[0] ? " stroke-dasharray=\"" : "", dash,
                       dash[0] ? "\"" : "", best ? "" : " opacity=\"0.85\"");
            open = 1;
        }
        tl_strbuf_printf(b, "%.1f,%.1f ", px, py);
    }
    if (open)
        tl_strbuf_puts(b, "\"/>\n");
    if (t->n_hist > 40)
        return;
    for (int k = 0; k < t->n_hist; k++) {
        double y = field(&t->hist[k], off), x = t->hist[k].epoch;
        if (!isfinite(y))
            continue;
        y = y > ytop ? ytop : y < 0 ? 0 : y;
        double px = x1 > x0 ? ML + (x - x0) * sx : ML + pw / 2, py = MT + ph - y * sy;
        tl_strbuf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" fill=\"%s\"/>\n", px, py,
                   best ? "4" : "2.5", col);
    }
}

void rep_svg_curves(tl_strbuf *b, const rep_results *r, const char *title, size_t off, int y_unit)
{
    const double pw = CW - ML - MR, ph = CH - MT - MB;
    double x0 = INFINITY, x1 = -INFINITY, ymax = 0;
    for (int i = 0; i < r->n_trials; i++)
        for (int k = 0; k < r->trials[i].n_hist; k++) {
            const rep_epoch *ep = &r->trials[i].hist[k];
            double y = field(ep, off);
            if (!isfinite(y))
                continue;
            x0 = fmin(x0, ep->epoch);
            x1 = fmax(x1, ep->epoch);
            ymax = fmax(ymax, y);
        }
    tl_strbuf_printf(b, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "role=\"img\" aria-label=\"",
               CW, CH, CW, CH);
    rep_esc(b, title);
    tl_strbuf_puts(b, "\">\n");
    tl_strbuf_printf(b, "<text x=\"%d\" y=\"20\" class=\"ct\">", ML);
    rep_esc(b, title);
    tl_strbuf_puts(b, "</text>\n");
    if (!(x1 >= x0)) {
        tl_strbuf_printf(b, "<text x=\"%.0f\" y=\"%.0f\" class=\"muted\" text-anchor=\"middle\">"
                      "no epochs recorded</text>\n</svg>\n",
                   ML + pw / 2, MT + ph / 2);
        return;
    }
    /* y axis: accuracy on 0..1; loss on 0..a round number above the largest */
    double ytop = 1, ystep = 0.2;
    if (!y_unit) {
        ystep = ymax > 0 ? rep_nice_step(ymax, 5) : 0.2;
        ytop = ymax > 0 ? ceil(ymax / ystep - 1e-9) * ystep : 1;
        if (ytop <= 0)
            ytop = 1;
    }
    for (int k = 0; k * ystep <= ytop * (1 + 1e-9) && k <= 20; k++) {
        double y = k * ystep, py = MT + ph - y / ytop * ph;
        tl_strbuf_printf(b, "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                      "<text x=\"%d\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\">%g</text>\n",
                   ML, ML + pw, py, py, ML - 6, py + 4, y);
    }
    /* x axis: epochs */
    double span = x1 - x0, xstep = span <= 10 ? 1 : rep_nice_step(span, 8);
    if (xstep < 1)
        xstep = 1;
    for (double x = x0; x <= x1 + 1e-9; x += xstep) {
        double px = span > 0 ? ML + (x - x0) / span * pw : ML + pw / 2;
        tl_strbuf_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" class=\"axis\"/>"
                      "<text x=\"%.1f\" y=\"%.0f\" class=\"tick\" text-anchor=\"middle\">%g</text>\n",
                   px, px, MT + ph, MT + ph + 4, px, MT + ph + 17, x);
    }
    tl_strbuf_printf(b, "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" class=\"axis\"/>\n", ML,
               ML + pw, MT + ph, MT + ph);
    tl_strbuf_printf(b, "<text x=\"%.0f\" y=\"%d\" class=\"tick\" text-anchor=\"middle\">epoch</text>\n",
               ML + pw / 2, CH - 6);
    /* the best trial last, on top */
    for (int i = 0; i < r->n_trials; i++)
        if (i != r->best)
            curve(b, &r->trials[i], off, x0, x1, ytop, 0);
    if (r->best >= 0)
        curve(b, &r->trials[r->best], off, x0, x1, ytop, 1);
    tl_strbuf_puts(b, "</svg>\n");
}

/* ---- bar charts ------------------------------------------------------------------ */

#define BW 1050
#define BL 330 /* label column */
#define BR 150 /* value column */
#define BROW 24

void rep_svg_bars(tl_strbuf *b, const char *title, const rep_bar *bars, int n, const char *unit,
                  double max)
{
    int h = 30 + n * BROW + 8;
    tl_strbuf_printf(b, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "role=\"img\" aria-label=\"",
               BW, h, BW, h);
    rep_esc(b, title);
    tl_strbuf_puts(b, "\">\n<text x=\"0\" y=\"18\" class=\"ct\">");
    rep_esc(b, title);
    tl_strbuf_puts(b, "</text>\n");
    if (!(max > 0) || !isfinite(max))
        max = 1;
    const double full = BW - BL - BR;
    for (int k = 0; k < n; k++) {
        double y = 30 + k * BROW, v = bars[k].value;
        double w = isfinite(v) && v > 0 ? v / max * full : 0;
        if (w > full)
            w = full;
        tl_strbuf_printf(b, "<g><title>");
        rep_esc(b, bars[k].label);
        tl_strbuf_printf(b, "</title><text x=\"%d\" y=\"%.0f\" class=\"bl\" text-anchor=\"end\">",
                   BL - 8, y + 16);
        esc_cut(b, bars[k].label, 48);
        tl_strbuf_printf(b, "</text><rect x=\"%d\" y=\"%.0f\" width=\"%.1f\" height=\"%d\" "
                      "fill=\"%s\"/><text x=\"%.1f\" y=\"%.0f\" class=\"bv\">",
                   BL, y + 3, w, BROW - 6, bars[k].colour, BL + w + 6, y + 16);
        if (isfinite(v))
            tl_strbuf_printf(b, unit, v);
        else
            tl_strbuf_puts(b, "not recorded");
        if (bars[k].note) {
            tl_strbuf_puts(b, " ");
            rep_esc(b, bars[k].note);
        }
        tl_strbuf_puts(b, "</text></g>\n");
    }
    tl_strbuf_puts(b, "</svg>\n");
}
