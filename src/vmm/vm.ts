// One virtual machine: assembles guest memory, the accelerator, the platform devices and the
// boot image from a validated VmConfig, runs it, and turns how the guest stopped into an exit
// status. This is the library entry point (`await Vm.create(config)`); the CLI is a thin layer on it.
import type { Accelerator, GuestStop } from '../accel/accelerator.js';
import { formatCpuState } from '../accel/register-dump.js';
import type { BootPlan } from '../boot/boot-plan.js';
import { IrqLine } from '../devices/irq.js';
import { Uart16550 } from '../devices/legacy/uart16550.js';
import { I8042 } from '../devices/legacy/i8042.js';
import { CmosRtc } from '../devices/legacy/cmos-rtc.js';
import { AcpiPm } from '../devices/legacy/acpi-pm.js';
import { ResetControl } from '../devices/legacy/reset-control.js';
import { DebugExit, DEBUG_EXIT_LENGTH } from '../devices/legacy/debug-exit.js';
import { PostPort } from '../devices/legacy/post-port.js';
import { PcTestdev } from '../devices/legacy/pc-testdev.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { MMIO_HOLE_START } from '../memory/guest-memory.js';
import { chooseAccelerator, createAccelerator, type AcceleratorChoice } from './accel-select.js';
import { KvmAccelerator } from '../accel/kvm/kvm-accelerator.js';
import { KvmIoEventFds } from '../accel/kvm/kvm-eventfd.js';
import { attachPciDevices, type PciMachine } from '../devices/pci/machine-pci.js';
import { openDisk, type OpenedDisk } from '../block/open.js';
import { TapBackend } from '../net/tap.js';
import { loadBootFiles, prepareBoot, type BootFiles } from './boot-setup.js';
import type { Logger } from './log.js';
import { debugLogger, stderrLogger } from './log.js';
import type { MachineControl, StopRequest } from './machine-control.js';
import * as layout from './platform-layout.js';
import { defaultConfig, validateConfig, type VmConfig } from './vm-config.js';
import { GuestOutput } from './guest-output.js';
import { CONSOLE_INPUT_LIMIT } from '../devices/virtio/console.js';
import { addDeviceCounters, CountingIrqSink, MeteredBus, virtioCounters, type DeviceCounters, type InterruptCounters, type VmMetrics } from './runtime-metrics.js';

/** How the VM ended, and the process exit status that stands for it (see `tsvm run --help`). */
export interface VmExit {
  code: number;
  reason: 'poweroff' | 'reset' | 'debug-exit' | 'crash' | 'stopped' | 'error';
  message: string;
}

export const EXIT_POWEROFF = 0;
export const EXIT_VMM_ERROR = 1;
export const EXIT_GUEST_CRASH = 2;

export interface VmIo {
  log?: Logger;
  /** Receives the guest's console output (COM1, or hvc0 with `console: 'virtio'`), byte batches in order. */
  consoleOutput?: (bytes: Uint8Array) => void;
}

export type VmState = 'created' | 'running' | 'paused' | 'stopped';

/**
 * The guest's console from code: `vm.console` (COM1, or the virtio-console's hvc0 when the config
 * says `console: 'virtio'`); `vm.serial` is always COM1 (the same object in serial mode).
 */
export interface VmConsole {
  /** Guest output from now on, in order, in batches; returns a function that unsubscribes. */
  onData(listener: (bytes: Uint8Array) => void): () => void;
  /**
   * Input for the guest (typed at its console). Bytes that do not fit are dropped: COM1's input
   * queue; the virtio-console keeps up to 64 KiB until the guest's console is up (it has posted
   * receive buffers and written once: see src/devices/virtio/console.ts).
   */
  write(data: string | Uint8Array): void;
  /** The guest's most recent output (the last 64 KiB at most), e.g. to wait for a prompt. */
  recent(): Buffer;
}

const CONSOLE_TAIL_BYTES = 64 * 1024;

