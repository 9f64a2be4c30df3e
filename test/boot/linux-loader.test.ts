import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { BootError } from '../../src/boot/boot-plan.js';
import { CR0_PE, CR0_PG, EFER_LMA, EFER_LME } from '../../src/accel/cpu-state.js';
import {
  BOOT_STACK_TOP, loadLinux, placeInitrd, RNG_SEED_BYTES, SETUP_RNG_SEED, PVH_MEMMAP_ENTRY_SIZE, PVH_MODLIST_ENTRY_SIZE, PVH_START_INFO_SIZE,
  XEN_HVM_START_MAGIC, ZP_ACPI_RSDP_ADDR, ZP_E820_ENTRIES, ZP_E820_TABLE, ZP_EXT_CMD_LINE_PTR,
  ZP_EXT_RAMDISK_IMAGE, ZP_EXT_RAMDISK_SIZE,
} from '../../src/boot/linux-loader.js';
import { GDT_CODE32 } from '../../src/boot/page-tables.js';
import { GiB, GuestMemory, MiB } from '../../src/memory/guest-memory.js';
import {
  BOOT_CMDLINE_ADDR, BOOT_GDT_ADDR, BOOT_PAGE_TABLES_ADDR, BOOT_PARAMS_ADDR, BOOT_SETUP_DATA_ADDR, PVH_START_INFO_ADDR,
} from '../../src/vmm/platform-layout.js';
import { HDR_SETUP_DATA } from '../../src/boot/setup-header.js';
import { lz4Block, lz4LegacyFrame, makeBzImage, makeVmlinux, runTool, toolMissing, withSizeTrailer } from './fixtures.js';
import { allocateSoftMemory } from '../../src/accel/soft/soft-memory.js';

