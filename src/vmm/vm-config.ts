// The configuration of one VM: what `tsvm run` flags, a config file and the HTTP API all produce.
// Validation happens here, once, with errors that name the field and the fix.
import type { AccelKind } from '../accel/accelerator.js';
import { MiB, GiB } from '../memory/guest-memory.js';

export type AccelChoice = AccelKind | 'auto';

export interface VmConfig {
  name: string;
  kernel?: string;
  initrd?: string;
  append: string;
  firmware?: string;
  memoryBytes: number;
  cpus: number;
  accel: AccelChoice;
  /** KVM only: create the in-kernel LAPIC/IOAPIC/PIC/PIT (on by default). */
  irqchip: boolean;
  /** Exit instead of resetting when the guest reboots or triple-faults (as QEMU's -no-reboot). */
  noReboot: boolean;
  /** How a bzImage is entered: 'elf' decompresses on the host (default), 'bzimage-64' lets the guest do it, 'pvh' uses the PVH note. */
  bootMode: 'elf' | 'bzimage-64' | 'pvh';
  /** kvm-unit-tests' pc-testdev (scratch ports, scratch MMIO, IRQ raising). */
  testdev: boolean;
  /** Seconds between the ACPI power button and a forced stop, on SIGTERM/stop. */
  shutdownGraceSeconds: number;
}

export class ConfigError extends Error {}

export const DEFAULT_MEMORY = 512 * MiB;
export const MAX_CPUS = 255;

export function defaultConfig(): VmConfig {
  return {
    name: `vm${process.pid}`,
    append: '',
    memoryBytes: DEFAULT_MEMORY,
    cpus: 1,
    accel: 'auto',
    irqchip: true,
    noReboot: false,
    bootMode: 'elf',
    testdev: false,
    shutdownGraceSeconds: 10,
  };
}

/** "512M", "2G", "1048576K", "64" (MiB, as QEMU's -m) → bytes. */
export function parseMemorySize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) throw new ConfigError(`--memory "${text}" is not a size; use a number with K, M or G, e.g. 512M or 2G`);
  const unit = (m[2] || 'M').toUpperCase();
  const mult = { K: 1024, M: MiB, G: GiB, T: 1024 * GiB }[unit]!;
  const bytes = Math.round(Number(m[1]) * mult);
  return bytes;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function validateConfig(c: VmConfig): VmConfig {
  if (!NAME_RE.test(c.name)) {
    throw new ConfigError(`name "${c.name}" is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  if (!c.kernel && !c.firmware) throw new ConfigError('nothing to boot: give --kernel PATH (a Linux bzImage, vmlinux or multiboot ELF) or --firmware PATH');
  if (c.kernel && c.firmware) throw new ConfigError('--kernel and --firmware are exclusive: the firmware boots the guest itself');
  if (c.initrd && !c.kernel) throw new ConfigError('--initrd needs --kernel');
  if (!Number.isInteger(c.cpus) || c.cpus < 1 || c.cpus > MAX_CPUS) throw new ConfigError(`--cpus ${c.cpus} is out of range: use 1 to ${MAX_CPUS}`);
  if (!Number.isSafeInteger(c.memoryBytes) || c.memoryBytes < 2 * MiB) {
    throw new ConfigError(`--memory ${c.memoryBytes} bytes is too small: give at least 2M`);
  }
  if (c.memoryBytes % (4096) !== 0) throw new ConfigError('--memory must be a multiple of 4 KiB');
  if (c.memoryBytes > 1024 * GiB) throw new ConfigError('--memory is larger than 1T; tsvm does not support that');
  if (!['kvm', 'soft', 'auto'].includes(c.accel)) throw new ConfigError(`--accel "${c.accel}" is unknown: use kvm, soft or auto`);
  if (!['elf', 'bzimage-64', 'pvh'].includes(c.bootMode)) throw new ConfigError(`--boot-mode "${c.bootMode}" is unknown: use elf, bzimage-64 or pvh`);
  if (!(c.shutdownGraceSeconds >= 0)) throw new ConfigError('the shutdown grace period must be 0 or more seconds');
  return c;
}
