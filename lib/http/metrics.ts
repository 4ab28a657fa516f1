/**
 * `GET /metrics` in the Prometheus text format: plain lines a scraper (or a person with curl)
 * can read. Counters only grow; gauges are a reading of now.
 * https://prometheus.io/docs/instrumenting/exposition_formats/
 */
import type { ServerResponse } from 'node:http';
import type { PubSub } from '../hub/pubsub.ts';
import type { StreamRegistry } from '../sse/registry.ts';

export function renderMetrics(streams: StreamRegistry, hub: PubSub): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[string, number]>) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  metric('sse_open_connections', 'gauge', 'Event streams open now.', [['', streams.size]]);
  metric('sse_subscribers', 'gauge', 'Hub subscriptions now (one per /stream connection).', [['', hub.subscriberCount]]);
  metric('sse_channels', 'gauge', 'Channels the hub remembers now.', [['', hub.channelCount]]);
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
  return lines.join('\n') + '\n';
}

export function handleMetrics(streams: StreamRegistry, hub: PubSub, res: ServerResponse): void {
  const text = renderMetrics(streams, hub);
  res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(text);
}
