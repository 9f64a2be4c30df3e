// The tiny firmware guests of guests/asm (real -> protected -> long mode, port I/O, MMIO, HLT,
// triple fault) on the software CPU, from the reset vector, with minimal stand-ins for the
// devices they use (16550 THR/LSR, isa-debug-exit, pc-testdev's scratch port and MMIO window).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Bus } from '../../src/devices/bus.js';
import { resetState } from '../../src/accel/cpu-state.js';
import { allocateSoftMemory } from '../../src/accel/soft/soft-memory.js';
import { SoftCpu } from '../../src/accel/soft/soft-cpu.js';
import { ASM_GUESTS, GUEST_IMAGE_SIZE, assembleGuest, type GuestEnd } from '../support/guests.js';

interface Outcome { stdout: string; end: GuestEnd | { kind: 'other'; detail: string } }

async function runGuest(name: string): Promise<Outcome> {
  const image = new Uint8Array(await readFile(await assembleGuest(name)));
  const mem = allocateSoftMemory(2 * 1024 * 1024, GUEST_IMAGE_SIZE);
  mem.loadRom(image);
  mem.write(0x100000 - GUEST_IMAGE_SIZE, image); // the alias below 1 MiB
  const bus = new Bus();
  let stdout = '';
  let exitValue: number | undefined;
  bus.addPio(0x3f8, 8, {
    name: 'uart',
    pioRead: (off) => (off === 5 ? 0x60 : 0),
    pioWrite: (off, _s, v) => { if (off === 0) stdout += String.fromCharCode(v & 0xff); },
  });
  bus.addPio(0xf4, 1, { name: 'debug-exit', pioRead: () => 0xff, pioWrite: (_o, _s, v) => { exitValue ??= v & 0xff; } });
  let scratch = 0;
  bus.addPio(0xe0, 4, {
    name: 'testdev',
    pioRead: (off, size) => (scratch >>> (off * 8)) & (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1),
    pioWrite: (off, size, v) => {
      const m = (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1) << (off * 8);
      scratch = ((scratch & ~m) | ((v << (off * 8)) & m)) >>> 0;
    },
  });
  const window = new DataView(new ArrayBuffer(0x10000));
  bus.addMmio(0xff000000, 0x10000, {
    name: 'testdev-mmio',
    mmioRead: (off, size) => (size === 1 ? window.getUint8(off) : size === 2 ? window.getUint16(off, true) : window.getUint32(off, true)),
    mmioWrite: (off, size, v) => {
      if (size === 1) window.setUint8(off, v);
      else if (size === 2) window.setUint16(off, v, true);
      else window.setUint32(off, v, true);
    },
  });
  const cpu = new SoftCpu({ mem, bus });
  cpu.setState(resetState());
  for (let slice = 0; slice < 100; slice++) {
    const exit = cpu.run(1_000_000);
    if (exitValue !== undefined) return { stdout, end: { kind: 'exit', status: (exitValue << 1) | 1 } };
    if (exit.kind === 'hlt') return { stdout, end: { kind: 'halt' } };
    if (exit.kind === 'shutdown') return { stdout, end: { kind: 'shutdown' } };
    if (exit.kind === 'error') return { stdout, end: { kind: 'other', detail: exit.message } };
  }
  return { stdout, end: { kind: 'other', detail: 'still running' } };
}

// Guests that need only the CPU and the devices stubbed above (the others need the platform:
// SMP start-up through the local APIC, ACPI power button, resets through i8042 / port 0xcf9).
const CPU_GUESTS = ['hello', 'modes', 'pio', 'mmio', 'hlt', 'triple-fault'];

for (const [name, want] of Object.entries(ASM_GUESTS).filter(([n]) => CPU_GUESTS.includes(n))) {
  test(`guests/asm/${name}.asm runs on the software CPU`, async () => {
    const got = await runGuest(name);
    assert.equal(got.stdout, want.stdout);
    assert.deepEqual(got.end, want.end);
  });
}
