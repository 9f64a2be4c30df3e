// The guest's physical memory map as the BIOS INT 15h, AX=E820h call would report it (ACPI 6.4
// section 15, "System Address Map Interfaces"). Linux reads it from the zero page, PVH guests from
// hvm_start_info's memmap, multiboot guests from the mmap list; all three use the same entries.
import { BootError } from './boot-plan.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { BIOS_AREA_END, EBDA_START } from '../vmm/platform-layout.js';

/** Address range types (ACPI 6.4 table 15.312; Linux's E820_TYPE_*). */
export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;
export const E820_UNUSABLE = 5;
export type E820Type = number;

export interface E820Entry {
  addr: number;
  size: number;
  type: E820Type;
}

/** The zero page holds at most this many entries (zero-page.rst: e820_table, E820_MAX_ENTRIES_ZEROPAGE). */
export const E820_MAX_ZEROPAGE = 128;

/** Remove [addr, addr+size) from every entry, splitting those it falls inside. */
function carve(entries: E820Entry[], addr: number, size: number): E820Entry[] {
  const end = addr + size;
  const out: E820Entry[] = [];
  for (const e of entries) {
    const eEnd = e.addr + e.size;
    if (eEnd <= addr || e.addr >= end) {
      out.push(e);
      continue;
    }
    if (e.addr < addr) out.push({ addr: e.addr, size: addr - e.addr, type: e.type });
    if (eEnd > end) out.push({ addr: end, size: eEnd - end, type: e.type });
  }
  return out;
}

/**
 * The map for `mem`: RAM 0..EBDA_START (640 KiB less the 1 KiB EBDA), reserved EBDA_START..1 MiB
 * (EBDA, VGA window, option ROMs, BIOS; our ACPI tables live there), RAM from 1 MiB to the end of
 * low RAM, RAM above 4 GiB if any, firmware ROM reserved. `extra` ranges (e.g. ACPI tables or
 * MMIO windows elsewhere) override whatever they overlap; later ones win. Sorted, no overlaps.
 */
export function buildE820(mem: GuestMemory, extra: readonly E820Entry[] = []): E820Entry[] {
  let entries: E820Entry[] = [];
  for (const r of mem.regions) {
    if (r.readonly) {
      entries.push({ addr: r.gpa, size: r.size, type: E820_RESERVED });
    } else if (r.gpa === 0) {
      entries.push({ addr: 0, size: Math.min(r.size, EBDA_START), type: E820_RAM });
      if (r.size > BIOS_AREA_END) entries.push({ addr: BIOS_AREA_END, size: r.size - BIOS_AREA_END, type: E820_RAM });
    } else {
      entries.push({ addr: r.gpa, size: r.size, type: E820_RAM });
    }
  }
  entries.push({ addr: EBDA_START, size: BIOS_AREA_END - EBDA_START, type: E820_RESERVED });
  for (const x of extra) {
    if (!Number.isSafeInteger(x.addr) || !Number.isSafeInteger(x.size) || x.addr < 0 || x.size <= 0) {
      throw new BootError(`invalid e820 range 0x${x.addr.toString(16)}+0x${x.size.toString(16)}`);
    }
    entries = carve(entries, x.addr, x.size);
    entries.push({ addr: x.addr, size: x.size, type: x.type });
  }
  entries = entries.filter((e) => e.size > 0).sort((a, b) => a.addr - b.addr);
  // Join neighbours of one type, so that carving leaves no needless splits.
  const merged: E820Entry[] = [];
  for (const e of entries) {
    const last = merged[merged.length - 1];
    if (last && last.type === e.type && last.addr + last.size === e.addr) last.size += e.size;
    else merged.push({ ...e });
  }
  return merged;
}

/** Bytes per entry in the zero page's e820_table: u64 addr, u64 size, u32 type, packed (zero-page.rst). */
export const E820_ZEROPAGE_ENTRY_SIZE = 20;

/** Write entries in the zero-page layout (20 bytes each) at `offset` of `view`. */
export function writeE820ZeroPage(view: DataView, offset: number, entries: readonly E820Entry[]): void {
  if (entries.length > E820_MAX_ZEROPAGE) {
    throw new BootError(`the memory map has ${entries.length} entries; the zero page holds ${E820_MAX_ZEROPAGE}`);
  }
  entries.forEach((e, i) => {
    const at = offset + i * E820_ZEROPAGE_ENTRY_SIZE;
    view.setBigUint64(at, BigInt(e.addr), true);
    view.setBigUint64(at + 8, BigInt(e.size), true);
    view.setUint32(at + 16, e.type, true);
  });
}
