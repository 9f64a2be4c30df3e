// Unit tests of the qcow2 building blocks: header parsing and validation, L2 entry and
// compressed descriptor decoding, refcount entry widths, compressed cluster decoding.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseHeader, hasQcow2Magic, l1EntriesFor } from '../../src/block/qcow2/header.js';
import { createQcow2 } from '../../src/block/qcow2/create.js';
import { H, EXT_FEATURE_TABLE } from '../../src/block/qcow2/format.js';
import { decodeL2Entry, compressedRange, compressedClusters, encodeL2Normal, encodeL2Zero } from '../../src/block/qcow2/mapping.js';
import { getRefcountEntry, setRefcountEntry } from '../../src/block/qcow2/refcount.js';
import { compressCluster, decompressCluster } from '../../src/block/qcow2/compressed.js';
import { BlockError, CorruptImageError, UnsupportedImageError } from '../../src/block/errors.js';
import { pattern, tempDir } from './helpers.js';

const dir = tempDir('format');
after(() => rmSync(dir, { recursive: true, force: true }));

async function fresh(opts: Parameters<typeof createQcow2>[1]): Promise<Uint8Array> {
  const p = join(dir, 'h.qcow2');
  await createQcow2(p, opts);
  return new Uint8Array(readFileSync(p));
}

test('header: what createQcow2 writes parses back (v3 and v2, backing file and format)', async () => {
  const b = await fresh({ size: 10 << 20, backingFile: '../base.img', backingFormat: 'raw' });
  assert.ok(hasQcow2Magic(b));
  const h = parseHeader(b.subarray(0, 65536), b.length, 'x');
  assert.equal(h.version, 3);
  assert.equal(h.clusterSize, 65536);
  assert.equal(h.size, 10 << 20);
  assert.equal(h.refcountOrder, 4);
  assert.equal(h.headerLength, 112);
  assert.equal(h.backingFile, '../base.img');
  assert.equal(h.backingFormat, 'raw');
  assert.equal(h.l1Size, l1EntriesFor(10 << 20, 16));
  assert.equal(h.featureNames.get('incompatible:0'), 'dirty bit');
  assert.ok(h.extensions.some((e) => e.type === EXT_FEATURE_TABLE));
  assert.equal(h.dirty, false);
  const v2 = await fresh({ size: 1 << 20, version: 2, clusterBits: 12 });
  const h2 = parseHeader(v2.subarray(0, 4096), v2.length, 'x');
  assert.equal(h2.version, 2);
  assert.equal(h2.refcountOrder, 4);
  assert.equal(h2.headerLength, 72);
});

