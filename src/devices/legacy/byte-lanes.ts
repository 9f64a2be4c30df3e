// Splitting wide port accesses into byte accesses, as the ISA bus does.
//
// The legacy chips modelled here (16550, 8042, MC146818, PIIX registers) have an 8-bit data bus.
// On a PC, a 16- or 32-bit IN/OUT to such a chip is broken by the bus into consecutive byte
// cycles at port, port+1, ... (low byte first), so `inw` from 0x3f8 reads RBR then IER. The
// models therefore implement byte registers only and go through these helpers for wider
// accesses; a lane that falls outside the device's ports reads as all ones (nothing drives the
// bus) and its write is dropped, exactly like an unclaimed port.

/** Assemble a little-endian value of `size` bytes from `readByte(0..size-1)`. */
export function readLanes(size: number, readByte: (lane: number) => number): number {
  let v = 0;
  const n = size === 2 || size === 4 ? size : 1;
  for (let i = 0; i < n; i++) v |= (readByte(i) & 0xff) << (8 * i);
  return v >>> 0;
}

/** Hand each byte of a little-endian `size`-byte value to `writeByte`, low byte first. */
export function writeLanes(size: number, value: number, writeByte: (lane: number, byte: number) => void): void {
  const n = size === 2 || size === 4 ? size : 1;
  for (let i = 0; i < n; i++) writeByte(i, (value >>> (8 * i)) & 0xff);
}

/** All ones of an access width (what a read of nothing returns on a PC). */
export function allOnes(size: number): number {
  return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
}
