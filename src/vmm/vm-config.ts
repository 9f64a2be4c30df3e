// The configuration of one VM: what `tsvm run` flags, a config file and the HTTP API all produce.
// Validation happens here, once, with errors that name the field and the fix.
import type { AccelKind } from '../accel/accelerator.js';
import { MiB, GiB } from '../memory/guest-memory.js';

export type AccelChoice = AccelKind | 'auto';

/** A block device for the guest (virtio-blk). `format` unset: raw. */
export interface DiskConfig {
  id: string;
  path: string;
  readonly: boolean;
  format?: 'raw' | 'qcow2';
  /** The guest's root file system (Firecracker's is_root_device: Linux gets root=/dev/vdX). */
  root?: boolean;
}

/** A network interface for the guest (virtio-net over a host TAP device). */
export interface NetConfig {
  id: string;
  hostDevName: string;
  /** "02:00:00:00:00:01"; unset: the VMM picks one. */
  mac?: string;
}

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
  /** Block devices, in the order the guest sees them. */
  disks: DiskConfig[];
  /** Network interfaces, in the order the guest sees them. */
  nets: NetConfig[];
  /**
   * The guest's console (what stdout/stdin, `vm.console`, `tsvm console` and the API's console
   * carry): 'serial' is COM1 (Linux's ttyS0); 'virtio' adds a virtio-console PCI function (hvc0)
   * and makes it the console, while COM1 stays present with its output kept apart.
   */
  console: ConsoleKind;
}

export type ConsoleKind = 'serial' | 'virtio';
export const CONSOLE_KINDS: readonly ConsoleKind[] = ['serial', 'virtio'];

/** The kernel command line a --kernel boot gets when none is given: the console's Linux device. */
export function defaultAppend(console: ConsoleKind): string {
  return console === 'virtio' ? 'console=hvc0' : 'console=ttyS0';
}

/**
 * Sets the console kind. A kernel command line that is still the other kind's default (nobody
 * wrote it: e.g. a config file without boot_args, then --console virtio) follows the choice.
 */
export function setConsole(c: VmConfig, console: ConsoleKind): void {
  if (c.kernel !== undefined && c.console !== console && c.append === defaultAppend(c.console)) c.append = defaultAppend(console);
  c.console = console;
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
    disks: [],
    nets: [],
    console: 'serial',
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
  if (!CONSOLE_KINDS.includes(c.console)) throw new ConfigError(`--console "${String(c.console)}" is unknown: use serial or virtio`);
  validateDevices(c);
  return c;
}

const DEVICE_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** Disks and NICs: ids unique per kind, one root disk at most, well-formed MACs. Whether the
 *  files exist is checked where they are opened (the API checks at once, as Firecracker does). */
function validateDevices(c: VmConfig): void {
  const disks = c.disks ?? [];
  const nets = c.nets ?? [];
  const seen = new Set<string>();
  for (const d of disks) {
    if (!DEVICE_ID_RE.test(d.id)) throw new ConfigError(`disk id "${d.id}" is not valid: use 1-64 letters, digits, '.', '_' or '-'`);
    if (seen.has(d.id)) throw new ConfigError(`disk id "${d.id}" is used twice`);
    seen.add(d.id);
    if (typeof d.path !== 'string' || d.path === '') throw new ConfigError(`disk "${d.id}": give the path of its image file`);
    if (d.format !== undefined && d.format !== 'raw' && d.format !== 'qcow2') throw new ConfigError(`disk "${d.id}": format "${String(d.format)}" is unknown: use raw or qcow2`);
  }
  if (disks.filter((d) => d.root).length > 1) throw new ConfigError('only one disk can be the root device');
  seen.clear();
  for (const n of nets) {
    if (!DEVICE_ID_RE.test(n.id)) throw new ConfigError(`network interface id "${n.id}" is not valid: use 1-64 letters, digits, '.', '_' or '-'`);
    if (seen.has(n.id)) throw new ConfigError(`network interface id "${n.id}" is used twice`);
    seen.add(n.id);
    if (typeof n.hostDevName !== 'string' || n.hostDevName === '' || n.hostDevName.length > 15) {
      throw new ConfigError(`network interface "${n.id}": the host device name must be 1-15 characters (a TAP interface name)`);
    }
    if (n.mac !== undefined && !MAC_RE.test(n.mac)) throw new ConfigError(`network interface "${n.id}": MAC "${n.mac}" is not of the form 02:00:00:00:00:01`);
  }
}
