// Paging (SDM vol. 3A chapter 4): 4-level with 4 KiB / 2 MiB / 1 GiB pages, PAE, 32-bit paging
// with PSE, access rights (U/S, R/W + CR0.WP, XD + EFER.NXE), reserved bits, accessed/dirty
// flags, page-fault error codes and CR2, and the TLB (INVLPG, CR3 reload, global pages).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm, SEL, DATA, type Machine } from './harness.js';

const PT = 0x30000; // a page table for 0x200000-0x3fffff (PD[1])
const V = 0x200000; // first virtual address it maps

/** Map virtual V + i*4K to `phys` with `flags` (P=1, RW=2, US=4, G=0x100; XD = bit 63). */
function map4k(m: Machine, i: number, phys: number, flags: bigint): void {
  m.mem.writeU64(0x3000 + 8, BigInt(PT) | 7n); // PD[1] -> PT (user, RW)
  m.mem.writeU64(PT + i * 8, BigInt(phys) | flags);
}

const USER_ENTRY = `
    ; enter ring 3 at 'user' with the user stack
    push ${SEL.userData}
    push 0x70000
    pushfq
    push ${SEL.user64}
    lea rax, [rel user]
    push rax
    iretq
`;

test('#PF error codes and CR2: not present read/write, user access to supervisor page, RSVD', async () => {
  const np = await runAsm('long', `mov rax, [${V}]\nhlt`, (_s, m) => map4k(m, 0, 0, 0n));
  assert.equal(np.m.cpu.lastException?.vector, 14);
  assert.equal(np.m.cpu.lastException?.errorCode, 0);
  assert.equal(np.state.cr2, BigInt(V));

  const npw = await runAsm('long', `mov qword [${V + 0x10}], 1\nhlt`, (_s, m) => map4k(m, 0, 0, 0n));
  assert.equal(npw.m.cpu.lastException?.errorCode, 2);
  assert.equal(npw.state.cr2, BigInt(V + 0x10));

  const us = await runAsm('long', `${USER_ENTRY}\nuser:\n mov rax, [${V + 8}]\n hlt`, (_s, m) => map4k(m, 0, DATA, 3n));
  assert.equal(us.m.cpu.lastException?.vector, 14);
  assert.equal(us.m.cpu.lastException?.errorCode, 5, 'P | U/S');

  const usw = await runAsm('long', `${USER_ENTRY}\nuser:\n mov qword [${V + 8}], 1\n hlt`, (_s, m) => map4k(m, 0, DATA, 5n));
  assert.equal(usw.m.cpu.lastException?.errorCode, 7, 'P | W | U/S on a read-only user page');

  const rsvd = await runAsm('long', `mov rax, [${V}]\nhlt`, (_s, m) => map4k(m, 0, DATA, 3n | (1n << 51n)));
  assert.equal(rsvd.m.cpu.lastException?.errorCode, 9, 'P | RSVD');
});

test('CR0.WP: supervisor writes to read-only pages fault only when WP=1', async () => {
  const wp = await runAsm('long', `mov qword [${V}], 1\nhlt`, (_s, m) => map4k(m, 0, DATA, 1n));
  assert.equal(wp.m.cpu.lastException?.errorCode, 3);
  const nowp = await runAsm('long', `mov rax, cr0\nbtr rax, 16\nmov cr0, rax\nmov qword [${V}], 0x77\nhlt`, (_s, m) => map4k(m, 0, DATA, 1n));
  assert.deepEqual(nowp.exit, { kind: 'hlt' });
  assert.equal(nowp.m.cpu.lastException, undefined);
  assert.equal(nowp.m.mem.readU64(DATA), 0x77n);
});

test('XD: instruction fetch from an XD page faults with I/D when EFER.NXE=1; XD is reserved when NXE=0', async () => {
  const src = `mov rax, ${V}\njmp rax\nhlt`;
  const nx = await runAsm('long', src, (_s, m) => {
    map4k(m, 0, 0x10000, 3n | (1n << 63n));
  });
  assert.equal(nx.m.cpu.lastException?.vector, 14);
  assert.equal(nx.m.cpu.lastException?.errorCode, 0x11, 'P | I/D');
  assert.equal(nx.state.cr2, BigInt(V));
  const rsv = await runAsm('long', `mov rax, [${V}]\nhlt`, (s, m) => {
    s.efer &= ~(1n << 11n);
    map4k(m, 0, DATA, 3n | (1n << 63n));
  });
  assert.equal(rsv.m.cpu.lastException?.errorCode, 9);
});

