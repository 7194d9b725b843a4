/* SHA-256 against the FIPS 180-2 test vectors (appendix B), one-shot and
 * streamed in awkward pieces. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/sha256.h"

static void check(const void *msg, size_t len, const char *want)
{
    unsigned char d[32];
    char hex[65];
    sha256(msg, len, d);
    assert_string_equal(sha256_hex(d, hex), want);
    /* the same streamed 1, 2, 3... bytes at a time crosses every block edge */
    sha256_ctx c;
    sha256_init(&c);
    const unsigned char *p = msg;
    for (size_t at = 0, step = 1; at < len; at += step, step = step % 67 + 1)
        sha256_update(&c, p + at, at + step <= len ? step : len - at);
    sha256_final(&c, d);
    assert_string_equal(sha256_hex(d, hex), want);
}

static void test_abc(void **st)
{
    (void)st;
    check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_empty(void **st)
{
    (void)st;
    check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_448_bits(void **st)
{
    (void)st;
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_int_equal(strlen(m), 56);
    check(m, 56, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_million_a(void **st)
{
    (void)st;
    size_t n = 1000000;
    char *m = malloc(n);
    assert_non_null(m);
    memset(m, 'a', n);
    check(m, n, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(m);
}

/* Lengths around the padding boundary (the length field spills into a
 * second block from 56 bytes on). Digests from coreutils sha256sum. */
static void test_padding_edges(void **st)
{
    (void)st;
    static const struct {
        size_t n;
        const char *hex;
    } v[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
    };
    char m[128];
    memset(m, 'a', sizeof m);
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        check(m, v[i].n, v[i].hex);
}

static void test_file(void **st)
{
    (void)st;
    char path[] = "/tmp/tlsweep-sha-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    close(fd);
    unsigned char d[32];
    char hex[65];
    tl_err e = {0};
    assert_int_equal(sha256_file(path, d, &e), 0);
    assert_string_equal(sha256_hex(d, hex),
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unlink(path);
    assert_int_equal(sha256_file(path, d, &e), TL_EIO);
    assert_non_null(strstr(e.msg, path));
}

/* The SHA-instruction path and the portable one agree on random messages
 * of every length up to 300 bytes, fed whole and in uneven pieces. */
static void test_paths_agree(void **st)
{
    (void)st;
    unsigned char m[300], a[32], b[32];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof m; i++) {
        x = x * 1103515245u + 12345u;
        m[i] = (unsigned char)(x >> 16);
    }
    for (size_t n = 0; n <= sizeof m; n++) {
        sha256_set_accel(0);
        sha256(m, n, a);
        sha256_set_accel(1);
        sha256_ctx c;
        sha256_init(&c);
        for (size_t off = 0, k = 1; off < n; off += k, k = k * 3 % 97 + 1)
            sha256_update(&c, m + off, off + k <= n ? k : n - off);
        sha256_final(&c, b);
        assert_memory_equal(a, b, 32);
    }
}

static int portable(void **st)
{
    (void)st;
    sha256_set_accel(0);
    return 0;
}

static int accelerated(void **st)
{
    (void)st;
    int on = sha256_set_accel(1);
    print_message("SHA instructions: %s\n", on ? "used" : "not on this CPU");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abc),        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_448_bits),   cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_padding_edges), cmocka_unit_test(test_file),
        cmocka_unit_test(test_paths_agree),
    };
    /* the vectors on both paths (the second is the first where the CPU has none) */
    int fails = cmocka_run_group_tests_name("portable", tests, portable, NULL);
    fails += cmocka_run_group_tests_name("accelerated", tests, accelerated, NULL);
    return fails;
}
