// Picking the accelerator for --accel kvm|soft|auto, and the guest memory that suits it.
import type { Accelerator, AccelKind } from '../accel/accelerator.js';
import { allocateKvmMemory, KvmAccelerator } from '../accel/kvm/kvm-accelerator.js';
import { probeKvm } from '../accel/kvm/kvm-system.js';
import { HARDWARE_SPEED_IPS, probeKvmSpeed } from '../accel/kvm/kvm-speed-probe.js';
import { createSoftAccelerator } from '../accel/soft/soft-accelerator.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { allocateSoftMemory } from '../accel/soft/soft-memory.js';
import type { Logger } from './log.js';
import type { VmConfig } from './vm-config.js';

export interface AcceleratorChoice {
  kind: AccelKind;
  why: string;
}

/**
 * Resolves --accel auto once per VM (a reset keeps the choice): KVM when /dev/kvm is usable and
 * runs guest code at hardware speed (a short probe, kvm-speed-probe.ts), else the software CPU.
 * The one exception: the software CPU runs one vCPU, so a guest with --cpus > 1 stays on a slow
 * KVM rather than lose its CPUs.
 */
export async function chooseAccelerator(config: VmConfig, log: Logger): Promise<AcceleratorChoice> {
  if (config.accel === 'kvm') return { kind: 'kvm', why: 'requested with --accel kvm' };
  if (config.accel === 'soft') return { kind: 'soft', why: 'requested with --accel soft' };
  const usable = probeKvm();
  if (!usable.ok) {
    const choice = { kind: 'soft' as const, why: `KVM is not usable: ${usable.reason}` };
    log(`--accel auto: using the software CPU (${choice.why})`);
    return choice;
  }
  let speed;
  try {
    speed = await probeKvmSpeed();
  } catch (e) {
    const choice = { kind: 'soft' as const, why: `KVM could not run a probe guest: ${(e as Error).message}` };
    log(`--accel auto: using the software CPU (${choice.why})`);
    return choice;
  }
  const mips = (speed.instructionsPerSecond / 1e6).toFixed(speed.instructionsPerSecond < 1e7 ? 1 : 0);
  if (speed.instructionsPerSecond >= HARDWARE_SPEED_IPS) {
    const why = `KVM runs guest code at hardware speed (probe: ${mips} M instructions/s)`;
    log(`--accel auto: using KVM (${why})`);
    return { kind: 'kvm', why };
  }
  const slow = `KVM emulates guest code here (probe: ${mips} M instructions/s${usable.isPvm ? ', a PVM host' : ''})`;
  if (config.cpus > 1) {
    log(`--accel auto: using KVM although ${slow}, because the software CPU runs one vCPU and --cpus is ${config.cpus}`);
    return { kind: 'kvm', why: slow };
  }
  log(`--accel auto: using the software CPU: ${slow}`);
  return { kind: 'soft', why: slow };
}

export function createAccelerator(
  config: VmConfig,
  romSize: number,
  log: Logger,
  choice: AcceleratorChoice,
): { accel: Accelerator; mem: GuestMemory } {
  if (choice.kind === 'kvm') {
    const mem = allocateKvmMemory(config.memoryBytes, romSize);
    const accel = KvmAccelerator.create(mem, { cpus: config.cpus, irqchip: config.irqchip, log });
    return { accel, mem };
  }
  const mem = allocateSoftMemory(config.memoryBytes, romSize);
  return { accel: createSoftAccelerator(mem, { cpus: config.cpus, log }), mem };
}
