/* The .tlm model file: round trip, and every way a file can be bad (torn,
 * tampered, wrong magic or version, unparsable payload with a valid
 * checksum, NaN, duplicate names, data that does not fill its shape), plus
 * a random-corruption loop that must end cleanly under ASan. Bad payloads
 * are made by unpacking a good one with protobuf-c, editing the message,
 * and re-framing it with a recomputed checksum, so they pass the checks
 * that come before the one under test. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/weights/model_file.h"
#include "common/base/rng.h"
#include "common/base/sha256.h"
#include "model.pb-c.h"

static char path[64];

static void make_spec(model_spec *s)
{
    model_spec_init(s);
    tl_err e = {0};
    assert_int_equal(model_spec_set_str(&s->backbone, "mobilenet_v2", &e), 0);
    s->alpha = 0.35f;
    s->height = 32;
    s->width = 48;
    s->convention = MODEL_KERAS;
    model_head_op ops[] = {{MODEL_HEAD_GAP, 0, MODEL_ACT_LINEAR, 0},
                           {MODEL_HEAD_DENSE, 16, MODEL_ACT_RELU, 0},
                           {MODEL_HEAD_DROPOUT, 0, MODEL_ACT_LINEAR, 0.25f}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(model_spec_add_head(s, ops[i], &e), 0);
    s->num_classes = 3;
    s->loss = MODEL_LOSS_SIGMOID;
    s->mode = MODEL_FINE_TUNE_AT;
    s->fine_tune_at = 100;
    s->bn_update = 1;
    s->preproc = MODEL_PREPROC_CAFFE;
    assert_int_equal(model_spec_add_class(s, "cat", &e), 0);
    assert_int_equal(model_spec_add_class(s, "dog", &e), 0);
    assert_int_equal(model_spec_add_class(s, "émeu", &e), 0);
    assert_int_equal(model_spec_set_str(&s->source_path, "/models/x.h5", &e), 0);
    assert_int_equal(model_spec_set_str(&s->source_sha256, "ab12", &e), 0);
    assert_int_equal(model_spec_set_str(&s->importer, "h5", &e), 0);
    assert_int_equal(model_spec_set_str(&s->tlsweep_version, "0.1.0", &e), 0);
    assert_int_equal(model_spec_set_str(&s->precision, "bf16", &e), 0);
}

static void make_tensors(tset *t)
{
    tset_init(t);
    tl_err e = {0};
    int64_t k[4] = {3, 3, 3, 16}, b[1] = {16}, z[1] = {0};
    float *kd = tu_alloc_uniform(432, 1, -1, 1), *bd = tu_alloc_uniform(16, 2, -1, 1);
    float one = 1.5f;
    assert_int_equal(tset_add(t, "Conv1/kernel", 4, k, kd, &e), 0);
    assert_int_equal(tset_add(t, "bn_Conv1/moving_variance", 1, b, bd, &e), 0);
    assert_int_equal(tset_add(t, "scalar", 0, NULL, &one, &e), 0);
    assert_int_equal(tset_add(t, "empty", 1, z, &one, &e), 0);
    free(kd);
    free(bd);
}

static void write_good(void)
{
    model_spec s;
    tset t;
    make_spec(&s);
    make_tensors(&t);
    tl_err e = {0};
    assert_int_equal(model_write(path, &s, &t, &e), 0);
    model_spec_free(&s);
    tset_free(&t);
}

/* header + payload + checksum, version v */
static unsigned char *frame(const void *payload, size_t plen, uint32_t v, size_t *len)
{
    *len = 20 + plen + 32;
    unsigned char *b = malloc(*len);
    memcpy(b, "TLSWEEPM", 8);
    for (int i = 0; i < 4; i++)
        b[8 + i] = (unsigned char)(v >> (8 * i));
    for (int i = 0; i < 8; i++)
        b[12 + i] = (unsigned char)((uint64_t)plen >> (8 * i));
    memcpy(b + 20, payload, plen);
    sha256(payload, plen, b + 20 + plen);
    return b;
}

/* Expects model_read(path) to fail with code and a message holding path and
 * `needle`; spec and tensors must come back empty. */