test('accessed and dirty flags are set by reads and writes (vol. 3A 4.8)', async () => {
  const r = await runAsm('long', `mov rax, [${V}]\nmov qword [${V + 0x1000}], 1\nhlt`, (_s, m) => {
    map4k(m, 0, DATA, 3n);
    map4k(m, 1, DATA + 0x1000, 3n);
  });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  const pte0 = r.m.mem.readU64(PT);
  const pte1 = r.m.mem.readU64(PT + 8);
  assert.equal(pte0 & 0x60n, 0x20n, 'read: A only');
  assert.equal(pte1 & 0x60n, 0x60n, 'write: A and D');
  assert.equal(r.m.mem.readU64(0x3008) & 0x20n, 0x20n, 'PDE accessed');
});

test('the TLB: stale until INVLPG; MOV CR3 flushes non-global entries only', async () => {
  const r = await runAsm('long', `
    mov rax, [${V}]              ; fill the TLB: V -> DATA
    mov qword [${PT}], ${DATA + 0x1000} | 3
    mov rbx, [${V}]              ; stale translation still used
    invlpg [${V}]
    mov rcx, [${V}]              ; new translation
    hlt
  `, (_s, m) => {
    map4k(m, 0, DATA, 3n);
    m.mem.writeU64(DATA, 0xaan);
    m.mem.writeU64(DATA + 0x1000, 0xbbn);
  });
  assert.equal(r.state.regs.rax, 0xaan);
  assert.equal(r.state.regs.rbx, 0xaan);
  assert.equal(r.state.regs.rcx, 0xbbn);

  const g = await runAsm('long', `
    mov rax, cr4
    or rax, 0x80                 ; PGE
    mov cr4, rax
    mov rax, [${V}]              ; global entry
    mov rax, [${V + 0x1000}]     ; non-global entry
    mov qword [${PT}], ${DATA + 0x2000} | 0x103
    mov qword [${PT + 8}], ${DATA + 0x2000} | 3
    mov rax, cr3
    mov cr3, rax
    mov rbx, [${V}]              ; still the old global translation
    mov rcx, [${V + 0x1000}]     ; re-walked
    hlt
  `, (_s, m) => {
    map4k(m, 0, DATA, 0x103n);
    map4k(m, 1, DATA + 0x1000, 3n);
    m.mem.writeU64(DATA, 0x11n);
    m.mem.writeU64(DATA + 0x1000, 0x22n);
    m.mem.writeU64(DATA + 0x2000, 0x33n);
  });
  assert.equal(g.state.regs.rbx, 0x11n);
  assert.equal(g.state.regs.rcx, 0x33n);
});

test('global TLB entries outlive several MOV CR3 until CR4.PGE is toggled; a slot refilled non-global is flushed by MOV CR3', async () => {
  // The TLB logs global and non-global fills apart (as/mmu.ts): a MOV CR3 visits the non-global
  // log only, a PGE toggle both. V2 is 16 MiB above V: the same TLB slot (direct-mapped by the
  // page number's low 12 bits), reached through a 2 MiB page that is not global.
  const V2 = V + 0x1000000;
  const r = await runAsm('long', `
    mov rax, cr4
    or rax, 0x80                 ; PGE
    mov cr4, rax
    mov rax, [${V}]              ; global entry
    mov rax, cr3
    mov cr3, rax
    mov cr3, rax
    mov qword [${PT}], ${DATA + 0x2000} | 0x103
    mov rbx, [${V}]              ; the old global translation, after two CR3 writes
    mov rax, cr4
    and rax, ~0x80
    mov cr4, rax                 ; PGE off: flushes global entries too
    or rax, 0x80
    mov cr4, rax
    mov rcx, [${V}]              ; re-walked
    mov rdx, [${V2 + 0x100}]     ; the same slot, now a non-global translation
    mov qword [0x3000 + 9 * 8], 0x200000 | 0x83
    mov rax, cr3
    mov cr3, rax
    mov rsi, [${V2 + 0x100}]     ; re-walked
    hlt
  `, (_s, m) => {
    map4k(m, 0, DATA, 0x103n);
    m.mem.writeU64(0x3000 + 9 * 8, 0x83n); // PD[9]: V2 -> physical 0 (2 MiB, not global)
    m.mem.writeU64(DATA, 0x11n);
    m.mem.writeU64(DATA + 0x2000, 0x33n);
    m.mem.writeU64(0x100, 0x44n);
    m.mem.writeU64(0x200100, 0x55n);
  });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.equal(r.state.regs.rbx, 0x11n, 'global entry kept by MOV CR3');
  assert.equal(r.state.regs.rcx, 0x33n, 'global entry dropped by the PGE toggle');
  assert.equal(r.state.regs.rdx, 0x44n);
  assert.equal(r.state.regs.rsi, 0x55n, 'non-global refill of a global slot dropped by MOV CR3');
});

test('1 GiB and 2 MiB pages in 4-level paging', async () => {
  const r = await runAsm('long', 'mov rax, [0x40000000 + 0x20000]\nmov rbx, [0x200000 + 0x100]\nhlt', (_s, m) => {
    m.mem.writeU64(0x2008, 0x83n); // PDPT[1]: 1 GiB page at physical 0
    m.mem.writeU64(0x3008, 0x83n | 0n); // PD[1]: 2 MiB page at physical 0
    m.mem.writeU64(DATA, 0x5150n);
    m.mem.writeU64(0x100, 0x6160n);
  });
  assert.equal(r.state.regs.rax, 0x5150n);
  assert.equal(r.state.regs.rbx, 0x6160n);
});

