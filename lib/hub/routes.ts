/**
 * The HTTP face of the hub:
 * - `GET /stream?channel=a&channel=b` follows channels, resuming after `Last-Event-ID`;
 * - `POST /publish` puts an event on a channel (publishers only);
 * - `POST /messages` is the public channel chat from the Flask-SSE tutorial.
 * Everything is validated before the stream opens or the event is stored, so a bad request
 * gets a 4xx and changes nothing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, readFields, sendJson } from '../http/json.ts';
import { rateLimited } from '../http/rate-limit.ts';
import type { Route, RouteContext } from '../http/router.ts';
import type { PubSub } from './pubsub.ts';
import { checkChannel, DEFAULT_CHANNEL, MAX_CHANNELS_PER_STREAM } from './channels.ts';
import { parseLastEventId } from './event-ids.ts';

export interface HubContext extends RouteContext {
  hub: PubSub;
}

export function hubRoutes(context: HubContext): Route[] {
  return [
    { method: 'GET', path: '/stream', handle: (req, res, url) => handleStream(context, req, res, url) },
    { method: 'POST', path: '/publish', handle: (req, res) => handlePublish(context, req, res) },
    {
      method: 'POST',
      path: '/messages',
      handle: rateLimited(context.postsPerMinute, 'send messages', context.clientAddress, (req, res) => handleMessages(context, req, res)),
    },
  ];
}

function handleStream(context: HubContext, req: IncomingMessage, res: ServerResponse, url: URL): void {
  const requested = url.searchParams.getAll('channel');
  const channels = [...new Set(requested.length > 0 ? requested : [DEFAULT_CHANNEL])];
  if (channels.length > MAX_CHANNELS_PER_STREAM) {
    throw new HttpError(400, `Cannot subscribe: at most ${MAX_CHANNELS_PER_STREAM} channels per stream, not ${channels.length}`);
  }
  for (const channel of channels) checkChannel(channel, 'subscribe');
  const lastId = parseLastEventId(req, url);

  const stream = context.openStream(req, res);
  context.hub.subscribe(stream, { channels, lastEventId: lastId });
  stream.onClose(context.hub.unsubscribe);
}

async function handlePublish(context: HubContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  context.requirePublisher(req);
  const body = await readFields(req, context.maxBodyBytes);
  const channel = checkChannel(body['channel'], 'publish');
  const { event, data } = body;
  if (event !== undefined && typeof event !== 'string') {
    throw new HttpError(400, 'Cannot publish: event must be a string');
  }
  if (data === undefined) throw new HttpError(400, 'Cannot publish: data is required');
  // A string goes out as it is; any other JSON value goes out as JSON text.
  const text = typeof data === 'string' ? data : JSON.stringify(data);
  const published = await context.hub.publish({ channel, event, data: text });
  sendJson(res, 202, { id: String(published.id) });
}

/** The chat's message limit, counted in characters (code points), not UTF-16 units or bytes. */
const MAX_MESSAGE_CHARACTERS = 2000;

async function handleMessages(context: HubContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readFields(req, context.maxBodyBytes, { form: true });
  const channel = checkChannel(body['channel'], 'send a message');
  const message = body['message'];
  const length = typeof message === 'string' ? [...message].length : 0;
  if (typeof message !== 'string' || length < 1 || length > MAX_MESSAGE_CHARACTERS) {
    throw new HttpError(400, `Cannot send a message: message must be text of 1 to ${MAX_MESSAGE_CHARACTERS} characters`);
  }
  // The channel rides along so a page following several channels on one stream can tell them
  // apart. `public`: anyone wrote this, so it draws on the public's share of history.
  const published = await context.hub.publish({ channel, event: 'social', data: JSON.stringify({ channel, message }), public: true });
  sendJson(res, 202, { id: String(published.id) });
}
