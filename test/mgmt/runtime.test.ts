// The runtime directory and the console socket on their own (no VM, no KVM): names are claimed
// atomically, stale directories are told from live ones and cleaned, and the console's backlog
// and detach protocol lose nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ConsoleHub } from '../../src/vmm/runtime-console.js';
import { findVm, isAlive, listRuntime, processStartTime, RuntimeDir } from '../../src/vmm/runtime-dir.js';
import { dirNames, tempRoot } from './mgmt-support.js';

function deadPid(): number {
  return Number(execFileSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).trim());
}

test('runtime dir: claim, uniqueness, stale directories, removal', () => {
  const root = tempRoot('rt');
  const a = RuntimeDir.claim('one', { root });
  const info = JSON.parse(readFileSync(join(root, 'one', 'info.json'), 'utf8')) as { pid: number; procStart: string; apiSocket: string; consoleSocket: string };
  assert.equal(info.pid, process.pid);
  assert.equal(info.procStart, processStartTime(process.pid));
  assert.equal(info.apiSocket, join(root, 'one', 'api.sock'));
  assert.equal(info.consoleSocket, join(root, 'one', 'console.sock'));
  // A live owner keeps its name.
  assert.throws(() => RuntimeDir.claim('one', { root }), /a VM named "one" is already running \(pid \d+\)/);
  // --api-sock elsewhere is recorded.
  const b = RuntimeDir.claim('two', { root, apiSocket: '/tmp/elsewhere.sock' });
  assert.equal(b.apiSocket, '/tmp/elsewhere.sock');
  // Stale: a dead pid; a live pid with another start time (reused); no info at all.
  for (const [name, pid, start] of [['dead', deadPid(), '1'], ['reused', process.pid, '1']] as const) {
    mkdirSync(join(root, name));
    writeFileSync(join(root, name, 'info.json'), JSON.stringify({ name, pid, procStart: start }));
  }
  mkdirSync(join(root, 'empty'));
  writeFileSync(join(root, 'not-a-vm.sock'), ''); // a file in the root is none of ps's business
  assert.equal(isAlive({ pid: process.pid, procStart: '1' }), false);
  const listed = listRuntime(root).map((e) => [e.name, e.status]);
  assert.deepEqual(listed, [['dead', 'gone'], ['empty', 'gone'], ['one', 'live'], ['reused', 'gone'], ['two', 'live']]);
  assert.deepEqual(dirNames(root), ['not-a-vm.sock', 'one', 'two']);
  // A stale directory does not block its name.
  mkdirSync(join(root, 'three'));
  writeFileSync(join(root, 'three', 'info.json'), JSON.stringify({ name: 'three', pid: deadPid(), procStart: '' }));
  const c = RuntimeDir.claim('three', { root });
  assert.equal(findVm('three', root).info.pid, process.pid);
  assert.throws(() => findVm('nope', root), /no VM named "nope"/);
  for (const d of [a, b, c]) d.remove();
  assert.deepEqual(dirNames(root), ['not-a-vm.sock']);
  assert.throws(() => RuntimeDir.claim('x'.repeat(64), { root: join(root, 'z'.repeat(60)) }), /longer than 107 bytes/);
});

/** A console client speaking the detach protocol: reads until the server closes after our FIN. */
function client(path: string, detachAfterMs: number, input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ path, allowHalfOpen: true });
    let got = '';
    s.setEncoding('latin1').on('data', (d: string) => { got += d; });
    s.on('connect', () => {
      if (input) s.write(input);
      setTimeout(() => s.end(), detachAfterMs);
    });
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

test('console socket: backlog while detached, live output while attached, nothing lost or repeated across detaches', async () => {
  const root = tempRoot('hub');
  const path = join(root, 'console.sock');
  const typed: string[] = [];
  const hub = new ConsoleHub({ onInput: (b) => typed.push(Buffer.from(b).toString('latin1')), backlogBytes: 1 << 20 });
  await hub.listen(path);
  let n = 0;
  const timer = setInterval(() => hub.output(Buffer.from(`${n++}\n`)), 1);
  try {
    let all = '';
    for (let i = 0; i < 3; i++) {
      all += await client(path, 60, i === 1 ? 'hello' : undefined);
      await new Promise((r) => setTimeout(r, 40)); // detached: output piles up in the backlog
    }
    clearInterval(timer);
    all += await client(path, 20); // whatever was produced since
    const nums = all.split('\n').filter(Boolean).map(Number);
    assert.equal(nums[0], 0);
    nums.forEach((v, i) => assert.equal(v, i, `line ${i}`));
    assert.equal(nums.length, n, 'every line reached exactly one session');
    assert.deepEqual(typed, ['hello']);
    assert.equal(hub.stats.attaches, 4);
  } finally {
    clearInterval(timer);
    await hub.close();
  }
  assert.equal(existsSync(path), false);
});

test('console socket: the backlog keeps the newest bytes and counts what it dropped', async () => {
  const root = tempRoot('hub2');
  const path = join(root, 'c.sock');
  const hub = new ConsoleHub({ onInput: () => {}, backlogBytes: 10 });
  await hub.listen(path);
  hub.output(Buffer.from('0123456789'));
  hub.output(Buffer.from('abcdef'));
  assert.equal(await client(path, 20), '6789abcdef');
  assert.equal(hub.stats.backlogDropped, 6);
  await hub.close();
});
