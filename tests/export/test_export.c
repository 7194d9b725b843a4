/* net_export to ONNX on a tiny random MobileNetV2 (alpha 0.35, 32x32, a
 * GAP + Dense(8, relu) + Dropout head, 3 classes): the file read back with
 * the generated onnx.pb-c; one node per layer of the net (no Dropout), the
 * input NHWC through a Transpose, kernels in OIHW holding the HWIO values,
 * class names with a quote and non-ASCII letters in metadata, the scaling
 * as nodes with --with-preprocessing. Bad input (a truncated or tampered
 * .tlm, an output in a missing folder, a name that tells no format) is one
 * line naming the file, and leaves no file (and an existing one untouched);
 * a layer tfjs cannot express is refused by name. safetensors, tfjs and
 * .h5 are checked against other software by export_check.sh.
 * ONNX Runtime's answers are tests/export/export_check.sh's. */
#include "testutil.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/weights/model_file.h"
#include "onnx.pb-c.h"
#include "worker/net/net_export.h"
#include "worker/net/net_export_int.h"
#include "worker/net/net_io.h"

static const char *const class_names[] = {"T-shirt/top", "say \"cheese\"", "Stiefelette \xc3\xa4"};

static void tiny_spec(model_spec *s)
{
    tu_tiny_spec(s, class_names);
}

/* The tiny model written to tu_tmp("tiny.tlm"); n keeps its net (random
 * weights) for comparing values. */
static void write_tiny(net *n)
{
    tl_err e = {0};
    model_spec s;
    tiny_spec(&s);
    assert_int_equal(net_build_from_spec(n, &s, 1, &e), 0);
    tset t;
    tset_init(&t);
    assert_int_equal(net_to_tset(n, &t, 1, &e), 0);
    assert_int_equal(model_write(tu_tmp("tiny.tlm"), &s, &t, &e), 0);
    tset_free(&t);
    model_spec_free(&s);
}

static Onnx__ModelProto *read_onnx(const char *path)
{
    size_t len;
    unsigned char *buf = tu_read_file(path, &len);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(m);
    return m;
}

static int count_op(const Onnx__ModelProto *m, const char *op)
{
    int k = 0;
    for (size_t i = 0; i < m->graph->n_node; i++)
        k += !strcmp(m->graph->node[i]->op_type, op);
    return k;
}

static int count_kind(const net *n, net_kind kind)
{
    int k = 0;
    for (int i = 0; i < n->n_layers; i++)
        k += n->layers[i].kind == kind;
    return k;
}

static const Onnx__TensorProto *find_init(const Onnx__ModelProto *m, const char *name)
{
    for (size_t i = 0; i < m->graph->n_initializer; i++)
        if (!strcmp(m->graph->initializer[i]->name, name))
            return m->graph->initializer[i];
    fail_msg("no initializer %s", name);
    return NULL;
}

static const char *find_meta(const Onnx__ModelProto *m, const char *key)
{
    for (size_t i = 0; i < m->n_metadata_props; i++)
        if (!strcmp(m->metadata_props[i]->key, key))
            return m->metadata_props[i]->value;
    fail_msg("no metadata %s", key);
    return NULL;
}

static int64_t dim(const Onnx__ValueInfoProto *v, int i)
{
    const Onnx__TensorShapeProto__Dimension *d = v->type->tensor_type->shape->dim[i];
    return d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? d->dim_value : -1;
}

/* Kernel name's OIHW initializer holds the net's HWIO values. */
static void check_kernel(net *n, const Onnx__ModelProto *m, const char *name, int depthwise)
{
    const net_param *p = net_find_param(n, name);
    assert_non_null(p);
    const float *w = net_param_data(n, p);
    const Onnx__TensorProto *t = find_init(m, name);
    int kh = p->shape[0], kw = p->shape[1], ci = p->shape[2], co = p->shape[3];
    assert_int_equal(t->n_dims, 4);
    assert_int_equal(t->dims[0], depthwise ? ci : co);
    assert_int_equal(t->dims[1], depthwise ? 1 : ci);
    assert_int_equal(t->dims[2], kh);
    assert_int_equal(t->dims[3], kw);
    assert_int_equal(t->raw_data.len, p->n * sizeof(float));
    const float *o = (const float *)t->raw_data.data;
    for (int a = 0; a < co; a++)
        for (int i = 0; i < ci; i++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++)
                    assert_true(o[((a * ci + i) * kh + y) * kw + x] ==
                                w[((y * kw + x) * ci + i) * co + a]);
}

