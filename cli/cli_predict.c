/* `tlsweep predict --model M.tlm IMG...`: the top classes of each image
 * with their probabilities, as text or one JSON document. A bad image is a
 * warning and an entry with its error; the others are still predicted, and
 * the exit code (1) says that something failed. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "worker/engine/infer.h"
#include "worker/engine/engine.h"

#define PREDICT_TOP_DEFAULT 5
#define PREDICT_BATCH_DEFAULT 32

static void usage(FILE *f)
{
    fprintf(f, "usage: tlsweep predict --model M.tlm [--top K] [--json] [--batch N] IMG...\n"
               "  the K (default %d) most probable classes of each image\n",
            PREDICT_TOP_DEFAULT);
}

typedef struct {
    infer_model *m;
    const data_item *items;
    int k;            /* classes kept per image */
    int *top;         /* (n, k) class indices, most probable first */
    float *prob;      /* (n, k) */
    char **error;     /* (n) NULL when predicted */
    int *order;       /* (classes) scratch */
    size_t failed;
    int oom;
} predict_ctx;

static int on_rows(void *u, const float *rows, const size_t *items, int n)
{
    predict_ctx *p = u;
    size_t C = infer_width(p->m);
    infer_probabilities(p->m, rows, NULL, n);
    for (int i = 0; i < n; i++) {
        const float *row = p->m->probs + (size_t)i * C;
        int *top = p->top + items[i] * (size_t)p->k;
        float *prob = p->prob + items[i] * (size_t)p->k;
        /* selection sort of the first k: lowest index first on ties */
        for (size_t j = 0; j < C; j++)
            p->order[j] = (int)j;
        for (int r = 0; r < p->k; r++) {
            size_t best = (size_t)r;
            for (size_t j = (size_t)r + 1; j < C; j++)
                if (row[p->order[j]] > row[p->order[best]] ||
                    (row[p->order[j]] == row[p->order[best]] && p->order[j] < p->order[best]))
                    best = j;
            int t = p->order[r];
            p->order[r] = p->order[best];
            p->order[best] = t;
            top[r] = p->order[r];
            prob[r] = row[top[r]];
        }
    }
    return 0;
}

static void on_bad(void *u, size_t item, const char *reason)
{
    predict_ctx *p = u;
    fprintf(stderr, "tlsweep predict: warning: %s\n", reason);
    free(p->error[item]);
    p->error[item] = strdup(infer_reason(reason, p->items[item].path));
    if (!p->error[item])
        p->oom = 1;
    p->failed++;
}

static const char *class_name(const model_spec *s, int i, char *buf, size_t n)
{
    if (i < s->n_class_names)
        return s->class_names[i];
    snprintf(buf, n, "%d", i);
    return buf;
}

static void print_text(const predict_ctx *p, size_t n)
{
    const model_spec *s = &p->m->spec;
    int w = 1;
    for (int i = 0; i < s->n_class_names; i++)
        if ((int)strlen(s->class_names[i]) > w)
            w = (int)strlen(s->class_names[i]);
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", p->items[i].path);
        if (p->error[i]) {
            printf("  error: %s\n", p->error[i]);
            continue;
        }
        for (int r = 0; r < p->k; r++) {
            size_t at = i * (size_t)p->k + (size_t)r;
            printf("  %-*s  %.4f\n", w, class_name(s, p->top[at], buf, sizeof buf),
                   (double)p->prob[at]);
        }
    }
}

static int print_json(const predict_ctx *p, size_t n)
{
    const model_spec *s = &p->m->spec;
    char buf[32];
    json_t *preds = json_array();
    json_t *doc = json_pack("{s:s, s:o}", "model", p->m->path, "predictions", preds);
    if (!doc)
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *one;
        if (p->error[i]) {
            one = json_pack("{s:s, s:s}", "path", p->items[i].path, "error", p->error[i]);
        } else {
            json_t *top = json_array();
            for (int r = 0; r < p->k; r++) {
                size_t at = i * (size_t)p->k + (size_t)r;
                json_array_append_new(
                    top, json_pack("{s:s, s:i, s:f}", "class",
                                   class_name(s, p->top[at], buf, sizeof buf), "index",
                                   p->top[at], "probability", (double)p->prob[at]));
            }
            one = json_pack("{s:s, s:o}", "path", p->items[i].path, "top", top);
        }
        if (!one || json_array_append_new(preds, one)) {
            json_decref(doc);
            return -1;
        }
    }
    int rc = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("\n");
    json_decref(doc);
    return rc;
}

int cli_predict(int argc, char **argv)
{
    const char *model = NULL;
    int top = PREDICT_TOP_DEFAULT, batch = PREDICT_BATCH_DEFAULT, json = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"top", required_argument, 0, 'k'},
        {"batch", required_argument, 0, 'b'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:k:b:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'k':
            top = atoi(optarg);
            if (top < 1) {
                fprintf(stderr, "tlsweep predict: --top needs an integer >= 1\n");
                return 2;
            }
            break;
        case 'b':
            if ((batch = infer_parse_batch(optarg)) < 0) {
                fprintf(stderr, "tlsweep predict: --batch needs an integer in [1, 4096]\n");
                return 2;
            }
            break;
        case 'j': json = 1; break;
        default: usage(c == 'h' ? stdout : stderr); return c == 'h' ? 0 : 2;
        }
    }
    if (!model || optind >= argc) {
        usage(stderr);
        return 2;
    }
    engine_threads_set(engine_threads_default());
    size_t n = (size_t)(argc - optind);
    if ((size_t)batch > n)
        batch = (int)n;
    tl_err e = {0};
    infer_model m;
    if (infer_open(&m, model, 0, batch, &e)) {
        fprintf(stderr, "tlsweep predict: %s\n", e.msg);
        return 1;
    }
    int C = (int)infer_width(&m);
    predict_ctx p = {.m = &m, .k = top < C ? top : C};
    data_item *items = calloc(n, sizeof *items);
    p.top = malloc(n * (size_t)p.k * sizeof *p.top);
    p.prob = malloc(n * (size_t)p.k * sizeof *p.prob);
    p.error = calloc(n, sizeof *p.error);
    p.order = malloc((size_t)C * sizeof *p.order);
    int rc = 1;
    if (!items || !p.top || !p.prob || !p.error || !p.order) {
        fprintf(stderr, "tlsweep predict: out of memory for %zu images\n", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        items[i].path = argv[optind + (int)i];
    p.items = items;
    int run = infer_run(&m, items, n, on_rows, on_bad, &p, &e);
    if (p.oom) {
        fprintf(stderr, "tlsweep predict: out of memory\n");
        goto out;
    }
    if (run) {
        fprintf(stderr, "tlsweep predict: %s\n", e.msg);
        goto out;
    }
    if (json) {
        if (print_json(&p, n)) {
            fprintf(stderr, "tlsweep predict: cannot write the JSON document\n");
            goto out;
        }
    } else {
        print_text(&p, n);
    }
    rc = p.failed ? 1 : 0;
out:
    if (p.error)
        for (size_t i = 0; i < n; i++)
            free(p.error[i]);
    free(p.error);
    free(p.order);
    free(p.prob);
    free(p.top);
    free(items);
    infer_close(&m);
    return rc;
}
