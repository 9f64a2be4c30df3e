// `tsvm run --config vm.json`: the API's schema (docs/openapi.json FullVmConfiguration) in a
// file. The same VM described by flags or by a file gives the same VmConfig; mistakes in the file
// are errors that name the file and the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseRunArgs } from '../../src/cli/run-args.js';
import { applyDocument, documentFromConfig, loadConfigFile } from '../../src/vmm/config-file.js';
import { defaultConfig, type VmConfig } from '../../src/vmm/vm-config.js';
import { kernelCommandLine } from '../../src/vmm/vm.js';
import { assembleGuest } from '../support/guests.js';
import { kvmUnavailableReason } from '../support/tsvm-process.js';
import { tempRoot, tsvm } from './mgmt-support.js';

function flags(argv: string[]): VmConfig {
  const r = parseRunArgs(argv);
  assert.equal(r.help, false);
  return (r as Extract<typeof r, { help: false }>).config;
}

const dir = tempRoot('cfg');
const kernel = join(dir, 'bzImage');
const initrd = join(dir, 'initrd.img');
const disk = join(dir, 'disk.img');
for (const f of [kernel, initrd, disk]) writeFileSync(f, 'x');

function file(name: string, doc: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2));
  return p;
}

test('config file: flags and the file produce the same VmConfig', () => {
  const fromFlags = flags([
    '--kernel', kernel, '--initrd', initrd, '--append', 'console=ttyS0 quiet', '--memory', '256M', '--cpus', '2',
    '--accel', 'kvm', '--name', 'web1', '--no-reboot', '--grace', '5', '--disk', `${disk},ro,root`, '--net', 'tap0,mac=02:00:00:00:00:01',
  ]);
  const cfg = file('web1.json', {
    'boot-source': { kernel_image_path: kernel, initrd_path: initrd, boot_args: 'console=ttyS0 quiet' },
    'machine-config': { vcpu_count: 2, mem_size_mib: 256, accel: 'kvm', no_reboot: true },
    drives: [{ drive_id: 'disk0', path_on_host: disk, is_root_device: true, is_read_only: true }],
    'network-interfaces': [{ iface_id: 'net0', host_dev_name: 'tap0', guest_mac: '02:00:00:00:00:01' }],
    tsvm: { name: 'web1', shutdown_grace_s: 5 },
  });
  assert.deepEqual(flags(['--config', cfg]), fromFlags);
  // What GET /vm/config returns reads back as the same configuration.
  assert.deepEqual(applyDocument(documentFromConfig(fromFlags)), fromFlags);
  // Defaults are the same either way too.
  assert.deepEqual(flags(['--config', file('min.json', { 'boot-source': { kernel_image_path: kernel }, tsvm: { name: 'm' } })]), flags(['--kernel', kernel, '--name', 'm']));
});

test('config file: machine-config.console is --console; default boot_args follow it, given ones are kept', () => {
  const fromFile = flags(['--config', file('hvc.json', { 'boot-source': { kernel_image_path: kernel }, 'machine-config': { vcpu_count: 1, console: 'virtio' }, tsvm: { name: 'h' } })]);
  assert.deepEqual(fromFile, flags(['--kernel', kernel, '--console', 'virtio', '--name', 'h']));
  assert.equal(fromFile.append, 'console=hvc0');
  assert.deepEqual(applyDocument(documentFromConfig(fromFile)), fromFile);
  // The file's default command line follows a --console flag; the file's own boot_args do not.
  const plain = file('plain.json', { 'boot-source': { kernel_image_path: kernel }, tsvm: { name: 'p' } });
  assert.equal(flags(['--config', plain, '--console', 'virtio']).append, 'console=hvc0');
  const given = file('given.json', { 'boot-source': { kernel_image_path: kernel, boot_args: 'console=ttyS0 quiet' }, 'machine-config': { vcpu_count: 1, console: 'virtio' }, tsvm: { name: 'g' } });
  assert.equal(flags(['--config', given]).append, 'console=ttyS0 quiet');
  assert.equal(flags(['--config', given, '--console', 'serial']).console, 'serial');
  assert.throws(() => flags(['--config', file('badcon.json', { 'machine-config': { vcpu_count: 1, console: 'hvc' } })]), /machine-config\.console/);
});

