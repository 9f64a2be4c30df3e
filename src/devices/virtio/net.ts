// virtio-net (VIRTIO 1.2 §5.1): one receive queue (0) and one transmit queue (1), a MAC address
// in the configuration, link status, mergeable receive buffers, and checksum/segmentation
// offload when the backend can pass struct virtio_net_hdr through (TAP with IFF_VNET_HDR).
//
// Every packet on either queue starts with struct virtio_net_hdr (§5.1.6), 12 bytes with
// VIRTIO_F_VERSION_1: flags u8, gso_type u8, hdr_len le16, gso_size le16, csum_start le16,
// csum_offset le16, num_buffers le16. The TAP backend uses the same 12-byte header
// (TUNSETVNETHDRSZ 12), so headers pass through untouched in both directions; only num_buffers
// (receive) is ours to fill.
//
// Receive (§5.1.6.4): without VIRTIO_NET_F_MRG_RXBUF each packet must fit in one chain (else it
// is dropped); with it, a packet may span several chains and num_buffers says how many.
// Frames that arrive while the guest has no receive buffers wait in a bounded host queue; when it
// is full the backend is paused until the guest adds buffers.
import { VIRTIO_ID_NET, bit } from './constants.js';
import type { VirtioDevice, VirtioDeviceContext } from './device.js';
import { type DescChain } from './queue.js';
import { gather, scatter } from '../../memory/buffers.js';

/** Feature bits (§5.1.3). */
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
export const VIRTIO_NET_F_GUEST_ECN = 9;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_HOST_TSO6 = 12;
export const VIRTIO_NET_F_HOST_ECN = 13;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_S_LINK_UP = 1;
export const VIRTIO_NET_HDR_SIZE = 12;

const RX = 0;
const TX = 1;
/** Largest packet the device accepts from the guest: 64 KiB of TSO payload plus headers. */
const TX_MAX = VIRTIO_NET_HDR_SIZE + 65550;
/** Frames kept while the guest has no receive buffers. */
export const NET_RX_BACKLOG = 256;

export interface GuestOffloads {
  csum: boolean;
  tso4: boolean;
  tso6: boolean;
  ecn: boolean;
}

/** A host network endpoint (TAP, a test loopback, later user-mode networking). */
export interface NetBackend {
  /**
   * True when frames carry the 12-byte struct virtio_net_hdr in front, in both directions
   * (TAP with IFF_VNET_HDR and TUNSETVNETHDRSZ 12).
   */
  readonly vnetHeader: boolean;
  /** Whether the backend can take partially checksummed / TSO frames from the guest (needs vnetHeader). */
  readonly offloads: { csum: boolean; tso: boolean };
  /** Send one frame (with the header when vnetHeader). Returns false when it was dropped. */
  send(frame: Uint8Array): boolean;
  /** Set by the device; the backend calls it once per received frame (with the header when vnetHeader). */
  onReceive?: (frame: Uint8Array) => void;
  /** Stop calling onReceive until resume() (receive flow control). */
  pause(): void;
  resume(): void;
  /** What the guest accepted on receive (TUNSETOFFLOAD), set when the driver starts the device. */
  setGuestOffloads?(o: GuestOffloads): void;
  close(): Promise<void>;
}

export interface VirtioNetOptions {
  backend: NetBackend;
  /** "52:54:00:12:34:56"; default a locally administered address derived from a counter. */
  mac?: string;
  queueSize?: number;
}

let macCounter = 0;

export function parseMac(s: string): Uint8Array {
  const parts = s.split(':');
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) throw new RangeError(`bad MAC address "${s}"`);
  const mac = Uint8Array.from(parts.map((p) => parseInt(p, 16)));
  if (mac[0] & 1) throw new RangeError(`MAC address "${s}" is a multicast address`);
  return mac;
}

export class VirtioNet implements VirtioDevice {
  readonly name = 'virtio-net';
  readonly deviceType = VIRTIO_ID_NET;
  readonly pciClass = 0x020000; // network controller, Ethernet
  readonly queueSizes: number[];
  readonly features: bigint;
  readonly configSize = 12;
  readonly mac: Uint8Array;
  private readonly backend: NetBackend;
  private ctx?: VirtioDeviceContext;
  private backlog: Uint8Array[] = [];
  private paused = false;
  private mergeable = false;
  readonly stats = { txPackets: 0, txDropped: 0, rxPackets: 0, rxDropped: 0, rxBuffers: 0 };