interface Machine {
  mem: GuestMemory;
  accel: Accelerator;
  bus: MeteredBus;
  uart: Uart16550;
  rtc: CmosRtc;
  acpiPm: AcpiPm;
  boot: BootPlan;
  pci: PciMachine;
  ioEventFds?: KvmIoEventFds;
}

/** Host-side device backends: opened once per VM, kept across guest resets, closed at the end. */
interface DeviceBackends {
  disks: { id: string; backend: OpenedDisk }[];
  nets: { id: string; backend: TapBackend; mac?: string }[];
}

export class Vm {
  private machine?: Machine;
  private backends?: DeviceBackends;
  private stopRequest?: StopRequest;
  private hardStopReason?: string;
  private readonly log: Logger;
  private state: VmState = 'created';
  private booted = false;
  private readonly startedAt = Date.now();
  /** What the console carries from the guest (COM1's output, or hvc0's in virtio mode). */
  private readonly consoleOut = new GuestOutput(CONSOLE_TAIL_BYTES);
  /** COM1's output: `consoleOut` itself in serial mode, a stream of its own in virtio mode. */
  private readonly serialOut: GuestOutput;
  /** virtio mode: input typed before the virtio-console exists (bounded as the device's buffer). */
  private earlyInput: Uint8Array[] = [];
  private earlyInputBytes = 0;
  private runPromise?: Promise<VmExit>;
  private readonly runningWaiters: ((exit?: VmExit) => void)[] = [];
  private graceTimer?: NodeJS.Timeout;
  // Counters that outlive a machine (a guest reset builds a new one).
  private readonly interruptCounts: InterruptCounters = { total: 0, by_gsi: {} };
  private readonly pastDevices: Record<string, DeviceCounters> = {};
  private readonly pastExits = { exits: 0, ioExits: 0, mmioExits: 0, forwarded: 0 };
  private readonly pastBus = { unclaimed: 0 };
  private serialRx = 0;
  private resets = 0;
  accelChoice?: AcceleratorChoice;

  private constructor(
    readonly config: VmConfig,
    private readonly files: BootFiles,
    io: VmIo,
  ) {
    this.log = io.log ?? stderrLogger;
    this.serialOut = config.console === 'virtio' ? new GuestOutput(CONSOLE_TAIL_BYTES) : this.consoleOut;
    if (io.consoleOutput) this.consoleOut.onData(io.consoleOutput);
    this.console = {
      onData: (listener) => this.onConsoleOutput(listener),
      write: (data) => this.consoleInput(typeof data === 'string' ? Buffer.from(data, 'utf8') : data),
      recent: () => this.consoleOut.recent(),
    };
    this.serial = config.console === 'virtio'
      ? {
        onData: (listener) => this.serialOut.onData(listener),
        write: (data) => this.serialInput(typeof data === 'string' ? Buffer.from(data, 'utf8') : data),
        recent: () => this.serialOut.recent(),
      }
      : this.console;
  }

  /**
   * Checks the configuration (fields left out take their defaults, see defaultConfig) and reads
   * the boot files; throws one-line errors (ConfigError, BootError) for the user's mistakes.
   */
  static async create(config: VmConfig | (Partial<VmConfig> & ({ kernel: string } | { firmware: string })), io: VmIo = {}): Promise<Vm> {
    const full = validateConfig({ ...defaultConfig(), ...config });
    const files = loadBootFiles(full);
    return new Vm(full, files, io);
  }

  get status(): VmState { return this.state; }
  get uptimeMs(): number { return Date.now() - this.startedAt; }
  get accelKind(): string | undefined { return this.machine?.accel.kind; }
  /**
   * The guest's memory while the VM exists (after `run` started; kept after it ends until the next
   * reset), for tests, debuggers and dumps. Reading it is safe; writing it races the guest.
   */
  get guestMemory(): GuestMemory | undefined { return this.machine?.mem; }

  /** The console's output (COM1, or hvc0 in virtio mode); returns a function that unsubscribes. */
  onConsoleOutput(listener: (bytes: Uint8Array) => void): () => void {
    return this.consoleOut.onData(listener);
  }