static void test_graph(void **state)
{
    (void)state;
    net n;
    write_tiny(&n);
    tl_err e = {0};
    net_export_result r;
    assert_int_equal(net_export(tu_tmp("tiny.tlm"), tu_tmp("tiny.onnx"), NULL, &r, &e), 0);
    assert_int_equal(r.format, NET_EXPORT_ONNX);
    Onnx__ModelProto *m = read_onnx(tu_tmp("tiny.onnx"));
    assert_int_equal(m->opset_import[0]->version, 13);
    const Onnx__GraphProto *g = m->graph;
    assert_string_equal(g->input[0]->name, "input");
    assert_int_equal(dim(g->input[0], 0), -1);
    assert_int_equal(dim(g->input[0], 1), 32);
    assert_int_equal(dim(g->input[0], 3), 3);
    assert_string_equal(g->output[0]->name, "probabilities");
    assert_int_equal(dim(g->output[0], 1), 3);
    assert_string_equal(g->node[0]->op_type, "Transpose");
    assert_int_equal(g->node[0]->attribute[0]->ints[1], 3); /* perm 0,3,1,2 */
    assert_int_equal(count_op(m, "Conv"), count_kind(&n, NET_CONV));
    assert_int_equal(count_op(m, "BatchNormalization"), count_kind(&n, NET_BN));
    assert_int_equal(count_op(m, "Clip"), count_kind(&n, NET_RELU6));
    assert_int_equal(count_op(m, "Add"), count_kind(&n, NET_ADD));
    assert_int_equal(count_op(m, "Relu"), 1);
    assert_int_equal(count_op(m, "Gemm"), 2);
    assert_int_equal(count_op(m, "Softmax"), 1);
    assert_int_equal(count_op(m, "Dropout"), 0);
    assert_int_equal(count_op(m, "Flatten"), 1); /* after the pooling; not again after relu */
    assert_string_equal(g->node[g->n_node - 1]->op_type, "Softmax");
    check_kernel(&n, m, "Conv1/kernel", 0);
    check_kernel(&n, m, "expanded_conv_depthwise/depthwise_kernel", 1);
    json_t *names = json_loads(find_meta(m, "tlsweep.class_names"), 0, NULL);
    assert_non_null(names);
    assert_int_equal(json_array_size(names), 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_array_get(names, (size_t)i)), class_names[i]);
    json_decref(names);
    assert_string_equal(find_meta(m, "tlsweep.preprocessing"), "tf");
    assert_string_equal(find_meta(m, "tlsweep.preprocessing_in_graph"), "false");
    assert_string_equal(find_meta(m, "tlsweep.input_layout"), "NHWC");
    onnx__model_proto__free_unpacked(m, NULL);
    net_free(&n);
}

/* tf preprocessing as Mul(1/127.5) then Sub(1) on the NHWC input. */
static void test_with_preprocessing(void **state)
{
    (void)state;
    net n;
    write_tiny(&n);
    net_free(&n);
    tl_err e = {0};
    net_export_opts o = {NET_EXPORT_UNKNOWN, 1};
    assert_int_equal(net_export(tu_tmp("tiny.tlm"), tu_tmp("pre.onnx"), &o, NULL, &e), 0);
    Onnx__ModelProto *m = read_onnx(tu_tmp("pre.onnx"));
    const Onnx__GraphProto *g = m->graph;
    assert_string_equal(g->node[0]->op_type, "Mul");
    assert_string_equal(g->node[0]->input[0], "input");
    assert_string_equal(g->node[1]->op_type, "Sub");
    assert_string_equal(g->node[2]->op_type, "Transpose");
    const Onnx__TensorProto *scale = find_init(m, g->node[0]->input[1]);
    assert_true(*(const float *)scale->raw_data.data == 1.0f / 127.5f);
    assert_string_equal(find_meta(m, "tlsweep.preprocessing_in_graph"), "true");
    onnx__model_proto__free_unpacked(m, NULL);
}

