import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRunArgs } from '../../src/cli/run-args.js';
import { ConfigError, parseMemorySize } from '../../src/vmm/vm-config.js';

function config(argv: string[]) {
  const r = parseRunArgs(argv);
  assert.equal(r.help, false);
  return (r as Extract<typeof r, { help: false }>).config;
}

test('flags become a VmConfig with documented defaults', () => {
  const c = config(['--kernel', '/k', '--initrd', '/i', '--memory', '1G', '--cpus', '2', '--name', 'web1', '--accel', 'kvm']);
  assert.equal(c.kernel, '/k');
  assert.equal(c.initrd, '/i');
  assert.equal(c.memoryBytes, 1024 * 1024 * 1024);
  assert.equal(c.cpus, 2);
  assert.equal(c.name, 'web1');
  assert.equal(c.accel, 'kvm');
  assert.equal(c.append, 'console=ttyS0', 'a kernel gets a serial console by default');
  assert.equal(c.irqchip, true);
  assert.equal(c.bootMode, 'elf');
  const d = config(['--firmware', '/f']);
  assert.equal(d.accel, 'auto');
  assert.equal(d.memoryBytes, 512 * 1024 * 1024);
  assert.equal(d.append, '');
});

test('--console: serial by default; virtio makes hvc0 the console and the default command line', () => {
  assert.equal(config(['--kernel', '/k']).console, 'serial');
  const v = config(['--kernel', '/k', '--console', 'virtio']);
  assert.equal(v.console, 'virtio');
  assert.equal(v.append, 'console=hvc0');
  assert.equal(config(['--kernel', '/k', '--console', 'serial']).append, 'console=ttyS0');
  // An --append is the user's, whatever the console.
  assert.equal(config(['--kernel', '/k', '--console', 'virtio', '--append', 'console=ttyS0 console=hvc0']).append, 'console=ttyS0 console=hvc0');
  assert.equal(config(['--kernel', '/k', '--append', 'quiet', '--console', 'virtio']).append, 'quiet');
  const fw = config(['--firmware', '/f', '--console', 'virtio']);
  assert.equal(fw.console, 'virtio');
  assert.equal(fw.append, '', 'a firmware gets no command line');
});

test('memory sizes parse like QEMU -m', () => {
  assert.equal(parseMemorySize('512M'), 512 * 2 ** 20);
  assert.equal(parseMemorySize('2G'), 2 * 2 ** 30);
  assert.equal(parseMemorySize('64'), 64 * 2 ** 20);
  assert.equal(parseMemorySize('1048576K'), 2 ** 30);
  assert.equal(parseMemorySize('1.5G'), 1.5 * 2 ** 30);
  assert.throws(() => parseMemorySize('lots'), /not a size/);
});

test('bad input gives one-line ConfigErrors that name the problem', () => {
  const cases: [string[], RegExp][] = [
    [['--kernel', '/k', '--bogus'], /unknown option --bogus/],
    [['--kernel', '/k', 'extra'], /unexpected argument extra/],
    [[], /nothing to boot/],
    [['--kernel', '/k', '--firmware', '/f'], /exclusive/],
    [['--firmware', '/f', '--initrd', '/i'], /--initrd needs --kernel/],
    [['--kernel', '/k', '--cpus', '0'], /--cpus 0 is out of range/],
    [['--kernel', '/k', '--cpus', 'two'], /not a whole number/],
    [['--kernel', '/k', '--memory', '1M'], /too small/],
    [['--kernel', '/k', '--accel', 'hvf'], /--accel "hvf" is unknown/],
    [['--kernel', '/k', '--name', 'bad name'], /name "bad name" is not valid/],
    [['--kernel', '/k', '--boot-mode', 'x'], /--boot-mode "x" is unknown/],
    [['--kernel', '/k', '--console', 'hvc0'], /--console "hvc0" is unknown: use serial or virtio/],
    [['--kernel', '/k', '--console', ''], /--console "" is unknown/],
    [['--kernel', '/k', '--console'], /--console/],
  ];
  for (const [argv, re] of cases) {
    assert.throws(() => parseRunArgs(argv), (e: Error) => {
      assert.ok(e instanceof ConfigError, `${argv.join(' ')}: ${e}`);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
  }
});

test('--help is recognised', () => {
  assert.deepEqual(parseRunArgs(['--help']), { help: true });
});
