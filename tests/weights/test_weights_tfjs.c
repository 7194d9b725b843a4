/* tfjs layers-model reader on hand-made model.json + shard files: float32,
 * uint8/uint16 quantisation (against q * scale + min in double), float16
 * bit patterns, tensors spanning shard boundaries, the nsfwjs JS-wrapped
 * base64 variant, topology hints, and every rejection with a one-line
 * message naming the file and the tensor. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/weights/weights_tfjs.h"

static const char *put(const char *name, const void *data, size_t n)
{
    const char *p = tu_tmp(name);
    tu_write_file(p, data, n);
    return p;
}

static const char *put_str(const char *name, const char *s)
{
    return put(name, s, strlen(s));
}

/* model.json with the given manifest (the value of "weightsManifest") and a
 * small Keras topology. */
static const char *put_model(const char *name, const char *manifest)
{
    char *j = malloc(strlen(manifest) + 1024);
    sprintf(j,
            "{\"format\": \"layers-model\", \"generatedBy\": \"keras v2.2.4\",\n"
            " \"modelTopology\": {\"keras_version\": \"2.2.4\", \"model_config\": {\"class_name\": "
            "\"Model\", \"config\": {\"name\": \"m\", \"layers\": [\n"
            "  {\"name\": \"input_1\", \"class_name\": \"InputLayer\", \"config\": "
            "{\"batch_input_shape\": [null, 32, 48, 3], \"name\": \"input_1\"}},\n"
            "  {\"name\": \"conv\", \"class_name\": \"Conv2D\", \"config\": {\"filters\": 2}},\n"
            "  {\"name\": \"dense\", \"class_name\": \"Dense\", \"config\": {\"units\": 3}}]}}},\n"
            " \"weightsManifest\": %s}",
            manifest);
    const char *p = put_str(name, j);
    free(j);
    return p;
}

static void le32(unsigned char *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(u >> (8 * i));
}

/* Reading must fail with code and a one-line message containing the given
 * fragments (NULL to skip). */
static void expect_fail(const char *path, int code, const char *f1, const char *f2)
{
    tset s;
    tset_init(&s);
    weights_tfjs_info info;
    tl_err e = {0};
    int rc = weights_tfjs_read(path, &s, &info, &e);
    if (rc != code)
        fail_msg("read %s: rc %d (want %d), message: %s", path, rc, code, e.msg);
    tu_assert_one_line_error(&e, f1, f2);
    weights_tfjs_info_free(&info);
    tset_free(&s);
}

static void read_ok(const char *path, tset *s, weights_tfjs_info *info)
{
    tset_init(s);
    tl_err e = {0};
    int rc = weights_tfjs_read(path, s, info, &e);
    if (rc) {
        print_error("read %s: %s\n", path, e.msg);
        fail();
    }
}

/* ---- happy paths ------------------------------------------------------------ */