/* Nothing but the files the test put there: no output, no temporary. */
static void assert_dir_holds(int n_expected)
{
    DIR *d = opendir(tu_tmpdir());
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(n, n_expected);
}

static void assert_one_line_naming(const tl_err *e, const char *what)
{
    assert_non_null(strstr(e->msg, what));
    assert_null(strchr(e->msg, '\n'));
}

static void clean_tmpdir(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s/*", tu_tmpdir());
    assert_int_equal(system(cmd), 0);
}

/* An empty scratch folder but for the tiny model. */
static void fresh_tiny(void)
{
    clean_tmpdir();
    net n;
    write_tiny(&n);
    net_free(&n);
}

static void test_bad_model_file(void **state)
{
    (void)state;
    fresh_tiny();
    size_t len;
    unsigned char *buf = tu_read_file(tu_tmp("tiny.tlm"), &len);
    tu_write_file(tu_tmp("torn.tlm"), buf, len / 2);
    buf[len / 2] ^= 0x10;
    tu_write_file(tu_tmp("tampered.tlm"), buf, len);
    free(buf);
    tu_write_file(tu_tmp("old.onnx"), "old", 3);
    const char *bad[] = {"torn.tlm", "tampered.tlm"};
    for (int i = 0; i < 2; i++) {
        tl_err e = {0};
        int rc = net_export(tu_tmp(bad[i]), tu_tmp("old.onnx"), NULL, NULL, &e);
        assert_true(rc < 0);
        assert_one_line_naming(&e, bad[i]);
        size_t n_old;
        unsigned char *old = tu_read_file(tu_tmp("old.onnx"), &n_old);
        assert_int_equal(n_old, 3); /* untouched */
        free(old);
    }
    assert_dir_holds(4);
}

static void test_bad_output(void **state)
{
    (void)state;
    fresh_tiny();
    tl_err e = {0};
    assert_int_equal(net_export(tu_tmp("tiny.tlm"), tu_tmp("model.bin"), NULL, NULL, &e),
                     TL_EINVAL);
    assert_one_line_naming(&e, "model.bin");
    e = (tl_err){0};
    assert_true(net_export(tu_tmp("tiny.tlm"), tu_tmp("no/such/dir/m.onnx"), NULL, NULL, &e) < 0);
    assert_one_line_naming(&e, "no/such/dir/m.onnx");
    e = (tl_err){0};
    assert_true(net_export(tu_tmp("missing.tlm"), tu_tmp("m.onnx"), NULL, NULL, &e) < 0);
    assert_one_line_naming(&e, "missing.tlm");
    e = (tl_err){0};
    net_export_opts pre = {NET_EXPORT_UNKNOWN, 1};
    assert_int_equal(net_export(tu_tmp("tiny.tlm"), tu_tmp("m.safetensors"), &pre, NULL, &e),
                     TL_EINVAL);
    assert_one_line_naming(&e, "--with-preprocessing is for ONNX only");
    assert_dir_holds(1);
}

/* A tfjs folder is written whole: a non-empty folder in the way is refused
 * and kept; on success the folder holds model.json and its shard, and no
 * temporary is left beside it. */
static void test_tfjs_folder(void **state)
{
    (void)state;
    fresh_tiny();
    tl_err e = {0};
    char busy[256];
    snprintf(busy, sizeof busy, "%s/busy", tu_tmpdir());
    assert_int_equal(mkdir(busy, 0755), 0);
    tu_write_file(tu_tmp("busy/keep.txt"), "x", 1);
    assert_int_equal(net_export(tu_tmp("tiny.tlm"), busy, NULL, NULL, &e), TL_EIO);
    assert_one_line_naming(&e, "not an empty folder");
    assert_int_equal(access(tu_tmp("busy/keep.txt"), F_OK), 0);
    e = (tl_err){0};
    assert_int_equal(net_export(tu_tmp("tiny.tlm"), tu_tmp("web/"), NULL, NULL, &e), 0);
    assert_int_equal(access(tu_tmp("web/model.json"), F_OK), 0);
    assert_int_equal(access(tu_tmp("web/group1-shard1of1.bin"), F_OK), 0);
    assert_dir_holds(3); /* tiny.tlm, busy, web */
    json_t *root = json_load_file(tu_tmp("web/model.json"), 0, NULL);
    assert_non_null(root);
    json_t *names = json_object_get(json_object_get(json_object_get(root, "userDefinedMetadata"),
                                                    "tlsweep"), "class_names");
    assert_string_equal(json_string_value(json_array_get(names, 1)), class_names[1]);
    json_decref(root);
}

/* A layer Keras/TensorFlow.js cannot express exactly: max pooling with
 * symmetric padding on an input that may be negative (zero padding would
 * win where the padded -inf must not). The export names the layer and
 * writes nothing. */
static void test_tfjs_refuses_layer(void **state)
{
    (void)state;
    clean_tmpdir();
    net n;
    net_init(&n, 8, 8, 3, NET_TORCHVISION);
    int c = net_conv(&n, "conv", 0, 4, 3, 3, 1, 1, nn_pad_sym(1, 1), 1, 1);
    int p = net_maxpool(&n, "pool", c, 3, 3, 2, 2, nn_pad_sym(1, 1));
    assert_true(c > 0 && p > 0);
    tl_err e = {0};
    assert_int_equal(net_finalize(&n, 1, 1, &e), 0);
    model_spec s;
    model_spec_init(&s);
    assert_int_equal(model_spec_set_str(&s.backbone, "custom", &e), 0);
    s.height = s.width = 8;
    net_export__model m = {"x.tlm", tu_tmp("web/"), &s, &n, 0};
    net_export_result r;
    assert_int_equal(net_export__tfjs(&m, &r, &e), TL_EINVAL);
    assert_one_line_naming(&e, "layer pool: max pooling");
    assert_dir_holds(0);
    model_spec_free(&s);
    net_free(&n);
}

static void test_format_names(void **state)
{
    (void)state;
    assert_int_equal(net_export_format_of_path("out/model.onnx"), NET_EXPORT_ONNX);
    assert_int_equal(net_export_format_of_path("m.safetensors"), NET_EXPORT_SAFETENSORS);
    assert_int_equal(net_export_format_of_path("m.h5"), NET_EXPORT_KERAS);
    assert_int_equal(net_export_format_of_path("web/model.json"), NET_EXPORT_TFJS);
    assert_int_equal(net_export_format_of_path("web/"), NET_EXPORT_TFJS);
    assert_int_equal(net_export_format_of_path(tu_tmpdir()), NET_EXPORT_TFJS);
    assert_int_equal(net_export_format_of_path("model.tlm"), NET_EXPORT_UNKNOWN);
    assert_int_equal(net_export_format_parse("onnx"), NET_EXPORT_ONNX);
    assert_int_equal(net_export_format_parse("pickle"), NET_EXPORT_UNKNOWN);
    assert_string_equal(net_export_format_name(NET_EXPORT_ONNX), "onnx");
    assert_int_equal(net_export_format_parse("safetensors"), NET_EXPORT_SAFETENSORS);
    assert_int_equal(net_export_format_parse("tfjs"), NET_EXPORT_TFJS);
    assert_int_equal(net_export_format_parse("keras"), NET_EXPORT_KERAS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph),
        cmocka_unit_test(test_with_preprocessing),
        cmocka_unit_test(test_bad_model_file),
        cmocka_unit_test(test_bad_output),
        cmocka_unit_test(test_tfjs_folder),
        cmocka_unit_test(test_tfjs_refuses_layer),
        cmocka_unit_test(test_format_names),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
