// The guest of `npm run bench:exits`: a 64 KiB flat firmware image that, from the reset vector,
// executes `out PORT, al` COUNT times and then writes 0 to isa-debug-exit (port 0xf4). It is
// hand-assembled here (the listing is in the comments) so the benchmark needs no assembler.
//
//   0000: 66 B9 imm32      mov ecx, COUNT
//   0006: 66 85 C9         test ecx, ecx
//   0009: 74 06            jz done
//   000B: E6 PORT    loop: out PORT, al
//   000D: 66 49            dec ecx
//   000F: 75 FA            jnz loop
//   0011: B0 00      done: mov al, 0
//   0013: E6 F4            out 0xf4, al
//   0015: F4               hlt
//   FFF0: E9 0D 00         jmp 0000 (the reset vector: CS base FFFF0000, IP FFF0 → IP 0)

export const EXIT_GUEST_SIZE = 0x10000;

export function exitGuestImage(count: number, port: number): Uint8Array {
  if (port < 0 || port > 0xff) throw new RangeError('the benchmark guest uses out imm8: port must be < 256');
  const img = new Uint8Array(EXIT_GUEST_SIZE).fill(0xf4); // hlt everywhere else
  const code = [
    0x66, 0xb9, count & 0xff, (count >>> 8) & 0xff, (count >>> 16) & 0xff, (count >>> 24) & 0xff,
    0x66, 0x85, 0xc9,
    0x74, 0x06,
    0xe6, port,
    0x66, 0x49,
    0x75, 0xfa,
    0xb0, 0x00,
    0xe6, 0xf4,
    0xf4,
  ];
  img.set(code, 0);
  img.set([0xe9, 0x0d, 0x00], 0xfff0);
  return img;
}
