// Metrics whose label sets are looked up once and then counted without a lookup: prom-client checks
// and hashes the labels of every `inc` and `observe`, and `wasp serve` made nine of them a request
// (its requests, latency, requests in flight twice, five stages), ~13% of the server thread's CPU.
// Here a label set's state is made at its first use (`series`), a caller keeps it, and counting is
// an array increment. prom-client keeps the exposition: each class is a metric its Registry takes
// (`registerMetric`: name, help, type, `get()`), printed as prom-client prints its own Counter,
// Gauge and Histogram — byte for byte, tests/serve-metrics.test.ts compares them on generated
// observations.
import type { Registry } from "prom-client";

type Labels = Readonly<Record<string, string>>;

interface Value {
  metricName?: string;
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
}

abstract class BoundMetric<S> {
  readonly aggregator = "sum";
  abstract readonly type: "counter" | "gauge" | "histogram";
  readonly #series = new Map<string, { labels: Labels; state: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  /** The state of one label set (every label name given, no other): made at its first use, to be kept by the caller. */
  series(labels: Labels): S {
    const key = this.labelNames.map((n) => labels[n]).join("\u0000");
    const found = this.#series.get(key);
    if (found) return found.state;
    const names = Object.keys(labels);
    if (names.length !== this.labelNames.length || this.labelNames.some((n) => typeof labels[n] !== "string")) {
      throw new TypeError(`${this.name}: the labels are ${this.labelNames.join(", ")}, not ${names.join(", ")}`);
    }
    const state = this.fresh();
    this.#series.set(key, { labels: { ...labels }, state });
    return state;
  }

  protected abstract fresh(): S;
  protected abstract values(labels: Labels, state: S): Value[];

  /** prom-client's Registry reads a metric through this. */
  async get(): Promise<{ name: string; help: string; type: string; values: Value[]; aggregator: string }> {
    const values: Value[] = [];
    for (const { labels, state } of this.#series.values()) values.push(...this.values(labels, state));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

/** A counter's or gauge's value for one label set. */
export class Level {
  value = 0;
  add(n: number): void {
    this.value += n;
  }
}

/** A metric of one number per label set: a counter or a gauge. */
abstract class BoundLevels extends BoundMetric<Level> {
  protected fresh(): Level {
    return new Level();
  }
  protected values(labels: Labels, s: Level): Value[] {
    return [{ labels: { ...labels }, value: s.value }];
  }
}

export class BoundCounter extends BoundLevels {
  readonly type = "counter";
}

export class BoundGauge extends BoundLevels {
  readonly type = "gauge";
}

/** One label set of a histogram: a count per bucket, the sum and the count. */
export class Buckets {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }
  observe(v: number): void {
    if (!Number.isFinite(v)) throw new TypeError(`a histogram observes a number, not ${v}`);
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (v <= bounds[i]) {
        this.counts[i]++;
        break;
      }
    }
    this.sum += v;
    this.count++;
  }
}

export class BoundHistogram extends BoundMetric<Buckets> {
  readonly type = "histogram";
  readonly bounds: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[], registry: Registry) {
    super(name, help, labelNames, registry);
    this.bounds = [...buckets].sort((a, b) => a - b);
  }

  protected fresh(): Buckets {
    return new Buckets(this.bounds);
  }

  protected values(labels: Labels, s: Buckets): Value[] {
    // as prom-client's: the bucket bound first, the label set after it (shared by the series' lines)
    const shared = { ...labels };
    const out: Value[] = [];
    let acc = 0;
    this.bounds.forEach((bound, i) => {
      acc += s.counts[i];
      out.push({ metricName: `${this.name}_bucket`, labels: { le: bound }, sharedLabels: shared, value: acc });
    });
    out.push({ metricName: `${this.name}_bucket`, labels: { le: "+Inf" }, sharedLabels: shared, value: s.count });
    out.push({ metricName: `${this.name}_sum`, labels: {}, sharedLabels: shared, value: s.sum });
    out.push({ metricName: `${this.name}_count`, labels: {}, sharedLabels: shared, value: s.count });
    return out;
  }
}
