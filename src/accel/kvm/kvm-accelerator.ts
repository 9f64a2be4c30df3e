// The KVM accelerator, device-thread side: creates the VM (memory slots, in-kernel irqchip and
// PIT), one vCPU worker per vCPU, and serves the accesses the workers forward to the bus.
import { Worker } from 'node:worker_threads';
import koffi from 'koffi';
import type { Accelerator, AccelStats, GuestStop, MsiRoute, MsiSink } from '../accelerator.js';
import type { CpuState } from '../cpu-state.js';
import type { Bus } from '../../devices/bus.js';
import type { IrqSink } from '../../devices/irq.js';
import { GuestMemory, HUGE_PAGE } from '../../memory/guest-memory.js';
import * as api from './kvm-api.js';
import { buildCpuid } from './cpuid.js';
import { KvmIrqRouting } from './kvm-irq-routing.js';
import { KvmIrqfdRoutes } from './kvm-irqfd.js';
import { openKvm, type KvmSystem } from './kvm-system.js';
import * as libc from './libc.js';
import * as mb from './vcpu-mailbox.js';
import type { VcpuStoppedMessage, VcpuWorkerData } from './vcpu-worker.js';
import { debugLogger } from '../../vmm/log.js';
import { distSrcUrl } from '../../paths.js';

const tgkill = koffi.load('libc.so.6').func('int tgkill(int tgid, int tid, int sig)') as (a: number, b: number, c: number) => number;
const SIGUSR2 = 12;
/** The vCPU kick signal; a (no-op) JS listener makes libuv install a handler, so the signal only interrupts KVM_RUN. */
const KICK_SIGNAL = 'SIGUSR2';
let kickHandlerInstalled = false;
/** The PVM notice is said once per process, not at every reset. */
let pvmNoticeShown = false;

// Addresses KVM needs for real-mode emulation on Intel (api.rst KVM_SET_TSS_ADDR: three pages;
// KVM_SET_IDENTITY_MAP_ADDR: one page), placed as QEMU does just below 0xFF000000 so that
// firmware ROM (which ends at 4 GiB) never overlaps them.
/** How long the device thread keeps answering a burst of forwarded exits before yielding, and how long it waits for the next one. */
const BURST_MS = 4;
const BURST_IDLE_MS = 0.2;

const IDENTITY_MAP_ADDR = 0xfeffc000;
const TSS_ADDR = 0xfeffd000;

export interface KvmOptions {
  cpus: number;
  /** Create the in-kernel LAPIC/IOAPIC/PIC and PIT (default). Without it HLT exits to the VMM. */
  irqchip: boolean;
  /** Hide CMPXCHG16B from the guest (see cpuid.ts); default: only on a PVM host, whose emulator lacks it. */
  pvmQuirks?: boolean;
  /**
   * MSI-X vectors through GSI routes and irqfds (kvm-irqfd.ts) when KVM offers them (default
   * true; needs `irqchip`). False keeps every MSI on KVM_SIGNAL_MSI (for comparisons).
   */
  irqfd?: boolean;
  /** Most MSI routes at once (default DEFAULT_MAX_MSI_ROUTES); further vectors use KVM_SIGNAL_MSI. */
  maxMsiRoutes?: number;
  log: (line: string) => void;
  /** Debug lines (default: `log` when TSVM_DEBUG is set, see vmm/log.ts). */
  debug?: (line: string) => void;
}

/** How MSI-X messages reach the in-kernel LAPICs, and how many went each way. */
export interface KvmMsiStats {
  path: 'irqfd' | 'KVM_SIGNAL_MSI' | 'none';
  /** Why irqfd is not used, when it is not. */
  why?: string;
  routes: number;
  irqfdSignals: number;
  signalMsiCalls: number;
}

/** Allocates guest memory whose host address is 2 MiB aligned, as KVM prefers (huge pages). */
export function allocateKvmMemory(ramSize: number, romSize = 0): GuestMemory {
  const raw = new GuestMemory(ramSize, romSize);
  const addr = libc.addressOf(new Uint8Array(raw.buffer));
  const misalign = Number(addr % BigInt(HUGE_PAGE));
  return raw.rebased(misalign === 0 ? 0 : HUGE_PAGE - misalign);
}

