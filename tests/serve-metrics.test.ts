// src/serve/bound-metrics.ts against prom-client: the same observations on a bound metric and on
// prom-client's own Counter, Gauge and Histogram (label values with quotes, backslashes and
// newlines, values on and past the bucket bounds, label sets in any order of first use) print the
// same exposition, byte for byte; a label set that is not the metric's is refused.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { BoundCounter, BoundGauge, BoundHistogram } from "../src/serve/bound-metrics.ts";
import { ServeMetrics } from "../src/serve/metrics.ts";

const BUCKETS = [0.001, 0.01, 0.1, 1, 10];
const labelValue = fc.oneof(fc.constantFrom("a", "b", 'q"uote', "back\\slash", "new\nline", "", "é"), fc.string({ maxLength: 4 }));
const value = fc.oneof(fc.constantFrom(0, 0.001, 0.01, 1, 10, 10.5, 1e6, -1, 0.0005), fc.double({ min: -100, max: 100, noNaN: true }));
const op = fc.record({ kind: fc.constantFrom("counter", "gauge", "histogram"), a: labelValue, b: labelValue, v: value });

describe("bound metrics print what prom-client's print", () => {
  test("the same observations, the same exposition", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const theirs = new Registry();
        const ours = new Registry();
        const names = ["a", "b"];
        const pc = {
          counter: new Counter({ name: "t_count", help: "h", labelNames: names, registers: [theirs] }),
          gauge: new Gauge({ name: "t_gauge", help: "h", labelNames: names, registers: [theirs] }),
          histogram: new Histogram({ name: "t_hist", help: "h", labelNames: names, buckets: BUCKETS, registers: [theirs] }),
        };
        const bound = {
          counter: new BoundCounter("t_count", "h", names, ours),
          gauge: new BoundGauge("t_gauge", "h", names, ours),
          histogram: new BoundHistogram("t_hist", "h", names, BUCKETS, ours),
        };
        for (const { kind, a, b, v } of ops) {
          const labels = { a, b };
          if (kind === "counter") {
            pc.counter.inc(labels, Math.abs(v));
            bound.counter.series(labels).add(Math.abs(v));
          } else if (kind === "gauge") {
            pc.gauge.inc(labels, v);
            bound.gauge.series(labels).add(v);
          } else {
            pc.histogram.observe(labels, v);
            bound.histogram.series(labels).observe(v);
          }
        }
        expect(await ours.metrics()).toBe(await theirs.metrics());
      }),
      { numRuns: 300 },
    );
  });

  test("a label set that is not the metric's is refused; a non-number is not observed", () => {
    const h = new BoundHistogram("t_h2", "h", ["function"], BUCKETS, new Registry());
    expect(() => h.series({ fn: "x" } as never)).toThrow(/the labels are function, not fn/);
    expect(() => h.series({ function: "x", extra: "y" })).toThrow(TypeError);
    expect(() => h.series({ function: "x" }).observe(Number.NaN)).toThrow(TypeError);
  });

  test("wasp serve's metrics: a request's stages, latency, status and in-flight count in the exposition", async () => {
    const m = new ServeMetrics();
    m.inflight("f", 1);
    m.stages("f", { route: 0.01, body: 0.02, prepare: 0.03, dispatch: 0.04, vm: 0.5 });
    m.request("f", 200, 0.0006);
    m.inflight("f", -1);
    m.request("-", 404, 0.0001);
    const text = await m.text();
    expect(text).toContain('wasp_requests_total{function="f",status="200"} 1');
    expect(text).toContain('wasp_requests_total{function="-",status="404"} 1');
    expect(text).toContain('wasp_request_duration_seconds_bucket{le="0.001",function="f"} 1');
    expect(text).toContain('wasp_request_stage_seconds_count{function="f",stage="vm"} 1');
    expect(text).toContain('wasp_request_stage_seconds_sum{function="f",stage="vm"} 0.0005');
    expect(text).toContain('wasp_requests_in_flight{function="f"} 0');
    // a 404 has no function: no latency series for it
    expect(text).not.toContain('wasp_request_duration_seconds_count{function="-"}');
  });
});
