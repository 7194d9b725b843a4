/* FNV-1a 64 (common/base/hash.c) against the published test vectors
 * (Landon Curt Noll's test_fnv.c, FNV1A_64), and the chaining the journal
 * and cache keys rely on: hashing in pieces equals hashing the whole. */
#include "testutil.h"

#include <string.h>

#include "common/base/hash.h"

static void test_vectors(void **st)
{
    (void)st;
    static const struct {
        const char *s;
        uint64_t h;
    } v[] = {
        {"", 0xcbf29ce484222325ULL},       {"a", 0xaf63dc4c8601ec8cULL},
        {"b", 0xaf63df4c8601f1a5ULL},      {"c", 0xaf63de4c8601eff2ULL},
        {"foo", 0xdcb27518fed9d577ULL},    {"foobar", 0x85944171f73967e8ULL},
        {"chongo was here!\n", 0x46810940eff5f915ULL},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        assert_true(tl_fnv1a_str(TL_FNV1A_OFFSET, v[i].s) == v[i].h);
        assert_true(tl_fnv1a_bytes(TL_FNV1A_OFFSET, v[i].s, strlen(v[i].s)) == v[i].h);
    }
}

static void test_chained(void **st)
{
    (void)st;
    uint64_t h = tl_fnv1a_str(tl_fnv1a_str(TL_FNV1A_OFFSET, "foo"), "bar");
    assert_true(h == 0x85944171f73967e8ULL);
    h = TL_FNV1A_OFFSET;
    for (const char *p = "foobar"; *p; p++)
        h = tl_fnv1a_bytes(h, p, 1);
    assert_true(h == 0x85944171f73967e8ULL);
    assert_true(tl_fnv1a_bytes(12345, "", 0) == 12345);
    /* bytes, not a string: a NUL is hashed like any byte */
    assert_true(tl_fnv1a_bytes(TL_FNV1A_OFFSET, "a\0", 2) !=
                tl_fnv1a_str(TL_FNV1A_OFFSET, "a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_chained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
