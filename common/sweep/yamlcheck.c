/* The YAML checker: one document loaded with every node's mark, typed
 * getters, and one-line messages that name the file, line, column and key
 * path (yamlcheck.h). */
#include "common/sweep/yamlcheck.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- messages --------------------------------------------------------- */

/* Copies user text for a message: printable, short, on one line. */
static void show_text(const char *t, size_t len, char *buf, size_t cap)
{
    size_t j = 0, max = cap - 4;
    for (size_t i = 0; i < len && j < max; i++) {
        unsigned char ch = (unsigned char)t[i];
        buf[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (len > max)
        memcpy(buf + max - 3, "...", 3);
    buf[j] = '\0';
}

void ycheck_show(const yaml_node_t *n, char *buf, size_t cap)
{
    if (n->type == YAML_MAPPING_NODE)
        snprintf(buf, cap, "a mapping");
    else if (n->type == YAML_SEQUENCE_NODE)
        snprintf(buf, cap, "a list");
    else if (n->data.scalar.length == 0)
        snprintf(buf, cap, "nothing");
    else
        show_text((const char *)n->data.scalar.value, n->data.scalar.length, buf, cap);
}

int ycheck_fail(ycheck *y, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    unsigned long line = n ? (unsigned long)n->start_mark.line + 1 : 1;
    unsigned long col = n ? (unsigned long)n->start_mark.column + 1 : 1;
    if (path && *path)
        return tl_errf(y->e, TL_EINVAL, "%s:%lu:%lu: %s: %s", y->file, line, col, path, what);
    return tl_errf(y->e, TL_EINVAL, "%s:%lu:%lu: %s", y->file, line, col, what);
}

int ycheck_fail_got(ycheck *y, const yaml_node_t *n, const char *path, const char *expected)
{
    char got[64];
    ycheck_show(n, got, sizeof got);
    return ycheck_fail(y, n, path, "expected %s, got %s", expected, got);
}

int ycheck_nomem(ycheck *y)
{
    return tl_errf(y->e, TL_ENOMEM, "%s: out of memory", y->file);
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 64;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

/* The closest of names within edit distance 2, or NULL. */
static const char *closest(const char *word, const char *const *names)
{
    const char *best = NULL;
    size_t bd = 3;
    for (int i = 0; names[i]; i++) {
        size_t d = edit_distance(word, names[i]);
        if (d < bd) {
            bd = d;
            best = names[i];
        }
    }
    return best;
}

static void list_names(const char *const *names, char *buf, size_t cap)
{
    size_t j = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && j < cap; i++)
        j += (size_t)snprintf(buf + j, cap - j, "%s%s", i ? ", " : "", names[i]);
}

int ycheck_fail_unknown(ycheck *y, const yaml_node_t *n, const char *path, const char *what,
                        const char *const *names)
{
    char word[64], all[256];
    ycheck_show(n, word, sizeof word);
    list_names(names, all, sizeof all);
    const char *near = n->type == YAML_SCALAR_NODE ? closest(word, names) : NULL;
    if (near)
        return ycheck_fail(y, n, path, "unknown %s '%s' (did you mean '%s'?)", what, word, near);
    return ycheck_fail(y, n, path, "unknown %s '%s' (expected one of %s)", what, word, all);
}

/* ---- the document ------------------------------------------------------- */

void ycheck_init(ycheck *y, const char *file, const char *kind, tl_err *e)
{
    memset(y, 0, sizeof *y);
    show_text(file, strlen(file), y->file, sizeof y->file);
    y->kind = kind;
    y->e = e ? e : &y->own;
    y->e->msg[0] = '\0';
}

static void yaml_problem(ycheck *y, const char *text, size_t len, yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR) {
        tl_errf(y->e, TL_ENOMEM, "%s: out of memory reading YAML", y->file);
        return;
    }
    unsigned long line, col;
    if (p->error == YAML_READER_ERROR) {
        /* the reader reports a byte offset, not a mark */
        line = 1;
        col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++, col++)
            if (text[i] == '\n') {
                line++;
                col = 0;
            }
    } else {
        line = (unsigned long)p->problem_mark.line + 1;
        col = (unsigned long)p->problem_mark.column + 1;
    }
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->context)
        tl_errf(y->e, TL_EFORMAT, "%s:%lu:%lu: YAML syntax error: %s %s started on line %lu", y->file, line,
                col, problem, p->context, (unsigned long)p->context_mark.line + 1);
    else
        tl_errf(y->e, TL_EFORMAT, "%s:%lu:%lu: YAML syntax error: %s", y->file, line, col, problem);
}

