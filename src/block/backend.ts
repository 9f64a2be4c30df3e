// The interface between disk image formats and the devices that use them (virtio-blk). The
// device model owns the canonical declaration (src/devices/virtio/block-backend.ts); this copy
// has the same shape, so the backends here conform structurally to either.
//
// Offsets and lengths are in bytes. Requests may be in flight concurrently; a backend keeps its
// metadata consistent under that (see qcow2/image.ts for how).

export interface BlockBackend {
  /** The virtual disk's size in bytes. */
  readonly sizeBytes: number;
  readonly readonly: boolean;
  /** What virtio-blk's GET_ID returns (at most 20 bytes are used). */
  readonly serial?: string;
  /** Fills `dst` with the disk's bytes at `offset`. */
  read(offset: number, dst: Uint8Array): Promise<void>;
  write(offset: number, src: Uint8Array): Promise<void>;
  /** Makes every completed write durable (fdatasync). */
  flush(): Promise<void>;
  /** The guest no longer needs these bytes; afterwards they read as anything (here: zeros or the backing file). */
  discard?(offset: number, length: number): Promise<void>;
  /** Afterwards the bytes read as zeros; `unmap` allows freeing their storage. */
  writeZeroes?(offset: number, length: number, unmap: boolean): Promise<void>;
  close(): Promise<void>;
}

export type DiskFormat = 'raw' | 'qcow2';
