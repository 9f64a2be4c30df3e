// `tsvm img create|info|check|convert` as a user runs it (imgCommand in a child process): output,
// exit statuses (check: 0 clean, 2 corruptions, 3 leaks), one-line errors.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDisk } from '../../src/block/open.js';
import { parseSize } from '../../src/cli/img-command.js';
import { H } from '../../src/block/qcow2/format.js';
import { pattern, tempDir, tsvmImg } from './helpers.js';

const dir = tempDir('img');
after(() => rmSync(dir, { recursive: true, force: true }));

test('img: parseSize takes qemu-img suffixes', () => {
  assert.equal(parseSize('1048576'), 1 << 20);
  assert.equal(parseSize('10G'), 10 * 2 ** 30);
  assert.equal(parseSize('512M'), 512 << 20);
  assert.equal(parseSize('64k'), 65536);
  assert.equal(parseSize('1.5K'), 1536);
  assert.equal(parseSize('2MiB'), 2 << 20);
  assert.throws(() => parseSize('lots'), /not a size/);
});

test('img create / info (text and --json) for raw, qcow2 and an overlay', () => {
  const raw = join(dir, 'disk.raw');
  let r = tsvmImg(['create', '-f', 'raw', raw, '3M']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(statSync(raw).size, 3 << 20);
  const q = join(dir, 'disk.qcow2');
  r = tsvmImg(['create', q, '1G']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Formatting .*fmt=qcow2 size=1073741824/);
  r = tsvmImg(['info', q]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /file format: qcow2/);
  assert.match(r.stdout, /virtual size: 1 GiB \(1073741824 bytes\)/);
  assert.match(r.stdout, /cluster_size: 65536/);
  const o = join(dir, 'overlay.qcow2');
  r = tsvmImg(['create', '-f', 'qcow2', '-b', 'disk.qcow2', '-F', 'qcow2', o]);
  assert.equal(r.status, 0, r.stderr);
  r = tsvmImg(['info', '--json', o]);
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(info.format, 'qcow2');
  assert.equal(info['virtual-size'], 2 ** 30);
  assert.equal(info['backing-filename'], 'disk.qcow2');
  assert.equal(info['full-backing-filename'], q);
  assert.equal(info['backing-filename-format'], 'qcow2');
  assert.equal((info['backing-image'] as Record<string, unknown>).format, 'qcow2');
  r = tsvmImg(['create', '-f', 'qcow2', '-b', 'disk.raw', join(dir, 'on-raw.qcow2')]);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(tsvmImg(['info', '--json', join(dir, 'on-raw.qcow2')]).stdout) as Record<string, unknown>;
  assert.equal(j['backing-filename-format'], 'raw', 'the probed backing format is recorded');
  assert.equal(j['virtual-size'], 3 << 20);
});

test('img check: exit 0 clean, 3 for leaks, 2 for corruption, 63 for raw', async () => {
  const q = join(dir, 'check.qcow2');
  assert.equal(tsvmImg(['create', q, '4M']).status, 0);
  const d = await openDisk(q);
  await d.write(0, pattern(1 << 20, 1));
  await d.close();
  let r = tsvmImg(['check', q]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /No errors were found on the image/);

  // A leak: a cluster past everything, counted in the refcount block but referenced by nothing.
  const b = readFileSync(q);
  const rb = Number(b.readBigUInt64BE(Number(b.readBigUInt64BE(H.refcountTableOffset))));
  const leaked = Math.ceil(b.length / 65536);
  b.writeUInt16BE(1, rb + leaked * 2);
  writeFileSync(q, Buffer.concat([b, Buffer.alloc(65536)]));
  r = tsvmImg(['check', q]);
  assert.equal(r.status, 3, r.stdout + r.stderr);
  assert.match(r.stdout, /1 leaked clusters were found/);

  // A corruption: a data cluster's refcount dropped to 0.
  const c = readFileSync(q);
  c.writeUInt16BE(0, rb + (leaked - 1) * 2);
  writeFileSync(q, c);
  r = tsvmImg(['check', q]);
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stdout, /ERROR cluster \d+ refcount=0 reference=1/);
  assert.match(r.stdout, /errors were found on the image/);

  // Repair: -r leaks does not fix the corruption, -r all fixes everything.
  r = tsvmImg(['check', '-r', 'leaks', q]);
  assert.equal(r.status, 2, r.stdout + r.stderr);
  r = tsvmImg(['check', '-r', 'all', q]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /found and repaired/);
  assert.match(r.stdout, /No errors were found/);
  const e = await openDisk(q, { readonly: true });
  const back = new Uint8Array(1 << 20);
  await e.read(0, back);
  await e.close();
  assert.ok(Buffer.from(back).equals(Buffer.from(pattern(1 << 20, 1))), 'data intact after repair');

  const raw = join(dir, 'check.raw');
  writeFileSync(raw, new Uint8Array(4096));
  r = tsvmImg(['check', raw]);
  assert.equal(r.status, 63);
});

