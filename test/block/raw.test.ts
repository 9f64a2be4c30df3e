// The raw backend: positional I/O, bounds, read-only, discard/write-zeroes, and the probed-raw
// safety rule (no qcow2 magic written into sector 0 of a raw image whose format was guessed).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RawBackend } from '../../src/block/raw.js';
import { openDisk, probeFormat } from '../../src/block/open.js';
import { BlockError } from '../../src/block/errors.js';
import { ImageFile } from '../../src/block/image-file.js';
import { NOWAIT_MAX_BUFFERS, readNowait } from '../../src/block/nowait.js';
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

test('raw: readv/writev move back-to-back ranges of any sizes; bounds and the probed-raw rule apply', async () => {
  const p = join(dir, 'v.raw');
  writeFileSync(p, new Uint8Array(65536));
  const d = await RawBackend.open(p);
  const parts = [pattern(1, 1), pattern(4095, 2), new Uint8Array(0), pattern(512, 3), pattern(7000, 4)];
  const whole = Buffer.concat(parts);
  await d.writev(1000, parts);
  assert.ok(readFileSync(p).subarray(1000, 1000 + whole.length).equals(whole));
  const back = [new Uint8Array(3), new Uint8Array(0), new Uint8Array(9000), new Uint8Array(2605)];
  await d.readv(1000, back);
  assert.ok(Buffer.concat(back).equals(whole));
  await assert.rejects(d.readv(60_000, [new Uint8Array(4096), new Uint8Array(4096)]), BlockError);
  await assert.rejects(d.writev(65_000, [new Uint8Array(512), new Uint8Array(512)]), BlockError);
  await d.close();
  const probed = await openDisk(p, { onWarning: () => {} });
  assert.equal(probed.format, 'raw');
  await assert.rejects(probed.writev!(0, [new Uint8Array([0x51, 0x46]), new Uint8Array([0x49, 0xfb, 0])]), /qcow2 header/);
  await probed.writev!(0, [new Uint8Array([0x51, 0x46]), new Uint8Array([0x49, 0])]);
  await probed.close();
});

test('raw: ImageFile.readv past the end of the file reads zeros', async () => {
  const p = join(dir, 'short.raw');
  writeFileSync(p, pattern(1000, 5));
  const f = await ImageFile.open(p, true);
  const a = new Uint8Array(50).fill(0xee);
  const b = new Uint8Array(200).fill(0xee);
  await f.readv(900, [a, b]);
  assert.ok(Buffer.from(a).equals(Buffer.from(pattern(1000, 5).subarray(900, 950))));
  assert.ok(Buffer.from(b.subarray(0, 50)).equals(Buffer.from(pattern(1000, 5).subarray(950))));
  assert.ok(b.subarray(50).every((x) => x === 0));
  await f.close();
});

test('raw: readNowait copies what the page cache holds, in place, and declines what it cannot take', async () => {
  const p = join(dir, 'cached.raw');
  const data = pattern(20_000, 6);
  writeFileSync(p, data); // just written: in the page cache
  const f = await ImageFile.open(p, true);
  const a = new Uint8Array(new SharedArrayBuffer(12_000), 1000, 3000);
  const b = new Uint8Array(5000);
  const n = readNowait(f.fd, [a, b], 100);
  if (n !== 'unsupported') {
    assert.equal(n, 8000);
    assert.ok(Buffer.from(a).equals(Buffer.from(data.subarray(100, 3100))));
    assert.ok(Buffer.from(b).equals(Buffer.from(data.subarray(3100, 8100))));
    assert.equal(readNowait(f.fd, [new Uint8Array(100)], 19_950), 50, 'short at the end of the file');
  }
  assert.equal(readNowait(f.fd, Array.from({ length: NOWAIT_MAX_BUFFERS + 1 }, () => new Uint8Array(1)), 0), 'unsupported');
  await f.close();
});
