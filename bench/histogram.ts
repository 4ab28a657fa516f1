/**
 * A latency histogram in fixed 10 µs buckets up to 10 s, with the exact maximum: small to send
 * between processes (only non-empty buckets travel), and exact enough for p50 and p99.
 */
const BUCKET_MICROS = 10;
const BUCKETS = 1_000_000;

export interface HistogramSnapshot {
  /** [bucket index, count] for every non-empty bucket. */
  buckets: Array<[number, number]>;
  count: number;
  maxMicros: number;
}

export class LatencyHistogram {
  readonly #counts = new Uint32Array(BUCKETS);
  count = 0;
  maxMicros = 0;

  record(micros: number): void {
    const value = Math.max(0, micros);
    this.#counts[Math.min(BUCKETS - 1, Math.floor(value / BUCKET_MICROS))]! += 1;
    this.count += 1;
    if (value > this.maxMicros) this.maxMicros = value;
  }

  snapshot(): HistogramSnapshot {
    const buckets: Array<[number, number]> = [];
    for (let index = 0; index < BUCKETS; index++) {
      const count = this.#counts[index]!;
      if (count > 0) buckets.push([index, count]);
    }
    return { buckets, count: this.count, maxMicros: this.maxMicros };
  }

  reset(): void {
    this.#counts.fill(0);
    this.count = 0;
    this.maxMicros = 0;
  }
}

/** Merges snapshots and reads p50, p99 and max, in milliseconds. */
export function percentiles(snapshots: HistogramSnapshot[]): { count: number; p50: number; p99: number; max: number } {
  const merged = new Map<number, number>();
  let count = 0;
  let max = 0;
  for (const snapshot of snapshots) {
    count += snapshot.count;
    max = Math.max(max, snapshot.maxMicros);
    for (const [index, n] of snapshot.buckets) merged.set(index, (merged.get(index) ?? 0) + n);
  }
  const sorted = [...merged].sort((a, b) => a[0] - b[0]);
  const at = (fraction: number): number => {
    const rank = Math.ceil(fraction * count);
    let seen = 0;
    for (const [index, n] of sorted) {
      seen += n;
      // The bucket's upper edge: a percentile is never reported lower than it was.
      if (seen >= rank) return Math.min(((index + 1) * BUCKET_MICROS) / 1000, max / 1000);
    }
    return max / 1000;
  };
  return { count, p50: at(0.5), p99: at(0.99), max: max / 1000 };
}