  /** Host input for the guest's console (COM1, or hvc0 in virtio mode). */
  consoleInput(bytes: Uint8Array): void {
    if (this.config.console !== 'virtio') {
      this.serialInput(bytes);
      return;
    }
    const dev = this.machine?.pci.consoleDevice;
    if (dev) {
      dev.receive(bytes);
      return;
    }
    // No machine yet: kept (bounded like the device's own buffer) and handed over when it exists.
    const take = Math.min(bytes.length, CONSOLE_INPUT_LIMIT - this.earlyInputBytes);
    if (take <= 0) return;
    this.earlyInput.push(bytes.slice(0, take));
    this.earlyInputBytes += take;
  }

  /** Host input for COM1 (the console in serial mode). */
  private serialInput(bytes: Uint8Array): void {
    this.serialRx += this.machine?.uart.receive(bytes) ?? 0;
  }

  /** The console from code: subscribe to output, type input, read the recent output. */
  readonly console: VmConsole;
  /** COM1 from code; the same object as `console` unless the console is the virtio-console. */
  readonly serial: VmConsole;

  private readonly control: MachineControl = {
    requestStop: (req) => {
      // The first request wins: a poweroff followed by the accelerator's 'requested' stop is one poweroff.
      if (!this.stopRequest) this.stopRequest = req;
      this.machine?.accel.stop();
    },
  };

  private build(): Machine {
    const c = this.config;
    const { accel, mem } = createAccelerator(c, this.files.romSize, this.log, this.accelChoice!);
    try {
      const bus = new MeteredBus();
      const irq = new CountingIrqSink(accel.irq, this.interruptCounts);
      const uart = new Uart16550({ irq: new IrqLine(irq, layout.COM1_IRQ), onTransmit: (byte) => this.serialOut.pushByte(byte) });
      bus.addPio(layout.COM1_PORT, 8, uart);
      new I8042({
        control: this.control,
        kbdIrq: new IrqLine(irq, layout.KEYBOARD_IRQ),
        auxIrq: new IrqLine(irq, layout.MOUSE_IRQ),
      }).attach(bus);
      const below4G = Math.min(c.memoryBytes, MMIO_HOLE_START);
      const rtc = new CmosRtc({
        ramBelow4G: below4G,
        ramAbove4G: c.memoryBytes - below4G,
        irq: new IrqLine(irq, layout.RTC_IRQ),
        cpuCount: c.cpus,
      });
      bus.addPio(layout.CMOS_PORT, 2, rtc);
      const acpiPm = new AcpiPm({ sci: new IrqLine(irq, layout.ACPI_SCI_IRQ), control: this.control, log: this.log });
      bus.addPio(layout.ACPI_PM_BASE, layout.ACPI_PM_LENGTH, acpiPm);
      bus.addPio(layout.DEBUG_EXIT_PORT, DEBUG_EXIT_LENGTH, new DebugExit(this.control));
      bus.addPio(layout.POST_PORT, 1, new PostPort());
      if (c.testdev) new PcTestdev(irq).attach(bus);
      // PCI: the host bridge (which also owns 0xCF9, the reset control register, inside the
      // CONFIG_ADDRESS dword) and the virtio devices over the backends opened once per VM.
      const backends = this.backends!;
      const pci = attachPciDevices({
        bus, mem, irq, msi: accel.msi, log: this.log,
        resetControl: new ResetControl(this.control),
        disks: backends.disks.map((d) => ({ backend: d.backend, id: d.id })),
        nets: backends.nets.map((n) => ({ backend: n.backend, mac: n.mac })),
        rng: true,
        console: c.console === 'virtio' ? { onOutput: (bytes) => this.consoleOut.push(bytes) } : undefined,
      });
      if (pci.consoleDevice && this.earlyInput.length > 0) {
        for (const chunk of this.earlyInput) pci.consoleDevice.receive(chunk);
        this.earlyInput = [];
        this.earlyInputBytes = 0;
      }
      let ioEventFds: KvmIoEventFds | undefined;
      if (accel instanceof KvmAccelerator && c.irqchip) {
        // Queue notifications signal an eventfd in the kernel: the vCPU does not wait for the device thread.
        ioEventFds = new KvmIoEventFds(accel.vmFd, this.log);
        for (const dev of pci.devices) ioEventFds.bindVirtio(dev);
        // Interrupts need no binding here: accel.msi hands each MSI-X vector an irqfd route (kvm-irqfd.ts).
        const msi = accel.msiStats();
        debugLogger(this.log)(`virtio: queue notifications through ioeventfd; MSI-X through ${msi.path}${msi.why ? ` (${msi.why})` : ''}`);
      }
      const boot = prepareBoot({ ...c, append: kernelCommandLine(c) }, this.files, mem, { extraTables: pci.acpiTables, extraDsdtAml: pci.dsdtAml });
      if (!this.booted) {
        // Said once: a reset rebuilds the machine but the user has heard it already.
        this.log(boot.summary);
        if (accel instanceof KvmAccelerator && accel.system.isPvm && c.kernel && !/(^|\s)noxsave(\s|$)/.test(c.append)) {
          this.log('kvm: PVM host: its instruction emulator cannot run XRSTOR, which Linux uses for XSAVE: add "noxsave" to --append for Linux guests');
        }
      }
      this.booted = true;
      return { mem, accel, bus, uart, rtc, acpiPm, boot, pci, ioEventFds };
    } catch (e) {
      accel.close();
      throw e;
    }
  }

