// Several VMs managed as processes: started in the background, listed, paused and resumed, one
// stopped cleanly through its ACPI power button, one killed with `tsvm kill`, one killed with
// SIGKILL behind tsvm's back; the runtime directory and `tsvm ps` must agree at every step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assembleGuest } from '../support/guests.js';
import { kvmUnavailableReason } from '../support/tsvm-process.js';
import { dirNames, killAll, ps, running, sleep, start, tempRoot, tsvm, type PsRow } from './mgmt-support.js';

const noKvm = kvmUnavailableReason();

/** ps lists exactly the directories, every listed process is alive, and states are as expected. */
async function agree(root: string, expected: Record<string, string>): Promise<PsRow[]> {
  const rows = await ps(root);
  const live = rows.filter((r) => r.state !== 'gone');
  assert.deepEqual(live.map((r) => r.name).sort(), dirNames(root), 'ps and the runtime directory list the same VMs');
  assert.deepEqual(Object.fromEntries(rows.map((r) => [r.name, r.state])), expected);
  for (const r of live) {
    const info = JSON.parse(readFileSync(join(root, r.name, 'info.json'), 'utf8')) as { pid: number };
    assert.equal(r.pid, info.pid);
    assert.ok(running(r.pid!), `${r.name}'s process ${r.pid} runs`);
  }
  return rows;
}

function txBytes(rows: PsRow[], name: string): number {
  return rows.find((r) => r.name === name)!.metrics!.serial.tx_bytes;
}

test('mgmt: start three VMs, list, pause/resume, stop gracefully, kill, SIGKILL; ps and the runtime directory agree', { skip: noKvm }, async () => {
  const root = tempRoot('life');
  const counter = await assembleGuest('counter');
  const button = await assembleGuest('power-button');
  const common = ['--accel', 'kvm', '--memory', '16M'];
  try {
    await lifecycle(root, counter, button, common);
  } finally {
    killAll(root);
  }
});

