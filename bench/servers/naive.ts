/**
 * The tutorial broadcaster: a Set of open responses, and for every event a `res.write` per
 * client. Ids are added (tutorials often skip them) so the benchmark can check order.
 */
import { createServer, type ServerResponse } from 'node:http';
import { reportListening } from './control.ts';
import { readPublish } from './publish-body.ts';

const heartbeatMs = Number(process.env['HEARTBEAT_MS'] ?? 15_000);
const clients = new Set<ServerResponse>();
let lastId = 0;

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url?.startsWith('/stream')) {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    res.write('retry: 3000\n\n');
    clients.add(res);
    req.on('close', () => clients.delete(res));
  } else if (req.method === 'POST' && req.url === '/publish') {
    readPublish(req, res, (data) => {
      const id = String(++lastId);
      for (const client of clients) client.write(`id: ${id}\ndata: ${data}\n\n`);
      return id;
    });
  } else {
    res.writeHead(404).end();
  }
});

// A heartbeat per tutorial: a comment to every client on a timer.
setInterval(() => {
  for (const client of clients) client.write(': heartbeat\n\n');
}, heartbeatMs).unref();
server.listen(0, '127.0.0.1', () => reportListening(server));