static void expect_fail(int code, const char *needle)
{
    model_spec s;
    tset t;
    model_spec_init(&s);
    tset_init(&t);
    tl_err e = {0};
    int rc = model_read(path, &s, &t, &e);
    if (rc != code)
        fail_msg("want %d with '%s', got %d: %s", code, needle, rc, e.msg);
    tu_assert_one_line_error(&e, path, needle);
    assert_null(s.backbone);
    assert_int_equal(t.n, 0);
    model_spec_free(&s);
    tset_free(&t);
}

/* Re-frames the good file's payload after edit() changed the message. */
static void write_edited(void (*edit)(Tlsweep__Model *m))
{
    write_good();
    size_t len;
    unsigned char *b = tu_read_file(path, &len);
    Tlsweep__Model *m = tlsweep__model__unpack(NULL, len - 52, b + 20);
    assert_non_null(m);
    edit(m);
    size_t plen = tlsweep__model__get_packed_size(m);
    unsigned char *p = malloc(plen + 1);
    tlsweep__model__pack(m, p);
    size_t flen;
    unsigned char *f = frame(p, plen, 1, &flen);
    tu_write_file(path, f, flen);
    free(f);
    free(p);
    /* edits point only into m's own allocations or at static strings that
     * free_unpacked must not see: edit() restores those */
    tlsweep__model__free_unpacked(m, NULL);
    free(b);
}

static void test_round_trip(void **st)
{
    (void)st;
    write_good();
    model_spec s, w;
    tset t, want;
    model_spec_init(&s);
    tset_init(&t);
    make_spec(&w);
    make_tensors(&want);
    tl_err e = {0};
    assert_int_equal(model_read(path, &s, &t, &e), 0);
    assert_int_equal(s.format_version, MODEL_FORMAT_VERSION);
    assert_string_equal(s.backbone, "mobilenet_v2");
    assert_true(s.alpha == 0.35f);
    assert_int_equal(s.height, 32);
    assert_int_equal(s.width, 48);
    assert_int_equal(s.convention, MODEL_KERAS);
    assert_int_equal(s.n_head, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.head[i].kind, w.head[i].kind);
        assert_int_equal(s.head[i].units, w.head[i].units);
        assert_int_equal(s.head[i].act, w.head[i].act);
        assert_true(s.head[i].rate == w.head[i].rate);
    }
    assert_int_equal(s.num_classes, 3);
    assert_int_equal(s.loss, MODEL_LOSS_SIGMOID);
    assert_int_equal(s.mode, MODEL_FINE_TUNE_AT);
    assert_int_equal(s.fine_tune_at, 100);
    assert_int_equal(s.bn_update, 1);
    assert_int_equal(s.preproc, MODEL_PREPROC_CAFFE);
    assert_int_equal(s.n_class_names, 3);
    assert_string_equal(s.class_names[2], "émeu");
    assert_string_equal(s.source_path, "/models/x.h5");
    assert_string_equal(s.source_sha256, "ab12");
    assert_string_equal(s.importer, "h5");
    assert_string_equal(s.tlsweep_version, "0.1.0");
    assert_string_equal(s.precision, "bf16");
    assert_int_equal(t.n, want.n);
    for (size_t i = 0; i < t.n; i++) {
        assert_string_equal(t.v[i].name, want.v[i].name);
        assert_int_equal(t.v[i].ndim, want.v[i].ndim);
        assert_int_equal(t.v[i].n, want.v[i].n);
        for (int k = 0; k < t.v[i].ndim; k++)
            assert_int_equal(t.v[i].shape[k], want.v[i].shape[k]);
        if (t.v[i].n)
            assert_memory_equal(t.v[i].data, want.v[i].data, t.v[i].n * sizeof(float));
    }
    /* no temporary file left behind */
    assert_false(tu_tmp_left(path));
    model_spec_free(&s);
    model_spec_free(&w);
    tset_free(&t);
    tset_free(&want);
}

