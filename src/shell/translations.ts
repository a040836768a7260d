// Whether a privileged guest's reset must make KVM drop the translations it derived from the
// guest's page tables (docs/architecture.md, "Decisions": stale translations).
//
// On a KVM that shadows the guest's page tables, every translation KVM holds was derived from a
// guest paging entry, and KVM keeps it while it believes the entry unchanged: it write-protects
// every page it shadows as a table, so the guest's own writes to one are seen (the entries written
// are dropped). The reset's copies go behind its back: a restored page that KVM shadows keeps
// translations derived from the call's entries — wherever the table was, whether the call's
// tables were still in use at its end or built, used and abandoned within it (a second CR3 loaded
// and unloaded again: the raw_transient guest), and whether or not anything still points to them
// (KVM keeps the shadow of an unlinked table and takes it again when a later call links the same
// page). What no observation of the VM can tell after the call is *which* pages KVM shadowed; what
// the memory tells is which of them it can have derived anything from:
//
// - KVM derives a translation from an entry only with the entry's present bit set and, since it
//   emulates the accessed bit for the guest, sets the entry's accessed bit in guest memory when it
//   walks it (x86's A bit, at every level; its prefetch and resync take only entries that have it
//   already). An entry the guest changed afterwards was dropped then. So every translation KVM
//   holds at the call's end comes from an entry that is, in the call's final memory, present and
//   accessed (or from one the guest wrote later without invalidating, on an "unsync" leaf table:
//   KVM reads those again from memory before it uses them next — a CR3 load, INVLPG, or the table
//   linked again).
// - If at every such entry of every restored page the snapshot's memory holds the same value, the
//   restored memory gives KVM's translations exactly: nothing is stale, and re-adding the slot
//   (~400 µs here, almost all of it the two memory-slot ioctls) can be skipped.
//
// The check is by entry size: each 8-byte word that differs is suspect if either of its 4-byte
// halves is present and accessed (a 64-bit or PAE entry has both bits in its low half, a 32-bit
// paging entry in each half), which covers every paging mode the guest may have used during the
// call, whatever it ends in. It needs no walk of the guest's tables and holds for tables anywhere.
// It does not hold when the host writes guest memory while the guest runs (a hypercall's result):
// KVM may have derived translations from what the host overwrote, which the final memory no longer
// shows; such a call always drops them (Shell). Values that look like used entries by chance (a
// TSC reading, an address with bits 0 and 5 set) only cost a re-add that was not needed.

const PRESENT = 0x1;
const ACCESSED = 0x20;
const USED = PRESENT | ACCESSED;
/** 4-byte words per page */
const WORDS = 1024;

/**
 * Whether the page at `page` (a page number) of `ram`, at the call's end, holds a present and
 * accessed paging entry that the snapshot's copy `golden` does not hold at the same place: a
 * translation KVM may keep that the restored page would not give. Both are 4-byte views of the
 * whole memory.
 */
export function mayHoldStaleEntries(ram: Uint32Array, golden: Uint32Array, page: number): boolean {
  const end = (page + 1) * WORDS;
  for (let i = page * WORDS; i < end; i += 2) {
    const lo = ram[i];
    const hi = ram[i + 1];
    if (lo === golden[i] && hi === golden[i + 1]) continue;
    if ((lo & USED) === USED || (hi & USED) === USED) return true;
  }
  return false;
}