  /** Counters of a machine that is going away, kept for `metrics()`. */
  private retire(m: Machine): void {
    const s = m.accel.stats();
    this.pastExits.exits += s.exits;
    this.pastExits.ioExits += s.ioExits;
    this.pastExits.mmioExits += s.mmioExits;
    this.pastExits.forwarded += s.forwarded;
    this.pastBus.unclaimed += m.bus.stats.unclaimed;
    addDeviceCounters(this.pastDevices, m.bus.devices);
  }

  private flushOutput(): void {
    this.serialOut.flush();
    this.consoleOut.flush();
  }

  /**
   * Starts the guest and returns once it runs (its vCPUs started); throws if the machine cannot
   * be built (e.g. KVM unavailable). `wait()` then gives how it ended.
   */
  async start(): Promise<void> {
    if (this.state !== 'created' || this.runPromise) throw new Error('this VM has already been started');
    void this.run();
    const failed = await this.whenRunning();
    if (failed) throw new Error(failed.message);
  }

  /**
   * Resolves with undefined once the guest runs (its machine built, vCPUs started), or with how
   * it ended if it stopped before that (device backends or the machine could not be set up).
   */
  whenRunning(): Promise<VmExit | undefined> {
    if (this.state === 'running' || this.state === 'paused') return Promise.resolve(undefined);
    if (this.state === 'stopped') return this.wait();
    return new Promise((resolve) => this.runningWaiters.push(resolve));
  }

  private notifyRunning(exit?: VmExit): void {
    for (const w of this.runningWaiters.splice(0)) w(exit);
  }

  /** How the guest ended, once it has (a VM never started ends when `stop` is called). */
  wait(): Promise<VmExit> {
    return this.runPromise ?? Promise.resolve({ code: EXIT_POWEROFF, reason: 'stopped', message: 'the VM was never started' });
  }

  /** Runs the guest until it powers off, crashes or is stopped; resets restart it in place. */
  run(): Promise<VmExit> {
    if (this.state !== 'created' || this.runPromise) throw new Error('this VM has already run');
    const p = this.runLoop().finally(() => clearTimeout(this.graceTimer)).then((exit) => {
      this.notifyRunning(exit);
      return exit;
    });
    this.runPromise = p;
    return p;
  }

