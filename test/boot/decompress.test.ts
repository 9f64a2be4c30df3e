import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { BootError } from '../../src/boot/boot-plan.js';
import { decompress, decompressKernelPayload, detectCompression } from '../../src/boot/decompress/index.js';
import { bcjX86Decode, crc32 } from '../../src/boot/decompress/xz.js';
import { allocHashable, xxh64 } from '../../src/boot/decompress/xxh64.js';
import { rng, runTool, sampleData, toolMissing, withSizeTrailer } from './fixtures.js';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from([...b, 0, 0, 0, 0, 0, 0]);

function assertBootError(f: () => unknown, re?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof BootError, `expected a BootError, got ${String(e)}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b));

test('detectCompression recognises each magic', () => {
  assert.equal(detectCompression(bytes(0x02, 0x21, 0x4c, 0x18)), 'lz4-legacy');
  assert.equal(detectCompression(bytes(0x1f, 0x8b)), 'gzip');
  assert.equal(detectCompression(bytes(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)), 'xz');
  assert.equal(detectCompression(bytes(0x28, 0xb5, 0x2f, 0xfd)), 'zstd');
  assert.equal(detectCompression(bytes(0x42, 0x5a, 0x68)), 'bzip2');
  assert.equal(detectCompression(bytes(0x5d, 0x00, 0x00)), 'lzma');
  assert.equal(detectCompression(bytes(0x89, 0x4c, 0x5a, 0x4f)), 'lzo');
  assert.equal(detectCompression(bytes(0x04, 0x22, 0x4d, 0x18)), 'lz4-frame');
  assert.equal(detectCompression(bytes(0x7f, 0x45, 0x4c, 0x46)), 'none');
  assert.equal(detectCompression(bytes(0x12, 0x34)), null);
  assert.equal(detectCompression(new Uint8Array(0)), null);
});

test('unsupported formats name the kernel options to rebuild with', () => {
  for (const [magic, name] of [[[0x42, 0x5a, 0x68], 'bzip2'], [[0x5d, 0, 0], 'lzma'], [[0x89, 0x4c, 0x5a, 0x4f], 'LZO']] as const) {
    assertBootError(() => decompress(bytes(...magic), { what: 'vmlinuz: kernel payload' }),
      new RegExp(`vmlinuz: kernel payload is ${name}-compressed.*CONFIG_KERNEL_LZ4.*bzimage-64`));
  }
  assertBootError(() => decompress(bytes(0x04, 0x22, 0x4d, 0x18)), /legacy frame/);
  assertBootError(() => decompress(bytes(1, 2, 3)), /unknown compression format \(first bytes 01 02 03/);
});

test('real bzip2 output is refused with the rebuild hint', (t) => {
  const missing = toolMissing('bzip2');
  if (missing) return t.skip(missing);
  const bz = runTool('bzip2', ['-c'], sampleData(1000));
  assert.equal(detectCompression(bz), 'bzip2');
  assertBootError(() => decompressKernelPayload(withSizeTrailer(bz, 1000)), /rebuild the kernel/);
});

test('gzip: node zlib and the real gzip tool, with the kernel size trailer', (t) => {
  const data = sampleData(1 << 20, 11);
  assert.ok(same(decompress(gzipSync(data)), data));
  const viaKernel = decompressKernelPayload(withSizeTrailer(gzipSync(data), data.length));
  assert.equal(viaKernel.format, 'gzip');
  assert.ok(same(viaKernel.data, data));
  // A wrong recorded size is caught.
  assertBootError(() => decompressKernelPayload(withSizeTrailer(gzipSync(data), data.length + 1)), /were recorded/);
  const missing = toolMissing('gzip');
  if (missing) return t.skip(missing);
  const gz = runTool('gzip', ['-9', '-n', '-c'], data);
  assert.ok(same(decompressKernelPayload(withSizeTrailer(gz, data.length)).data, data));
});

test('xz: --check=crc32 as the kernel builds it, with and without the x86 BCJ filter', (t) => {
  const missing = toolMissing('xz');
  if (missing) return t.skip(missing);
  const data = sampleData(3 << 20, 12);
  const plain = runTool('xz', ['--check=crc32', '-c'], data);
  assert.ok(same(decompress(plain), data));
  assert.ok(same(decompressKernelPayload(withSizeTrailer(plain, data.length)).data, data));
  // The kernel's xz_wrap.sh adds --x86 before LZMA2. Make the data look like code, so the
  // filter has E8/E9 operands to convert.
  const code = sampleData(1 << 20, 13);
  const next = rng(99);
  for (let i = 0; i + 5 < code.length; i += 7 + (next() % 40)) {
    code[i] = next() & 1 ? 0xe8 : 0xe9;
    const rel = (next() % 0x20000) - 0x10000;
    new DataView(code.buffer).setInt32(i + 1, rel, true);
  }
  const bcj = runTool('xz', ['--check=crc32', '--x86', '--lzma2=preset=6', '-c'], code);
  assert.ok(same(decompressKernelPayload(withSizeTrailer(bcj, code.length)).data, code));
  // Several blocks (multi-threaded xz) and a CRC64 check.
  const multi = runTool('xz', ['--check=crc64', '-T2', '--block-size=300KiB', '-c'], data);
  assert.ok(same(decompress(multi), data));
});

test('xz: corrupt data fails the CRC32 or LZMA2 checks', (t) => {
  const missing = toolMissing('xz');
  if (missing) return t.skip(missing);
  const data = sampleData(200000, 14);
  const xz = runTool('xz', ['--check=crc32', '-c'], data);
  const bad = xz.slice();
  bad[bad.length - 40] ^= 0xff; // inside the index/check area or the data: either way an error
  assertBootError(() => decompress(bad));
  const badData = xz.slice();
  badData[200] ^= 0x55;
  assertBootError(() => decompress(badData));
  const badHeader = xz.slice();
  badHeader[7] ^= 1;
  assertBootError(() => decompress(badHeader), /stream header|stream flags/);
  assertBootError(() => decompress(xz.subarray(0, xz.length >> 1)), /truncated|corrupt/);
  assertBootError(() => decompress(xz.subarray(0, 14)), /truncated/);
});

test('BCJ x86 decoding leaves code without near calls unchanged', () => {
  const b = Uint8Array.from([0x90, 0xe8, 0x12, 0x34, 0x56, 0x78, 0x90, 0x90, 0x90, 0x90]);
  const copy = b.slice();
  bcjX86Decode(b);
  assert.deepEqual(b, copy); // the operand's top byte 0x78 is neither 00 nor FF
  // An absolute target 0x00000100 at position 0 becomes relative 0x100 - 5.
  const c = Uint8Array.from([0xe8, 0x00, 0x01, 0x00, 0x00, 0x90, 0x90, 0x90, 0x90, 0x90]);
  bcjX86Decode(c);
  assert.deepEqual([...c.subarray(0, 5)], [0xe8, 0xfb, 0x00, 0x00, 0x00]);
});

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
});

test('zstd: the real zstd tool, including --ultra -22 (128 MiB window) as the kernel uses', (t) => {
  const missing = toolMissing('zstd');
  if (missing) return t.skip(missing);
  const data = sampleData(2 << 20, 15);
  const z = runTool('zstd', ['-q', '-c'], data);
  assert.ok(same(decompress(z), data));
  const ultra = runTool('zstd', ['-q', '-c', '--ultra', '-22'], data);
  assert.ok(same(decompressKernelPayload(withSizeTrailer(ultra, data.length)).data, data));
  assertBootError(() => decompressKernelPayload(withSizeTrailer(ultra, data.length - 1)));
});

test('xxh64: the empty-input reference value, and in-place hashing equals hashing a copy', () => {
  assert.deepEqual(xxh64(new Uint8Array(0)), [0xef46db37, 0x51d8e999]);
  const data = sampleData(100003, 21);
  const inWasm = allocHashable(data.length);
  inWasm.set(data);
  assert.deepEqual(xxh64(inWasm), xxh64(data));
  assert.deepEqual(xxh64(data.subarray(1)), xxh64(data.slice(1)));
});

test('zstd: content checksums verify for every tail length; a frame without one still decodes', (t) => {
  const missing = toolMissing('zstd');
  if (missing) return t.skip(missing);
  // zstd writes XXH64's low half; a wrong hash in any tail path (8-, 4-, 1-byte steps) would throw.
  for (const n of [0, 1, 3, 4, 5, 7, 8, 9, 12, 31, 32, 33, 39, 63, 64, 65, 100, 1000, 4101]) {
    const data = sampleData(n, n + 1);
    const z = runTool('zstd', ['-q', '-c', '--check'], data);
    assert.ok(same(decompress(z, { expectedSize: n }), data), `length ${n}`);
  }
  const data = sampleData(50000, 22);
  const noCheck = runTool('zstd', ['-q', '-c', '--no-check'], data);
  assert.ok(same(decompress(noCheck, { expectedSize: data.length }), data));
  assertBootError(() => decompress(noCheck, { expectedSize: data.length + 1 }), /were recorded/);
  const bad = runTool('zstd', ['-q', '-c', '--check', '-1'], data);
  bad[bad.length - 1] ^= 1; // the stored checksum
  assertBootError(() => decompress(bad, { expectedSize: data.length }), /checksum mismatch/);
  assertBootError(() => decompress(bad), /checksum mismatch/);
});

test('hostile input: truncated and garbage payloads of every format throw BootErrors quickly', (t) => {
  const data = sampleData(100000, 16);
  const samples: Uint8Array[] = [gzipSync(data)];
  for (const [tool, args] of [['xz', ['--check=crc32', '-c']], ['zstd', ['-q', '-c']], ['lz4', ['-l', '-c']]] as const) {
    if (toolMissing(tool)) t.diagnostic(`${tool} not installed: its hostile-input cases are skipped`);
    else samples.push(runTool(tool, [...args], data));
  }
  const next = rng(777);
  const started = Date.now();
  for (const s of samples) {
    const fmt = detectCompression(s);
    // Truncations, with the recorded size as the kernel would give it.
    for (let n = 1; n < s.length; n += Math.max(1, Math.floor(s.length / 60))) {
      assertBootError(() => decompressKernelPayload(withSizeTrailer(s.subarray(0, n), data.length)));
    }
    // Mutations: an error or (rarely, where the format has no check) some output; never anything else.
    for (let round = 0; round < 150; round++) {
      const m = s.slice();
      for (let k = 0; k < 3; k++) m[6 + (next() % (m.length - 6))] = next() & 0xff;
      try {
        decompressKernelPayload(withSizeTrailer(m, data.length), { maxSize: 16 << 20 });
      } catch (e) {
        assert.ok(e instanceof BootError, `${fmt} round ${round}: ${String(e)}`);
      }
    }
    // Garbage after the magic.
    for (let round = 0; round < 50; round++) {
      const g = new Uint8Array(64 + (next() % 4000));
      g.set(s.subarray(0, 6));
      for (let i = 6; i < g.length; i++) g[i] = next() & 0xff;
      assertBootError(() => decompressKernelPayload(withSizeTrailer(g, 5000), { maxSize: 16 << 20 }));
    }
  }
  assert.ok(Date.now() - started < 30000, 'hostile inputs took too long');
});