function assertBootError(f: () => unknown, re?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof BootError, `expected a BootError, got ${String(e)}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

const vmlinux = makeVmlinux();
const gzPayload = withSizeTrailer(gzipSync(vmlinux), vmlinux.length);
const bzImage = makeBzImage({ payload: gzPayload, initSize: 0x800000, kernelVersion: '6.1.0-test (t@t) #1' });
const initrd = Uint8Array.from({ length: 3 * 4096 + 100 }, (_, i) => (i * 13) & 0xff);
const cmdline = 'console=ttyS0 root=/dev/vda panic=-1';

test('zero page field offsets are the ones zero-page.rst documents', () => {
  assert.equal(ZP_ACPI_RSDP_ADDR, 0x070);
  assert.equal(ZP_EXT_RAMDISK_IMAGE, 0x0c0);
  assert.equal(ZP_EXT_RAMDISK_SIZE, 0x0c4);
  assert.equal(ZP_EXT_CMD_LINE_PTR, 0x0c8);
  assert.equal(ZP_E820_ENTRIES, 0x1e8);
  assert.equal(ZP_E820_TABLE, 0x2d0);
  assert.equal(XEN_HVM_START_MAGIC, 0x336ec578);
  assert.equal(PVH_START_INFO_SIZE, 56);
  assert.equal(PVH_MODLIST_ENTRY_SIZE, 32);
  assert.equal(PVH_MEMMAP_ENTRY_SIZE, 24);
});

test("mode 'elf': payload decompressed, vmlinux loaded, 64-bit entry at startup_64 with RSI = zero page", () => {
  const mem = new GuestMemory(64 * MiB);
  const plan = loadLinux(mem, { kernelPath: 'bz', kernel: bzImage, initrd, cmdline, rsdpAddr: 0xe0000 });
  assert.match(plan.summary, /^Linux 6\.1\.0-test bzImage \(gzip payload decompressed on the host in \d+ ms\), 64-bit entry at 0x1000000/);
  const { cpu, layout } = plan;
  assert.equal(layout.mode, 'elf');
  assert.equal(layout.payloadFormat, 'gzip');
  assert.equal(cpu.regs.rip, 0x1000000n);
  assert.equal(cpu.regs.rsi, BigInt(BOOT_PARAMS_ADDR));
  assert.equal(cpu.regs.rsp, BigInt(BOOT_STACK_TOP));
  assert.equal(cpu.cr3, BigInt(BOOT_PAGE_TABLES_ADDR));
  assert.ok(cpu.cr0 & CR0_PG && cpu.efer & EFER_LMA && cpu.efer & EFER_LME);
  assert.equal(cpu.cs.selector, 0x10);
  assert.equal(cpu.cs.l, true);
  assert.equal(cpu.ds.selector, 0x18);
  assert.equal(cpu.gdt.base, BigInt(BOOT_GDT_ADDR));
  // The kernel image: text at 16 MiB, data + zeroed bss at 18 MiB.
  assert.equal(mem.readU8(0x1000000), 3);
  assert.equal(mem.readU8(0x1200000), 0xdd);
  assert.equal(mem.readU8(0x1202000), 0);
  // The kernel claims at least load address + init_size.
  assert.equal(layout.kernelStart, 0x1000000);
  assert.equal(layout.kernelEnd, 0x1800000);

  const zp = BOOT_PARAMS_ADDR;
  // Header copied from 0x1F1 to 0x202 + byte at 0x201, except the fields the loader sets
  // (type_of_loader, loadflags, ramdisk_*, heap_end_ptr, cmd_line_ptr, setup_data).
  const setByLoader = [0x210, 0x211, 0x218, 0x219, 0x21a, 0x21b, 0x21c, 0x21d, 0x21e, 0x21f, 0x224, 0x225, 0x228, 0x229, 0x22a, 0x22b];
  for (let i = 0; i < 8; i++) setByLoader.push(HDR_SETUP_DATA + i);
  for (let off = 0x1f1; off < 0x202 + bzImage[0x201]; off++) {
    if (setByLoader.includes(off)) continue;
    assert.equal(mem.readU8(zp + off), bzImage[off], `header byte 0x${off.toString(16)}`);
  }
  assert.equal(mem.readU8(zp + 0x202 + bzImage[0x201]), 0); // nothing past the header
  assert.equal(mem.readU16(zp + 0x1fe), 0xaa55);
  assert.equal(mem.readU32(zp + 0x202), 0x53726448);
  assert.equal(mem.readU8(zp + 0x210), 0xff); // type_of_loader
  assert.equal(mem.readU8(zp + 0x211) & 0x83, 0x81); // LOADED_HIGH | CAN_USE_HEAP, no KASLR_FLAG
  assert.equal(mem.readU16(zp + 0x224), 0xfe00); // heap_end_ptr
  assert.equal(mem.readU32(zp + 0x228), BOOT_CMDLINE_ADDR); // cmd_line_ptr
  assert.equal(mem.readU32(zp + 0x0c8), 0); // ext_cmd_line_ptr
  assert.equal(mem.readU32(zp + 0x218), layout.initrdAddr); // ramdisk_image
  assert.equal(mem.readU32(zp + 0x21c), initrd.length); // ramdisk_size
  assert.equal(mem.readU32(zp + 0x0c0), 0);
  assert.equal(mem.readU32(zp + 0x0c4), 0);
  assert.equal(mem.readU64(zp + 0x070), 0xe0000n); // acpi_rsdp_addr
  assert.equal(mem.readU8(zp + 0x1ef), 0); // sentinel
  // e820: count at 0x1E8, 20-byte entries at 0x2D0.
  assert.equal(mem.readU8(zp + 0x1e8), 3);
  const e = (i: number): [bigint, bigint, number] =>
    [mem.readU64(zp + 0x2d0 + i * 20), mem.readU64(zp + 0x2d0 + i * 20 + 8), mem.readU32(zp + 0x2d0 + i * 20 + 16)];
  assert.deepEqual(e(0), [0n, 0x9fc00n, 1]);
  assert.deepEqual(e(1), [0x9fc00n, 0x60400n, 2]);
  assert.deepEqual(e(2), [0x100000n, BigInt(63 * MiB), 1]);
  // Command line, NUL-terminated.
  const cl = mem.read(BOOT_CMDLINE_ADDR, cmdline.length + 1);
  assert.equal(Buffer.from(cl.subarray(0, cmdline.length)).toString(), cmdline);
  assert.equal(cl[cmdline.length], 0);
  // initrd: page aligned, as high as possible, above the kernel.
  const at = layout.initrdAddr!;
  assert.equal(at % 4096, 0);
  assert.equal(at, Math.floor((64 * MiB - initrd.length) / 4096) * 4096);
  assert.ok(at >= layout.kernelEnd);
  assert.deepEqual(mem.read(at, initrd.length), initrd);
});

test("mode 'pvh': 32-bit entry at the PHYS32 note with EBX = hvm_start_info", () => {
  const mem = new GuestMemory(64 * MiB);
  const plan = loadLinux(mem, { kernelPath: 'bz', kernel: bzImage, initrd, cmdline, rsdpAddr: 0xe0000, mode: 'pvh' });
  const { cpu, layout } = plan;
  assert.equal(cpu.regs.rip, 0x1000850n);
  assert.equal(cpu.regs.rbx, BigInt(PVH_START_INFO_ADDR));
  assert.ok(cpu.cr0 & CR0_PE);
  assert.equal(cpu.cr0 & CR0_PG, 0n);
  assert.equal(cpu.efer, 0n);
  assert.equal(cpu.cs.l, false);
  assert.equal(cpu.cs.db, true);
  assert.equal(cpu.cs.selector, 0x10);
  assert.equal(cpu.gdt.base, BigInt(BOOT_GDT_ADDR));
  assert.equal(mem.readU64(BOOT_GDT_ADDR + 0x10), GDT_CODE32);

  const si = PVH_START_INFO_ADDR;
  assert.equal(mem.readU32(si + 0), 0x336ec578); // magic
  assert.equal(mem.readU32(si + 4), 1); // version
  assert.equal(mem.readU32(si + 8), 0); // flags
  assert.equal(mem.readU32(si + 12), 1); // nr_modules
  const modlist = Number(mem.readU64(si + 16));
  assert.equal(mem.readU64(si + 24), BigInt(BOOT_CMDLINE_ADDR)); // cmdline_paddr
  assert.equal(mem.readU64(si + 32), 0xe0000n); // rsdp_paddr
  const memmap = Number(mem.readU64(si + 40));
  assert.equal(mem.readU32(si + 48), 3); // memmap_entries
  assert.equal(mem.readU32(si + 52), 0); // reserved
  // The module list and map live after the 56-byte structure, inside the start-info page.
  assert.ok(modlist >= si + 56 && memmap >= modlist + 32 && memmap + 3 * 24 <= si + 4096);
  assert.equal(mem.readU64(modlist), BigInt(layout.initrdAddr!));
  assert.equal(mem.readU64(modlist + 8), BigInt(initrd.length));
  assert.equal(mem.readU64(modlist + 16), 0n);
  const m = (i: number): [bigint, bigint, number, number] => [
    mem.readU64(memmap + i * 24), mem.readU64(memmap + i * 24 + 8), mem.readU32(memmap + i * 24 + 16), mem.readU32(memmap + i * 24 + 20),
  ];
  assert.deepEqual(m(0), [0n, 0x9fc00n, 1, 0]);
  assert.deepEqual(m(1), [0x9fc00n, 0x60400n, 2, 0]);
  assert.deepEqual(m(2), [0x100000n, BigInt(63 * MiB), 1, 0]);
  assert.match(plan.summary, /PVH 32-bit entry at 0x1000850/);
});

test("mode 'bzimage-64': protected-mode code at pref_address, entry at +0x200", () => {
  const mem = new GuestMemory(64 * MiB);
  const plan = loadLinux(mem, { kernelPath: 'bz', kernel: bzImage, cmdline, mode: 'bzimage-64' });
  assert.equal(plan.cpu.regs.rip, 0x1000200n);
  assert.equal(plan.cpu.regs.rsi, BigInt(BOOT_PARAMS_ADDR));
  assert.equal(mem.readU8(0x1000000), 0x90);
  assert.deepEqual(mem.read(0x1000400, 16), gzPayload.subarray(0, 16));
  assert.equal(plan.layout.kernelEnd, 0x1000000 + 0x800000);
  assert.equal(plan.layout.payloadFormat, undefined);
  // An unaligned pref_address of a relocatable kernel is rounded up to kernel_alignment.
  const odd = makeBzImage({ payload: gzPayload, prefAddress: 0x1100000, kernelAlignment: 0x1000000 });
  assert.equal(loadLinux(new GuestMemory(64 * MiB), { kernelPath: 'bz', kernel: odd, cmdline: '', mode: 'bzimage-64' }).cpu.regs.rip, 0x2000200n);
  // No 64-bit entry point.
  const old = makeBzImage({ payload: gzPayload, xloadflags: 0 });
  assertBootError(() => loadLinux(new GuestMemory(64 * MiB), { kernelPath: 'old', kernel: old, cmdline: '', mode: 'bzimage-64' }),
    /no 64-bit entry point/);
});

test('an uncompressed ELF vmlinux boots with a synthesized header; a virtual e_entry is translated', () => {
  const mem = new GuestMemory(64 * MiB);
  const plan = loadLinux(mem, { kernelPath: 'vmlinux', kernel: makeVmlinux({ vaddrEntry: true }), cmdline });
  assert.equal(plan.cpu.regs.rip, 0x1000000n);
  assert.match(plan.summary, /ELF vmlinux/);
  assert.equal(mem.readU16(BOOT_PARAMS_ADDR + 0x1fe), 0xaa55);
  assert.equal(mem.readU32(BOOT_PARAMS_ADDR + 0x202), 0x53726448);
  assert.equal(mem.readU8(BOOT_PARAMS_ADDR + 0x210), 0xff);
  assert.equal(mem.readU32(BOOT_PARAMS_ADDR + 0x228), BOOT_CMDLINE_ADDR);
  assert.equal(mem.readU32(BOOT_PARAMS_ADDR + 0x238), 2047);
  assertBootError(() => loadLinux(mem, { kernelPath: 'vmlinux', kernel: vmlinux, cmdline, mode: 'bzimage-64' }), /not a bzImage/);
  const plan2 = loadLinux(mem, { kernelPath: 'vmlinux', kernel: vmlinux, cmdline, mode: 'pvh' });
  assert.equal(plan2.cpu.regs.rip, 0x1000850n);
});

test('an LZ4 payload made by the real lz4 -l tool loads', (t) => {
  const missing = toolMissing('lz4');
  if (missing) return t.skip(missing);
  const lz = withSizeTrailer(runTool('lz4', ['-l', '-9', '-c'], vmlinux), vmlinux.length);
  const mem = new GuestMemory(64 * MiB);
  const plan = loadLinux(mem, { kernelPath: 'bz', kernel: makeBzImage({ payload: lz }), cmdline });
  assert.equal(plan.layout.payloadFormat, 'lz4-legacy');
  assert.match(plan.summary, /LZ4 payload decompressed on the host/);
  assert.equal(mem.readU8(0x1000001), 10);
});

test('with guest RAM in a wasm memory, an LZ4 payload is decompressed in guest RAM: same kernel, scratch cleared', () => {
  const lz = withSizeTrailer(lz4LegacyFrame([lz4Block(vmlinux)]), vmlinux.length);
  const kernel = makeBzImage({ payload: lz, initSize: 0x800000 });
  const load = (mem: GuestMemory) => {
    mem.fill(0, mem.ramSize, 0xaa); // as a reboot would leave it
    return loadLinux(mem, { kernelPath: 'bz', kernel, initrd, cmdline });
  };
  const soft = allocateSoftMemory(64 * MiB);
  const plain = new GuestMemory(64 * MiB);
  const a = load(soft);
  const b = load(plain);
  assert.equal(a.layout.payloadFormat, 'lz4-legacy');
  assert.deepEqual(a.cpu.regs.rip, b.cpu.regs.rip);
  assert.deepEqual({ ...a.layout, decompressMs: 0 }, { ...b.layout, decompressMs: 0 });
  // The kernel (segments at 16 MiB and 18 MiB, with .bss) and the initrd, byte for byte.
  const [k0, k1] = [a.layout.kernelStart, a.layout.kernelEnd];
  assert.ok(Buffer.from(soft.slice(k0, k1 - k0)).equals(Buffer.from(plain.slice(k0, k1 - k0))));
  assert.deepEqual(soft.read(a.layout.initrdAddr!, initrd.length), initrd);
  // The image was decoded 2 MiB below pref_address, its input above init_size: both cleared. The
  // ordinary path never wrote there.
  assert.ok(soft.slice(14 * MiB, vmlinux.length).every((x) => x === 0));
  assert.ok(plain.slice(14 * MiB, vmlinux.length).every((x) => x === 0xaa));
  assert.ok(soft.slice(16 * MiB + 0x800000, lz.length - 4).every((x) => x === 0)); // less the size trailer
  assert.ok(soft.slice(20 * MiB, 4 * MiB).every((x) => x === 0xaa), 'RAM beyond the kernel and scratch untouched');
});

test('the zero page carries a setup_data list with a fresh 32-byte RNG seed (SETUP_RNG_SEED)', () => {
  const seeds = [0, 1].map(() => {
    const mem = new GuestMemory(64 * MiB);
    loadLinux(mem, { kernelPath: 'bz', kernel: bzImage, initrd, cmdline });
    const at = Number(mem.readU64(BOOT_PARAMS_ADDR + HDR_SETUP_DATA));
    assert.equal(at, BOOT_SETUP_DATA_ADDR);
    assert.ok(at >= BOOT_CMDLINE_ADDR + 0x10000, 'after the command line area');
    assert.equal(mem.readU64(at), 0n, 'next: the list has one entry');
    assert.equal(mem.readU32(at + 8), SETUP_RNG_SEED);
    assert.equal(mem.readU32(at + 12), RNG_SEED_BYTES);
    const seed = Buffer.from(mem.read(at + 16, RNG_SEED_BYTES));
    assert.ok(seed.some((b) => b !== 0), 'the seed is not all zero');
    return seed.toString('hex');
  });
  assert.notEqual(seeds[0], seeds[1], 'every boot gets its own seed');
  assert.equal(SETUP_RNG_SEED, 9);
});

test('initrd placement: highest page-aligned spot under every limit, never over the kernel', () => {
  const base = { kernelEnd: 0x1800000, lowRamEnd: 512 * MiB, initrdAddrMax: 0x7fffffff };
  assert.equal(placeInitrd({ ...base, size: 4096 }), 512 * MiB - 4096);
  assert.equal(placeInitrd({ ...base, size: 5000 }), 512 * MiB - 8192);
  // initrd_addr_max is inclusive: the initrd may end exactly at initrd_addr_max + 1.
  assert.equal(placeInitrd({ ...base, size: 4096, initrdAddrMax: 0x0fffffff }), 0x10000000 - 4096);
  // Low RAM ends at 3 GiB for big guests; and never above 4 GiB.
  assert.equal(placeInitrd({ ...base, size: 4096, lowRamEnd: 3 * GiB, initrdAddrMax: 0xffffffff }), 3 * GiB - 4096);
  // Exactly fills the space above the kernel.
  assert.equal(placeInitrd({ ...base, size: 512 * MiB - 0x1800000 }), 0x1800000);
  assertBootError(() => placeInitrd({ ...base, size: 512 * MiB - 0x1800000 + 1 }),
    /^guest memory too small for kernel and initrd: need at least 513 MiB, use --memory$/);
  assertBootError(() => placeInitrd({ ...base, size: 300 * MiB, lowRamEnd: 3 * GiB, initrdAddrMax: 0x0fffffff }),
    /initrd limit 0xfffffff/);
});

test('errors: not a kernel, too small a guest, long command line, corrupt payload, no PVH note', () => {
  assertBootError(() => loadLinux(new GuestMemory(64 * MiB), { kernelPath: '/etc/hosts', kernel: new Uint8Array(2048).fill(0x20), cmdline }),
    /^\/etc\/hosts is not a Linux bzImage \(no HdrS signature\); pass a bzImage, an ELF vmlinux or a multiboot ELF$/);
  assertBootError(() => loadLinux(new GuestMemory(16 * MiB), { kernelPath: 'bz', kernel: bzImage, cmdline }),
    /bz needs more memory: .*use --memory/);
  assertBootError(() => loadLinux(new GuestMemory(20 * MiB), { kernelPath: 'bz', kernel: bzImage, cmdline }),
    /init_size.*at least 24 MiB/);
  assertBootError(() => loadLinux(new GuestMemory(28 * MiB), { kernelPath: 'bz', kernel: bzImage, cmdline, initrd: new Uint8Array(8 * MiB) }),
    /memory too small for kernel and initrd: need at least 32 MiB, use --memory/);
  const small = makeBzImage({ payload: gzPayload, cmdlineSize: 10 });
  assertBootError(() => loadLinux(new GuestMemory(64 * MiB), { kernelPath: 'bz', kernel: small, cmdline }),
    new RegExp(`command line is ${cmdline.length} bytes; bz accepts at most 10`));
  const corrupt = bzImage.slice();
  const h = bzImage.length - gzPayload.length;
  for (let i = h + 20; i < h + 60; i++) corrupt[i] ^= 0x5a;
  assertBootError(() => loadLinux(new GuestMemory(64 * MiB), { kernelPath: 'bz', kernel: corrupt, cmdline }),
    /bz: kernel payload: corrupt gzip data/);
  const truncated = bzImage.subarray(0, bzImage.length - 100);
  assertBootError(() => loadLinux(new GuestMemory(64 * MiB), { kernelPath: 'bz', kernel: truncated, cmdline }),
    /truncated or damaged/);
  const noPvh = makeBzImage({ payload: withSizeTrailer(gzipSync(makeVmlinux({ pvh: false })), makeVmlinux({ pvh: false }).length) });
  assertBootError(() => loadLinux(new GuestMemory(64 * MiB), { kernelPath: 'bz', kernel: noPvh, cmdline, mode: 'pvh' }),
    /no PVH entry note/);
  const old = makeBzImage({ payload: gzPayload, version: 0x0205 });
  assertBootError(() => loadLinux(new GuestMemory(64 * MiB), { kernelPath: 'old', kernel: old, cmdline }), /protocol 2\.05/);
});