  /** Opens the disk images and TAP devices; one-line errors name the device and the problem. */
  private async openBackends(): Promise<DeviceBackends> {
    const b: DeviceBackends = { disks: [], nets: [] };
    try {
      for (const d of this.config.disks ?? []) {
        const backend = await openDisk(d.path, { format: d.format, readonly: d.readonly, serial: d.id, onWarning: (m) => this.log(`disk "${d.id}": ${m}`) });
        b.disks.push({ id: d.id, backend });
      }
      for (const n of this.config.nets ?? []) {
        b.nets.push({ id: n.id, backend: TapBackend.open({ ifname: n.hostDevName }), mac: n.mac });
      }
      return b;
    } catch (e) {
      await closeBackends(b);
      throw e;
    }
  }

  private async runLoop(): Promise<VmExit> {
    try {
      this.accelChoice ??= await chooseAccelerator(this.config, this.log);
      this.backends = await this.openBackends();
    } catch (e) {
      this.state = 'stopped';
      return { code: EXIT_VMM_ERROR, reason: 'error', message: (e as Error).message };
    }
    try {
      return await this.runMachines();
    } finally {
      // The device models' backends are these same objects: closing them here (qcow2 drains
      // its in-flight requests and flushes) covers every machine the VM built, even a failed one.
      await closeBackends(this.backends);
    }
  }

  private async runMachines(): Promise<VmExit> {
    for (;;) {
      this.stopRequest = undefined;
      if (this.hardStopReason) {
        // Stopped while the backends were being opened: never start the guest.
        this.state = 'stopped';
        return { code: EXIT_VMM_ERROR, reason: 'stopped', message: this.hardStopReason };
      }
      let m: Machine;
      try {
        m = this.machine = this.build();
      } catch (e) {
        this.state = 'stopped';
        return { code: EXIT_VMM_ERROR, reason: 'error', message: (e as Error).message };
      }
      this.state = 'running';
      this.notifyRunning();
      const stop = await m.accel.run(m.bus, m.boot.cpu);
      this.retire(m);
      await m.ioEventFds?.close();
      m.accel.close();
      m.rtc.close();
      this.flushOutput();
      const exit = this.interpret(stop);
      if (exit === 'reset') {
        if (this.config.noReboot) {
          this.state = 'stopped';
          return { code: EXIT_POWEROFF, reason: 'reset', message: 'the guest rebooted (--no-reboot: exiting)' };
        }
        this.log('the guest reset; restarting it');
        this.resets++;
        continue;
      }
      this.state = 'stopped';
      return exit;
    }
  }

  private interpret(stop: GuestStop): VmExit | 'reset' {
    const req = this.stopRequest;
    if (this.hardStopReason) return { code: EXIT_VMM_ERROR, reason: 'stopped', message: this.hardStopReason };
    if (req) {
      switch (req.kind) {
        case 'poweroff': return { code: EXIT_POWEROFF, reason: 'poweroff', message: 'the guest powered off' };
        case 'reset': return 'reset';
        case 'debug-exit': {
          const code = ((req.code << 1) | 1) & 0xff;
          return { code, reason: 'debug-exit', message: `the guest wrote 0x${req.code.toString(16)} to isa-debug-exit (exit status ${code})` };
        }
        case 'error': return { code: EXIT_VMM_ERROR, reason: 'error', message: req.message };
      }
    }
    if (stop.reason === 'shutdown') {
      if (!this.config.noReboot) return 'reset';
      return this.crash(stop);
    }
    if (stop.reason === 'system-event') {
      if (stop.eventType === 2) return 'reset';
      if (stop.eventType === 1) return { code: EXIT_POWEROFF, reason: 'poweroff', message: 'the guest powered off' };
    }
    if (stop.reason === 'requested') return { code: EXIT_POWEROFF, reason: 'stopped', message: 'stopped' };
    return this.crash(stop);
  }

  private crash(stop: GuestStop): VmExit {
    const dump = stop.state ? `\n${formatCpuState(stop.state, stop.vcpuId ?? 0)}` : '';
    return { code: EXIT_GUEST_CRASH, reason: 'crash', message: `${stop.message}${dump}` };
  }

  /** ACPI power button: the guest's OS shuts down cleanly if it listens. Returns whether it did enable it. */
  powerButton(): boolean {
    return this.machine?.acpiPm.pressPowerButton() ?? false;
  }

