// --gdb HOST:PORT of `wasp invoke` and `wasp replay`: the call runs under gdb (src/debug/).
import { GdbListener, parseListenAddress, type GdbDebugger } from "../debug/debugger.ts";
import { err } from "./output.ts";

/**
 * Listens on HOST:PORT, says where on stderr, and waits for the debugger to connect (one
 * connection; the listener closes then). Disposed, it closes the connection.
 */
export function waitForGdb(spec: string): GdbDebugger & Disposable {
  const { host, port } = parseListenAddress(spec, "--gdb");
  const listener = new GdbListener(host, port);
  err(`wasp: waiting for gdb on ${host}:${listener.port} (gdb FILE -ex 'target remote ${host}:${listener.port}')\n`);
  const debug = listener.accept();
  return Object.assign(debug, { [Symbol.dispose]: () => debug.close() });
}
