// The qcow2 backend end to end without QEMU: random reads/writes against an in-memory model
// (several cluster sizes, refcount widths, version 2 and 3, a tiny L2 cache), persistence
// across reopen, discard/write-zeroes semantics, backing chains with copy-on-write, the
// safety rules for dirty/corrupt/snapshot images, and our own check staying clean throughout.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Qcow2Image } from '../../src/block/qcow2/image.js';
import { createQcow2, type Qcow2CreateOptions } from '../../src/block/qcow2/create.js';
import { openDisk } from '../../src/block/open.js';
import { checkImage, repairImage } from '../../src/block/check.js';
import { BlockError } from '../../src/block/errors.js';
import { H } from '../../src/block/qcow2/format.js';
import { ConcurrentWrites, pattern, rng, tempDir } from './helpers.js';

const dir = tempDir('qcow2');
after(() => rmSync(dir, { recursive: true, force: true }));

async function assertClean(path: string): Promise<void> {
  const c = await checkImage(path);
  assert.deepEqual([c.corruptions, c.leaks], [0, 0], `check ${path}:\n${c.messages.join('\n')}`);
}

async function readAll(path: string, size: number): Promise<Uint8Array> {
  const d = await openDisk(path, { readonly: true });
  const b = new Uint8Array(size);
  await d.read(0, b);
  await d.close();
  return b;
}

const variants: { name: string; opts: Omit<Qcow2CreateOptions, 'size'>; cache?: number }[] = [
  { name: 'v3, 64 KiB clusters', opts: {} },
  { name: 'v2, 4 KiB clusters', opts: { version: 2, clusterBits: 12 } },
  { name: 'v3, 512-byte clusters, 2-bit refcounts, L2 cache of 2', opts: { clusterBits: 9, refcountOrder: 1 }, cache: 2 },
  { name: 'v3, 1 KiB clusters, 8-bit refcounts', opts: { clusterBits: 10, refcountOrder: 3 } },
  { name: 'v3, 4 KiB clusters, 64-bit refcounts', opts: { clusterBits: 12, refcountOrder: 6 } },
];

for (const v of variants) {
  test(`qcow2 (${v.name}): random concurrent I/O matches a model, across reopen, check clean`, async () => {
    const path = join(dir, `model-${v.name.replace(/\W+/g, '_')}.qcow2`);
    const size = 3 << 20;
    await createQcow2(path, { size, ...v.opts });
    const model = new Uint8Array(size);
    const r = rng(v.name.length * 31);
    for (let round = 0; round < 3; round++) {
      const d = await Qcow2Image.open(path, { l2CacheTables: v.cache });
      const writes = new ConcurrentWrites(d, model);
      for (let i = 0; i < 40; i++) {
        const len = 1 + r(100_000);
        const off = r(size - len);
        const op = r(12);
        if (op < 8) {
          await writes.write(off, pattern(len, round * 100 + i));
          continue;
        }
        await writes.drain();
        if (op === 8) {
          await d.writeZeroes(off, len, r(2) === 0);
          model.fill(0, off, off + len);
        } else if (op === 9) {
          await d.discard(off, len);
          const back = new Uint8Array(len);
          await d.read(off, back);
          model.set(back, off);
        } else if (op === 10) {
          await d.flush();
        } else {
          const back = new Uint8Array(len);
          await d.read(off, back);
          assert.ok(Buffer.from(back).equals(Buffer.from(model.subarray(off, off + len))), `read at ${off}+${len}`);
        }
      }
      await writes.drain();
      await d.close();
      await assertClean(path);
      assert.ok(Buffer.from(await readAll(path, size)).equals(Buffer.from(model)), `round ${round}: contents after reopen`);
    }
  });
}

