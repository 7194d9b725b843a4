/* What the report's tests share: a results.json put in a folder, the page
 * read back, fragments counted, and a broken results.json's one-line error
 * with no report.html left behind. Included by tests/report/test_*.c. */
#ifndef TLSWEEP_TESTS_REPORT_CHECK_H
#define TLSWEEP_TESTS_REPORT_CHECK_H

#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/report/report.h"

/* dir/results.json from root (which it releases) */
static inline void put(const char *dir, json_t *root)
{
    char p[600];
    snprintf(p, sizeof p, "%s/results.json", dir);
    assert_int_equal(json_dump_file(root, p, JSON_INDENT(1)), 0);
    json_decref(root);
}

static inline char *html_of(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/report.html", dir);
    size_t n;
    return (char *)tu_read_file(p, &n);
}

static inline int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *q = strstr(s, what); q; q = strstr(q + 1, what))
        n++;
    return n;
}

static inline void assert_broken(const char *dir, const char *frag1, const char *frag2)
{
    tl_err e = {0};
    assert_true(report_write(dir, &e) < 0);
    tu_assert_one_line_error(&e, "results.json", frag1, frag2);
    char p[600];
    snprintf(p, sizeof p, "%s/report.html", dir);
    assert_int_equal(access(p, F_OK), -1);
    assert_false(tu_tmp_left(p));
}

/* A table of ways to break a good results.json, each with the fragments
 * its error must hold. */
typedef void (*breaker)(json_t *root);
typedef struct {
    breaker f;
    const char *frag1, *frag2;
} broken_case;

/* Each case on a fresh results.json from good(), in its own folder
 * prefix<k>: a one-line error and no report.html. */
static inline void assert_cases_broken(const char *prefix, json_t *(*good)(void),
                                       const broken_case *cases, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s%zu", prefix, k);
        const char *dir = tu_tmp(name);
        mkdir(dir, 0755);
        json_t *r = good();
        cases[k].f(r);
        put(dir, r);
        assert_broken(dir, cases[k].frag1, cases[k].frag2);
    }
}

#endif
