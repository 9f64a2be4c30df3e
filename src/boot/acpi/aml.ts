// A small AML encoder: just enough of the ACPI Machine Language grammar (ACPI 6.4 §20.2, "AML
// Grammar Definition") to write a DSDT by hand without an ASL compiler. Every function returns
// the encoded bytes of one term; containers take already-encoded children.
//
// Also the few resource descriptors (§6.4, "Resource Data Types for ACPI") that _CRS buffers of
// legacy devices need.

export type Aml = Uint8Array;

// Opcodes (§20.2.5 "Term Objects Encoding", §20.2.3 "Data Objects Encoding").
export const AML_ZERO_OP = 0x00;
export const AML_ONE_OP = 0x01;
export const AML_NAME_OP = 0x08;
export const AML_BYTE_PREFIX = 0x0a;
export const AML_WORD_PREFIX = 0x0b;
export const AML_DWORD_PREFIX = 0x0c;
export const AML_STRING_PREFIX = 0x0d;
export const AML_QWORD_PREFIX = 0x0e;
export const AML_SCOPE_OP = 0x10;
export const AML_BUFFER_OP = 0x11;
export const AML_PACKAGE_OP = 0x12;
export const AML_METHOD_OP = 0x14;
export const AML_DUAL_NAME_PREFIX = 0x2e;
export const AML_MULTI_NAME_PREFIX = 0x2f;
export const AML_EXT_OP_PREFIX = 0x5b;
export const AML_DEVICE_OP = 0x82; // after ExtOpPrefix
export const AML_ROOT_CHAR = 0x5c; // '\'
export const AML_PARENT_PREFIX = 0x5e; // '^'
export const AML_RETURN_OP = 0xa4;

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * PkgLength (§20.2.4, "Package Length Encoding") for a body of `bodyLength` bytes. The encoded
 * length counts the PkgLength bytes themselves. One byte holds lengths up to 63 in bits 5:0;
 * otherwise bits 7:6 of the lead byte give the number (1-3) of following bytes, the lead byte's
 * bits 3:0 are the low nibble and each following byte the next 8 bits (so up to 2^28 - 1).
 */
export function pkgLength(bodyLength: number): Uint8Array {
  if (bodyLength + 1 <= 0x3f) return Uint8Array.of(bodyLength + 1);
  for (let extra = 1; extra <= 3; extra++) {
    const total = bodyLength + 1 + extra;
    if (total < 2 ** (4 + 8 * extra)) {
      const out = new Uint8Array(1 + extra);
      out[0] = (extra << 6) | (total & 0x0f);
      for (let i = 1; i <= extra; i++) out[i] = Math.floor(total / 2 ** (4 + 8 * (i - 1))) & 0xff;
      return out;
    }
  }
  throw new RangeError(`AML package of ${bodyLength} bytes exceeds the PkgLength limit of 2^28 - 1`);
}

/** Decode a PkgLength at `off`: the encoded value (which includes its own bytes) and its size. */
export function decodePkgLength(b: Uint8Array, off: number): { length: number; size: number } {
  const lead = b[off];
  const extra = lead >> 6;
  if (extra === 0) return { length: lead & 0x3f, size: 1 };
  let length = lead & 0x0f;
  for (let i = 1; i <= extra; i++) length += b[off + i] * 2 ** (4 + 8 * (i - 1));
  return { length, size: 1 + extra };
}

const LEAD_NAME_CHAR = /^[A-Z_]$/;
const NAME_CHAR = /^[A-Z0-9_]$/;