test('qcow2: discard and write-zeroes free clusters that later writes reuse (file does not grow)', async () => {
  const path = join(dir, 'reuse.qcow2');
  await createQcow2(path, { size: 4 << 20 });
  const d = await Qcow2Image.open(path);
  await d.write(0, pattern(4 << 20, 1));
  await d.flush();
  const full = readFileSync(path).length;
  await d.discard(0, 4 << 20);
  await d.flush();
  const z = new Uint8Array(65536);
  await d.read(0, z);
  assert.ok(z.every((x) => x === 0), 'discarded clusters without a backing file read as zeros');
  await d.write(0, pattern(4 << 20, 2));
  await d.close();
  assert.ok(readFileSync(path).length <= full, 'freed clusters were reused');
  await assertClean(path);
});

test('qcow2: write-zeroes without unmap keeps the allocation as a zero cluster (v3)', async () => {
  const path = join(dir, 'zero-alloc.qcow2');
  await createQcow2(path, { size: 1 << 20 });
  const d = await Qcow2Image.open(path);
  await d.write(0, pattern(1 << 20, 4));
  await d.writeZeroes(65536, 65536, false);
  const m = await d.lookup(1);
  assert.equal(m.kind, 'zero');
  assert.ok(m.kind === 'zero' && m.hostOffset !== 0, 'preallocated zero cluster');
  // A partial write into it fills the rest with zeros in place.
  await d.write(65536 + 100, new Uint8Array([9, 9, 9]));
  const back = new Uint8Array(65536);
  await d.read(65536, back);
  assert.deepEqual([...back.subarray(99, 104)], [0, 9, 9, 9, 0]);
  assert.equal(back.reduce((a, x) => a + x, 0), 27);
  await d.close();
  await assertClean(path);
});

test('qcow2: backing chain (raw ← qcow2 ← qcow2): reads fall through, partial writes copy-on-write, zeroes hide the backing', async () => {
  const base = join(dir, 'base.raw');
  const baseData = pattern(2 << 20, 5);
  writeFileSync(base, baseData);
  const mid = join(dir, 'mid.qcow2');
  const top = join(dir, 'top.qcow2');
  await createQcow2(mid, { size: 3 << 20, backingFile: 'base.raw', backingFormat: 'raw', clusterBits: 12 });
  const m = await openDisk(mid);
  await m.write(1 << 20, new Uint8Array(4096).fill(0x22));
  await m.close();
  await createQcow2(top, { size: 3 << 20, backingFile: mid, backingFormat: 'qcow2' }); // absolute name
  const model = new Uint8Array(3 << 20);
  model.set(baseData);
  model.fill(0x22, 1 << 20, (1 << 20) + 4096);
  const d = await openDisk(top);
  assert.ok(Buffer.from(await (async () => { const b = new Uint8Array(3 << 20); await d.read(0, b); return b; })()).equals(Buffer.from(model)));
  await d.write((1 << 20) - 10, new Uint8Array(20).fill(0x33));
  model.fill(0x33, (1 << 20) - 10, (1 << 20) + 10);
  await d.writeZeroes(0, 65536, true);
  model.fill(0, 0, 65536);
  await d.discard(131072, 65536); // v3 + backing: becomes a zero cluster too
  model.fill(0, 131072, 196608);
  await d.close();
  assert.ok(Buffer.from(await readAll(top, 3 << 20)).equals(Buffer.from(model)));
  assert.ok(readFileSync(base).equals(Buffer.from(baseData)), 'the base is untouched');
  await assertClean(top);
  await assertClean(mid);
  // No backing format recorded: the backing file's format is probed (here: qcow2 mid, raw base).
  const probed = join(dir, 'probed-top.qcow2');
  await createQcow2(probed, { size: 3 << 20, backingFile: 'mid.qcow2' });
  const pd = await openDisk(probed, { readonly: true });
  assert.equal(pd.format, 'qcow2');
  const pb = new Uint8Array(3 << 20);
  await pd.read(0, pb);
  await pd.close();
  const viaMid = new Uint8Array(3 << 20);
  viaMid.set(baseData);
  viaMid.fill(0x22, 1 << 20, (1 << 20) + 4096);
  assert.ok(Buffer.from(pb).equals(Buffer.from(viaMid)));
});

