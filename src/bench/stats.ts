// A benchmark series: samples in microseconds (or another unit) reduced to median and p99, the same
// way kvm-floor reduces its own (sorted; the element at n/2 and at n*99/100).
export interface SeriesResult {
  name: string;
  unit: string;
  n: number;
  median: number;
  p99: number;
  /** what the figure is not, when it says less than it seems ("below noise": too small to measure) */
  note?: string;
  /** what one call of the series cost in exits and system calls (the last timed call's), where that is what the figure is about */
  perCall?: PerCall;
}

/** One call's exits to the host, and its system calls: how many, how many of them answered in the VM. */
export interface PerCall {
  exits: number;
  syscalls?: number;
  syscallsInVm?: number;
}

/** The series' result with what one of its calls cost. */
export function withPerCall(r: SeriesResult, call: { exits: number; syscalls?: number; syscallsInVm?: number }): SeriesResult {
  const perCall: PerCall = { exits: call.exits };
  if (call.syscalls !== undefined) perCall.syscalls = call.syscalls;
  if (call.syscallsInVm !== undefined) perCall.syscallsInVm = call.syscallsInVm;
  return { ...r, perCall };
}

export function summarize(name: string, unit: string, samples: number[]): SeriesResult {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  const round = (v: number) => Math.round(v * 100) / 100;
  return { name, unit, n, median: round(s[Math.floor(n / 2)]), p99: round(s[Math.floor((n * 99) / 100)]) };
}

/**
 * Calls made before a series of short warm calls is timed, as a server has made them: by then
 * JavaScriptCore has compiled the host's path and its compiler and collector threads are quiet
 * (invoke_sync warms 20,000). Measured on the echo program resumed (2026-12-07, 250-call windows):
 * ~85-115 µs a call, KVM_RUN itself ~72-95 µs of it, until 3,000-6,000 calls; ~57-60 µs (KVM_RUN
 * ~51) from then on. With JavaScriptCore's concurrent compiler and collector off the fast phase
 * comes within the first thousand: their threads' work slows the early calls, the VM's part
 * included (our guess: their mappings' TLB shootdowns reach the vCPU's core, an exit each on PVM).
 */
export const WARM_CALLS = 6000;

/** Times `body` `runs` times after `warmup` untimed runs; microseconds per run. */
export function timeSync(runs: number, warmup: number, body: () => void): number[] {
  for (let i = 0; i < warmup; i++) body();
  const out = new Array<number>(runs);
  for (let i = 0; i < runs; i++) {
    const t = Bun.nanoseconds();
    body();
    out[i] = (Bun.nanoseconds() - t) / 1000;
  }
  return out;
}

export async function timeAsync(runs: number, warmup: number, body: () => Promise<void>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await body();
  const out = new Array<number>(runs);
  for (let i = 0; i < runs; i++) {
    const t = Bun.nanoseconds();
    await body();
    out[i] = (Bun.nanoseconds() - t) / 1000;
  }
  return out;
}