async function lifecycle(root: string, counter: string, button: string, common: string[]): Promise<void> {

  // Three VMs in the background: `run --detach` prints the name once the VM runs.
  const started = await Promise.all([
    tsvm(root, 'run', '--detach', '--name', 'alpha', '--firmware', counter, ...common),
    tsvm(root, 'run', '--detach', '--name', 'beta', '--firmware', button, ...common),
    tsvm(root, 'run', '--detach', '--name', 'gamma', '--firmware', counter, ...common, '--cpus', '2'),
  ]);
  for (const [i, name] of ['alpha', 'beta', 'gamma'].entries()) {
    assert.equal(started[i].status, 0, started[i].stderr);
    assert.equal(started[i].stdout, `${name}\n`);
  }
  let rows = await agree(root, { alpha: 'running', beta: 'running', gamma: 'running' });
  const gamma = rows.find((r) => r.name === 'gamma')!;
  assert.equal(gamma.vcpus, 2);
  assert.equal(gamma.memory_mib, 16);
  assert.equal(gamma.accel, 'kvm');
  assert.equal(execFileSync('ps', ['-o', 'comm=', '-p', String(gamma.pid)], { encoding: 'utf8' }).trim(), 'tsvm:gamma');

  // The table form.
  const table = await tsvm(root, 'ps');
  assert.match(table.stdout, /^NAME\s+PID\s+STATE\s+CPUS\s+MEMORY\s+ACCEL\s+UPTIME\n/);
  assert.match(table.stdout, /\nalpha\s+\d+\s+running\s+1\s+16M\s+kvm\s+\d+s\n/);

  // A name is unique while its VM lives.
  const dup = await tsvm(root, 'run', '--detach', '--name', 'alpha', '--firmware', counter, ...common);
  assert.equal(dup.status, 1);
  assert.match(dup.stderr, /a VM named "alpha" is already running \(pid \d+\)/);

  // Pause alpha: its guest stops printing; resume: it prints again.
  const paused = await tsvm(root, 'pause', 'alpha');
  assert.equal(paused.stdout, 'alpha\n', paused.stderr);
  // An exit in flight when the pause came completes; then the count stands still.
  let pausedAt = -1;
  for (let i = 0; i < 25; i++) {
    rows = await agree(root, { alpha: 'paused', beta: 'running', gamma: 'running' });
    if (txBytes(rows, 'alpha') === pausedAt) break;
    pausedAt = txBytes(rows, 'alpha');
    await sleep(100);
  }
  await sleep(300);
  rows = await agree(root, { alpha: 'paused', beta: 'running', gamma: 'running' });
  assert.equal(txBytes(rows, 'alpha'), pausedAt, 'a paused guest prints nothing');
  const resumed = await tsvm(root, 'resume', 'alpha');
  assert.equal(resumed.stdout, 'alpha\n', resumed.stderr);
  await sleep(300);
  rows = await agree(root, { alpha: 'running', beta: 'running', gamma: 'running' });
  assert.ok(txBytes(rows, 'alpha') > pausedAt, 'a resumed guest prints again');

  // Stop beta gracefully: it listens to the power button and powers off; its console shows it.
  const watch = start(root, ['console', 'beta'], { stdin: 'pipe' });
  await watch.waitFor(/waiting for the power button\n/, 10_000);
  const stop = await tsvm(root, 'stop', 'beta', '--timeout', '5');
  assert.equal(stop.status, 0, stop.stderr);
  assert.equal(stop.stdout, 'beta\n');
  const w = await watch.result;
  assert.match(w.stdout, /power button pressed\n/);
  assert.match(w.stderr, /console closed \(the VM stopped\)/);
  await agree(root, { alpha: 'running', gamma: 'running' });

  // Kill gamma with tsvm kill.
  const gammaPid = gamma.pid!;
  const killed = await tsvm(root, 'kill', 'gamma');
  assert.equal(killed.stdout, 'gamma\n', killed.stderr);
  assert.equal(running(gammaPid), false);
  await agree(root, { alpha: 'running' });

  // SIGKILL alpha behind tsvm's back: the next ps shows it as gone and cleans its directory.
  const alphaPid = rows.find((r) => r.name === 'alpha')!.pid!;
  process.kill(alphaPid, 'SIGKILL');
  for (let i = 0; i < 100 && running(alphaPid); i++) await sleep(20);
  assert.deepEqual(dirNames(root), ['alpha'], 'the killed VM left its directory behind');
  const after = await ps(root);
  assert.deepEqual(after.map((r) => [r.name, r.state, r.pid]), [['alpha', 'gone', alphaPid]]);
  assert.deepEqual(dirNames(root), [], 'ps removed the stale directory');
  assert.deepEqual(await ps(root), []);

  // Commands on a VM that does not exist say so.
  const missing = await tsvm(root, 'pause', 'alpha');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no VM named "alpha"/);
}

test('mgmt: a stale directory never blocks its name, and is never mistaken for a live VM', { skip: noKvm }, async () => {
  const root = tempRoot('stale');
  const counter = await assembleGuest('counter');
  // A directory left by a process that is gone (pid of a process that has exited).
  const deadPid = Number(execFileSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).trim());
  mkdirSync(join(root, 'delta'));
  writeFileSync(join(root, 'delta', 'info.json'), JSON.stringify({ name: 'delta', pid: deadPid, procStart: '1', startedAt: '', apiSocket: join(root, 'delta', 'api.sock'), consoleSocket: join(root, 'delta', 'console.sock') }));
  // Our own pid with another start time: a reused pid is not the VM either.
  mkdirSync(join(root, 'eps'));
  writeFileSync(join(root, 'eps', 'info.json'), JSON.stringify({ name: 'eps', pid: process.pid, procStart: '1', startedAt: '', apiSocket: '', consoleSocket: '' }));
  try {
    const r = await tsvm(root, 'run', '-d', '--name', 'delta', '--firmware', counter, '--accel', 'kvm', '--memory', '16M');
    assert.equal(r.status, 0, r.stderr);
    const rows = await ps(root);
    assert.deepEqual(rows.map((x) => [x.name, x.state]), [['delta', 'running'], ['eps', 'gone']]);
    assert.deepEqual(dirNames(root), ['delta']);
    assert.equal((await tsvm(root, 'stop', 'delta')).status, 0);
    assert.deepEqual(dirNames(root), []);
  } finally {
    killAll(root);
  }
});
