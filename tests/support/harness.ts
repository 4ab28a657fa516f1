/**
 * What every test needs: a real server on a free port, and a real client that reads an event
 * stream through the spec decoder. Waiting is always for a thing, with a bound, never a sleep.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, type IncomingMessage } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createApp, type App, type AppOptions } from '../../server.ts';
import { silentLogger } from '../../lib/http/log.ts';
import { SseDecoder, type DecodedEvent } from './sse-decoder.ts';

export interface Running {
  app: App;
  url: URL;
  close(): Promise<void>;
}

/**
 * Starts a server on 127.0.0.1, on a port the OS picks, with its own fresh data directory.
 * The demo timers are off unless a test turns one on, so they never add events a test did not
 * ask for, and the per-address limits are out of reach: every test client shares 127.0.0.1,
 * and the limits have tests of their own.
 */
export async function startApp(options: AppOptions = {}): Promise<Running> {
  const app = createApp({
    port: 0,
    host: '127.0.0.1',
    logger: silentLogger,
    dataDir: mkdtempSync(join(tmpdir(), 'sse-test-')),
    tickMs: 0,
    monitorIntervalMs: 0,
    courierMs: 0,
    maxStreamsPerAddress: 1_000_000,
    postsPerMinute: 1_000_000,
    ...options,
  });
  const url = await app.listen();
  return {
    app,
    url,
    async close() {
      app.server.closeAllConnections();
      await new Promise<void>((resolve) => app.server.close(() => resolve()));
    },
  };
}

/** Resolves when `predicate` holds, checking on every `emitter` event; rejects after `ms`. */
export async function until(
  emitter: EventEmitter,
  eventName: string,
  predicate: () => boolean,
  ms = 5000,
): Promise<void> {
  const signal = AbortSignal.timeout(ms);
  while (!predicate()) {
    await once(emitter, eventName, { signal });
  }
}

/**
 * Collects garbage now, so that memory readings show what is still held rather than what is
 * waiting to be collected. (node:test runs each file in a process of its own, so the flag
 * stays there.)
 */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Polls a condition that has no event to wait on (counts inside the server), with a bound. */
export async function eventually(predicate: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A raw HTTP client for an event stream: every byte is kept, and events are decoded by the spec. */
export class StreamClient extends EventEmitter {
  readonly events: DecodedEvent[] = [];
  readonly decoder = new SseDecoder();
  raw = '';
  ended = false;
  response!: IncomingMessage;
  readonly #request;

  constructor(url: URL | string, headers: Record<string, string> = {}) {
    super();
    this.#request = request(url, { headers: { Accept: 'text/event-stream', ...headers } });
    this.#request.on('error', () => {
      this.ended = true;
      this.emit('change');
    });
    this.#request.on('response', (response) => {
      this.response = response;
      this.emit('response', response);
      response.on('data', (chunk: Buffer) => {
        this.raw += chunk.toString('utf8');
        this.events.push(...this.decoder.push(chunk));
        this.emit('change');
      });
      response.on('close', () => {
        this.ended = true;
        this.emit('change');
      });
    });
    this.#request.end();
  }

  /** Resolves with the response once its headers arrive. */
  async opened(ms = 5000): Promise<IncomingMessage> {
    if (this.response) return this.response;
    const [response] = (await once(this, 'response', { signal: AbortSignal.timeout(ms) })) as [IncomingMessage];
    return response;
  }

  /**
   * Waits for the stream's first frame: an event, or the id-only frame a new subscriber gets.
   * From then on the server has it subscribed (headers alone do not say so: with Redis, the
   * subscription's starting point is still being read when they are sent).
   */
  async live(ms = 10_000): Promise<void> {
    await until(this, 'change', () => /(^|\n)id: \d+\n/.test(this.raw) || this.events.length > 0 || this.ended, ms);
    if (this.ended && this.events.length === 0) throw new Error(`Stream ended before its first frame: ${JSON.stringify(this.raw)}`);
  }

  /** Waits until at least `count` events have arrived. */
  async waitForEvents(count: number, ms = 5000): Promise<DecodedEvent[]> {
    await until(this, 'change', () => this.events.length >= count || this.ended, ms);
    if (this.events.length < count) throw new Error(`Stream ended after ${this.events.length} of ${count} events`);
    return this.events;
  }

  /** Waits until the server ends the response. */
  async waitForEnd(ms = 5000): Promise<void> {
    await until(this, 'change', () => this.ended, ms);
  }

  /** Hangs up abruptly, as a closed browser tab does. */
  abort(): void {
    this.#request.destroy();
  }
}

/** A response's JSON body, loosely typed for assertions. */
export async function jsonBody(response: Response): Promise<Record<string, any>> {
  return (await response.json()) as Record<string, any>;
}

/** POSTs `body` to `url` as JSON, or as a form when it is text already encoded (as the chat page sends it). */
export function post(url: URL, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const isForm = typeof body === 'string';
  return fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': isForm ? 'application/x-www-form-urlencoded' : 'application/json', ...headers },
    body: isForm ? body : JSON.stringify(body),
  });
}

/** POSTs like `post` and returns the id the server gave what it accepted; fails unless the answer is 202. */
export async function postAccepted(url: URL, body: unknown): Promise<string> {
  const response = await post(url, body);
  const answer = await jsonBody(response);
  assert.equal(response.status, 202, `${url.pathname} answered ${response.status}: ${answer['error']}`);
  return answer['id'] as string;
}

/** The headers every event stream carries (lib/sse/stream.ts says why each one is there). */
export function assertStreamHeaders(response: IncomingMessage): void {
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(response.headers['cache-control'], 'no-cache, no-transform');
  assert.equal(response.headers['x-accel-buffering'], 'no');
  assert.equal(response.headers['connection'], 'keep-alive');
  assert.equal(response.headers['content-length'], undefined);
  assert.equal(response.headers['content-encoding'], undefined);
}
