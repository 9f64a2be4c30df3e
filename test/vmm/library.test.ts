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

test('console: virtio: COM1 output is vm.serial\'s alone, not the console\'s', async () => {
  const image = await assembleGuest('hello');
  const config = validateConfig({ ...defaultConfig(), firmware: image, accel: 'soft', memoryBytes: 16 << 20, name: 'lib-virtio-console', console: 'virtio' });
  const toConsole: Uint8Array[] = [];
  const vm = await Vm.create(config, { consoleOutput: (b) => toConsole.push(b), log: () => {} });
  assert.notEqual(vm.serial, vm.console);
  const toSerial: Uint8Array[] = [];
  vm.serial.onData((b) => toSerial.push(b));
  const exit = await vm.run();
  assert.equal(exit.code, 33);
  assert.equal(Buffer.concat(toSerial).toString(), 'Hello from real mode\n');
  assert.equal(vm.serial.recent().toString(), 'Hello from real mode\n');
  assert.equal(toConsole.length, 0, 'COM1 is not the console');
  assert.equal(vm.console.recent().length, 0);
  assert.equal(vm.metrics().serial.tx_bytes, 21);
});

test('console: serial (the default): vm.serial is vm.console', async () => {
  const image = await assembleGuest('hello');
  const vm = await Vm.create({ firmware: image, accel: 'soft', memoryBytes: 16 << 20, name: 'lib-serial-console' }, { log: () => {} });
  assert.equal(vm.serial, vm.console);
  assert.equal(vm.config.console, 'serial');
  const exit = await vm.run();
  assert.equal(exit.code, 33);
  assert.equal(vm.console.recent().toString(), 'Hello from real mode\n');
});