test('header: hostile fields are refused with clear errors', async () => {
  const base = await fresh({ size: 1 << 20 });
  const cases: [string, (dv: DataView, b: Uint8Array) => void, RegExp, typeof BlockError][] = [
    ['bad magic', (dv) => dv.setUint32(H.magic, 0x12345678), /bad magic/, CorruptImageError],
    ['version 4', (dv) => dv.setUint32(H.version, 4), /version 4/, UnsupportedImageError],
    ['cluster_bits 30', (dv) => dv.setUint32(H.clusterBits, 30), /cluster_bits 30/, CorruptImageError],
    ['cluster_bits 8', (dv) => dv.setUint32(H.clusterBits, 8), /cluster_bits 8/, CorruptImageError],
    ['encryption', (dv) => dv.setUint32(H.cryptMethod, 2), /encrypted.*LUKS/, UnsupportedImageError],
    ['L1 too small', (dv) => dv.setUint32(H.l1Size, 0), /too small/, CorruptImageError],
    ['L1 past EOF', (dv) => dv.setBigUint64(H.l1TableOffset, 1n << 40n), /past the end/, CorruptImageError],
    ['L1 unaligned', (dv) => dv.setBigUint64(H.l1TableOffset, 0x30008n), /not cluster aligned/, CorruptImageError],
    ['refcount table on the header', (dv) => dv.setBigUint64(H.refcountTableOffset, 0n), /refcount table offset/, CorruptImageError],
    ['L1 overlaps refcount table', (dv) => dv.setBigUint64(H.l1TableOffset, 0x10000n), /overlap/, CorruptImageError],
    ['huge refcount table', (dv) => dv.setUint32(H.refcountTableClusters, 0xffffffff), /too large/, CorruptImageError],
    ['refcount_order 7', (dv) => dv.setUint32(H.refcountOrder, 7), /refcount_order 7/, CorruptImageError],
    ['header_length odd', (dv) => dv.setUint32(H.headerLength, 105), /header_length/, CorruptImageError],
    ['extended L2', (dv) => dv.setUint32(H.incompatibleFeatures + 4, 1 << 4), /extended L2 entries/, UnsupportedImageError],
    ['external data file', (dv) => dv.setUint32(H.incompatibleFeatures + 4, 1 << 2), /external data file/, UnsupportedImageError],
    ['compression type 2', (dv, b) => { dv.setUint32(H.incompatibleFeatures + 4, 1 << 3); b[H.compressionType] = 2; }, /compression type 2/, UnsupportedImageError],
    ['compression bit without a type', (dv) => dv.setUint32(H.incompatibleFeatures + 4, 1 << 3), /compression_type is zlib/, CorruptImageError],
    ['unknown feature bit 40', (dv) => dv.setUint32(H.incompatibleFeatures, 1 << 8), /unknown incompatible feature bit 40/, UnsupportedImageError],
    ['backing name too long', (dv) => { dv.setBigUint64(H.backingFileOffset, 512n); dv.setUint32(H.backingFileSize, 5000); }, /backing file name length/, CorruptImageError],
    ['backing name outside cluster', (dv) => { dv.setBigUint64(H.backingFileOffset, 65530n); dv.setUint32(H.backingFileSize, 100); }, /outside the header cluster/, CorruptImageError],
    ['extension overruns', (dv) => dv.setUint32(112 + 4, 0x7fffffff), /overruns/, CorruptImageError],
    ['virtual size 2^60', (dv) => dv.setBigUint64(H.size, 1n << 60n), /out of range/, CorruptImageError],
  ];
  for (const [name, patch, msg, cls] of cases) {
    const b = new Uint8Array(base);
    patch(new DataView(b.buffer), b);
    assert.throws(() => parseHeader(b.subarray(0, 65536), b.length, 'img'), (e: Error) => {
      assert.ok(e instanceof cls, `${name}: ${e.name} ${e.message}`);
      assert.match(e.message, msg, name);
      return true;
    });
  }
  assert.throws(() => parseHeader(base.subarray(0, 50), 50, 'img'), /too short/);
});

test('header: an unknown incompatible feature is named from the feature name table', async () => {
  const b = await fresh({ size: 1 << 20 });
  const h = parseHeader(b.subarray(0, 65536), b.length, 'x');
  const ext = h.extensions.find((e) => e.type === EXT_FEATURE_TABLE)!;
  // Rename the entry for incompatible bit 0 to bit 9 "frobnication".
  b[ext.offset + 1] = 9;
  b.fill(0, ext.offset + 2, ext.offset + 48);
  b.set(new TextEncoder().encode('frobnication'), ext.offset + 2);
  new DataView(b.buffer).setUint32(H.incompatibleFeatures + 4, 1 << 9);
  assert.throws(() => parseHeader(b.subarray(0, 65536), b.length, 'x'), /incompatible feature\(s\) not supported: frobnication/);
});

