import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BootError } from '../../src/boot/boot-plan.js';
import {
  decodeLz4Block, decompressLz4Legacy, LZ4_LEGACY_BLOCK_MAX, LZ4_LEGACY_MAGIC,
} from '../../src/boot/decompress/lz4-legacy.js';
import { decompressKernelPayload } from '../../src/boot/decompress/index.js';
import { rng, runTool, sampleData, toolMissing, withSizeTrailer } from './fixtures.js';

const MAGIC = [0x02, 0x21, 0x4c, 0x18];

/** A legacy frame around raw blocks (each given as its compressed bytes). */
function frame(...blocks: number[][]): Uint8Array {
  const out: number[] = [...MAGIC];
  for (const b of blocks) {
    const n = b.length;
    out.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24, ...b);
  }
  return Uint8Array.from(out);
}

const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];

test('magic constant matches the bytes 02 21 4C 18', () => {
  assert.equal(new DataView(Uint8Array.from(MAGIC).buffer).getUint32(0, true), LZ4_LEGACY_MAGIC);
});

test('hand-made blocks: literals only, a non-overlapping match, runs and overlapping matches', () => {
  // "abcd" then match offset 4 len 4 -> "abcdabcd", then last literals "!"
  const b1 = [0x40, ...ascii('abcd'), 4, 0, 0x10, ...ascii('!')];
  assert.equal(Buffer.from(decompressLz4Legacy(frame(b1))).toString('latin1'), 'abcdabcd!');
  // offset 1 run: "x" then 20 more x (len 20 = 4 + 15 + 1 extra byte), then "y"
  const b2 = [0x1f, ...ascii('x'), 1, 0, 1, 0x10, ...ascii('y')];
  assert.equal(Buffer.from(decompressLz4Legacy(frame(b2))).toString('latin1'), 'x'.repeat(21) + 'y');
  // overlapping offset 3: "abc" + 9 copied -> "abcabcabcabc"
  const b3 = [0x35, ...ascii('abc'), 3, 0, 0x10, ...ascii('.')];
  assert.equal(Buffer.from(decompressLz4Legacy(frame(b3))).toString('latin1'), 'abcabcabcabc.');
  // a long literal run (15 + 255 + 10 = 280 bytes) and two blocks in one frame
  const lit = Array.from({ length: 280 }, (_, i) => 65 + (i % 26));
  const out = decompressLz4Legacy(frame([0xf0, 255, 10, ...lit], [0x20, ...ascii('ok')]));
  assert.equal(out.length, 282);
  assert.deepEqual([...out.subarray(0, 280)], lit);
  // a long non-overlapping match (copyWithin path): 64 literals then a 64-byte match at offset 64
  const lit64 = Array.from({ length: 64 }, (_, i) => i);
  const long = decompressLz4Legacy(frame([0xff, 64 - 15, ...lit64, 64, 0, 64 - 19, 0x10, 0xaa]));
  assert.deepEqual([...long.subarray(64, 128)], lit64);
  assert.equal(long.length, 129);
});

test('repeated magic (joined frames) is skipped, a trailing size word ends the frame', () => {
  const a = frame([0x30, ...ascii('abc')]);
  const joined = new Uint8Array([...a, ...frame([0x30, ...ascii('def')])]);
  assert.equal(Buffer.from(decompressLz4Legacy(joined)).toString(), 'abcdef');
  // A kernel appends the decompressed size; 6 is a plausible block size but nothing follows it.
  const withSize = withSizeTrailer(joined, 6);
  assert.equal(Buffer.from(decompressLz4Legacy(withSize)).toString(), 'abcdef');
  assert.equal(Buffer.from(decompressKernelPayload(withSize).data).toString(), 'abcdef');
});

test('real lz4 -l output (several 8 MiB blocks) round-trips, with and without the size trailer', (t) => {
  const missing = toolMissing('lz4');
  if (missing) return t.skip(missing);
  const data = sampleData(LZ4_LEGACY_BLOCK_MAX * 2 + 12345, 7);
  const compressed = runTool('lz4', ['-l', '-9', '-c'], data);
  assert.deepEqual([...compressed.subarray(0, 4)], MAGIC);
  const out = decompressLz4Legacy(compressed);
  assert.equal(out.length, data.length);
  assert.ok(Buffer.from(out).equals(Buffer.from(data)));
  const viaKernel = decompressKernelPayload(withSizeTrailer(compressed, data.length));
  assert.equal(viaKernel.format, 'lz4-legacy');
  assert.ok(Buffer.from(viaKernel.data).equals(Buffer.from(data)));
  // A fast-mode (-1) stream has different match shapes; check it too, on a smaller input.
  const small = sampleData(300000, 3);
  assert.ok(Buffer.from(decompressLz4Legacy(runTool('lz4', ['-l', '-1', '-c'], small))).equals(Buffer.from(small)));
});

