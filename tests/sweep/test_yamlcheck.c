/* The YAML checker on its own, with a small made-up configuration (not a
 * sweep): every refusal is the exact one line FILE:LINE:COL: key.path:
 * what, for a wrong type, an unknown key or name (with and without a
 * suggestion), a list item, a number out of range, a duplicate key, a
 * nested key, a second document, a syntax error and a document nested too
 * deep. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "common/sweep/yamlcheck.h"

typedef struct {
    char *name;
    double rate;
    int epochs;
    int layers[8];
    int n_layers;
    int optimizer;   /* index in optimizers */
    int shuffle;
    uint64_t seed;
    int patience;
} config;

static const char *const optimizers[] = {"adam", "sgd", NULL};

static int check_stop(ycheck *y, yaml_node_t *m, config *c)
{
    static const char *const keys[] = {"patience", NULL};
    yaml_node_t *v[1];
    if (ycheck_map(y, m, "stop", keys, v, "a mapping"))
        return TL_EINVAL;
    return v[0] ? ycheck_int(y, v[0], "stop.patience", "a whole number >= 0", 0, 1000, &c->patience) : 0;
}

static int check_layers(ycheck *y, yaml_node_t *n, config *c)
{
    ycheck_items l;
    int rc = ycheck_list(y, n, "layers", &l);
    for (int i = 0; !rc && i < l.n && i < 8; i++) {
        char ip[64];
        ycheck_item_path(ip, sizeof ip, "layers", &l, i);
        rc = ycheck_int(y, l.items[i], ip, "a whole number in [1, 1024]", 1, 1024, &c->layers[i]);
        c->n_layers = i + 1;
    }
    free(l.items);
    return rc;
}

static int check_root(ycheck *y, yaml_node_t *root, config *c)
{
    static const char *const keys[] = {"name", "rate", "epochs", "layers", "optimizer",
                                       "shuffle", "seed", "stop", NULL};
    yaml_node_t *v[8];
    if (ycheck_map(y, root, "", keys, v, "a mapping of config keys"))
        return TL_EINVAL;
    if ((v[0] && ycheck_str(y, v[0], "name", "a name", &c->name)) ||
        (v[1] && ycheck_range(y, v[1], "rate", "a rate in (0, 1]", 0, 1, 1, 0, &c->rate)) ||
        (v[2] && ycheck_int(y, v[2], "epochs", "a whole number >= 1", 1, 1000, &c->epochs)) ||
        (v[3] && check_layers(y, v[3], c)) ||
        (v[4] && ycheck_enum(y, v[4], "optimizer", "optimizer", optimizers, &c->optimizer)) ||
        (v[5] && ycheck_bool(y, v[5], "shuffle", &c->shuffle)) ||
        (v[6] && ycheck_u64(y, v[6], "seed", &c->seed)) ||
        (v[7] && check_stop(y, v[7], c)))
        return TL_EINVAL;
    return 0;
}

/* What a caller of the checker does: load, apply its rules, close. */
static int check_config(const char *file, const char *text, config *c, tl_err *e)
{
    memset(c, 0, sizeof *c);
    ycheck y;
    ycheck_init(&y, file, "config file", e);
    int rc = ycheck_load(&y, text, strlen(text));
    yaml_node_t *root = ycheck_root(&y);
    if (!rc && !root)
        rc = ycheck_fail(&y, NULL, NULL, "empty config file");
    else if (!rc)
        rc = check_root(&y, root, c);
    return ycheck_close(&y, rc);
}

