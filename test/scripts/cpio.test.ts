// The newc cpio writer: checked byte by byte with an independent reader written here, by the
// library's own reader, and by the system's `cpio -t` when the host has it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CpioWriter, readCpio, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, writeCpio } from '../../scripts/lib/cpio.js';

interface Parsed {
  name: string;
  fields: number[];
  data: Buffer;
  headerOffset: number;
}

/** A deliberately separate reader: strict about the magic, padding and the trailer. */
function parseNewc(buf: Buffer): Parsed[] {
  const out: Parsed[] = [];
  let off = 0;
  for (;;) {
    assert.equal(off % 4, 0, `header at ${off} is 4-byte aligned`);
    assert.equal(buf.toString('latin1', off, off + 6), '070701', `magic at ${off}`);
    const fields: number[] = [];
    for (let i = 0; i < 13; i++) {
      const hex = buf.toString('latin1', off + 6 + 8 * i, off + 14 + 8 * i);
      assert.match(hex, /^[0-9a-f]{8}$/);
      fields.push(parseInt(hex, 16));
    }
    const namesize = fields[11];
    const name = buf.toString('utf8', off + 110, off + 110 + namesize - 1);
    assert.equal(buf[off + 110 + namesize - 1], 0, 'name is NUL-terminated');
    let p = off + 110 + namesize;
    while (p % 4 !== 0) assert.equal(buf[p++], 0, 'name padding is zero');
    const data = buf.subarray(p, p + fields[6]);
    p += fields[6];
    while (p % 4 !== 0) assert.equal(buf[p++], 0, 'data padding is zero');
    out.push({ name, fields, data, headerOffset: off });
    off = p;
    if (name === 'TRAILER!!!') {
      assert.equal(off, buf.length, 'nothing after the trailer');
      return out;
    }
  }
}

function sample(): Buffer {
  const w = new CpioWriter({ mtime: 1234567890 });
  w.directory('bin');
  w.file('bin/hello', '#!/bin/sh\necho hi\n', 0o755);
  w.symlink('bin/sh', '/bin/busybox');
  w.charDevice('dev/console', 5, 1, 0o600);
  w.file('a/b/c/deep.txt', 'x'); // parents a, a/b, a/b/c come first
  w.file('empty', '');
  w.file('odd', Buffer.from([1, 2, 3, 4, 5]));
  return w.finish();
}

test('cpio: newc headers, padding and trailer are well formed', () => {
  const members = parseNewc(sample());
  const names = members.map((m) => m.name);
  assert.deepEqual(names, ['bin', 'bin/hello', 'bin/sh', 'dev', 'dev/console', 'a', 'a/b', 'a/b/c', 'a/b/c/deep.txt', 'empty', 'odd', 'TRAILER!!!']);
  const by = new Map(members.map((m) => [m.name, m]));

  const hello = by.get('bin/hello')!;
  assert.equal(hello.fields[1], S_IFREG | 0o755);
  assert.equal(hello.fields[5], 1234567890, 'mtime');
  assert.equal(hello.data.toString(), '#!/bin/sh\necho hi\n');
  assert.equal(hello.fields[12], 0, 'check field is 0 in newc');

  const sh = by.get('bin/sh')!;
  assert.equal(sh.fields[1] & S_IFMT, S_IFLNK);
  assert.equal(sh.data.toString(), '/bin/busybox');

  const con = by.get('dev/console')!;
  assert.equal(con.fields[1], S_IFCHR | 0o600);
  assert.deepEqual([con.fields[9], con.fields[10]], [5, 1], 'rdevmajor/rdevminor');
  assert.equal(con.fields[6], 0, 'device has no data');

  assert.equal(by.get('a/b')!.fields[1], S_IFDIR | 0o755);
  assert.deepEqual([...by.get('odd')!.data], [1, 2, 3, 4, 5]);
  assert.equal(by.get('empty')!.data.length, 0);

  const inos = members.slice(0, -1).map((m) => m.fields[0]);
  assert.equal(new Set(inos).size, inos.length, 'inode numbers are unique');
  const trailer = members.at(-1)!;
  assert.equal(trailer.fields[4], 1, 'trailer nlink');
  assert.equal(trailer.fields[6], 0, 'trailer size');
});

test('cpio: every name length lands on the right padding', () => {
  // Names of 1..8 characters cover every header+name alignment; data of 0..4 bytes every data one.
  const entries = [];
  for (let n = 1; n <= 8; n++) {
    entries.push({ name: 'f'.repeat(n), mode: S_IFREG | 0o644, data: Buffer.alloc(n % 5, 0x41 + n) });
  }
  const archive = writeCpio(entries);
  const parsed = parseNewc(archive);
  assert.equal(parsed.length, 9);
  for (let n = 1; n <= 8; n++) {
    assert.equal(parsed[n - 1].name, 'f'.repeat(n));
    assert.deepEqual(parsed[n - 1].data, Buffer.alloc(n % 5, 0x41 + n));
  }
});

test('cpio: readCpio reads back what CpioWriter wrote', () => {
  const members = readCpio(sample());
  assert.equal(members.length, 11);
  const deep = members.find((m) => m.name === 'a/b/c/deep.txt')!;
  assert.equal(deep.data.toString(), 'x');
  assert.equal(deep.mode, S_IFREG | 0o644);
  const con = members.find((m) => m.name === 'dev/console')!;
  assert.equal(con.rdevMajor, 5);
  assert.equal(con.rdevMinor, 1);
  assert.throws(() => readCpio(Buffer.from('070702' + '0'.repeat(104))), /bad magic/);
});

test('cpio: duplicates are refused, repeated directories are not', () => {
  const w = new CpioWriter();
  w.directory('etc');
  w.directory('etc');
  w.file('etc/x', 'x');
  assert.throws(() => w.file('etc/x', 'y'), /duplicate/);
  assert.throws(() => w.file('../escape', 'y'), /\.\./);
  assert.equal(readCpio(w.finish()).length, 2);
});

test('cpio: the system cpio lists the archive', (t) => {
  const probe = spawnSync('cpio', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    t.skip('no cpio on this host (the reader above checks the format instead)');
    return;
  }
  const r = spawnSync('cpio', ['-t', '--quiet'], { input: sample(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), ['bin', 'bin/hello', 'bin/sh', 'dev', 'dev/console', 'a', 'a/b', 'a/b/c', 'a/b/c/deep.txt', 'empty', 'odd']);
});
