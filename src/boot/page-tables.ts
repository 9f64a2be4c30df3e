// Initial paging and GDT for entering a kernel in 64-bit mode (boot.rst, "64-bit Boot Protocol":
// paging enabled with an identity map covering the kernel, the zero page and the command line;
// a GDT whose selector 0x10 is a flat 4 GiB execute/read code segment and 0x18 a flat read/write
// data segment — __BOOT_CS and __BOOT_DS).
//
// Layout at BOOT_PAGE_TABLES_ADDR: one PML4 page, one PDPT page, then one page directory per GiB,
// each mapping 512 pages of 2 MiB (Intel SDM vol. 3A 4.5, tables 4-15, 4-17, 4-18).
import { BootError } from './boot-plan.js';
import { GiB, type GuestMemory } from '../memory/guest-memory.js';
import { BOOT_CMDLINE_ADDR, BOOT_GDT_ADDR, BOOT_PAGE_TABLES_ADDR, EBDA_START } from '../vmm/platform-layout.js';

const PAGE = 4096;
// Paging-structure entry bits (SDM vol. 3A table 4-15 and following).
const PTE_PRESENT = 1n << 0n;
const PTE_WRITABLE = 1n << 1n;
const PTE_PAGE_SIZE = 1n << 7n; // in a PDE: this entry maps a 2 MiB page

/** The identity map always covers at least the 32-bit address space. */
export const MIN_IDENTITY_MAP = 4 * GiB;

/**
 * GDT descriptors (SDM vol. 3A 3.4.5): base 0, limit 0xFFFFF with G=1 (4 GiB), P=1, DPL 0, S=1.
 * Access bytes 0x9B (code, execute/read, accessed) and 0x93 (data, read/write, accessed): the
 * accessed bit is set already so the CPU never writes the descriptor back.
 * Flags nibble: 0xA = G + L for 64-bit code, 0xC = G + D/B for 32-bit code and for data.
 */
export const GDT_CODE64 = 0x00af9b000000ffffn;
export const GDT_CODE32 = 0x00cf9b000000ffffn;
export const GDT_DATA = 0x00cf93000000ffffn;
/** null, null, code at 0x10, data at 0x18 (boot.rst's __BOOT_CS / __BOOT_DS). */
export const GDT_ENTRIES = 4;

export interface LongModeSetup {
  cr3: bigint;
  gdtBase: bigint;
  gdtLimit: number;
  /** Bytes identity-mapped from address 0. */
  mappedBytes: number;
}

/**
 * The highest address the page tables may reach: the first boot structure placed above them
 * (the command line), else the EBDA.
 */
function tablesLimit(): number {
  return BOOT_CMDLINE_ADDR > BOOT_PAGE_TABLES_ADDR ? Math.min(BOOT_CMDLINE_ADDR, EBDA_START) : EBDA_START;
}

/** How many GiB of identity map fit in the space reserved for the tables. */
export function maxIdentityMapBytes(): number {
  const pages = Math.floor((tablesLimit() - BOOT_PAGE_TABLES_ADDR) / PAGE);
  return Math.min(pages - 2, 512) * GiB; // minus PML4 and PDPT; one PDPT holds 512 GiB
}

/** Write a GDT at BOOT_GDT_ADDR: null, null, code (64-bit or 32-bit) at 0x10, data at 0x18. */
export function writeBootGdt(mem: GuestMemory, code: '64' | '32' = '64'): { gdtBase: bigint; gdtLimit: number } {
  const entries = [0n, 0n, code === '64' ? GDT_CODE64 : GDT_CODE32, GDT_DATA];
  entries.forEach((e, i) => mem.writeU64(BOOT_GDT_ADDR + i * 8, e));
  return { gdtBase: BigInt(BOOT_GDT_ADDR), gdtLimit: GDT_ENTRIES * 8 - 1 };
}

/**
 * Build the identity map and the 64-bit GDT.
 * @param mapBytes how much to map from 0 (default: 4 GiB, or up to the end of RAM when there is
 *   more, as far as the table space allows — the kernel builds its own tables at once and only
 *   needs the kernel, zero page, command line and initrd mapped, which we keep below 4 GiB)
 */
export function setupLongModePaging(mem: GuestMemory, mapBytes?: number): LongModeSetup {
  const cap = maxIdentityMapBytes();
  let want: number;
  if (mapBytes === undefined) {
    const top = Math.max(...mem.regions.map((r) => r.gpa + r.size));
    want = Math.min(Math.max(MIN_IDENTITY_MAP, top), cap);
  } else {
    want = mapBytes;
  }
  const gigs = Math.ceil(want / GiB);
  const tablesEnd = BOOT_PAGE_TABLES_ADDR + (2 + gigs) * PAGE;
  if (gigs < 1 || tablesEnd > tablesLimit()) {
    throw new BootError(
      `the boot page tables for ${gigs} GiB would end at 0x${tablesEnd.toString(16)}, past 0x${tablesLimit().toString(16)}`,
    );
  }
  const pml4 = BOOT_PAGE_TABLES_ADDR;
  const pdpt = pml4 + PAGE;
  const pd0 = pdpt + PAGE;
  mem.fill(pml4, tablesEnd - pml4, 0);
  mem.writeU64(pml4, BigInt(pdpt) | PTE_PRESENT | PTE_WRITABLE);
  for (let g = 0; g < gigs; g++) {
    const pd = pd0 + g * PAGE;
    mem.writeU64(pdpt + g * 8, BigInt(pd) | PTE_PRESENT | PTE_WRITABLE);
    for (let i = 0; i < 512; i++) {
      const phys = BigInt(g) * BigInt(GiB) + BigInt(i) * 0x200000n;
      mem.writeU64(pd + i * 8, phys | PTE_PRESENT | PTE_WRITABLE | PTE_PAGE_SIZE);
    }
  }
  const gdt = writeBootGdt(mem, '64');
  return { cr3: BigInt(pml4), ...gdt, mappedBytes: gigs * GiB };
}
