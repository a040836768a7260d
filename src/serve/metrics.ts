// `wasp serve`'s metrics in the Prometheus text format (prom-client): requests by function and
// status, latency histograms, requests in flight, the workers' queue, cold starts.
import { Counter, Gauge, Histogram, Registry } from "prom-client";

export class ServeMetrics {
  readonly registry = new Registry();
  readonly #requests = new Counter({ name: "wasp_requests_total", help: "Requests answered, by function and status", labelNames: ["function", "status"], registers: [this.registry] });
  readonly #latency = new Histogram({
    name: "wasp_request_duration_seconds",
    help: "Time from a request's arrival to its response, by function",
    labelNames: ["function"],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly #inflight = new Gauge({ name: "wasp_requests_in_flight", help: "Requests being served, by function", labelNames: ["function"], registers: [this.registry] });
  readonly #queue = new Gauge({ name: "wasp_queue_depth", help: "Calls waiting for a worker thread", registers: [this.registry] });
  readonly #stages = new Histogram({
    name: "wasp_request_stage_seconds",
    help: "Where a request's time went: route (routing, checks), body (reading it), prepare (the guest's request), call (a worker: queue, VM, guest)",
    labelNames: ["function", "stage"],
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1],
    registers: [this.registry],
  });
  readonly #cold = new Counter({ name: "wasp_cold_starts_total", help: "Requests served before their function was warm (start-up, reload)", labelNames: ["function"], registers: [this.registry] });

  get contentType(): string {
    return this.registry.contentType;
  }

  request(fn: string, status: number, seconds: number): void {
    this.#requests.inc({ function: fn, status: String(status) });
    if (fn !== "-") this.#latency.observe({ function: fn }, seconds);
  }

  inflight(fn: string, delta: number): void {
    this.#inflight.inc({ function: fn }, delta);
  }

  /** A request's stages, in ms. */
  stages(fn: string, ms: Readonly<Record<string, number>>): void {
    for (const [stage, v] of Object.entries(ms)) this.#stages.observe({ function: fn, stage }, v / 1000);
  }

  coldStart(fn: string): void {
    this.#cold.inc({ function: fn });
  }

  setQueue(n: number): void {
    this.#queue.set(n);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
