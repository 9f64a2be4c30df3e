// A vCPU thread: owns one KVM vCPU fd and loops on KVM_RUN. Exits that need device state go to
// the device thread through the mailbox (vcpu-mailbox.ts); the worker handles alone what needs
// none (port 0x80, the POST/delay port) so those cost one KVM round trip and nothing more.
// Stops that end the vCPU (triple fault, entry failure, emulation failure) are reported with a
// register dump through postMessage.
import { parentPort, workerData } from 'node:worker_threads';
import type { CpuState } from '../cpu-state.js';
import * as api from './kvm-api.js';
import { decodeRegs, decodeSregs, encodeMsrs, encodeRegs, encodeSregs } from './kvm-structs.js';
import * as libc from './libc.js';
import * as mb from './vcpu-mailbox.js';
import { POST_PORT } from '../../vmm/platform-layout.js';

export interface VcpuWorkerData {
  vcpuId: number;
  vcpuFd: number;
  mmapSize: number;
  mailbox: Int32Array;
  /** Shared by all vCPUs: bumped and notified with each request, so the device thread waits on one word. */
  doorbell: Int32Array;
  /** kvm_cpuid2 struct ready for KVM_SET_CPUID2. */
  cpuid: Uint8Array;
  msrs: [number, bigint][];
  /** Initial state; null for an application processor that waits for INIT/SIPI in the in-kernel LAPIC. */
  state: CpuState | null;
}

export type VcpuStopReason = 'requested' | 'shutdown' | 'hlt' | 'fail-entry' | 'internal-error' | 'system-event' | 'error';

export interface VcpuStoppedMessage {
  type: 'stopped';
  vcpuId: number;
  reason: VcpuStopReason;
  message: string;
  state?: CpuState;
  /** For system events: 1 shutdown, 2 reset, 3 crash (api.rst, KVM_EXIT_SYSTEM_EVENT). */
  eventType?: number;
}

const data = workerData as VcpuWorkerData;
const box = data.mailbox;
const fd = data.vcpuFd;

function fail(what: string): never {
  const e = libc.errno();
  throw new Error(`${what} failed on vCPU ${data.vcpuId}: ${libc.strerror(e)} (errno ${e})`);
}

function readState(): CpuState | undefined {
  const regs = new Uint8Array(api.KVM_REGS_SIZE);
  const sregs = new Uint8Array(api.KVM_SREGS_SIZE);
  if (libc.ioctlPtr(fd, api.KVM_GET_REGS, regs) < 0 || libc.ioctlPtr(fd, api.KVM_GET_SREGS, sregs) < 0) return undefined;
  return { regs: decodeRegs(regs), ...decodeSregs(sregs) };
}

function stop(reason: VcpuStopReason, message: string, withState: boolean, eventType?: number): void {
  const msg: VcpuStoppedMessage = { type: 'stopped', vcpuId: data.vcpuId, reason, message, eventType };
  if (withState) msg.state = readState();
  parentPort!.postMessage(msg);
}

/** Hand one access to the device thread and wait for its answer. */
function forward(kind: mb.RequestKind, addr: number, addrHi: number, size: number, lo: number, hi: number): void {
  box[mb.MB_KIND] = kind;
  box[mb.MB_ADDR_LO] = addr;
  box[mb.MB_ADDR_HI] = addrHi;
  box[mb.MB_SIZE] = size;
  box[mb.MB_DATA_LO] = lo;
  box[mb.MB_DATA_HI] = hi;
  box[mb.MB_FORWARDED]++;
  Atomics.store(box, mb.MB_STATE, mb.MailboxState.Request);
  Atomics.add(data.doorbell, 0, 1);
  Atomics.notify(data.doorbell, 0);
  while (Atomics.load(box, mb.MB_STATE) === mb.MailboxState.Request) {
    Atomics.wait(box, mb.MB_STATE, mb.MailboxState.Request);
  }
}

function takeResponse(): [number, number] {
  const r: [number, number] = [box[mb.MB_DATA_LO], box[mb.MB_DATA_HI]];
  Atomics.store(box, mb.MB_STATE, mb.MailboxState.Idle);
  return r;
}

function setup(): DataView {
  Atomics.store(box, mb.MB_TID, libc.gettid());
  if (libc.ioctlPtr(fd, api.KVM_SET_CPUID2, data.cpuid) < 0) fail('KVM_SET_CPUID2');
  if (data.msrs.length && libc.ioctlPtr(fd, api.KVM_SET_MSRS, encodeMsrs(data.msrs)) < 0) fail('KVM_SET_MSRS');
  if (data.state) {
    if (libc.ioctlPtr(fd, api.KVM_SET_SREGS, encodeSregs(data.state)) < 0) fail('KVM_SET_SREGS');
    if (libc.ioctlPtr(fd, api.KVM_SET_REGS, encodeRegs(data.state.regs)) < 0) fail('KVM_SET_REGS');
  }
  const ptr = libc.mmap(null, data.mmapSize, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 0);
  if (libc.addressOfPointer(ptr) === 0xffffffffffffffffn) fail('mmap of kvm_run');
  return new DataView(libc.viewOf(ptr, data.mmapSize));
}

