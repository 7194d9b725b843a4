/* `tlsweep evaluate --model M.tlm DIR`: a written model on a folder of
 * class folders: accuracy, loss, per-class accuracy and the confusion
 * matrix, as text or JSON. Folders map to the model's classes by name, so
 * a test set may leave classes out; a folder the model does not know is an
 * error. Bad images are skipped with a warning and counted. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "worker/engine/infer.h"
#include "worker/engine/engine.h"

#define EVALUATE_BATCH_DEFAULT 32

static void usage(FILE *f)
{
    fprintf(f, "usage: tlsweep evaluate --model M.tlm [--batch N] [--json] DIR\n"
               "  DIR holds one folder per class, named as the model's classes\n");
}

static void on_bad(void *u, size_t item, const char *reason)
{
    (void)u;
    (void)item;
    fprintf(stderr, "tlsweep evaluate: warning: %s\n", reason);
}

static void print_text(const infer_model *m, const infer_eval *x, const char *model,
                       const char *dir)
{
    const model_spec *s = &m->spec;
    int C = x->classes;
    const int64_t *cm = x->cm.counts;
    char buf[32];
    printf("model: %s\n", model);
    printf("data: %s: %lld images, %zu bad skipped\n", dir, (long long)x->seen, x->n_bad);
    printf("accuracy %.4f (%lld/%lld)  loss %.4f\n", x->accuracy, (long long)x->hits,
           (long long)x->seen, x->loss);
    int w = 5;
    for (int i = 0; i < C; i++) {
        const char *name = i < s->n_class_names ? s->class_names[i] : "";
        if ((int)strlen(name) > w)
            w = (int)strlen(name);
    }
    printf("per-class accuracy:\n");
    for (int i = 0; i < C; i++) {
        int64_t total = x->class_total[i];
        const char *name = infer_class_name(s, i, buf, sizeof buf);
        if (total)
            printf("  %-*s  %lld/%lld  %.1f%%\n", w, name, (long long)cm[(size_t)i * C + i],
                   (long long)total, 100.0 * cm[(size_t)i * C + i] / total);
        else
            printf("  %-*s  0/0  -\n", w, name);
    }
    printf("confusion matrix (rows: true class, columns: predicted):\n");
    printf("  %3s %-*s |", "#", w, "class");
    for (int j = 0; j < C; j++)
        printf(" %5d", j);
    printf("\n");
    for (int i = 0; i < C; i++) {
        printf("  %3d %-*s |", i, w, i < s->n_class_names ? s->class_names[i] : "");
        for (int j = 0; j < C; j++)
            printf(" %5lld", (long long)cm[(size_t)i * C + j]);
        printf("\n");
    }
}

static int print_json(const infer_model *m, const infer_eval *x, const char *model,
                      const char *dir)
{
    const model_spec *s = &m->spec;
    int C = x->classes;
    const int64_t *cm = x->cm.counts;
    json_t *bad = json_array(), *classes = json_array(), *per = json_array(),
           *conf = json_array();
    json_t *doc = json_pack(
        "{s:s, s:s, s:I, s:I, s:f, s:f, s:I, s:o, s:o, s:o, s:o}", "model", model, "data", dir,
        "images", (json_int_t)x->seen, "correct", (json_int_t)x->hits, "accuracy", x->accuracy,
        "loss", x->loss, "bad_images", (json_int_t)x->n_bad, "bad", bad, "classes", classes,
        "per_class", per, "confusion", conf);
    if (!doc)
        return -1;
    int err = 0;
    for (size_t i = 0; i < x->n_bad; i++)
        err |= json_array_append_new(bad, json_string(x->bad[i]));
    char buf[32];
    for (int i = 0; i < C; i++) {
        const char *name = infer_class_name(s, i, buf, sizeof buf);
        int64_t total = x->class_total[i];
        json_t *row = json_array();
        for (int j = 0; j < C; j++)
            err |= json_array_append_new(row, json_integer(cm[(size_t)i * C + j]));
        err |= json_array_append_new(classes, json_string(name));
        err |= json_array_append_new(conf, row);
        json_t *acc = total ? json_real((double)cm[(size_t)i * C + i] / total) : json_null();
        err |= json_array_append_new(
            per, json_pack("{s:s, s:I, s:I, s:o}", "class", name, "correct",
                           (json_int_t)cm[(size_t)i * C + i], "total", (json_int_t)total,
                           "accuracy", acc));
    }
    if (!err)
        err = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("\n");
    json_decref(doc);
    return err;
}

int cli_evaluate(int argc, char **argv)
{
    const char *model = NULL;
    int batch = EVALUATE_BATCH_DEFAULT, json = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"batch", required_argument, 0, 'b'},
        {"json", no_argument, 0, 'j'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:b:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'b':
            if ((batch = infer_parse_batch(optarg)) < 0) {
                fprintf(stderr, "tlsweep evaluate: --batch needs an integer in [1, 4096]\n");
                return 2;
            }
            break;
        case 'j': json = 1; break;
        default: usage(c == 'h' ? stdout : stderr); return c == 'h' ? 0 : 2;
        }
    }
    if (!model || optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *dir = argv[optind];
    engine_threads_set(engine_threads_default());
    tl_err e = {0};
    data_index ix;
    data_index_cfg dc = {dir, NULL, NULL, 0, 0};
    if (data_index_build(&ix, &dc, &e)) {
        fprintf(stderr, "tlsweep evaluate: %s\n", e.msg);
        return 1;
    }
    if ((size_t)batch > ix.n_items)
        batch = (int)ix.n_items;
    infer_model m;
    if (infer_open(&m, model, 0, batch, &e)) {
        fprintf(stderr, "tlsweep evaluate: %s\n", e.msg);
        data_index_free(&ix);
        return 1;
    }
    infer_eval x;
    int rc = 1;
    if (infer_evaluate(&m, &ix, dir, &x, on_bad, NULL, &e)) {
        fprintf(stderr, "tlsweep evaluate: %s\n", e.msg);
        goto out;
    }
    if (json ? print_json(&m, &x, model, dir) : (print_text(&m, &x, model, dir), 0)) {
        fprintf(stderr, "tlsweep evaluate: cannot write the JSON document\n");
        goto out;
    }
    rc = 0;
out:
    infer_eval_free(&x);
    infer_close(&m);
    data_index_free(&ix);
    return rc;
}