static void test_float32(void **st)
{
    (void)st;
    unsigned char b[6 * 4 + 3 * 4];
    const float k[6] = {1.5f, -2.25f, 3e-8f, 0.0f, -0.0f, 123456.789f};
    const float bias[3] = {0.125f, -1.0f, 7.0f};
    for (int i = 0; i < 6; i++)
        le32(b + 4 * i, k[i]);
    for (int i = 0; i < 3; i++)
        le32(b + 24 + 4 * i, bias[i]);
    put("f32.bin", b, sizeof b);
    const char *m = put_model("f32.json",
                              "[{\"paths\": [\"f32.bin\"], \"weights\": ["
                              "{\"name\": \"conv/kernel\", \"shape\": [1, 1, 3, 2], \"dtype\": \"float32\"},"
                              "{\"name\": \"dense/bias\", \"shape\": [3], \"dtype\": \"float32\"}]}]");
    tset s;
    weights_tfjs_info info;
    read_ok(m, &s, &info);
    assert_int_equal(s.n, 2);
    const tset_entry *t = tset_find(&s, "conv/kernel");
    assert_non_null(t);
    assert_int_equal(t->ndim, 4);
    assert_int_equal(t->shape[2], 3);
    assert_int_equal(t->shape[3], 2);
    assert_memory_equal(t->data, k, sizeof k);
    t = tset_find(&s, "dense/bias");
    assert_non_null(t);
    assert_memory_equal(t->data, bias, sizeof bias);
    assert_string_equal(info.format, "layers-model");
    assert_string_equal(info.keras_version, "2.2.4");
    assert_int_equal(info.input_h, 32);
    assert_int_equal(info.input_w, 48);
    assert_int_equal(info.input_c, 3);
    assert_int_equal(info.n_layers, 3);
    assert_string_equal(info.layers[1].name, "conv");
    assert_string_equal(info.layers[1].class_name, "Conv2D");
    assert_non_null(strstr(info.layers[1].config, "\"filters\":2"));
    assert_int_equal(info.backbone[0], 0);
    assert_int_equal(info.backbone_out, -1);
    assert_int_equal(info.n_tensors, 2);
    assert_int_equal(info.weight_bytes, sizeof b);
    weights_tfjs_info_free(&info);
    tset_free(&s);

    /* a folder holding model.json; info may be NULL */
    mkdir(tu_tmp("dir"), 0755);
    put("dir/f32.bin", b, sizeof b);
    const char *j = put_model("dir/model.json",
                              "[{\"paths\": [\"f32.bin\"], \"weights\": ["
                              "{\"name\": \"a\", \"shape\": [9], \"dtype\": \"float32\"}]}]");
    (void)j;
    tset_init(&s);
    tl_err e = {0};
    assert_int_equal(weights_tfjs_read(tu_tmp("dir"), &s, NULL, &e), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0].n, 9);
    assert_true(s.v[0].data[8] == 7.0f);
    tset_free(&s);
}

static void test_quantised(void **st)
{
    (void)st;
    /* uint8 (5 values), uint16 (3 values), a scalar uint8 */
    unsigned char b[5 + 6 + 1] = {0, 1, 127, 128, 255, 0, 0, 0x34, 0x12, 0xff, 0xff, 9};
    put("q.bin", b, sizeof b);
    const char *m = put_model(
        "q.json",
        "[{\"paths\": [\"q.bin\"], \"weights\": ["
        "{\"name\": \"u8\", \"shape\": [5], \"dtype\": \"float32\", \"quantization\": "
        "{\"dtype\": \"uint8\", \"scale\": 0.006666756611244351, \"min\": -0.87334511607301}},"
        "{\"name\": \"u16\", \"shape\": [3], \"dtype\": \"float32\", \"quantization\": "
        "{\"dtype\": \"uint16\", \"scale\": 1.5e-5, \"min\": -0.5, \"original_dtype\": \"float32\"}},"
        "{\"name\": \"scalar\", \"shape\": [], \"dtype\": \"float32\", \"quantization\": "
        "{\"dtype\": \"uint8\", \"scale\": 0.5, \"min\": 1}}]}]");
    tset s;
    read_ok(m, &s, NULL);
    const tset_entry *t = tset_find(&s, "u8");
    assert_non_null(t);
    for (int i = 0; i < 5; i++) {
        float want = (float)((double)b[i] * 0.006666756611244351 + -0.87334511607301);
        assert_true(t->data[i] == want);
    }
    t = tset_find(&s, "u16");
    const unsigned q16[3] = {0, 0x1234, 0xffff};
    for (int i = 0; i < 3; i++) {
        float want = (float)((double)q16[i] * 1.5e-5 - 0.5);
        assert_true(t->data[i] == want);
    }
    t = tset_find(&s, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->n, 1);
    assert_true(t->data[0] == 5.5f);
    tset_free(&s);
}

