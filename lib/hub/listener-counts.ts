/**
 * Who listens to which channel, counted per process, and who wants to know when that changes.
 * The hub uses it so demo timers (lib/demos/demo-timer.ts) run only while a channel has listeners.
 */
export class ListenerCounts {
  readonly #counts = new Map<string, number>();
  readonly #watchers = new Map<string, Set<(listening: boolean) => void>>();

  /** Connections following `channel` now. */
  of(channel: string): number {
    return this.#counts.get(channel) ?? 0;
  }

  /**
   * Calls `watcher(true)` when `channel` gains its first listener and `watcher(false)` when it
   * loses its last (at once with `true` if it already has some). Returns the function that
   * stops watching.
   */
  watch(channel: string, watcher: (listening: boolean) => void): () => void {
    let watchers = this.#watchers.get(channel);
    if (!watchers) this.#watchers.set(channel, (watchers = new Set()));
    watchers.add(watcher);
    if (this.of(channel) > 0) watcher(true);
    return () => watchers.delete(watcher);
  }

  /** Counts one connection in (+1) or out (-1) of `channels`, telling watchers of each edge. */
  change(channels: readonly string[], change: 1 | -1): void {
    for (const channel of channels) {
      const count = this.of(channel) + change;
      // Delete at zero, or the map would keep every channel ever followed.
      if (count === 0) this.#counts.delete(channel);
      else this.#counts.set(channel, count);
      const edge = change === 1 ? count === 1 : count === 0;
      if (!edge) continue;
      for (const watcher of this.#watchers.get(channel) ?? []) watcher(change === 1);
    }
  }
}
