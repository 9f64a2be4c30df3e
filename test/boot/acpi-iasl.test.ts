// Cross-check our hand-encoded tables with ACPICA's own tools: `iasl -d` disassembles them and
// `acpiexec` loads the DSDT and evaluates \_S5 and COM1's _CRS, as Linux's ACPICA would.
// The tools come from Debian's acpica-tools package, unpacked (not installed) under
// ~/.cache/tsvm/acpica-tools; the test skips, saying why, when they cannot be had.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory, MiB } from '../../src/memory/guest-memory.js';
import { buildAcpiTables } from '../../src/boot/acpi/builder.js';

const CACHE = join(homedir(), '.cache', 'tsvm');
const TOOLS_DIR = join(CACHE, 'acpica-tools');

function onPath(tool: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The directory holding iasl (and acpiexec), fetching Debian's package into the cache if needed. */
function acpicaBin(): { dir: string } | { skip: string } {
  const cached = join(TOOLS_DIR, 'usr', 'bin');
  if (existsSync(join(cached, 'iasl'))) return { dir: cached };
  const sys = onPath('iasl');
  if (sys) return { dir: sys.replace(/\/iasl$/, '') };
  if (process.env.TSVM_NO_TOOL_DOWNLOAD) return { skip: 'iasl not found and TSVM_NO_TOOL_DOWNLOAD is set' };
  if (!onPath('apt-get') || !onPath('dpkg-deb')) return { skip: 'iasl not found, and no apt-get/dpkg-deb to fetch acpica-tools' };
  const dl = join(CACHE, 'dl');
  mkdirSync(dl, { recursive: true });
  const got = spawnSync('apt-get', ['download', 'acpica-tools'], { cwd: dl, encoding: 'utf8', timeout: 120_000 });
  const deb = readdirSync(dl).find((f) => f.startsWith('acpica-tools_') && f.endsWith('.deb'));
  if (!deb) return { skip: `iasl not found and "apt-get download acpica-tools" failed: ${(got.stderr ?? '').trim().split('\n').pop()}` };
  const x = spawnSync('dpkg-deb', ['-x', join(dl, deb), TOOLS_DIR], { encoding: 'utf8' });
  if (x.status !== 0 || !existsSync(join(cached, 'iasl'))) return { skip: `could not unpack ${deb}: ${x.stderr}` };
  return { dir: cached };
}

const tools = acpicaBin();
const skip = 'skip' in tools ? tools.skip : false;

function dumpTables(): { dir: string; files: Map<string, string> } {
  const mem = new GuestMemory(16 * MiB);
  const layout = buildAcpiTables(mem, { cpus: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'tsvm-acpi-'));
  const files = new Map<string, string>();
  for (const t of layout.tables) {
    if (t.signature === 'RSD PTR ') continue;
    const f = join(dir, `${t.signature}.dat`);
    writeFileSync(f, mem.read(t.addr, t.length));
    files.set(t.signature, f);
  }
  return { dir, files };
}

function disassemble(bin: string, file: string): string {
  const r = spawnSync(join(bin, 'iasl'), ['-d', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `iasl -d ${file} failed: ${r.stdout}${r.stderr}`);
  return readFileSync(file.replace(/\.dat$/, '.dsl'), 'utf8');
}

test('iasl disassembles our DSDT to the intended ASL', { skip }, () => {
  const bin = (tools as { dir: string }).dir;
  const { dir, files } = dumpTables();
  try {
    const asl = disassemble(bin, files.get('DSDT')!);
    assert.ok(asl.includes('DefinitionBlock ("", "DSDT", 2, "TSVM  ", "TSVMPC  "'));
    assert.match(asl, /Scope \(\\_SB\)/);
    assert.match(asl, /Device \(COM1\)/);
    assert.match(asl, /Name \(_HID, EisaId \("PNP0501"\)/);
    assert.match(asl, /IO \(Decode16,\s+0x03F8,[^)]*0x03F8,[^)]*0x01,[^)]*0x08,/);
    assert.match(asl, /IRQNoFlags \(\)\s+\{4\}/);
    assert.match(asl, /Name \(\\_S5, Package \(0x04\)[^{]*\{\s+0x05,\s+0x05,\s+Zero,\s+Zero\s+\}/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('iasl decodes the FADT and MADT fields as intended', { skip }, () => {
  const bin = (tools as { dir: string }).dir;
  const { dir, files } = dumpTables();
  try {
    const fadt = disassemble(bin, files.get('FACP')!);
    assert.match(fadt, /SCI Interrupt : 0009/);
    assert.match(fadt, /PM1A Event Block Address : 00000600/);
    assert.match(fadt, /PM1A Control Block Address : 00000604/);
    assert.match(fadt, /PM Timer Block Address : 00000608/);
    assert.match(fadt, /8042 Present on ports 60\/64 \(V2\) : 1/);
    assert.match(fadt, /Control Method Power Button \(V1\) : 0/);
    assert.match(fadt, /Control Method Sleep Button \(V1\) : 1/);
    assert.match(fadt, /Reset Register Supported \(V2\) : 1/);
    assert.match(fadt, /Address : 0000000000000CF9/);
    assert.match(fadt, /Value to cause reset : 06/);
    assert.doesNotMatch(fadt, /Invalid|mismatch/i);
    const madt = disassemble(bin, files.get('APIC')!);
    assert.equal((madt.match(/\[Processor Local APIC\]/g) ?? []).length, 2);
    assert.match(madt, /\[I\/O APIC\][\s\S]*Address : FEC00000/);
    assert.equal((madt.match(/\[Interrupt Source Override\]/g) ?? []).length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('acpiexec loads the DSDT and evaluates \\_S5 and COM1._CRS', { skip }, () => {
  const bin = (tools as { dir: string }).dir;
  if (!existsSync(join(bin, 'acpiexec'))) return;
  const { dir, files } = dumpTables();
  try {
    const r = spawnSync(join(bin, 'acpiexec'), ['-b', 'evaluate \\_S5; evaluate \\_SB.COM1._CRS', files.get('DSDT')!], {
      encoding: 'utf8', timeout: 60_000,
    });
    const out = r.stdout + r.stderr;
    assert.match(out, /\[Package\] Contains 4 Elements:\s+\[Integer\] = 0000000000000005\s+\[Integer\] = 0000000000000005/);
    assert.match(out, /47 01 F8 03 F8 03 01 08 22 10 00 79 00/);
    assert.doesNotMatch(out, /AE_AML|AE_NOT_FOUND|Exception/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
