/**
 * A repeating job that runs only while someone listens on a channel.
 *
 * The tutorials start their generators at import time and leave them running forever, even
 * with nobody connected. Here the hub says when a channel gains its first listener and loses
 * its last, and the timer follows: no listeners, no timer, no work.
 */
import type { Hub } from './hub.ts';

/** Starts `task` every `intervalMs` while `channel` has listeners (0 = never). Returns a stop function. */
export function runWhileListening(hub: Hub, channel: string, intervalMs: number, task: () => void): () => void {
  if (intervalMs === 0) return () => {};
  let timer: NodeJS.Timeout | undefined;
  const stopTimer = () => {
    clearInterval(timer);
    timer = undefined;
  };
  const stopWatching = hub.onDemand(channel, (listening) => {
    if (listening && timer === undefined) timer = setInterval(task, intervalMs);
    if (!listening) stopTimer();
  });
  return () => {
    stopWatching();
    stopTimer();
  };
}
