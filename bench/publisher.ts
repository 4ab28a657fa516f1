/**
 * Publishes benchmark events with `POST /publish` over raw keep-alive sockets, one request in
 * flight per socket. Each event's data starts with `t=<µs>`, the send time on the monotonic
 * clock, so subscribers can measure publish→receive latency; padding brings the frame to about
 * 120 bytes.
 */
import { connect, type Socket } from 'node:net';
import { nowMicros } from './sse-client.ts';

export interface PublishOptions {
  host: string;
  port: number;
  channel: string;
  /** Events to publish in all. */
  count: number;
  /** Sockets publishing at once. */
  concurrency: number;
  /** Events per second in all; absent means as fast as the server answers. */
  ratePerSecond?: number;
}

export interface PublishResult {
  published: number;
  failed: number;
  startedAt: number;
  finishedAt: number;
}

/** ~95 bytes of data: with `id: <13 digits>\n`, `data: ` and the blank line, a ~120 byte frame. */
function eventData(): string {
  const time = `t=${nowMicros()} `;
  return time + 'x'.repeat(95 - time.length);
}

/** One keep-alive connection that sends a request and waits for its whole response. */
class PublishSocket {
  readonly #socket: Socket;
  readonly #host: string;
  #buffer = '';
  #waiting: ((status: number) => void) | undefined;
  #fail: ((error: Error) => void) | undefined;

  constructor(host: string, port: number) {
    this.#host = `${host}:${port}`;
    this.#socket = connect({ host, port });
    this.#socket.setNoDelay(true);
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk.toString('latin1')));
    this.#socket.on('error', (error) => this.#fail?.(error));
    this.#socket.on('close', () => this.#fail?.(new Error('publish connection closed')));
  }

  post(path: string, body: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#waiting = resolve;
      this.#fail = reject;
      this.#socket.write(
        `POST ${path} HTTP/1.1\r\nHost: ${this.#host}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
  }

  #onData(text: string): void {
    this.#buffer += text;
    const end = this.#buffer.indexOf('\r\n\r\n');
    if (end === -1) return;
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(this.#buffer.slice(0, end))?.[1] ?? 0);
    if (this.#buffer.length < end + 4 + length) return;
    const status = Number(this.#buffer.slice(9, 12));
    this.#buffer = this.#buffer.slice(end + 4 + length);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    this.#fail = undefined;
    waiting?.(status);
  }

  close(): void {
    this.#socket.destroy();
  }
}

export async function publish(options: PublishOptions): Promise<PublishResult> {
  const sockets = Array.from({ length: options.concurrency }, () => new PublishSocket(options.host, options.port));
  const startedAt = nowMicros();
  let next = 0;
  let published = 0;
  let failed = 0;
  const interval = options.ratePerSecond ? 1e6 / options.ratePerSecond : 0;

  async function run(socket: PublishSocket): Promise<void> {
    while (next < options.count) {
      const index = next++;
      if (interval > 0) {
        const due = startedAt + index * interval;
        const wait = (due - nowMicros()) / 1000;
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      const body = JSON.stringify({ channel: options.channel, data: eventData() });
      const status = await socket.post('/publish', body);
      if (status === 202 || status === 200) published += 1;
      else failed += 1;
    }
  }

  try {
    await Promise.all(sockets.map(run));
  } finally {
    for (const socket of sockets) socket.close();
  }
  return { published, failed, startedAt, finishedAt: nowMicros() };
}
