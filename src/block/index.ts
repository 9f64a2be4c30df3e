// The block layer's public API: disk image formats (raw, qcow2) behind the BlockBackend interface
// that virtio-blk uses, and the image tools behind `tsvm img`.
export type { BlockBackend, DiskFormat } from './backend.js';
export { BlockError, CorruptImageError, UnsupportedImageError, ReadOnlyError } from './errors.js';
export { openDisk, parseFormat, resolveBackingPath, type OpenDiskOptions, type OpenedDisk } from './open.js';
export { probeFormat } from './probe.js';
export { RawBackend } from './raw.js';
export { Qcow2Image } from './qcow2/image.js';
export { createImage, type CreateImageOptions } from './create.js';
export { checkImage, checkExitCode, repairImage, type CheckResult, type RepairMode } from './check.js';
export { convertImage, type ConvertOptions } from './convert.js';
export { imageInfo, type ImageInfo } from './info.js';
