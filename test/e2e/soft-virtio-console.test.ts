// `tsvm run --console virtio` end to end under the software CPU: the stock Debian kernel with
// console=hvc0 loads virtio_console from the initramfs, /init's shell runs on hvc0, and stdin and
// stdout of tsvm are that console. COM1 is still there: what the guest writes to ttyS0 comes out
// on stderr, not in the console's stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findDefaultGuest } from '../support/guests.js';
import { guestShell, startTsvm } from '../support/tsvm-process.js';

const READY = 'tsvm-initramfs: ready';
const PROMPT = '~ # ';

test('soft: --console virtio: the shell runs on hvc0; input typed before the guest was ready, commands, COM1 on stderr, poweroff exits 0', { timeout: 600_000 }, async () => {
  const guest = await findDefaultGuest();
  const run = startTsvm(
    ['run', '--accel', 'soft', '--console', 'virtio', '--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '256M', '--append', 'console=hvc0 panic=-1'],
    // Typed at once, long before the guest has a driver, buffers or a shell: the VMM and the
    // device keep it until the guest's console is up, and the shell runs it.
    { timeoutMs: 540_000, input: 'echo "early-""$((20+3))"\n' },
  );
  const sh = guestShell(run);
  try {
    await run.waitFor(READY, 480_000);
    await run.waitFor(PROMPT, 30_000);
    await run.waitFor(/(^|\n)early-23\r?\n/, 30_000);

    // The shell's terminal and the kernel's console are hvc0, the virtio-console.
    assert.match(await sh('tty'), /(^|\n)\/dev\/hvc0\r?\n/);
    assert.match(await sh('cat /sys/class/tty/console/active'), /(^|\n)hvc0\r?\n/);
    assert.match(await sh('readlink /proc/$$/fd/0; readlink /proc/$$/fd/1'), /\/dev\/hvc0\r?\n\/dev\/hvc0\r?\n/);
    assert.match(await sh('echo $((6*7))'), /(^|\n)42\r?\n/);
    assert.match(await sh('ls /sys/bus/virtio/drivers/virtio_console'), /\bvirtio\d+\b/, 'virtio_console drives a device');

    // COM1 is not the console: its output goes to stderr (the typed command, split in two, is
    // echoed on hvc0; the joined words appear only where ttyS0's bytes go).
    await sh('echo "to-""serial" > /dev/ttyS0');
    assert.ok(!run.stdout().includes('to-serial'), 'ttyS0 output is not in the console stream');
    for (let i = 0; i < 50 && !run.stderr().includes('to-serial'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(run.stderr(), /to-serial/);
    assert.doesNotMatch(run.stderr(), /tsvm-initramfs/, 'nothing of /init reaches COM1');

    run.child.stdin!.write('poweroff\n');
    const r = await run.result;
    assert.equal(r.status, 0, `exit status; stderr:\n${r.stderr}`);
    assert.match(r.stdout, /reboot: Power down/);
  } finally {
    if (run.child.exitCode === null) run.child.kill('SIGKILL');
    await run.result;
  }
});