static void test_float16(void **st)
{
    (void)st;
    const uint16_t h[6] = {0x3c00, 0xc000, 0x3555, 0x0001, 0x7bff, 0x8000};
    const float want[6] = {1.0f, -2.0f, 0.333251953125f, 5.9604644775390625e-8f, 65504.0f, -0.0f};
    unsigned char b[12];
    for (int i = 0; i < 6; i++) {
        b[2 * i] = (unsigned char)h[i];
        b[2 * i + 1] = (unsigned char)(h[i] >> 8);
    }
    put("h.bin", b, sizeof b);
    const char *m = put_model("h.json",
                              "[{\"paths\": [\"h.bin\"], \"weights\": [{\"name\": \"h\", \"shape\": "
                              "[2, 3], \"dtype\": \"float32\", \"quantization\": {\"dtype\": "
                              "\"float16\"}}]}]");
    tset s;
    read_ok(m, &s, NULL);
    assert_memory_equal(s.v[0].data, want, sizeof want);
    assert_true(signbit(s.v[0].data[5]));
    tset_free(&s);
}

/* Two groups; the first in three shards with a float32 tensor spanning the
 * first boundary and a uint8 one spanning the second. */
static void test_shards(void **st)
{
    (void)st;
    unsigned char all[12 + 7 + 8];
    const float a[3] = {1.0f, 2.0f, -3.5f};
    for (int i = 0; i < 3; i++)
        le32(all + 4 * i, a[i]);
    for (int i = 0; i < 7; i++)
        all[12 + i] = (unsigned char)(10 * i);
    const float c[2] = {42.0f, -1e-3f};
    le32(all + 19, c[0]);
    le32(all + 23, c[1]);
    put("s-1of3", all, 10);      /* a[2] spans shards 1 and 2 */
    put("s-2of3", all + 10, 6);  /* bytes 10..15: the uint8 tensor starts at 12 */
    put("s-3of3", all + 16, 3);  /* ...and ends in shard 3 */
    put("g2", all + 19, 8);
    const char *m = put_model(
        "s.json",
        "[{\"paths\": [\"s-1of3\", \"s-2of3\", \"s-3of3\"], \"weights\": ["
        "{\"name\": \"a\", \"shape\": [3], \"dtype\": \"float32\"},"
        "{\"name\": \"b\", \"shape\": [7, 1], \"dtype\": \"float32\", \"quantization\": "
        "{\"dtype\": \"uint8\", \"scale\": 0.25, \"min\": -1}}]},"
        " {\"paths\": [\"g2\"], \"weights\": [{\"name\": \"c\", \"shape\": [2], \"dtype\": "
        "\"float32\"}]}]");
    tset s;
    weights_tfjs_info info;
    read_ok(m, &s, &info);
    assert_int_equal(s.n, 3);
    assert_memory_equal(tset_find(&s, "a")->data, a, sizeof a);
    const tset_entry *t = tset_find(&s, "b");
    for (int i = 0; i < 7; i++)
        assert_true(t->data[i] == (float)(10.0 * i * 0.25 - 1));
    assert_memory_equal(tset_find(&s, "c")->data, c, sizeof c);
    assert_int_equal(info.n_shards, 4);
    assert_int_equal(info.weight_bytes, sizeof all);
    weights_tfjs_info_free(&info);
    tset_free(&s);
}

/* ---- the nsfwjs packaging ------------------------------------------------------ */

static const char *UMD_HEAD =
    "!function(e){if(\"object\"==typeof exports&&\"undefined\"!=typeof module)module.exports=e();"
    "else{(\"undefined\"!=typeof window?window:this).model=e()}}(function(){return function e(a,n,i)"
    "{var r=n[_]={exports:{}};return n[_].exports}({1:[function(e,a,n){a.exports=";
static const char *UMD_TAIL = "},{}]},{},[1])(1)});\n//# sourceMappingURL=x.map\n";

