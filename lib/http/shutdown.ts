/**
 * A graceful shutdown (Ctrl-C, a deploy's SIGTERM) loses nothing that was accepted:
 * 1. stop taking new connections and new writes (a POST now gets 503 with Retry-After);
 * 2. wait for the writes already accepted, so every event that got a 2xx reaches the streams;
 * 3. end every stream with a `retry:` hint, so browsers come back once we (or a peer) are up;
 * 4. give what is still open a bounded time, then cut it: a client that never reads must not
 *    hold a deploy hostage.
 */
import { EventEmitter, once } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { HttpError } from './json.ts';
import type { Logger } from './log.ts';

/** Counts the writes (POSTs) in progress, and refuses new ones once shutdown has begun. */
export class AcceptedWrites {
  #closing = false;
  #inFlight = 0;
  readonly #events = new EventEmitter();

  /** Call on every POST before its handler runs: counts it until its response is gone. */
  admit(req: IncomingMessage, res: ServerResponse): void {
    if (this.#closing) throw new HttpError(503, 'The server is shutting down; try again shortly', { 'Retry-After': '5' });
    this.#inFlight += 1;
    let counted = true;
    const done = () => {
      if (!counted) return;
      counted = false;
      this.#inFlight -= 1;
      if (this.#inFlight === 0) this.#events.emit('idle');
    };
    res.once('close', done);
    // A response queued behind another on a pipelined connection has no socket yet, and if
    // the connection dies before its turn, it never closes by itself.
    if (res.socket === null) req.socket.once('close', done);
  }

  /** Refuses writes from now on; resolves once those already admitted have been answered. */
  close(): Promise<void> {
    this.#closing = true;
    return this.#inFlight === 0 ? Promise.resolve() : once(this.#events, 'idle').then(() => undefined);
  }
}

export interface ShutdownSteps {
  server: Server;
  writes: AcceptedWrites;
  /** The bound on the whole wait; past it, open connections are cut. */
  timeoutMs: number;
  /** Stops whatever publishes on its own (demo timers), so nothing new starts. */
  stopProducers(): void;
  /** Resolves once accepted work is stored (an order saving to disk, say). */
  drain(): Promise<unknown>;
  /** Writes out what is pending and ends every stream with a `retry:` hint. */
  endStreams(): void;
}

export async function shutDownGracefully(steps: ShutdownSteps): Promise<void> {
  const { server } = steps;
  const writes = steps.writes.close();
  const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
  steps.stopProducers();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolveDeadline) => {
    timer = setTimeout(resolveDeadline, steps.timeoutMs);
  });
  await Promise.race([Promise.all([writes, steps.drain()]), deadline]);
  steps.endStreams();
  server.closeIdleConnections();
  await Promise.race([closed, deadline]);
  clearTimeout(timer);
  // Whatever is still open after the deadline (a client that never reads) is cut.
  server.closeAllConnections();
}

/**
 * Runs `stop` on Ctrl-C (SIGINT) or a service manager's SIGTERM, then exits. A second signal
 * while stopping means "now": it skips the graceful part.
 */
export function onStopSignal(logger: Logger, stop: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1);
    stopping = true;
    stop(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        logger('server.stop_failed', { error: String((error as Error)?.stack ?? error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
}
