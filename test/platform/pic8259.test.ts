import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../../src/devices/bus.js';
import { PicPair } from '../../src/devices/platform/pic8259.js';
import { pickSize, rng } from './fake-time.js';

/** A PIC pair on a bus, initialized the way Linux's init_8259A() does it. */
function linuxPic(opts: { autoEoi?: boolean } = {}) {
  const pic = new PicPair();
  const bus = new Bus();
  bus.addPio(0x20, 2, pic.masterPorts);
  bus.addPio(0xa0, 2, pic.slavePorts);
  bus.addPio(0x4d0, 2, pic.elcrPorts);
  const out = (port: number, v: number) => bus.pioWrite(port, 1, v);
  const inb = (port: number) => bus.pioRead(port, 1);
  out(0x21, 0xff); // mask all of 8259A-1
  out(0xa1, 0xff); // mask all of 8259A-2
  out(0x20, 0x11); // ICW1: select 8259A-1 init, ICW4 needed, cascade, edge
  out(0x21, 0x30); // ICW2: IR0-7 mapped to vectors 0x30-0x37
  out(0x21, 0x04); // ICW3: slave on IR2
  out(0x21, opts.autoEoi ? 0x03 : 0x01); // ICW4: 8086 mode (+ auto EOI)
  out(0xa0, 0x11);
  out(0xa1, 0x38); // IR8-15 -> vectors 0x38-0x3f
  out(0xa1, 0x02); // slave ID 2
  out(0xa1, 0x01);
  out(0x21, 0x00); // unmask everything
  out(0xa1, 0x00);
  return { pic, bus, out, inb };
}

test('Linux init sequence sets vector bases and leaves everything idle', () => {
  const { pic, inb } = linuxPic();
  assert.equal(pic.state(0).vectorBase, 0x30);
  assert.equal(pic.state(1).vectorBase, 0x38);
  assert.equal(inb(0x21), 0);
  assert.equal(inb(0xa1), 0);
  assert.equal(pic.intrPending(), false);
  assert.equal(pic.acknowledge(), 0x37, 'nothing pending: spurious IRQ 7');
  assert.equal(pic.state(0).isr, 0, 'a spurious IRQ 7 does not set ISR');
});

test('edge IRQ: INTR, INTA vector, ISR, non-specific EOI', () => {
  const { pic, out, inb } = linuxPic();
  const changes: boolean[] = [];
  pic.onIntrChange = (l) => changes.push(l);
  pic.setIrq(1, true);
  pic.setIrq(1, false); // a pulse is enough: the edge is latched in IRR
  assert.equal(pic.intrPending(), true);
  assert.equal(inb(0x20), 0x02, 'IRR read by default');
  assert.equal(pic.acknowledge(), 0x31);
  assert.equal(pic.intrPending(), false);
  out(0x20, 0x0b); // OCW3: read ISR
  assert.equal(inb(0x20), 0x02);
  out(0x20, 0x20); // non-specific EOI
  assert.equal(inb(0x20), 0x00);
  assert.deepEqual(changes, [true, false]);
});

test('fully nested priority: lower IRQ numbers win and preempt, higher ones wait for EOI', () => {
  const { pic, out } = linuxPic();
  pic.setIrq(3, true);
  pic.setIrq(1, true);
  assert.equal(pic.acknowledge(), 0x31);
  assert.equal(pic.intrPending(), false, 'IRQ 3 waits while IRQ 1 is in service');
  pic.setIrq(0, true);
  assert.equal(pic.intrPending(), true, 'IRQ 0 preempts IRQ 1');
  assert.equal(pic.acknowledge(), 0x30);
  out(0x20, 0x20); // EOI IRQ 0 (the highest in service)
  assert.equal(pic.intrPending(), false);
  out(0x20, 0x61); // specific EOI for IRQ 1
  assert.equal(pic.intrPending(), true);
  assert.equal(pic.acknowledge(), 0x33);
  out(0x20, 0x20);
  assert.equal(pic.state(0).isr, 0);
});

test('IMR masks requests without losing them', () => {
  const { pic, out } = linuxPic();
  out(0x21, 0x10);
  pic.setIrq(4, true);
  assert.equal(pic.intrPending(), false);
  assert.equal(pic.state(0).irr, 0x10);
  out(0x21, 0x00);
  assert.equal(pic.intrPending(), true);
  assert.equal(pic.acknowledge(), 0x34);
});

