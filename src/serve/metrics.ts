// `wasp serve`'s metrics in the Prometheus text format (prom-client's registry and exposition):
// requests by function and status, latency histograms, requests in flight, the workers' queue,
// cold starts. What every request records goes through bound-metrics.ts: a function's series are
// looked up once per request (one Map lookup), not once per observation with prom-client's label
// checks and hashing.
import { Counter, Gauge, Registry } from "prom-client";
import { BoundCounter, BoundGauge, BoundHistogram, type Buckets, type Level } from "./bound-metrics.ts";

/** A request's stages, in the order `Server-Timing` names them. */
export const STAGES = ["route", "body", "prepare", "dispatch", "vm"] as const;
export type Stage = (typeof STAGES)[number];

/** One function's series, bound at its first request. */
interface FunctionSeries {
  latency: Buckets;
  inflight: Level;
  stages: Buckets[];
  /** by status code */
  requests: Map<number, Level>;
}

export class ServeMetrics {
  readonly registry = new Registry();
  readonly #requests = new BoundCounter("wasp_requests_total", "Requests answered, by function and status", ["function", "status"], this.registry);
  readonly #latency = new BoundHistogram(
    "wasp_request_duration_seconds",
    "Time from a request's arrival to its response, by function",
    ["function"],
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    this.registry,
  );
  readonly #inflight = new BoundGauge("wasp_requests_in_flight", "Requests being served, by function", ["function"], this.registry);
  readonly #queue = new Gauge({ name: "wasp_queue_depth", help: "Calls waiting for a worker thread", registers: [this.registry] });
  readonly #stages = new BoundHistogram(
    "wasp_request_stage_seconds",
    "Where a request's time went: route (routing, checks), body (reading it), prepare (the guest's request), call (a worker: queue, VM, guest)",
    ["function", "stage"],
    [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1],
    this.registry,
  );
  readonly #cold = new Counter({ name: "wasp_cold_starts_total", help: "Requests served before their function was warm (start-up, reload)", labelNames: ["function"], registers: [this.registry] });
  readonly #functions = new Map<string, FunctionSeries>();

  get contentType(): string {
    return this.registry.contentType;
  }

  /** `fn`'s series (bound at its first use; the label sets appear in the exposition from then on, as prom-client's do at their first observation). */
  #of(fn: string): FunctionSeries {
    let s = this.#functions.get(fn);
    if (!s) {
      s = {
        latency: this.#latency.series({ function: fn }),
        inflight: this.#inflight.series({ function: fn }),
        stages: STAGES.map((stage) => this.#stages.series({ function: fn, stage })),
        requests: new Map(),
      };
      this.#functions.set(fn, s);
    }
    return s;
  }

  request(fn: string, status: number, seconds: number): void {
    const s = this.#functions.get(fn);
    let count = s?.requests.get(status);
    if (!count) {
      count = this.#requests.series({ function: fn, status: String(status) });
      s?.requests.set(status, count);
    }
    count.add(1);
    if (fn !== "-") this.#of(fn).latency.observe(seconds);
  }

  inflight(fn: string, delta: number): void {
    this.#of(fn).inflight.add(delta);
  }

  /** A request's stages, in ms. */
  stages(fn: string, ms: Readonly<Record<Stage, number>>): void {
    const buckets = this.#of(fn).stages;
    for (let i = 0; i < STAGES.length; i++) buckets[i].observe(ms[STAGES[i]] / 1000);
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
