/**
 * The peers' `POST /publish`: reads a small JSON body `{channel, data}`, the same request our
 * server takes, so every server does the same parsing work per event.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export function readPublish(req: IncomingMessage, res: ServerResponse, onEvent: (data: string) => string): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let data: unknown;
    try {
      data = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data?: unknown }).data;
    } catch {
      data = undefined;
    }
    if (typeof data !== 'string') {
      res.writeHead(400, { 'Content-Type': 'application/json' }).end('{"error":"bad body"}');
      return;
    }
    const id = onEvent(data);
    const body = JSON.stringify({ id });
    res.writeHead(202, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
  });
}
