#include "common/data/data_augment.h"

#include <math.h>
#include <string.h>

#include "common/base/rng.h"

/* Counters of the per-image stream, one per decision. */
enum { C_FLIP = 0, C_THETA, C_TX, C_TY, C_ZX, C_ZY, C_BRIGHT, C_CONTRAST, C_CROP = 16 };

void data_augment_cfg_default(data_augment_cfg *a)
{
    memset(a, 0, sizeof *a);
    a->crop_scale[0] = 0.08f;
    a->crop_scale[1] = 1.0f;
    a->crop_ratio[0] = 3.0f / 4.0f;
    a->crop_ratio[1] = 4.0f / 3.0f;
}

static int zoom_on(const data_augment_cfg *a)
{
    return !(a->zoom_range[0] == 0 && a->zoom_range[1] == 0) &&
           !(a->zoom_range[0] == 1 && a->zoom_range[1] == 1);
}

static int brightness_on(const data_augment_cfg *a)
{
    return a->brightness_range[0] != 0 || a->brightness_range[1] != 0;
}

int data_augment_active(const data_augment_cfg *a)
{
    return a && (a->horizontal_flip || a->rotation_range != 0 || a->width_shift_range != 0 ||
                 a->height_shift_range != 0 || zoom_on(a) || brightness_on(a) || a->contrast != 0 ||
                 a->random_resized_crop);
}

uint64_t data_augment_seed(uint64_t seed, uint64_t trial, uint64_t epoch, uint64_t image_id)
{
    return rng_mix(rng_mix(rng_mix(seed, trial), epoch), image_id);
}

static float uni(uint64_t s, uint64_t k, float lo, float hi)
{
    return lo + (hi - lo) * rng_uniform_at(s, k);
}

/* torchvision RandomResizedCrop.get_params: ten tries at a random area and
 * log-uniform aspect ratio, then a centre crop clamped to the ratio range. */
static data_box random_crop(const data_augment_cfg *a, uint64_t s, int W, int H)
{
    double area = (double)W * H;
    double lr0 = log(a->crop_ratio[0]), lr1 = log(a->crop_ratio[1]);
    for (int t = 0; t < 10; t++) {
        uint64_t k = C_CROP + 4 * (uint64_t)t;
        double target = area * uni(s, k, a->crop_scale[0], a->crop_scale[1]);
        double ar = exp(uni(s, k + 1, (float)lr0, (float)lr1));
        int w = (int)lround(sqrt(target * ar)), h = (int)lround(sqrt(target / ar));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            int y0 = (int)(rng_uniform_at(s, k + 2) * (H - h + 1));
            int x0 = (int)(rng_uniform_at(s, k + 3) * (W - w + 1));
            return (data_box){x0, y0, x0 + w, y0 + h};
        }
    }
    double in_ratio = (double)W / H;
    int w = W, h = H;
    if (in_ratio < a->crop_ratio[0])
        h = (int)lround(w / a->crop_ratio[0]);
    else if (in_ratio > a->crop_ratio[1])
        w = (int)lround(h * a->crop_ratio[1]);
    if (h < 1) h = 1;
    if (w < 1) w = 1;
    int y0 = (H - h) / 2, x0 = (W - w) / 2;
    return (data_box){x0, y0, x0 + w, y0 + h};
}

void data_augment_draw(const data_augment_cfg *a, uint64_t s, int w, int h, data_augment_params *p)
{
    p->crop = (data_box){0, 0, w, h};
    p->flip = 0;
    p->theta = 0;
    p->tx = p->ty = 0;
    p->zx = p->zy = 1;
    p->brightness = p->contrast = 1;
    if (!a)
        return;
    if (a->random_resized_crop)
        p->crop = random_crop(a, s, w, h);
    if (a->horizontal_flip)
        p->flip = rng_uniform_at(s, C_FLIP) < 0.5f;
    if (a->rotation_range != 0)
        p->theta = uni(s, C_THETA, -a->rotation_range, a->rotation_range) * (float)(M_PI / 180.0);
    /* Shifts are fractions here; data_augment_apply scales them by the
     * output size it is given. */
    if (a->width_shift_range != 0)
        p->tx = uni(s, C_TX, -a->width_shift_range, a->width_shift_range);
    if (a->height_shift_range != 0)
        p->ty = uni(s, C_TY, -a->height_shift_range, a->height_shift_range);
    if (zoom_on(a)) {
        p->zx = uni(s, C_ZX, a->zoom_range[0], a->zoom_range[1]);
        p->zy = uni(s, C_ZY, a->zoom_range[0], a->zoom_range[1]);
    }
    if (brightness_on(a))
        p->brightness = uni(s, C_BRIGHT, a->brightness_range[0], a->brightness_range[1]);
    if (a->contrast != 0)
        p->contrast = uni(s, C_CONTRAST, 1.0f - a->contrast, 1.0f + a->contrast);
}

