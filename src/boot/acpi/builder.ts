// Lays the ACPI tables out in guest memory for a direct kernel boot (Linux, PVH, multiboot).
//
// Layout, all inside [ACPI_TABLES_START, ACPI_TABLES_END) = 0xE0000-0xF0000, which the e820 map
// reports as reserved (the BIOS area):
//   RSDP at ACPI_TABLES_START (16-byte aligned, so the OS's scan of 0xE0000-0xFFFFF on 16-byte
//        boundaries finds it; ACPI 6.4 §5.2.5.1), then
//   FACS (64-byte aligned, §5.2.10), DSDT, FADT, MADT, the caller's extra tables (MCFG, SSDTs,
//   ...), XSDT and RSDT, each 16-byte aligned.
// The RSDP points to both the XSDT (what an ACPI 2.0+ OS uses) and the RSDT (for 32-bit-only
// readers such as kvm-unit-tests); both list FADT, MADT and the extra tables. The FADT points to
// the FACS and the DSDT.
import { ACPI_TABLES_END, ACPI_TABLES_START } from '../../vmm/platform-layout.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { BootError } from '../boot-plan.js';
import type { Aml } from './aml.js';
import { buildDsdt } from './dsdt.js';
import { FACS_ALIGN, buildFacs } from './facs.js';
import { buildFadt } from './fadt.js';
import { MADT_MAX_CPUS, buildMadt } from './madt.js';
import { buildRsdp } from './rsdp.js';
import { buildRsdt } from './rsdt.js';
import { ACPI_HEADER_SIZE, finishTable, getAscii } from './table.js';
import { buildXsdt } from './xsdt.js';

export interface AcpiOptions {
  /** Number of vCPUs: one enabled Processor Local APIC entry each, APIC IDs 0..cpus-1. */
  cpus: number;
  /**
   * Complete extra tables (header included) to list in the XSDT/RSDT, e.g. an MCFG or SSDTs.
   * Their checksum is recomputed here, so callers may leave it zero.
   */
  extraTables?: Uint8Array[];
  /** Extra AML terms appended to the DSDT's root scope (e.g. a PCI host bridge device). */
  extraDsdtAml?: Aml[];
  /** Set when the machine has a VGA-compatible adapter (clears the FADT's "VGA Not Present"). */
  vga?: boolean;
}

export interface AcpiTableInfo {
  signature: string;
  addr: number;
  length: number;
}

export interface AcpiLayout {
  rsdpAddr: number;
  /** Every structure written, in address order (the RSDP as "RSD PTR ", the FACS as "FACS"). */
  tables: AcpiTableInfo[];
}

/** Tables the builder makes itself; an extra table with one of these signatures would confuse the OS. */
const BUILT_IN = new Set(['RSDT', 'XSDT', 'FACP', 'APIC', 'DSDT', 'FACS']);

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

function checkExtraTable(t: Uint8Array, i: number): Uint8Array {
  if (t.length < ACPI_HEADER_SIZE) throw new BootError(`extra ACPI table #${i} is ${t.length} bytes, shorter than the 36-byte header`);
  const sig = getAscii(t, 0, 4);
  if (!/^[A-Z0-9_]{4}$/.test(sig)) throw new BootError(`extra ACPI table #${i} has an invalid signature "${sig}"`);
  if (BUILT_IN.has(sig)) throw new BootError(`extra ACPI table ${sig}: tsvm builds that table itself`);
  const len = new DataView(t.buffer, t.byteOffset, t.byteLength).getUint32(4, true);
  if (len !== t.length) throw new BootError(`extra ACPI table ${sig}: header length ${len} != ${t.length} bytes given`);
  return finishTable(t.slice());
}

/**
 * Build the ACPI tables for a machine with `opts.cpus` vCPUs and write them into guest RAM.
 * Throws BootError when the guest has no RAM at the ACPI area or the tables do not fit in it.
 */
export function buildAcpiTables(mem: GuestMemory, opts: AcpiOptions): AcpiLayout {
  const { cpus } = opts;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MADT_MAX_CPUS) {
    throw new BootError(`cannot describe ${cpus} vCPUs in the MADT: use 1 to ${MADT_MAX_CPUS}`);
  }
  const regionSize = ACPI_TABLES_END - ACPI_TABLES_START;
  if (!mem.isRam(ACPI_TABLES_START, regionSize)) {
    throw new BootError(
      `guest RAM (${mem.ramSize} bytes) does not cover the ACPI table area 0x${ACPI_TABLES_START.toString(16)}-0x${ACPI_TABLES_END.toString(16)}; give the VM at least 1 MiB`,
    );
  }
  const extras = (opts.extraTables ?? []).map(checkExtraTable);

  // Addresses are assigned before the tables that point at them are built; sizes are known first.
  const placed: { signature: string; addr: number; bytes: Uint8Array }[] = [];
  let next = ACPI_TABLES_START;
  const place = (signature: string, bytes: Uint8Array, alignment = 16): number => {
    const addr = align(next, alignment);
    placed.push({ signature, addr, bytes });
    next = addr + bytes.length;
    return addr;
  };

  // RSDP first; its contents are filled in once the XSDT/RSDT addresses are known.
  const rsdpIndex = placed.length;
  const rsdpAddr = place('RSD PTR ', new Uint8Array(36));
  const facsAddr = place('FACS', buildFacs(), FACS_ALIGN);
  const dsdtAddr = place('DSDT', buildDsdt(opts.extraDsdtAml ?? []));
  const listed: number[] = [];
  listed.push(place('FACP', buildFadt({ facsAddr, dsdtAddr, vga: opts.vga })));
  listed.push(place('APIC', buildMadt(cpus)));
  for (const t of extras) listed.push(place(getAscii(t, 0, 4), t));
  const xsdtAddr = place('XSDT', buildXsdt(listed));
  const rsdtAddr = place('RSDT', buildRsdt(listed));
  placed[rsdpIndex].bytes = buildRsdp(rsdtAddr, xsdtAddr);

  if (next > ACPI_TABLES_END) {
    throw new BootError(
      `ACPI tables need ${next - ACPI_TABLES_START} bytes but only ${regionSize} fit between ` +
        `0x${ACPI_TABLES_START.toString(16)} and 0x${ACPI_TABLES_END.toString(16)}; use fewer or smaller extra tables`,
    );
  }
  // Clear the whole area first so that no stale table (say, from before a reset) survives.
  mem.fill(ACPI_TABLES_START, regionSize, 0);
  for (const p of placed) mem.write(p.addr, p.bytes);
  return {
    rsdpAddr,
    tables: placed.map((p) => ({ signature: p.signature, addr: p.addr, length: p.bytes.length })),
  };
}
