// Wiring the PCI host bridge and the virtio devices into a machine, in one call from vm.ts:
//
//   const pci = attachPciDevices({ bus, mem, irq: accel.irq, msi: accel.msi, resetControl, log,
//                                  disks, rng: true, console: { onOutput }, nets });
//   buildAcpiTables(mem, { cpus, extraTables: pci.acpiTables, extraDsdtAml: pci.dsdtAml });
//   ...
//   await pci.close();   // after the accelerator stopped: closes disk images and TAP fds
//
// Claims on `bus`: ports 0xCF8, 0xCFA-0xCFB, 0xCFC-0xCFF (and 0xCF9 for `resetControl` when
// given: remove any separate claim of 0xCF9), the ECAM window, and each BAR while the guest
// enables it. Devices get slots 1, 2, ... in the order: disks, nets, rng, console.
import type { MsiSink } from '../../accel/accelerator.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { Bus, PioDevice } from '../bus.js';
import type { IrqSink } from '../irq.js';
import type { BlockBackend } from '../virtio/block-backend.js';
import { VirtioBlk } from '../virtio/blk.js';
import { VirtioConsole } from '../virtio/console.js';
import type { VirtioDevice } from '../virtio/device.js';
import { VirtioNet, type NetBackend } from '../virtio/net.js';
import { VirtioPciDevice } from '../virtio/pci-transport.js';
import { VirtioRng } from '../virtio/rng.js';
import { buildMcfg, pciDsdtAml } from './acpi.js';
import { PciRoot } from './pci-root.js';

export interface PciDiskConfig {
  backend: BlockBackend;
  /** Name for logs and the default GET_ID serial (when the backend has none). */
  id?: string;
  /** virtio-blk request queues (default 1). */
  queues?: number;
}

export interface PciNetConfig {
  backend: NetBackend;
  /** "52:54:00:xx:xx:xx"; default: generated. */
  mac?: string;
}

export interface AttachPciOptions {
  bus: Bus;
  mem: GuestMemory;
  irq: IrqSink;
  msi: MsiSink;
  /** PIIX reset control (0xCF9): claimed here, inside the CONFIG_ADDRESS dword. */
  resetControl?: PioDevice;
  log?: (line: string) => void;
  disks?: PciDiskConfig[];
  nets?: PciNetConfig[];
  /** A virtio-rng device fed by the host's CSPRNG. */
  rng?: boolean;
  /** A virtio-console (hvc0); `onOutput` receives what the guest writes. */
  console?: { onOutput: (bytes: Uint8Array) => void };
}

export interface PciMachine {
  readonly root: PciRoot;
  /** For buildAcpiTables({ extraTables }): the MCFG. */
  readonly acpiTables: Uint8Array[];
  /** For buildAcpiTables({ extraDsdtAml }): \_SB.PCI0 (with _CRS and _PRT) and the ECAM reservation. */
  readonly dsdtAml: Uint8Array[];
  /** The virtio functions, in slot order (for stats and the KVM fast path). */
  readonly devices: readonly VirtioPciDevice[];
  /** The virtio-console, when asked for: `consoleDevice.receive(bytes)` is keyboard input for hvc0. */
  readonly consoleDevice?: VirtioConsole;
  /** Machine reset: every function back to power-on state (BARs stay where firmware put them). */
  reset(): void;
  /** Close backends (disk images, TAP fds). Call once the vCPUs have stopped. */
  close(): Promise<void>;
}

export function attachPciDevices(opts: AttachPciOptions): PciMachine {
  const log = opts.log ?? (() => {});
  const root = new PciRoot({ bus: opts.bus, irq: opts.irq, log });
  root.attachToBus(opts.resetControl);
  const models: VirtioDevice[] = [];
  for (const d of opts.disks ?? []) models.push(new VirtioBlk({ backend: d.backend, id: d.id, queues: d.queues }));
  for (const n of opts.nets ?? []) models.push(new VirtioNet({ backend: n.backend, mac: n.mac }));
  if (opts.rng) models.push(new VirtioRng());
  let consoleDevice: VirtioConsole | undefined;
  if (opts.console) {
    consoleDevice = new VirtioConsole({ onOutput: opts.console.onOutput });
    models.push(consoleDevice);
  }
  const devices = models.map((model) => {
    const dev = new VirtioPciDevice(model, { mem: opts.mem, msi: opts.msi, log });
    root.attach(dev);
    return dev;
  });
  const slots = root.devices().map((d) => d.slot);
  let closed: Promise<void> | undefined;
  return {
    root,
    acpiTables: [buildMcfg()],
    dsdtAml: [pciDsdtAml({ slots: slots.length > 0 ? slots : undefined })],
    devices,
    consoleDevice,
    reset: () => root.reset(),
    close: () => {
      closed ??= Promise.allSettled(devices.map((d) => d.close())).then((results) => {
        for (const r of results) if (r.status === 'rejected') log(`pci: closing a device: ${(r.reason as Error)?.message ?? String(r.reason)}`);
      });
      return closed;
    },
  };
}
