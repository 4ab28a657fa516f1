/**
 * The status monitor from the Flask-SSE tutorial: probe an HTTP endpoint, publish a
 * `response_status` event with its status and response time, and show it live.
 *
 * The target comes from configuration only (MONITOR_URL). A request can trigger a probe but
 * never choose what is probed: an endpoint that fetches a URL taken from the request is a
 * server-side request forgery hole, letting anyone make the server call its own network.
 */
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { runWhileListening } from './demo-timer.ts';
import { sendJson } from '../http/json.ts';
import type { Logger } from '../http/log.ts';
import type { Route } from '../http/router.ts';
import { DEFAULT_CHANNEL } from '../hub/channels.ts';
import type { PubSub } from '../hub/pubsub.ts';

/** One probe's outcome. `status` 0 means no HTTP answer at all; `error` then says why. */
export interface ProbeResult {
  status: number;
  /** Seconds from sending the request to receiving the response headers. */
  time: number;
  error?: string;
}

export interface MonitorOptions {
  hub: PubSub;
  /** What to probe; a function because the default (our own demo endpoint) is known only after listen. */
  target: () => URL;
  timeoutMs: number;
  intervalMs: number;
  logger: Logger;
}

export class StatusMonitor {
  readonly #options: MonitorOptions;
  readonly #stop: () => void;
  /** A probe under way; concurrent requests share it rather than each calling the target. */
  #inFlight: Promise<ProbeResult> | undefined;

  constructor(options: MonitorOptions) {
    this.#options = options;
    const job = { name: 'monitor', channel: DEFAULT_CHANNEL, intervalMs: options.intervalMs };
    this.#stop = runWhileListening(options.hub, job, () => this.probe(), options.logger);
  }

  /** Probes the target now (or joins the probe under way) and publishes the result. */
  probe(): Promise<ProbeResult> {
    this.#inFlight ??= this.#probeOnce().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  stop(): void {
    this.#stop();
  }

  async #probeOnce(): Promise<ProbeResult> {
    const started = performance.now();
    const seconds = () => Math.round(performance.now() - started) / 1000;
    let result: ProbeResult;
    try {
      const response = await get(this.#options.target(), this.#options.timeoutMs);
      result = { status: response.statusCode ?? 0, time: seconds() };
      // Only the status counts. The body could be endless (an event stream, say), so it is
      // not read: the connection is dropped with it.
      response.destroy();
    } catch (error) {
      result = { status: 0, time: seconds(), error: describeFailure(error) };
    }
    // The probe's answer stands even if it cannot be broadcast (Redis down): the caller of
    // /request_status still gets it, and the next probe is broadcast again.
    try {
      await this.#options.hub.publish({ channel: DEFAULT_CHANNEL, event: 'response_status', data: JSON.stringify(result) });
    } catch (error) {
      this.#options.logger('monitor.publish_failed', { error: String((error as Error)?.message ?? error) });
    }
    return result;
  }
}

/** Who is asking: some firewalls and APIs refuse a request that does not say. */
const PROBE_HEADERS = { 'User-Agent': 'sse-server status monitor', Accept: '*/*' };

/**
 * One GET to `url`, resolved when the status line and headers are in.
 *
 * `node:http`, not `fetch`: the server has it loaded already, while Node loads the engine
 * behind `fetch` (undici) on first use. Measured on Node 20, the first `fetch` took 12 MiB more
 * resident memory and about 25 ms more CPU than the first `http.get`, for a probe every few
 * seconds. `node:https` is loaded only for an https target, for the same reason (on Deno it
 * also needs `--allow-sys`, to read the system's certificate authorities). And `node:http`
 * never follows a redirect, so a redirect is reported as what it is.
 */
async function get(url: URL, timeoutMs: number): Promise<IncomingMessage> {
  const send = url.protocol === 'https:' ? (await import('node:https')).request : request;
  return new Promise((resolve, reject) => {
    send(url, { headers: PROBE_HEADERS, signal: AbortSignal.timeout(timeoutMs) }, resolve)
      .on('error', reject)
      // A 101 answer goes to 'upgrade', not to the callback; with no listener Node would close
      // the request with neither an answer nor an error, and the probe would never settle.
      .on('upgrade', (response: IncomingMessage, socket: Socket) => {
        socket.destroy();
        resolve(response);
      })
      // Anything else that ends the request without an answer settles the probe too. (After
      // an answer or an error this does nothing: a promise settles once.)
      .on('close', () => reject(new Error('The connection closed without an answer')))
      .end();
  });
}

/**
 * A short, safe reason for a failed probe, no internals: a timeout, the socket error code, or
 * failing those the error's kind (Deno's `NotCapable`: a permission it was not given).
 */
function describeFailure(error: unknown): string {
  const { code, cause, name } = (error ?? {}) as { code?: unknown; cause?: unknown; name?: unknown };
  // An aborted request fails with an AbortError whose cause is the signal's reason.
  if (cause instanceof DOMException && cause.name === 'TimeoutError') return 'timeout';
  if (typeof code === 'string') return code;
  return typeof name === 'string' && name !== 'Error' ? name : 'unreachable';
}

export function monitorRoutes(monitor: StatusMonitor): Route[] {
  return [
    // Probe now, publish, and answer with the same JSON.
    { method: 'GET', path: '/request_status', handle: async (_req, res) => sendJson(res, 200, await monitor.probe()) },
    { method: 'GET', path: '/demo/flaky', handle: (_req, res) => handleFlaky(res) },
  ];
}

/**
 * `GET /demo/flaky`: the default probe target, built to keep the panel lively: latency
 * between 20 and 800 ms, and one answer in ten a 503.
 */
function handleFlaky(res: ServerResponse): void {
  const delayMs = 20 + Math.round(780 * Math.random() ** 2);
  const timer = setTimeout(() => {
    if (Math.random() < 0.1) sendJson(res, 503, { error: 'Flaky demo endpoint: failing this time, on purpose' });
    else sendJson(res, 200, { ok: true, delayMs });
  }, delayMs);
  // A client that gives up should not leave a timer behind. (The response's 'close', not the
  // request's: a request "closes" as soon as its body has been read, which for a GET is now.)
  res.once('close', () => clearTimeout(timer));
}
