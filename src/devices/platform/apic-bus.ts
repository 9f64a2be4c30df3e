// The APIC "bus": how interrupt messages travel between the I/O APIC, the local APICs (IPIs) and,
// later, PCI MSI. On a P6 this was a dedicated serial bus; since the Pentium 4 it is the system
// bus (SDM vol. 3A 10.1, 10.6). Here it is a list of local APICs and a function call: a message
// names its destination (physical APIC ID or logical MDA, SDM 10.6.2), the bus finds the
// accepting local APICs (10.6.2.1-10.6.2.4) and hands each the message. End-of-interrupt
// broadcasts for level-triggered vectors (10.8.5) flow the other way, to the I/O APICs.

/** Delivery modes, as encoded in ICR bits 10:8 and I/O APIC redirection entries bits 10:8. */
export const enum DeliveryMode {
  Fixed = 0,
  LowestPriority = 1,
  Smi = 2,
  Nmi = 4,
  Init = 5,
  Startup = 6,
  ExtInt = 7,
}

/** ICR bits 19:18 (SDM 10.6.1): which processors the message goes to, besides the destination. */
export const enum Shorthand {
  None = 0,
  Self = 1,
  AllIncludingSelf = 2,
  AllExcludingSelf = 3,
}

export interface ApicMessage {
  vector: number;
  mode: DeliveryMode;
  /** Destination mode: false = physical (APIC ID), true = logical (MDA vs LDR/DFR). */
  logical: boolean;
  /** Destination field: 8 bits in xAPIC format (0xFF broadcast), 32 bits in x2APIC format. */
  dest: number;
  /** The destination is in x2APIC format (32 bits, 0xFFFFFFFF broadcast; SDM 10.12.9). */
  wide?: boolean;
  /** Trigger mode: true = level (the vector's TMR bit is set; its EOI is broadcast). */
  level: boolean;
  /** Level bit of the ICR (for INIT: false with `level` true is "INIT level de-assert"). */
  assert: boolean;
  shorthand: Shorthand;
  /** The local APIC that sent it (IPIs), for the self/all-but-self shorthands. */
  source?: ApicTarget;
}

/** What the bus needs of a local APIC; implemented by LocalApic. */
export interface ApicTarget {
  /** Does this APIC accept a message with this destination (SDM 10.6.2)? */
  matchesDestination(logical: boolean, dest: number, wide: boolean): boolean;
  /** The arbitration priority used to choose among lowest-priority candidates (SDM 10.6.2.4). */
  arbitrationPriority(): number;
  /** Take the message (the bus has decided this APIC is a target). */
  accept(msg: ApicMessage): void;
  /** Whether this APIC uses x2APIC addressing (32-bit destinations). */
  readonly x2apic: boolean;
}

/** What the bus needs of an I/O APIC: level-triggered EOIs (SDM 10.8.5). */
export interface EoiListener {
  eoi(vector: number): void;
}

/** The sink an I/O APIC (or MSI) hands messages to. */
export interface ApicMessageSink {
  deliver(msg: ApicMessage): void;
}

export class ApicBus implements ApicMessageSink {
  private readonly targets: ApicTarget[] = [];
  private readonly eoiListeners: EoiListener[] = [];
  /** Round-robin start for lowest-priority ties, so no single vCPU takes them all. */
  private rrNext = 0;

  attach(target: ApicTarget): void {
    this.targets.push(target);
  }

  addEoiListener(listener: EoiListener): void {
    this.eoiListeners.push(listener);
  }

  get apics(): readonly ApicTarget[] {
    return this.targets;
  }

  /** A local APIC's EOI of a level-triggered vector: tell every I/O APIC (SDM 10.8.5). */
  broadcastEoi(vector: number): void {
    for (const l of this.eoiListeners) l.eoi(vector);
  }

  deliver(msg: ApicMessage): void {
    const candidates: ApicTarget[] = [];
    switch (msg.shorthand) {
      case Shorthand.Self:
        if (msg.source) candidates.push(msg.source);
        break;
      case Shorthand.AllIncludingSelf:
        candidates.push(...this.targets);
        break;
      case Shorthand.AllExcludingSelf:
        for (const t of this.targets) if (t !== msg.source) candidates.push(t);
        break;
      default:
        for (const t of this.targets) if (t.matchesDestination(msg.logical, msg.dest, msg.wide === true)) candidates.push(t);
    }
    if (candidates.length === 0) return;
    if (msg.mode === DeliveryMode.LowestPriority && candidates.length > 1) {
      // SDM 10.6.2.4: the processor with the lowest arbitration priority takes it; ties are
      // broken round-robin (the focus-processor rule is not modelled: 10.6.2.4 lets a
      // processor skip it, and SVR bit 9 disables it).
      let best: ApicTarget | undefined;
      let bestPri = Infinity;
      const n = this.targets.length;
      for (let k = 0; k < n; k++) {
        const t = this.targets[(this.rrNext + k) % n];
        if (!candidates.includes(t)) continue;
        const p = t.arbitrationPriority() & 0xf0;
        if (p < bestPri) {
          bestPri = p;
          best = t;
        }
      }
      if (best) {
        this.rrNext = (this.targets.indexOf(best) + 1) % n;
        best.accept(msg);
      }
      return;
    }
    for (const t of candidates) t.accept(msg);
  }

  /**
   * A PCI MSI write (address 0xFEExxxxx, 32-bit data), decoded per SDM 10.11.1/10.11.2:
   * address bits 19:12 destination ID, bit 2 destination mode (1 = logical), bit 3 redirection
   * hint (lowest priority when set); data bits 7:0 vector, 10:8 delivery mode, 15 trigger mode,
   * 14 level.
   */
  deliverMsi(address: number, data: number): void {
    if (((address >>> 20) & 0xfff) !== 0xfee) return;
    const mode = ((data >>> 8) & 7) as DeliveryMode;
    this.deliver({
      vector: data & 0xff,
      mode,
      logical: ((address >>> 2) & 1) === 1,
      dest: (address >>> 12) & 0xff,
      level: ((data >>> 15) & 1) === 1,
      assert: ((data >>> 14) & 1) === 1,
      shorthand: Shorthand.None,
    });
  }
}
