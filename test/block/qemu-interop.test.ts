// Interoperability with QEMU's own tools (Debian's qemu-utils: qemu-img, qemu-io): images QEMU
// makes are read and written by tsvm, and afterwards `qemu-img check` finds nothing wrong and
// `qemu-img convert -O raw` gives back exactly the bytes written; images tsvm makes pass
// `qemu-img check`; backing chains and compressed clusters made by QEMU read correctly.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDisk } from '../../src/block/open.js';
import { createImage } from '../../src/block/create.js';
import { checkImage } from '../../src/block/check.js';
import { ConcurrentWrites, findQemuImg, pattern, rng, runQemuImg, runQemuIo, tempDir, tsvmImg, type QemuImg } from './helpers.js';

const found = await findQemuImg();
const skip = 'skip' in found ? found.skip : false;
const q = found as QemuImg;
const dir = tempDir('interop');
after(() => rmSync(dir, { recursive: true, force: true }));

function qemuImg(args: string[]): string {
  const r = runQemuImg(q, args);
  assert.equal(r.status, 0, `qemu-img ${args.join(' ')} failed (${r.status}): ${r.stdout}${r.stderr}`);
  return r.stdout;
}

function assertQemuCheckClean(path: string): void {
  const r = runQemuImg(q, ['check', path]);
  assert.equal(r.status, 0, `qemu-img check ${path}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /No errors were found/);
}

function qemuToRaw(path: string): Uint8Array {
  const out = `${path}.raw`;
  qemuImg(['convert', '-O', 'raw', path, out]);
  return readFileSync(out);
}

/** Random writes (some concurrent, some partial-cluster), discards and zeroes, mirrored in `model`. */
async function exercise(path: string, model: Uint8Array, seed: number, ops = 60): Promise<void> {
  const d = await openDisk(path);
  const r = rng(seed);
  const size = model.length;
  const writes = new ConcurrentWrites(d, model);
  for (let i = 0; i < ops; i++) {
    const len = 1 + r(3 * 65536);
    const off = r(size - len);
    const kind = r(10);
    if (kind < 7) {
      await writes.write(off, pattern(len, seed * 1000 + i));
    } else {
      await writes.drain();
      if (kind === 7) {
        await d.writeZeroes!(off, len, r(2) === 1);
        model.fill(0, off, off + len);
      } else if (kind === 8) {
        // Discard leaves contents undefined: mirror what we read back.
        await d.discard!(off, len);
        const back = new Uint8Array(len);
        await d.read(off, back);
        model.set(back, off);
      } else {
        await d.flush();
      }
    }
    if (writes.inFlight >= 8) await writes.drain();
  }
  await writes.drain();
  const back = new Uint8Array(size);
  await d.read(0, back);
  assert.ok(Buffer.from(back).equals(Buffer.from(model)), 'tsvm reads back what it wrote');
  await d.close();
}

for (const variant of [
  { name: 'v3 64k clusters', opts: [] as string[] },
  { name: 'v2 (compat=0.10)', opts: ['-o', 'compat=0.10'] },
  { name: 'v3 4k clusters, 1-bit refcounts', opts: ['-o', 'cluster_size=4096,refcount_bits=1'] },
  { name: 'v3 512-byte clusters, 64-bit refcounts', opts: ['-o', 'cluster_size=512,refcount_bits=64'] },
]) {
  test(`interop: qemu-img create (${variant.name}) → tsvm writes → qemu-img check clean, convert equal`, { skip }, async () => {
    const path = join(dir, `made-by-qemu-${variant.name.replace(/\W+/g, '_')}.qcow2`);
    const size = 24 << 20;
    qemuImg(['create', '-f', 'qcow2', ...variant.opts, path, String(size)]);
    const model = new Uint8Array(size);
    await exercise(path, model, 7);
    assertQemuCheckClean(path);
    assert.ok(Buffer.from(qemuToRaw(path)).equals(Buffer.from(model)), 'qemu-img convert gives the bytes tsvm wrote');
    // And our own check agrees.
    const c = await checkImage(path);
    assert.deepEqual([c.corruptions, c.leaks], [0, 0], c.messages.join('\n'));
  });
}

test('interop: refcount table growth (512-byte clusters, > 8 MiB written) stays clean for qemu-img', { skip }, async () => {
  const path = join(dir, 'grow.qcow2');
  const size = 16 << 20;
  qemuImg(['create', '-f', 'qcow2', '-o', 'cluster_size=512', path, String(size)]);
  const data = pattern(size, 3);
  const d = await openDisk(path);
  for (let off = 0; off < size; off += 1 << 20) await d.write(off, data.subarray(off, off + (1 << 20)));
  await d.close();
  assertQemuCheckClean(path);
  assert.ok(Buffer.from(qemuToRaw(path)).equals(Buffer.from(data)));
});

test('interop: images made by tsvm img create pass qemu-img check, and qemu-img info agrees', { skip }, async () => {
  const plain = join(dir, 'tsvm-made.qcow2');
  const r = tsvmImg(['create', '-f', 'qcow2', plain, '100M']);
  assert.equal(r.status, 0, r.stderr);
  assertQemuCheckClean(plain);
  const info = JSON.parse(qemuImg(['info', '--output=json', plain])) as Record<string, unknown>;
  assert.equal(info['virtual-size'], 100 << 20);
  assert.equal(info['cluster-size'], 65536);

  const v2 = join(dir, 'tsvm-made-v2.qcow2');
  await createImage(v2, { format: 'qcow2', size: 5 << 20, version: 2, clusterSize: 4096 });
  assertQemuCheckClean(v2);

  const big = join(dir, 'tsvm-made-small-clusters.qcow2');
  await createImage(big, { format: 'qcow2', size: 2 ** 32, clusterSize: 512 });
  assertQemuCheckClean(big);

  const overlay = join(dir, 'tsvm-overlay.qcow2');
  assert.equal(tsvmImg(['create', '-f', 'qcow2', '-b', 'tsvm-made.qcow2', overlay]).status, 0);
  assertQemuCheckClean(overlay);
  const oi = JSON.parse(qemuImg(['info', '--output=json', overlay])) as Record<string, unknown>;
  assert.equal(oi['backing-filename'], 'tsvm-made.qcow2');
  assert.equal(oi['backing-filename-format'], 'qcow2');
  assert.equal(oi['virtual-size'], 100 << 20);

  // Written by tsvm, then checked and converted by qemu-img.
  const model = new Uint8Array(5 << 20);
  await exercise(v2, model, 11, 40);
  assertQemuCheckClean(v2);
  assert.ok(Buffer.from(qemuToRaw(v2)).equals(Buffer.from(model)));
});

test('interop: a qemu-img backing chain base ← mid ← top reads correctly; writes go to top', { skip }, async () => {
  const size = 8 << 20;
  const base = join(dir, 'chain-base.qcow2');
  const mid = join(dir, 'chain-mid.qcow2');
  const top = join(dir, 'chain-top.qcow2');
  qemuImg(['create', '-f', 'qcow2', base, String(size)]);
  runQemuIo(q, ['-c', 'write -P 0x11 0 4M', base]);
  qemuImg(['create', '-f', 'qcow2', '-b', 'chain-base.qcow2', '-F', 'qcow2', mid]);
  runQemuIo(q, ['-c', 'write -P 0x22 1M 1M', mid]);
  qemuImg(['create', '-f', 'qcow2', '-b', 'chain-mid.qcow2', '-F', 'qcow2', top]);
  runQemuIo(q, ['-c', 'write -P 0x33 1536K 4K', top]);
  const model = new Uint8Array(size);
  model.fill(0x11, 0, 4 << 20);
  model.fill(0x22, 1 << 20, 2 << 20);
  model.fill(0x33, 1536 << 10, (1536 << 10) + 4096);

  const baseBefore = readFileSync(base);
  const midBefore = readFileSync(mid);
  const d = await openDisk(top);
  const back = new Uint8Array(size);
  await d.read(0, back);
  assert.ok(Buffer.from(back).equals(Buffer.from(model)), 'the chain reads as base + mid + top');
  // A partial-cluster write over data that lives in mid and base: copy-on-write into top.
  const data = pattern(5000, 9);
  const at = (1 << 20) - 2500;
  await d.write(at, data);
  model.set(data, at);
  await d.writeZeroes!(3 << 20, 65536, false);
  model.fill(0, 3 << 20, (3 << 20) + 65536);
  await d.close();
  assert.ok(readFileSync(base).equals(baseBefore), 'base unchanged');
  assert.ok(readFileSync(mid).equals(midBefore), 'mid unchanged');
  assertQemuCheckClean(top);
  assert.ok(Buffer.from(qemuToRaw(top)).equals(Buffer.from(model)), 'qemu-img sees the same chain contents');
});

test('interop: compressed clusters (qemu-img convert -c) read correctly, and can be overwritten', { skip }, async () => {
  const size = 4 << 20;
  const raw = join(dir, 'compress-src.raw');
  const model = new Uint8Array(size);
  // Compressible text-like data with some random clusters and some zero ones.
  for (let i = 0; i < size; i++) model[i] = 'tsvm compresses well. '.charCodeAt(i % 22) ^ ((i >> 16) & 3);
  model.set(pattern(200_000, 5), 1 << 20);
  model.fill(0, 3 << 20, (3 << 20) + 300_000);
  writeFileSync(raw, model);
  const c = join(dir, 'compressed.qcow2');
  qemuImg(['convert', '-c', '-O', 'qcow2', raw, c]);
  const map = qemuImg(['check', c]);
  assert.match(map, /compressed clusters/);
  const d = await openDisk(c);
  const back = new Uint8Array(size);
  await d.read(0, back);
  assert.ok(Buffer.from(back).equals(Buffer.from(model)), 'compressed image reads as the source');
  const data = pattern(1000, 77);
  await d.write(100_000, data);
  model.set(data, 100_000);
  await d.close();
  assertQemuCheckClean(c);
  assert.ok(Buffer.from(qemuToRaw(c)).equals(Buffer.from(model)));

  // zstd (compression_type 1): qemu-img compresses, tsvm reads and overwrites.
  const zs = join(dir, 'compressed-zstd.qcow2');
  qemuImg(['convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', raw, zs]);
  const zmodel = new Uint8Array(readFileSync(raw));
  const zd = await openDisk(zs);
  const zb = new Uint8Array(size);
  await zd.read(0, zb);
  assert.ok(Buffer.from(zb).equals(Buffer.from(zmodel)), 'zstd-compressed image reads as the source');
  await zd.write(70_000, data);
  zmodel.set(data, 70_000);
  await zd.close();
  assertQemuCheckClean(zs);
  assert.ok(Buffer.from(qemuToRaw(zs)).equals(Buffer.from(zmodel)));

  // And the other way: tsvm compresses, qemu-img reads.
  const ours = join(dir, 'compressed-by-tsvm.qcow2');
  const r = tsvmImg(['convert', '-c', '-O', 'qcow2', '-o', 'cluster_size=4096', raw, ours]);
  assert.equal(r.status, 0, r.stderr);
  const chk = runQemuImg(q, ['check', ours]);
  assert.equal(chk.status, 0, chk.stdout + chk.stderr);
  assert.match(chk.stdout, /[1-9][0-9.]*% compressed clusters/);
  const src = readFileSync(raw);
  assert.ok(Buffer.from(qemuToRaw(ours)).equals(src), 'qemu-img decompresses what tsvm compressed');
});

test('interop: tsvm img convert output matches qemu-img convert, both ways', { skip }, async () => {
  const src = join(dir, 'conv-src.qcow2');
  qemuImg(['create', '-f', 'qcow2', src, String(6 << 20)]);
  const model = new Uint8Array(6 << 20);
  await exercise(src, model, 23, 30);
  const ours = join(dir, 'conv-ours.qcow2');
  assert.equal(tsvmImg(['convert', '-O', 'qcow2', src, ours]).status, 0);
  assertQemuCheckClean(ours);
  assert.ok(Buffer.from(qemuToRaw(ours)).equals(Buffer.from(model)));
  const oursRaw = join(dir, 'conv-ours.raw');
  assert.equal(tsvmImg(['convert', '-O', 'raw', src, oursRaw]).status, 0);
  assert.ok(readFileSync(oursRaw).equals(Buffer.from(model)));
  // qemu-img's opinion of our check on its own images: both clean.
  const r = tsvmImg(['check', src]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('interop: a dirty image (lazy refcounts, qemu-io aborted) is repaired when opened for writing', { skip }, async () => {
  const p = join(dir, 'lazy.qcow2');
  qemuImg(['create', '-f', 'qcow2', '-o', 'lazy_refcounts=on', p, String(16 << 20)]);
  runQemuIo(q, ['-c', 'write -P 0x44 0 1M', '-c', 'abort', p]);
  assert.notEqual(runQemuImg(q, ['check', p]).status, 0, 'qemu-io left the image dirty and inconsistent');
  const ro = await openDisk(p, { readonly: true });
  const b = new Uint8Array(1 << 20);
  await ro.read(0, b);
  await ro.close();
  assert.ok(b.every((x) => x === 0x44), 'read-only open reads the dirty image as is');
  const warnings: string[] = [];
  const d = await openDisk(p, { onWarning: (w) => warnings.push(w) });
  assert.match(warnings.join(), /dirty; rebuilding/);
  await d.write(2 << 20, new Uint8Array(65536).fill(0x55));
  await d.close();
  assertQemuCheckClean(p);
  const raw = qemuToRaw(p);
  assert.ok(raw.subarray(0, 1 << 20).every((x) => x === 0x44));
  assert.ok(raw.subarray(2 << 20, (2 << 20) + 65536).every((x) => x === 0x55));
  const info = JSON.parse(qemuImg(['info', '--output=json', p])) as { 'dirty-flag'?: boolean };
  assert.equal(info['dirty-flag'], false);
});