test('config file: flags override the file; relative paths are relative to the file', () => {
  mkdirSync(join(dir, 'sub'), { recursive: true });
  writeFileSync(join(dir, 'sub', 'fw.bin'), 'x');
  const cfg = file('sub/rel.json', { 'boot-source': { firmware_path: 'fw.bin' }, 'machine-config': { vcpu_count: 4, mem_size_mib: 64 }, tsvm: { name: 'rel' } });
  const c = flags(['--config', cfg, '--cpus', '2', '--name', 'other']);
  assert.equal(c.firmware, join(dir, 'sub', 'fw.bin'));
  assert.equal(c.cpus, 2);
  assert.equal(c.memoryBytes, 64 << 20);
  assert.equal(c.name, 'other');
  assert.deepEqual(loadConfigFile(cfg, defaultConfig()).cpus, 4);
});

test('config file: mistakes name the file and the field', () => {
  const cases: [unknown, RegExp][] = [
    [{ 'machine-config': { vcpu_count: 1, turbo: true } }, /unknown field machine-config\.turbo \(known fields of machine-config: vcpu_count/],
    [{ 'machine-config': { vcpu_count: '2' } }, /machine-config\.vcpu_count must be an integer, not the string "2"/],
    [{ 'boot-source': { kernel_image_path: join(dir, 'missing') } }, /boot-source\.kernel_image_path: .*missing: no such file/],
    [{ drives: [{ drive_id: 'a', path_on_host: join(dir, 'gone.img'), is_root_device: false }] }, /drives\[0\]\.path_on_host: .*gone\.img: no such file/],
    [{ drives: [{ drive_id: 'a', path_on_host: disk }] }, /missing field drives\[0\]\.is_root_device/],
    [{ 'network-interfaces': [{ iface_id: 'n', host_dev_name: 'a-very-long-tap-name' }] }, /network-interfaces\[0\]\.host_dev_name must be at most 15 characters/],
    [{ logger: { level: 'Info' } }, /unknown field logger \(known fields: boot-source, machine-config, drives, network-interfaces, tsvm\)/],
    ['{ "boot-source": ', /not valid JSON/],
    [{ 'machine-config': { vcpu_count: 1 } }, /nothing to boot/],
  ];
  for (const [i, [doc, re]] of cases.entries()) {
    const p = file(`bad${i}.json`, doc);
    assert.throws(() => flags(['--config', p]), (e: Error) => {
      assert.match(e.message, re);
      if (!/nothing to boot/.test(e.message)) assert.ok(e.message.startsWith(`--config ${p}: `), e.message);
      return true;
    });
  }
  assert.throws(() => flags(['--config', join(dir, 'absent.json')]), /--config .*absent\.json: no such file/);
});

test('config file: tsvm run --config reports a bad file in one line (exit status 1)', async () => {
  const p = file('cli-bad.json', { 'machine-config': { vcpu_count: 'many' } });
  const r = await tsvm(dir, 'run', '--config', p);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `tsvm: --config ${p}: machine-config.vcpu_count must be an integer, not the string "many"\n`);
});

test('config file: tsvm run --config boots the guest it describes', { skip: kvmUnavailableReason() }, async () => {
  const hello = await assembleGuest('hello');
  const p = file('hello.json', { 'boot-source': { firmware_path: hello }, 'machine-config': { vcpu_count: 1, mem_size_mib: 16, accel: 'kvm' }, tsvm: { name: 'cfg-hello' } });
  const r = await tsvm(tempRoot('cfgrun'), 'run', '--config', p);
  assert.equal(r.stdout, 'Hello from real mode\n');
  assert.equal(r.status, 33, r.stderr);
});

test('config: a root disk puts root=/dev/vdX on a kernel command line (as Firecracker does)', () => {
  const base = flags(['--kernel', kernel, '--disk', disk, '--disk', `${disk},root,ro`]);
  assert.equal(kernelCommandLine(base), 'console=ttyS0 root=/dev/vdb ro');
  assert.equal(kernelCommandLine({ ...base, append: 'root=/dev/sda1' }), 'root=/dev/sda1');
  assert.equal(kernelCommandLine(flags(['--kernel', kernel, '--disk', disk])), 'console=ttyS0');
});

test('config file: Firecracker spellings --config-file and --id work as --config and --name', () => {
  const cfg = file('fc-spelling.json', { 'boot-source': { kernel_image_path: kernel } });
  assert.deepEqual(flags(['--config-file', cfg, '--id', 'fc']), flags(['--config', cfg, '--name', 'fc']));
  assert.throws(() => flags(['--config', cfg, '--config-file', cfg]), /same option/);
});
