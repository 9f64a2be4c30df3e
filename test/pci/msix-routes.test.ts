// MSI-X over an accelerator's per-vector routes (MsiSink.openRoute, which KVM implements with GSI
// routes and irqfds): when routes are opened and programmed, that masking and pending bits still
// rule, that every failure falls back to signalMsi, and that routes are released. A fake sink
// records everything; the KVM side is test/accel/kvm-irqfd.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MsiRoute, MsiSink } from '../../src/accel/accelerator.js';
import { MsixCapability } from '../../src/devices/pci/msix.js';
import { PciDevice } from '../../src/devices/pci/pci-device.js';

class Dev extends PciDevice {
  constructor() {
    super('msix-test', { vendorId: 0x1234, deviceId: 0x5678, classCode: 0xff0000, revision: 0 });
  }
}

type Event = string;

/** A sink whose routes log what they are asked; `refuse` and `failSignal` make them fail. */
class RouteSink implements MsiSink {
  readonly events: Event[] = [];
  opened = 0;
  refuse = false;
  failSignal = false;
  noRoutes = false;
  signalMsi(address: number, data: number): void {
    this.events.push(`msi ${address.toString(16)}/${data.toString(16)}`);
  }
  openRoute(): MsiRoute | undefined {
    if (this.noRoutes) return undefined;
    const id = this.opened++;
    return {
      program: (address, data) => {
        this.events.push(`program r${id} ${address.toString(16)}/${data.toString(16)}`);
        return !this.refuse;
      },
      signal: () => {
        this.events.push(`signal r${id}`);
        return !this.failSignal;
      },
      release: () => { this.events.push(`release r${id}`); },
    };
  }
  take(): Event[] {
    return this.events.splice(0);
  }
}

function setup(sink: MsiSink, vectors = 3) {
  const dev = new Dev();
  const msix = new MsixCapability(dev, { vectors, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 }, sink);
  const ctrl = (v: number) => dev.configWrite(msix.capOffset + 2, 2, v);
  const entry = (vec: number, address: number, data: number, masked: boolean) => {
    msix.tableHandler.write(vec * 16, 4, address);
    msix.tableHandler.write(vec * 16 + 4, 4, 0);
    msix.tableHandler.write(vec * 16 + 8, 4, data);
    msix.tableHandler.write(vec * 16 + 12, 4, masked ? 1 : 0);
  };
  const mask = (vec: number, masked: boolean) => msix.tableHandler.write(vec * 16 + 12, 4, masked ? 1 : 0);
  return { dev, msix, ctrl, entry, mask };
}

test('msix routes: programmed when MSI-X is enabled with unmasked vectors, then used for every message', () => {
  const sink = new RouteSink();
  const { msix, ctrl, entry } = setup(sink);
  entry(0, 0xfee00000, 0x40, false);
  entry(1, 0xfee00000, 0x41, false);
  assert.deepEqual(sink.take(), [], 'nothing while MSI-X is off');
  ctrl(0x8000);
  assert.deepEqual(sink.take(), ['program r0 fee00000/40', 'program r1 fee00000/41'], 'vector 2 is still masked');
  msix.notify(1);
  msix.notify(1);
  msix.notify(0);
  assert.deepEqual(sink.take(), ['program r1 fee00000/41', 'signal r1', 'program r1 fee00000/41', 'signal r1', 'program r0 fee00000/40', 'signal r0']);
  assert.equal(msix.delivered, 3);
});

test('msix routes: masking still holds messages back; unmasking programs the route and sends what is pending', () => {
  const sink = new RouteSink();
  const { msix, ctrl, entry, mask } = setup(sink);
  ctrl(0x8000);
  entry(2, 0xfee01000, 0x4052, true);
  sink.take();
  msix.notify(2);
  assert.deepEqual(sink.take(), [], 'masked: pending, nothing sent');
  assert.ok(msix.isPending(2));
  mask(2, false);
  assert.deepEqual(sink.take(), ['program r0 fee01000/4052', 'program r0 fee01000/4052', 'signal r0']);
  assert.ok(!msix.isPending(2));
  // Function mask: no route work while it is set; clearing it programs and flushes.
  ctrl(0xc000);
  msix.notify(2);
  assert.deepEqual(sink.take(), []);
  ctrl(0x8000);
  assert.deepEqual(sink.take(), ['program r0 fee01000/4052', 'program r0 fee01000/4052', 'signal r0']);
});

test('msix routes: a rewritten message reaches the route before the next send', () => {
  const sink = new RouteSink();
  const { msix, ctrl, entry } = setup(sink);
  entry(0, 0xfee00000, 0x40, false);
  ctrl(0x8000);
  sink.take();
  // Written while unmasked (the spec leaves that undefined; we send the new message).
  msix.tableHandler.write(8, 4, 0x44);
  msix.notify(0);
  assert.deepEqual(sink.take(), ['program r0 fee00000/44', 'signal r0']);
});

test('msix routes: a route that refuses the message, or fails to send, falls back to signalMsi', () => {
  const sink = new RouteSink();
  const { msix, ctrl, entry } = setup(sink);
  entry(0, 0x12345678, 0x40, false); // not an APIC address: a KVM route would refuse it
  sink.refuse = true;
  ctrl(0x8000);
  sink.take();
  msix.notify(0);
  assert.deepEqual(sink.take(), ['program r0 12345678/40', 'msi 12345678/40'], 'low two address bits dropped, as always');
  sink.refuse = false;
  sink.failSignal = true;
  msix.notify(0);
  assert.deepEqual(sink.take(), ['program r0 12345678/40', 'signal r0', 'msi 12345678/40']);
  assert.equal(sink.opened, 1, 'the same route is kept');
});

test('msix routes: a sink without routes (the software CPU) or out of them gets signalMsi, and is asked once', () => {
  const plain: MsiSink & { log: string[] } = { log: [], signalMsi(a, d) { this.log.push(`${a.toString(16)}/${d.toString(16)}`); } };
  const p = setup(plain);
  p.entry(0, 0xfee00000, 0x40, false);
  p.ctrl(0x8000);
  p.msix.notify(0);
  assert.deepEqual(plain.log, ['fee00000/40']);

  const sink = new RouteSink();
  sink.noRoutes = true;
  const { msix, ctrl, entry } = setup(sink);
  entry(0, 0xfee00000, 0x40, false);
  ctrl(0x8000);
  msix.notify(0);
  msix.notify(0);
  assert.deepEqual(sink.take(), ['msi fee00000/40', 'msi fee00000/40']);
  sink.noRoutes = false;
  msix.notify(0);
  assert.equal(sink.opened, 0, 'not asked again until MSI-X is disabled or reset');
});

test('msix routes: released when MSI-X is disabled and at reset, and opened again after', () => {
  const sink = new RouteSink();
  const { msix, ctrl, entry } = setup(sink);
  entry(0, 0xfee00000, 0x40, false);
  entry(1, 0xfee00000, 0x41, false);
  ctrl(0x8000);
  sink.take();
  ctrl(0);
  assert.deepEqual(sink.take(), ['release r0', 'release r1']);
  ctrl(0); // already off: nothing more
  assert.deepEqual(sink.take(), []);
  ctrl(0x8000);
  assert.deepEqual(sink.take(), ['program r2 fee00000/40', 'program r3 fee00000/41']);
  msix.reset();
  assert.deepEqual(sink.take(), ['release r2', 'release r3']);
  assert.equal(msix.enabled, false);
});
