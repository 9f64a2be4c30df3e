// The WebAssembly LZ4 block decoder (src/boot/decompress/lz4-wasm.ts) against the JavaScript one
// (decodeLz4Block): the same output for valid blocks of every sequence shape, and for damaged
// blocks the same verdict (the wasm decoder's -1 exactly where decodeLz4Block throws).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BootError } from '../../src/boot/boot-plan.js';
import { decodeLz4Block, decompressLz4Legacy, LZ4_LEGACY_MAGIC } from '../../src/boot/decompress/lz4-legacy.js';
import { lz4WasmDecoder } from '../../src/boot/decompress/lz4-wasm.js';
import { sampleData } from './fixtures.js';

/**
 * A plain greedy LZ4 block compressor (doc/lz4_Block_format.md): 4-byte hash matches, any
 * offset up to 65535, overlapping matches included; the block ends with a literals-only sequence.
 */
function lz4Block(data: Uint8Array, maxOffset = 65535): Uint8Array {
  const out: number[] = [];
  const length = (n: number) => { for (; n >= 255; n -= 255) out.push(255); out.push(n); };
  const sequence = (from: number, to: number, offset: number, len: number) => {
    const lit = to - from;
    out.push((Math.min(lit, 15) << 4) | (len ? Math.min(len - 4, 15) : 0));
    if (lit >= 15) length(lit - 15);
    for (let k = from; k < to; k++) out.push(data[k]!);
    if (!len) return;
    out.push(offset & 0xff, offset >> 8);
    if (len - 4 >= 15) length(len - 4 - 15);
  };
  const seen = new Map<number, number>();
  let anchor = 0;
  let i = 0;
  while (i + 4 <= data.length) {
    const key = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    const cand = seen.get(key);
    seen.set(key, i);
    if (cand !== undefined && i - cand <= maxOffset) {
      let len = 4;
      while (i + len < data.length && data[cand + len] === data[i + len]) len++;
      sequence(anchor, i, i - cand, len);
      i += len;
      anchor = i;
    } else {
      i++;
    }
  }
  sequence(anchor, data.length, 0, 0);
  return Uint8Array.from(out);
}

/** Inputs with every kind of sequence: runs (offset 1), short periods (2..7), text, noise, long stretches. */
function inputs(): Uint8Array[] {
  const list = [sampleData(50000, 1), sampleData(4096, 9), new Uint8Array(70000).fill(0x41)];
  for (let period = 2; period <= 9; period++) {
    const a = new Uint8Array(3000 + period);
    for (let k = 0; k < a.length; k++) a[k] = k % period === 0 ? 0x20 + period : k % period;
    list.push(a);
  }
  let x = 12345;
  const noise = new Uint8Array(40000).map(() => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24));
  list.push(noise);
  const mixed = new Uint8Array(60000);
  for (let k = 0; k < mixed.length; k += 1000) mixed.set((k / 1000) % 3 === 0 ? noise.subarray(k % 30000, k % 30000 + 1000) : sampleData(1000, k), k);
  list.push(mixed, new Uint8Array([1, 2, 3]), new Uint8Array(0));
  return list;
}

/** Decode `block` with the wasm decoder into an output of `room` bytes: the end (bytes) or -1. */
function wasmDecode(block: Uint8Array, room: number): { end: number; out: Uint8Array } {
  const dst = Math.ceil(block.length / 8) * 8 + 16;
  const w = lz4WasmDecoder(dst + room + 16);
  assert.ok(w, 'WebAssembly decoder available');
  new Uint8Array(w.memory).set(block);
  const end = w.decode(0, block.length, dst, dst + room, dst);
  return { end: end < 0 ? -1 : end - dst, out: new Uint8Array(w.memory, dst, room) };
}

/** The JavaScript decoder's end, or -1 when it throws (only BootErrors are expected). */
function jsDecode(block: Uint8Array, room: number): { end: number; out: Uint8Array } {
  const out = new Uint8Array(room);
  try {
    return { end: decodeLz4Block(block, 0, block.length, out, 0, room), out };
  } catch (e) {
    assert.ok(e instanceof BootError, String(e));
    return { end: -1, out };
  }
}

test('wasm LZ4: valid blocks of every sequence shape decode as the JavaScript decoder does', () => {
  for (const data of inputs()) {
    for (const maxOffset of [65535, 7, 1]) {
      const block = lz4Block(data, maxOffset);
      const w = wasmDecode(block, data.length);
      assert.equal(w.end, data.length, `${data.length} bytes, offsets up to ${maxOffset}`);
      assert.ok(Buffer.from(w.out).equals(Buffer.from(data)));
      assert.equal(jsDecode(block, data.length).end, data.length);
    }
  }
});

test('wasm LZ4: damaged blocks get the same verdict and the same output as from decodeLz4Block', () => {
  let x = 7;
  const next = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
  let rejected = 0;
  for (const data of inputs().slice(0, 8)) {
    const block = lz4Block(data);
    for (let trial = 0; trial < 150; trial++) {
      const bad = Uint8Array.from(block.subarray(0, trial % 5 === 0 ? next() % (block.length + 1) : block.length));
      for (let k = next() % 4; k >= 0 && bad.length > 0; k--) bad[next() % bad.length] = next() & 0xff;
      const room = trial % 3 === 0 ? data.length : data.length + (next() % 64);
      const w = wasmDecode(bad, room);
      const j = jsDecode(bad, room);
      assert.equal(w.end, j.end, `trial ${trial}: wasm ${w.end}, JavaScript ${j.end}`);
      if (j.end < 0) rejected++;
      else assert.ok(Buffer.from(w.out.subarray(0, j.end)).equals(Buffer.from(j.out.subarray(0, j.end))), `trial ${trial}: output`);
    }
  }
  assert.ok(rejected > 100, `damaged blocks were rejected (${rejected})`);
});

test('wasm LZ4: a kernel-style frame with its size decodes through wasm; a damaged one still names the problem', () => {
  const data = sampleData(200000, 4);
  const block = lz4Block(data);
  const n = block.length;
  const frame = Uint8Array.from([...[0, 8, 16, 24].map((s) => (LZ4_LEGACY_MAGIC >>> s) & 0xff),
    n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24, ...block]);
  const out = decompressLz4Legacy(frame, { expectedSize: data.length });
  assert.ok(Buffer.from(out).equals(Buffer.from(data)));
  assert.equal(out.buffer.byteLength > data.length, true, 'the output is a view of the decoder\'s memory');
  const bad = Uint8Array.from(frame);
  bad[8 + 1000] ^= 0xff; // inside the block
  bad.set([0xff, 0xff], bad.length - 40); // most likely a match offset beyond the output
  assert.throws(() => decompressLz4Legacy(bad, { expectedSize: data.length }), (e: unknown) => e instanceof BootError && /block 0/.test(e.message));
});
