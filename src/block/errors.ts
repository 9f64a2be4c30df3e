// Errors of the block layer. Every problem with an image (bad header, corrupt tables, an
// unsupported feature, an I/O request outside the disk) is a BlockError with a message that
// names the file and says what is wrong, so that the CLI can print it as one line and the
// virtio-blk device can fail the request without crashing the VMM.

export class BlockError extends Error {
  override readonly name = 'BlockError';
  constructor(message: string, readonly path?: string) {
    super(path ? `${path}: ${message}` : message);
  }
}

/** An image whose metadata contradicts itself or points outside the file. */
export class CorruptImageError extends BlockError {
  constructor(message: string, path?: string) {
    super(`corrupt image: ${message}`, path);
  }
}

/** A valid image using a feature tsvm does not implement (encryption, external data files...). */
export class UnsupportedImageError extends BlockError {
  constructor(message: string, path?: string) {
    super(`unsupported image: ${message}`, path);
  }
}

/** A write (or discard) to a disk opened read-only. */
export class ReadOnlyError extends BlockError {
  constructor(path?: string) {
    super('the disk is read-only', path);
  }
}

/** Wraps an operating-system error (ENOENT, EACCES, EIO...) as a BlockError with the path. */
export function fsError(err: unknown, path: string, what: string): BlockError {
  if (err instanceof BlockError) return err;
  const e = err as NodeJS.ErrnoException;
  const reason =
    e.code === 'ENOENT' ? 'no such file' :
    e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' :
    e.code === 'EISDIR' ? 'is a directory' :
    e.code === 'EROFS' ? 'read-only file system' :
    e.code === 'ENOSPC' ? 'no space left on device' :
    e.message ?? String(err);
  return new BlockError(`${what}: ${reason}`, path);
}