  /**
   * Stops the guest now, without asking it (kill -9 for the guest, not for tsvm); resolves with
   * how it ended. A VM that was never started cannot be started afterwards.
   */
  stop(reason = 'stopped by the host'): Promise<VmExit> {
    this.hardStopReason ??= reason;
    if (this.state === 'created' && !this.runPromise) {
      this.state = 'stopped';
      return this.wait();
    }
    this.machine?.accel.stop();
    return this.wait();
  }

  /**
   * A clean shutdown: presses the ACPI power button and stops the guest by force if it has not
   * powered off after `graceSeconds` (at once if it does not listen to the button). Resolves with
   * how it ended.
   */
  shutdown(graceSeconds = this.config.shutdownGraceSeconds, reason = 'shut down by the host'): Promise<VmExit> {
    if (this.state === 'paused') this.resume(); // a paused guest cannot react to the button
    const listening = this.state === 'running' && this.powerButton();
    if (!listening) return this.stop(`${reason}: the guest does not listen to the ACPI power button`);
    clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => void this.stop(`${reason}: the guest did not power off within ${graceSeconds} s`), graceSeconds * 1000);
    return this.wait();
  }

  pause(): void {
    if (this.state !== 'running') return;
    this.machine?.accel.pause();
    this.state = 'paused';
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.machine?.accel.resume();
    this.state = 'running';
  }

  stats() {
    return {
      accel: this.machine?.accel.stats(),
      bus: this.machine?.bus.stats,
    };
  }

  /** The VM's counters since it was created, across guest resets (see runtime-metrics.ts). */
  metrics(): VmMetrics {
    const m = this.machine;
    const live = this.state === 'running' || this.state === 'paused';
    const s = live && m ? m.accel.stats() : { exits: 0, ioExits: 0, mmioExits: 0, forwarded: 0 };
    const exits = this.pastExits.exits + s.exits;
    const io = this.pastExits.ioExits + s.ioExits;
    const mmio = this.pastExits.mmioExits + s.mmioExits;
    const devices: Record<string, DeviceCounters> = {};
    addDeviceCounters(devices, this.pastDevices);
    if (live && m) addDeviceCounters(devices, m.bus.devices);
    return {
      utc_timestamp_ms: Date.now(),
      uptime_ms: this.uptimeMs,
      vcpu: { exits, exits_io: io, exits_mmio: mmio, exits_other: Math.max(0, exits - io - mmio), forwarded: this.pastExits.forwarded + s.forwarded },
      devices,
      bus: { unclaimed: this.pastBus.unclaimed + (live && m ? m.bus.stats.unclaimed : 0) },
      interrupts: { total: this.interruptCounts.total, by_gsi: { ...this.interruptCounts.by_gsi } },
      serial: { tx_bytes: this.serialOut.total, rx_bytes: this.serialRx },
      virtio: live && m ? virtioCounters(m.pci.devices) : {},
      resets: this.resets,
    };
  }
}

async function closeBackends(b: DeviceBackends | undefined): Promise<void> {
  if (!b) return;
  await Promise.allSettled([...b.disks.map((d) => d.backend.close()), ...b.nets.map((n) => n.backend.close())]);
}

/**
 * The kernel command line: `append`, plus `root=/dev/vdX rw|ro` for a disk marked as the root
 * device (Firecracker's is_root_device) unless the line names a root already. Disks take PCI
 * slots in configuration order, so the Nth disk is the guest's Nth virtio disk, vda first.
 */
export function kernelCommandLine(c: VmConfig): string {
  const i = (c.disks ?? []).findIndex((d) => d.root);
  if (i < 0 || !c.kernel || /(^|\s)root=/.test(c.append) || i >= 26) return c.append;
  const root = `root=/dev/vd${String.fromCharCode(0x61 + i)} ${c.disks[i].readonly ? 'ro' : 'rw'}`;
  return c.append ? `${c.append} ${root}` : root;
}