/** One NameSeg (§20.2.2): four characters, the first a letter or '_'; shorter names are '_'-padded as ASL does. */
export function nameSeg(seg: string): Uint8Array {
  if (seg.length < 1 || seg.length > 4) throw new RangeError(`AML name segment "${seg}" must be 1-4 characters`);
  const s = seg.padEnd(4, '_');
  if (!LEAD_NAME_CHAR.test(s[0]) || ![...s.slice(1)].every((c) => NAME_CHAR.test(c))) {
    throw new RangeError(`AML name segment "${seg}" may only use A-Z, 0-9 and _ (not starting with a digit)`);
  }
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/**
 * A NameString (§20.2.2) from ASL-style text: optional '\' (root) or '^'s (parent), then
 * segments separated by '.', e.g. "\\_SB_.COM1", "_S5", "^PCI0".
 */
export function nameString(name: string): Uint8Array {
  let i = 0;
  const prefix: number[] = [];
  if (name[0] === '\\') {
    prefix.push(AML_ROOT_CHAR);
    i = 1;
  } else {
    while (name[i] === '^') {
      prefix.push(AML_PARENT_PREFIX);
      i++;
    }
  }
  const rest = name.slice(i);
  const segs = rest === '' ? [] : rest.split('.').map(nameSeg);
  let path: Uint8Array[];
  if (segs.length === 0) path = [Uint8Array.of(0x00)]; // NullName
  else if (segs.length === 1) path = segs;
  else if (segs.length === 2) path = [Uint8Array.of(AML_DUAL_NAME_PREFIX), ...segs];
  else if (segs.length <= 255) path = [Uint8Array.of(AML_MULTI_NAME_PREFIX, segs.length), ...segs];
  else throw new RangeError(`AML name "${name}" has too many segments`);
  return concat([Uint8Array.from(prefix), ...path]);
}

/** The smallest integer encoding (§20.2.3): ZeroOp, OneOp, then Byte/Word/DWord/QWord constants. */
export function integer(value: number | bigint): Uint8Array {
  const v = BigInt(value);
  if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`AML integer ${v} is outside 0..2^64-1`);
  if (v === 0n) return Uint8Array.of(AML_ZERO_OP);
  if (v === 1n) return Uint8Array.of(AML_ONE_OP);
  const le = (prefix: number, bytes: number): Uint8Array => {
    const out = new Uint8Array(1 + bytes);
    out[0] = prefix;
    for (let i = 0; i < bytes; i++) out[1 + i] = Number((v >> BigInt(8 * i)) & 0xffn);
    return out;
  };
  if (v <= 0xffn) return le(AML_BYTE_PREFIX, 1);
  if (v <= 0xffffn) return le(AML_WORD_PREFIX, 2);
  if (v <= 0xffffffffn) return le(AML_DWORD_PREFIX, 4);
  return le(AML_QWORD_PREFIX, 8);
}

/** A String (§20.2.3): StringPrefix, ASCII characters 0x01-0x7F, NUL. */
export function string(s: string): Uint8Array {
  const out = new Uint8Array(s.length + 2);
  out[0] = AML_STRING_PREFIX;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 1 || c > 0x7f) throw new RangeError(`AML string "${s}" must be 7-bit ASCII without NUL`);
    out[1 + i] = c;
  }
  return out;
}

/** Name(name, value) (§20.2.5.1 DefName := NameOp NameString DataRefObject). */
export function name(n: string, value: Aml): Uint8Array {
  return concat([Uint8Array.of(AML_NAME_OP), nameString(n), value]);
}

/** Package(){...} (§20.2.5.4 DefPackage := PackageOp PkgLength NumElements PackageElementList). */
export function pkg(elements: readonly Aml[]): Uint8Array {
  if (elements.length > 255) throw new RangeError('AML Package holds at most 255 elements (VarPackage not supported)');
  const body = concat([Uint8Array.of(elements.length), ...elements]);
  return concat([Uint8Array.of(AML_PACKAGE_OP), pkgLength(body.length), body]);
}

/** Buffer(){bytes} (§20.2.5.4 DefBuffer := BufferOp PkgLength BufferSize ByteList). */
export function buffer(bytes: Uint8Array): Uint8Array {
  const body = concat([integer(bytes.length), bytes]);
  return concat([Uint8Array.of(AML_BUFFER_OP), pkgLength(body.length), body]);
}

