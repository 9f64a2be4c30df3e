// The library entry point: a Node program boots a VM without the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vm, defaultConfig, validateConfig } from '../../src/index.js';
import { assembleGuest } from '../support/guests.js';
import { kvmUnavailableReason } from '../support/tsvm-process.js';

test('Vm.create + run: console output reaches the listener and the exit status comes back', { skip: kvmUnavailableReason() }, async () => {
  const image = await assembleGuest('hello');
  const config = validateConfig({ ...defaultConfig(), firmware: image, accel: 'kvm', memoryBytes: 16 << 20, name: 'lib-test' });
  const chunks: Uint8Array[] = [];
  const logs: string[] = [];
  const vm = await Vm.create(config, { consoleOutput: (b) => chunks.push(b), log: (l) => logs.push(l) });
  assert.equal(vm.status, 'created');
  const exit = await vm.run();
  assert.equal(vm.status, 'stopped');
  assert.deepEqual(exit, { code: 33, reason: 'debug-exit', message: 'the guest wrote 0x10 to isa-debug-exit (exit status 33)' });
  assert.equal(Buffer.concat(chunks).toString(), 'Hello from real mode\n');
  assert.ok(logs.some((l) => /firmware .* mapped at 0xffff0000/.test(l)), logs.join('\n'));
  const stats = vm.stats();
  assert.ok(stats.bus && stats.bus.pioWrites >= 21, 'one port write per character, at least');
});
