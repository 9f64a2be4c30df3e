// Helpers shared by the ACPI tests: read tables back out of guest memory the way an OS does.
import type { GuestMemory } from '../../src/memory/guest-memory.js';

export function sum8(b: Uint8Array): number {
  return b.reduce((s, x) => (s + x) & 0xff, 0);
}

export function sig(mem: GuestMemory, addr: number, len = 4): string {
  return String.fromCharCode(...mem.read(addr, len));
}

/** The RSDP as an OS finds it: scan 0xE0000-0xFFFFF on 16-byte boundaries (ACPI 6.4 §5.2.5.1). */
export function scanRsdp(mem: GuestMemory): number {
  for (let a = 0xe0000; a < 0x100000; a += 16) {
    if (sig(mem, a, 8) === 'RSD PTR ' && sum8(mem.read(a, 20)) === 0) return a;
  }
  return -1;
}

/** A whole table (header length) at `addr`. */
export function table(mem: GuestMemory, addr: number): Uint8Array {
  return mem.read(addr, mem.readU32(addr + 4));
}

/** Table addresses listed by the XSDT the RSDP points to. */
export function xsdtEntries(mem: GuestMemory, rsdp: number): number[] {
  const xsdt = Number(mem.readU64(rsdp + 24));
  const len = mem.readU32(xsdt + 4);
  const out: number[] = [];
  for (let off = 36; off < len; off += 8) out.push(Number(mem.readU64(xsdt + off)));
  return out;
}

/** Find a table by signature through the XSDT. */
export function findTable(mem: GuestMemory, rsdp: number, signature: string): number {
  const a = xsdtEntries(mem, rsdp).find((t) => sig(mem, t) === signature);
  if (a === undefined) throw new Error(`no ${signature} in the XSDT`);
  return a;
}
