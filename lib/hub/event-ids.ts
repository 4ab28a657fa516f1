/**
 * What a `Last-Event-ID` means to the hub: a position in its one id space, sent by a client
 * that reconnects (lib/sse/resume.ts reads the header or `?lastEventId=`).
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../http/json.ts';
import { lastEventId } from '../sse/resume.ts';

/**
 * Parses `Last-Event-ID` for the hub: absent or empty means "new client"; anything but a
 * whole number is refused, because no id this server ever sent looks like that.
 */
export function parseLastEventId(req: IncomingMessage, url: URL): number | undefined {
  const text = lastEventId(req, url);
  if (text === undefined || text === '') return undefined;
  if (!/^\d{1,15}$/.test(text)) {
    throw new HttpError(400, `Last-Event-ID must be an event id this server sent, not ${JSON.stringify(text.slice(0, 100))}`);
  }
  return Number(text);
}
