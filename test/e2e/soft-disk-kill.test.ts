// Durability at the VMM level: what the guest saw completed after a flush survives killing tsvm
// with SIGKILL. The stock Debian kernel (software CPU) gets a raw disk (vda) and a qcow2 disk
// (vdb, made with `tsvm img create`), both 4 GiB and sparse. /init's script starts writers that
// keep both disks busy with O_DIRECT writes that are never flushed, then writes 256 KiB of random
// data at three offsets of each disk (in different qcow2 L2 tables: new L2 entries, refcounts and
// an L1 update must all reach the file) with O_DIRECT and fsync, which Linux turns into a
// virtio-blk FLUSH; once fsync has returned it prints the data's sha256 and a marker. The test
// kills tsvm the moment the marker reaches stdout, with the writers' requests in flight.
//
// Then: the raw image holds those bytes at those offsets; the qcow2 image has no corruption
// (`tsvm img check`: leaked clusters are allowed after a kill, status 3) and `tsvm img convert`
// to raw gives the same bytes. The data is random and the images start out empty, so only the
// guest's writes can make the checksum match.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findDefaultGuest } from '../support/guests.js';
import { runTsvm, startTsvm } from '../support/tsvm-process.js';

const BLOCK = 64 * 1024;
/** Where the flushed 256 KiB go, in 64 KiB blocks: the first 512 MiB, ~700 MiB, just past 2 GiB. */
const FLUSHED_AT = [16, 11200, 32769];
const FLUSHED_BYTES = 256 * 1024;

function readAt(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(length);
    const n = readSync(fd, b, 0, length, offset);
    return b.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('soft: data the guest flushed survives SIGKILL of tsvm mid-write (raw and qcow2 disks); qcow2 is not corrupt', { timeout: 600_000 }, async () => {
  const guest = await findDefaultGuest();
  const dir = mkdtempSync(join(tmpdir(), 'tsvm-kill-'));
  try {
    const raw = join(dir, 'raw.img');
    const qcow = join(dir, 'disk.qcow2');
    for (const [fmt, path] of [['raw', raw], ['qcow2', qcow]]) {
      const r = await runTsvm(['img', 'create', '-f', fmt, path, '4G'], { timeoutMs: 30_000 });
      assert.equal(r.status, 0, `img create ${fmt}: ${r.stderr}`);
    }
    const script = [
      'set -e',
      'dd if=/dev/urandom of=/tmp/flushed bs=64k count=4 2>/dev/null',
      'dd if=/dev/urandom of=/tmp/busy bs=64k count=4 2>/dev/null',
      // Unflushed writers, one per disk, 256 KiB per dd, then a pause (the software CPU is shared
      // with the flushing dd): in the L2 range of the first flushed blocks (100-8103) and far
      // above it (40000-65003), never over the flushed blocks.
      'for d in vda vdb; do',
      '  ( i=0; while :; do',
      '      dd if=/tmp/busy of=/dev/$d bs=64k seek=$((100 + i * 4 % 8000)) oflag=direct 2>/dev/null',
      '      dd if=/tmp/busy of=/dev/$d bs=64k seek=$((40000 + i * 4 % 25000)) oflag=direct 2>/dev/null',
      '      i=$((i + 1))',
      '      usleep 50000',
      '    done ) &',
      'done',
      'echo "writers started"',
      'for d in vda vdb; do',
      ...FLUSHED_AT.map((at) => `  dd if=/tmp/flushed of=/dev/$d bs=64k seek=${at} oflag=direct conv=fsync 2>/dev/null`),
      'done',
      'echo "flushed sum $(sha256sum < /tmp/flushed)"',
      // A second of unflushed writes (new qcow2 clusters whose metadata stays in memory) first.
      'sleep 1',
      'echo "flush-complete-marker"',
      'wait',
    ].join('\n');
    const run = startTsvm(
      ['run', '--accel', 'soft', '--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '256M',
        '--disk', `${raw},format=raw`, '--disk', `${qcow},format=qcow2`,
        '--append', `console=ttyS0 panic=-1 quiet tsvm.run64=${Buffer.from(script).toString('base64')}`],
      { timeoutMs: 540_000 },
    );
    try {
      await run.waitFor(/flush-complete-marker/, 480_000);
    } finally {
      run.child.kill('SIGKILL');
    }
    const r = await run.result;
    assert.equal(r.signal, 'SIGKILL', `tsvm was killed, not ended on its own (status ${r.status}); stderr:\n${r.stderr}`);
    assert.match(r.stdout, /writers started/);
    const sum = /flushed sum ([0-9a-f]{64})/.exec(r.stdout)?.[1];
    assert.ok(sum, `the guest printed the checksum; console:\n${r.stdout.slice(-2000)}`);
    assert.notEqual(sum, sha256(new Uint8Array(FLUSHED_BYTES)), 'the flushed data is not all zeros');

    for (const at of FLUSHED_AT) assert.equal(sha256(readAt(raw, at * BLOCK, FLUSHED_BYTES)), sum, `raw: the flushed data at block ${at}`);

    const check = await runTsvm(['img', 'check', qcow], { timeoutMs: 60_000 });
    assert.ok(check.status === 0 || check.status === 3, `img check: status ${check.status} (0 clean, 3 leaks only)\n${check.stdout}${check.stderr}`);
    const out = join(dir, 'qcow.raw');
    const conv = await runTsvm(['img', 'convert', '-O', 'raw', qcow, out], { timeoutMs: 120_000 });
    assert.equal(conv.status, 0, `img convert: ${conv.stderr}`);
    for (const at of FLUSHED_AT) assert.equal(sha256(readAt(out, at * BLOCK, FLUSHED_BYTES)), sum, `qcow2: the flushed data at block ${at}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
