// --gdb HOST:PORT of `wasp invoke` and `wasp replay`: the call runs under gdb (src/debug/).
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { GdbListener, parseListenAddress, type GdbDebugger } from "../debug/debugger.ts";
import { embeddedGuest } from "./embedded.ts";
import { fileHead } from "./parse.ts";
import { err } from "./output.ts";

/**
 * Listens on HOST:PORT, says where on stderr — with the gdb command line, naming the guest's
 * symbols where they are known (`symbolsOf`) — and waits for the debugger to connect (one
 * connection; the listener closes then). Disposed, it closes the connection.
 */
export function waitForGdb(spec: string, symbols?: string): GdbDebugger & Disposable {
  const { host, port } = parseListenAddress(spec, "--gdb");
  const listener = new GdbListener(host, port);
  err(`wasp: waiting for gdb on ${host}:${listener.port} (gdb ${symbols ?? "FILE"} -ex 'target remote ${host}:${listener.port}')\n`);
  const debug = listener.accept();
  return Object.assign(debug, { [Symbol.dispose]: () => debug.close() });
}

/** Where the file of an image or program is with its symbols, when wasp knows: a Linux executable itself, NAME.debug beside NAME.bin, a built-in's in wasp's guests folder. */
export function symbolsOf(image: string): string | undefined {
  const head = fileHead(image, 4);
  if (head && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) return image;
  const beside = `${image.replace(/\.bin$/, "")}.debug`;
  if (existsSync(beside)) return beside;
  if (!embeddedGuest(image)) return undefined;
  // the standalone binary sits in dist/ beside dist/guests/; from source, the repository's dist/
  const name = image.replace(/\.bin$/, "").split("/").pop();
  for (const dir of [join(dirname(process.execPath), "guests"), resolve(import.meta.dir, "../../dist/guests")]) {
    if (existsSync(join(dir, `${name}.debug`))) return join(dir, `${name}.debug`);
  }
  return undefined;
}
