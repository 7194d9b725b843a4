/* timm's parameter names, translated to torchvision's so that the
 * torchvision-convention builders load timm safetensors files too.
 * timm's resnet50, vgg16 and inception_v3 already use torchvision's module
 * paths; its mobilenetv2_* models (EfficientNet-style blocks) do not. */
#ifndef TLSWEEP_TIMM_NAMES_H
#define TLSWEEP_TIMM_NAMES_H

#include <stddef.h>

/* Writes the torchvision name of a timm MobileNetV2 tensor into out and
 * returns 1, or returns 0 when name is not one (out untouched):
 *   conv_stem.weight          -> features.0.0.weight
 *   blocks.1.0.conv_pwl.weight -> features.2.conv.2.weight */
int timm_mobilenet_v2_name(const char *name, char *out, size_t n);

#endif