function assertBootError(f: () => unknown, re?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof BootError, `expected a BootError, got ${String(e)}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

test('hostile input: every truncation of a valid frame throws a BootError or decodes a prefix of blocks', () => {
  const data = sampleData(20000, 5);
  // Build a valid two-block frame by hand from literals + matches is tedious; use lz4 when present,
  // otherwise a hand-made frame.
  const missing = toolMissing('lz4');
  const compressed = missing ? frame([0xf0, 255, 10, ...data.subarray(0, 280)], [0x20, 1, 2])
    : runTool('lz4', ['-l', '-9', '-c'], data);
  for (let n = 0; n < compressed.length; n += Math.max(1, Math.floor(compressed.length / 400))) {
    const cut = compressed.subarray(0, n);
    try {
      const out = decompressLz4Legacy(cut);
      assert.ok(out.length <= data.length);
    } catch (e) {
      assert.ok(e instanceof BootError, `truncation at ${n}: ${String(e)}`);
    }
  }
  // With the recorded size, a truncated stream is always an error.
  assertBootError(() => decompressLz4Legacy(compressed.subarray(0, compressed.length - 1), { expectedSize: data.length }));
});

test('hostile input: corrupt blocks give clear errors', () => {
  assertBootError(() => decompressLz4Legacy(Uint8Array.from([1, 2, 3, 4, 5])), /not an LZ4 legacy frame/);
  assertBootError(() => decompressLz4Legacy(Uint8Array.from(MAGIC)), /no blocks/);
  // Match offset 0, and an offset reaching before the start of the output.
  assertBootError(() => decompressLz4Legacy(frame([0x10, 65, 0, 0, 0x10, 66])), /match offset 0/);
  assertBootError(() => decompressLz4Legacy(frame([0x10, 65, 5, 0, 0x10, 66])), /match offset 5/);
  // Literal count larger than the block.
  assertBootError(() => decompressLz4Legacy(frame([0xf0, 255, 255, 255, 1])), /literal/);
  // Block ends inside a match offset.
  assertBootError(() => decompressLz4Legacy(frame([0x10, 65, 1])), /match offset/);
  // Block size word says more bytes than remain.
  const short = frame([0x30, 65, 66, 67]);
  short[4] = 50;
  assertBootError(() => decompressLz4Legacy(new Uint8Array([...short, 0, 0])), /truncated/);
  // More output than the recorded size.
  assertBootError(() => decompressLz4Legacy(frame([0x30, 65, 66, 67]), { expectedSize: 2 }), /recorded size/);
  assertBootError(() => decompressLz4Legacy(frame([0x30, 65, 66, 67]), { expectedSize: 4 }), /decompressed to 3 bytes/);
  // A match that would run past 8 MiB in one block: offset 1, length 15 + 255*40000.
  const huge = [0x1f, 65, 1, 0, ...new Array(40000).fill(255), 0, 0x10, 66];
  assertBootError(() => decompressLz4Legacy(frame(huge)), /more than 8 MiB/);
  // The block decoder refuses buffers it was not given.
  assertBootError(() => decodeLz4Block(new Uint8Array(4), 0, 10, new Uint8Array(4), 0, 4));
});

test('hostile input: random mutations never hang or escape as non-BootErrors', () => {
  const base = frame(
    [0x40, ...ascii('abcd'), 4, 0, 0x10, ...ascii('!')],
    [0xf0, 5, ...Array.from({ length: 20 }, (_, i) => i), 20, 0, 0x20, ...ascii('zz')],
  );
  assert.equal(decompressLz4Legacy(base).length, 9 + 26);
  const next = rng(1234);
  const started = Date.now();
  for (let round = 0; round < 3000; round++) {
    const m = base.slice();
    const flips = 1 + (next() % 4);
    for (let k = 0; k < flips; k++) m[4 + (next() % (m.length - 4))] = next() & 0xff;
    try {
      decompressLz4Legacy(m, { maxSize: 64 << 20 });
    } catch (e) {
      assert.ok(e instanceof BootError, `round ${round}: ${String(e)}`);
    }
  }
  // Pure garbage after a valid magic.
  for (let round = 0; round < 300; round++) {
    const g = new Uint8Array(4 + (next() % 2000));
    g.set(MAGIC);
    for (let i = 4; i < g.length; i++) g[i] = next() & 0xff;
    try {
      decompressLz4Legacy(g, { maxSize: 64 << 20 });
    } catch (e) {
      assert.ok(e instanceof BootError, `garbage ${round}: ${String(e)}`);
    }
  }
  assert.ok(Date.now() - started < 20000, 'fuzzing took too long');
});
