// A worker thread started before tests/harden-child.ts installs its filter: asked for "socket", it
// tries socket(2) and answers with the errno (the filter must reach threads that already exist).
import * as libc from "../ffi/libc.ts";
import { errnoName } from "../ffi/errno.ts";

declare const self: Worker;

self.onmessage = (e: MessageEvent) => {
  if (e.data !== "socket") return;
  const r = libc.raw.syscall(41, 2, 1, 0, 0) as number;
  self.postMessage(r === -1 ? errnoName(libc.errno()) : r);
};
self.postMessage("ready");