test('slave IRQ through the cascade, EOI to both; master IRQ 2 input is the cascade only', () => {
  const { pic, out } = linuxPic();
  pic.setIrq(2, true); // ignored: nothing drives IR2 but the slave
  assert.equal(pic.intrPending(), false);
  pic.setIrq(12, true);
  pic.setIrq(12, false);
  assert.equal(pic.intrPending(), true);
  assert.equal(pic.acknowledge(), 0x3c);
  assert.equal(pic.state(0).isr, 0x04);
  assert.equal(pic.state(1).isr, 0x10);
  out(0xa0, 0x20);
  out(0x20, 0x20);
  assert.equal(pic.state(0).isr, 0);
  assert.equal(pic.state(1).isr, 0);
  assert.equal(pic.intrPending(), false);
});

test('special fully nested mode lets a higher slave IRQ nest in another', () => {
  const pic = new PicPair();
  const w = (dev: typeof pic.masterPorts, o: number, v: number) => dev.pioWrite(o, 1, v);
  w(pic.masterPorts, 0, 0x11);
  w(pic.masterPorts, 1, 0x20);
  w(pic.masterPorts, 1, 0x04);
  w(pic.masterPorts, 1, 0x11); // 8086 + SFNM
  w(pic.slavePorts, 0, 0x11);
  w(pic.slavePorts, 1, 0x28);
  w(pic.slavePorts, 1, 0x02);
  w(pic.slavePorts, 1, 0x01);
  pic.setIrq(12, true);
  assert.equal(pic.acknowledge(), 0x2c);
  pic.setIrq(9, true);
  assert.equal(pic.intrPending(), true, 'IRQ 9 nests over IRQ 12 through IR2 in service');
  assert.equal(pic.acknowledge(), 0x29);
});

test('spurious IRQ 7 and 15 when the request goes away before INTA', () => {
  const { pic, out } = linuxPic();
  out(0x4d0, 0x08); // IRQ 3 level
  pic.setIrq(3, true);
  assert.equal(pic.intrPending(), true);
  pic.setIrq(3, false);
  assert.equal(pic.acknowledge(), 0x37);
  assert.equal(pic.state(0).isr, 0);
  // Slave: a level IRQ 10 that drops after the master latched its cascade edge.
  out(0x4d1, 0x04);
  pic.setIrq(10, true);
  pic.setIrq(10, false);
  assert.equal(pic.acknowledge(), 0x3f);
  assert.equal(pic.state(1).isr, 0, 'the slave sets no ISR bit for IRQ 15');
  out(0x20, 0x20); // Linux EOIs the master's IR2 for a spurious 15
  assert.equal(pic.state(0).isr, 0);
});

test('ELCR: level IRQs re-request after EOI while high; read-only bits', () => {
  const { pic, out, inb } = linuxPic();
  out(0x4d0, 0xff);
  out(0x4d1, 0xff);
  assert.equal(inb(0x4d0), 0xf8, 'IRQ 0-2 are edge only');
  assert.equal(inb(0x4d1), 0xde, 'IRQ 8 and 13 are edge only');
  out(0x4d0, 0x00);
  out(0x4d1, 0x02); // IRQ 9 level (the SCI)
  pic.setIrq(9, true);
  assert.equal(pic.acknowledge(), 0x39);
  out(0xa0, 0x20);
  out(0x20, 0x20);
  assert.equal(pic.intrPending(), true, 'still asserted: requested again');
  assert.equal(pic.acknowledge(), 0x39);
  pic.setIrq(9, false);
  out(0xa0, 0x20);
  out(0x20, 0x20);
  assert.equal(pic.intrPending(), false);
  // The same input edge-triggered needs a new edge.
  out(0x4d1, 0x00);
  pic.setIrq(9, true);
  assert.equal(pic.acknowledge(), 0x39);
  out(0xa0, 0x20);
  out(0x20, 0x20);
  assert.equal(pic.intrPending(), false);
  // Turning level mode on while the line is high requests it at once.
  out(0x4d1, 0x02);
  assert.equal(pic.intrPending(), true);
});

