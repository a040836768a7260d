// Raw images (Wasp's convention): a flat binary loaded at 0x8000 and entered in 16-bit real mode
// with IP and SP 0x8000; the guest owns its whole machine — its mode, tables, MSRs — so it is a
// privileged kind. It takes no data and leaves no console in memory: RAX is its result.
import { Layout } from "../abi/guest-abi.ts";
import { RFLAGS_REAL, realModeSregs } from "../image/boot.ts";
import { checkMemory, type ImageKind } from "./kind.ts";

const EMPTY: Uint8Array = new Uint8Array(0);

export const RAW: ImageKind = {
  name: "raw",
  privileged: true,
  shellMsrs: false,
  // it owns every byte of its RAM and addresses it physically
  access: { hostRanges: [] },
  takesData: false,
  readsFiles: false,
  plan(image, memory) {
    return { memory: checkMemory(image, memory, 0), dataSize: 0, stackSize: 0 };
  },
  entryState(image, _size, _plan, reset) {
    return { pieces: [[image.loadAddr, image.bytes]], populated: [[image.loadAddr, image.bytes.length]], rip: BigInt(Layout.RAW_LOAD), rsp: BigInt(Layout.RAW_LOAD), rflags: RFLAGS_REAL, sregs: realModeSregs(reset.sregs) };
  },
  collect() {
    return EMPTY;
  },
};
