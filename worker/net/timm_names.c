#include "worker/net/timm_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Blocks per stage in MobileNetV2 (Table 2 of the paper); torchvision
 * numbers blocks across stages from features.1. */
static const int stage_blocks[7] = {1, 2, 3, 4, 3, 3, 1};

/* "<prefix>.<rest>": copies rest (the attribute, e.g. "weight",
 * "running_mean") when name starts with prefix followed by a dot. */
static const char *after(const char *name, const char *prefix)
{
    size_t k = strlen(prefix);
    return strncmp(name, prefix, k) == 0 && name[k] == '.' ? name + k + 1 : NULL;
}

static int emit(char *out, size_t n, const char *module, const char *attr)
{
    int w = snprintf(out, n, "%s.%s", module, attr);
    return w > 0 && (size_t)w < n;
}

int timm_mobilenet_v2_name(const char *name, char *out, size_t n)
{
    const char *a;
    if ((a = after(name, "conv_stem")))
        return emit(out, n, "features.0.0", a);
    if ((a = after(name, "bn1")))
        return emit(out, n, "features.0.1", a);
    if ((a = after(name, "conv_head")))
        return emit(out, n, "features.18.0", a);
    if ((a = after(name, "bn2")))
        return emit(out, n, "features.18.1", a);
    int stage, block, used = 0;
    if (sscanf(name, "blocks.%d.%d.%n", &stage, &block, &used) != 2 || used == 0 || stage < 0 ||
        stage > 6 || block < 0 || block >= stage_blocks[stage])
        return 0;
    int idx = 1 + block;
    for (int s = 0; s < stage; s++)
        idx += stage_blocks[s];
    const char *rest = name + used;
    /* timm's layer -> torchvision's position inside the block */
    static const struct {
        const char *timm, *first, *expanded;
    } parts[] = {
        /* stage 0 is DepthwiseSeparable: dw, bn1, pw, bn2 */
        {"conv_dw", "conv.0.0", "conv.1.0"},
        {"conv_pw", "conv.1", "conv.0.0"},
        {"conv_pwl", NULL, "conv.2"},
        {"bn1", "conv.0.1", "conv.0.1"},
        {"bn2", "conv.2", "conv.1.1"},
        {"bn3", NULL, "conv.3"},
    };
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        const char *attr = after(rest, parts[i].timm);
        if (!attr)
            continue;
        const char *pos = stage == 0 ? parts[i].first : parts[i].expanded;
        if (!pos)
            return 0;
        char module[48];
        snprintf(module, sizeof module, "features.%d.%s", idx, pos);
        return emit(out, n, module, attr);
    }
    return 0;
}