/* A first pass over the events that stops at YCHECK_MAX_DEPTH, before the
 * loader's quadratic time. Syntax errors are left to the loader, which
 * reports them the same way. */
static int check_depth(ycheck *y, const char *text, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    if (!yaml_parser_initialize(&p))
        return ycheck_nomem(y);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int depth = 0, rc = 0;
    while (yaml_parser_parse(&p, &ev)) {
        yaml_event_type_t t = ev.type;
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
            if (++depth > YCHECK_MAX_DEPTH)
                rc = tl_errf(y->e, TL_EFORMAT, "%s:%lu:%lu: nested deeper than %d levels: not a %s",
                             y->file, (unsigned long)ev.start_mark.line + 1,
                             (unsigned long)ev.start_mark.column + 1, YCHECK_MAX_DEPTH, y->kind);
        } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&ev);
        if (rc || t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    return rc;
}

/* After the first document: a syntax error or a second document refuses. */
static int check_no_second(ycheck *y, yaml_parser_t *p, const char *text, size_t len)
{
    yaml_document_t extra;
    if (!yaml_parser_load(p, &extra)) {
        yaml_problem(y, text, len, p);
        return y->e->code;
    }
    int rc = 0;
    yaml_node_t *r2 = yaml_document_get_root_node(&extra);
    if (r2)
        rc = ycheck_fail(y, r2, NULL, "expected one YAML document, found a second one");
    yaml_document_delete(&extra);
    return rc;
}

int ycheck_load(ycheck *y, const char *text, size_t len)
{
    int rc = check_depth(y, text, len);
    if (rc)
        return rc;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return ycheck_nomem(y);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &y->doc)) {
        yaml_problem(y, text, len, &p);
        yaml_parser_delete(&p);
        return y->e->code;
    }
    y->loaded = 1;
    if (ycheck_root(y))
        rc = check_no_second(y, &p, text, len);
    yaml_parser_delete(&p);
    return rc;
}

yaml_node_t *ycheck_root(ycheck *y)
{
    return y->loaded ? yaml_document_get_root_node(&y->doc) : NULL;
}

/* The message is one line whatever the input held. */
static void one_line(tl_err *e)
{
    for (char *p = e->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
}

int ycheck_close(ycheck *y, int rc)
{
    if (rc == TL_ENOMEM && y->e->msg[0] == '\0')
        ycheck_nomem(y);
    if (y->loaded)
        yaml_document_delete(&y->doc);
    y->loaded = 0;
    if (rc)
        one_line(y->e);
    return rc;
}

/* ---- nodes -------------------------------------------------------------- */

yaml_node_t *ycheck_node(ycheck *y, int index)
{
    return y->loaded ? yaml_document_get_node(&y->doc, index) : NULL;
}

void ycheck_join(char *out, size_t n, const char *path, const char *key)
{
    snprintf(out, n, "%s%s%s", path, *path ? "." : "", key);
}

int ycheck_is_scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE;
}

const char *ycheck_text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

