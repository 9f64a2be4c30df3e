import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioPciDevice } from '../../src/devices/virtio/pci-transport.js';
import {
  VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_MQ, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES, VirtioBlk,
} from '../../src/devices/virtio/blk.js';
import { MemoryBlockBackend, type BlockBackend } from '../../src/devices/virtio/block-backend.js';
import { bit } from '../../src/devices/virtio/constants.js';
import { type DriverQueue, TestMachine, VirtioDriver, settle } from './guest-driver.js';

function setup(backend: BlockBackend, queues = 1) {
  const m = new TestMachine();
  const blk = new VirtioBlk({ backend, queues, id: 'disk0' });
  const dev = new VirtioPciDevice(blk, { mem: m.mem, msi: m.msi, log: (l) => m.logs.push(l) });
  const drv = new VirtioDriver(m, m.attach(dev));
  drv.init({ extra: blk.features });
  return { m, blk, dev, drv };
}

/** Submit one request: header, optional out data, in-data length, status byte. Returns {head, status addr, in addr}. */
function submit(drv: VirtioDriver, q: DriverQueue, type: number, sector: number, out?: Uint8Array, inLen = 0, split = false) {
  const hdr = drv.alloc.alloc(16);
  drv.mem.writeU32(hdr, type);
  drv.mem.writeU32(hdr + 4, 0);
  drv.mem.writeU64(hdr + 8, BigInt(sector));
  const bufs: { addr: number; len: number; write?: boolean }[] = [{ addr: hdr, len: 16 }];
  if (out) {
    const a = drv.alloc.alloc(out.length);
    drv.mem.write(a, out);
    if (split && out.length > 512) {
      bufs.push({ addr: a, len: 512 }, { addr: a + 512, len: out.length - 512 });
    } else bufs.push({ addr: a, len: out.length });
  }
  let inAddr = 0;
  if (inLen > 0) {
    inAddr = drv.alloc.alloc(inLen);
    drv.mem.fill(inAddr, inLen, 0xee);
    if (split && inLen > 512) bufs.push({ addr: inAddr, len: 512, write: true }, { addr: inAddr + 512, len: inLen - 512, write: true });
    else bufs.push({ addr: inAddr, len: inLen, write: true });
  }
  const status = drv.alloc.alloc(1);
  drv.mem.writeU8(status, 0xff);
  bufs.push({ addr: status, len: 1, write: true });
  const head = q.add(bufs);
  return { head, status, inAddr };
}

const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

test('virtio-blk: config space and features', () => {
  const backend = new MemoryBlockBackend(1 << 20);
  const { drv } = setup(backend, 2);
  const f = drv.deviceFeatures();
  for (const b of [VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_MQ, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES]) assert.ok(f & bit(b), `feature ${b}`);
  assert.equal(f & bit(VIRTIO_BLK_F_RO), 0n);
  assert.equal(drv.deviceConfig(0, 4), 2048, 'capacity in sectors');
  assert.equal(drv.deviceConfig(4, 4), 0);
  assert.equal(drv.deviceConfig(20, 4), 512, 'blk_size');
  assert.equal(drv.deviceConfig(34, 2), 2, 'num_queues');
  assert.equal(drv.queues.length, 2);
});

test('virtio-blk: write, read back (split buffers), flush, get-id, on two queues', async () => {
  const backend = new MemoryBlockBackend(1 << 20);
  const { drv, blk } = setup(backend, 2);
  const [q0, q1] = drv.queues;
  const data = pattern(4096, 3);
  const w = submit(drv, q0, VIRTIO_BLK_T_OUT, 8, data, 0, true);
  q0.kick();
  await settle();
  assert.equal(drv.mem.readU8(w.status), VIRTIO_BLK_S_OK);
  assert.deepEqual(q0.takeUsed(), [{ id: w.head, len: 1 }]);
  assert.deepEqual(backend.data.subarray(8 * 512, 8 * 512 + 4096), data);
  const r = submit(drv, q1, VIRTIO_BLK_T_IN, 8, undefined, 4096, true);
  q1.kick();
  await settle();
  assert.equal(drv.mem.readU8(r.status), VIRTIO_BLK_S_OK);
  assert.deepEqual(drv.mem.read(r.inAddr, 4096), data);
  assert.deepEqual(q1.takeUsed(), [{ id: r.head, len: 4097 }]);
  const fl = submit(drv, q0, VIRTIO_BLK_T_FLUSH, 0);
  q0.kick();
  await settle();
  assert.equal(drv.mem.readU8(fl.status), VIRTIO_BLK_S_OK);
  assert.equal(backend.flushes, 1);
  const id = submit(drv, q0, VIRTIO_BLK_T_GET_ID, 0, undefined, 20);
  q0.kick();
  await settle();
  assert.equal(drv.mem.readU8(id.status), VIRTIO_BLK_S_OK);
  assert.equal(Buffer.from(drv.mem.read(id.inAddr, 5)).toString(), 'disk0');
  assert.equal(drv.mem.readU8(id.inAddr + 5), 0);
  assert.equal(blk.stats.getId, 1);
});