interface Vcpu {
  id: number;
  fd: number;
  mailbox: Int32Array;
  run: DataView; // this thread's mapping of kvm_run, for immediate_exit
  worker?: Worker;
  stopped?: VcpuStoppedMessage;
}

export class KvmAccelerator implements Accelerator {
  readonly kind = 'kvm' as const;
  readonly irq: IrqSink;
  readonly msi: MsiSink;
  private readonly vcpus: Vcpu[] = [];
  private readonly irqLineBuf = new Uint8Array(8);
  /** Bumped and notified by every vCPU worker when it posts a request (one word for all vCPUs). */
  private readonly doorbell = new Int32Array(new SharedArrayBuffer(4));
  private closed = false;
  private stopping = false;
  private irqfdRoutes?: KvmIrqfdRoutes;
  private irqfdUnavailable = 'no in-kernel irqchip';
  private signalMsiCalls = 0;
  private readonly debug: (line: string) => void;

  private constructor(
    readonly system: KvmSystem,
    readonly vmFd: number,
    readonly mem: GuestMemory,
    readonly options: KvmOptions,
  ) {
    this.debug = options.debug ?? debugLogger(options.log);
    const lineView = new DataView(this.irqLineBuf.buffer);
    this.irq = {
      setIrq: (gsi: number, level: boolean) => {
        if (!options.irqchip || this.closed) return;
        lineView.setUint32(0, gsi, true);
        lineView.setUint32(4, level ? 1 : 0, true);
        libc.ioctlPtr(this.vmFd, api.KVM_IRQ_LINE, this.irqLineBuf);
      },
    };
    // struct kvm_msi { u32 address_lo, address_hi, data, flags, devid; u8 pad[12]; } (api.rst, KVM_SIGNAL_MSI)
    const msiBuf = new Uint8Array(32);
    const msiView = new DataView(msiBuf.buffer);
    this.msi = {
      signalMsi: (address: number, data: number) => {
        if (!options.irqchip || this.closed) return;
        msiView.setUint32(0, address >>> 0, true);
        msiView.setUint32(4, Math.floor(address / 2 ** 32) >>> 0, true);
        msiView.setUint32(8, data >>> 0, true);
        this.signalMsiCalls++;
        libc.ioctlPtr(this.vmFd, api.KVM_SIGNAL_MSI, msiBuf);
      },
      openRoute: (): MsiRoute | undefined => this.irqfdRoutes?.open(),
    };
  }

  /** Opens /dev/kvm, creates the VM and registers `mem` (allocated with allocateKvmMemory). */
  static create(mem: GuestMemory, options: KvmOptions): KvmAccelerator {
    const system = openKvm();
    if (options.cpus > system.maxVcpus) {
      libc.close(system.fd);
      throw new Error(`--cpus ${options.cpus} is more than this host's KVM allows (${system.maxVcpus})`);
    }
    const vmFd = libc.ioctlInt(system.fd, api.KVM_CREATE_VM, 0);
    if (vmFd < 0) {
      const e = libc.errno();
      libc.close(system.fd);
      throw new Error(`KVM_CREATE_VM failed: ${libc.strerror(e)}`);
    }
    const accel = new KvmAccelerator(system, vmFd, mem, options);
    try {
      accel.setupVm();
    } catch (e) {
      accel.close();
      throw e;
    }
    return accel;
  }

  private check(r: number, what: string): number {
    if (r < 0) {
      const e = libc.errno();
      throw new Error(`${what} failed: ${libc.strerror(e)} (errno ${e})`);
    }
    return r;
  }

