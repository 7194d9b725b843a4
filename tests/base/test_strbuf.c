/* The growable text buffer (common/base/strbuf.c): appends of every kind
 * keep a NUL after len bytes, growth past the first block keeps the text,
 * and an allocation failure is sticky (later appends do nothing) instead of
 * leaving a hole in the middle of the text. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "common/base/strbuf.h"

static void test_appends(void **st)
{
    (void)st;
    tl_strbuf b = TL_STRBUF_INIT;
    assert_null(b.s);
    assert_int_equal(tl_strbuf_put(&b, "ab\0cd", 5), 0); /* bytes, NUL included */
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.s, "ab\0cd", 6);
    assert_int_equal(tl_strbuf_puts(&b, "ef"), 0);
    assert_int_equal(tl_strbuf_putc(&b, 'g'), 0);
    assert_int_equal(tl_strbuf_printf(&b, "[%d|%s|%.2f]", 42, "x", 0.5), 0);
    assert_int_equal(tl_strbuf_put(&b, NULL, 0), 0);
    assert_int_equal(tl_strbuf_puts(&b, ""), 0);
    assert_int_equal(b.len, 5 + 3 + strlen("[42|x|0.50]"));
    assert_string_equal(b.s + 3, "cdefg[42|x|0.50]");
    assert_false(b.oom);
    tl_strbuf_free(&b);
    assert_null(b.s);
    assert_int_equal(b.len, 0);
    tl_strbuf_free(&b); /* twice is harmless */
}

/* 100 KiB in pieces of every size across many doublings, against the same
 * text built by hand. */
static void test_grows(void **st)
{
    (void)st;
    tl_strbuf b = TL_STRBUF_INIT;
    size_t want_n = 0;
    char *want = malloc(200000);
    assert_non_null(want);
    for (int i = 0; want_n < 100000; i++) {
        char piece[600];
        size_t n = (size_t)(i * 37 % 599) + 1;
        for (size_t k = 0; k < n; k++)
            piece[k] = (char)('a' + (i + k) % 26);
        piece[n] = 0;
        if (i % 3 == 0)
            assert_int_equal(tl_strbuf_put(&b, piece, n), 0);
        else if (i % 3 == 1)
            assert_int_equal(tl_strbuf_puts(&b, piece), 0);
        else
            assert_int_equal(tl_strbuf_printf(&b, "%s", piece), 0);
        memcpy(want + want_n, piece, n);
        want_n += n;
    }
    assert_int_equal(b.len, want_n);
    assert_true(b.cap > b.len);
    assert_memory_equal(b.s, want, want_n);
    assert_int_equal(b.s[b.len], 0);
    tl_strbuf_free(&b);
    free(want);
}

/* A length no allocator can meet: TL_ENOMEM, oom set, the text before it
 * intact, and every later append refused. */
static void test_oom_sticky(void **st)
{
    (void)st;
    tl_strbuf b = TL_STRBUF_INIT;
    assert_int_equal(tl_strbuf_puts(&b, "kept"), 0);
    assert_int_equal(tl_strbuf_put(&b, "x", SIZE_MAX - 2), TL_ENOMEM);
    assert_true(b.oom);
    assert_string_equal(b.s, "kept");
    assert_int_equal(tl_strbuf_puts(&b, "more"), TL_ENOMEM);
    assert_int_equal(tl_strbuf_putc(&b, 'm'), TL_ENOMEM);
    assert_int_equal(tl_strbuf_printf(&b, "%d", 1), TL_ENOMEM);
    assert_string_equal(b.s, "kept");
    assert_int_equal(b.len, 4);
    tl_strbuf_free(&b);
    assert_false(b.oom);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends),
        cmocka_unit_test(test_grows),
        cmocka_unit_test(test_oom_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