test('ICW1 LTIM makes every input level-sensitive', () => {
  const pic = new PicPair();
  pic.masterPorts.pioWrite(0, 1, 0x19); // ICW1 + LTIM + IC4
  pic.masterPorts.pioWrite(1, 1, 0x08);
  pic.masterPorts.pioWrite(1, 1, 0x04);
  pic.masterPorts.pioWrite(1, 1, 0x01);
  pic.setIrq(5, true);
  pic.setIrq(5, false);
  assert.equal(pic.intrPending(), false);
});

test('auto-EOI: no ISR bit; rotate in AEOI mode', () => {
  const { pic, out } = linuxPic({ autoEoi: true });
  pic.setIrq(1, true);
  assert.equal(pic.acknowledge(), 0x31);
  assert.equal(pic.state(0).isr, 0);
  out(0x20, 0x80); // rotate in automatic EOI mode (set)
  pic.setIrq(5, true);
  assert.equal(pic.acknowledge(), 0x35);
  // IRQ 5 is now the lowest priority: IRQ 6 beats IRQ 0.
  pic.setIrq(0, true);
  pic.setIrq(6, true);
  assert.equal(pic.acknowledge(), 0x36);
  assert.equal(pic.acknowledge(), 0x30);
});

test('priority rotation: set priority and rotate on non-specific / specific EOI', () => {
  const { pic, out } = linuxPic();
  out(0x20, 0xc3); // set priority: IRQ 3 lowest, so IRQ 4 highest
  pic.setIrq(2 + 1, true);
  pic.setIrq(4, true);
  pic.setIrq(7, true);
  assert.equal(pic.acknowledge(), 0x34);
  out(0x20, 0xa0); // rotate on non-specific EOI: IRQ 4 becomes lowest, IRQ 5 highest
  assert.equal(pic.acknowledge(), 0x37);
  out(0x20, 0xe7); // rotate on specific EOI 7: IRQ 0 highest again
  assert.equal(pic.acknowledge(), 0x33);
  out(0x20, 0x20);
  assert.equal(pic.state(0).isr, 0);
});

test('special mask mode: masking the in-service IRQ lets lower priorities through', () => {
  const { pic, out } = linuxPic();
  pic.setIrq(1, true);
  assert.equal(pic.acknowledge(), 0x31);
  pic.setIrq(5, true);
  assert.equal(pic.intrPending(), false);
  out(0x20, 0x68); // OCW3: set special mask
  out(0x21, 0x02); // mask IRQ 1 (in service)
  assert.equal(pic.intrPending(), true);
  assert.equal(pic.acknowledge(), 0x35);
  out(0x20, 0x48); // reset special mask
  out(0x20, 0x65); // specific EOI 5
  out(0x20, 0x61);
  assert.equal(pic.state(0).isr, 0);
});

test('poll mode: the read is the acknowledge', () => {
  const { pic, out, inb } = linuxPic();
  out(0x20, 0x0c); // OCW3 poll
  assert.equal(inb(0x20), 0x00, 'nothing pending');
  pic.setIrq(6, true);
  out(0x20, 0x0c);
  assert.equal(inb(0x20), 0x86);
  assert.equal(pic.state(0).isr, 0x40);
  assert.equal(inb(0x20), 0x00, 'poll is one-shot: back to IRR reads');
  out(0x20, 0x20);
  pic.setIrq(11, true);
  out(0xa0, 0x0c);
  assert.equal(inb(0xa0), 0x83);
  assert.equal(pic.state(0).irr & 4, 0, 'the master forgets the cascade request');
});

test('hostile port accesses never throw and leave the pair usable', () => {
  const { pic, bus } = linuxPic();
  const r = rng(8259);
  const ports = [0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1];
  for (let i = 0; i < 20000; i++) {
    const port = ports[r() % ports.length] + (r() % 3 === 0 ? 1 : 0);
    const size = pickSize(r());
    if (r() & 1) bus.pioWrite(port, size, r());
    else {
      const v = bus.pioRead(port, size);
      assert.ok(v >= 0 && v <= 0xffffffff);
    }
    if (r() % 4 === 0) pic.setIrq(r() % 20 - 2, (r() & 1) === 1);
    if (r() % 8 === 0 && pic.intrPending()) {
      const v = pic.acknowledge();
      assert.ok(v >= 0 && v <= 0xff);
    }
  }
  pic.setIrq(NaN, true);
  pic.setIrq(1.5, true);
});
