/**
 * A repeating job that runs only while someone listens on a channel.
 *
 * The tutorials start their generators at import time and leave them running forever, even
 * with nobody connected. Here the hub says when a channel gains its first listener and loses
 * its last, and the timer follows: no listeners, no timer, no work.
 *
 * With several processes sharing Redis, each process has its own listeners, and a ticker in
 * every process would tick once per process. So each tick first takes (or renews) a short
 * lease named after the job: the one process holding it runs the task, the others skip the
 * tick. The lease lives three periods; while its holder keeps listeners it renews it every
 * tick, and when the holder stops (no listeners left, crashed, cut off from Redis) the lease
 * runs out and another process with listeners takes over at its next tick. In one process the
 * lease is always ours and the task runs at once.
 */
import type { Logger } from '../http/log.ts';
import type { PubSub } from '../hub/pubsub.ts';

export interface DemoJob {
  /** The lease's name, unique per job: two jobs on one channel (ticker, monitor) are separate. */
  name: string;
  channel: string;
  /** The period (0 = never). */
  intervalMs: number;
}

/**
 * Starts `task` every `intervalMs` while `channel` has listeners (0 = never). Returns a stop
 * function. A task that fails is logged and simply runs again at the next tick: a tick lost
 * while Redis is away is replaced by the next one.
 */
export function runWhileListening(hub: PubSub, job: DemoJob, task: () => Promise<unknown>, logger: Logger): () => void {
  const { name, channel, intervalMs } = job;
  if (intervalMs === 0) return () => {};
  let timer: NodeJS.Timeout | undefined;
  const stopTimer = () => {
    clearInterval(timer);
    timer = undefined;
  };
  const tick = () => {
    hub
      .holdLease(`demo:${name}`, 3 * intervalMs)
      // Redis unreachable: no lease, no tick (publishing would fail anyway).
      .then((ours) => (ours && timer !== undefined ? task() : undefined))
      .catch((error: unknown) => logger('demo.tick_failed', { job: name, error: String((error as Error)?.message ?? error) }));
  };
  const stopWatching = hub.onDemand(channel, (listening) => {
    if (listening && timer === undefined) timer = setInterval(tick, intervalMs);
    if (!listening) stopTimer();
  });
  return () => {
    stopWatching();
    stopTimer();
  };
}
