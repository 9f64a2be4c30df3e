 
// AssemblyScript. What the core imports from its host (the TypeScript SoftCpu wrapper): the
// device bus and a clock. Imported from the wasm module "host".

/** Port input of 1, 2 or 4 bytes. */
export declare function pioRead(port: u32, size: u32): u32;
export declare function pioWrite(port: u32, size: u32, value: u32): void;
/** MMIO of 1, 2 or 4 bytes at a guest-physical address that is not RAM (or a ROM write). */
export declare function mmioRead(addr: f64, size: u32): u32;
export declare function mmioWrite(addr: f64, size: u32, value: u32): void;
/** Monotonic host time in nanoseconds (drives the TSC). */
export declare function hostNanos(): f64;
/** Math functions for the x87 transcendentals: 0 sin, 1 cos, 2 tan, 3 atan2(a, b), 4 2^a, 5 log2(a). */
export declare function fmath(op: i32, a: f64, b: f64): f64;
/** IA32_TSC_DEADLINE (MSR 0x6E0), kept by the platform's local APIC model (SDM vol. 3A 10.5.4.1). */
export declare function tscDeadlineRead(): u64;
export declare function tscDeadlineWrite(value: u64): void;
/** Compile the blocks queued by the JIT (jit.ts); the host writes the results into the block table. */
export declare function jitFlush(): void;
