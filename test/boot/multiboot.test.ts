import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory, MiB } from '../../src/memory/guest-memory.js';
import { BootError } from '../../src/boot/boot-plan.js';
import {
  MB_HEADER_AOUT_KLUDGE, MB_INFO, MB_INFO_BOOT_LOADER_NAME, MB_INFO_CMDLINE, MB_INFO_MEMORY, MB_INFO_MEM_MAP, MB_INFO_MODS,
  MULTIBOOT_BOOTLOADER_MAGIC, findMultibootHeader, isMultiboot, loadMultiboot,
} from '../../src/boot/multiboot.js';
import { MULTIBOOT_INFO_ADDR } from '../../src/vmm/platform-layout.js';
import { CR0_PE, CR0_PG } from '../../src/accel/cpu-state.js';

const MAGIC = 0x1badb002;

/** A multiboot header: magic, flags, checksum, then the a.out kludge fields if given. */
function mbHeader(flags: number, fields: number[] = [], checksum = (-(MAGIC + flags)) >>> 0): Uint8Array {
  const b = new Uint8Array(12 + 4 * fields.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, checksum, true);
  fields.forEach((f, i) => v.setUint32(12 + 4 * i, f, true));
  return b;
}

interface Seg { paddr: number; data: Uint8Array; memsz: number; vaddr?: number }

/**
 * A minimal ELF32 executable like kvm-unit-tests' .flat: ELF header, program headers, the
 * multiboot header at `mbOffset` (default 0x100), segment contents from file offset 0x1000.
 */
function elf32(segs: Seg[], entry: number, opts: { mbOffset?: number; mb?: Uint8Array; cls?: number; machine?: number } = {}): Uint8Array {
  let fileOff = 0x2000;
  const offsets = segs.map((s) => {
    const o = fileOff;
    fileOff += s.data.length;
    return o;
  });
  const b = new Uint8Array(Math.max(fileOff, 0x2000));
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, opts.cls ?? 1, 1, 1], 0);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, opts.machine ?? 3, true); // EM_386
  v.setUint32(20, 1, true);
  v.setUint32(24, entry, true);
  v.setUint32(28, 52, true); // e_phoff
  v.setUint16(40, 52, true);
  v.setUint16(42, 32, true);
  v.setUint16(44, segs.length, true);
  segs.forEach((s, i) => {
    const p = 52 + 32 * i;
    v.setUint32(p, 1, true); // PT_LOAD
    v.setUint32(p + 4, offsets[i], true);
    v.setUint32(p + 8, s.vaddr ?? s.paddr, true);
    v.setUint32(p + 12, s.paddr, true);
    v.setUint32(p + 16, s.data.length, true);
    v.setUint32(p + 20, s.memsz, true);
    v.setUint32(p + 24, 7, true);
    v.setUint32(p + 28, 0x1000, true);
  });
  segs.forEach((s, i) => b.set(s.data, offsets[i]));
  b.set(opts.mb ?? mbHeader(0), opts.mbOffset ?? 0x100);
  return b;
}

const code = Uint8Array.from({ length: 300 }, (_, i) => (i * 7 + 1) & 0xff);
const flat = (): Uint8Array => elf32([{ paddr: 0x400000, data: code, memsz: 0x3000 }], 0x400010);

function cstr(mem: GuestMemory, addr: number): string {
  let s = '';
  for (let a = addr; mem.readU8(a) !== 0; a++) s += String.fromCharCode(mem.readU8(a));
  return s;
}

test('header detection: aligned, valid checksum, inside the first 8 KiB', () => {
  assert.ok(isMultiboot(flat()));
  const h = findMultibootHeader(flat());
  assert.equal(h?.offset, 0x100);
  assert.equal(h?.flags, 0);
  // Bad checksum.
  assert.ok(!isMultiboot(elf32([{ paddr: 0x400000, data: code, memsz: 300 }], 0x400000, { mb: mbHeader(0, [], 0) })));
  // Misaligned.
  assert.ok(!isMultiboot(elf32([{ paddr: 0x400000, data: code, memsz: 300 }], 0x400000, { mbOffset: 0x102 })));
  // Last position that still fits in 8 KiB, and one past it.
  const at = (off: number): Uint8Array => {
    const b = new Uint8Array(0x3000);
    b.set(mbHeader(0), off);
    return b;
  };
  assert.ok(isMultiboot(at(8192 - 12)));
  assert.ok(!isMultiboot(at(8192)));
  assert.ok(!isMultiboot(new Uint8Array(16)));
});

