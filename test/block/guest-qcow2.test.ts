// A real guest on a qcow2 chain: the stock Debian kernel under the software CPU mounts an ext4
// file system from a qcow2 overlay whose base QEMU made, writes files, trims (discard), syncs and
// powers off. Afterwards `qemu-img check` finds the overlay clean, the base is untouched, and
// the files read back from `qemu-img convert -O raw` output with debugfs.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { findDefaultGuest } from '../support/guests.js';
import { runTsvm } from '../support/tsvm-process.js';
import { checkImage } from '../../src/block/check.js';
import { findQemuImg, runQemuImg, tempDir, type QemuImg } from './helpers.js';

const MKFS = ['/usr/sbin/mkfs.ext4', '/sbin/mkfs.ext4'].find((p) => existsSync(p));
const DEBUGFS = ['/usr/sbin/debugfs', '/sbin/debugfs'].find((p) => existsSync(p));
const found = await findQemuImg();
const skip =
  process.env.TSVM_SKIP_GUEST_TESTS ? 'TSVM_SKIP_GUEST_TESTS is set' :
  !MKFS || !DEBUGFS ? 'mkfs.ext4/debugfs (e2fsprogs) not installed on this host' :
  'skip' in found ? found.skip : false;
const dir = tempDir('guest');
after(() => rmSync(dir, { recursive: true, force: true }));

test('guest: Debian writes ext4 files into a qcow2 overlay on a QEMU-made base; qemu-img agrees', { skip, timeout: 600_000 }, async () => {
  const q = found as QemuImg;
  const guest = await findDefaultGuest();
  const raw = join(dir, 'fs.raw');
  const base = join(dir, 'base.qcow2');
  const top = join(dir, 'top.qcow2');
  execFileSync('truncate', ['-s', '64M', raw]);
  execFileSync(MKFS!, ['-q', '-F', '-L', 'tsvmq', raw]);
  assert.equal(runQemuImg(q, ['convert', '-O', 'qcow2', raw, base]).status, 0);
  assert.equal(runQemuImg(q, ['create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top]).status, 0);
  const baseBefore = readFileSync(base);
  const script = [
    'set -e',
    'mkdir -p /mnt/d',
    'mount -t ext4 /dev/vda /mnt/d',
    'echo "written by the guest into qcow2" > /mnt/d/hello.txt',
    'dd if=/dev/urandom of=/mnt/d/random.bin bs=4096 count=256 2>/dev/null',
    'sha256sum /mnt/d/random.bin',
    'dd if=/dev/urandom of=/mnt/d/gone.bin bs=4096 count=128 2>/dev/null',
    'sync',
    'rm /mnt/d/gone.bin',
    'fstrim /mnt/d || true',
    'sync',
    'umount /mnt/d',
    'echo guest-qcow2-ok',
  ].join('\n');
  const r = await runTsvm(
    ['run', '--accel', 'soft', '--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '256M',
      '--disk', `${top},format=qcow2`, '--append', `console=ttyS0 panic=-1 tsvm.run64=${Buffer.from(script).toString('base64')}`],
    { timeoutMs: 540_000 },
  );
  assert.equal(r.status, 0, `exit status; stderr:\n${r.stderr}\nconsole tail:\n${r.stdout.slice(-3000)}`);
  assert.match(r.stdout, /guest-qcow2-ok/);
  const guestSum = /([0-9a-f]{64})\s+\/mnt\/d\/random\.bin/.exec(r.stdout)?.[1];
  assert.ok(guestSum);

  const chk = runQemuImg(q, ['check', top]);
  assert.equal(chk.status, 0, chk.stdout + chk.stderr);
  const ours = await checkImage(top);
  assert.deepEqual([ours.corruptions, ours.leaks], [0, 0], ours.messages.join('\n'));
  assert.ok(readFileSync(base).equals(baseBefore), 'the base image is untouched');
  const out = join(dir, 'out.raw');
  assert.equal(runQemuImg(q, ['convert', '-O', 'raw', top, out]).status, 0);
  const hello = execFileSync(DEBUGFS!, ['-R', 'cat /hello.txt', out], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.equal(hello, 'written by the guest into qcow2\n');
  const random = execFileSync(DEBUGFS!, ['-R', 'cat /random.bin', out], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 4 << 20 });
  assert.equal(createHash('sha256').update(random).digest('hex'), guestSum);
  execFileSync('/usr/sbin/e2fsck', ['-n', '-f', out], { stdio: 'ignore' });
});