function hex(v: number | bigint): string {
  return '0x' + v.toString(16);
}

function runLoop(run: DataView): void {
  const E = api.RUN_EXIT;
  for (;;) {
    const control = Atomics.load(box, mb.MB_CONTROL);
    if (control === mb.Control.Stop) return stop('requested', 'stopped by the VMM', false);
    if (control === mb.Control.Pause) {
      Atomics.wait(box, mb.MB_CONTROL, mb.Control.Pause);
      continue;
    }
    const r = libc.ioctlInt(fd, api.KVM_RUN, 0);
    if (r < 0) {
      const e = libc.errno();
      if (e === libc.EINTR || e === libc.EAGAIN) {
        // A kick (the VMM set immediate_exit and/or signalled us). Clear immediate_exit, then
        // look at the control word again at the top: the VMM stores the control word before it
        // sets immediate_exit, so a request is never lost between the two.
        run.setUint8(api.RUN_IMMEDIATE_EXIT, 0);
        continue;
      }
      return stop('error', `KVM_RUN failed: ${libc.strerror(e)} (errno ${e})`, true);
    }
    // Counters for metrics: only this thread writes them, readers tolerate a stale value.
    box[mb.MB_EXITS]++;
    const reason = run.getUint32(api.RUN_EXIT_REASON, true);
    switch (reason) {
      case api.KVM_EXIT_IO: {
        box[mb.MB_IO_EXITS]++;
        const out = run.getUint8(E) === 1;
        const size = run.getUint8(E + 1);
        const port = run.getUint16(E + 2, true);
        const count = run.getUint32(E + 4, true);
        // data_offset is a u64 but always within the kvm_run mapping (a few pages): its low half is enough.
        let off = run.getUint32(E + 8, true);
        if (port === POST_PORT) {
          if (!out) for (let i = 0; i < count * size; i++) run.setUint8(off + i, 0xff);
          break;
        }
        for (let i = 0; i < count; i++, off += size) {
          if (out) {
            const v = size === 1 ? run.getUint8(off) : size === 2 ? run.getUint16(off, true) : run.getUint32(off, true);
            forward(mb.RequestKind.PioOut, port, 0, size, v, 0);
            takeResponse();
          } else {
            forward(mb.RequestKind.PioIn, port, 0, size, 0, 0);
            const [v] = takeResponse();
            if (size === 1) run.setUint8(off, v);
            else if (size === 2) run.setUint16(off, v, true);
            else run.setUint32(off, v, true);
          }
        }
        break;
      }
      case api.KVM_EXIT_MMIO: {
        box[mb.MB_MMIO_EXITS]++;
        const addr = run.getBigUint64(E, true);
        const len = run.getUint32(E + 16, true);
        const write = run.getUint8(E + 20) !== 0;
        const lo = Number(addr & 0xffffffffn);
        const hi = Number(addr >> 32n);
        if (write) {
          forward(mb.RequestKind.MmioWrite, lo, hi, len, run.getUint32(E + 8, true), run.getUint32(E + 12, true));
          takeResponse();
        } else {
          forward(mb.RequestKind.MmioRead, lo, hi, len, 0, 0);
          const [dlo, dhi] = takeResponse();
          run.setUint32(E + 8, dlo, true);
          run.setUint32(E + 12, dhi, true);
        }
        break;
      }
      case api.KVM_EXIT_HLT:
        return stop('hlt', 'the guest executed HLT and no interrupt controller can wake it', true);
      case api.KVM_EXIT_SHUTDOWN:
        return stop('shutdown', 'the guest triple-faulted (KVM_EXIT_SHUTDOWN)', true);
      case api.KVM_EXIT_FAIL_ENTRY: {
        const hw = run.getBigUint64(E, true);
        return stop('fail-entry', `KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY, hardware reason ${hex(hw)})`, true);
      }
      case api.KVM_EXIT_INTERNAL_ERROR: {
        const sub = run.getUint32(E, true);
        const n = Math.min(run.getUint32(E + 4, true), 16);
        const extra = Array.from({ length: n }, (_, i) => hex(run.getBigUint64(E + 8 + i * 8, true))).join(' ');
        const name = api.KVM_INTERNAL_ERROR_NAMES[sub] ?? `suberror ${sub}`;
        return stop('internal-error', `KVM internal error: ${name}${extra ? ` [${extra}]` : ''}`, true);
      }
      case api.KVM_EXIT_SYSTEM_EVENT: {
        const type = run.getUint32(E, true);
        return stop('system-event', `KVM system event ${type}`, false, type);
      }
      case api.KVM_EXIT_INTR:
        break;
      default:
        return stop('error', `unexpected KVM exit reason ${api.EXIT_REASON_NAMES[reason] ?? reason}`, true);
    }
  }
}

try {
  runLoop(setup());
} catch (e) {
  stop('error', (e as Error).message, false);
}