static char *b64(const unsigned char *d, size_t n)
{
    static const char *A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(n / 3 * 4 + 8), *p = o;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *p++ = A[v >> 18];
        *p++ = A[(v >> 12) & 63];
        *p++ = A[(v >> 6) & 63];
        *p++ = A[v & 63];
    }
    if (n - i) {
        uint32_t v = (uint32_t)d[i] << 16 | (n - i == 2 ? (uint32_t)d[i + 1] << 8 : 0);
        *p++ = A[v >> 18];
        *p++ = A[(v >> 12) & 63];
        *p++ = n - i == 2 ? A[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    *p = 0;
    return o;
}

static void put_js_shard(const char *name, const unsigned char *d, size_t n)
{
    char *s = b64(d, n);
    char *js = malloc(strlen(s) + 1024);
    sprintf(js, "%s\"%s\"%s", UMD_HEAD, s, UMD_TAIL);
    put_str(name, js);
    free(js);
    free(s);
}

static const char *put_js_model(const char *name, const char *literal)
{
    char *js = malloc(strlen(literal) + 1024);
    sprintf(js, "%s%s%s", UMD_HEAD, literal, UMD_TAIL);
    const char *p = put_str(name, js);
    free(js);
    return p;
}

/* A MobileNetV2-like topology in minified-JS style: unquoted keys, !1, .5. */
static const char *JS_MODEL =
    "{modelTopology:{keras_version:\"2.2.4\",backend:'tensorflow',model_config:{class_name:"
    "\"Model\",config:{name:\"model_1\",layers:[{name:\"input_1\",class_name:\"InputLayer\","
    "config:{batch_input_shape:[null,224,224,3],dtype:\"float32\",sparse:!1,name:\"input_1\"},"
    "inbound_nodes:[]},{name:\"Conv1\",class_name:\"Conv2D\",config:{name:\"Conv1\",trainable:!1,"
    "filters:32,strides:[2,2],eps:1e-3,m:-.5,k:5.}},{name:\"expanded_conv_depthwise\",class_name:"
    "\"DepthwiseConv2D\",config:{}},{name:\"block_16_project\",class_name:\"Conv2D\",config:"
    "{filters:320,note:'it\\'s \"quoted\"'}},{name:\"out_relu\",class_name:\"ReLU\",config:"
    "{max_value:6}},{name:\"flatten_1\",class_name:\"Flatten\",config:{}}]}}},"
    "weightsManifest:[{paths:[\"group1-shard1of2\",\"group1-shard2of2\"],weights:["
    "{name:\"Conv1/kernel\",shape:[2,2],dtype:\"float32\",quantization:{min:-.5,scale:.25,"
    "dtype:\"uint8\"}},{name:\"dense_3/bias\",shape:[3],dtype:\"float32\"}]}]}";

static void test_js_wrapped(void **st)
{
    (void)st;
    unsigned char d[4 + 12];
    for (int i = 0; i < 4; i++)
        d[i] = (unsigned char)(i + 1);
    const float bias[3] = {0.5f, -0.25f, 3.0f};
    for (int i = 0; i < 3; i++)
        le32(d + 4 + 4 * i, bias[i]);
    mkdir(tu_tmp("nsfw"), 0755);
    put_js_shard("nsfw/group1-shard1of2.min.js", d, 7);   /* 7 bytes: '=' padding */
    put_js_shard("nsfw/group1-shard2of2.min.js", d + 7, 9);
    const char *m = put_js_model("nsfw/model.min.js", JS_MODEL);
    for (int via_dir = 0; via_dir < 2; via_dir++) {
        tset s;
        weights_tfjs_info info;
        read_ok(via_dir ? tu_tmp("nsfw") : m, &s, &info);
        assert_int_equal(s.n, 2);
        const tset_entry *t = tset_find(&s, "Conv1/kernel");
        for (int i = 0; i < 4; i++)
            assert_true(t->data[i] == (float)((i + 1) * 0.25 - 0.5));
        assert_memory_equal(tset_find(&s, "dense_3/bias")->data, bias, sizeof bias);
        assert_string_equal(info.backbone, "mobilenet_v2");
        assert_true(info.alpha == 1.0f);
        assert_string_equal(info.summary, "MobileNetV2 224 alpha 1.0");
        assert_int_equal(info.input_h, 224);
        assert_int_equal(info.backbone_out, 4);
        assert_int_equal(info.n_layers, 6);
        assert_non_null(strstr(info.layers[1].config, "\"trainable\":false"));
        assert_non_null(strstr(info.layers[1].config, "\"m\":-0.5"));
        assert_non_null(strstr(info.layers[3].config, "it's \\\"quoted\\\""));
        assert_non_null(strstr(info.model_file, "model.min.js"));
        weights_tfjs_info_free(&info);
        tset_free(&s);
    }
}

static void test_base64(void **st)
{
    (void)st;
    unsigned char o[16];
    assert_int_equal(weights_tfjs_base64_decode("TWFu", 4, o, sizeof o), 3);
    assert_memory_equal(o, "Man", 3);
    assert_int_equal(weights_tfjs_base64_decode("TWE=", 4, o, sizeof o), 2);
    assert_int_equal(weights_tfjs_base64_decode("TQ==", 4, o, sizeof o), 1);
    assert_int_equal(o[0], 'M');
    assert_int_equal(weights_tfjs_base64_decode("TWE", 3, o, sizeof o), 2); /* unpadded */
    assert_int_equal(weights_tfjs_base64_decode("", 0, o, sizeof o), 0);
    assert_int_equal(weights_tfjs_base64_decode("+/+/", 4, o, sizeof o), 3);
    assert_int_equal(o[0], 0xfb);
    assert_int_equal(o[1], 0xff);
    assert_int_equal(weights_tfjs_base64_decode("TWF", 3, o, 1), -1);       /* too small */
    assert_int_equal(weights_tfjs_base64_decode("TWFuT", 5, o, sizeof o), -1);
    assert_int_equal(weights_tfjs_base64_decode("TW=u", 4, o, sizeof o), -1);
    assert_int_equal(weights_tfjs_base64_decode("TQ==TWFu", 8, o, sizeof o), -1);
    assert_int_equal(weights_tfjs_base64_decode("TWE==", 5, o, sizeof o), -1);
    assert_int_equal(weights_tfjs_base64_decode("TW u", 4, o, sizeof o), -1);
    assert_int_equal(weights_tfjs_base64_decode("TW-u", 4, o, sizeof o), -1);
}

static void test_js_to_json(void **st)
{
    (void)st;
    static const struct { const char *js, *json; } ok[] = {
        {"x.exports={a:1,'b':\"c\",$d_1:[!0,!1,null,void 0],e:-.5,f:5.,g:1e-3,h:[],i:{},}",
         "{\"a\":1,\"b\":\"c\",\"$d_1\":[true,false,null,null],\"e\":-0.5,\"f\":5,\"g\":1e-3,"
         "\"h\":[],\"i\":{}}"},
        {"module.exports=e();a.exports = [1, 2 ,3 ];", "[1,2,3]"},
        {"export default {k: 'a\\x41\\u0042\\n'}", "{\"k\":\"a\\u0041\\u0042\\n\"}"},
        {"a.exports= {1:2} /* c */", "{\"1\":2}"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        tl_err e = {0};
        char *j = weights_tfjs_js_to_json("t.js", ok[i].js, strlen(ok[i].js), NULL, NULL, &e);
        if (!j || strcmp(j, ok[i].json)) {
            print_error("case %zu: got %s (%s)\n", i, j ? j : "NULL", e.msg);
            fail();
        }
        free(j);
    }
    static const char *bad[] = {
        "a.exports={a:b}",       "a.exports={a:1",      "a.exports={a:1}x", "module.exports=e()",
        "a.exports={a:NaN}",     "a.exports=\"abc",     "a.exports={a:01}", "a.exports={a:0x1}",
        "a.exports={a:'\\q'}",   "a.exports=[1,,2]",    "a.exports={a:-}",  "a.exports={:1}",
        "a.exports={a:\"x\ny\"}", "a.exports={a:!2}",    "",                 "a.exports={a:1e}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tl_err e = {0};
        char *j = weights_tfjs_js_to_json("t.js", bad[i], strlen(bad[i]), NULL, NULL, &e);
        if (j || e.code != TL_EFORMAT || !strstr(e.msg, "t.js") || strchr(e.msg, '\n')) {
            print_error("bad case %zu (%s): got %s, message %s\n", i, bad[i], j ? j : "NULL",
                        e.msg);
            fail();
        }
    }
    /* deep nesting is refused, not a stack overflow */
    char deep[4096] = "a.exports=";
    for (int i = 0; i < 2000; i++)
        strcat(deep, "[");
    tl_err e = {0};
    assert_null(weights_tfjs_js_to_json("t.js", deep, strlen(deep), NULL, NULL, &e));
    assert_non_null(strstr(e.msg, "too deep"));
}

/* ---- rejections ---------------------------------------------------------------- */

static const char *one(const char *name, const char *bin, const char *weights)
{
    char man[2048];
    snprintf(man, sizeof man, "[{\"paths\": [\"%s\"], \"weights\": [%s]}]", bin, weights);
    return put_model(name, man);
}

/* 40,000 one-float tensors over groups of 10,000 (a manifest the size of
 * the one that took 13 s when every name was compared with every earlier
 * one): all read; a repeat of any earlier name, in the same group, in an
 * earlier one, or already in the set passed in, is refused with the
 * message a short manifest gets. */
#define MANY 40000
#define MANY_GROUP 10000

static const char *many_model(const char *name, int dup_of)
{
    size_t cap = (size_t)MANY * 80 + 4096, len = 0;
    char *man = malloc(cap);
    assert_non_null(man);
    len += (size_t)snprintf(man + len, cap - len, "[");
    for (int i = 0; i < MANY; i++) {
        if (i % MANY_GROUP == 0)
            len += (size_t)snprintf(man + len, cap - len, "%s{\"paths\": [\"many.bin\"], "
                                    "\"weights\": [", i ? "]}, " : "");
        int id = i == MANY - 1 && dup_of >= 0 ? dup_of : i;
        len += (size_t)snprintf(man + len, cap - len,
                                "%s{\"name\": \"layer_%d/kernel\", \"shape\": [1], "
                                "\"dtype\": \"float32\"}",
                                i % MANY_GROUP ? ", " : "", id);
    }
    snprintf(man + len, cap - len, "]}]");
    const char *p = put_model(name, man);
    free(man);
    return p;
}

static void test_many_names(void **st)
{
    (void)st;
    unsigned char b[4 * MANY_GROUP];
    for (int i = 0; i < MANY_GROUP; i++)
        le32(b + 4 * i, (float)i);
    put("many.bin", b, sizeof b);
    tset s;
    weights_tfjs_info info;
    read_ok(many_model("many.json", -1), &s, &info);
    assert_int_equal(s.n, MANY);
    assert_int_equal(info.n_tensors, MANY);
    const tset_entry *t = tset_find(&s, "layer_12345/kernel");
    assert_non_null(t);
    assert_true(t->data[0] == (float)(12345 % MANY_GROUP));
    weights_tfjs_info_free(&info);
    tset_free(&s);

    /* the last name repeats one from its own group, then an earlier group */
    expect_fail(many_model("many_dup1.json", MANY - 2), TL_EFORMAT, "many_dup1.json",
                "tensor 'layer_39998/kernel' appears twice in the manifest");
    expect_fail(many_model("many_dup2.json", 7), TL_EFORMAT, "many_dup2.json",
                "tensor 'layer_7/kernel' appears twice in the manifest");
    /* a name already in the set the caller passes */
    tset_init(&s);
    tl_err e = {0};
    const int64_t one = 1;
    const float x = 1;
    assert_int_equal(tset_add(&s, "layer_20000/kernel", 1, &one, &x, &e), 0);
    assert_int_equal(weights_tfjs_read(tu_tmp("many.json"), &s, NULL, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, "many.json",
                             "tensor 'layer_20000/kernel' appears twice in the manifest");
    tset_free(&s);
}

static void test_errors(void **st)
{
    (void)st;
    unsigned char b[16] = {0};
    put("e8.bin", b, 8);
    const char *F2 = "{\"name\": \"t/kernel\", \"shape\": [2], \"dtype\": \"float32\"}";
    const char *F3 = "{\"name\": \"t/kernel\", \"shape\": [3], \"dtype\": \"float32\"}";

    /* truncated shard: the second tensor runs past the end */
    expect_fail(one("trunc.json", "e8.bin",
                    "{\"name\": \"a\", \"shape\": [1], \"dtype\": \"float32\"},"
                    "{\"name\": \"t/kernel\", \"shape\": [2], \"dtype\": \"float32\"}"),
                TL_EFORMAT, "e8.bin", "t/kernel");
    expect_fail(one("trunc2.json", "e8.bin", F3), TL_EFORMAT, "truncated", "t/kernel");
    /* an empty shard file (once an offset from a null buffer) */
    put("e0.bin", b, 0);
    expect_fail(one("empty.json", "e0.bin", F2), TL_EFORMAT, "hold 0 bytes", "t/kernel");
    /* shards longer than the manifest */
    put("e12.bin", b, 12);
    expect_fail(one("long.json", "e12.bin", F2), TL_EFORMAT, "e12.bin", "t/kernel");
    /* unknown dtypes */
    expect_fail(one("dt.json", "e8.bin",
                    "{\"name\": \"t/kernel\", \"shape\": [2], \"dtype\": \"int32\"}"),
                TL_EFORMAT, "dt.json", "t/kernel");
    expect_fail(one("qdt.json", "e8.bin",
                    "{\"name\": \"t/kernel\", \"shape\": [8], \"dtype\": \"float32\", "
                    "\"quantization\": {\"dtype\": \"int8\", \"scale\": 1, \"min\": 0}}"),
                TL_EFORMAT, "int8", "t/kernel");
    expect_fail(one("noscale.json", "e8.bin",
                    "{\"name\": \"t/kernel\", \"shape\": [8], \"dtype\": \"float32\", "
                    "\"quantization\": {\"dtype\": \"uint8\", \"min\": 0}}"),
                TL_EFORMAT, "scale", "t/kernel");
    /* duplicate names, within a group and across groups */
    expect_fail(one("dup.json", "e8.bin",
                    "{\"name\": \"t/kernel\", \"shape\": [1], \"dtype\": \"float32\"},"
                    "{\"name\": \"t/kernel\", \"shape\": [1], \"dtype\": \"float32\"}"),
                TL_EFORMAT, "dup.json", "t/kernel' appears twice");
    expect_fail(put_model("dup2.json",
                          "[{\"paths\": [\"e8.bin\"], \"weights\": [{\"name\": \"t/kernel\", "
                          "\"shape\": [2], \"dtype\": \"float32\"}]}, {\"paths\": [\"e8.bin\"], "
                          "\"weights\": [{\"name\": \"t/kernel\", \"shape\": [2], \"dtype\": "
                          "\"float32\"}]}]"),
                TL_EFORMAT, "dup2.json", "appears twice");
    /* NaN / Inf */
    unsigned char nan[8];
    le32(nan, 1.0f);
    le32(nan + 4, NAN);
    put("nan.bin", nan, 8);
    expect_fail(one("nan.json", "nan.bin", F2), TL_EFORMAT, "nan.bin", "t/kernel' has a non-finite");
    unsigned char inf16[4] = {0x00, 0x3c, 0x00, 0x7c};
    put("inf16.bin", inf16, 4);
    expect_fail(one("inf16.json", "inf16.bin",
                    "{\"name\": \"t/kernel\", \"shape\": [2], \"dtype\": \"float32\", "
                    "\"quantization\": {\"dtype\": \"float16\"}}"),
                TL_EFORMAT, "inf16.bin", "index 1");
    /* shapes */
    expect_fail(one("neg.json", "e8.bin",
                    "{\"name\": \"t/kernel\", \"shape\": [2, -1], \"dtype\": \"float32\"}"),
                TL_EFORMAT, "neg.json", "negative dimension");
    expect_fail(one("frac.json", "e8.bin",
                    "{\"name\": \"t/kernel\", \"shape\": [2.5], \"dtype\": \"float32\"}"),
                TL_EFORMAT, "frac.json", "t/kernel");
    expect_fail(one("noshape.json", "e8.bin", "{\"name\": \"t/kernel\", \"dtype\": \"float32\"}"),
                TL_EFORMAT, "noshape.json", "t/kernel");
    expect_fail(one("huge.json", "e8.bin",
                    "{\"name\": \"t/kernel\", \"shape\": [4611686018427387904, 8], \"dtype\": "
                    "\"float32\"}"),
                TL_EFORMAT, "huge.json", "t/kernel");
    /* missing shard; a shard path leaving the folder */
    expect_fail(one("miss.json", "nope.bin", F2), TL_ENOTFOUND, "nope.bin", "missing");
    expect_fail(one("escape.json", "../x.bin", F2), TL_EFORMAT, "escape.json", "../x.bin");
    /* malformed JSON; missing manifest; a missing model */
    expect_fail(put_str("bad.json", "{\"weightsManifest\": [}"), TL_EFORMAT, "bad.json",
                "malformed JSON");
    expect_fail(put_str("noman.json", "{\"modelTopology\": {}}"), TL_EFORMAT, "noman.json",
                "weightsManifest");
    expect_fail(put_str("arr.json", "[1]"), TL_EFORMAT, "arr.json", NULL);
    expect_fail(tu_tmp("absent.json"), TL_ENOTFOUND, "absent.json", NULL);
    mkdir(tu_tmp("empty"), 0755);
    expect_fail(tu_tmp("empty"), TL_ENOTFOUND, "empty", "model.json");
    expect_fail(put_str("nopaths.json", "{\"weightsManifest\": [{\"weights\": []}]}"), TL_EFORMAT,
                "nopaths.json", "paths");

    /* malformed JS wrappers: model and shards */
    mkdir(tu_tmp("js"), 0755);
    expect_fail(put_str("js/model.min.js", "module.exports=e();"), TL_EFORMAT, "model.min.js",
                "JS wrapper");
    expect_fail(put_js_model("js/model.min.js", "{weightsManifest:[{paths:[\"s\"],weights:[]}"),
                TL_EFORMAT, "model.min.js", "JS wrapper");
    expect_fail(put_js_model("js/model.min.js", "{weightsManifest:[{paths:[\"s\"],weights:[]}]} x"),
                TL_EFORMAT, "model.min.js", "JS wrapper");
    char jm[256];
    snprintf(jm, sizeof jm, "%s", put_js_model(
        "js/model.min.js",
        "{weightsManifest:[{paths:[\"s\"],weights:[{name:\"w/bias\",shape:[2],dtype:\"float32\"}]}]}"));
    expect_fail(jm, TL_ENOTFOUND, "s.min.js", "missing");
    put_str("js/s.min.js", "a.exports=\"AAAAAAAAAAA=");
    expect_fail(jm, TL_EFORMAT, "s.min.js", "unterminated");
    put_str("js/s.min.js", "a.exports=\"AAAA*AAAAAA=\"});");
    expect_fail(jm, TL_EFORMAT, "s.min.js", "base64");
    put_str("js/s.min.js", "a.exports=\"AAAAAAAAAAA=\"x");
    expect_fail(jm, TL_EFORMAT, "s.min.js", "JS wrapper");
    put_str("js/s.min.js", "a.exports={}");
    expect_fail(jm, TL_EFORMAT, "s.min.js", "JS wrapper");
    unsigned char six[6] = {0};
    put_js_shard("js/s.min.js", six, 6); /* 6 bytes for 8 */
    expect_fail(jm, TL_EFORMAT, "s.min.js", "w/bias");
    /* the same module with the right byte count reads */
    unsigned char eight[8] = {0};
    put_js_shard("js/s.min.js", eight, 8);
    tset s;
    read_ok(jm, &s, NULL);
    assert_int_equal(s.n, 1);
    tset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float32),   cmocka_unit_test(test_quantised),
        cmocka_unit_test(test_float16),   cmocka_unit_test(test_shards),
        cmocka_unit_test(test_js_wrapped), cmocka_unit_test(test_base64),
        cmocka_unit_test(test_js_to_json), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_many_names),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