  constructor(opts: VirtioNetOptions) {
    this.backend = opts.backend;
    const n = opts.queueSize ?? 256;
    this.queueSizes = [n, n];
    this.mac = opts.mac ? parseMac(opts.mac) : Uint8Array.of(0x52, 0x54, 0x00, 0x7e, (macCounter >> 8) & 0xff, macCounter++ & 0xff);
    let f = bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_NET_F_MRG_RXBUF);
    if (this.backend.vnetHeader && this.backend.offloads.csum) {
      f |= bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM);
      if (this.backend.offloads.tso) {
        f |= bit(VIRTIO_NET_F_HOST_TSO4) | bit(VIRTIO_NET_F_HOST_TSO6) | bit(VIRTIO_NET_F_HOST_ECN);
        f |= bit(VIRTIO_NET_F_GUEST_TSO4) | bit(VIRTIO_NET_F_GUEST_TSO6) | bit(VIRTIO_NET_F_GUEST_ECN);
      }
    }
    this.features = f;
    this.backend.onReceive = (frame) => this.receive(frame);
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    // mac[6], status le16, max_virtqueue_pairs le16 (1), mtu le16 (unused without VIRTIO_NET_F_MTU) (§5.1.4).
    const cfg = new Uint8Array(12);
    cfg.set(this.mac, 0);
    cfg[6] = VIRTIO_NET_S_LINK_UP;
    cfg[8] = 1;
    let v = 0;
    for (let i = 0; i < size; i++) v |= (cfg[offset + i] ?? 0) << (8 * i);
    return v >>> 0;
  }

  writeConfig(): void {
    // The MAC is read-only in VIRTIO 1.x (§5.1.4.2: the driver uses the control queue to change it).
  }

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
    const has = (b: number): boolean => (ctx.features & bit(b)) !== 0n;
    this.mergeable = has(VIRTIO_NET_F_MRG_RXBUF);
    this.backend.setGuestOffloads?.({
      csum: has(VIRTIO_NET_F_GUEST_CSUM),
      tso4: has(VIRTIO_NET_F_GUEST_TSO4),
      tso6: has(VIRTIO_NET_F_GUEST_TSO6),
      ecn: has(VIRTIO_NET_F_GUEST_ECN),
    });
  }

  reset(): void {
    this.ctx = undefined;
    this.backlog = [];
    this.resumeBackend();
  }

  private resumeBackend(): void {
    if (this.paused) {
      this.paused = false;
      this.backend.resume();
    }
  }

  queueNotify(q: number): void {
    if (q === RX) this.deliver();
    else if (q === TX) this.transmit();
  }

  private transmit(): void {
    const ctx = this.ctx;
    if (!ctx?.alive) return;
    const queue = ctx.queues[TX];
    for (let chain = queue.pop(); chain; chain = queue.pop()) {
      const n = chain.readableLength;
      if (n < VIRTIO_NET_HDR_SIZE || n > TX_MAX) {
        this.stats.txDropped++;
      } else {
        const pkt = new Uint8Array(n);
        gather(chain.readable, pkt);
        const ok = this.backend.send(this.backend.vnetHeader ? pkt : pkt.subarray(VIRTIO_NET_HDR_SIZE));
        if (ok) this.stats.txPackets++;
        else this.stats.txDropped++;
      }
      ctx.complete(TX, chain.head, 0);
    }
  }

  /** A frame from the backend for the guest. */
  receive(frame: Uint8Array): void {
    if (!this.ctx?.alive) {
      this.stats.rxDropped++;
      return;
    }
    let pkt: Uint8Array;
    if (this.backend.vnetHeader) {
      if (frame.length < VIRTIO_NET_HDR_SIZE) {
        this.stats.rxDropped++;
        return;
      }
      pkt = frame.slice(); // the backend reuses its buffer
    } else {
      pkt = new Uint8Array(VIRTIO_NET_HDR_SIZE + frame.length);
      pkt.set(frame, VIRTIO_NET_HDR_SIZE);
    }
    if (this.backlog.length >= NET_RX_BACKLOG) {
      this.stats.rxDropped++;
      return;
    }
    this.backlog.push(pkt);
    this.guarded(() => this.deliver());
    if (this.backlog.length >= NET_RX_BACKLOG && !this.paused) {
      this.paused = true;
      this.backend.pause();
    }
  }

  /** Work started by the host side (not by a guest kick) must not throw into the backend's callback. */
  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.ctx?.fail(e instanceof Error ? e.message : String(e));
    }
  }

  private deliver(): void {
    const ctx = this.ctx;
    if (!ctx?.alive) return;
    const queue = ctx.queues[RX];
    while (this.backlog.length > 0) {
      const pkt = this.backlog[0];
      const chains: DescChain[] = [];
      let placed = 0;
      let fits = true;
      while (placed < pkt.length) {
        const chain = queue.pop();
        if (!chain) {
          fits = false;
          break;
        }
        chains.push(chain);
        placed += Math.min(chain.writableLength, pkt.length - placed);
        if (!this.mergeable) break;
      }
      if (!fits) {
        // Not enough buffers yet: give them back, wait for the guest to add more.
        queue.unpop(chains.length);
        break;
      }
      this.backlog.shift();
      if (placed < pkt.length || chains[0].writableLength < VIRTIO_NET_HDR_SIZE) {
        // Without mergeable buffers the packet must fit in one chain; it does not: drop it
        // and give the chain back unused (§5.1.6.3.2 lets the device drop).
        queue.unpop(chains.length);
        this.stats.rxDropped++;
        continue;
      }
      // num_buffers (§5.1.6.4): how many chains this packet uses.
      const hdr = pkt.subarray(0, VIRTIO_NET_HDR_SIZE).slice();
      hdr[10] = chains.length & 0xff;
      hdr[11] = chains.length >> 8;
      let off = 0;
      for (let i = 0; i < chains.length; i++) {
        const c = chains[i];
        const take = Math.min(c.writableLength, pkt.length - off);
        if (i === 0) {
          scatter(c.writable, hdr);
          scatter(c.writable, pkt.subarray(VIRTIO_NET_HDR_SIZE, take), VIRTIO_NET_HDR_SIZE);
        } else {
          scatter(c.writable, pkt.subarray(off, off + take));
        }
        off += take;
        ctx.complete(RX, c.head, take);
      }
      this.stats.rxPackets++;
      this.stats.rxBuffers += chains.length;
    }
    if (this.backlog.length < NET_RX_BACKLOG / 2) this.resumeBackend();
  }

  async close(): Promise<void> {
    await this.backend.close();
  }
}