  private setupVm(): void {
    const fd = this.vmFd;
    this.check(libc.ioctlInt(fd, api.KVM_SET_TSS_ADDR, TSS_ADDR), 'KVM_SET_TSS_ADDR');
    const idmap = new Uint8Array(8);
    new DataView(idmap.buffer).setBigUint64(0, BigInt(IDENTITY_MAP_ADDR), true);
    this.check(libc.ioctlPtr(fd, api.KVM_SET_IDENTITY_MAP_ADDR, idmap), 'KVM_SET_IDENTITY_MAP_ADDR');
    if (this.options.irqchip) {
      this.check(libc.ioctlInt(fd, api.KVM_CREATE_IRQCHIP, 0), 'KVM_CREATE_IRQCHIP');
      // struct kvm_pit_config { u32 flags; u32 pad[15]; }; flag 1 = KVM_PIT_SPEAKER_DUMMY (port 0x61 in kernel).
      const pit = new Uint8Array(64);
      pit[0] = 1;
      this.check(libc.ioctlPtr(fd, api.KVM_CREATE_PIT2, pit), 'KVM_CREATE_PIT2');
      this.setupIrqfd();
    }
    // One memory slot per RAM/ROM region (struct kvm_userspace_memory_region).
    const hostBase = libc.addressOf(this.mem.bytes);
    this.mem.regions.forEach((r, slot) => {
      const b = new Uint8Array(32);
      const v = new DataView(b.buffer);
      v.setUint32(0, slot, true);
      v.setUint32(4, r.readonly ? api.KVM_MEM_READONLY : 0, true);
      v.setBigUint64(8, BigInt(r.gpa), true);
      v.setBigUint64(16, BigInt(r.size), true);
      v.setBigUint64(24, hostBase + BigInt(r.offset), true);
      this.check(libc.ioctlPtr(fd, api.KVM_SET_USER_MEMORY_REGION, b), `KVM_SET_USER_MEMORY_REGION (slot ${slot})`);
    });
    for (let id = 0; id < this.options.cpus; id++) {
      const vfd = this.check(libc.ioctlInt(fd, api.KVM_CREATE_VCPU, id), `KVM_CREATE_VCPU ${id}`);
      const ptr = libc.mmap(null, this.system.vcpuMmapSize, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, vfd, 0);
      if (libc.addressOfPointer(ptr) === 0xffffffffffffffffn) throw new Error('mmap of kvm_run failed');
      const run = new DataView(libc.viewOf(ptr, this.system.vcpuMmapSize));
      this.vcpus.push({ id, fd: vfd, mailbox: mb.createMailbox(), run });
    }
  }

  /**
   * Takes over the GSI routing table (restating KVM's defaults) so that MSI-X vectors can get
   * routes and irqfds. Without KVM_CAP_IRQFD or KVM_CAP_IRQ_ROUTING, or when the table is
   * refused, the VM keeps KVM's default table and MSIs go through KVM_SIGNAL_MSI.
   */
  private setupIrqfd(): void {
    if (this.options.irqfd === false) {
      this.irqfdUnavailable = 'turned off (irqfd: false)';
    } else if (libc.ioctlInt(this.system.fd, api.KVM_CHECK_EXTENSION, api.KVM_CAP_IRQFD) <= 0) {
      this.irqfdUnavailable = 'KVM_CAP_IRQFD is absent';
    } else {
      const routing = KvmIrqRouting.create(this.system.fd, this.vmFd, { maxMsiRoutes: this.options.maxMsiRoutes, log: this.options.log });
      if (typeof routing === 'string') this.irqfdUnavailable = routing;
      else this.irqfdRoutes = new KvmIrqfdRoutes(this.vmFd, routing, this.options.log, this.debug);
    }
    const s = this.msiStats();
    this.debug(s.path === 'irqfd'
      ? `kvm: MSI-X through irqfd (GSI routing table restates KVM's 24 irqchip GSIs; up to ${this.irqfdRoutes!.routing.maxMsiRoutes} MSI routes)`
      : `kvm: MSI-X through KVM_SIGNAL_MSI: ${s.why}`);
  }