static void test_torn(void **st)
{
    (void)st;
    write_good();
    size_t len;
    unsigned char *b = tu_read_file(path, &len);
    size_t cuts[] = {0, 5, 8, 12, 19, 20, 21, 100, len / 2, len - 33, len - 32, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        tu_write_file(path, b, cuts[i]);
        expect_fail(TL_EFORMAT, cuts[i] < 8 ? "no TLSWEEPM magic" : "torn");
    }
    /* and one byte too many */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, b, len);
    longer[len] = 0;
    tu_write_file(path, longer, len + 1);
    expect_fail(TL_EFORMAT, "torn");
    free(longer);
    free(b);
}

static void test_tampered(void **st)
{
    (void)st;
    write_good();
    size_t len;
    unsigned char *b = tu_read_file(path, &len);
    size_t at[] = {20, 21, len / 2, len - 33, len - 1}; /* payload, and the checksum itself */
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        b[at[i]] ^= 0x10;
        tu_write_file(path, b, len);
        expect_fail(TL_EFORMAT, "checksum mismatch");
        b[at[i]] ^= 0x10;
    }
    free(b);
}

static void test_bad_magic_and_version(void **st)
{
    (void)st;
    write_good();
    size_t len;
    unsigned char *b = tu_read_file(path, &len);
    b[0] = 'X';
    tu_write_file(path, b, len);
    expect_fail(TL_EFORMAT, "no TLSWEEPM magic");
    b[0] = 'T';
    b[8] = 2;
    tu_write_file(path, b, len);
    expect_fail(TL_EFORMAT, "version 2 is not supported");
    b[8] = 1;
    b[19] = 0x80; /* a payload length of petabytes: refused before any allocation */
    tu_write_file(path, b, len);
    expect_fail(TL_EFORMAT, "limit");
    free(b);
    unlink(path);
    expect_fail(TL_EIO, "cannot open");
}

static void test_unparsable_payload(void **st)
{
    (void)st;
    /* wire type 7 does not exist; a length-delimited field running past the end */
    static const unsigned char bad[][6] = {{0x0f, 0xff, 0xff, 0xff, 0xff, 0x01},
                                           {0x12, 0x7f, 0x01, 0x02, 0x03, 0x04}};
    for (int i = 0; i < 2; i++) {
        size_t len;
        unsigned char *f = frame(bad[i], sizeof bad[i], 1, &len);
        tu_write_file(path, f, len);
        free(f);
        expect_fail(TL_EFORMAT, "does not parse");
    }
    /* an empty payload parses, but has no architecture */
    size_t len;
    unsigned char *f = frame("", 0, 1, &len);
    tu_write_file(path, f, len);
    free(f);
    expect_fail(TL_EFORMAT, "version 0");
}

static void edit_nan(Tlsweep__Model *m)
{
    m->tensors[1]->data[3] = NAN;
}

static char *saved_name;
static void edit_dup(Tlsweep__Model *m)
{
    saved_name = m->tensors[1]->name;
    m->tensors[1]->name = m->tensors[0]->name;
}

static void edit_len(Tlsweep__Model *m)
{
    m->tensors[0]->shape[3] = 17;
}

static void edit_neg(Tlsweep__Model *m)
{
    m->tensors[0]->shape[0] = -3;
}

static void edit_classes(Tlsweep__Model *m)
{
    m->arch->num_classes = 4;
}

static void edit_kind(Tlsweep__Model *m)
{
    m->arch->head[1]->kind = 9;
}

static void edit_version(Tlsweep__Model *m)
{
    m->format_version = 7;
}

static void test_bad_content(void **st)
{
    (void)st;
    write_edited(edit_nan);
    expect_fail(TL_EFORMAT, "tensor 'bn_Conv1/moving_variance' has a non-finite value");

    /* two tensors named alike; give the message its own name back before freeing */
    write_good();
    size_t len;
    unsigned char *b = tu_read_file(path, &len);
    Tlsweep__Model *m = tlsweep__model__unpack(NULL, len - 52, b + 20);
    edit_dup(m);
    size_t plen = tlsweep__model__get_packed_size(m);
    unsigned char *p = malloc(plen);
    tlsweep__model__pack(m, p);
    m->tensors[1]->name = saved_name;
    tlsweep__model__free_unpacked(m, NULL);
    size_t flen;
    unsigned char *f = frame(p, plen, 1, &flen);
    tu_write_file(path, f, flen);
    free(f);
    free(p);
    free(b);
    expect_fail(TL_EFORMAT, "tensor 'Conv1/kernel' appears twice");

    write_edited(edit_len);
    expect_fail(TL_EFORMAT, "tensor 'Conv1/kernel' holds 432 values, its shape needs 459");
    write_edited(edit_neg);
    expect_fail(TL_EFORMAT, "tensor 'Conv1/kernel' has dimension -3");
    write_edited(edit_classes);
    expect_fail(TL_EFORMAT, "3 class names for 4 classes");
    write_edited(edit_kind);
    expect_fail(TL_EFORMAT, "head layer 1: unknown kind 9");
    write_edited(edit_version);
    expect_fail(TL_EFORMAT, "payload says format version 7");
}

