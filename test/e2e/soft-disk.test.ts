// virtio-blk end to end under the software CPU: an ext4 image made on the host with mkfs.ext4 is
// attached with --disk; the stock Debian kernel loads virtio_pci/virtio_blk from the initramfs,
// sees /dev/vda, mounts it, writes files, syncs and powers off; the host reads them back (debugfs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findDefaultGuest } from '../support/guests.js';
import { runTsvm } from '../support/tsvm-process.js';

const MKFS = ['/usr/sbin/mkfs.ext4', '/sbin/mkfs.ext4'].find((p) => existsSync(p));
const DEBUGFS = ['/usr/sbin/debugfs', '/sbin/debugfs'].find((p) => existsSync(p));
const noTools = !MKFS || !DEBUGFS ? 'mkfs.ext4/debugfs (e2fsprogs) not installed on this host' : undefined;

test('soft: the guest mounts an ext4 virtio disk, writes files, and the host reads them back', { skip: noTools, timeout: 600_000 }, async () => {
  const guest = await findDefaultGuest();
  const dir = mkdtempSync(join(tmpdir(), 'tsvm-disk-'));
  try {
    const img = join(dir, 'disk.img');
    execFileSync('truncate', ['-s', '64M', img]);
    execFileSync(MKFS!, ['-q', '-F', '-L', 'tsvmtest', img]);
    // The script runs in the guest; its output markers are checked below.
    const script = [
      'set -e',
      'cat /sys/block/vda/size',
      'mkdir -p /mnt/d',
      'mount -t ext4 /dev/vda /mnt/d',
      'echo "written by the guest" > /mnt/d/hello.txt',
      'dd if=/dev/urandom of=/mnt/d/random.bin bs=4096 count=256 2>/dev/null',
      'sha256sum /mnt/d/random.bin',
      'sync',
      'umount /mnt/d',
      'echo guest-disk-ok',
    ].join('\n');
    const r = await runTsvm(
      ['run', '--accel', 'soft', '--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '256M',
        '--disk', `${img},format=raw`, '--append', `console=ttyS0 panic=-1 tsvm.run64=${Buffer.from(script).toString('base64')}`],
      { timeoutMs: 540_000 },
    );
    assert.equal(r.status, 0, `exit status; stderr:\n${r.stderr}\nconsole tail:\n${r.stdout.slice(-3000)}`);
    assert.match(r.stdout, /virtio_blk virtio\d+: \[vda\] 131072 512-byte logical blocks/);
    assert.match(r.stdout, /\n131072\r?\n/, '/sys/block/vda/size in 512-byte sectors');
    assert.match(r.stdout, /guest-disk-ok/);
    const guestSum = /([0-9a-f]{64})\s+\/mnt\/d\/random\.bin/.exec(r.stdout)?.[1];
    assert.ok(guestSum, 'the guest printed the checksum of what it wrote');

    const hello = execFileSync(DEBUGFS!, ['-R', 'cat /hello.txt', img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.equal(hello, 'written by the guest\n');
    const random = execFileSync(DEBUGFS!, ['-R', 'cat /random.bin', img], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 4 << 20 });
    assert.equal(random.length, 256 * 4096);
    const { createHash } = await import('node:crypto');
    assert.equal(createHash('sha256').update(random).digest('hex'), guestSum, 'the host reads back the bytes the guest wrote');
    // The file system is clean: the guest unmounted it before powering off.
    execFileSync('/usr/sbin/e2fsck', ['-n', '-f', img], { stdio: 'ignore' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
