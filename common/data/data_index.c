/* Indexes image folders the way Keras flow_from_directory does: one
 * sub-folder per class, class names sorted (strcmp) into label ids, images
 * (.jpg/.jpeg/.png, any case) found recursively below each class folder and
 * sorted by relative path, hidden entries ignored, symlinks followed with a
 * visited set of directories so that a loop is entered once. */
#include "common/data/data.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/base/hash.h"
#include "common/base/rng.h"

/* Deeper than any real dataset; a guard against pathological trees that
 * the visited set cannot see (e.g. bind mounts). */
#define MAX_DEPTH 32

typedef struct {
    char **v;
    size_t n, cap;
} strvec;

static int strvec_push(strvec *s, char *str)
{
    if (!str)
        return -1;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(str);
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = str;
    return 0;
}

static void strvec_free(strvec *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return 0;
    return !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png");
}

/* Directories entered while scanning one class: (st_dev, st_ino). */
typedef struct {
    struct {
        dev_t dev;
        ino_t ino;
    } *v;
    size_t n, cap;
} dirset;

/* Returns 1 if newly added, 0 if already there, -1 out of memory. */
static int dirset_add(dirset *s, const struct stat *st)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].dev == st->st_dev && s->v[i].ino == st->st_ino)
            return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        void *v = realloc(s->v, cap * sizeof *s->v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n].dev = st->st_dev;
    s->v[s->n].ino = st->st_ino;
    s->n++;
    return 1;
}

/* Names of the non-hidden entries of dir that are folders (after following
 * symlinks), sorted; *n_files counts the images lying directly in dir. */
static int list_class_dirs(const char *dir, const char *what, strvec *out, size_t *n_files,
                           tl_err *e)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return tl_errf(e, errno == ENOENT ? TL_ENOTFOUND : TL_EIO, "data: %s '%s': %s", what, dir,
                       strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return tl_errf(e, TL_EINVAL, "data: %s '%s' is not a folder", what, dir);
    DIR *d = opendir(dir);
    if (!d)
        return tl_errf(e, TL_EIO, "data: %s '%s': %s", what, dir, strerror(errno));
    struct dirent *de;
    *n_files = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *p = path_join(dir, de->d_name);
        if (!p) {
            closedir(d);
            return tl_errf(e, TL_ENOMEM, "data: out of memory listing '%s'", dir);
        }
        int isdir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
        if (!isdir && is_image_name(de->d_name))
            (*n_files)++;
        free(p);
        if (isdir && strvec_push(out, strdup(de->d_name)) != 0) {
            closedir(d);
            return tl_errf(e, TL_ENOMEM, "data: out of memory listing '%s'", dir);
        }
    }
    closedir(d);
    if (out->n)  /* qsort(NULL, 0) is undefined */
        qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return 0;
}

typedef struct {
    char *path;
    int64_t bytes, mtime_ns;
} found;

typedef struct {
    found *v;
    size_t n, cap;
} foundvec;

static int foundvec_push(foundvec *f, char *path, const struct stat *st)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 64;
        found *v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return -1;
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n].path = path;
    f->v[f->n].bytes = (int64_t)st->st_size;
    f->v[f->n].mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    f->n++;
    return 0;
}

static int cmp_found(const void *a, const void *b)
{
    return strcmp(((const found *)a)->path, ((const found *)b)->path);
}

/* Appends the images below dir (recursively) to out. Entries that vanish or
 * dangle between readdir and stat are skipped. */
static int scan_images(const char *dir, int depth, dirset *seen, foundvec *out, tl_err *e)
{
    DIR *d = opendir(dir);
    if (!d)
        return tl_errf(e, TL_EIO, "data: folder '%s': %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *p = path_join(dir, de->d_name);
        struct stat st;
        if (!p) {
            rc = tl_errf(e, TL_ENOMEM, "data: out of memory scanning '%s'", dir);
        } else if (stat(p, &st) != 0) {
            free(p);
        } else if (S_ISDIR(st.st_mode)) {
            int added = depth < MAX_DEPTH ? dirset_add(seen, &st) : 0;
            if (added < 0)
                rc = tl_errf(e, TL_ENOMEM, "data: out of memory scanning '%s'", dir);
            else if (added)
                rc = scan_images(p, depth + 1, seen, out, e);
            free(p);
        } else if (S_ISREG(st.st_mode) && is_image_name(de->d_name)) {
            if (foundvec_push(out, p, &st) != 0) {
                free(p);
                rc = tl_errf(e, TL_ENOMEM, "data: out of memory scanning '%s'", dir);
            }
        } else {
            free(p);
        }
    }
    closedir(d);
    return rc;
}

