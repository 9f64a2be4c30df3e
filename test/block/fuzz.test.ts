// Fuzzing the qcow2 driver with hostile images: seeded mutations of valid images (header
// fields, random bytes in the header cluster, L1/L2/refcount entries, truncation). Opening,
// reading, checking and (on a copy) writing must either work or fail with a BlockError: never
// another exception, never a hang, never a change to a file opened read-only, and never data
// written over the header or past a sane bound on the file's growth.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDisk } from '../../src/block/open.js';
import { BlockError } from '../../src/block/errors.js';
import { checkImage } from '../../src/block/check.js';
import { createImage } from '../../src/block/create.js';
import { compressCluster } from '../../src/block/qcow2/compressed.js';
import { H } from '../../src/block/qcow2/format.js';
import { pattern, rng, tempDir } from './helpers.js';

const dir = tempDir('fuzz');
after(() => rmSync(dir, { recursive: true, force: true }));
const ITERATIONS = Number(process.env.TSVM_FUZZ_ITERATIONS ?? 300);

function u64(b: Uint8Array, at: number): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  return dv.getUint32(at) * 2 ** 32 + dv.getUint32(at + 4);
}

/** Builds the seed images: v3 and v2, small clusters, a backing file, a compressed cluster. */
async function seeds(): Promise<{ name: string; bytes: Uint8Array }[]> {
  const out: { name: string; bytes: Uint8Array }[] = [];
  const backing = join(dir, 'backing.raw');
  writeFileSync(backing, pattern(256 * 1024, 1));
  const specs = [
    { name: 'v3-512', opts: { size: 1 << 20, clusterSize: 512 } },
    { name: 'v3-4k', opts: { size: 4 << 20, clusterSize: 4096 } },
    { name: 'v2-4k', opts: { size: 2 << 20, clusterSize: 4096, version: 2 as const } },
    { name: 'overlay', opts: { size: 1 << 20, clusterSize: 4096, backingFile: 'backing.raw', backingFormat: 'raw' as const } },
  ];
  for (const s of specs) {
    const p = join(dir, `seed-${s.name}.qcow2`);
    await createImage(p, { format: 'qcow2', ...s.opts });
    const d = await openDisk(p, { format: 'qcow2' });
    const r = rng(s.name.length);
    for (let i = 0; i < 12; i++) await d.write(r(d.sizeBytes - 9000), pattern(1 + r(9000), i));
    await d.writeZeroes!(0, 8192, false);
    await d.close();
    out.push({ name: s.name, bytes: readFileSync(p) });
  }
  // A compressed cluster, spliced in by hand: guest cluster 3 of the v3-4k seed.
  const b = readFileSync(join(dir, 'seed-v3-4k.qcow2'));
  const data = new Uint8Array(4096).fill(0x5a);
  const z = compressCluster(data)!;
  const at = Math.ceil(b.length / 512) * 512;
  const grown = new Uint8Array(at + Math.ceil(z.length / 512) * 512);
  grown.set(b);
  grown.set(z, at);
  const l1 = u64(grown, H.l1TableOffset);
  const l2 = u64(grown, l1) % 2 ** 56 - (u64(grown, l1) % 512);
  if (l2 > 0) {
    // x = 62 - (12 - 8) = 58: sectors beyond the first in bits 58-61.
    const sectors = Math.ceil((z.length + (at % 512)) / 512) - 1;
    const d = (BigInt(1) << 62n) | (BigInt(sectors) << 58n) | BigInt(at);
    new DataView(grown.buffer).setBigUint64(l2 + 3 * 8, d);
    out.push({ name: 'compressed', bytes: grown });
    // The splice must really be a readable compressed cluster.
    const p = join(dir, 'seed-compressed.qcow2');
    writeFileSync(p, grown);
    const img = await openDisk(p, { readonly: true });
    const back = new Uint8Array(4096);
    await img.read(3 * 4096, back);
    await img.close();
    assert.ok(back.every((x) => x === 0x5a), 'the hand-made compressed cluster reads back');
  }
  return out;
}

