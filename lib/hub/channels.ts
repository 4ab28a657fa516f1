/**
 * Channel names, owned here once: which names a client may use, the default channel, and how
 * many one stream may follow. Routes and demos import them; none spells them again.
 */
import { HttpError } from '../http/json.ts';

/** Flask-SSE's default channel. */
export const DEFAULT_CHANNEL = 'sse';

/** Letters, digits, `_` and `-`: safe in a URL, a log line, and a Redis key. */
const CHANNEL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** A connection may follow this many channels at most: each one costs a lookup per event. */
export const MAX_CHANNELS_PER_STREAM = 16;

/** Throws 400 unless `name` is a valid public channel name. */
export function checkChannel(name: unknown, action: string): string {
  if (typeof name !== 'string' || !CHANNEL_NAME.test(name)) {
    throw new HttpError(400, `Cannot ${action}: channel ${JSON.stringify(name ?? null)} must match ${CHANNEL_NAME.source}`);
  }
  return name;
}
