// Runs before every test file: the suite needs the real /dev/kvm and the built guests. If either
// is missing it stops here with a message that says so: a KVM test is never skipped.
import { openSync, closeSync, constants, existsSync, fstatSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
try {
  const fd = openSync("/dev/kvm", constants.O_RDWR);
  const device = fstatSync(fd).isCharacterDevice();
  closeSync(fd);
  if (!device) throw new Error("it is not a character device");
} catch (e) {
  throw new Error(`wasp's tests need /dev/kvm, and it cannot be opened (${(e as Error).message}). Run them on a machine with KVM, as a user allowed to use it.`);
}
if (!existsSync(join(root, "dist", "guests", "fib.bin")) || !existsSync(join(root, "dist", "wasp"))) {
  throw new Error("the guests or dist/wasp are not built: run `npm install` (or `npm run build`) first");
}
