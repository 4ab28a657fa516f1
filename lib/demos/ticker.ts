/**
 * The live-data demo from the Flask generator tutorial: every tick, an unnamed event on
 * channel `sse` with the server time and how many clients listen. Unnamed events reach the
 * browser's `onmessage` (type "message"), the simplest possible client.
 */
import { runWhileListening } from './demo-timer.ts';
import type { Logger } from '../http/log.ts';
import { DEFAULT_CHANNEL } from '../hub/channels.ts';
import type { PubSub } from '../hub/pubsub.ts';

export function startTicker(hub: PubSub, tickMs: number, logger: Logger): () => void {
  const job = { name: 'ticker', channel: DEFAULT_CHANNEL, intervalMs: tickMs };
  // `clients` counts this process's listeners.
  const tick = () =>
    hub.publish({
      channel: DEFAULT_CHANNEL,
      data: JSON.stringify({ time: new Date().toISOString(), clients: hub.listenersOf(DEFAULT_CHANNEL) }),
    });
  return runWhileListening(hub, job, tick, logger);
}
