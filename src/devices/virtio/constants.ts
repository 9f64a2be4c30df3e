// Numbers from the VIRTIO 1.2 specification (OASIS, virtio-v1.2-cs01), with the section each
// comes from.

/** Device status field bits (§2.1 "Device Status Field"). */
export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_DEVICE_NEEDS_RESET = 0x40;
export const STATUS_FAILED = 0x80;

/** Reserved feature bits (§6 "Reserved Feature Bits"). */
export const F_RING_INDIRECT_DESC = 28;
export const F_RING_EVENT_IDX = 29;
export const F_VERSION_1 = 32;
export const F_ACCESS_PLATFORM = 33;
export const F_RING_PACKED = 34;

export const bit = (n: number): bigint => 1n << BigInt(n);

/** Device IDs (§5 "Device Types"). */
export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_CONSOLE = 3;
export const VIRTIO_ID_RNG = 4;

/** Split virtqueue descriptor flags (§2.7.5 "The Virtqueue Descriptor Table"). */
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
/** avail.flags (§2.7.6) and used.flags (§2.7.8). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Largest split queue (§2.7: Queue Size is at most 32768). */
export const VIRTQ_MAX_SIZE = 32768;

/** virtio-pci (§4.1): vendor 0x1AF4, modern device ID 0x1040 + device type (§4.1.2.1). */
export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
export const VIRTIO_PCI_DEVICE_ID_BASE = 0x1040;
/** Capability cfg_type values (§4.1.4). */
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
export const VIRTIO_PCI_CAP_PCI_CFG = 5;
/** MSI-X "no vector" (§4.1.4.3). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;
/** ISR status bits (§4.1.4.5). */
export const ISR_QUEUE = 1;
export const ISR_CONFIG = 2;
