// The GSI routing table we give KVM (src/accel/kvm/kvm-irq-routing.ts), without /dev/kvm: the
// default part must be KVM's own default table entry for entry (arch/x86/kvm
// kvm_setup_default_irq_routing), the struct layout must match api.rst 4.52, and only local
// APIC addresses may become MSI routes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as api from '../../src/accel/kvm/kvm-api.js';
import { defaultIrqchipRoutes, encodeRoutingTable, FIRST_MSI_GSI, isLapicMsiAddress, ROUTING_ENTRY_SIZE, ROUTING_HEADER_SIZE } from '../../src/accel/kvm/kvm-irq-routing.js';

test('kvm routing: the irqchip part restates KVM\'s default table', () => {
  const routes = defaultIrqchipRoutes();
  assert.equal(routes.length, 16 * 2 + 8, 'GSI 0-15 on two chips, 16-23 on the I/O APIC only');
  const key = (r: (typeof routes)[number]) => (r.type === 'irqchip' ? `${r.gsi}:${r.chip}:${r.pin}` : 'msi');
  const want = new Set<string>();
  for (let gsi = 0; gsi < 24; gsi++) {
    want.add(`${gsi}:${api.KVM_IRQCHIP_IOAPIC}:${gsi}`);
    if (gsi < 8) want.add(`${gsi}:${api.KVM_IRQCHIP_PIC_MASTER}:${gsi}`);
    else if (gsi < 16) want.add(`${gsi}:${api.KVM_IRQCHIP_PIC_SLAVE}:${gsi - 8}`);
  }
  assert.deepEqual(new Set(routes.map(key)), want);
  assert.equal(FIRST_MSI_GSI, 24, 'MSI routes start above the I/O APIC pins');
});

test('kvm routing: struct kvm_irq_routing layout', () => {
  const b = encodeRoutingTable([
    { gsi: 3, type: 'irqchip', chip: api.KVM_IRQCHIP_PIC_MASTER, pin: 3 },
    { gsi: 24, type: 'msi', address: 0xfee01000, data: 0x4041 },
    { gsi: 25, type: 'msi', address: 0x1_fee00000, data: 0xffffffff },
  ]);
  const v = new DataView(b.buffer);
  assert.equal(ROUTING_ENTRY_SIZE, 48);
  assert.equal(b.length, ROUTING_HEADER_SIZE + 3 * 48);
  assert.equal(v.getUint32(0, true), 3, 'nr');
  assert.equal(v.getUint32(4, true), 0, 'flags');
  const e = (i: number, off: number) => v.getUint32(ROUTING_HEADER_SIZE + i * 48 + off, true);
  assert.deepEqual([e(0, 0), e(0, 4), e(0, 8), e(0, 16), e(0, 20)], [3, api.KVM_IRQ_ROUTING_IRQCHIP, 0, 0, 3]);
  assert.deepEqual([e(1, 0), e(1, 4), e(1, 16), e(1, 20), e(1, 24), e(1, 28)], [24, api.KVM_IRQ_ROUTING_MSI, 0xfee01000, 0, 0x4041, 0]);
  assert.deepEqual([e(2, 16), e(2, 20), e(2, 24)], [0xfee00000, 1, 0xffffffff], 'address_hi and a full data dword');
});

test('kvm routing: only local APIC message addresses are routable', () => {
  for (const a of [0xfee00000, 0xfee01000, 0xfeefffff]) assert.ok(isLapicMsiAddress(a), a.toString(16));
  for (const a of [0, 0xfedfffff, 0xfef00000, 0x1_fee00000, -1, 0.5, NaN, 2 ** 64]) assert.ok(!isLapicMsiAddress(a), String(a));
});
