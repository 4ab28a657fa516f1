/**
 * The live-data demo from the Flask generator tutorial: every tick, an unnamed event on
 * channel `sse` with the server time and how many clients listen. Unnamed events reach the
 * browser's `onmessage` (type "message"), the simplest possible client.
 */
import { runWhileListening } from './demo-timer.ts';
import type { Hub } from './hub.ts';
import { DEFAULT_CHANNEL } from './pubsub.ts';

export function startTicker(hub: Hub, tickMs: number): () => void {
  return runWhileListening(hub, DEFAULT_CHANNEL, tickMs, () => {
    hub.publish({
      channel: DEFAULT_CHANNEL,
      data: JSON.stringify({ time: new Date().toISOString(), clients: hub.listenersOf(DEFAULT_CHANNEL) }),
    });
  });
}
