/**
 * A load-generator process, driven by the runner over IPC. It holds subscriber connections
 * (spread over many 127.x source addresses, so ephemeral ports never run out) and publishes;
 * the runner starts several of these, all pinned to the load core.
 */
import { LatencyHistogram } from './histogram.ts';
import { publish, type PublishOptions } from './publisher.ts';
import { SseClient } from './sse-client.ts';

export type WorkerCommand =
  | { type: 'connect'; host: string; port: number; path: string; count: number; localAddresses: string[]; latency: boolean }
  | { type: 'stats'; expect: number }
  | { type: 'reset' }
  | { type: 'publish'; options: PublishOptions }
  | { type: 'close' };

/** How many connects a worker keeps in flight: enough for speed, few enough for the SYN queue. */
const CONNECTS_IN_FLIGHT = 128;

const clients: SseClient[] = [];
const latency = new LatencyHistogram();

function reply(message: unknown): void {
  process.send!(message);
}

async function connectAll(command: Extract<WorkerCommand, { type: 'connect' }>): Promise<void> {
  let next = 0;
  let failed = 0;
  const started = performance.now();
  async function opener(): Promise<void> {
    while (next < command.count) {
      const index = next++;
      const client = new SseClient({
        host: command.host,
        port: command.port,
        path: command.path,
        localAddress: command.localAddresses[index % command.localAddresses.length],
        latency: command.latency ? latency : undefined,
      });
      clients.push(client);
      try {
        await client.ready;
      } catch {
        failed += 1;
      }
    }
  }
  await Promise.all(Array.from({ length: CONNECTS_IN_FLIGHT }, opener));
  reply({ type: 'connected', failed, ms: performance.now() - started });
}

function stats(expect: number): void {
  let events = 0;
  let outOfOrder = 0;
  let lost = 0;
  let complete = 0;
  let errors = 0;
  let minComments = Number.POSITIVE_INFINITY;
  let lastEventAt = 0;
  const errorSamples = new Set<string>();
  for (const client of clients) {
    events += client.events;
    outOfOrder += client.outOfOrder;
    if (client.events >= expect) complete += 1;
    else lost += expect - client.events;
    if (client.error !== undefined) {
      errors += 1;
      if (errorSamples.size < 3) errorSamples.add(client.error);
    }
    minComments = Math.min(minComments, client.comments);
    if (client.lastEventAt > lastEventAt) lastEventAt = client.lastEventAt;
  }
  reply({
    type: 'stats',
    connections: clients.length,
    events,
    outOfOrder,
    lost,
    complete,
    errors,
    errorSamples: [...errorSamples],
    minComments: clients.length > 0 ? minComments : 0,
    lastEventAt,
    latency: latency.count > 0 ? latency.snapshot() : undefined,
    cpuMicros: process.cpuUsage().user + process.cpuUsage().system,
  });
}

process.on('message', (command: WorkerCommand) => {
  switch (command.type) {
    case 'connect':
      void connectAll(command);
      break;
    case 'stats':
      stats(command.expect);
      break;
    case 'reset':
      for (const client of clients) {
        client.events = 0;
        client.outOfOrder = 0;
        client.comments = 0;
      }
      latency.reset();
      reply({ type: 'reset' });
      break;
    case 'publish':
      publish(command.options).then(
        (result) => reply({ type: 'published', ...result }),
        (error: unknown) => reply({ type: 'published', published: 0, failed: command.options.count, error: String(error) }),
      );
      break;
    case 'close':
      for (const client of clients) client.close();
      process.exit(0);
  }
});

// The runner going away (even by a crash) ends this worker too.
process.on('disconnect', () => process.exit(0));
