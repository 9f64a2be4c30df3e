// The raw backend: positional I/O, bounds, read-only, discard/write-zeroes, and the probed-raw
// safety rule (no qcow2 magic written into sector 0 of a raw image whose format was guessed).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RawBackend } from '../../src/block/raw.js';
import { openDisk, probeFormat } from '../../src/block/open.js';
import { BlockError } from '../../src/block/errors.js';
import { pattern, tempDir } from './helpers.js';

const dir = tempDir('raw');
after(() => rmSync(dir, { recursive: true, force: true }));

test('raw: concurrent writes and reads land at their offsets; flush; size', async () => {
  const p = join(dir, 'a.raw');
  writeFileSync(p, new Uint8Array(1 << 20));
  const d = await RawBackend.open(p);
  assert.equal(d.sizeBytes, 1 << 20);
  assert.equal(d.readonly, false);
  const model = new Uint8Array(1 << 20);
  const writes: Promise<void>[] = [];
  for (let i = 0; i < 32; i++) {
    const data = pattern(10_000, i);
    model.set(data, i * 30_000);
    writes.push(d.write(i * 30_000, data));
  }
  await Promise.all(writes);
  await d.flush();
  const back = new Uint8Array(1 << 20);
  await d.read(0, back);
  assert.ok(Buffer.from(back).equals(Buffer.from(model)));
  await d.close();
  assert.ok(readFileSync(p).equals(Buffer.from(model)));
});

test('raw: out-of-range requests and writes to read-only disks are BlockErrors', async () => {
  const p = join(dir, 'b.raw');
  writeFileSync(p, new Uint8Array(4096));
  const d = await RawBackend.open(p, { readonly: true, serial: 'disk-b' });
  assert.equal(d.serial, 'disk-b');
  await assert.rejects(d.read(4000, new Uint8Array(200)), BlockError);
  await assert.rejects(d.read(-1, new Uint8Array(1)), BlockError);
  await assert.rejects(d.write(0, new Uint8Array(1)), /read-only/);
  await assert.rejects(d.discard(0, 512), /read-only/);
  await d.close();
  await assert.rejects(RawBackend.open(join(dir, 'missing.raw')), /no such file/);
});

test('raw: discard and write-zeroes read back as zeros, size unchanged', async () => {
  const p = join(dir, 'c.raw');
  writeFileSync(p, pattern(1 << 20, 3));
  const d = await RawBackend.open(p);
  await d.discard(65536, 131072);
  await d.writeZeroes(500_000, 1000, false);
  await d.writeZeroes(700_000, 70_000, true);
  await d.close();
  const b = readFileSync(p);
  assert.equal(statSync(p).size, 1 << 20);
  assert.ok(b.subarray(65536, 65536 + 131072).every((x) => x === 0));
  assert.ok(b.subarray(500_000, 501_000).every((x) => x === 0));
  assert.ok(b.subarray(700_000, 770_000).every((x) => x === 0));
  assert.ok(b.subarray(0, 65536).equals(Buffer.from(pattern(1 << 20, 3).subarray(0, 65536))));
});

test('raw: probing; a probed raw image refuses to get a qcow2 magic in sector 0', async () => {
  const p = join(dir, 'd.raw');
  writeFileSync(p, new Uint8Array(65536));
  assert.equal(await probeFormat(p), 'raw');
  const warnings: string[] = [];
  const d = await openDisk(p, { onWarning: (w) => warnings.push(w) });
  assert.equal(d.format, 'raw');
  assert.match(warnings.join('\n'), /probed as raw/);
  await assert.rejects(d.write(0, new Uint8Array([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3])), /qcow2 header/);
  // Writing the magic piecewise is caught too.
  await d.write(0, new Uint8Array([0x51, 0x46]));
  await assert.rejects(d.write(2, new Uint8Array([0x49, 0xfb])), /qcow2 header/);
  await d.write(4, new Uint8Array([1, 2, 3])); // elsewhere is fine
  await d.close();
  // With the format given explicitly, the guest owns all of its disk.
  const e = await openDisk(p, { format: 'raw' });
  await e.write(0, new Uint8Array([0x51, 0x46, 0x49, 0xfb]));
  await e.close();
  assert.equal(await probeFormat(p), 'qcow2');
});