test('virtio-blk: header and status in one descriptor each way (any layout)', async () => {
  const backend = new MemoryBlockBackend(1 << 16);
  const { drv } = setup(backend);
  const q = drv.queues[0];
  // One readable descriptor holding header + 512 bytes of data, one writable: just the status.
  const a = drv.alloc.alloc(16 + 512);
  drv.mem.writeU32(a, VIRTIO_BLK_T_OUT);
  drv.mem.writeU64(a + 8, 1n);
  drv.mem.write(a + 16, pattern(512, 9));
  const st = drv.alloc.alloc(1);
  q.add([{ addr: a, len: 528 }, { addr: st, len: 1, write: true }]);
  q.kick();
  await settle();
  assert.equal(drv.mem.readU8(st), VIRTIO_BLK_S_OK);
  assert.deepEqual(backend.data.subarray(512, 1024), pattern(512, 9));
  // Read with data + status in a single writable descriptor.
  const h = drv.alloc.alloc(16);
  drv.mem.writeU32(h, VIRTIO_BLK_T_IN);
  drv.mem.writeU64(h + 8, 1n);
  const io = drv.alloc.alloc(513);
  q.add([{ addr: h, len: 16 }, { addr: io, len: 513, write: true }]);
  q.kick();
  await settle();
  assert.equal(drv.mem.readU8(io + 512), VIRTIO_BLK_S_OK);
  assert.deepEqual(drv.mem.read(io, 512), pattern(512, 9));
});

test('virtio-blk: errors — out of range, partial sector, read-only, unsupported type, short header', async () => {
  const backend = new MemoryBlockBackend(1 << 16);
  const { drv } = setup(backend);
  const q = drv.queues[0];
  const past = submit(drv, q, VIRTIO_BLK_T_IN, 128, undefined, 512);
  const wrap = submit(drv, q, VIRTIO_BLK_T_OUT, 2 ** 60, pattern(512, 1));
  const partial = submit(drv, q, VIRTIO_BLK_T_OUT, 0, pattern(100, 1));
  const unsupp = submit(drv, q, 99, 0);
  const secure = submit(drv, q, 14, 0, new Uint8Array(16));
  const hdrAddr = drv.alloc.alloc(8);
  const st = drv.alloc.alloc(1);
  q.add([{ addr: hdrAddr, len: 8 }, { addr: st, len: 1, write: true }]);
  q.kick();
  await settle();
  assert.equal(drv.mem.readU8(past.status), VIRTIO_BLK_S_IOERR);
  assert.equal(drv.mem.readU8(wrap.status), VIRTIO_BLK_S_IOERR);
  assert.equal(drv.mem.readU8(partial.status), VIRTIO_BLK_S_IOERR);
  assert.equal(drv.mem.readU8(unsupp.status), VIRTIO_BLK_S_UNSUPP);
  assert.equal(drv.mem.readU8(secure.status), VIRTIO_BLK_S_UNSUPP);
  assert.equal(drv.mem.readU8(st), VIRTIO_BLK_S_IOERR);
  assert.equal(q.takeUsed().length, 6);

  const ro = setup(new MemoryBlockBackend(1 << 16, true));
  assert.ok(ro.drv.deviceFeatures() & bit(VIRTIO_BLK_F_RO));
  const rq = ro.drv.queues[0];
  const w = submit(ro.drv, rq, VIRTIO_BLK_T_OUT, 0, pattern(512, 1));
  const z = submit(ro.drv, rq, VIRTIO_BLK_T_WRITE_ZEROES, 0, dwz(0, 1, 0));
  rq.kick();
  await settle();
  assert.equal(ro.drv.mem.readU8(w.status), VIRTIO_BLK_S_IOERR);
  assert.equal(ro.drv.mem.readU8(z.status), VIRTIO_BLK_S_UNSUPP);
});

function dwz(sector: number, count: number, flags: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, count, true);
  v.setUint32(12, flags, true);
  return b;
}

