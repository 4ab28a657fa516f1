/**
 * better-sse on `node:http`: every `/stream` request becomes a session registered with one
 * channel, and `POST /publish` broadcasts to it with an increasing event id, as its docs show.
 */
import { createServer } from 'node:http';
import { createChannel, createSession } from 'better-sse';
import { reportListening } from './control.ts';
import { readPublish } from './publish-body.ts';

const heartbeatMs = Number(process.env['HEARTBEAT_MS'] ?? 15_000);
const channel = createChannel();
let lastId = 0;

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url?.startsWith('/stream')) {
    createSession(req, res, { keepAlive: heartbeatMs, retry: 3000, serializer: (data) => String(data) }).then(
      (session) => channel.register(session),
      () => res.destroy(),
    );
  } else if (req.method === 'POST' && req.url === '/publish') {
    readPublish(req, res, (data) => {
      const id = String(++lastId);
      channel.broadcast(data, 'message', { eventId: id });
      return id;
    });
  } else {
    res.writeHead(404).end();
  }
});
server.listen(0, '127.0.0.1', () => reportListening(server));
