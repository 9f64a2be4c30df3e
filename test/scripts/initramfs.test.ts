// The busybox initramfs (scripts/lib/initramfs.ts) and the default guest build
// (scripts/build-guests.ts), from real Debian packages fetched into the tsvm cache.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { xz } from '@napi-rs/lzma';
import { readCpio, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type CpioMember } from '../../scripts/lib/cpio.js';
import { toolPath } from '../../scripts/lib/debian.js';
import {
  buildInitramfs,
  decompressModule,
  INIT_STARTED_LINE,
  initScript,
  modinfo,
  moduleName,
  PROMPT,
  READY_LINE,
} from '../../scripts/lib/initramfs.js';
import { findDefaultGuest } from '../support/guests.js';

function index(members: CpioMember[]): Map<string, CpioMember> {
  return new Map(members.map((m) => [m.name, m]));
}

test('initramfs: busybox, applet links, /init and /dev/console', async () => {
  const busybox = await toolPath('busybox-static', 'bin/busybox');
  const fs = await buildInitramfs({ busybox, files: { 'etc/motd': 'hi\n' } });
  assert.deepEqual(fs.gz.subarray(0, 2), Buffer.from([0x1f, 0x8b]), 'gzip magic');
  const members = readCpio(gunzipSync(fs.gz));
  const by = index(members);

  const init = by.get('init');
  assert.ok(init, '/init is in the archive');
  assert.equal(init.mode, S_IFREG | 0o755);
  const script = init.data.toString();
  assert.match(script, /^#!\/bin\/sh\n/);
  assert.ok(script.includes(`echo "${INIT_STARTED_LINE}"`));
  assert.ok(script.includes(`echo "${READY_LINE}"`));
  assert.ok(script.includes(`PS1='${PROMPT}'`));

  const bb = by.get('bin/busybox');
  assert.ok(bb, '/bin/busybox is in the archive');
  assert.equal(bb.mode, S_IFREG | 0o755);
  assert.deepEqual(bb.data, await readFile(busybox));

  for (const applet of ['bin/sh', 'bin/mount', 'sbin/insmod', 'sbin/modprobe', 'sbin/poweroff', 'bin/cttyhack', 'usr/bin/setsid', 'bin/sed', 'bin/base64']) {
    const link = by.get(applet);
    assert.ok(link, `${applet} is in the archive`);
    assert.equal(link.mode & S_IFMT, S_IFLNK, `${applet} is a symlink`);
    assert.equal(link.data.toString(), '/bin/busybox');
  }
  assert.ok(fs.applets.length > 200, `${fs.applets.length} applets`);

  const con = by.get('dev/console');
  assert.ok(con);
  assert.equal(con.mode & S_IFMT, S_IFCHR);
  assert.deepEqual([con.rdevMajor, con.rdevMinor], [5, 1]);
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'root', 'etc']) assert.equal(by.get(d)?.mode && by.get(d)!.mode & S_IFMT, S_IFDIR, d);
  assert.equal(by.get('etc/motd')?.data.toString(), 'hi\n');

  // Linux's unpacker does not create parents: each directory must come before its contents.
  const seen = new Set<string>();
  for (const m of members) {
    const parent = m.name.includes('/') ? m.name.slice(0, m.name.lastIndexOf('/')) : '';
    if (parent) assert.ok(seen.has(parent), `${parent} precedes ${m.name}`);
    seen.add(m.name);
  }
});

test('initramfs: the same inputs give the same bytes', async () => {
  const busybox = await toolPath('busybox-static', 'bin/busybox');
  const a = await buildInitramfs({ busybox });
  const b = await buildInitramfs({ busybox });
  assert.ok(a.cpio.equals(b.cpio));
});

test('initramfs: /init is valid shell for busybox sh', async () => {
  const busybox = await toolPath('busybox-static', 'bin/busybox');
  const dir = await mkdtemp(join(tmpdir(), 'tsvm-init-'));
  try {
    await writeFile(join(dir, 'init'), initScript());
    const r = spawnSync(busybox, ['sh', '-n', join(dir, 'init')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('initramfs: compressed modules are decompressed on the host', async () => {
  const payload = Buffer.from('\x7fELF pretend module');
  assert.deepEqual(Buffer.from(await decompressModule(gzipSync(payload))), payload);
  assert.deepEqual(Buffer.from(await decompressModule(xz.compressSync(payload))), payload);
  assert.deepEqual(Buffer.from(await decompressModule(payload)), payload);
  assert.equal(moduleName('drivers/char/hw_random/virtio-rng.ko.xz'), 'virtio_rng');
  assert.equal(moduleName('virtio_blk.ko'), 'virtio_blk');
});

test('default guest: Debian cloud kernel and an initramfs with the virtio modules', async () => {
  const g = await findDefaultGuest();
  assert.match(g.kernelVersion, /^\d+\.\d+\.\d+-\d+-cloud-amd64$/);
  const kernel = await readFile(g.kernel);
  assert.equal(kernel.toString('latin1', 0x202, 0x206), 'HdrS', 'the kernel is a bzImage');

  const members = readCpio(gunzipSync(await readFile(g.initrd)));
  const by = index(members);
  assert.ok(by.has('init') && by.has('bin/busybox'));
  const order = by.get('etc/tsvm/modules')!.data.toString().trim().split('\n');
  assert.deepEqual(order, g.modules);
  const names = order.map(moduleName);
  for (const m of ['virtio', 'virtio_ring', 'virtio_pci', 'virtio_blk', 'virtio_net', 'net_failover', 'failover', 'virtio_rng']) {
    assert.ok(names.includes(m), `${m} is loaded`);
  }
  // Every module comes after everything it depends on.
  for (const [i, rel] of order.entries()) {
    const ko = by.get(`lib/modules/${rel}`);
    assert.ok(ko, `lib/modules/${rel} is in the archive`);
    const dep = modinfo(ko.data).find((s) => s.startsWith('depends='))!.slice('depends='.length);
    for (const d of dep.split(',').filter(Boolean)) {
      const j = names.indexOf(d.replace(/-/g, '_'));
      assert.ok(j >= 0 && j < i, `${names[i]} needs ${d} loaded before it`);
    }
  }
  assert.ok(by.has(`lib/modules/${g.kernelVersion}/modules.dep`));

  // A second call finds the cached build.
  const again = await findDefaultGuest();
  assert.equal(again.initrd, g.initrd);
  assert.equal(again.builtAt, g.builtAt);
});
