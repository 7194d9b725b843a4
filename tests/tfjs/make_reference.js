// TensorFlow.js reference for tfjs_check: runs one of nsfwjs's models with
// tfjs's pure-JS CPU backend on real photographs and writes what our engine
// must reproduce.
//
//   node make_reference.js --model mobilenet_v2|inception_v3 --out DIR img.jpg...
//
// Preprocessing is nsfwjs's own (dist/cjs/core.js, NSFWJS.infer): RGB pixels
// as float, divided by 255 (no mean, no /127.5 - 1), resized with
// tf.image.resizeBilinear(..., alignCorners = true) to the model's size
// (224 MobileNetV2, 299 InceptionV3). We check that our batch through the
// model gives the same probabilities as nsfwjs's infer() on the decoded
// pixels, so the recorded preprocessing is the package's, not our guess.
//
// DIR receives (float32 little-endian, row-major):
//   input.f32     (N, S, S, 3)  the preprocessed batch
//   probs.f32     (N, classes)  the model's output (softmax probabilities)
//   features.f32  (N, C)        the pooled backbone features: the output of
//                               the Flatten after the backbone's pooling
//   meta.json     sizes, layer names, images, versions
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const jpeg = require('jpeg-js');
const nsfwjs = require('nsfwjs');

const MODELS = {
  mobilenet_v2: { name: 'MobileNetV2', size: 224 },
  inception_v3: { name: 'InceptionV3', size: 299 },
};

function parseArgs(argv) {
  const a = { images: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--model') a.model = argv[++i];
    else if (argv[i] === '--out') a.out = argv[++i];
    else a.images.push(argv[i]);
  }
  if (!MODELS[a.model] || !a.out || !a.images.length) {
    console.error('usage: make_reference.js --model mobilenet_v2|inception_v3 --out DIR img.jpg...');
    process.exit(2);
  }
  return a;
}

function decodeRGB(file) {
  const img = jpeg.decode(fs.readFileSync(file), { useTArray: true, formatAsRGBA: false });
  return tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
}

function writeF32(file, t) {
  const v = t.dataSync();
  const f = v instanceof Float32Array ? v : Float32Array.from(v);
  fs.writeFileSync(file, Buffer.from(f.buffer, f.byteOffset, f.byteLength));
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  await tf.setBackend('cpu');
  const spec = MODELS[a.model];
  const S = spec.size;
  const net = await nsfwjs.load(spec.name, { size: S });
  const model = net.model;

  // the pooled features: the Flatten that follows the backbone's pooling
  const flat = model.layers.find((l) => l.getClassName() === 'Flatten' ||
                                        l.getClassName() === 'GlobalAveragePooling2D');
  if (!flat) throw new Error('no Flatten/GlobalAveragePooling2D layer in the model');
  const both = tf.model({ inputs: model.inputs, outputs: [flat.output, model.outputs[0]] });

  const pixels = a.images.map(decodeRGB);
  // nsfwjs's preprocessing, step by step as in NSFWJS.infer
  const x = tf.tidy(() => tf.stack(pixels.map((p) => {
    const normalized = p.toFloat().div(tf.scalar(255));
    return tf.image.resizeBilinear(normalized, [S, S], true);
  })));
  const [feat, probs] = both.predict(x);

  // the package's own path must agree with ours (first image: the pure-JS
  // backend takes seconds per InceptionV3 pass)
  const own = net.infer(pixels[0]);
  const worst = tf.max(tf.abs(tf.sub(own, probs.slice([0, 0], [1, -1])))).dataSync()[0];
  own.dispose();
  if (worst > 1e-6) throw new Error(`nsfwjs infer() differs from the recorded batch by ${worst}`);

  fs.mkdirSync(a.out, { recursive: true });
  writeF32(path.join(a.out, 'input.f32'), x);
  writeF32(path.join(a.out, 'probs.f32'), probs);
  writeF32(path.join(a.out, 'features.f32'), feat);
  const meta = {
    model: a.model, size: S, batch: pixels.length, classes: probs.shape[1],
    features: feat.shape[1], features_layer: flat.name,
    preprocessing: 'x/255, resizeBilinear alignCorners=true',
    images: a.images.map((f) => path.basename(f)),
    tfjs: tf.version.tfjs, backend: tf.getBackend(), nsfwjs_infer_max_diff: worst,
  };
  fs.writeFileSync(path.join(a.out, 'meta.json'), JSON.stringify(meta, null, 1) + '\n');
  const p = probs.arraySync();
  for (let i = 0; i < p.length; i++)
    console.log(`${meta.images[i]}: ${p[i].map((v) => v.toFixed(4)).join(' ')}`);
}

main().catch((err) => { console.error(err.stack || String(err)); process.exit(1); });