static int grow_items(data_index *ix, size_t extra)
{
    size_t n = ix->n_items + extra;
    data_item *it = realloc(ix->items, (n ? n : 1) * sizeof *it);
    if (!it)
        return -1;
    ix->items = it;
    uint8_t *sp = realloc(ix->split, n ? n : 1);
    if (!sp)
        return -1;
    ix->split = sp;
    return 0;
}

/* Indexes one folder as split s. For the train folder (classes == NULL on
 * entry) it sets ix->classes; for val/test it checks the class folders
 * against train's, naming the first extra or missing one. */
static int index_dir(data_index *ix, const char *dir, const char *what, data_split s,
                     const char *train_dir, tl_err *e)
{
    strvec cls = {0};
    size_t loose = 0;
    int rc = list_class_dirs(dir, what, &cls, &loose, e);
    if (rc)
        goto done;
    if (cls.n == 0) {
        if (loose)
            rc = tl_errf(e, TL_EINVAL,
                         "data: %s '%s' has no class folders (%zu images lie directly in it; "
                         "expected one sub-folder per class)", what, dir, loose);
        else
            rc = tl_errf(e, TL_EINVAL,
                         "data: %s '%s' has no class folders (expected one sub-folder per class)",
                         what, dir);
        goto done;
    }
    if (ix->classes) {
        size_t i = 0, j = 0;
        while (i < cls.n || j < (size_t)ix->n_classes) {
            int c = i == cls.n ? 1 : j == (size_t)ix->n_classes ? -1
                  : strcmp(cls.v[i], ix->classes[j]);
            if (c < 0) {
                rc = tl_errf(e, TL_EINVAL, "data: %s '%s' has class folder '%s' that train_dir '%s' lacks",
                             what, dir, cls.v[i], train_dir);
                goto done;
            }
            if (c > 0) {
                rc = tl_errf(e, TL_EINVAL, "data: %s '%s' lacks class folder '%s' of train_dir '%s'",
                             what, dir, ix->classes[j], train_dir);
                goto done;
            }
            i++, j++;
        }
    }

    size_t first = ix->n_items, empty = cls.n;
    for (size_t c = 0; c < cls.n; c++) {
        char *cdir = path_join(dir, cls.v[c]);
        dirset seen = {0};
        foundvec f = {0};
        struct stat st;
        /* the folder being indexed counts as seen: a link back up to it
         * would pull every other class into this one */
        if (stat(dir, &st) != 0 || dirset_add(&seen, &st) < 0 ||
            !cdir || stat(cdir, &st) != 0 || dirset_add(&seen, &st) < 0)
            rc = tl_errf(e, cdir ? TL_EIO : TL_ENOMEM, "data: class folder '%s/%s': %s", dir,
                         cls.v[c], cdir ? strerror(errno) : "out of memory");
        else
            rc = scan_images(cdir, 1, &seen, &f, e);
        free(cdir);
        free(seen.v);
        if (rc == 0) {
            if (f.n)
                qsort(f.v, f.n, sizeof *f.v, cmp_found);
            if (grow_items(ix, f.n) != 0)
                rc = tl_errf(e, TL_ENOMEM, "data: out of memory indexing '%s'", dir);
        }
        if (rc) {
            for (size_t k = 0; k < f.n; k++)
                free(f.v[k].path);
            free(f.v);
            goto done;
        }
        for (size_t k = 0; k < f.n; k++) {
            data_item *it = &ix->items[ix->n_items];
            it->path = f.v[k].path;
            it->label = (int)c;
            it->bytes = f.v[k].bytes;
            it->mtime_ns = f.v[k].mtime_ns;
            ix->split[ix->n_items] = (uint8_t)s;
            ix->n_items++;
        }
        if (f.n == 0 && empty == cls.n)
            empty = c;
        free(f.v);
    }
    if (ix->n_items == first) {
        rc = tl_errf(e, TL_EINVAL, "data: no .jpg/.jpeg/.png image in %s '%s'", what, dir);
        goto done;
    }
    if (cls.n < 2) {
        rc = tl_errf(e, TL_EINVAL, "data: %s '%s' has only one class folder ('%s'); need at least 2",
                     what, dir, cls.v[0]);
        goto done;
    }
    if (empty < cls.n) {
        rc = tl_errf(e, TL_EINVAL, "data: class '%s' in %s '%s' has no .jpg/.jpeg/.png image",
                     cls.v[empty], what, dir);
        goto done;
    }
    if (!ix->classes) {
        ix->classes = cls.v;
        ix->n_classes = (int)cls.n;
        cls.v = NULL;
        cls.n = 0;
    }
done:
    strvec_free(&cls);
    return rc;
}

