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

static void on_bad(void *u, size_t item, const char *reason)
{
    (void)u;
    (void)item;
    fprintf(stderr, "tlsweep predict: warning: %s\n", reason);
}

static void print_text(const infer_model *m, const data_item *items, const infer_predictions *p)
{
    const model_spec *s = &m->spec;
    size_t n = p->n;
    int w = 1;
    for (int i = 0; i < s->n_class_names; i++)
        if ((int)strlen(s->class_names[i]) > w)
            w = (int)strlen(s->class_names[i]);
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", items[i].path);
        if (p->error[i]) {
            printf("  error: %s\n", p->error[i]);
            continue;
        }
        for (int r = 0; r < p->k; r++) {
            size_t at = i * (size_t)p->k + (size_t)r;
            printf("  %-*s  %.4f\n", w, infer_class_name(s, p->top[at], buf, sizeof buf),
                   (double)p->prob[at]);
        }
    }
}

static int print_json(const infer_model *m, const data_item *items, const infer_predictions *p)
{
    const model_spec *s = &m->spec;
    size_t n = p->n;
    char buf[32];
    json_t *preds = json_array();
    json_t *doc = json_pack("{s:s, s:o}", "model", m->path, "predictions", preds);
    if (!doc)
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *one;
        if (p->error[i]) {
            one = json_pack("{s:s, s:s}", "path", items[i].path, "error", p->error[i]);
        } else {
            json_t *top = json_array();
            for (int r = 0; r < p->k; r++) {
                size_t at = i * (size_t)p->k + (size_t)r;
                json_array_append_new(
                    top, json_pack("{s:s, s:i, s:f}", "class",
                                   infer_class_name(s, p->top[at], buf, sizeof buf), "index",
                                   p->top[at], "probability", (double)p->prob[at]));
            }
            one = json_pack("{s:s, s:o}", "path", items[i].path, "top", top);
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
    data_item *items = calloc(n, sizeof *items);
    infer_predictions p = {0};
    int rc = 1;
    if (!items) {
        fprintf(stderr, "tlsweep predict: out of memory for %zu images\n", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        items[i].path = argv[optind + (int)i];
    if (infer_predict(&m, items, n, top, &p, on_bad, NULL, &e)) {
        fprintf(stderr, "tlsweep predict: %s\n", e.msg);
        goto out;
    }
    if (json) {
        if (print_json(&m, items, &p)) {
            fprintf(stderr, "tlsweep predict: cannot write the JSON document\n");
            goto out;
        }
    } else {
        print_text(&m, items, &p);
    }
    rc = p.failed ? 1 : 0;
out:
    infer_predictions_free(&p);
    free(items);
    infer_close(&m);
    return rc;
}