test('loads the ELF segments, zeroes bss, and enters 32-bit protected mode with EAX/EBX set', () => {
  const mem = new GuestMemory(64 * MiB);
  mem.fill(0x400000, 0x4000, 0xaa); // stale bytes where bss goes
  const plan = loadMultiboot(mem, { kernel: flat(), kernelPath: 'x86/sieve.flat', cmdline: '' });
  assert.deepEqual(mem.read(0x400000, code.length), code);
  assert.ok(mem.read(0x400000 + code.length, 0x3000 - code.length).every((x) => x === 0), 'bss zeroed');
  assert.ok(mem.readU32(MULTIBOOT_INFO_ADDR + MB_INFO.cmdline) >= 0x403000, 'strings placed past the bss');
  const c = plan.cpu;
  assert.equal(c.regs.rip, 0x400010n);
  assert.equal(c.regs.rax, BigInt(MULTIBOOT_BOOTLOADER_MAGIC));
  assert.equal(c.regs.rbx, BigInt(MULTIBOOT_INFO_ADDR));
  assert.equal(c.cr0 & CR0_PE, CR0_PE);
  assert.equal(c.cr0 & CR0_PG, 0n);
  assert.equal(c.regs.rflags & (1n << 9n), 0n, 'interrupts off');
  assert.ok(c.cs.db && c.cs.g && c.cs.base === 0n && c.cs.limit === 0xffffffff);
  assert.equal(c.ds.base, 0n);
  assert.match(plan.summary, /multiboot ELF32/);
});

test('the information structure: memory, cmdline with argv[0], modules, memory map, loader name', () => {
  const mem = new GuestMemory(128 * MiB);
  const env = new TextEncoder().encode('NR_CPUS=2\nMEMSIZE=128\n');
  const extra = new Uint8Array(5000).fill(3);
  loadMultiboot(mem, {
    kernel: flat(), kernelPath: 'x86/msr.flat', cmdline: 'arg1 arg2',
    modules: [{ data: env, cmdline: 'env' }, { data: extra, cmdline: 'second module' }],
  });
  const i = MULTIBOOT_INFO_ADDR;
  const flags = mem.readU32(i + MB_INFO.flags);
  for (const f of [MB_INFO_MEMORY, MB_INFO_CMDLINE, MB_INFO_MODS, MB_INFO_MEM_MAP, MB_INFO_BOOT_LOADER_NAME]) {
    assert.equal(flags & f, f);
  }
  assert.equal(mem.readU32(i + MB_INFO.memLower), 639);
  assert.equal(mem.readU32(i + MB_INFO.memUpper), (128 * MiB - MiB) / 1024);
  assert.equal(cstr(mem, mem.readU32(i + MB_INFO.cmdline)), 'x86/msr.flat arg1 arg2');
  assert.equal(cstr(mem, mem.readU32(i + MB_INFO.bootLoaderName)), 'tsvm');

  assert.equal(mem.readU32(i + MB_INFO.modsCount), 2);
  const mods = mem.readU32(i + MB_INFO.modsAddr);
  const kernelEnd = 0x403000;
  let prevEnd = kernelEnd;
  [[env, 'env'], [extra, 'second module']].forEach(([data, str], k) => {
    const e = mods + 16 * k;
    const start = mem.readU32(e);
    const end = mem.readU32(e + 4);
    assert.equal(start % 4096, 0, 'page-aligned');
    assert.ok(start >= prevEnd, 'above the kernel and the previous module');
    assert.equal(end - start, (data as Uint8Array).length);
    assert.deepEqual(mem.read(start, end - start), data);
    assert.equal(cstr(mem, mem.readU32(e + 8)), str);
    prevEnd = end;
  });

  const mmapLen = mem.readU32(i + MB_INFO.mmapLength);
  const mmapAddr = mem.readU32(i + MB_INFO.mmapAddr);
  const entries: [number, number, number][] = [];
  for (let a = mmapAddr; a < mmapAddr + mmapLen; a += mem.readU32(a) + 4) {
    assert.equal(mem.readU32(a), 20);
    entries.push([Number(mem.readU64(a + 4)), Number(mem.readU64(a + 12)), mem.readU32(a + 20)]);
  }
  assert.deepEqual(entries, [
    [0, 0x9fc00, 1],
    [0x9fc00, 0x100000 - 0x9fc00, 2],
    [0x100000, 128 * MiB - MiB, 1],
  ]);
});

test('without --append the command line is just the kernel path; no modules means no MODS flag', () => {
  const mem = new GuestMemory(16 * MiB);
  loadMultiboot(mem, { kernel: flat(), kernelPath: '/tmp/a.flat', cmdline: '' });
  assert.equal(cstr(mem, mem.readU32(MULTIBOOT_INFO_ADDR + MB_INFO.cmdline)), '/tmp/a.flat');
  assert.equal(mem.readU32(MULTIBOOT_INFO_ADDR + MB_INFO.flags) & MB_INFO_MODS, 0);
  assert.equal(mem.readU32(MULTIBOOT_INFO_ADDR + MB_INFO.modsCount), 0);
});