int ycheck_is_null(const yaml_node_t *n)
{
    if (!ycheck_is_scalar(n) || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = ycheck_text(n);
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

/* ---- getters ------------------------------------------------------------ */

/* The line of the first key named key among m's pairs before upto. */
static unsigned long first_line(ycheck *y, const yaml_node_t *m, const yaml_node_pair_t *upto,
                                const char *key)
{
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < upto; p++) {
        yaml_node_t *pk = ycheck_node(y, p->key);
        if (pk && ycheck_is_scalar(pk) && strcmp(ycheck_text(pk), key) == 0)
            return (unsigned long)pk->start_mark.line + 1;
    }
    return 0;
}

int ycheck_map(ycheck *y, yaml_node_t *m, const char *path, const char *const *keys,
               yaml_node_t **vals, const char *what)
{
    int nk = 0;
    while (keys[nk])
        nk++;
    for (int i = 0; i < nk; i++)
        vals[i] = NULL;
    if (m->type != YAML_MAPPING_NODE) {
        char all[256], exp[320];
        list_names(keys, all, sizeof all);
        snprintf(exp, sizeof exp, "%s (keys: %s)", what, all);
        return ycheck_fail_got(y, m, path, exp);
    }
    yaml_node_pair_t *kv = m->data.mapping.pairs.start;
    for (; kv < m->data.mapping.pairs.top; kv++) {
        yaml_node_t *k = ycheck_node(y, kv->key), *v = ycheck_node(y, kv->value);
        if (!k || !v)
            return ycheck_fail(y, m, path, "malformed mapping");
        if (!ycheck_is_scalar(k) || k->data.scalar.length == 0)
            return ycheck_fail_got(y, k, path, "a key name");
        int i = 0;
        while (i < nk && strcmp(keys[i], ycheck_text(k)) != 0)
            i++;
        char kp[256];
        char word[64];
        ycheck_show(k, word, sizeof word);
        ycheck_join(kp, sizeof kp, path, word);
        if (i == nk) {
            const char *near = closest(word, keys);
            char all[256];
            list_names(keys, all, sizeof all);
            if (near)
                return ycheck_fail(y, k, kp, "unknown key (did you mean '%s'?)", near);
            return ycheck_fail(y, k, kp, "unknown key (expected one of %s)", all);
        }
        if (vals[i])
            return ycheck_fail(y, k, kp, "duplicate key (first given on line %lu)",
                               first_line(y, m, kv, keys[i]));
        vals[i] = v;
    }
    return 0;
}

int ycheck_str(ycheck *y, yaml_node_t *n, const char *path, const char *expected, char **out)
{
    if (!ycheck_is_scalar(n) || ycheck_is_null(n) || n->data.scalar.length == 0)
        return ycheck_fail_got(y, n, path, expected);
    const char *v = ycheck_text(n);
    for (size_t i = 0; i < n->data.scalar.length; i++)
        if ((unsigned char)v[i] < 0x20)
            return ycheck_fail(y, n, path, "expected %s without control characters", expected);
    free(*out);
    *out = strdup(v);
    if (!*out)
        return ycheck_nomem(y);
    return 0;
}

int ycheck_num(ycheck *y, yaml_node_t *n, const char *path, const char *expected, double *out)
{
    if (!ycheck_is_scalar(n) || n->data.scalar.length == 0 || n->data.scalar.length > 64)
        return ycheck_fail_got(y, n, path, expected);
    const char *v = ycheck_text(n);
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || errno == ERANGE || !isfinite(d) || isspace((unsigned char)*v))
        return ycheck_fail_got(y, n, path, expected);
    *out = d;
    return 0;
}

int ycheck_range(ycheck *y, yaml_node_t *n, const char *path, const char *expected, double lo,
                 int lo_open, double hi, int hi_open, double *out)
{
    double d = 0;
    if (ycheck_num(y, n, path, expected, &d))
        return TL_EINVAL;
    if ((lo_open ? !(d > lo) : !(d >= lo)) || (hi_open ? !(d < hi) : !(d <= hi)))
        return ycheck_fail_got(y, n, path, expected);
    *out = d;
    return 0;
}