const INTERESTING = [0, 1, 7, 8, 9, 0x1ff, 0x200, 0x1000, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

function mutate(src: Uint8Array, r: (n: number) => number): Uint8Array {
  let b = new Uint8Array(src);
  const dv = () => new DataView(b.buffer);
  const n = 1 + r(4);
  for (let k = 0; k < n; k++) {
    switch (r(7)) {
      case 0: // a random byte of the header cluster
        if (b.length > 0) b[r(Math.min(b.length, 512))] = r(256);
        break;
      case 1: { // a 32-bit header field set to an interesting value
        const fields = [H.version, H.backingFileSize, H.clusterBits, H.cryptMethod, H.l1Size, H.refcountTableClusters,
          H.nbSnapshots, H.refcountOrder, H.headerLength, H.size + 4, H.l1TableOffset + 4, H.refcountTableOffset + 4,
          H.backingFileOffset + 4, H.incompatibleFeatures + 4, H.autoclearFeatures + 4];
        const f = fields[r(fields.length)];
        if (f + 4 <= b.length) dv().setUint32(f, INTERESTING[r(INTERESTING.length)]);
        break;
      }
      case 2: { // a 64-bit offset field to something in, near or past the file
        const fields = [H.l1TableOffset, H.refcountTableOffset, H.snapshotsOffset, H.backingFileOffset, H.size];
        const v = [0, 512, 4096, b.length, b.length - 512, 2 ** 40, r(b.length)][r(7)];
        const f = fields[r(fields.length)];
        if (f + 8 <= b.length) dv().setBigUint64(f, BigInt(v));
        break;
      }
      case 3: { // an 8-byte table entry somewhere after the header: L1, L2, refcount table/blocks
        const at = 512 + r(Math.max(1, (b.length - 520) >> 3)) * 8;
        if (at + 8 > b.length) break;
        const v = [0n, 1n, BigInt(r(b.length)), BigInt(r(b.length)) | (1n << 63n), BigInt(b.length) * 4n, (1n << 62n) | BigInt(r(b.length)),
          0xffffffffffffffffn, BigInt(512 * r(8))][r(8)];
        dv().setBigUint64(at, v);
        break;
      }
      case 4: { // random bytes anywhere
        for (let i = 0; i < 8 && b.length > 0; i++) b[r(b.length)] = r(256);
        break;
      }
      case 5: // truncation
        b = b.slice(0, r(b.length));
        break;
      default: { // an incompatible / compatible feature bit
        const field = [H.incompatibleFeatures, H.compatibleFeatures, H.autoclearFeatures][r(3)];
        if (b.length >= field + 8) b[field + 7 - r(8)] |= 1 << r(8);
      }
    }
  }
  return b;
}

function expectBlockError(e: unknown, ctx: string): void {
  if (!(e instanceof BlockError)) {
    assert.fail(`${ctx}: threw ${(e as Error)?.name ?? typeof e} instead of a BlockError: ${(e as Error)?.stack ?? e}`);
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, ctx: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${ctx}: hung for ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(t);
  }
}

async function readSome(path: string, r: (n: number) => number): Promise<void> {
  const d = await openDisk(path, { readonly: true });
  try {
    const size = d.sizeBytes;
    const buf = new Uint8Array(70_000);
    for (let i = 0; i < 6 && size > 0; i++) {
      const len = Math.min(size, 1 + r(buf.length));
      const off = r(Math.max(1, Math.min(size - len + 1, 2 ** 31)));
      await d.read(off, buf.subarray(0, len));
    }
  } finally {
    await d.close();
  }
}

async function writeSome(path: string, r: (n: number) => number): Promise<void> {
  const d = await openDisk(path, { format: 'qcow2' });
  try {
    const size = d.sizeBytes;
    for (let i = 0; i < 4 && size > 0; i++) {
      const len = Math.min(size, 1 + r(20_000));
      const off = r(Math.max(1, Math.min(size - len + 1, 2 ** 31)));
      await d.write(off, pattern(len, i));
    }
    await d.discard!(0, Math.min(size, 65536));
    await d.flush();
  } finally {
    await d.close().catch((e: unknown) => expectBlockError(e, 'close'));
  }
}

test(`fuzz: ${ITERATIONS} mutated qcow2 images: only BlockErrors, no hangs, no writes outside the image`, { timeout: 60_000 }, async (t) => {
  const bases = await seeds();
  assert.equal(bases.length, 5, 'all seed images built');
  const r = rng(Number(process.env.TSVM_FUZZ_SEED ?? 20261126));
  const stats = { opened: 0, rejected: 0, wrote: 0 };
  for (let i = 0; i < ITERATIONS; i++) {
    const base = bases[i % bases.length];
    const img = mutate(base.bytes, r);
    const path = join(dir, `case.qcow2`);
    writeFileSync(path, img);
    const ctx = `iteration ${i} (seed image ${base.name})`;
    // Read-only: reading and checking never change the file.
    try {
      await withTimeout(readSome(path, r), 5000, ctx);
      stats.opened++;
    } catch (e) {
      expectBlockError(e, ctx);
      stats.rejected++;
    }
    try {
      await withTimeout(checkImage(path, 'qcow2'), 5000, `${ctx} check`);
    } catch (e) {
      expectBlockError(e, `${ctx} check`);
    }
    assert.ok(readFileSync(path).equals(img), `${ctx}: a read-only open changed the file`);

    // Read-write on a copy: the header's first 48 bytes stay, the file grows by a bounded amount.
    if (i % 3 === 0) {
      const copy = join(dir, 'case-rw.qcow2');
      copyFileSync(path, copy);
      try {
        await withTimeout(writeSome(copy, r), 5000, `${ctx} write`);
        stats.wrote++;
      } catch (e) {
        expectBlockError(e, `${ctx} write`);
      }
      const afterBytes = readFileSync(copy);
      assert.ok(afterBytes.subarray(0, 48).equals(Buffer.from(img.subarray(0, 48))) || img.length < 48, `${ctx}: the header was overwritten`);
      assert.ok(statSync(copy).size <= Math.max(img.length, 4096) + 8 * 1024 * 1024, `${ctx}: the file grew unreasonably (${statSync(copy).size})`);
    }
  }
  t.diagnostic(`opened ${stats.opened}, rejected ${stats.rejected}, written ${stats.wrote}`);
  // The mutations must exercise both paths.
  assert.ok(stats.opened > ITERATIONS / 20, `only ${stats.opened} images opened`);
  assert.ok(stats.rejected > ITERATIONS / 20, `only ${stats.rejected} images rejected`);
});

test('fuzz: backing chain loops and runaway depth are clear errors', async () => {
  const a = join(dir, 'loop-a.qcow2');
  const b = join(dir, 'loop-b.qcow2');
  await createImage(b, { format: 'qcow2', size: 1 << 20 });
  await createImage(a, { format: 'qcow2', size: 1 << 20, backingFile: 'loop-b.qcow2', backingFormat: 'qcow2' });
  // Point b back at a by rewriting it with a backing file name (same length layout as create).
  await createImage(b, { format: 'qcow2', size: 1 << 20, backingFile: 'loop-a.qcow2', backingFormat: 'qcow2' });
  await assert.rejects(openDisk(a, { readonly: true }), (e: Error) => e instanceof BlockError && /loops/.test(e.message));
  const self = join(dir, 'self.qcow2');
  await createImage(join(dir, 'tmp-base.qcow2'), { format: 'qcow2', size: 1 << 20 });
  await createImage(self, { format: 'qcow2', size: 1 << 20, backingFile: 'tmp-base.qcow2' });
  const bytes = readFileSync(self);
  const off = u64(bytes, H.backingFileOffset);
  const name = Buffer.from('self.qcow2\0\0\0\0');
  bytes.set(name.subarray(0, 10), off);
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(H.backingFileSize, 10);
  writeFileSync(self, bytes);
  await assert.rejects(openDisk(self, { readonly: true }), (e: Error) => e instanceof BlockError && /loops/.test(e.message));
  // A long (non-looping) chain past the limit.
  let prev = 'chain-0.qcow2';
  await createImage(join(dir, prev), { format: 'qcow2', size: 65536 });
  for (let i = 1; i <= 5; i++) {
    const name2 = `chain-${i}.qcow2`;
    await createImage(join(dir, name2), { format: 'qcow2', size: 65536, backingFile: prev, backingFormat: 'qcow2' });
    prev = name2;
  }
  await assert.rejects(openDisk(join(dir, prev), { readonly: true, maxChainDepth: 3 }), (e: Error) => e instanceof BlockError && /longer than/.test(e.message));
  const ok = await openDisk(join(dir, prev), { readonly: true });
  await ok.close();
});