test('virtio-blk: discard and write-zeroes', async () => {
  const backend = new MemoryBlockBackend(1 << 16);
  backend.data.fill(0x55);
  const { drv } = setup(backend);
  const q = drv.queues[0];
  const d = submit(drv, q, VIRTIO_BLK_T_DISCARD, 0, dwz(2, 2, 0));
  const z = submit(drv, q, VIRTIO_BLK_T_WRITE_ZEROES, 0, dwz(10, 1, 1));
  const badFlag = submit(drv, q, VIRTIO_BLK_T_DISCARD, 0, dwz(2, 2, 1));
  const beyond = submit(drv, q, VIRTIO_BLK_T_WRITE_ZEROES, 0, dwz(127, 2, 0));
  q.kick();
  await settle();
  assert.equal(drv.mem.readU8(d.status), VIRTIO_BLK_S_OK);
  assert.equal(drv.mem.readU8(z.status), VIRTIO_BLK_S_OK);
  assert.equal(drv.mem.readU8(badFlag.status), VIRTIO_BLK_S_UNSUPP, 'unmap flag on discard');
  assert.equal(drv.mem.readU8(beyond.status), VIRTIO_BLK_S_IOERR);
  assert.ok(backend.data.subarray(1024, 2048).every((b) => b === 0));
  assert.ok(backend.data.subarray(5120, 5632).every((b) => b === 0));
  assert.equal(backend.data[5632], 0x55);
  assert.equal(backend.data[1023], 0x55);
});

test('virtio-blk: many requests in flight complete out of order; a write completes only after the backend', async () => {
  const backend = new MemoryBlockBackend(1 << 20);
  // Earlier sectors are slower: completion order is the reverse of submission order.
  backend.latency = (op, offset) => (op === 'write' ? 10 + (7 - offset / 4096) * 10 : 0);
  const { drv } = setup(backend);
  const q = drv.queues[0];
  const reqs = Array.from({ length: 8 }, (_, i) => submit(drv, q, VIRTIO_BLK_T_OUT, i * 8, pattern(4096, i)));
  q.kick();
  await settle(2);
  assert.equal(q.usedIdx(), 0, 'no write completed before its backend promise');
  assert.ok(reqs.every((r) => drv.mem.readU8(r.status) === 0xff));
  await new Promise((r) => setTimeout(r, 130));
  await settle();
  const used = q.takeUsed();
  assert.equal(used.length, 8);
  assert.deepEqual(used.map((u) => u.id), reqs.map((r) => r.head).reverse(), 'completed in backend order');
  assert.ok(reqs.every((r) => drv.mem.readU8(r.status) === VIRTIO_BLK_S_OK));
  for (let i = 0; i < 8; i++) assert.deepEqual(backend.data.subarray(i * 4096, (i + 1) * 4096), pattern(4096, i));
});

test('virtio-blk: a flush waits for writes already in flight', async () => {
  const backend = new MemoryBlockBackend(1 << 20);
  backend.latency = (op) => (op === 'write' ? 30 : 0);
  const { drv } = setup(backend);
  const q = drv.queues[0];
  const w = submit(drv, q, VIRTIO_BLK_T_OUT, 0, pattern(512, 1));
  const f = submit(drv, q, VIRTIO_BLK_T_FLUSH, 0);
  q.kick();
  await settle();
  assert.equal(q.usedIdx(), 0, 'flush has not overtaken the write');
  await new Promise((r) => setTimeout(r, 60));
  await settle();
  assert.deepEqual(q.takeUsed().map((u) => u.id), [w.head, f.head]);
});

test('virtio-blk: backend failure → IOERR; reset drops late completions', async () => {
  const failing: BlockBackend = {
    sizeBytes: 1 << 16, readonly: false,
    read: async () => { throw new Error('EIO'); },
    write: async () => {},
    flush: async () => { throw new Error('EIO'); },
    close: async () => {},
  };
  const { drv, m } = setup(failing);
  const q = drv.queues[0];
  const r = submit(drv, q, VIRTIO_BLK_T_IN, 0, undefined, 512);
  const f = submit(drv, q, VIRTIO_BLK_T_FLUSH, 0);
  q.kick();
  await settle();
  assert.equal(drv.mem.readU8(r.status), VIRTIO_BLK_S_IOERR);
  assert.equal(drv.mem.readU8(f.status), VIRTIO_BLK_S_IOERR);
  assert.ok(m.logs.some((l) => l.includes('EIO')));

  const slow = new MemoryBlockBackend(1 << 16);
  slow.latency = () => 20;
  const s = setup(slow);
  const sq = s.drv.queues[0];
  const req = submit(s.drv, sq, VIRTIO_BLK_T_IN, 0, undefined, 512);
  sq.kick();
  s.drv.setCommon(0x14, 1, 0); // reset while in flight
  await new Promise((res) => setTimeout(res, 40));
  await settle();
  assert.equal(s.drv.mem.readU8(req.status), 0xff, 'no status written after reset');
  assert.equal(s.drv.mem.readU16(sq.used + 2), 0, 'nothing used after reset');
});

