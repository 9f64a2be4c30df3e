// The WebAssembly LZ4 block decoder (src/boot/decompress/lz4-wasm.ts) against the JavaScript one
// (decodeLz4Block): the same output for valid blocks of every sequence shape, and for damaged
// blocks the same verdict (the wasm decoder's -1 exactly where decodeLz4Block throws).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BootError } from '../../src/boot/boot-plan.js';
import { decodeLz4Block, decompressLz4Legacy, decompressLz4LegacyInto } from '../../src/boot/decompress/lz4-legacy.js';
import { lz4WasmDecoder } from '../../src/boot/decompress/lz4-wasm.js';
import { lz4Block, lz4LegacyFrame, sampleData } from './fixtures.js';

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
  const frame = lz4LegacyFrame([lz4Block(data)]);
  const out = decompressLz4Legacy(frame, { expectedSize: data.length });
  assert.ok(Buffer.from(out).equals(Buffer.from(data)));
  assert.equal(out.buffer.byteLength > data.length, true, 'the output is a view of the decoder\'s memory');
  const bad = Uint8Array.from(frame);
  bad[8 + 1000] ^= 0xff; // inside the block
  bad.set([0xff, 0xff], bad.length - 40); // most likely a match offset beyond the output
  assert.throws(() => decompressLz4Legacy(bad, { expectedSize: data.length }), (e: unknown) => e instanceof BootError && /block 0/.test(e.message));
});

test('wasm LZ4: a frame decodes straight into a shared memory, and only into the ranges it was given', () => {
  const parts = [sampleData(70000, 5), sampleData(50000, 6), new Uint8Array(30000).fill(0x41)];
  const data = Uint8Array.from(parts.flatMap((p) => [...p]));
  const frame = lz4LegacyFrame(parts.map((p) => lz4Block(p)));
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: new (d: object) => { buffer: SharedArrayBuffer } } }).WebAssembly;
  const memory = new wasm.Memory({ initial: 8, maximum: 8, shared: true });
  const buffer = memory.buffer;
  const bytes = new Uint8Array(buffer);
  const dst = 0x10000;
  const inputAt = dst + data.length + 64;
  bytes.fill(0xee);
  assert.equal(decompressLz4LegacyInto(frame, data.length, { memory, buffer, dst, inputAt }), true);
  assert.ok(Buffer.from(bytes.subarray(dst, dst + data.length)).equals(Buffer.from(data)));
  assert.ok(Buffer.from(bytes.subarray(inputAt, inputAt + frame.length)).equals(Buffer.from(frame)), 'the input was copied there');
  assert.ok(bytes.subarray(0, dst).every((b) => b === 0xee), 'nothing written below the output');
  assert.ok(bytes.subarray(dst + data.length, inputAt).every((b) => b === 0xee), 'nothing between output and input');
  assert.ok(bytes.subarray(inputAt + frame.length).every((b) => b === 0xee), 'nothing past the input');

  // What it refuses, before writing anything: output over its input, past the memory, a wrong size.
  bytes.fill(0xee);
  assert.equal(decompressLz4LegacyInto(frame, data.length, { memory, buffer, dst, inputAt: dst + 1000 }), false);
  assert.equal(decompressLz4LegacyInto(frame, data.length, { memory, buffer, dst: buffer.byteLength - 100, inputAt }), false);
  assert.ok(bytes.every((b) => b === 0xee));
  // Damaged data or a wrong recorded size: false (the caller decodes again for the message).
  assert.equal(decompressLz4LegacyInto(frame, data.length - 1, { memory, buffer, dst, inputAt }), false);
  assert.equal(decompressLz4LegacyInto(frame, data.length + 1, { memory, buffer, dst, inputAt }), false);
  const bad = Uint8Array.from(frame);
  bad.set([0x0f, 0xff, 0xff], 8); // block 0 opens with a match 65,535 bytes before its output
  assert.equal(decompressLz4LegacyInto(bad, data.length, { memory, buffer, dst, inputAt }), false);
});