static void test_write_refuses_nan(void **st)
{
    (void)st;
    unlink(path);
    model_spec s;
    tset t;
    make_spec(&s);
    make_tensors(&t);
    t.v[0].data[5] = INFINITY;
    tl_err e = {0};
    assert_int_equal(model_write(path, &s, &t, &e), TL_EFORMAT);
    assert_non_null(strstr(e.msg, "Conv1/kernel"));
    assert_int_equal(access(path, F_OK), -1);
    model_spec_free(&s);
    tset_free(&t);
}

/* A few thousand files with random bytes changed, inserted or cut; half
 * with the checksum recomputed so the protobuf parser and the validation
 * see them. Nothing may crash or leak (ASan); a file that still reads must
 * read whole. */
static void test_random_corruption(void **st)
{
    (void)st;
    write_good();
    size_t len;
    unsigned char *good = tu_read_file(path, &len);
    size_t plen = len - 52;
    unsigned char *pay = malloc(plen + 64);
    rng_state r;
    rng_init(&r, 12345);
    int ok = 0, refused = 0;
    for (int iter = 0; iter < 4000; iter++) {
        size_t n = plen;
        memcpy(pay, good + 20, plen);
        int edits = 1 + (int)(rng_uniform(&r) * 4);
        for (int k = 0; k < edits; k++) {
            size_t at = (size_t)(rng_uniform(&r) * (double)n) % (n ? n : 1);
            int what = (int)(rng_uniform(&r) * 4);
            if (what == 0 || n == 0) {
                if (n)
                    pay[at] = (unsigned char)(rng_uniform(&r) * 256);
            } else if (what == 1) {
                pay[at] ^= (unsigned char)(1u << (int)(rng_uniform(&r) * 8));
            } else if (what == 2 && n > 1) {
                memmove(pay + at, pay + at + 1, n - at - 1); /* cut one byte */
                n--;
            } else if (n < plen + 60) {
                memmove(pay + at + 1, pay + at, n - at); /* insert one */
                pay[at] = (unsigned char)(rng_uniform(&r) * 256);
                n++;
            }
        }
        size_t flen;
        unsigned char *f = frame(pay, n, 1, &flen);
        if (iter % 2)
            f[20 + (size_t)(rng_uniform(&r) * (double)n) % (n ? n : 1)] ^= 1; /* stale checksum */
        model_spec s;
        tset t;
        model_spec_init(&s);
        tset_init(&t);
        tl_err e = {0};
        int rc = model_read_mem("fuzz.tlm", f, flen, &s, &t, &e);
        if (rc == 0) {
            ok++;
            for (size_t i = 0; i < t.n; i++)
                for (size_t j = 0; j < t.v[i].n; j++)
                    assert_true(isfinite(t.v[i].data[j]));
        } else {
            refused++;
            assert_non_null(strstr(e.msg, "fuzz.tlm"));
            assert_int_equal(t.n, 0);
        }
        model_spec_free(&s);
        tset_free(&t);
        free(f);
    }
    printf("random corruption: %d read, %d refused\n", ok, refused);
    assert_true(refused > 2000);
    free(pay);
    free(good);
}

/* model_write_mem gives the bytes model_write puts in the file, which
 * model_read_mem takes back; a spec model_write refuses, it refuses too. */
