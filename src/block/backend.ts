// The interface between disk image formats and the devices that use them is declared once, by
// its consumer, in src/devices/virtio/block-backend.ts (durability and concurrency rules there);
// the backends here (raw.ts, qcow2/image.ts) implement it. Offsets and lengths are bytes.
export type { BlockBackend } from '../devices/virtio/block-backend.js';

export type DiskFormat = 'raw' | 'qcow2';