test('img convert: qcow2 → raw → qcow2 keeps the bytes and stays sparse', async () => {
  const src = join(dir, 'conv.qcow2');
  assert.equal(tsvmImg(['create', src, '8M']).status, 0);
  const data = pattern(300_000, 8);
  const d = await openDisk(src);
  await d.write(5_000_000, data);
  await d.close();
  const raw = join(dir, 'conv.raw');
  let r = tsvmImg(['convert', '-O', 'raw', src, raw]);
  assert.equal(r.status, 0, r.stderr);
  const bytes = readFileSync(raw);
  assert.equal(bytes.length, 8 << 20);
  assert.ok(bytes.subarray(5_000_000, 5_300_000).equals(Buffer.from(data)));
  assert.ok(statSync(raw).blocks * 512 < 2 << 20, 'the raw output is sparse');
  const back = join(dir, 'conv2.qcow2');
  r = tsvmImg(['convert', '-f', 'raw', '-O', 'qcow2', raw, back]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(statSync(back).size < 2 << 20, 'zero clusters are not allocated');
  const e = await openDisk(back, { readonly: true });
  const b = new Uint8Array(8 << 20);
  await e.read(0, b);
  await e.close();
  assert.ok(Buffer.from(b).equals(bytes));
  assert.equal(tsvmImg(['check', back]).status, 0);

  const packed = join(dir, 'conv-c.qcow2');
  r = tsvmImg(['convert', '-c', '-O', 'qcow2', src, packed]);
  assert.equal(r.status, 0, r.stderr);
  const pc = tsvmImg(['check', packed]);
  assert.equal(pc.status, 0, pc.stdout);
  assert.match(pc.stdout, /[1-9][0-9.]*% compressed clusters/);
  const f = await openDisk(packed, { readonly: true });
  const c = new Uint8Array(8 << 20);
  await f.read(0, c);
  await f.close();
  assert.ok(Buffer.from(c).equals(bytes), 'compressed copy reads back');
});

test('img: mistakes are one clear line and exit 1', () => {
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown img command "frobnicate"/],
    [['create', join(dir, 'x.qcow2')], /no size given/],
    [['create', '-f', 'vmdk', join(dir, 'x.vmdk'), '1M'], /-f "vmdk" is not a format/],
    [['create', join(dir, 'x.qcow2'), 'huge'], /"huge" is not a size/],
    [['create', '-b', 'missing.qcow2', join(dir, 'y.qcow2')], /missing\.qcow2: .*no such file/],
    [['info', join(dir, 'nope.qcow2')], /nope\.qcow2: cannot open: no such file/],
    [['check', '--bogus', 'x'], /Unknown option '--bogus'/],
    [['convert', '-O', 'qcow2', join(dir, 'nope'), join(dir, 'out')], /no such file/],
  ];
  const bad = join(dir, 'bad.qcow2');
  writeFileSync(bad, Buffer.concat([Buffer.from('QFI\xfb', 'latin1'), Buffer.alloc(200, 0xff)]));
  cases.push([['info', bad], /bad\.qcow2: .*(version|corrupt)/]);
  for (const [args, msg] of cases) {
    const r = tsvmImg(args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, msg, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  const h = tsvmImg(['--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /Usage: tsvm img/);
});