  /** The MSI delivery path and its counters (tests, debug). */
  msiStats(): KvmMsiStats {
    const r = this.irqfdRoutes?.stats();
    return {
      path: !this.options.irqchip ? 'none' : r ? 'irqfd' : 'KVM_SIGNAL_MSI',
      why: r ? undefined : this.irqfdUnavailable,
      routes: r?.routes ?? 0,
      irqfdSignals: r?.irqfdSignals ?? 0,
      signalMsiCalls: this.signalMsiCalls,
    };
  }

  run(bus: Bus, boot: CpuState): Promise<GuestStop> {
    if (!kickHandlerInstalled) {
      process.on(KICK_SIGNAL, () => {});
      kickHandlerInstalled = true;
    }
    const pvmQuirks = this.options.pvmQuirks ?? this.system.isPvm;
    if (pvmQuirks && this.system.isPvm && !pvmNoticeShown) {
      pvmNoticeShown = true;
      this.options.log('kvm: PVM host: hiding CMPXCHG16B from the guest (its instruction emulator lacks it)');
    }
    const msrs: [number, bigint][] = [
      [api.MSR_IA32_MISC_ENABLE, 1n], // fast strings enabled (SDM vol. 4, IA32_MISC_ENABLE bit 0)
      [api.MSR_IA32_CR_PAT, 0x0007040600070406n], // the power-on PAT value (SDM vol. 3A 11.12.4)
    ];
    return new Promise<GuestStop>((resolve) => {
      let first: GuestStop | undefined;
      let remaining = this.vcpus.length;
      for (const vcpu of this.vcpus) {
        const wd: VcpuWorkerData = {
          vcpuId: vcpu.id,
          vcpuFd: vcpu.fd,
          mmapSize: this.system.vcpuMmapSize,
          mailbox: vcpu.mailbox,
          doorbell: this.doorbell,
          cpuid: buildCpuid(this.system.supportedCpuid, { vcpuId: vcpu.id, cpus: this.vcpus.length, pvmQuirks }),
          msrs,
          state: vcpu.id === 0 ? boot : null,
        };
        const worker = new Worker(distSrcUrl('accel/kvm/vcpu-worker.js'), { workerData: wd, name: `vcpu${vcpu.id}` });
        vcpu.worker = worker;
        const done = (msg: VcpuStoppedMessage) => {
          if (vcpu.stopped) return;
          vcpu.stopped = msg;
          if (!first || (first.reason === 'requested' && msg.reason !== 'requested')) {
            first = { reason: msg.reason, message: msg.message, vcpuId: msg.vcpuId, state: msg.state, eventType: msg.eventType };
          }
          if (msg.reason !== 'requested') this.stop(); // one vCPU's end is the VM's end
          Atomics.add(this.doorbell, 0, 1);
          Atomics.notify(this.doorbell, 0);
          if (--remaining === 0) resolve(first!);
        };
        worker.on('message', (msg: VcpuStoppedMessage) => done(msg));
        worker.on('error', (err) => done({ type: 'stopped', vcpuId: vcpu.id, reason: 'error', message: `vCPU ${vcpu.id} thread failed: ${err.message}` }));
        worker.on('exit', () => done({ type: 'stopped', vcpuId: vcpu.id, reason: 'requested', message: 'vCPU thread exited' }));
      }
      void this.serve(bus);
    });
  }

  /**
   * Answers the accesses the vCPUs forward, until they have all stopped. Waking the device thread
   * through the event loop (Atomics.waitAsync) costs tens of microseconds, more than the KVM exit
   * itself; so while accesses keep coming (a burst: console output, a device being programmed) the
   * thread waits for the next one synchronously, for at most BURST_MS before it yields to the
   * event loop again. Between bursts it sleeps in waitAsync and costs nothing.
   */
  private async serve(bus: Bus): Promise<void> {
    const db = this.doorbell;
    let burstStart = -1;
    while (this.vcpus.some((v) => !v.stopped)) {
      const seq = Atomics.load(db, 0);
      const served = this.serveRequests(bus);
      const now = performance.now();
      if (served > 0 && burstStart < 0) burstStart = now;
      if (burstStart >= 0 && now - burstStart < BURST_MS) {
        if (served === 0 && Atomics.wait(db, 0, seq, BURST_IDLE_MS) === 'timed-out') burstStart = -1;
        continue;
      }
      burstStart = -1;
      if (served > 0) {
        await new Promise<void>((r) => setImmediate(r));
        continue;
      }
      const w = Atomics.waitAsync(db, 0, seq, 1000);
      if (w.async) await w.value;
    }
  }

