// A bare thread for `wasp bench`'s throughput ceiling: it runs a Runner in a tight loop, with no
// pool and no hand-off per call, and answers when the batch is done. Two of these against one is
// what this machine lets two threads running guests reach; invoke_async_throughput is set beside it.
import { parseImage } from "../image/image.ts";
import { Runner } from "../virtine/runner.ts";
import { closeSystemKvm } from "../kvm/system.ts";
import { DeadlineTimer } from "../virtine/deadline.ts";

/**
 * A batch: calls of the image with argument `n`, taken one at a time from a counter the threads
 * share until `calls` are taken (so that a thread slowed down by the machine takes fewer, as a
 * pool's workers would); or `stop`.
 */
export type LoopRequest = { image: Uint8Array; name: string; n: number; calls: number; taken: Int32Array } | "stop";

declare const self: Worker;
let runner: Runner | undefined;

self.onmessage = (e: MessageEvent<LoopRequest>) => {
  const req = e.data;
  if (req === "stop") {
    runner?.close();
    closeSystemKvm();
    DeadlineTimer.releaseThisThread();
    self.postMessage("stopped");
    return;
  }
  runner ??= new Runner(parseImage(req.image, req.name));
  while (Atomics.add(req.taken, 0, 1) < req.calls) runner.run([req.n]);
  self.postMessage("done");
};