/** Scope(name){...} (§20.2.5.1 DefScope := ScopeOp PkgLength NameString TermList). */
export function scope(n: string, terms: readonly Aml[]): Uint8Array {
  const body = concat([nameString(n), ...terms]);
  return concat([Uint8Array.of(AML_SCOPE_OP), pkgLength(body.length), body]);
}

/** Device(name){...} (§20.2.5.2 DefDevice := DeviceOp PkgLength NameString TermList; DeviceOp = 5B 82). */
export function device(n: string, terms: readonly Aml[]): Uint8Array {
  const body = concat([nameString(n), ...terms]);
  return concat([Uint8Array.of(AML_EXT_OP_PREFIX, AML_DEVICE_OP), pkgLength(body.length), body]);
}

/**
 * Method(name, args, serialized){...} (§20.2.5.2 DefMethod := MethodOp PkgLength NameString
 * MethodFlags TermList; MethodFlags bits 2:0 ArgCount, bit 3 SerializeFlag, bits 7:4 SyncLevel 0).
 */
export function method(n: string, argCount: number, serialized: boolean, terms: readonly Aml[]): Uint8Array {
  if (!Number.isInteger(argCount) || argCount < 0 || argCount > 7) throw new RangeError('AML methods take 0-7 arguments');
  const body = concat([nameString(n), Uint8Array.of(argCount | (serialized ? 0x08 : 0)), ...terms]);
  return concat([Uint8Array.of(AML_METHOD_OP), pkgLength(body.length), body]);
}

/** Return(value) (§20.2.5.3 DefReturn := ReturnOp ArgObject). */
export function ret(value: Aml): Uint8Array {
  return concat([Uint8Array.of(AML_RETURN_OP), value]);
}

/**
 * The 32-bit compressed EISA ID that ASL's EISAID("PNP0501") produces (ACPI 6.4 §19.6, EISAID
 * macro): three letters of 5 bits each ('A' = 1) then four hex digits, stored big-endian in the
 * DWORD's bytes. Returned as an AML integer.
 */
export function eisaId(id: string): Uint8Array {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new RangeError(`EISA ID "${id}" must be 3 capital letters and 4 hex digits`);
  const c = (i: number): number => id.charCodeAt(i) - 0x40;
  const vendor = (c(0) << 10) | (c(1) << 5) | c(2);
  const product = parseInt(id.slice(3), 16);
  const be = [vendor >> 8, vendor & 0xff, product >> 8, product & 0xff];
  const value = (be[0] | (be[1] << 8) | (be[2] << 16) | (be[3] << 24)) >>> 0;
  return integer(value);
}

// ---- Resource descriptors for _CRS (§6.4.2 "Small Resource Data Type") ----
// A small item's tag byte is 0 | name (4 bits) | length (3 bits).

/**
 * I/O Port Descriptor (§6.4.2.5, tag 0x47, 7 data bytes): information (bit 0 set = decodes 16
 * address lines), range minimum and maximum base, base alignment, length.
 */
export function ioPort(min: number, max: number, align: number, length: number): Uint8Array {
  return Uint8Array.of(0x47, 0x01, min & 0xff, min >> 8, max & 0xff, max >> 8, align, length);
}

/** IRQ Descriptor without the flags byte (§6.4.2.1, tag 0x22): a 16-bit mask, ISA edge active-high. */
export function irqNoFlags(irqs: readonly number[]): Uint8Array {
  let mask = 0;
  for (const i of irqs) {
    if (!Number.isInteger(i) || i < 0 || i > 15) throw new RangeError(`ISA IRQ ${i} is not 0-15`);
    mask |= 1 << i;
  }
  return Uint8Array.of(0x22, mask & 0xff, mask >> 8);
}

/** End Tag (§6.4.2.9, tag 0x79): a checksum byte of 0 means "treat the checksum as valid". */
export const END_TAG = Uint8Array.of(0x79, 0x00);

/** ResourceTemplate(){...}: a Buffer of the descriptors followed by the End Tag. */
export function resourceTemplate(descriptors: readonly Uint8Array[]): Uint8Array {
  return buffer(concat([...descriptors, END_TAG]));
}
