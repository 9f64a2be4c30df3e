// MSI-X vectors as irqfds (Linux Documentation/virt/kvm/api.rst, 4.75 KVM_IRQFD, on top of
// 4.52 KVM_SET_GSI_ROUTING): each vector in use gets a GSI whose route is its MSI message, and
// an eventfd bound to that GSI. Raising the vector is then an 8-byte write(2) to the eventfd:
// KVM injects the message from the eventfd's wakeup, in the writer's system call, without any
// vCPU thread and without the device thread having to be the writer (any thread or process that
// holds the fd can interrupt the guest).
//
// The alternative, KVM_SIGNAL_MSI (api.rst 4.71), is one ioctl per message that carries the
// whole message each time; it stays the fallback for messages that have no route (the table is
// full, an address outside the local APIC range, an error).
//
// A route lives from the vector's first use until MSI-X is disabled or the device is reset
// (msix.ts releases it): masking a vector does not release it, because msix.ts simply stops
// signalling it and Linux masks/unmasks vectors often (interrupt migration). When the guest
// reprograms the vector's address or data, only the routing entry changes: KVM re-resolves the
// route of every irqfd when the table is replaced (kvm_irq_routing_update), so the eventfd and
// its KVM_IRQFD binding stay as they are.
import type { MsiRoute } from '../accelerator.js';
import * as api from './kvm-api.js';
import type { KvmIrqRouting } from './kvm-irq-routing.js';
import * as libc from './libc.js';

const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;

export interface MsiRouteStats {
  /** Routes with a GSI and an irqfd now. */
  routes: number;
  /** Messages sent as eventfd writes. */
  irqfdSignals: number;
}

export class KvmIrqfdRoutes {
  private readonly live = new Set<IrqfdRoute>();
  private readonly irqfdBuf = new Uint8Array(32);
  private readonly irqfdView = new DataView(this.irqfdBuf.buffer);
  /** The eventfd counter increment, as write(2) wants it: a native-endian u64 of 1. */
  readonly one = new Uint8Array(new BigUint64Array([1n]).buffer);
  irqfdSignals = 0;
  closed = false;
  private fullNoticeShown = false;

  constructor(
    readonly vmFd: number,
    readonly routing: KvmIrqRouting,
    readonly log: (line: string) => void,
    readonly debug: (line: string) => void,
  ) {}

  open(): MsiRoute | undefined {
    if (this.closed) return undefined;
    return new IrqfdRoute(this);
  }

  stats(): MsiRouteStats {
    return { routes: this.live.size, irqfdSignals: this.irqfdSignals };
  }

  /** @internal A GSI and a bound eventfd for `route`, or false (logged) when there is none. */
  attach(route: IrqfdRoute, address: number, data: number): boolean {
    const gsi = this.routing.addMsi(address, data);
    if (gsi === undefined) {
      if (!this.fullNoticeShown && this.routing.msiRoutes >= this.routing.maxMsiRoutes) {
        this.fullNoticeShown = true;
        this.debug(`kvm: all ${this.routing.maxMsiRoutes} MSI routes in use: further vectors use KVM_SIGNAL_MSI`);
      }
      return false;
    }
    const fd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
      this.log(`kvm: eventfd for an MSI route: ${libc.strerror(libc.errno())}`);
      this.routing.removeMsi(gsi);
      return false;
    }
    if (!this.irqfd(fd, gsi, false)) {
      libc.close(fd);
      this.routing.removeMsi(gsi);
      return false;
    }
    route.gsi = gsi;
    route.fd = fd;
    this.live.add(route);
    this.debug(`kvm: MSI 0x${address.toString(16)}/0x${data.toString(16)} through irqfd on GSI ${gsi}`);
    return true;
  }

  /** @internal Unbinds and closes `route`'s eventfd and frees its GSI. */
  detach(route: IrqfdRoute): void {
    if (!this.live.delete(route)) return;
    if (!this.closed) this.irqfd(route.fd, route.gsi, true);
    libc.close(route.fd);
    if (!this.closed) this.routing.removeMsi(route.gsi);
    route.fd = -1;
    route.gsi = -1;
  }

  /** KVM_IRQFD assign or deassign. struct kvm_irqfd { u32 fd; u32 gsi; u32 flags; u32 resamplefd; u8 pad[16]; } */
  private irqfd(fd: number, gsi: number, deassign: boolean): boolean {
    this.irqfdBuf.fill(0);
    this.irqfdView.setUint32(0, fd, true);
    this.irqfdView.setUint32(4, gsi, true);
    this.irqfdView.setUint32(8, deassign ? api.KVM_IRQFD_FLAG_DEASSIGN : 0, true);
    if (libc.ioctlPtr(this.vmFd, api.KVM_IRQFD, this.irqfdBuf) < 0) {
      const e = libc.errno();
      this.log(`kvm: KVM_IRQFD ${deassign ? 'deassign' : 'assign'} GSI ${gsi}: ${libc.strerror(e)} (errno ${e})`);
      return false;
    }
    return true;
  }

  /**
   * Closes every route's eventfd; call when the VM is being closed. No deassign and no table
   * update per route: the VM's irqfds and routing table go away with the VM fd (and an irqfd
   * detaches itself when its eventfd is closed), so tearing down N routes is not N table sends.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const r of [...this.live]) this.detach(r);
  }
}

class IrqfdRoute implements MsiRoute {
  gsi = -1;
  fd = -1;
  /** The message the kernel route carries; NaN before the first program(). */
  private address = NaN;
  private data = NaN;
  private dead = false;

  constructor(private readonly owner: KvmIrqfdRoutes) {}

  program(address: number, data: number): boolean {
    if (this.dead || this.owner.closed) return false;
    if (this.fd >= 0 && address === this.address && data === this.data) return true;
    if (this.fd < 0) {
      if (!this.owner.attach(this, address, data)) return false;
    } else if (!this.owner.routing.setMsi(this.gsi, address, data)) {
      // Not routable (or refused): the kernel still holds the previous message, so this route
      // must not be signalled until a later program() succeeds.
      this.address = NaN;
      return false;
    }
    this.address = address;
    this.data = data;
    return true;
  }

  signal(): boolean {
    // A closed owner means the VM is gone and our fd number may already name another file.
    if (this.fd < 0 || this.owner.closed || Number.isNaN(this.address)) return false;
    if (libc.write(this.fd, this.owner.one, 8) !== 8) return false;
    this.owner.irqfdSignals++;
    return true;
  }

  release(): void {
    if (this.dead) return;
    this.dead = true;
    this.owner.detach(this);
  }
}
