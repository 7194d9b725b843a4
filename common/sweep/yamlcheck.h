/* A checker for YAML files read by key path: libyaml's document API (every
 * node keeps its mark), so every refusal is one line
 *
 *     FILE:LINE:COL: key.path[i]: expected WHAT, got VALUE
 *
 * with "did you mean 'x'?" for a near miss. The file's own rules (which keys,
 * which ranges) stay with the file's room; this holds what any YAML file
 * needs: loading one document safely, typed getters and the messages.
 *
 * Every getter returns 0, or a negative TL_E* with y->e filled (TL_EINVAL
 * for a value that breaks its rule, TL_ENOMEM); nothing prints. A path is
 * "" for the root, "data.image_size", "grid.learning_rate[1]". */
#ifndef TLSWEEP_YAMLCHECK_H
#define TLSWEEP_YAMLCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "common/base/err.h"

enum {
    /* libyaml takes time quadratic in the nesting depth of what it loads (a
     * megabyte of '[' runs for minutes); no configuration nests this deep */
    YCHECK_MAX_DEPTH = 32,
    /* items ycheck_list accepts (callers may compare items pairwise) */
    YCHECK_MAX_LIST = 1000,
};

/* One file being checked. Holds a pointer to itself (e may point at own):
 * do not copy it. */
typedef struct {
    char file[256];      /* the name as messages show it: printable, one line */
    const char *kind;    /* "sweep file": "... not a sweep file" */
    yaml_document_t doc;
    int loaded;          /* doc holds a document */
    tl_err *e;           /* never NULL: &own when the caller gave none */
    tl_err own;
} ycheck;

/* Starts a check of file (its name, for messages) and clears e's message;
 * allocates nothing. e may be NULL. */
void ycheck_init(ycheck *y, const char *file, const char *kind, tl_err *e);
/* Loads text as exactly one document: refuses nesting deeper than
 * YCHECK_MAX_DEPTH, YAML syntax errors (TL_EFORMAT) and a second document
 * (TL_EINVAL). An empty text loads, with ycheck_root NULL. */
int ycheck_load(ycheck *y, const char *text, size_t len);
/* The document's root node, NULL for an empty file. */
yaml_node_t *ycheck_root(ycheck *y);
/* Frees the document and returns rc; on an error keeps e's message on one
 * line and gives a bare TL_ENOMEM its "FILE: out of memory". */
int ycheck_close(ycheck *y, int rc);

/* ---- messages ---------------------------------------------------------- */

/* "FILE:LINE:COL: PATH: what" at n's mark (1:1 for n NULL; no "PATH: " for
 * a NULL or empty path). Returns TL_EINVAL. */
int ycheck_fail(ycheck *y, const yaml_node_t *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "expected EXPECTED, got VALUE" with VALUE shown from n. */
int ycheck_fail_got(ycheck *y, const yaml_node_t *n, const char *path, const char *expected);
/* "unknown WHAT 'word' (did you mean 'x'?)" or "(expected one of a, b, c)";
 * names is NULL-terminated. */
int ycheck_fail_unknown(ycheck *y, const yaml_node_t *n, const char *path, const char *what,
                        const char *const *names);
/* "FILE: out of memory". Returns TL_ENOMEM. */
int ycheck_nomem(ycheck *y);

/* ---- nodes ------------------------------------------------------------- */

/* The node at a libyaml index (a pair's key or value, a list's item), or NULL. */
yaml_node_t *ycheck_node(ycheck *y, int index);
int ycheck_is_scalar(const yaml_node_t *n);
/* A plain scalar that YAML reads as null ("", ~, null). */
int ycheck_is_null(const yaml_node_t *n);
/* A scalar's text (NUL-terminated). */
const char *ycheck_text(const yaml_node_t *n);
/* n as a message shows it: "a mapping", "a list", "nothing" or its text
 * (printable, cut to cap with "..."). */
void ycheck_show(const yaml_node_t *n, char *buf, size_t cap);
/* "path.key" ("key" at the root). */
void ycheck_join(char *out, size_t n, const char *path, const char *key);

/* ---- getters ----------------------------------------------------------- */

/* m must be a mapping (else "expected WHAT (keys: a, b)") whose keys are all
 * in keys (NULL-terminated; else "unknown key"), each at most once; vals[i]
 * is the value of keys[i] or NULL. */
int ycheck_map(ycheck *y, yaml_node_t *m, const char *path, const char *const *keys,
               yaml_node_t **vals, const char *what);
/* A non-empty string without control characters; *out (freed first) is a copy. */
int ycheck_str(ycheck *y, yaml_node_t *n, const char *path, const char *expected, char **out);
/* A finite number. */
int ycheck_num(ycheck *y, yaml_node_t *n, const char *path, const char *expected, double *out);
/* A number in [lo, hi] (lo_open / hi_open make that end open). */
int ycheck_range(ycheck *y, yaml_node_t *n, const char *path, const char *expected, double lo,
                 int lo_open, double hi, int hi_open, double *out);
/* A whole number in [lo, hi]. */
int ycheck_int(ycheck *y, yaml_node_t *n, const char *path, const char *expected, long lo,
               long hi, int *out);
/* A whole number >= 0 that fits 64 bits. */
int ycheck_u64(ycheck *y, yaml_node_t *n, const char *path, uint64_t *out);
/* true or false (also True, TRUE, False, FALSE). */
int ycheck_bool(ycheck *y, yaml_node_t *n, const char *path, int *out);
/* One of names (NULL-terminated), called WHAT in messages; *out is its index. */
int ycheck_enum(ycheck *y, yaml_node_t *n, const char *path, const char *what,
                const char *const *names, int *out);

/* A list of 1..YCHECK_MAX_LIST items, or one value standing for a
 * one-element list. */
typedef struct {
    yaml_node_t **items; /* n of them; free it (NULL after an error) */
    int n;
    int is_list;         /* 0: one value given without brackets */
} ycheck_items;
int ycheck_list(ycheck *y, yaml_node_t *n, const char *path, ycheck_items *l);
/* Item i's path: "path[i]", or "path" for a value given without brackets. */
void ycheck_item_path(char *out, size_t n, const char *path, const ycheck_items *l, int i);

#endif