/** Counts the backend calls a request turns into. */
class CountingBackend extends MemoryBlockBackend {
  calls: string[] = [];
  override async read(offset: number, dst: Uint8Array): Promise<void> {
    this.calls.push(`read ${offset} ${dst.length}`);
    await super.read(offset, dst);
  }
  override async write(offset: number, src: Uint8Array): Promise<void> {
    this.calls.push(`write ${offset} ${src.length}`);
    await super.write(offset, src);
  }
}

class VectoredBackend extends CountingBackend {
  async readv(offset: number, dsts: readonly Uint8Array[]): Promise<void> {
    this.calls.push(`readv ${offset} ${dsts.map((d) => d.length).join(',')}`);
    for (const d of dsts) {
      d.set(this.data.subarray(offset, offset + d.length));
      offset += d.length;
    }
  }
  async writev(offset: number, srcs: readonly Uint8Array[]): Promise<void> {
    this.calls.push(`writev ${offset} ${srcs.map((s) => s.length).join(',')}`);
    for (const s of srcs) {
      this.data.set(s, offset);
      offset += s.length;
    }
  }
}

/** One request whose data is split into segments of the given lengths (device-writable for reads). */
function submitSegments(drv: VirtioDriver, q: DriverQueue, type: number, sector: number, lengths: number[], fill?: Uint8Array) {
  const hdr = drv.alloc.alloc(16);
  drv.mem.writeU32(hdr, type);
  drv.mem.writeU64(hdr + 8, BigInt(sector));
  const bufs: { addr: number; len: number; write?: boolean }[] = [{ addr: hdr, len: 16 }];
  const segs: number[] = [];
  let at = 0;
  for (const len of lengths) {
    const a = drv.alloc.alloc(len);
    if (fill) drv.mem.write(a, fill.subarray(at, at + len));
    else drv.mem.fill(a, len, 0xee);
    at += len;
    segs.push(a);
    bufs.push({ addr: a, len, write: type === VIRTIO_BLK_T_IN });
  }
  const status = drv.alloc.alloc(1);
  bufs.push({ addr: status, len: 1, write: true });
  q.add(bufs);
  const data = () => Buffer.concat(segs.map((a, i) => drv.mem.read(a, lengths[i])));
  return { status, data };
}

test('virtio-blk: a many-segment request is one vectored backend call, or one bounced call without readv/writev', async () => {
  const lengths = [512, 4096, 1024, 4096, 2560]; // 12 KiB in five segments
  const total = lengths.reduce((a, b) => a + b, 0);
  for (const backend of [new VectoredBackend(1 << 20), new CountingBackend(1 << 20)]) {
    const { drv } = setup(backend);
    const q = drv.queues[0];
    const data = pattern(total, 9);
    const w = submitSegments(drv, q, VIRTIO_BLK_T_OUT, 3, lengths, data);
    q.kick();
    await settle();
    assert.equal(drv.mem.readU8(w.status), VIRTIO_BLK_S_OK);
    assert.deepEqual(backend.data.subarray(3 * 512, 3 * 512 + total), data);
    const r = submitSegments(drv, q, VIRTIO_BLK_T_IN, 3, [...lengths].reverse());
    q.kick();
    await settle();
    assert.equal(drv.mem.readU8(r.status), VIRTIO_BLK_S_OK);
    assert.deepEqual(new Uint8Array(r.data()), data);
    const expected = backend instanceof VectoredBackend
      ? [`writev 1536 ${lengths.join(',')}`, `readv 1536 ${[...lengths].reverse().join(',')}`]
      : [`write 1536 ${total}`, `read 1536 ${total}`];
    assert.deepEqual(backend.calls, expected);
  }
});

test('virtio-blk: a request too big to bounce goes to a backend without readv segment by segment', async () => {
  const backend = new CountingBackend(8 << 20);
  const { drv } = setup(backend);
  const q = drv.queues[0];
  const lengths = [3 << 20, 2 << 20];
  const r = submitSegments(drv, q, VIRTIO_BLK_T_IN, 0, lengths);
  q.kick();
  await settle();
  assert.equal(drv.mem.readU8(r.status), VIRTIO_BLK_S_OK);
  assert.deepEqual(backend.calls, [`read 0 ${3 << 20}`, `read ${3 << 20} ${2 << 20}`]);
});
