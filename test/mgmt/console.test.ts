// `tsvm console NAME` from another process: attach, detach, attach again, detach again while the
// guest prints a counter. Every number must reach the host exactly once across the sessions
// (output while attached is delivered; output between sessions waits in the backlog), and the
// VM keeps running throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assembleGuest } from '../support/guests.js';
import { kvmUnavailableReason } from '../support/tsvm-process.js';
import { counterNumbers, gapIn, killAll, ps, sleep, start, tempRoot, tsvm } from './mgmt-support.js';

const noKvm = kvmUnavailableReason();

test('mgmt: the console attaches and detaches twice without losing or repeating guest output', { skip: noKvm }, async () => {
  const root = tempRoot('cons');
  const counter = await assembleGuest('counter');
  const r = await tsvm(root, 'run', '--detach', '--name', 'talker', '--firmware', counter, '--accel', 'kvm', '--memory', '16M');
  assert.equal(r.status, 0, r.stderr);
  try {
    let all = '';
    for (let session = 0; session < 2; session++) {
      const c = start(root, ['console', 'talker'], { stdin: 'pipe' });
      // Attached for a while: at least a few new numbers arrive live.
      await c.waitFor(/\n(\d+)\n[^]*\n\d+\n[^]*\n\d+\n[^]*\n\d+\n/, 10_000);
      await sleep(200);
      c.child.stdin!.end(); // end of input: detach
      const res = await c.result;
      assert.equal(res.status, 0, res.stderr);
      assert.match(res.stderr, /attached to talker's console/);
      assert.match(res.stderr, /detached from talker/);
      all += res.stdout;
      await sleep(300); // detached: the guest keeps printing into the backlog
      const rows = await ps(root);
      assert.deepEqual(rows.map((x) => [x.name, x.state]), [['talker', 'running']], 'the VM keeps running after a detach');
    }
    const nums = counterNumbers(all);
    assert.equal(nums[0], 0, 'the first session starts with the backlog from boot');
    assert.ok(nums.length > 30, `only ${nums.length} numbers`);
    assert.equal(gapIn(nums), undefined, `numbers lost or repeated: ${gapIn(nums)}`);
    // Typing reaches the guest's UART (the counter ignores it; the API's counters see it).
    const typed = start(root, ['console', 'talker'], { stdin: 'pipe' });
    typed.child.stdin!.end('abc');
    assert.equal((await typed.result).status, 0);
    const rows = await ps(root);
    assert.equal(rows[0].metrics!.serial.rx_bytes, 3, 'the three typed bytes reached the UART');
  } finally {
    killAll(root);
  }
});