int ycheck_int(ycheck *y, yaml_node_t *n, const char *path, const char *expected, long lo,
               long hi, int *out)
{
    if (!ycheck_is_scalar(n) || n->data.scalar.length == 0 || n->data.scalar.length > 32)
        return ycheck_fail_got(y, n, path, expected);
    const char *v = ycheck_text(n);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end != '\0' || errno == ERANGE || isspace((unsigned char)*v) || x < lo || x > hi)
        return ycheck_fail_got(y, n, path, expected);
    *out = (int)x;
    return 0;
}

int ycheck_u64(ycheck *y, yaml_node_t *n, const char *path, uint64_t *out)
{
    const char *expected = "a whole number >= 0";
    if (!ycheck_is_scalar(n) || n->data.scalar.length == 0 || n->data.scalar.length > 32)
        return ycheck_fail_got(y, n, path, expected);
    const char *v = ycheck_text(n);
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*v))
        return ycheck_fail_got(y, n, path, expected);
    unsigned long long x = strtoull(v, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return ycheck_fail_got(y, n, path, expected);
    *out = (uint64_t)x;
    return 0;
}

int ycheck_bool(ycheck *y, yaml_node_t *n, const char *path, int *out)
{
    static const char *const t[] = {"true", "True", "TRUE", NULL}, *const f[] = {"false", "False", "FALSE", NULL};
    if (ycheck_is_scalar(n)) {
        for (int i = 0; t[i]; i++)
            if (!strcmp(ycheck_text(n), t[i]))
                return *out = 1, 0;
        for (int i = 0; f[i]; i++)
            if (!strcmp(ycheck_text(n), f[i]))
                return *out = 0, 0;
    }
    return ycheck_fail_got(y, n, path, "true or false");
}

int ycheck_enum(ycheck *y, yaml_node_t *n, const char *path, const char *what,
                const char *const *names, int *out)
{
    if (!ycheck_is_scalar(n)) {
        /* not "unknown engine 'a list'" */
        char all[256], expected[280];
        list_names(names, all, sizeof all);
        snprintf(expected, sizeof expected, "one of %s", all);
        return ycheck_fail_got(y, n, path, expected);
    }
    for (int i = 0; names[i]; i++)
        if (!strcmp(ycheck_text(n), names[i]))
            return *out = i, 0;
    return ycheck_fail_unknown(y, n, path, what, names);
}

static int list_items(ycheck *y, yaml_node_t *n, const char *path, ycheck_items *l)
{
    ptrdiff_t cnt = n->data.sequence.items.top - n->data.sequence.items.start;
    if (cnt == 0)
        return ycheck_fail(y, n, path, "expected a non-empty list");
    if (cnt > YCHECK_MAX_LIST)
        return ycheck_fail(y, n, path, "expected at most %d values, got %ld", YCHECK_MAX_LIST,
                           (long)cnt);
    l->items = calloc((size_t)cnt, sizeof *l->items);
    if (!l->items)
        return ycheck_nomem(y);
    for (ptrdiff_t i = 0; i < cnt; i++) {
        l->items[i] = ycheck_node(y, n->data.sequence.items.start[i]);
        if (!l->items[i])
            return ycheck_fail(y, n, path, "malformed list");
    }
    l->n = (int)cnt;
    return 0;
}

int ycheck_list(ycheck *y, yaml_node_t *n, const char *path, ycheck_items *l)
{
    l->items = NULL;
    l->n = 0;
    l->is_list = n->type == YAML_SEQUENCE_NODE;
    if (l->is_list) {
        int rc = list_items(y, n, path, l);
        if (rc) {
            free(l->items);
            l->items = NULL;
            l->n = 0;
        }
        return rc;
    }
    if (ycheck_is_null(n))
        return ycheck_fail_got(y, n, path, "a value or a non-empty list");
    l->items = malloc(sizeof *l->items);
    if (!l->items)
        return ycheck_nomem(y);
    l->items[0] = n;
    l->n = 1;
    return 0;
}

void ycheck_item_path(char *out, size_t n, const char *path, const ycheck_items *l, int i)
{
    if (l->is_list)
        snprintf(out, n, "%s[%d]", path, i);
    else
        snprintf(out, n, "%s", path);
}
