// A bare thread for `wasp bench`'s throughput ceiling: it runs a Runner in a tight loop, with no
// pool and no hand-off per call, and answers when the batch is done. Two of these against one is
// what this machine lets two threads running guests reach; invoke_async_throughput is set beside it.
import { parseImage } from "../image/image.ts";
import { Runner } from "../virtine/runner.ts";
import { closeSystemKvm } from "../kvm/system.ts";
import { DeadlineTimer } from "../virtine/deadline.ts";

/** A batch: `calls` calls of the image with argument `n`; or `stop`. */
export type LoopRequest = { image: Uint8Array; n: number; calls: number } | "stop";

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
  runner ??= new Runner(parseImage(req.image, "fib.bin"));
  for (let i = 0; i < req.calls; i++) runner.run([req.n]);
  self.postMessage("done");
};