  /** Serves every pending request once; returns how many there were. */
  private serveRequests(bus: Bus): number {
    let n = 0;
    for (const vcpu of this.vcpus) {
      const box = vcpu.mailbox;
      if (Atomics.load(box, mb.MB_STATE) !== mb.MailboxState.Request) continue;
      n++;
      let lo = 0;
      let hi = 0;
      try {
        const kind = box[mb.MB_KIND];
        const addr = (box[mb.MB_ADDR_LO] >>> 0) + (box[mb.MB_ADDR_HI] >>> 0) * 2 ** 32;
        const size = box[mb.MB_SIZE];
        if (kind === mb.RequestKind.PioIn) lo = bus.pioRead(addr, size as 1 | 2 | 4);
        else if (kind === mb.RequestKind.PioOut) bus.pioWrite(addr, size as 1 | 2 | 4, box[mb.MB_DATA_LO]);
        else if (kind === mb.RequestKind.MmioRead) {
          if (size === 8) [lo, hi] = bus.mmioRead64(addr);
          else lo = bus.mmioRead(addr, size as 1 | 2 | 4);
        } else if (size === 8) bus.mmioWrite64(addr, box[mb.MB_DATA_LO], box[mb.MB_DATA_HI]);
        else bus.mmioWrite(addr, size as 1 | 2 | 4, box[mb.MB_DATA_LO]);
      } catch (e) {
        // A device model bug must not take the VMM down silently; stop the guest with the reason.
        this.options.log(`device error on vCPU ${vcpu.id}: ${(e as Error).stack ?? e}`);
        this.stop();
      }
      box[mb.MB_DATA_LO] = lo;
      box[mb.MB_DATA_HI] = hi;
      Atomics.store(box, mb.MB_STATE, mb.MailboxState.Response);
      Atomics.notify(box, mb.MB_STATE);
    }
    return n;
  }

  private setControl(c: mb.Control): void {
    for (const v of this.vcpus) {
      if (v.stopped) continue;
      Atomics.store(v.mailbox, mb.MB_CONTROL, c);
      Atomics.notify(v.mailbox, mb.MB_CONTROL);
      if (c !== mb.Control.Run) this.kick(v);
    }
  }

  /** Makes KVM_RUN return: immediate_exit covers a vCPU about to enter, the signal one inside. */
  private kick(v: Vcpu): void {
    v.run.setUint8(api.RUN_IMMEDIATE_EXIT, 1);
    const tid = Atomics.load(v.mailbox, mb.MB_TID);
    if (tid > 0) tgkill(process.pid, tid, SIGUSR2);
  }

  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.setControl(mb.Control.Stop);
  }

  pause(): void { if (!this.stopping) this.setControl(mb.Control.Pause); }
  resume(): void { if (!this.stopping) this.setControl(mb.Control.Run); }

  stats(): AccelStats {
    const s: AccelStats = { exits: 0, ioExits: 0, mmioExits: 0, forwarded: 0 };
    for (const v of this.vcpus) {
      s.exits += Atomics.load(v.mailbox, mb.MB_EXITS);
      s.ioExits += Atomics.load(v.mailbox, mb.MB_IO_EXITS);
      s.mmioExits += Atomics.load(v.mailbox, mb.MB_MMIO_EXITS);
      s.forwarded += Atomics.load(v.mailbox, mb.MB_FORWARDED);
    }
    return s;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.irqfdRoutes?.close();
    for (const v of this.vcpus) libc.close(v.fd);
    libc.close(this.vmFd);
    libc.close(this.system.fd);
  }
}