test('mapping: L2 entries decode per the spec, reserved bits and bad offsets are corrupt', () => {
  const n = encodeL2Normal(0x50000);
  assert.deepEqual(decodeL2Entry(n.hi, n.lo, 16, 3, 'x'), { kind: 'normal', hostOffset: 0x50000, copied: true });
  const z = encodeL2Zero(0, false);
  assert.deepEqual(decodeL2Entry(z.hi, z.lo, 16, 3, 'x'), { kind: 'zero', hostOffset: 0, copied: false });
  assert.throws(() => decodeL2Entry(z.hi, z.lo, 16, 2, 'x'), /version 2/);
  assert.deepEqual(decodeL2Entry(0, 0, 16, 3, 'x'), { kind: 'unallocated' });
  assert.throws(() => decodeL2Entry(0, 0x50002, 16, 3, 'x'), /reserved/);
  assert.throws(() => decodeL2Entry(0, 0x50200, 16, 3, 'x'), /unaligned/);
  assert.throws(() => decodeL2Entry(0x80000000, 0, 16, 3, 'x'), /offset 0/);
  // Compressed, 64 KiB clusters: x = 62 - 8 = 54; offset 0x12345 with 3 additional sectors.
  const d = (1n << 62n) | (3n << 54n) | 0x12345n;
  const m = decodeL2Entry(Number(d >> 32n), Number(d & 0xffffffffn), 16, 3, 'x');
  assert.deepEqual(m, { kind: 'compressed', hostOffset: 0x12345, sectors: 4 });
  if (m.kind !== 'compressed') return;
  assert.deepEqual(compressedRange(m), { start: 0x12345, length: 4 * 512 - 0x145 });
  assert.deepEqual(compressedClusters(m, 65536), { first: 1, count: 1 });
  assert.deepEqual(compressedClusters({ hostOffset: 65536 - 600, sectors: 3 }, 65536), { first: 0, count: 2 });
});

test('refcounts: entries of every width (1 to 64 bits) round-trip without touching neighbours', () => {
  for (let order = 0; order <= 6; order++) {
    const block = new Uint8Array(512);
    const bits = 1 << order;
    const entries = (512 * 8) / bits;
    const max = order === 6 ? 2 ** 53 - 1 : 2 ** bits - 1;
    for (let i = 0; i < entries; i++) setRefcountEntry(block, order, i, (i * 7) % (Math.min(max, 1000) + 1));
    for (let i = 0; i < entries; i++) assert.equal(getRefcountEntry(block, order, i), (i * 7) % (Math.min(max, 1000) + 1), `order ${order} entry ${i}`);
    setRefcountEntry(block, order, 3, max);
    assert.equal(getRefcountEntry(block, order, 3), max);
    assert.equal(getRefcountEntry(block, order, 2), 14 % (Math.min(max, 1000) + 1));
  }
  // Sub-byte widths: bit 0 is the least significant ("Refcount block entry").
  const b = new Uint8Array(1);
  setRefcountEntry(b, 0, 0, 1);
  assert.equal(b[0], 1);
  setRefcountEntry(b, 1, 1, 3);
  assert.equal(b[0], 0b1101);
});

test('compressed clusters: deflate round trip; garbage and short streams are corrupt, not crashes', () => {
  const data = new Uint8Array(65536);
  for (let i = 0; i < data.length; i++) data[i] = i % 251 < 100 ? 7 : i & 0xff;
  const z = compressCluster(data)!;
  assert.ok(z.length < data.length);
  // Trailing bytes of the last sector are ignored.
  const padded = new Uint8Array(Math.ceil(z.length / 512) * 512);
  padded.set(z);
  padded.fill(0xee, z.length);
  assert.ok(Buffer.from(decompressCluster(padded, 65536, 'x')).equals(Buffer.from(data)));
  assert.equal(compressCluster(pattern(65536, 1)), undefined, 'random data does not compress');
  assert.throws(() => decompressCluster(pattern(600, 2), 65536, 'x'), CorruptImageError);
  assert.throws(() => decompressCluster(z.subarray(0, 10), 65536, 'x'), CorruptImageError);
  // A stream that inflates to more than a cluster is cut off, not allowed to grow memory.
  assert.throws(() => decompressCluster(compressCluster(new Uint8Array(1 << 20))!, 65536, 'x'), CorruptImageError);
});
