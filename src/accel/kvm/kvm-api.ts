// Numbers from the KVM API (Linux Documentation/virt/kvm/api.rst and include/uapi/linux/kvm.h,
// API version 12). ioctl numbers are _IO/_IOR/_IOW(KVMIO=0xAE, nr, size) already encoded.

export const KVM_API_VERSION = 12;

export const KVM_GET_API_VERSION = 0xae00;
export const KVM_CREATE_VM = 0xae01;
export const KVM_CHECK_EXTENSION = 0xae03;
export const KVM_GET_VCPU_MMAP_SIZE = 0xae04;
export const KVM_GET_SUPPORTED_CPUID = 0xc008ae05;
export const KVM_CREATE_VCPU = 0xae41;
export const KVM_SET_USER_MEMORY_REGION = 0x4020ae46;
export const KVM_SET_TSS_ADDR = 0xae47;
export const KVM_SET_IDENTITY_MAP_ADDR = 0x4008ae48;
export const KVM_CREATE_IRQCHIP = 0xae60;
export const KVM_IRQ_LINE = 0x4008ae61;
export const KVM_SET_GSI_ROUTING = 0x4008ae6a;
export const KVM_IRQFD = 0x4020ae76;
export const KVM_CREATE_PIT2 = 0x4040ae77;
export const KVM_IOEVENTFD = 0x4040ae79;
export const KVM_SIGNAL_MSI = 0x4020aea5;
export const KVM_RUN = 0xae80;
export const KVM_GET_REGS = 0x8090ae81;
export const KVM_SET_REGS = 0x4090ae82;
export const KVM_GET_SREGS = 0x8138ae83;
export const KVM_SET_SREGS = 0x4138ae84;
export const KVM_SET_MSRS = 0x4008ae89;
export const KVM_SET_CPUID2 = 0x4008ae90;
export const KVM_GET_VCPU_EVENTS = 0x8040ae9f;

// Capabilities (KVM_CAP_*) we need or use.
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_HLT = 1;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_EXT_CPUID = 7;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_IOEVENTFD = 36;
export const KVM_CAP_IRQFD = 32;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_IMMEDIATE_EXIT = 136;
export const KVM_CAP_READONLY_MEM = 81;
export const KVM_CAP_SIGNAL_MSI = 77;
/** KVM_CHECK_EXTENSION answers with the number of GSI routing entries the kernel accepts (api.rst 4.52). */
export const KVM_CAP_IRQ_ROUTING = 25;

// GSI routing (api.rst 4.52 KVM_SET_GSI_ROUTING): entry types and the irqchip ids of
// struct kvm_irq_routing_irqchip.
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQ_ROUTING_MSI = 2;
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;
/** struct kvm_irqfd flags (api.rst 4.75 KVM_IRQFD). */
export const KVM_IRQFD_FLAG_DEASSIGN = 1;

/** What tsvm cannot run without, with the name used in error messages. */
export const REQUIRED_CAPS: readonly [number, string][] = [
  [KVM_CAP_USER_MEMORY, 'KVM_CAP_USER_MEMORY'],
  [KVM_CAP_SET_TSS_ADDR, 'KVM_CAP_SET_TSS_ADDR'],
  [KVM_CAP_EXT_CPUID, 'KVM_CAP_EXT_CPUID'],
  [KVM_CAP_IRQCHIP, 'KVM_CAP_IRQCHIP'],
  [KVM_CAP_PIT2, 'KVM_CAP_PIT2'],
  [KVM_CAP_IMMEDIATE_EXIT, 'KVM_CAP_IMMEDIATE_EXIT'],
];

export const KVM_MEM_READONLY = 2;

// kvm_run.exit_reason values.
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;

export const EXIT_REASON_NAMES: Record<number, string> = {
  0: 'UNKNOWN', 1: 'EXCEPTION', 2: 'IO', 3: 'HYPERCALL', 4: 'DEBUG', 5: 'HLT', 6: 'MMIO',
  7: 'IRQ_WINDOW_OPEN', 8: 'SHUTDOWN', 9: 'FAIL_ENTRY', 10: 'INTR', 11: 'SET_TPR', 12: 'TPR_ACCESS',
  17: 'INTERNAL_ERROR', 24: 'SYSTEM_EVENT',
};

// struct kvm_run layout (x86-64).
export const RUN_REQUEST_INTERRUPT_WINDOW = 0; // u8
export const RUN_IMMEDIATE_EXIT = 1; // u8
export const RUN_EXIT_REASON = 8; // u32
export const RUN_IF_FLAG = 13; // u8 ready_for_interrupt_injection at 12, if_flag at 13
export const RUN_EXIT = 0x20; // the exit union
// io: direction u8 +0 (0 in, 1 out), size u8 +1, port u16 +2, count u32 +4, data_offset u64 +8
// mmio: phys_addr u64 +0, data[8] +8, len u32 +16, is_write u8 +20
// fail_entry: hardware_entry_failure_reason u64 +0, cpu u32 +8
// internal: suberror u32 +0, ndata u32 +4, data u64[16] +8
// system_event: type u32 +0, flags/ndata ...

export const KVM_INTERNAL_ERROR_NAMES: Record<number, string> = {
  1: 'EMULATION (KVM could not emulate an instruction)',
  2: 'SIMUL_EX (exception while delivering an exception)',
  3: 'DELIVERY_EV (event delivery failed)',
  4: 'UNEXPECTED_EXIT_REASON',
};

// Sizes of the register structs.
export const KVM_REGS_SIZE = 144;
export const KVM_SREGS_SIZE = 312;
export const KVM_CPUID_ENTRY2_SIZE = 40;

// MSR indices (SDM vol. 4) we initialise.
export const MSR_IA32_TSC = 0x10;
export const MSR_IA32_SYSENTER_CS = 0x174;
export const MSR_IA32_SYSENTER_ESP = 0x175;
export const MSR_IA32_SYSENTER_EIP = 0x176;
export const MSR_IA32_MISC_ENABLE = 0x1a0;
export const MSR_IA32_CR_PAT = 0x277;
export const MSR_STAR = 0xc0000081;
export const MSR_LSTAR = 0xc0000082;
export const MSR_CSTAR = 0xc0000083;
export const MSR_SYSCALL_MASK = 0xc0000084;
export const MSR_KERNEL_GS_BASE = 0xc0000102;
