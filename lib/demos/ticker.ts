/**
 * The live-data demo from the Flask generator tutorial: every tick, an unnamed event on
 * channel `sse` with the server time and how many clients listen. Unnamed events reach the
 * browser's `onmessage` (type "message"), the simplest possible client.
 */
import { runWhileListening } from './demo-timer.ts';
import type { PubSub } from '../hub/memory-hub.ts';
import { DEFAULT_CHANNEL } from '../hub/routes.ts';

export function startTicker(hub: PubSub, tickMs: number): () => void {
  return runWhileListening(hub, { name: 'ticker', channel: DEFAULT_CHANNEL, intervalMs: tickMs }, () => {
    // `clients` counts this process's listeners. Fire and forget: a tick lost while Redis is
    // down is replaced by the next one, so a failed publish is dropped, never left unhandled.
    hub
      .publish({
        channel: DEFAULT_CHANNEL,
        data: JSON.stringify({ time: new Date().toISOString(), clients: hub.listenersOf(DEFAULT_CHANNEL) }),
      })
      .catch(() => {});
  });
}