test('a kernel loaded low (like realmode.flat at 0x8000) keeps modules and strings above 1 MiB', () => {
  const mem = new GuestMemory(16 * MiB);
  const k = elf32([{ paddr: 0x8000, data: code, memsz: 0x1000 }], 0x8000);
  loadMultiboot(mem, { kernel: k, kernelPath: 'realmode.flat', cmdline: '', modules: [{ data: code, cmdline: 'env' }] });
  const mods = mem.readU32(MULTIBOOT_INFO_ADDR + MB_INFO.modsAddr);
  assert.ok(mem.readU32(mods) >= 0x100000);
  assert.ok(mem.readU32(MULTIBOOT_INFO_ADDR + MB_INFO.cmdline) >= 0x100000);
  assert.deepEqual(mem.read(0x8000, code.length), code);
});

test('virtual entry addresses are translated to the physical load address', () => {
  const mem = new GuestMemory(16 * MiB);
  const k = elf32([{ paddr: 0x200000, vaddr: 0xc0200000, data: code, memsz: 0x1000 }], 0xc0200020);
  const plan = loadMultiboot(mem, { kernel: k, kernelPath: 'k', cmdline: '' });
  assert.equal(plan.cpu.regs.rip, 0x200020n);
});

test('the a.out kludge (flags bit 16) loads from the header address fields', () => {
  // File: header at offset 0x40; image = whole file loaded at 0x100000 (header_addr = 0x100040).
  const file = new Uint8Array(0x800);
  file.fill(0x5a, 0x100);
  const hdr = mbHeader(MB_HEADER_AOUT_KLUDGE, [0x100040, 0x100000, 0x100800, 0x102000, 0x100100]);
  file.set(hdr, 0x40);
  const mem = new GuestMemory(16 * MiB);
  mem.fill(0x100800, 0x1800, 0xff);
  const plan = loadMultiboot(mem, { kernel: file, kernelPath: 'aout', cmdline: '' });
  assert.deepEqual(mem.read(0x100000, 0x800), file);
  assert.ok(mem.read(0x100800, 0x1800).every((x) => x === 0), 'bss zeroed');
  assert.equal(plan.cpu.regs.rip, 0x100100n);
  assert.match(plan.summary, /a\.out-kludge/);
});

test('clear errors for bad kernels', () => {
  const mem = new GuestMemory(16 * MiB);
  const load = (kernel: Uint8Array) => () => loadMultiboot(mem, { kernel, kernelPath: 'k.flat', cmdline: '' });
  const err = (re: RegExp) => (e: unknown) => e instanceof BootError && re.test(e.message) && e.message.startsWith('k.flat');
  assert.throws(load(new Uint8Array(0x3000)), err(/no multiboot header/));
  assert.throws(load(elf32([{ paddr: 0x400000, data: code, memsz: 300 }], 0x400000, { mb: mbHeader(0, [], 1) })), err(/bad checksum/));
  assert.throws(load(elf32([{ paddr: 0x400000, data: code, memsz: 300 }], 0x400000, { mb: mbHeader(1 << 5) })), err(/requires features/));
  assert.throws(load(elf32([{ paddr: 0x400000, data: code, memsz: 300 }], 0x400000, { cls: 2 })), err(/64-bit ELF/));
  assert.throws(load(elf32([{ paddr: 0x400000, data: code, memsz: 300 }], 0x400000, { machine: 40 })), err(/machine 40 is not/));
  assert.throws(load(elf32([{ paddr: 0x400000, data: code, memsz: 300 }], 0x400000, { machine: 62 })), err(/not i386/));
  const notElf = new Uint8Array(0x2000);
  notElf.set(mbHeader(0), 0x100);
  assert.throws(load(notElf), err(/not an ELF file/));
  assert.throws(load(elf32([{ paddr: 0x2000000, data: code, memsz: 300 }], 0x2000000)), err(/outside guest RAM/));
  assert.throws(load(elf32([{ paddr: 0xf0000000, data: code, memsz: 300 }], 0xf0000000)), err(/outside guest RAM/));
  assert.throws(load(elf32([{ paddr: 0xa0000, data: code, memsz: 300 }], 0xa0000)), err(/reserved BIOS area/));
  assert.throws(load(elf32([{ paddr: 0x6000, data: code, memsz: 300 }], 0x6000)), err(/multiboot information/));
  assert.throws(load(elf32([{ paddr: 0x400000, data: code, memsz: 300 }], 0x500000)), err(/entry point 0x500000 is outside/));
  const short = elf32([{ paddr: 0x400000, data: code, memsz: 300 }], 0x400000);
  new DataView(short.buffer).setUint32(52 + 16, 0x100000, true); // filesz past the end of the file
  new DataView(short.buffer).setUint32(52 + 20, 0x100000, true);
  assert.throws(load(short), err(/truncated/));
  // Modules that do not fit in RAM.
  assert.throws(
    () => loadMultiboot(mem, { kernel: flat(), kernelPath: 'k.flat', cmdline: '', modules: [{ data: new Uint8Array(13 * MiB), cmdline: 'big' }] }),
    err(/give the VM more memory/),
  );
});