test('32-bit paging with 4 KiB and PSE 4 MiB pages (vol. 3A 4.3), and #PF from it', async () => {
  const r = await runAsm('prot32', `
    mov eax, cr4
    or eax, 0x10                 ; PSE
    mov cr4, eax
    mov eax, 0x40000
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    mov eax, [0x400000 + 0x20000]  ; 4 MiB page -> physical 0
    mov ebx, [0x800000]            ; 4 KiB page -> DATA
    mov ecx, [0xc00000]            ; not present
    hlt
  `, (s, m) => {
    s.idt = { base: 0x7000n, limit: 0x7ff };
    m.mem.writeU32(0x40000, 0x83); // PDE[0]: 4 MiB identity
    m.mem.writeU32(0x40004, 0x83); // PDE[1]: 0x400000 -> 0 (4 MiB)
    m.mem.writeU32(0x40008, 0x41000 | 3); // PDE[2] -> page table
    m.mem.writeU32(0x41000, DATA | 3); // 0x800000 -> DATA
    m.mem.writeU32(DATA, 0xabcd);
  });
  assert.equal(r.state.regs.rax, 0xabcdn);
  assert.equal(r.state.regs.rbx, 0xabcdn);
  assert.equal(r.m.cpu.lastException?.vector, 14);
  assert.equal(r.state.cr2, 0xc00000n);
});

test('PAE paging with 3 levels (vol. 3A 4.4) in 32-bit protected mode', async () => {
  const r = await runAsm('prot32', `
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, 0x40000
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    mov eax, [0x40000000 + 0x1000]   ; PDPTE[1] -> PD -> PT -> DATA
    mov ebx, [0x20000]               ; identity through a 2 MiB page
    hlt
  `, (_s, m) => {
    m.mem.writeU64(0x40000, 0x41000n | 1n); // PDPTE[0]
    m.mem.writeU64(0x40008, 0x42000n | 1n); // PDPTE[1]
    m.mem.writeU64(0x41000, 0x83n); // PD[0]: 2 MiB identity
    m.mem.writeU64(0x42000, 0x43000n | 3n); // PD[0] of the second GiB -> PT
    m.mem.writeU64(0x43008, BigInt(DATA) | 3n); // PT[1] -> DATA
    m.mem.writeU32(DATA, 0x77);
  });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.equal(r.state.regs.rax, 0x77n);
  assert.equal(r.state.regs.rbx, 0x77n);
});

test('accesses to addresses that are not RAM go to the bus; unclaimed reads return all ones', async () => {
  const seen: string[] = [];
  const r = await runAsm('long', `
    mov rax, 0xfe000000
    mov dword [rax], 0x12345678
    mov ebx, [rax + 4]
    mov rcx, [rax + 8]          ; 8-byte MMIO: two 4-byte accesses
    mov rdx, 0xff000000
    mov esi, [rdx]              ; nobody there
    hlt
  `, (_s, m) => {
    m.bus.addMmio(0xfe000000, 0x1000, {
      name: 'probe',
      mmioRead: (off, size) => { seen.push(`r${off}:${size}`); return 0xa0 + off; },
      mmioWrite: (off, size, v) => { seen.push(`w${off}:${size}:${v.toString(16)}`); },
    });
    // map 0xfe000000 and 0xff000000 through PDPT[3] 1 GiB page
    m.mem.writeU64(0x2018, 0xc0000000n | 0x83n);
  });
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.deepEqual(seen, ['w0:4:12345678', 'r4:4', 'r8:4', 'r12:4']);
  assert.equal(r.state.regs.rbx, 0xa4n);
  assert.equal(r.state.regs.rcx, (0xacn << 32n) | 0xa8n);
  assert.equal(r.state.regs.rsi, 0xffffffffn);
});

test('INVLPG drops every cached 4 KiB piece of a 2 MiB page', async () => {
  const r = await runAsm('long', `
    mov rax, [0x200000 + 0x20000]     ; PD[1]: 2 MiB page -> physical 0
    mov qword [0x3008], 0x200000 | 0x83 ; now -> physical 2 MiB
    invlpg [0x200000]                 ; a different 4 KiB piece of the same page
    mov rbx, [0x200000 + 0x20000]
    hlt
  `, (_s, m) => {
    m.mem.writeU64(0x3008, 0x83n);
    m.mem.writeU64(0x20000, 0x1111n);
    m.mem.writeU64(0x220000, 0x2222n);
  });
  assert.equal(r.state.regs.rax, 0x1111n);
  assert.equal(r.state.regs.rbx, 0x2222n);
});
