/* Dataset images (common/data/data_image.h): JPEG (with its EXIF
 * orientation) and PNG bytes, opened from memory, decoded at full size and
 * DCT-scaled, and resampled as the loader does. One decoder context for
 * the whole run, as a loader thread keeps one image after image. */
#include "common/data/data_image.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* small enough that a run decodes thousands of images a second */
#define FUZZ_MAX_PIXELS (1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static data_image_ctx *c;
    if (!c && !(c = data_image_ctx_new()))
        abort();
    tl_err e;
    int W, H, w, h;
    const uint8_t *rgb;
    if (data_image_open_mem(c, data, size, "fuzz.img", FUZZ_MAX_PIXELS, &W, &H, &e) != 0)
        return 0;
    if (W <= 0 || H <= 0 || (int64_t)W * H > FUZZ_MAX_PIXELS) {
        fprintf(stderr, "fuzz_image: data_image_open_mem accepted a %dx%d image (limit %d pixels)\n",
                W, H, FUZZ_MAX_PIXELS);
        abort();
    }
    if (data_image_decode(c, 8, 8, &rgb, &w, &h, &e) != 0)
        return 0;
    /* the box the loader would crop for a square input */
    float out[16 * 16 * 3];
    data_box box = data_image_aspect_box(w, h, 16, 16);
    data_image_resize(c, rgb, w, h, &box, out, 16, 16);
    if (data_image_decode(c, 0, 0, &rgb, &w, &h, &e) == 0 && (w != W || h != H))
        abort();
    return 0;
}
