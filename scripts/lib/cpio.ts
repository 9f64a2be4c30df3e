// A writer for "newc" cpio archives (the format of Linux initramfs images).
//
// Each member is a 110-byte ASCII header, the NUL-terminated name, padding to a multiple of 4
// bytes (counted from the start of the header), the data, and padding to a multiple of 4. The
// header is the magic "070701" followed by 13 fields of 8 hexadecimal digits: ino, mode, uid,
// gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize (including the
// NUL) and check (0 for newc). A member named "TRAILER!!!" ends the archive. Symbolic links
// carry their target as data. (Linux Documentation/driver-api/early-userspace/buffer-format.rst.)
//
// Linux's initramfs unpacker does not create missing parent directories, so the writer emits
// every parent directory before its first child.

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

export interface CpioEntry {
  /** Path inside the archive, without a leading '/', e.g. "bin/busybox". */
  name: string;
  /** Full st_mode: type bits and permissions. */
  mode: number;
  data?: Uint8Array;
  uid?: number;
  gid?: number;
  mtime?: number;
  nlink?: number;
  rdevMajor?: number;
  rdevMinor?: number;
}

export const NEWC_MAGIC = '070701';
export const TRAILER = 'TRAILER!!!';
const HEADER_SIZE = 110;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function normalize(name: string): string {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new Error(`cpio member name must not contain "..": ${name}`);
  return parts.join('/');
}

/** Encodes one member (header, name, data, padding). */
export function encodeEntry(e: CpioEntry, ino: number): Uint8Array {
  const name = Buffer.from(e.name + '\0', 'utf8');
  const data = e.data ?? new Uint8Array(0);
  const fields = [
    ino,
    e.mode,
    e.uid ?? 0,
    e.gid ?? 0,
    e.nlink ?? ((e.mode & S_IFMT) === S_IFDIR ? 2 : 1),
    e.mtime ?? 0,
    data.length,
    0, // devmajor
    0, // devminor
    e.rdevMajor ?? 0,
    e.rdevMinor ?? 0,
    name.length,
    0, // check
  ];
  const header = NEWC_MAGIC + fields.map(hex8).join('');
  const namePad = pad4(HEADER_SIZE + name.length);
  const dataPad = pad4(data.length);
  const out = Buffer.alloc(HEADER_SIZE + name.length + namePad + data.length + dataPad);
  out.write(header, 0, 'latin1');
  name.copy(out, HEADER_SIZE);
  out.set(data, HEADER_SIZE + name.length + namePad);
  return out;
}

/** Builds a newc archive member by member; `finish()` appends the trailer. */
export class CpioWriter {
  private readonly chunks: Uint8Array[] = [];
  private readonly seen = new Map<string, number>(); // name → mode
  private ino = 1;
  private finished = false;

  constructor(private readonly defaults: { mtime?: number } = {}) {}

  has(name: string): boolean {
    return this.seen.has(normalize(name));
  }

  /** Adds a member; parent directories that were not added yet are added first (mode 0755). */
  add(entry: CpioEntry): void {
    if (this.finished) throw new Error('cpio archive already finished');
    const name = normalize(entry.name);
    if (name === '') return; // the root directory itself
    if (this.seen.has(name)) {
      // Adding the same directory twice is harmless; anything else is a mistake.
      if ((entry.mode & S_IFMT) === S_IFDIR && (this.seen.get(name)! & S_IFMT) === S_IFDIR) return;
      throw new Error(`duplicate cpio member: ${name}`);
    }
    const slash = name.lastIndexOf('/');
    if (slash > 0) this.directory(name.slice(0, slash));
    this.seen.set(name, entry.mode);
    this.chunks.push(encodeEntry({ mtime: this.defaults.mtime, ...entry, name }, this.ino++));
  }

  directory(name: string, perm = 0o755): void {
    this.add({ name, mode: S_IFDIR | perm });
  }

  file(name: string, data: Uint8Array | string, perm = 0o644): void {
    this.add({ name, mode: S_IFREG | perm, data: typeof data === 'string' ? Buffer.from(data, 'utf8') : data });
  }

  symlink(name: string, target: string): void {
    this.add({ name, mode: S_IFLNK | 0o777, data: Buffer.from(target, 'utf8') });
  }

  charDevice(name: string, major: number, minor: number, perm = 0o600): void {
    this.add({ name, mode: S_IFCHR | perm, rdevMajor: major, rdevMinor: minor });
  }

  /** Appends the trailer and returns the whole archive. */
  finish(): Buffer {
    if (!this.finished) {
      this.chunks.push(encodeEntry({ name: TRAILER, mode: 0, nlink: 1, mtime: 0 }, 0));
      this.finished = true;
    }
    return Buffer.concat(this.chunks);
  }
}

/** Writes a complete archive from a list of entries (parents are added as needed). */
export function writeCpio(entries: CpioEntry[], opts: { mtime?: number } = {}): Buffer {
  const w = new CpioWriter(opts);
  for (const e of entries) w.add(e);
  return w.finish();
}

export interface CpioMember {
  name: string;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Buffer;
}

/** Reads a newc archive back (up to the trailer); throws on anything malformed. */
export function readCpio(archive: Uint8Array): CpioMember[] {
  const b = Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength);
  const out: CpioMember[] = [];
  let off = 0;
  for (;;) {
    if (off + HEADER_SIZE > b.length) throw new Error(`cpio: truncated header at ${off}`);
    const magic = b.toString('latin1', off, off + 6);
    if (magic !== NEWC_MAGIC) throw new Error(`cpio: bad magic ${JSON.stringify(magic)} at ${off}`);
    const f = (i: number) => {
      const s = b.toString('latin1', off + 6 + i * 8, off + 14 + i * 8);
      if (!/^[0-9a-fA-F]{8}$/.test(s)) throw new Error(`cpio: bad header field ${i} at ${off}`);
      return parseInt(s, 16);
    };
    const size = f(6);
    const namesize = f(11);
    const nameStart = off + HEADER_SIZE;
    if (namesize < 1 || b[nameStart + namesize - 1] !== 0) throw new Error(`cpio: name not NUL-terminated at ${off}`);
    const name = b.toString('utf8', nameStart, nameStart + namesize - 1);
    const dataStart = nameStart + namesize + pad4(HEADER_SIZE + namesize);
    if (dataStart + size > b.length) throw new Error(`cpio: truncated data of ${name}`);
    if (name === TRAILER) return out;
    out.push({
      name,
      ino: f(0),
      mode: f(1),
      uid: f(2),
      gid: f(3),
      nlink: f(4),
      mtime: f(5),
      rdevMajor: f(9),
      rdevMinor: f(10),
      data: b.subarray(dataStart, dataStart + size),
    });
    off = dataStart + size + pad4(size);
  }
}