static void test_write_mem(void **st)
{
    (void)st;
    write_good();
    size_t flen;
    unsigned char *file = tu_read_file(path, &flen);
    model_spec s;
    tset t;
    make_spec(&s);
    make_tensors(&t);
    tl_err e = {0};
    unsigned char *buf;
    size_t len;
    assert_int_equal(model_write_mem(&s, &t, &buf, &len, &e), 0);
    assert_int_equal(len, flen);
    assert_memory_equal(buf, file, len);

    model_spec r;
    tset rt;
    model_spec_init(&r);
    tset_init(&rt);
    assert_int_equal(model_read_mem("mem.tlm", buf, len, &r, &rt, &e), 0);
    assert_string_equal(r.backbone, "mobilenet_v2");
    assert_int_equal(r.n_head, 3);
    assert_int_equal(rt.n, t.n);
    assert_memory_equal(rt.v[0].data, t.v[0].data, t.v[0].n * sizeof(float));
    model_spec_free(&r);
    tset_free(&rt);
    free(buf);

    t.v[1].data[2] = NAN;
    buf = (unsigned char *)&buf;
    assert_int_equal(model_write_mem(&s, &t, &buf, &len, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, "in memory", "bn_Conv1/moving_variance");
    assert_null(buf);
    assert_int_equal(len, 0);
    model_spec_free(&s);
    tset_free(&t);
    free(file);
}

/* A model file written before files said their training precision (the
 * fuzz corpus keeps one) still reads, with no precision. */
static void test_reads_older_file(void **st)
{
    (void)st;
    const char *old = tu_repo_path("tests/fuzz/corpus/tlm/head.tlm");
    model_spec s;
    tset t;
    model_spec_init(&s);
    tset_init(&t);
    tl_err e = {0};
    if (model_read(old, &s, &t, &e))
        fail_msg("%s", e.msg);
    assert_non_null(s.backbone);
    assert_null(s.precision);
    model_spec_free(&s);
    tset_free(&t);
}

/* model_write_bytes writes good bytes whole, and refuses damaged ones
 * naming the target, leaving what was there and no temporary. */
static void test_write_bytes(void **st)
{
    (void)st;
    char target[80];
    snprintf(target, sizeof target, "%s.copy", path);
    write_good();
    size_t len;
    unsigned char *good = tu_read_file(path, &len);
    tu_write_file(target, "old contents", 12);
    tl_err e = {0};
    assert_int_equal(model_write_bytes(target, good, len, &e), 0);
    size_t n;
    unsigned char *got = tu_read_file(target, &n);
    assert_int_equal(n, len);
    assert_memory_equal(got, good, len);
    free(got);
    assert_false(tu_tmp_left(target));

    /* a flipped payload byte, a cut, a wrong magic */
    unsigned char *bad = malloc(len);
    memcpy(bad, good, len);
    bad[len / 2] ^= 0x04;
    struct {
        size_t len;
        const char *needle;
    } cases[] = {{len, "checksum mismatch"}, {len - 1, "torn"}, {len, "no TLSWEEPM magic"}};
    tu_write_file(target, "old contents", 12);
    for (int i = 0; i < 3; i++) {
        if (i == 1)
            memcpy(bad, good, len);
        if (i == 2)
            bad[0] = 'X';
        memset(&e, 0, sizeof e);
        assert_int_equal(model_write_bytes(target, bad, cases[i].len, &e), TL_EFORMAT);
        tu_assert_one_line_error(&e, target, cases[i].needle, "not written");
        got = tu_read_file(target, &n);
        assert_int_equal(n, 12);
        assert_memory_equal(got, "old contents", 12);
        free(got);
        assert_false(tu_tmp_left(target));
    }
    free(bad);
    free(good);
    unlink(target);
}

static int setup(void **st)
{
    (void)st;
    snprintf(path, sizeof path, "/tmp/tlsweep-model-%d.tlm", (int)getpid());
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    unlink(path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_torn),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_bad_magic_and_version),
        cmocka_unit_test(test_unparsable_payload),
        cmocka_unit_test(test_bad_content),
        cmocka_unit_test(test_write_refuses_nan),
        cmocka_unit_test(test_random_corruption),
        cmocka_unit_test(test_write_mem),
        cmocka_unit_test(test_write_bytes),
        cmocka_unit_test(test_reads_older_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
