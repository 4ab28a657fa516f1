/**
 * Resuming, and ending for good: the part of the protocol that spans connections.
 *
 * - **Resume.** Every event may carry an `id:`. The browser remembers the last one it saw,
 *   and when the connection drops it waits `retry:` milliseconds, reconnects by itself and
 *   sends that id back as the `Last-Event-ID` request header. The server sends what came after
 *   it, then carries on live: nothing is lost across a reconnect.
 * - **Reset.** A server that can no longer replay from that id (its history is too short, or
 *   the id is from before a crash) must not skip ahead silently: it says so with an event the
 *   client understands, and the client refetches its state. The hub's `reset` event is this.
 * - **Ending for good.** A stream that simply ends makes the browser reconnect, forever. To
 *   stop it, answer the reconnect with anything but 200 (or with the wrong Content-Type; a
 *   redirect is followed, not counted): the browser then closes the `EventSource` and never
 *   retries. 204 No Content is the clean way to say "nothing more"; a 4xx or 503 stops it
 *   too, so refuse with care.
 *
 * Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#processing-model
 */
import type { IncomingMessage } from 'node:http';

/**
 * The id the client saw last, if it says. Browsers send the `Last-Event-ID` header when they
 * reconnect; clients that cannot set headers (a first `EventSource` connection, for one) may
 * pass `?lastEventId=` instead. The header wins when both are present. What the id means is
 * the route's business: a sentence number, or a position in the hub's history.
 */
export function lastEventId(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers['last-event-id'];
  if (header !== undefined) return Array.isArray(header) ? header.join(', ') : header;
  return url.searchParams.get('lastEventId') ?? undefined;
}
