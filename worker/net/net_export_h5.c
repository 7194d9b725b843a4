/* Keras .h5 export (see net_export.h), in the layout of Keras's
 * model.save to HDF5 (the one common/weights/weights_h5.c reads):
 *   /.attrs: model_config (the Keras functional config, JSON),
 *            keras_version, backend, tlsweep (class names, preprocessing...)
 *   /model_weights.attrs["layer_names"]          layers with weights, in order
 *   /model_weights/<layer>.attrs["weight_names"] "<layer>/kernel:0", ...
 *   /model_weights/<layer>/<layer>/kernel:0      float32, Keras layout
 * Names are fixed-length byte strings, as h5py stores numpy bytes. libhdf5
 * writes "<out>.tmp.<pid>", which is fsynced and renamed over out. */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker/net/net_export_int.h"

/* An attribute holding n fixed-length strings (a scalar when scalar). */
static int put_strings(hid_t obj, const char *attr, const char *const *v, size_t n, int scalar)
{
    size_t w = 1;
    for (size_t i = 0; i < n; i++)
        w = strlen(v[i]) > w ? strlen(v[i]) : w;
    char *buf = calloc(n ? n : 1, w);
    if (!buf)
        return -1;
    for (size_t i = 0; i < n; i++)
        memcpy(buf + i * w, v[i], strlen(v[i]));
    hsize_t dims[1] = {n};
    hid_t t = H5Tcopy(H5T_C_S1);
    hid_t sp = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
    int ok = t >= 0 && sp >= 0 && H5Tset_size(t, w) >= 0 && H5Tset_strpad(t, H5T_STR_NULLPAD) >= 0;
    hid_t a = ok ? H5Acreate2(obj, attr, t, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = a >= 0 && H5Awrite(a, t, buf) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    free(buf);
    return ok ? 0 : -1;
}

static int put_string(hid_t obj, const char *attr, const char *s)
{
    return put_strings(obj, attr, &s, 1, 1);
}

static int put_version(hid_t obj)
{
    return put_string(obj, "keras_version", "2.11.0") || put_string(obj, "backend", "tensorflow");
}

/* One float32 dataset at path (intermediate groups made) under g. */
static int put_tensor(hid_t g, const char *path, const net_param *p, const float *data)
{
    hsize_t dims[4];
    for (int i = 0; i < p->ndim; i++)
        dims[i] = (hsize_t)p->shape[i];
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t sp = H5Screate_simple(p->ndim, dims, NULL);
    int ok = lcpl >= 0 && sp >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0;
    hid_t d = ok ? H5Dcreate2(g, path, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (d >= 0)
        H5Dclose(d);
    if (sp >= 0)
        H5Sclose(sp);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    return ok ? 0 : -1;
}

/* A layer's group: its weight_names and datasets. */
static int put_layer(net *n, const net_layer *l, hid_t mw)
{
    hid_t g = H5Gcreate2(mw, l->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    char names[8][NET_PARAM_NAME_MAX + 4];
    const char *v[8];
    int rc = l->n_params > 8 ? -1 : 0;
    for (int k = 0; !rc && k < l->n_params; k++) {
        const net_param *p = &n->params[l->param0 + k];
        snprintf(names[k], sizeof names[k], "%s:0", p->name); /* "<layer>/kernel:0" */
        v[k] = names[k];
        rc = put_tensor(g, names[k], p, net_param_data(n, p));
    }
    if (!rc)
        rc = put_strings(g, "weight_names", v, (size_t)l->n_params, 0);
    H5Gclose(g);
    return rc;
}

static int put_weights(net *n, hid_t root)
{
    hid_t mw = H5Gcreate2(root, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (mw < 0)
        return -1;
    const char **layers = calloc((size_t)n->n_layers + 1, sizeof *layers);
    size_t k = 0;
    int rc = layers ? 0 : -1;
    for (int i = 0; !rc && i < n->n_layers; i++)
        if (n->layers[i].n_params > 0) {
            layers[k++] = n->layers[i].name;
            rc = put_layer(n, &n->layers[i], mw);
        }
    if (!rc)
        rc = put_strings(mw, "layer_names", layers, k, 0) || put_version(mw);
    free(layers);
    H5Gclose(mw);
    return rc;
}

static char *tlsweep_facts(const model_spec *s)
{
    json_t *names = json_array();
    for (int i = 0; i < s->n_class_names; i++)
        json_array_append_new(names, json_string(s->class_names[i]));
    json_t *o = json_pack("{s:s, s:s, s:i, s:f, s:o, s:s, s:s}", "backbone", s->backbone,
                          "convention", model_convention_name(s->convention), "size", s->height,
                          "alpha", (double)s->alpha, "class_names", names, "preprocessing",
                          model_preproc_name(s->preproc), "loss",
                          s->loss == MODEL_LOSS_SIGMOID ? "sigmoid" : "softmax");
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return txt;
}

static int put_model(const net_export__model *m, hid_t file, const char *config)
{
    char *facts = tlsweep_facts(m->spec);
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    int rc = !facts || root < 0 || put_string(root, "model_config", config) || put_version(root) ||
             put_string(root, "tlsweep", facts) || put_weights(m->net, root);
    if (root >= 0)
        H5Gclose(root);
    free(facts);
    return rc ? -1 : 0;
}

/* The file written by libhdf5 to path. */
static int build_file(const net_export__model *m, const char *config, const char *path)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* 1.8 object headers: a model_config over 64 KiB goes to dense storage */
    int ok = fapl >= 0 && H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) >= 0;
    hid_t f = ok ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : -1;
    ok = f >= 0 && put_model(m, f, config) == 0;
    if (f >= 0 && H5Fclose(f) < 0)
        ok = 0;
    if (fapl >= 0)
        H5Pclose(fapl);
    return ok ? 0 : -1;
}

/* fsync of path, then rename over out (and a best-effort fsync of its folder). */
static int commit(const char *path, const char *out, tl_err *e)
{
    int fd = open(path, O_RDONLY);
    int ok = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(path, out) != 0)
        return tl_errf(e, TL_EIO, "%s: cannot write (%s): %s", out, path, strerror(errno));
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    if ((fd = open(slash ? (dir[0] ? dir : "/") : ".", O_RDONLY)) >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

int net_export__h5(const net_export__model *m, net_export_result *r, tl_err *e)
{
    json_t *topo = NULL;
    int rc = net_export__keras_topology(m, &topo, e);
    if (rc)
        return rc;
    char *config = json_dumps(topo, JSON_COMPACT);
    json_decref(topo);
    char tmp[PATH_MAX];
    int k = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", m->out, (long)getpid());
    /* libhdf5 prints its error stack by default; the error is ours to report */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (!config || k < 0 || k >= (int)sizeof tmp)
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory or path too long", m->out);
    else if (build_file(m, config, tmp))
        rc = tl_errf(e, TL_EIO, "%s: libhdf5 could not write %s", m->out, tmp);
    else
        rc = commit(tmp, m->out, e);
    if (rc && k > 0 && k < (int)sizeof tmp)
        unlink(tmp);
    struct stat st;
    if (!rc && stat(m->out, &st) == 0) {
        r->tensors = m->net->n_params;
        r->out_bytes = (long long)st.st_size;
    }
    free(config);
    return rc;
}
