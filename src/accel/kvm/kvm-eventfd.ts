// The KVM fast path for virtio queue notifications: ioeventfd (Linux
// Documentation/virt/kvm/api.rst, 4.59 KVM_IOEVENTFD).
//
// Without it, a guest write to a queue's notify register is an MMIO exit: the vCPU worker
// forwards it through its mailbox to the device thread and waits for the answer before it
// re-enters the guest (a round trip through two threads). With an ioeventfd registered for that
// address, KVM completes the write inside the kernel and signals an eventfd; the vCPU goes on at
// once and the device thread, watching the eventfd from its event loop (net/fd-watch.ts),
// serves the queue. The guest never waits for the device model.
//
// The other direction, interrupts, skips the vCPU thread too: MSI-X vectors are irqfds on GSI
// routes (kvm-irqfd.ts, kvm-irq-routing.ts; KVM_SIGNAL_MSI when a vector has no route) and INTx
// goes out with KVM_IRQ_LINE, all issued by the device thread on the VM fd.
//
// struct kvm_ioeventfd (64 bytes): u64 datamatch, u64 addr, u32 len, s32 fd, u32 flags, u8 pad[36];
// flags: 1 DATAMATCH, 2 PIO, 4 DEASSIGN.
import * as api from './kvm-api.js';
import * as libc from './libc.js';
import { type FdWatch, watchFd } from '../../net/fd-watch.js';
import type { VirtioPciDevice } from '../../devices/virtio/pci-transport.js';

export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1;
export const KVM_IOEVENTFD_FLAG_PIO = 2;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 4;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;

export interface IoEventFd {
  readonly addr: number;
  readonly len: number;
  readonly pio: boolean;
  /** Signals seen (one read may collapse several guest writes: the counter is summed by the kernel). */
  readonly signals: number;
  close(): Promise<void>;
}

class Registration implements IoEventFd {
  signals = 0;
  private watch?: FdWatch;
  private closed = false;

  constructor(
    private readonly owner: KvmIoEventFds,
    readonly addr: number,
    readonly len: number,
    readonly pio: boolean,
    readonly fd: number,
    onSignal: () => void,
  ) {
    this.watch = watchFd(fd, 8, () => {
      this.signals++;
      onSignal();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.owner.ioctl(this, true);
    await this.watch?.close();
    this.watch = undefined;
  }
}

export class KvmIoEventFds {
  private readonly regs = new Set<Registration>();
  private readonly buf = new Uint8Array(64);
  private readonly view = new DataView(this.buf.buffer);

  constructor(
    private readonly vmFd: number,
    private readonly log: (line: string) => void = () => {},
  ) {}

  /** Whether this host's KVM has ioeventfd at all. */
  static supported(systemFd: number): boolean {
    return libc.ioctlInt(systemFd, api.KVM_CHECK_EXTENSION, api.KVM_CAP_IOEVENTFD) > 0;
  }

  /** @internal KVM_IOEVENTFD assign/deassign for `r`; returns false (logged) on failure. */
  ioctl(r: { addr: number; len: number; pio: boolean; fd: number }, deassign: boolean): boolean {
    this.buf.fill(0);
    this.view.setBigUint64(0, 0n, true);
    this.view.setBigUint64(8, BigInt(r.addr), true);
    this.view.setUint32(16, r.len, true);
    this.view.setInt32(20, r.fd, true);
    this.view.setUint32(24, (r.pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0), true);
    if (libc.ioctlPtr(this.vmFd, api.KVM_IOEVENTFD, this.buf) < 0) {
      const e = libc.errno();
      this.log(`kvm: KVM_IOEVENTFD ${deassign ? 'deassign' : 'assign'} ${r.pio ? 'port' : 'mmio'} 0x${r.addr.toString(16)}/${r.len}: ${libc.strerror(e)}`);
      return false;
    }
    return true;
  }

  /**
   * Writes of `len` bytes (1, 2, 4 or 8) to `addr` (MMIO, or a port when `pio`) signal an eventfd
   * in the kernel instead of exiting; `onSignal` then runs on the event loop. Returns undefined
   * when KVM refused (the access keeps exiting to user space: still correct, just slower).
   */
  add(addr: number, len: number, pio: boolean, onSignal: () => void): IoEventFd | undefined {
    const fd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
      this.log(`kvm: eventfd: ${libc.strerror(libc.errno())}`);
      return undefined;
    }
    if (!this.ioctl({ addr, len, pio, fd }, false)) {
      libc.close(fd);
      return undefined;
    }
    const r = new Registration(this, addr, len, pio, fd, onSignal);
    this.regs.add(r);
    const close = r.close.bind(r);
    r.close = async () => {
      this.regs.delete(r);
      await close();
    };
    return r;
  }

  /**
   * Route every queue notify register of a virtio-pci function through ioeventfds (16-bit
   * writes, what drivers do: VIRTIO 1.2 §4.1.5.2), following the BAR when the guest moves it or
   * turns decoding off.
   */
  bindVirtio(dev: VirtioPciDevice): void {
    let current: IoEventFd[] = [];
    const rebind = (): void => {
      const old = current;
      current = [];
      for (const r of old) void r.close();
      for (let q = 0; q < dev.queues.length; q++) {
        const addr = dev.notifyAddress(q);
        if (addr === undefined) continue;
        const r = this.add(addr, 2, false, () => dev.kick(q));
        if (r) current.push(r);
      }
    };
    const prev = dev.onNotifyMoved;
    dev.onNotifyMoved = () => {
      prev?.();
      rebind();
    };
    rebind();
  }

  get count(): number {
    return this.regs.size;
  }

  async close(): Promise<void> {
    await Promise.all([...this.regs].map((r) => r.close()));
  }
}
