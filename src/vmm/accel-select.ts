// Picking the accelerator for --accel kvm|soft|auto, and the guest memory that suits it.
import type { Accelerator, AccelKind } from '../accel/accelerator.js';
import { allocateKvmMemory, KvmAccelerator } from '../accel/kvm/kvm-accelerator.js';
import { probeKvm } from '../accel/kvm/kvm-system.js';
import { createSoftAccelerator } from '../accel/soft/soft-accelerator.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { allocateSoftMemory } from '../accel/soft/soft-memory.js';
import type { Logger } from './log.js';
import type { VmConfig } from './vm-config.js';

export interface AcceleratorChoice {
  kind: AccelKind;
  why: string;
}

/** Resolves --accel auto once per VM (a reset keeps the choice). */
export function chooseAccelerator(config: VmConfig, log: Logger): AcceleratorChoice {
  if (config.accel === 'kvm') return { kind: 'kvm', why: 'requested with --accel kvm' };
  if (config.accel === 'soft') return { kind: 'soft', why: 'requested with --accel soft' };
  const probe = probeKvm();
  if (!probe.ok) {
    const choice = { kind: 'soft' as const, why: `KVM is not usable: ${probe.reason}` };
    log(`--accel auto: using the software CPU (${choice.why})`);
    return choice;
  }
  const why = probe.isPvm
    ? 'KVM is usable (note: this host\'s KVM is PVM, which emulates guest kernel code slowly)'
    : 'KVM is usable';
  log(`--accel auto: using KVM (${why})`);
  return { kind: 'kvm', why };
}

export function createAccelerator(
  config: VmConfig,
  romSize: number,
  log: Logger,
  previous?: AcceleratorChoice,
): { accel: Accelerator; mem: GuestMemory; choice: AcceleratorChoice } {
  const choice = previous ?? chooseAccelerator(config, log);
  if (choice.kind === 'kvm') {
    const mem = allocateKvmMemory(config.memoryBytes, romSize);
    const accel = KvmAccelerator.create(mem, { cpus: config.cpus, irqchip: config.irqchip, log });
    return { accel, mem, choice };
  }
  const mem = allocateSoftMemory(config.memoryBytes, romSize);
  return { accel: createSoftAccelerator(mem, { cpus: config.cpus, log }), mem, choice };
}
