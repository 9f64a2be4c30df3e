// virtio-blk over the real disk-image backends (src/block): raw and qcow2 files, guest buffers
// that are views of the shared guest RAM, segments that are not sector-sized.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDisk } from '../../src/block/open.js';
import { VirtioBlk, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from '../../src/devices/virtio/blk.js';
import { VirtioPciDevice } from '../../src/devices/virtio/pci-transport.js';
import { TestMachine, VirtioDriver, settle } from './guest-driver.js';

async function waitUsed(q: { usedIdx(): number }, n: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (q.usedIdx() < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await settle();
}

test('virtio-blk over a raw image file: write (odd segment split), flush, read back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvm-blk-'));
  try {
    const path = join(dir, 'disk.raw');
    writeFileSync(path, new Uint8Array(1 << 20));
    const disk = await openDisk(path, { format: 'raw', serial: 'raw0' });
    const m = new TestMachine();
    const blk = new VirtioBlk({ backend: disk });
    const dev = new VirtioPciDevice(blk, { mem: m.mem, msi: m.msi, log: (l) => m.logs.push(l) });
    const drv = new VirtioDriver(m, m.attach(dev));
    drv.init({ extra: blk.features });
    const q = drv.queues[0];
    const hdr = drv.alloc.alloc(16);
    drv.mem.writeU32(hdr, VIRTIO_BLK_T_OUT);
    drv.mem.writeU64(hdr + 8, 3n);
    const data = drv.alloc.alloc(1024);
    for (let i = 0; i < 1024; i++) drv.mem.writeU8(data + i, (i * 13) & 0xff);
    const st = drv.alloc.alloc(1);
    q.add([{ addr: hdr, len: 16 }, { addr: data, len: 100 }, { addr: data + 100, len: 924 }, { addr: st, len: 1, write: true }]);
    q.kick();
    await waitUsed(q, 1);
    assert.equal(drv.mem.readU8(st), VIRTIO_BLK_S_OK, m.logs.join('\n'));
    const fh = drv.alloc.alloc(16);
    drv.mem.writeU32(fh, VIRTIO_BLK_T_FLUSH);
    const fst = drv.alloc.alloc(1);
    q.add([{ addr: fh, len: 16 }, { addr: fst, len: 1, write: true }]);
    q.kick();
    await waitUsed(q, 2);
    assert.equal(drv.mem.readU8(fst), VIRTIO_BLK_S_OK);
    const rh = drv.alloc.alloc(16);
    drv.mem.writeU32(rh, VIRTIO_BLK_T_IN);
    drv.mem.writeU64(rh + 8, 3n);
    const back = drv.alloc.alloc(1024);
    const rst = drv.alloc.alloc(1);
    q.add([{ addr: rh, len: 16 }, { addr: back, len: 700, write: true }, { addr: back + 700, len: 324, write: true }, { addr: rst, len: 1, write: true }]);
    q.kick();
    await waitUsed(q, 3);
    assert.equal(drv.mem.readU8(rst), VIRTIO_BLK_S_OK);
    assert.deepEqual(drv.mem.read(back, 1024), drv.mem.read(data, 1024));
    await dev.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
