// Landlock (linux/landlock.h): a ruleset of file-system access rights the calling thread keeps
// after landlock_restrict_self(2). Layouts and the constants of zig's copy of the header are checked
// by tests/harden.test.ts; the newer ones name the kernel version that added them.
import { Struct } from "./struct.ts";

/** Only `handled_access_fs` (ABI 1); the struct grew later, and the kernel accepts the short form. */
export const landlock_ruleset_attr = new Struct("struct landlock_ruleset_attr", 8, { handled_access_fs: [0, "u64"] });
/** Packed: 12 bytes. */
export const landlock_path_beneath_attr = new Struct("struct landlock_path_beneath_attr", 12, {
  allowed_access: [0, "u64"],
  parent_fd: [8, "u32"],
});

/** landlock_create_ruleset(NULL, 0, this) returns the kernel's Landlock ABI version. */
export const LANDLOCK_CREATE_RULESET_VERSION = 1;
export const LANDLOCK_RULE_PATH_BENEATH = 1;
/** landlock_restrict_self: restrict every thread of the process, not only the caller (ABI 8, Linux 7.0). */
export const LANDLOCK_RESTRICT_SELF_TSYNC = 1 << 3;

/** File-system access rights (enum landlock_access_fs); all fit in 53 bits. */
export const ACCESS_FS = {
  EXECUTE: 1 << 0,
  WRITE_FILE: 1 << 1,
  READ_FILE: 1 << 2,
  READ_DIR: 1 << 3,
  REMOVE_DIR: 1 << 4,
  REMOVE_FILE: 1 << 5,
  MAKE_CHAR: 1 << 6,
  MAKE_DIR: 1 << 7,
  MAKE_REG: 1 << 8,
  MAKE_SOCK: 1 << 9,
  MAKE_FIFO: 1 << 10,
  MAKE_BLOCK: 1 << 11,
  MAKE_SYM: 1 << 12,
  /** ABI 2 (Linux 5.19): linking or renaming a file into another directory */
  REFER: 1 << 13,
  /** ABI 3 (Linux 6.2): truncate(2), ftruncate of a file opened after, O_TRUNC */
  TRUNCATE: 1 << 14,
  /** ABI 5 (Linux 6.10): ioctl(2) on a character or block device opened after */
  IOCTL_DEV: 1 << 15,
} as const;

/** The rights a rule on a file (not a directory) may carry; others make landlock_add_rule fail. */
export const FILE_ACCESS = ACCESS_FS.EXECUTE | ACCESS_FS.WRITE_FILE | ACCESS_FS.READ_FILE | ACCESS_FS.TRUNCATE | ACCESS_FS.IOCTL_DEV;

/** Every file-system right an ABI version knows: a ruleset that handles them all denies what no rule grants. */
export function handledAccessFs(abi: number): number {
  let rights = (ACCESS_FS.MAKE_SYM << 1) - 1; // ABI 1: EXECUTE .. MAKE_SYM
  if (abi >= 2) rights |= ACCESS_FS.REFER;
  if (abi >= 3) rights |= ACCESS_FS.TRUNCATE;
  if (abi >= 5) rights |= ACCESS_FS.IOCTL_DEV;
  return rights;
}