static void test_valid(void **state)
{
    (void)state;
    config c;
    tl_err e = {0};
    int rc = check_config("cfg.yaml",
                          "name: small\nrate: 1\nepochs: 3\nlayers: [64, 32]\noptimizer: sgd\n"
                          "shuffle: True\nseed: 18446744073709551615\nstop: {patience: 2}\n",
                          &c, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_string_equal(c.name, "small");
    assert_true(c.rate == 1.0);
    assert_int_equal(c.epochs, 3);
    assert_int_equal(c.n_layers, 2);
    assert_int_equal(c.layers[1], 32);
    assert_int_equal(c.optimizer, 1);
    assert_int_equal(c.shuffle, 1);
    assert_true(c.seed == UINT64_MAX);
    assert_int_equal(c.patience, 2);
    free(c.name);

    /* one value stands for a one-element list */
    assert_int_equal(check_config("cfg.yaml", "layers: 16\n", &c, &e), 0);
    assert_int_equal(c.n_layers, 1);
    assert_int_equal(c.layers[0], 16);
}

typedef struct {
    const char *text;
    int code;
    const char *msg;   /* exactly */
} bad_case;

static const bad_case bad_cases[] = {
    /* a wrong type */
    {"name: a\nepochs: [3]\n", TL_EINVAL, "cfg.yaml:2:9: epochs: expected a whole number >= 1, got a list"},
    {"name:\n", TL_EINVAL, "cfg.yaml:1:6: name: expected a name, got nothing"},
    {"shuffle: yes\n", TL_EINVAL, "cfg.yaml:1:10: shuffle: expected true or false, got yes"},
    {"seed: -3\n", TL_EINVAL, "cfg.yaml:1:7: seed: expected a whole number >= 0, got -3"},
    {"[1, 2]\n", TL_EINVAL,
     "cfg.yaml:1:1: expected a mapping of config keys (keys: name, rate, epochs, layers, optimizer, "
     "shuffle, seed, stop), got a list"},
    /* an unknown key, with a suggestion when one is near */
    {"name: a\nepocs: 3\n", TL_EINVAL, "cfg.yaml:2:1: epocs: unknown key (did you mean 'epochs'?)"},
    {"colour: blue\n", TL_EINVAL,
     "cfg.yaml:1:1: colour: unknown key (expected one of name, rate, epochs, layers, optimizer, shuffle, "
     "seed, stop)"},
    {"stop:\n  patiense: 3\n", TL_EINVAL, "cfg.yaml:2:3: stop.patiense: unknown key (did you mean 'patience'?)"},
    {"optimizer: adamw\n", TL_EINVAL, "cfg.yaml:1:12: optimizer: unknown optimizer 'adamw' (did you mean 'adam'?)"},
    {"optimizer: lion\n", TL_EINVAL,
     "cfg.yaml:1:12: optimizer: unknown optimizer 'lion' (expected one of adam, sgd)"},
    {"name: a\nname: b\n", TL_EINVAL, "cfg.yaml:2:1: name: duplicate key (first given on line 1)"},
    /* a list item, and one value standing for a list */
    {"layers: [64, 0, 32]\n", TL_EINVAL, "cfg.yaml:1:14: layers[1]: expected a whole number in [1, 1024], got 0"},
    {"layers:\n  - 8\n  - 2048\n", TL_EINVAL,
     "cfg.yaml:3:5: layers[1]: expected a whole number in [1, 1024], got 2048"},
    {"layers: 0\n", TL_EINVAL, "cfg.yaml:1:9: layers: expected a whole number in [1, 1024], got 0"},
    {"layers: []\n", TL_EINVAL, "cfg.yaml:1:9: layers: expected a non-empty list"},
    /* a number out of range, at either end */
    {"rate: 1.5\n", TL_EINVAL, "cfg.yaml:1:7: rate: expected a rate in (0, 1], got 1.5"},
    {"rate: 0\n", TL_EINVAL, "cfg.yaml:1:7: rate: expected a rate in (0, 1], got 0"},
    {"rate: .nan\n", TL_EINVAL, "cfg.yaml:1:7: rate: expected a rate in (0, 1], got .nan"},
    {"stop: {patience: -1}\n", TL_EINVAL, "cfg.yaml:1:18: stop.patience: expected a whole number >= 0, got -1"},
    /* the document itself */
    {"name: a\n---\nname: b\n", TL_EINVAL, "cfg.yaml:3:1: expected one YAML document, found a second one"},
    {"", TL_EINVAL, "cfg.yaml:1:1: empty config file"},
};

static void test_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        config c;
        tl_err e = {0};
        int rc = check_config("cfg.yaml", bad_cases[i].text, &c, &e);
        free(c.name);
        if (rc != bad_cases[i].code || e.code != rc || strcmp(e.msg, bad_cases[i].msg) != 0)
            fail_msg("case %zu: got %d '%s', want %d '%s'", i, rc, e.msg, bad_cases[i].code, bad_cases[i].msg);
    }
    /* a syntax error: where, in our words; what, in libyaml's */
    config c;
    tl_err e = {0};
    assert_int_equal(check_config("cfg.yaml", "name: a\n\tepochs: 3\n", &c, &e), TL_EFORMAT);
    free(c.name);
    const char *want = "cfg.yaml:2:1: YAML syntax error: ";
    if (strncmp(e.msg, want, strlen(want)) != 0 || strlen(e.msg) <= strlen(want))
        fail_msg("got '%s', want '%s...'", e.msg, want);
}

/* Nested past YCHECK_MAX_DEPTH: refused at the first level too many, before
 * libyaml's loader (quadratic in depth) sees it. */
static void test_too_deep(void **state)
{
    (void)state;
    char text[128] = "a: ";
    memset(text + 3, '[', 40);
    config c;
    tl_err e = {0};
    assert_int_equal(check_config("cfg.yaml", text, &c, &e), TL_EFORMAT);
    /* the root mapping is level 1, so the 32nd '[' (column 3 + 32) is level 33 */
    assert_string_equal(e.msg, "cfg.yaml:1:35: nested deeper than 32 levels: not a config file");
    memset(text + 3, '[', 31);
    memset(text + 34, ']', 31);
    text[65] = '\0';
    assert_int_equal(check_config("cfg.yaml", text, &c, &e), TL_EINVAL);   /* deep enough: 'a' is unknown */
}

/* The message stays one line whatever the file name or the text held, and a
 * caller may pass no tl_err and still get the code. */
static void test_one_line(void **state)
{
    (void)state;
    config c;
    tl_err e = {0};
    assert_int_equal(check_config("dir\n/cfg\t.yaml", "rate: x\n", &c, &e), TL_EINVAL);
    assert_string_equal(e.msg, "dir?/cfg?.yaml:1:7: rate: expected a rate in (0, 1], got x");
    assert_int_equal(check_config("cfg.yaml", "optimizer: \"ad\\nam\"\n", &c, &e), TL_EINVAL);
    assert_string_equal(e.msg, "cfg.yaml:1:12: optimizer: unknown optimizer 'ad?am' (did you mean 'adam'?)");
    assert_int_equal(check_config("cfg.yaml", "name: \"a\\u0001b\"\n", &c, &e), TL_EINVAL);
    assert_string_equal(e.msg, "cfg.yaml:1:7: name: expected a name without control characters");
    assert_int_equal(check_config("cfg.yaml", "epochs: 0\n", &c, NULL), TL_EINVAL);
    assert_int_equal(check_config("cfg.yaml", "a: [\n", &c, NULL), TL_EFORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_too_deep),
        cmocka_unit_test(test_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