test('qcow2: missing backing files and unknown backing formats are clear errors', async () => {
  const p = join(dir, 'orphan.qcow2');
  await createQcow2(p, { size: 1 << 20, backingFile: 'nowhere.qcow2', backingFormat: 'qcow2' });
  await assert.rejects(openDisk(p), (e: Error) => e instanceof BlockError && /nowhere\.qcow2.*no such file/.test(e.message));
  const q = join(dir, 'vmdk-backed.qcow2');
  await createQcow2(q, { size: 1 << 20, backingFile: 'base.raw', backingFormat: 'vmdk' });
  await assert.rejects(openDisk(q), /backing file format .*"vmdk"/);
  const n = join(dir, 'nbd-backed.qcow2');
  await createQcow2(n, { size: 1 << 20, backingFile: 'nbd://example:10809/x' });
  await assert.rejects(openDisk(n), /not a local file/);
});

test('qcow2: corrupt and snapshot images open read-only only, dirty ones are repaired first, autoclear bits are cleared on write', async () => {
  const p = join(dir, 'flags.qcow2');
  for (const [bit, msg] of [[1, /corrupt/]] as const) {
    await createQcow2(p, { size: 1 << 20 });
    const b = readFileSync(p);
    b[H.incompatibleFeatures + 7] |= 1 << bit;
    writeFileSync(p, b);
    await assert.rejects(openDisk(p), msg);
    const ro = await openDisk(p, { readonly: true });
    await assert.rejects(ro.write(0, new Uint8Array(1)), /read-only/);
    await ro.close();
    // A full repair finds nothing wrong and clears the bit.
    await repairImage(p, 'all');
    await (await openDisk(p)).close();
  }
  // A dirty image: only the low-level open refuses it; openDisk rebuilds the refcounts first.
  await createQcow2(p, { size: 1 << 20 });
  const w = await openDisk(p);
  await w.write(0, pattern(300_000, 3));
  await w.close();
  const dirty = readFileSync(p);
  dirty[H.incompatibleFeatures + 7] |= 1;
  const rb = Number(dirty.readBigUInt64BE(Number(dirty.readBigUInt64BE(H.refcountTableOffset))));
  dirty.fill(0, rb + 8, rb + 64); // lazy refcounts never written
  writeFileSync(p, dirty);
  await assert.rejects(Qcow2Image.open(p), /dirty/);
  assert.ok((await checkImage(p)).corruptions > 0);
  const fixed = await openDisk(p);
  await fixed.write(500_000, pattern(1000, 4));
  await fixed.close();
  await assertClean(p);
  const back = await readAll(p, 300_000);
  assert.ok(Buffer.from(back).equals(Buffer.from(pattern(300_000, 3))));
  assert.equal(readFileSync(p)[H.incompatibleFeatures + 7] & 1, 0, 'dirty bit cleared');

  await createQcow2(p, { size: 1 << 20 });
  const b = readFileSync(p);
  b.writeUInt32BE(1, H.nbSnapshots);
  b.writeBigUInt64BE(0x30000n, H.snapshotsOffset);
  writeFileSync(p, b);
  await assert.rejects(openDisk(p), /internal snapshots/);
  await createQcow2(p, { size: 1 << 20 });
  const c = readFileSync(p);
  c[H.autoclearFeatures + 7] = 0x3;
  writeFileSync(p, c);
  const d = await openDisk(p);
  await d.close();
  assert.equal(readFileSync(p).readBigUInt64BE(H.autoclearFeatures), 0n);
});

test('qcow2: requests outside the disk and after close are BlockErrors', async () => {
  const p = join(dir, 'bounds.qcow2');
  await createQcow2(p, { size: 1 << 20 });
  const d = await openDisk(p);
  await assert.rejects(d.read((1 << 20) - 10, new Uint8Array(20)), BlockError);
  await assert.rejects(d.write(-5, new Uint8Array(1)), BlockError);
  await d.close();
  await assert.rejects(d.read(0, new Uint8Array(1)), /closed/);
});