/* out(p) = in(c + R(theta) (Z (p - c) + t)), bilinear, edges clamped
 * (Keras fill_mode='nearest'). img and tmp are (h, w, 3). */
static void affine(const data_augment_params *p, const float *in, float *out, int w, int h)
{
    float cx = 0.5f * (w - 1), cy = 0.5f * (h - 1);
    float cs = cosf(p->theta), sn = sinf(p->theta);
    float tx = p->tx * w, ty = p->ty * h;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            float qx = p->zx * (x - cx) + tx, qy = p->zy * (y - cy) + ty;
            float sx = cx + cs * qx - sn * qy, sy = cy + sn * qx + cs * qy;
            sx = sx < 0 ? 0 : sx > w - 1 ? (float)(w - 1) : sx;
            sy = sy < 0 ? 0 : sy > h - 1 ? (float)(h - 1) : sy;
            int x0 = (int)sx, y0 = (int)sy;
            int x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
            float fx = sx - x0, fy = sy - y0;
            const float *a = in + ((size_t)y0 * w + x0) * 3, *b = in + ((size_t)y0 * w + x1) * 3;
            const float *c = in + ((size_t)y1 * w + x0) * 3, *d = in + ((size_t)y1 * w + x1) * 3;
            float *o = out + ((size_t)y * w + x) * 3;
            for (int ch = 0; ch < 3; ch++) {
                float top = a[ch] + fx * (b[ch] - a[ch]), bot = c[ch] + fx * (d[ch] - c[ch]);
                o[ch] = top + fy * (bot - top);
            }
        }
    }
}

void data_augment_apply(const data_augment_params *p, float *img, int w, int h, float *scratch)
{
    size_t n = (size_t)w * h;
    if (p->theta != 0 || p->tx != 0 || p->ty != 0 || p->zx != 1 || p->zy != 1) {
        affine(p, img, scratch, w, h);
        memcpy(img, scratch, n * 3 * sizeof *img);
    }
    if (p->flip) {
        for (int y = 0; y < h; y++) {
            float *r = img + (size_t)y * w * 3;
            for (int x = 0; x < w / 2; x++) {
                float *l = r + 3 * x, *q = r + 3 * (w - 1 - x);
                for (int ch = 0; ch < 3; ch++) {
                    float t = l[ch];
                    l[ch] = q[ch];
                    q[ch] = t;
                }
            }
        }
    }
    if (p->brightness != 1) {
        for (size_t i = 0; i < 3 * n; i++)
            img[i] *= p->brightness;
    }
    if (p->contrast != 1) {
        double mean[3] = {0, 0, 0};
        for (size_t i = 0; i < n; i++)
            for (int ch = 0; ch < 3; ch++)
                mean[ch] += img[3 * i + ch];
        for (int ch = 0; ch < 3; ch++)
            mean[ch] /= (double)n;
        for (size_t i = 0; i < n; i++)
            for (int ch = 0; ch < 3; ch++)
                img[3 * i + ch] = (float)((img[3 * i + ch] - mean[ch]) * p->contrast + mean[ch]);
    }
    if (p->brightness != 1 || p->contrast != 1)
        for (size_t i = 0; i < 3 * n; i++)
            img[i] = img[i] < 0 ? 0 : img[i] > 255 ? 255 : img[i];
}

int data_augment_load(data_image_ctx *c, const char *path, const data_image_cfg *cfg,
                      const data_augment_cfg *a, uint64_t stream, float *out, float *scratch,
                      tl_err *e)
{
    if (!data_augment_active(a))
        return data_image_load(c, path, cfg, out, e);
    int W, H;
    int rc = data_image_open(c, path, cfg->max_pixels, &W, &H, e);
    if (rc != 0)
        return rc;
    data_augment_params p;
    data_augment_draw(a, stream, W, H, &p);
    data_box box = p.crop;
    if (!a->random_resized_crop && cfg->crop_to_aspect_ratio)
        box = data_image_aspect_box(W, H, cfg->width, cfg->height);
    rc = data_image_decode_box(c, path, W, H, &box, cfg, out, e);
    if (rc != 0)
        return rc;
    data_augment_apply(&p, out, cfg->width, cfg->height, scratch);
    data_image_preprocess(out, (size_t)cfg->width * cfg->height, cfg->preprocess);
    return 0;
}
