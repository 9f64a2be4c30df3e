// The short probe behind --accel auto: does this host's KVM run guest code at hardware speed?
// On real VT-x/AMD-V a tight loop in the guest runs natively; on hosts where KVM emulates guest
// kernel-mode code (PVM, see docs/BENCHMARKS.md) the same loop runs ~1,000x slower. The guest is
// a 64 KiB firmware image (real mode, which VT-x "unrestricted guest" and AMD-V run natively)
// that writes port 0x90, loops 20,000 times (`dec ecx; jnz`), writes port 0x90 again and exits.
// The device thread timestamps the two writes; the difference is the loop's time.
import { Bus } from '../../devices/bus.js';
import { resetState } from '../cpu-state.js';
import { allocateKvmMemory, KvmAccelerator } from './kvm-accelerator.js';

const PROBE_PORT = 0x90;
const LOOP_ITERATIONS = 20_000;

//   0000: E6 90            out 0x90, al
//   0002: 66 B9 imm32      mov ecx, LOOP_ITERATIONS
//   0008: 66 49      loop: dec ecx
//   000A: 75 FC            jnz loop
//   000C: E6 90            out 0x90, al
//   000E: E6 F4            out 0xf4, al   (any port the probe's bus treats as "done")
//   0010: F4               hlt
//   FFF0: E9 0D 00         jmp 0000 (reset vector)
function probeImage(): Uint8Array {
  const img = new Uint8Array(0x10000).fill(0xf4);
  const n = LOOP_ITERATIONS;
  img.set([0xe6, PROBE_PORT, 0x66, 0xb9, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff,
    0x66, 0x49, 0x75, 0xfc, 0xe6, PROBE_PORT, 0xe6, 0xf4, 0xf4], 0);
  img.set([0xe9, 0x0d, 0x00], 0xfff0);
  return img;
}

export interface KvmSpeed {
  /** Wall time of the guest loop (2 × 20,000 instructions), in milliseconds. */
  loopMs: number;
  /** Guest instructions per second in that loop. */
  instructionsPerSecond: number;
}

/** Runs the probe guest; throws (KvmUnavailableError etc.) when KVM cannot run it at all. */
export async function probeKvmSpeed(): Promise<KvmSpeed> {
  const image = probeImage();
  const mem = allocateKvmMemory(2 << 20, image.length);
  mem.loadRom(image);
  const accel = KvmAccelerator.create(mem, { cpus: 1, irqchip: false, log: () => {} });
  try {
    const stamps: number[] = [];
    const bus = new Bus();
    bus.addPio(PROBE_PORT, 1, { name: 'probe', pioRead: () => 0, pioWrite: () => { stamps.push(performance.now()); } });
    bus.addPio(0xf4, 1, { name: 'probe-done', pioRead: () => 0, pioWrite: () => accel.stop() });
    const timeout = setTimeout(() => accel.stop(), 5000);
    await accel.run(bus, resetState());
    clearTimeout(timeout);
    const loopMs = stamps.length === 2 ? stamps[1] - stamps[0] : 5000;
    return { loopMs, instructionsPerSecond: (2 * LOOP_ITERATIONS) / (loopMs / 1000) };
  } finally {
    accel.close();
  }
}

/** Faster than this many guest instructions per second counts as hardware speed (native is ~1e9). */
export const HARDWARE_SPEED_IPS = 50_000_000;