test('qcow2: flushes, discards and allocating writes all in flight at once: no deadlock, consistent result', { timeout: 20_000 }, async () => {
  const path = join(dir, 'storm.qcow2');
  await createQcow2(path, { size: 8 << 20, clusterBits: 12 });
  const d = await Qcow2Image.open(path, { l2CacheTables: 1 });
  const stripe = 65536;
  // Stripes 64..127 hold data first; then, all unawaited: new writes to stripes 0..63, discards
  // of the first half of stripes 64..127, reads of both, and a flush after every few requests.
  for (let s = 64; s < 128; s++) await d.write(s * stripe, pattern(stripe, s));
  const ops: Promise<void>[] = [];
  for (let s = 0; s < 64; s++) {
    ops.push(d.write(s * stripe, pattern(stripe, s)));
    ops.push(d.discard((64 + s) * stripe, stripe / 2));
    ops.push(d.read((64 + s) * stripe + stripe / 2, new Uint8Array(4096)));
    if (s % 4 === 0) ops.push(d.flush());
  }
  await Promise.all(ops);
  await d.flush();
  for (let s = 0; s < 128; s++) {
    const b = new Uint8Array(stripe);
    await d.read(s * stripe, b);
    const want = pattern(stripe, s);
    if (s >= 64) want.fill(0, 0, stripe / 2);
    assert.ok(Buffer.from(b).equals(Buffer.from(want)), `stripe ${s}`);
  }
  await d.close();
  const c = await checkImage(path);
  assert.deepEqual([c.corruptions, c.leaks], [0, 0], c.messages.join('\n'));
});

/** `data` cut at random points into 1-6 buffers (some empty), as a request's segments would be. */
function randomSplit(data: Uint8Array, r: (n: number) => number): Uint8Array[] {
  const cuts = Array.from({ length: r(6) }, () => r(data.length + 1)).sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const c of [...cuts, data.length]) {
    parts.push(data.subarray(at, c));
    at = c;
  }
  return parts;
}

// (Small clusters with L2 tables evicted all the time; the first cluster must hold the backing name.)
for (const [k, v] of [variants[0], { ...variants[1], name: `${variants[1].name}, L2 cache of 2`, cache: 2 }].entries()) {
  test(`qcow2 (${v.name}): readv/writev with random splits match a model, over a backing file`, async () => {
    const size = 3 << 20;
    const baseName = `vb${k}.raw`; // short and relative: it must fit in a 512-byte first cluster
    const base = join(dir, baseName);
    const baseData = pattern(2 << 20, 77);
    writeFileSync(base, baseData);
    const path = join(dir, `vec-${v.name.replace(/\W+/g, '_')}.qcow2`);
    await createQcow2(path, { size, backingFile: baseName, backingFormat: 'raw', ...v.opts });
    const model = new Uint8Array(size);
    model.set(baseData);
    const r = rng(v.name.length * 17 + 3);
    const d = await Qcow2Image.open(path, { l2CacheTables: v.cache, openBacking: async () => (await openDisk(base, { format: 'raw', readonly: true })) });
    const writes = new ConcurrentWrites({ write: (off, data) => d.writev(off, randomSplit(data, r)) }, model);
    for (let i = 0; i < 120; i++) {
      const len = 1 + r(200_000);
      const off = r(size - len);
      if (r(3) < 2) {
        await writes.write(off, pattern(len, 1000 + i));
        continue;
      }
      await writes.drain();
      if (r(4) === 0) await d.writeZeroes(off, len, r(2) === 0).then(() => model.fill(0, off, off + len));
      const back = new Uint8Array(len).fill(0xee);
      await d.readv(off, randomSplit(back, r));
      assert.ok(Buffer.from(back).equals(Buffer.from(model.subarray(off, off + len))), `readv at ${off}+${len}`);
    }
    await writes.drain();
    await d.close();
    await assertClean(path);
    assert.ok(Buffer.from(await readAll(path, size)).equals(Buffer.from(model)), 'contents after reopen');
  });
}
