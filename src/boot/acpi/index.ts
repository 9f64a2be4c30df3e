// The ACPI tables' public face: the builder the VMM calls, and the AML encoder and table helpers
// that later devices (PCI host bridge, MCFG, more DSDT devices) build their pieces with.
export { buildAcpiTables, type AcpiLayout, type AcpiOptions, type AcpiTableInfo } from './builder.js';
export * as aml from './aml.js';
export { finishTable, newTable } from './table.js';
