/**
 * What operators read: `GET /healthz` for a load balancer, `GET /metrics` for Prometheus (plain
 * text lines a scraper, or a person with curl, can read; counters only grow, gauges are a
 * reading of now). https://prometheus.io/docs/instrumenting/exposition_formats/
 *
 * The hub's figures come in through `HubReadings`, the few numbers this file needs, and the
 * other stores (orders) through `Availability`, so the HTTP layer never depends on the hub or
 * the demos built on top of it.
 */
import type { StreamRegistry } from '../sse/registry.ts';
import { sendJson } from './json.ts';
import type { Route } from './router.ts';

/** A store that can fail for a while: Redis out of reach, a disk full or read-only. */
export interface Availability {
  readonly available: boolean;
}

export interface HubReadings extends Availability {
  readonly subscriberCount: number;
  readonly channelCount: number;
  /** Undefined when history is not kept in this process (Redis). */
  readonly historyBytes: number | undefined;
  readonly replayBytesWaiting: number;
  readonly stats: { readonly published: number; readonly delivered: number; readonly resets: number };
}

function renderMetrics(streams: StreamRegistry, hub: HubReadings): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[string, number]>) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  metric('sse_open_connections', 'gauge', 'Event streams open now.', [['', streams.size]]);
  metric('sse_subscribers', 'gauge', 'Hub subscriptions now (one per /stream connection).', [['', hub.subscriberCount]]);
  metric('sse_channels', 'gauge', 'Channels the hub remembers now.', [['', hub.channelCount]]);
  if (hub.historyBytes !== undefined) {
    metric('sse_history_bytes', 'gauge', 'Bytes of replay history held in this process (at most HISTORY_MAX_BYTES).', [['', hub.historyBytes]]);
  }
  metric('sse_replay_bytes_waiting', 'gauge', 'Bytes of replays still waiting for their sockets (at most HISTORY_MAX_BYTES plus one replay).', [['', hub.replayBytesWaiting]]);
  metric('sse_events_published_total', 'counter', 'Events published to the hub.', [['', hub.stats.published]]);
  metric('sse_events_delivered_total', 'counter', 'Events written to subscribers (one per subscriber per event).', [['', hub.stats.delivered]]);
  metric('sse_replay_resets_total', 'counter', 'Reconnects whose Last-Event-ID history could not cover, answered with a reset event.', [['', hub.stats.resets]]);
  metric('sse_clients_dropped_total', 'counter', 'Clients disconnected by the server, by reason.', [
    ['{reason="slow"}', streams.closed.slow],
    ['{reason="stalled"}', streams.closed.stalled],
  ]);
  metric('sse_streams_closed_total', 'counter', 'Event streams that ended, by reason.', (
    Object.entries(streams.closed).map(([reason, count]) => [`{reason="${reason}"}`, count] as [string, number])
  ));
  // Named as Prometheus's own process collectors name it. Every bound in this server (bodies,
  // backlogs, history) is there to keep this from growing, so it is the one to alert on; the
  // runtime tests read it to check that each runtime keeps it so.
  metric('process_resident_memory_bytes', 'gauge', 'Resident memory of this process, in bytes.', [['', process.memoryUsage.rss()]]);
  return lines.join('\n') + '\n';
}

/** `stores` names what else /healthz answers for, e.g. `{ orders }`. */
export function operationsRoutes(streams: StreamRegistry, hub: HubReadings, stores: Record<string, Availability>): Route[] {
  return [
    {
      method: 'GET',
      path: '/healthz',
      // 200 even when degraded (Redis away, the disk full): open streams do fine meanwhile, and
      // a 503 would take the process out of a load balancer; with Redis, which every process
      // shares, it would take them all out at once. `unavailable` says what to look at.
      handle: (_req, res) => {
        const unavailable = Object.entries({ hub, ...stores }).filter(([, store]) => !store.available).map(([name]) => name);
        const status = unavailable.length === 0 ? { status: 'ok' } : { status: 'degraded', unavailable };
        sendJson(res, 200, { ...status, streams: streams.size });
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      handle: (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(renderMetrics(streams, hub));
      },
    },
  ];
}
