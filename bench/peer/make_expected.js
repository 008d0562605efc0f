#!/usr/bin/env node
'use strict';
// make_expected.js MODEL_DIR... - writes test_data_set_0/output_N.pb for each benchmark model
// from ONNX Runtime's answer, so `kiln conformance bench/...` checks kiln against ONNX Runtime.
// Reads inputs with ../shared/peer/tensorproto.js (or $KILN_PEER_DIR/tensorproto.js); ONNX
// Runtime comes from this folder's node_modules (npm install --ignore-scripts).
const fs = require('fs');
const path = require('path');
const peerDir = process.env.KILN_PEER_DIR || path.join(__dirname, '..', '..', '..', 'shared', 'peer');
const tp = require(path.join(peerDir, 'tensorproto.js'));
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

const DTYPES = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float64: 11 };

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}

// TensorProto: dims (1), data_type (2), name (8), raw_data (9).
function encodeTensor(name, tensor) {
  const parts = [];
  for (const d of tensor.dims) parts.push(Buffer.from([0x08]), varint(d));
  parts.push(Buffer.from([0x10]), varint(DTYPES[tensor.type]));
  const nameBuf = Buffer.from(name, 'utf8');
  parts.push(Buffer.from([0x42]), varint(nameBuf.length), nameBuf);
  const data = tensor.data;
  const raw = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  parts.push(Buffer.from([0x4a]), varint(raw.length), raw);
  return Buffer.concat(parts);
}

(async () => {
  const dirs = process.argv.slice(2);
  if (!dirs.length) { console.error('usage: node make_expected.js MODEL_DIR...'); process.exit(2); }
  for (const dir of dirs) {
    const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'),
      { graphOptimizationLevel: 'disabled', intraOpNumThreads: 2, executionProviders: ['cpu'] });
    const feeds = tp.loadFeeds(ort, session, dir, 0);
    const results = await session.run(feeds);
    session.outputNames.forEach((name, i) => {
      const file = path.join(dir, 'test_data_set_0', `output_${i}.pb`);
      fs.writeFileSync(file, encodeTensor(name, results[name]));
      console.log(`${file}: ${name} ${results[name].type} [${results[name].dims}]`);
    });
  }
})().catch(e => { console.error(String(e && e.stack || e)); process.exit(1); });