/* Moves round(n * frac) items of each class from train to validation:
 * the first ones of a Fisher-Yates shuffle seeded by (seed, label). */
static int split_stratified(data_index *ix, double frac, uint64_t seed, tl_err *e)
{
    size_t *idx = malloc((ix->n_items ? ix->n_items : 1) * sizeof *idx);
    if (!idx)
        return tl_errf(e, TL_ENOMEM, "data: out of memory splitting");
    for (int c = 0; c < ix->n_classes; c++) {
        size_t n = 0;
        for (size_t i = 0; i < ix->n_items; i++)
            if (ix->items[i].label == c && ix->split[i] == DATA_TRAIN)
                idx[n++] = i;
        rng_state r;
        rng_init(&r, rng_mix(seed, (uint64_t)c));
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)(rng_next(&r) % i);
            size_t t = idx[i - 1];
            idx[i - 1] = idx[j];
            idx[j] = t;
        }
        size_t nval = (size_t)floor((double)n * frac + 0.5);
        if (n >= 2 && nval >= n)
            nval = n - 1;
        for (size_t i = 0; i < nval; i++)
            ix->split[idx[i]] = DATA_VAL;
    }
    free(idx);
    return 0;
}

static char *trim_slashes(const char *dir)
{
    char *d = strdup(dir);
    if (!d)
        return NULL;
    size_t n = strlen(d);
    while (n > 1 && d[n - 1] == '/')
        d[--n] = '\0';
    return d;
}

int data_index_build(data_index *ix, const data_index_cfg *cfg, tl_err *e)
{
    memset(ix, 0, sizeof *ix);
    if (!cfg->train_dir || !cfg->train_dir[0])
        return tl_errf(e, TL_EINVAL, "data: train_dir is required");
    double vs = cfg->validation_split;
    if (!cfg->val_dir && !(vs >= 0.0 && vs < 1.0))
        return tl_errf(e, TL_EINVAL, "data: validation_split %g for train_dir '%s' is outside [0, 1)",
                       vs, cfg->train_dir);

    const char *dirs[3] = {cfg->train_dir, cfg->val_dir, cfg->test_dir};
    static const char *const what[3] = {"train_dir", "val_dir", "test_dir"};
    char *train = NULL;
    int rc = 0;
    for (int s = 0; s < 3 && rc == 0; s++) {
        if (!dirs[s])
            continue;
        char *d = trim_slashes(dirs[s]);
        if (!d) {
            rc = tl_errf(e, TL_ENOMEM, "data: out of memory");
            break;
        }
        rc = index_dir(ix, d, what[s], (data_split)s, train, e);
        if (s == 0)
            train = d;
        else
            free(d);
    }
    if (rc == 0 && !cfg->val_dir && vs > 0.0)
        rc = split_stratified(ix, vs, cfg->seed, e);
    free(train);
    if (rc)
        data_index_free(ix);
    return rc;
}

void data_index_free(data_index *ix)
{
    for (int c = 0; c < ix->n_classes; c++)
        free(ix->classes[c]);
    free(ix->classes);
    for (size_t i = 0; i < ix->n_items; i++)
        free(ix->items[i].path);
    free(ix->items);
    free(ix->split);
    memset(ix, 0, sizeof *ix);
}

size_t data_index_count(const data_index *ix, data_split s)
{
    size_t n = 0;
    for (size_t i = 0; i < ix->n_items; i++)
        n += ix->split[i] == (uint8_t)s;
    return n;
}

size_t data_index_count_empty(const data_index *ix, data_split s)
{
    size_t n = 0;
    for (size_t i = 0; i < ix->n_items; i++)
        n += ix->split[i] == (uint8_t)s && ix->items[i].bytes == 0;
    return n;
}

uint64_t data_index_fingerprint(const data_index *ix)
{
    uint64_t h = TL_FNV1A_OFFSET;
    for (int c = 0; c < ix->n_classes; c++)
        h = tl_fnv1a_bytes(h, ix->classes[c], strlen(ix->classes[c]) + 1);
    for (size_t i = 0; i < ix->n_items; i++) {
        const data_item *it = &ix->items[i];
        h = tl_fnv1a_bytes(h, it->path, strlen(it->path) + 1);
        h = tl_fnv1a_bytes(h, &it->label, sizeof it->label);
        h = tl_fnv1a_bytes(h, &it->bytes, sizeof it->bytes);
        h = tl_fnv1a_bytes(h, &it->mtime_ns, sizeof it->mtime_ns);
        h = tl_fnv1a_bytes(h, &ix->split[i], 1);
    }
    return h;
}
