// Runs an exported ONNX model in ONNX Runtime (npm onnxruntime-node, CPU)
// over float32 NHWC inputs in batches, and prints every row of its output
// as JSON: {"output": name, "rows": [[...], ...]}.
//   node ort_run.js MODEL.onnx INPUTS.f32 BATCH [unoptimized]
// unoptimized: ONNX Runtime's graph optimisations off, which tells how far
// ONNX Runtime disagrees with itself on a model (its float noise floor).
// The side H = W and the channels come from the model's input shape.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, inputs, batchArg, mode] = process.argv.slice(2);
  const batch = parseInt(batchArg, 10);
  // default graph optimisations (Conv+BN fusion and so on): what users run
  const options = { intraOpNumThreads: 2 };
  if (mode === 'unoptimized') options.graphOptimizationLevel = 'disabled';
  const session = await ort.InferenceSession.create(model, options);
  const shape = session.inputMetadata[0].shape;
  const buf = fs.readFileSync(inputs);
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const [h, w, c] = shape.slice(1);
  const per = h * w * c;
  const images = all.length / per;
  if (!Number.isInteger(images)) throw new Error(`${inputs}: not a whole number of ${h}x${w}x${c} images`);
  const rows = [];
  for (let i = 0; i < images; i += batch) {
    const n = Math.min(batch, images - i);
    const x = new ort.Tensor('float32', all.slice(i * per, (i + n) * per), [n, h, w, c]);
    const out = await session.run({ [session.inputNames[0]]: x });
    const y = out[session.outputNames[0]];
    const width = y.data.length / n;
    for (let k = 0; k < n; k++) rows.push(Array.from(y.data.slice(k * width, (k + 1) * width)));
  }
  process.stdout.write(JSON.stringify({ output: session.outputNames[0], rows }) + '\n');
}

main().catch((err) => { console.error(`ort_run: ${err.message}`); process.exit(1); });
