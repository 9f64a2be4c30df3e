// From the config's boot files to a loaded guest: reads the files once (with errors that name the
// file), then, for each (re)start, writes the kernel/firmware, initrd and ACPI tables into guest
// memory and returns the vCPU's start state.
import { readFileSync, statSync } from 'node:fs';
import { BootError, type BootPlan } from '../boot/boot-plan.js';
import { buildAcpiTables } from '../boot/acpi/index.js';
import { firmwareRomSize, loadFirmware } from '../boot/firmware.js';
import { isMultiboot, loadMultiboot } from '../boot/multiboot.js';
import { loadLinux } from '../boot/linux-loader.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { VmConfig } from './vm-config.js';
import { buildSmbios } from '../boot/smbios.js';
import { tsvmVersion } from '../paths.js';

export interface BootFiles {
  kernel?: Uint8Array;
  initrd?: Uint8Array;
  firmware?: Uint8Array;
  romSize: number;
}

/**
 * Read a boot file whole. Synchronous on purpose: the boot waits for these bytes and nothing else
 * runs meanwhile, and fs/promises' readFile reads a 15 MB kernel and initrd in 512 KiB pieces
 * through the thread pool, each a round trip (~16 ms against ~9 ms for one read each, on the
 * Debian cloud kernel and the default initrd), then `new Uint8Array` copied them once more.
 */
function readUserFile(flag: string, path: string): Uint8Array {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new BootError(`${flag} ${path}: no such file`);
    if (code === 'EACCES') throw new BootError(`${flag} ${path}: permission denied`);
    throw new BootError(`${flag} ${path}: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new BootError(`${flag} ${path}: not a regular file`);
  if (st.size === 0) throw new BootError(`${flag} ${path}: the file is empty`);
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new BootError(`${flag} ${path}: ${(e as Error).message}`);
  }
  // A plain view of the same bytes: a Buffer's slice() would alias where Uint8Array's copies.
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function loadBootFiles(c: VmConfig): BootFiles {
  const files: BootFiles = { romSize: 0 };
  if (c.kernel) files.kernel = readUserFile('--kernel', c.kernel);
  if (c.initrd) files.initrd = readUserFile('--initrd', c.initrd);
  if (c.firmware) {
    files.firmware = readUserFile('--firmware', c.firmware);
    files.romSize = firmwareRomSize(files.firmware, c.firmware);
  }
  return files;
}

/** ACPI additions from devices (PCI: the MCFG table and \_SB.PCI0 in the DSDT). */
export interface AcpiExtras {
  extraTables?: Uint8Array[];
  extraDsdtAml?: Uint8Array[];
}

export function prepareBoot(c: VmConfig, files: BootFiles, mem: GuestMemory, acpiExtras: AcpiExtras = {}): BootPlan {
  if (files.firmware) return loadFirmware(mem, { firmware: files.firmware, path: c.firmware! });
  const kernel = files.kernel!;
  // ACPI tables for every kernel boot: Linux finds the IOAPIC and the other CPUs only there, and
  // kvm-unit-tests scan 0xE0000-0xFFFFF for the RSDP too.
  const acpi = buildAcpiTables(mem, { cpus: c.cpus, ...acpiExtras });
  // SMBIOS, as a PC's firmware leaves them (boot/smbios.ts)
  const smbios = buildSmbios({ name: c.name, version: tsvmVersion() });
  mem.write(smbios.addr, smbios.bytes);
  if (isMultiboot(kernel)) {
    const modules = files.initrd ? [{ data: files.initrd, cmdline: c.initrd! }] : [];
    return loadMultiboot(mem, { kernel, kernelPath: c.kernel!, cmdline: c.append, modules });
  }
  return loadLinux(mem, {
    kernelPath: c.kernel!,
    kernel,
    initrd: files.initrd,
    cmdline: c.append,
    rsdpAddr: acpi.rsdpAddr,
    mode: c.bootMode,
  });
}
