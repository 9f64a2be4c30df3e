// A TAP network interface as a virtio-net backend (Linux Documentation/networking/tuntap.rst).
//
// Opening: open("/dev/net/tun"), TUNSETIFF with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR (Ethernet
// frames, no packet-info prefix, each frame preceded by struct virtio_net_hdr), then
// TUNSETVNETHDRSZ 12 so that the header is the VIRTIO 1.x one (with num_buffers) that virtio-net
// uses: headers then pass through untouched both ways. TUNSETOFFLOAD tells the kernel which
// offloads the guest accepts on receive (partial checksums, TSO); the guest's own offloaded
// frames (NEEDS_CSUM, GSO) are completed by the kernel when we write them.
//
// Reading without blocking the device thread: fd-watch.ts hands the fd to libuv as a stream
// and gets one callback per read(2), i.e. per frame, from the event loop (epoll): no thread-pool
// thread parked in a blocking read, no polling timer. (Checked: each callback is one frame.) Writes are write(2) on the non-blocking fd: a full
// queue (EAGAIN) drops the frame, as a NIC would.
//
// The interface is created down; bringing it up and addressing it (ip link set NAME up; or a
// bridge) is the host administrator's job, as with QEMU's `-netdev tap,script=no`.
import { writeSync } from 'node:fs';
import * as libc from '../accel/kvm/libc.js';
import type { GuestOffloads, NetBackend } from '../devices/virtio/net.js';
import { type FdWatch, watchFd } from './fd-watch.js';

/** ioctl numbers: _IOW('T', nr, int) (include/uapi/linux/if_tun.h). */
export const TUNSETIFF = 0x400454ca;
export const TUNSETOFFLOAD = 0x400454d0;
export const TUNSETVNETHDRSZ = 0x400454d8;
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
const O_NONBLOCK = 0o4000;
const IFNAMSIZ = 16;
const VNET_HDR_SIZE = 12;
/** Largest frame read: 64 KiB GSO payload + headers. */
const READ_BUFFER = 65536 + 256;

export class TapError extends Error {}

export interface TapOptions {
  /** Interface name (at most 15 bytes); default "tsvm%d" (the kernel picks the number). */
  ifname?: string;
}

export class TapBackend implements NetBackend {
  readonly vnetHeader = true;
  readonly offloads = { csum: true, tso: true };
  onReceive?: (frame: Uint8Array) => void;
  private readonly watch: FdWatch;
  private closed = false;
  readonly stats = { rxFrames: 0, txFrames: 0, txDropped: 0 };

  private constructor(
    readonly fd: number,
    readonly ifname: string,
  ) {
    this.watch = watchFd(fd, READ_BUFFER, (n, buf) => {
      this.stats.rxFrames++;
      // The buffer is reused for the next read: the device copies what it keeps.
      this.onReceive?.(buf.subarray(0, n));
    });
  }

  static open(opts: TapOptions = {}): TapBackend {
    const name = opts.ifname ?? 'tsvm%d';
    if (Buffer.byteLength(name) >= IFNAMSIZ) throw new TapError(`TAP interface name "${name}" is longer than 15 bytes`);
    const fd = libc.open('/dev/net/tun', libc.O_RDWR | O_NONBLOCK | libc.O_CLOEXEC);
    if (fd < 0) {
      const e = libc.errno();
      throw new TapError(`cannot open /dev/net/tun: ${libc.strerror(e)}${e === libc.EACCES || e === libc.EPERM ? ' (needs CAP_NET_ADMIN or a TAP owned by you)' : ''}`);
    }
    try {
      // struct ifreq: ifr_name[16], then the union: ifr_flags (short) at offset 16; 40 bytes.
      const ifr = new Uint8Array(40);
      ifr.set(Buffer.from(name), 0);
      new DataView(ifr.buffer).setUint16(IFNAMSIZ, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, true);
      if (libc.ioctlPtr(fd, TUNSETIFF, ifr) < 0) throw new TapError(`TUNSETIFF ${name}: ${libc.strerror(libc.errno())}`);
      const actual = Buffer.from(ifr.subarray(0, IFNAMSIZ)).toString('latin1').replace(/\0.*$/s, '');
      const size = new Uint8Array(4);
      new DataView(size.buffer).setInt32(0, VNET_HDR_SIZE, true);
      if (libc.ioctlPtr(fd, TUNSETVNETHDRSZ, size) < 0) throw new TapError(`TUNSETVNETHDRSZ: ${libc.strerror(libc.errno())}`);
      // No offloads towards the guest until its driver says what it accepts.
      if (libc.ioctlInt(fd, TUNSETOFFLOAD, 0) < 0) throw new TapError(`TUNSETOFFLOAD: ${libc.strerror(libc.errno())}`);
      return new TapBackend(fd, actual);
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    try {
      writeSync(this.fd, frame);
      this.stats.txFrames++;
      return true;
    } catch {
      // EAGAIN (queue full), EIO (interface down): dropped, like a NIC with a full ring.
      this.stats.txDropped++;
      return false;
    }
  }

  pause(): void { this.watch.pause(); }
  resume(): void { this.watch.resume(); }

  setGuestOffloads(o: GuestOffloads): void {
    let flags = 0;
    if (o.csum) {
      flags |= TUN_F_CSUM;
      if (o.tso4) flags |= TUN_F_TSO4;
      if (o.tso6) flags |= TUN_F_TSO6;
      if ((o.tso4 || o.tso6) && o.ecn) flags |= TUN_F_TSO_ECN;
    }
    if (!this.closed) libc.ioctlInt(this.fd, TUNSETOFFLOAD, flags);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Closing the watch closes the fd (libuv owns it).
    await this.watch.close();
  }
}

/** `--net tap[,ifname=NAME][,mac=MAC]` parsed; throws TapError on a malformed spec. */
export interface NetSpec {
  kind: 'tap';
  ifname?: string;
  mac?: string;
}

export function parseNetSpec(spec: string): NetSpec {
  const [kind, ...rest] = spec.split(',');
  if (kind !== 'tap') throw new TapError(`--net ${spec}: only "tap" is supported`);
  const out: NetSpec = { kind: 'tap' };
  for (const kv of rest) {
    const eq = kv.indexOf('=');
    const k = eq < 0 ? kv : kv.slice(0, eq);
    const v = eq < 0 ? '' : kv.slice(eq + 1);
    if (k === 'ifname' && v) out.ifname = v;
    else if (k === 'mac' && /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(v)) out.mac = v;
    else throw new TapError(`--net ${spec}: unknown or malformed option "${kv}"`);
  }
  return out;
}
