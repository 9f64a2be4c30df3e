import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BootError } from '../../src/boot/boot-plan.js';
import {
  HDR_BOOT_FLAG, HDR_CMDLINE_SIZE, HDR_HEADER, HDR_INIT_SIZE, HDR_INITRD_ADDR_MAX, HDR_KERNEL_ALIGNMENT,
  HDR_LOADFLAGS, HDR_PAYLOAD_LENGTH, HDR_PAYLOAD_OFFSET, HDR_PREF_ADDRESS, HDR_RELOCATABLE, HDR_SETUP_SECTS,
  HDR_TYPE_OF_LOADER, HDR_VERSION, HDR_XLOADFLAGS, hasSetupHeader, parseSetupHeader, payloadOf, protocolString,
} from '../../src/boot/setup-header.js';
import { makeBzImage } from './fixtures.js';

function assertBootError(f: () => unknown, re?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof BootError, `expected a BootError, got ${String(e)}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

test('header offsets are the ones boot.rst documents', () => {
  assert.equal(HDR_SETUP_SECTS, 0x1f1);
  assert.equal(HDR_BOOT_FLAG, 0x1fe);
  assert.equal(HDR_HEADER, 0x202);
  assert.equal(HDR_VERSION, 0x206);
  assert.equal(HDR_TYPE_OF_LOADER, 0x210);
  assert.equal(HDR_LOADFLAGS, 0x211);
  assert.equal(HDR_INITRD_ADDR_MAX, 0x22c);
  assert.equal(HDR_KERNEL_ALIGNMENT, 0x230);
  assert.equal(HDR_RELOCATABLE, 0x234);
  assert.equal(HDR_XLOADFLAGS, 0x236);
  assert.equal(HDR_CMDLINE_SIZE, 0x238);
  assert.equal(HDR_PAYLOAD_OFFSET, 0x248);
  assert.equal(HDR_PAYLOAD_LENGTH, 0x24c);
  assert.equal(HDR_PREF_ADDRESS, 0x258);
  assert.equal(HDR_INIT_SIZE, 0x260);
});

test('parses a synthesized bzImage', () => {
  const payload = Uint8Array.from([9, 8, 7, 6, 5]);
  const bz = makeBzImage({
    payload, setupSects: 27, version: 0x020f, initrdAddrMax: 0x37ffffff, kernelAlignment: 0x200000,
    cmdlineSize: 4095, prefAddress: 0x1000000, initSize: 0x3378000, xloadflags: 0x7f, kernelVersion: '6.1.0-test (me@x) #1 SMP',
  });
  assert.ok(hasSetupHeader(bz));
  const h = parseSetupHeader(bz, 'bz');
  assert.equal(h.setupSects, 27);
  assert.equal(h.protectedModeOffset, 28 * 512);
  assert.equal(h.version, 0x020f);
  assert.equal(protocolString(h.version), '2.15');
  assert.equal(h.loadflags, 1);
  assert.equal(h.initrdAddrMax, 0x37ffffff);
  assert.equal(h.kernelAlignment, 0x200000);
  assert.equal(h.relocatable, true);
  assert.equal(h.xloadflags, 0x7f);
  assert.equal(h.cmdlineSize, 4095);
  assert.equal(h.payloadOffset, 0x400);
  assert.equal(h.payloadLength, 5);
  assert.equal(h.prefAddress, 0x1000000);
  assert.equal(h.initSize, 0x3378000);
  assert.equal(h.headerEnd, 0x202 + 0x6a);
  assert.equal(h.kernelVersion, '6.1.0-test (me@x) #1 SMP');
  assert.deepEqual([...payloadOf(bz, h, 'bz')], [...payload]);
});

test('setup_sects 0 means 4', () => {
  const h = parseSetupHeader(makeBzImage({ payload: new Uint8Array(8), setupSects: 0 }), 'bz');
  assert.equal(h.setupSects, 4);
  assert.equal(h.protectedModeOffset, 5 * 512);
});

test('fields newer than the protocol are not read', () => {
  const h = parseSetupHeader(makeBzImage({ payload: new Uint8Array(8), version: 0x0206 }), 'bz');
  assert.equal(h.xloadflags, 0);
  assert.equal(h.payloadOffset, undefined);
  assert.equal(h.prefAddress, undefined);
  assertBootError(() => payloadOf(makeBzImage({ payload: new Uint8Array(8), version: 0x0206 }), h, 'bz'), /2\.08/);
});

test('errors: not a bzImage, old protocol, damaged file', () => {
  const text = new Uint8Array(4096).fill(0x41);
  assertBootError(() => parseSetupHeader(text, '/tmp/notes.txt'),
    /^\/tmp\/notes\.txt is not a Linux bzImage \(no HdrS signature\); pass a bzImage, an ELF vmlinux or a multiboot ELF$/);
  assertBootError(() => parseSetupHeader(new Uint8Array(10), 'tiny'), /not a Linux bzImage/);
  assertBootError(() => parseSetupHeader(makeBzImage({ payload: new Uint8Array(8), version: 0x0204 }), 'old'),
    /old uses Linux boot protocol 2\.04; tsvm needs 2\.06 or newer/);
  const noFlag = makeBzImage({ payload: new Uint8Array(8) });
  noFlag[0x1fe] = 0;
  assertBootError(() => parseSetupHeader(noFlag, 'bz'), /0xAA55/);
  const bz = makeBzImage({ payload: new Uint8Array(100) });
  const h = parseSetupHeader(bz, 'bz');
  assertBootError(() => payloadOf(bz.subarray(0, bz.length - 10), h, 'bz'), /truncated or damaged/);
});
