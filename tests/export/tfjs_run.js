// Loads an exported TensorFlow.js layers model (a folder holding model.json
// and its shards) with npm @tensorflow/tfjs (pure JS CPU backend) and prints
// its output rows for float32 NHWC inputs as JSON: {"rows": [[...], ...]}.
//   node tfjs_run.js DIR INPUTS.f32 BATCH
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

async function main() {
  const [dir, inputs, batchArg] = process.argv.slice(2);
  const batch = parseInt(batchArg, 10);
  await tf.setBackend('cpu');
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const specs = [];
  const parts = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) parts.push(fs.readFileSync(path.join(dir, p)));
  }
  const all = Buffer.concat(parts);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const model = await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, weightSpecs: specs, weightData,
  }));
  const [h, w, c] = model.inputs[0].shape.slice(1);
  const buf = fs.readFileSync(inputs);
  const x = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const per = h * w * c;
  const rows = [];
  for (let i = 0; i < x.length / per; i += batch) {
    const n = Math.min(batch, x.length / per - i);
    const t = tf.tensor4d(x.slice(i * per, (i + n) * per), [n, h, w, c]);
    const y = model.predict(t);
    const data = await y.data();
    const width = data.length / n;
    for (let k = 0; k < n; k++) rows.push(Array.from(data.slice(k * width, (k + 1) * width)));
    t.dispose();
    y.dispose();
  }
  process.stdout.write(JSON.stringify({ rows }) + '\n');
}

main().catch((err) => { console.error(`tfjs_run: ${err.message}`); process.exit(1); });
