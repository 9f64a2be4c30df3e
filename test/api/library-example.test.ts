// The library example in docs/API.md runs as written (with 'tsvm' resolved to this checkout),
// and the Vm lifecycle calls behind it behave as documented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Vm } from '../../src/index.js';
import { assembleGuest, repoRoot } from '../support/guests.js';
import { kvmUnavailableReason } from '../support/tsvm-process.js';
import { counterNumbers, gapIn, tempRoot } from '../mgmt/mgmt-support.js';

const execFileP = promisify(execFile);
const noKvm = kvmUnavailableReason();

test('library: the example in docs/API.md runs', { skip: noKvm }, async () => {
  const doc = readFileSync(join(repoRoot(), 'docs', 'API.md'), 'utf8');
  const m = /## The library[^]*?```js\n([^]*?)```/.exec(doc);
  assert.ok(m, 'docs/API.md has a js example under "The library"');
  const index = pathToFileURL(join(repoRoot(), 'dist', 'src', 'index.js')).href;
  const code = m[1].replace(/from 'tsvm'/g, `from '${index}'`);
  const file = join(tempRoot('lib'), 'example.mjs');
  writeFileSync(file, code);
  const counter = await assembleGuest('counter');
  const { stdout, stderr } = await execFileP(process.execPath, [file, counter], { timeout: 30_000 });
  const nums = counterNumbers(stdout);
  assert.ok(nums.length >= 1, stdout);
  assert.equal(gapIn(nums), undefined);
  assert.match(stderr, /paused: \d+ bytes of console output so far/);
  assert.match(stderr, /stopped: stopped by the host/);
});

test('library: start, console, pause/resume, metrics, shutdown of a guest that ignores the power button', { skip: noKvm }, async () => {
  const counter = await assembleGuest('counter');
  const logs: string[] = [];
  const vm = await Vm.create({ name: 'lib-life', firmware: counter, memoryBytes: 16 << 20, accel: 'kvm' }, { log: (l) => logs.push(l) });
  assert.equal(vm.status, 'created');
  await vm.start();
  assert.equal(vm.status, 'running');
  await assert.rejects(vm.start(), /already been started/);
  const seen: Buffer[] = [];
  const off = vm.console.onData((b) => seen.push(Buffer.from(b)));
  while (!vm.console.recent().toString().includes('\n3\n')) await new Promise((r) => setTimeout(r, 10));
  vm.pause();
  assert.equal(vm.status, 'paused');
  vm.resume();
  off();
  const m = vm.metrics();
  assert.ok(m.vcpu.exits > 0 && m.devices.uart.writes > 0 && m.serial.tx_bytes > 0);
  const exit = await vm.shutdown(5);
  assert.equal(exit.reason, 'stopped');
  assert.match(exit.message, /does not listen to the ACPI power button/);
  assert.equal(vm.status, 'stopped');
  assert.deepEqual(await vm.wait(), exit);
  assert.ok(seen.length > 0);
});

test('library: Vm.create checks the configuration it is given', async () => {
  await assert.rejects(Vm.create({ name: 'bad name!', firmware: '/nonexistent' }), /name "bad name!" is not valid/);
  await assert.rejects(Vm.create({ firmware: '/nonexistent/fw.bin' }), /no such file/);
});
