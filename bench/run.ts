/**
 * `npm run bench [-- --quick] [-- --runs N] [-- --only W2] [-- --servers ours,go] [-- --profile] [-- --node-flags "..."]`:
 * runs every workload against every server that can run here (./server-process.ts: ours, the
 * peers, and ours again under each runtime of tests/runtimes/), each its own process pinned
 * to core 1, with the load generator pinned to core 0, and writes the
 * medians to bench/RESULTS.md and a chart of them to bench/RESULTS.svg (a full run), or prints
 * them (--quick).
 *
 * Everything talks to 127.0.0.0/8 only, every wait is bounded, and every process it starts
 * ends with it.
 */
import { execFileSync, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { chartSvg } from './chart.ts';
import { NGINX } from './servers/nchan/config.ts';
import { percentiles, type HistogramSnapshot } from './histogram.ts';
import type { PublishResult } from './publisher.ts';
import type { WorkerCommand } from './load-worker.ts';
import { ALL_SERVERS, cpuSeconds, goLoadWorker, isOurs, nchanMissing, nextMessage, prepareGo, rssBytes, runtimeOf, startServer, type RunningServer, type ServerKind } from './server-process.ts';
import { NODE_FLAGS } from '../tests/support/server-process.ts';

const here = new URL('.', import.meta.url).pathname;
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const profile = args.includes('--profile');
const option = (name: string): string | undefined => {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
};
const runs = Number(option('--runs') ?? (quick ? 1 : 3));
const only = option('--only')?.split(',');
const onlyServers = option('--servers')?.split(',');
const outFile = option('--out') ?? (quick ? undefined : `${here}RESULTS.md`);
/** Node flags for ours on top of `npm start`'s, to measure one before adopting it: `--node-flags "--max-old-space-size=2000"`. */
const nodeFlags = option('--node-flags')?.split(' ').filter((flag) => flag !== '') ?? [];

// ---------------------------------------------------------------------------------------------
// Pinning and file limits: re-run this script under `ulimit -n <hard>` and `taskset -c 0`.
// ---------------------------------------------------------------------------------------------

const hasTaskset = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return true;
  } catch {
    return false;
  }
})();

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/** The servers this run measures (chosen in `main`): every one that can run here, or those `--servers` names. */
let SERVERS: ServerKind[] = [];

function chooseServers(): ServerKind[] {
  return ALL_SERVERS.filter((kind) => {
    if (onlyServers !== undefined && !onlyServers.includes(kind)) return false;
    const missing = kind === 'go' ? prepareGo() : kind === 'nchan' ? nchanMissing() : runtimeOf(kind).missing;
    if (missing !== undefined) console.log(`skipping ${kind}: ${missing}`);
    return missing === undefined;
  });
}

/** The servers in the peer tables: ours as deployed (compiled) and the peers; the runtimes get a table of their own. */
const peerTableServers = () => SERVERS.filter((kind) => kind === 'ours' || !isOurs(kind));

function launch(kind: ServerKind, env: Record<string, string> = {}): Promise<RunningServer> {
  return startServer(kind, { env, pin: hasTaskset, profileDir: profile ? `${here}profiles` : undefined, nodeFlags });
}

interface WorkerStats {
  connections: number;
  events: number;
  outOfOrder: number;
  lost: number;
  complete: number;
  errors: number;
  errorSamples: string[];
  minComments: number;
  lastEventAt: number;
  latency?: HistogramSnapshot;
  cpuMicros: number;
}

/**
 * Which load worker the run uses: the Go one (./load-go/worker.go) when Go is here, since the
 * Node one (./load-worker.ts) costs about half as much again per event received (7.5 µs against
 * 5 µs) and saturates the load core at 10,000 subscribers; `--load node` asks for the Node one. Both speak the same IPC.
 */
let loadKind: 'go' | 'node' = 'node';

function chooseLoad(): 'go' | 'node' {
  if (option('--load') === 'node') return 'node';
  const missing = prepareGo();
  if (missing !== undefined) console.log(`load generator: Node (the Go one needs go: ${missing})`);
  return missing === undefined ? 'go' : 'node';
}

class LoadGenerator {
  readonly workers: ChildProcess[];

  constructor(count: number) {
    const goWorker = goLoadWorker();
    this.workers = Array.from({ length: count }, () =>
      loadKind === 'go' && goWorker !== undefined
        ? spawn(goWorker, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
        : fork(`${here}load-worker.ts`, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
  }

  #ask<T>(worker: ChildProcess, command: WorkerCommand, reply: string, timeoutMs?: number): Promise<T> {
    const answer = nextMessage<T>(worker, reply, timeoutMs);
    worker.send(command);
    return answer;
  }

  /** Opens `count` streams spread over the workers; resolves with the failures and the time taken. */
  async connect(server: RunningServer, count: number, latency = false): Promise<{ failed: number; seconds: number }> {
    const started = performance.now();
    const results = await Promise.all(
      this.workers.map((worker, index) => {
        const share = Math.floor(count / this.workers.length) + (index < count % this.workers.length ? 1 : 0);
        // 250 source addresses per worker, so no (source, destination) pair runs out of ports.
        const localAddresses = Array.from({ length: 250 }, (_, host) => `127.0.${index + 1}.${host + 1}`);
        return this.#ask<{ failed: number }>(
          worker,
          { type: 'connect', host: '127.0.0.1', port: server.port, path: '/stream?channel=bench', count: share, localAddresses, latency },
          'connected',
        );
      }),
    );
    return { failed: results.reduce((sum, result) => sum + result.failed, 0), seconds: (performance.now() - started) / 1000 };
  }

  async stats(expect: number): Promise<WorkerStats> {
    const all = await Promise.all(this.workers.map((worker) => this.#ask<WorkerStats>(worker, { type: 'stats', expect }, 'stats')));
    return {
      connections: sum(all.map((s) => s.connections)),
      events: sum(all.map((s) => s.events)),
      outOfOrder: sum(all.map((s) => s.outOfOrder)),
      lost: sum(all.map((s) => s.lost)),
      complete: sum(all.map((s) => s.complete)),
      errors: sum(all.map((s) => s.errors)),
      errorSamples: all.flatMap((s) => s.errorSamples).slice(0, 3),
      minComments: Math.min(...all.map((s) => s.minComments)),
      lastEventAt: Math.max(...all.map((s) => s.lastEventAt)),
      latency: undefined,
      cpuMicros: sum(all.map((s) => s.cpuMicros)),
      ...{ latencies: all.map((s) => s.latency).filter((s): s is HistogramSnapshot => s !== undefined) },
    };
  }

  async reset(): Promise<void> {
    await Promise.all(this.workers.map((worker) => this.#ask(worker, { type: 'reset' }, 'reset')));
  }

  /** Publishes from the first worker (the load core is shared anyway), on `concurrency` sockets. */
  publish(
    server: RunningServer,
    count: number,
    { concurrency = 16, ratePerSecond }: { concurrency?: number; ratePerSecond?: number } = {},
  ): Promise<PublishResult & { error?: string }> {
    return this.#ask(
      this.workers[0]!,
      { type: 'publish', options: { host: '127.0.0.1', port: server.port, channel: 'bench', count, concurrency, ratePerSecond } },
      'published',
      300_000,
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map((worker) => {
        const exited = new Promise((resolve) => worker.once('exit', resolve));
        worker.send({ type: 'close' });
        return exited;
      }),
    );
  }
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Worker processes: enough that no one process holds more than ~5k sockets. */
function workersFor(connections: number): number {
  return Math.max(1, Math.min(4, Math.ceil(connections / 5000)));
}

// ---------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------

type Metrics = Record<string, number>;

/**
 * W1: idle connections: memory per connection, and how fast streams open (and at what CPU).
 * With `warmUp`, that many streams are opened and closed first: a fresh server on a JIT
 * runtime runs its connect path in the interpreter while it compiles it, and the warm figure
 * is what a server that has been up a while pays (a server compiled ahead of time, Go or
 * nginx, has no such start, so its two figures differ only by noise).
 */
async function idle(kind: ServerKind, connections: number, warmUp = 0): Promise<Metrics> {
  const server = await launch(kind);
  const load = new LoadGenerator(workersFor(connections));
  try {
    if (warmUp > 0) {
      const warming = new LoadGenerator(1);
      await warming.connect(server, warmUp);
      // The worker exits, and with it every socket it held; a second is ample for the server
      // to close those streams before the measured ones begin.
      await warming.close();
      await delay(1000);
    }
    await delay(300);
    await server.collectGarbage();
    const before = rssBytes(server.pid);
    const serverBefore = cpuSeconds(server.pid);
    const loadBefore = await load.stats(0);
    const { failed, seconds } = await load.connect(server, connections);
    const serverCpu = cpuSeconds(server.pid) - serverBefore;
    const loadCpu = ((await load.stats(0)).cpuMicros - loadBefore.cpuMicros) / 1e6;
    await delay(500);
    await server.collectGarbage();
    const after = rssBytes(server.pid);
    const stats = await load.stats(0);
    return {
      rssPerConnection: (after - before) / connections,
      connectPerSecond: connections / seconds,
      serverMicrosPerConnect: (serverCpu * 1e6) / connections,
      loadCpu,
      loadBusy: loadCpu / seconds,
      failed: Math.max(failed, stats.errors),
    };
  } finally {
    await load.close();
    await server.stop();
  }
}

/**
 * W2 and W5: fan-out: publish `events` as fast as the server takes them, on `publishers`
 * keep-alive sockets at once (one: each publish waits for the previous 202), and wait until
 * every subscriber has every event.
 */
async function fanOut(kind: ServerKind, subscribers: number, events: number, publishers: number): Promise<Metrics> {
  const server = await launch(kind);
  const load = new LoadGenerator(workersFor(subscribers));
  try {
    const { failed } = await load.connect(server, subscribers);
    await load.reset();
    const loadBefore = await load.stats(0);
    const serverBefore = cpuSeconds(server.pid);
    const published = await load.publish(server, events, { concurrency: publishers });
    if (published.error !== undefined) console.error(`  ${kind} publish failed: ${published.error}`);
    const expected = subscribers * published.published;
    let stats = await load.stats(published.published);
    let lastProgress = performance.now();
    let lastEvents = stats.events;
    // Until every subscriber has every event, or nothing moved for 5 s.
    while (stats.events < expected && performance.now() - lastProgress < 5000) {
      await delay(100);
      stats = await load.stats(published.published);
      if (stats.events > lastEvents) {
        lastEvents = stats.events;
        lastProgress = performance.now();
      }
    }
    const seconds = (stats.lastEventAt - published.startedAt) / 1e6;
    const serverCpu = cpuSeconds(server.pid) - serverBefore;
    const loadCpu = (stats.cpuMicros - loadBefore.cpuMicros) / 1e6;
    return {
      deliveriesPerSecond: stats.events / seconds,
      publishPerSecond: published.published / ((published.finishedAt - published.startedAt) / 1e6),
      lost: stats.lost + subscribers * published.failed,
      outOfOrder: stats.outOfOrder,
      errors: Math.max(failed, stats.errors),
      serverCpu,
      serverMicrosPerDelivery: (serverCpu * 1e6) / Math.max(1, stats.events),
      loadCpu,
      loadBusy: loadCpu / seconds,
      seconds,
    };
  } finally {
    await load.close();
    await server.stop();
  }
}

/** W3: latency at a fixed publish rate. */
async function latency(kind: ServerKind, subscribers: number, seconds: number): Promise<Metrics> {
  const server = await launch(kind);
  const load = new LoadGenerator(workersFor(subscribers));
  const rate = 10;
  try {
    const { failed } = await load.connect(server, subscribers, true);
    // Warm up (JIT, buffers), then measure from a clean slate.
    await load.publish(server, 5, { ratePerSecond: rate });
    await delay(500);
    await load.reset();
    const serverBefore = cpuSeconds(server.pid);
    const loadBefore = await load.stats(0);
    const published = await load.publish(server, rate * seconds, { ratePerSecond: rate });
    let stats = await load.stats(published.published);
    for (let waited = 0; stats.events < subscribers * published.published && waited < (quick ? 2000 : 5000); waited += 100) {
      await delay(100);
      stats = await load.stats(published.published);
    }
    const { p50, p99, max, count } = percentiles((stats as unknown as { latencies: HistogramSnapshot[] }).latencies);
    return {
      p50,
      p99,
      max,
      samples: count,
      lost: stats.lost,
      outOfOrder: stats.outOfOrder,
      errors: Math.max(failed, stats.errors),
      serverCpu: cpuSeconds(server.pid) - serverBefore,
      loadCpu: (stats.cpuMicros - loadBefore.cpuMicros) / 1e6,
    };
  } finally {
    await load.close();
    await server.stop();
  }
}

/** The most connections one process may hold here: its file limit, less room for the rest. */
function connectionCeiling(): number {
  const limit = Number(execFileSync('/bin/sh', ['-c', 'ulimit -n']).toString().trim());
  return Number.isFinite(limit) ? limit - 64 : 20_000;
}

/** W4: many connections held, heartbeats flowing. */
async function hold(kind: ServerKind, wanted: number, seconds: number): Promise<Metrics> {
  const heartbeatMs = 1000;
  const connections = Math.min(wanted, connectionCeiling());
  const server = await launch(kind, { HEARTBEAT_MS: String(heartbeatMs) });
  const load = new LoadGenerator(4);
  try {
    const serverBefore = cpuSeconds(server.pid);
    const { failed, seconds: connectSeconds } = await load.connect(server, connections);
    await load.reset();
    await delay(seconds * 1000);
    const stats = await load.stats(0);
    if (stats.errors > 0) console.error(`  ${kind} W4 errors:`, stats.errorSamples);
    return {
      connections,
      held: stats.connections - stats.errors,
      minHeartbeats: stats.minComments,
      expectedHeartbeats: Math.floor((seconds * 1000) / heartbeatMs) - 1,
      errors: Math.max(failed, stats.errors),
      connectPerSecond: connections / connectSeconds,
      rssMiB: rssBytes(server.pid) / 2 ** 20,
      serverCpu: cpuSeconds(server.pid) - serverBefore,
    };
  } finally {
    await load.close();
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Runner and report
// ---------------------------------------------------------------------------------------------

type Workload = 'W1' | 'W2' | 'W3' | 'W4' | 'W5';

interface Case {
  id: string;
  workload: Workload;
  label: string;
  /** The number of subscribers or connections: the chart's x axis. */
  size: number;
  servers: ServerKind[];
  run(kind: ServerKind): Promise<Metrics>;
}

function cases(): Case[] {
  const list: Case[] = [];
  const label = (n: number, rest: string) => `${n.toLocaleString('en')} ${rest}`;
  // --quick keeps the levels the floors are judged at (and fewer events per level), to stay near 3 minutes.
  for (const n of quick ? [10_000] : [1000, 10_000]) {
    list.push({ id: `W1-${n}`, workload: 'W1', label: label(n, 'idle'), size: n, servers: SERVERS, run: (kind) => idle(kind, n) });
  }
  // The floors are judged on a fresh server (above); this says how much of that is warming up.
  if (!quick) {
    list.push({ id: 'W1-10000-warm', workload: 'W1', label: '10,000 idle, after 2,000 opened and closed', size: 10_000, servers: SERVERS, run: (kind) => idle(kind, 10_000, 2000) });
  }
  // nchan has its own publish API and ids (servers/nchan/config.ts): idle and held streams only.
  const publishable = SERVERS.filter((kind) => kind !== 'nchan');
  const fanOutEvents: Record<number, number> = quick ? { 100: 500, 1000: 150, 10_000: 20 } : { 100: 5000, 1000: 1500, 10_000: 200 };
  for (const n of [100, 1000, 10_000]) {
    const k = fanOutEvents[n]!;
    list.push({ id: `W2-${n}`, workload: 'W2', label: label(n, `subs × ${k} events`), size: n, servers: publishable, run: (kind) => fanOut(kind, n, k, 16) });
  }
  const lockstepEvents: Record<number, number> = quick ? { 100: 1000, 1000: 200, 10_000: 30 } : { 100: 5000, 1000: 1000, 10_000: 100 };
  for (const n of [100, 1000, 10_000]) {
    const k = lockstepEvents[n]!;
    list.push({ id: `W5-${n}`, workload: 'W5', label: label(n, `subs × ${k} events`), size: n, servers: publishable, run: (kind) => fanOut(kind, n, k, 1) });
  }
  const latencySeconds = quick ? 2 : 10;
  for (const n of quick ? [10_000] : [1000, 10_000]) {
    list.push({ id: `W3-${n}`, workload: 'W3', label: label(n, `subs, 10 ev/s × ${latencySeconds} s`), size: n, servers: publishable, run: (kind) => latency(kind, n, latencySeconds) });
  }
  const holdSeconds = quick ? 5 : 15;
  const holders = SERVERS.filter((kind) => isOurs(kind) || kind === 'go' || kind === 'nchan');
  list.push({ id: 'W4-20000', workload: 'W4', label: `20,000 held ${holdSeconds} s, heartbeat 1 s`, size: 20_000, servers: holders, run: (kind) => hold(kind, 20_000, holdSeconds) });
  return list.filter((entry) => only === undefined || only.some((prefix) => entry.id.startsWith(prefix)));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

type Results = Map<string, Map<ServerKind, Metrics[]>>;

function medianOf(results: Results, caseId: string, kind: ServerKind, metric: string): number | undefined {
  const samples = results.get(caseId)?.get(kind);
  if (!samples || samples.length === 0) return undefined;
  return median(samples.map((sample) => sample[metric]!));
}

async function main(): Promise<void> {
  if (profile) mkdirSync(`${here}profiles`, { recursive: true });
  SERVERS = chooseServers();
  loadKind = chooseLoad();
  const started = Date.now();
  const results: Results = new Map();
  const list = cases();
  for (let run = 1; run <= runs; run++) {
    for (const entry of list) {
      for (const kind of entry.servers) {
        const metrics = await entry.run(kind);
        const perServer = results.get(entry.id) ?? new Map<ServerKind, Metrics[]>();
        perServer.set(kind, [...(perServer.get(kind) ?? []), metrics]);
        results.set(entry.id, perServer);
        console.log(`run ${run}/${runs} ${entry.id} ${kind}: ${JSON.stringify(metrics, (_key, value: unknown) => (typeof value === 'number' ? Math.round(value * 100) / 100 : value))}`);
      }
    }
  }
  const report = render(results, list, (Date.now() - started) / 1000);
  console.log('\n' + report);
  if (outFile) {
    writeFileSync(outFile, report);
    console.log(`written to ${outFile}`);
    const chartFile = outFile.replace(/\.md$/, '') + '.svg';
    writeFileSync(chartFile, chart(results, list));
    console.log(`chart written to ${chartFile}`);
  }
}

const number = (value: number | undefined, digits = 0): string =>
  value === undefined ? '–' : value.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ratio = (ours: number | undefined, peer: number | undefined, lowerIsBetter = false): string => {
  if (ours === undefined || peer === undefined || ours === 0 || peer === 0) return '–';
  return `${(lowerIsBetter ? peer / ours : ours / peer).toFixed(2)}×`;
};

function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const os = existsSync('/etc/os-release') ? (/PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '') : '';
  return `${cpu}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${release()}${os ? ` (${os})` : ''}, Node ${process.version}`;
}

const SERVER_NOTES: Record<ServerKind, string> = {
  ours: '**ours** (`createApp` from server.ts, compiled by `npm run build`, as `npm run start:dist` runs it)',
  'ours-tsx': '**ours-tsx** (the same source under tsx, as `npm start` runs it)',
  go: `**go**: net/http from the standard library (${goVersion()}), a goroutine and a buffered channel per subscriber, framed once, \`Flush\` per event (\`servers/go/hub.go\`)`,
  nchan: `**nchan**: nginx ${nginxVersion()} with its nchan module (C), one process, EventSource subscribers with a heartbeat comment (\`servers/nchan/config.ts\`); in W1 and W4 only, as its publish API and ids are its own`,
  'better-sse': '**better-sse** 0.16 (one channel, `broadcast`)',
  naive: '**naive** (a Set of responses, `res.write` per client per event)',
  'ours-node26': `**ours-node26** (servers/ours.ts on ${runtimeOf('ours-node26').name})`,
  'ours-deno': `**ours-deno** (servers/ours.ts on ${runtimeOf('ours-deno').name})`,
  'ours-bun': `**ours-bun** (servers/ours.ts on ${runtimeOf('ours-bun').name})`,
};

function nginxVersion(): string {
  try {
    // nginx prints its version on standard error: "nginx version: nginx/1.22.1".
    return spawnSync(NGINX, ['-v'], { encoding: 'utf8' }).stderr.trim().split('/')[1] ?? '';
  } catch {
    return '';
  }
}

function goVersion(): string {
  try {
    return execFileSync('go', ['version']).toString().trim().split(' ')[2] ?? 'go';
  } catch {
    return 'not installed';
  }
}

function render(results: Results, list: Case[], elapsed: number): string {
  const lines: string[] = [];
  const m = (caseId: string, kind: ServerKind, metric: string) => medianOf(results, caseId, kind, metric);
  const columns = peerTableServers();
  const peers = columns.filter((kind) => kind !== 'ours');
  lines.push('# Benchmark results', '');
  lines.push(`- Machine: ${machine()}`);
  lines.push(`- Date: ${new Date().toISOString().slice(0, 10)}; ${runs === 1 ? 'one run' : `median of ${runs} runs`}${quick ? ' (--quick: fewer events, shorter holds)' : ''}; took ${Math.round(elapsed)} s; \`npm run bench${args.length > 0 ? ` -- ${args.map((arg) => (arg.includes(' ') ? `"${arg}"` : arg)).join(' ')}` : ''}\``);
  lines.push(`- Pinning: ${hasTaskset ? 'each server on core 1, the whole load generator on core 0 (`taskset`)' : 'none (taskset not found)'}`);
  lines.push(`- Servers: ${SERVERS.map((kind) => SERVER_NOTES[kind]).join('; ')}. ${SERVERS.includes('nchan') ? 'All but nchan' : 'All'} take the same \`POST /publish\` JSON body.`);
  lines.push(`- Every server on Node runs with \`${NODE_FLAGS.join(' ')}\`, as \`npm start\` does (README, "Running it for real"), and ours, naive and better-sse run compiled to JavaScript by \`npm run build\` (ours-tsx and ours-node26 run the TypeScript): the peers on Node get the same tuning as ours.`);
  if (nodeFlags.length > 0) lines.push(`- **Ours on Node also ran with \`${nodeFlags.join(' ')}\`** (\`--node-flags\`), which \`npm start\` does not use.`);
  lines.push(
    `- Load generator: ${loadKind === 'go' ? 'Go (`load-go/worker.go`, a goroutine per socket; the Node one, `load-worker.ts`, costs about half as much again per event, 7.5 µs against 5 µs, and saturated its core at 10k subscribers)' : 'Node (`load-worker.ts`, raw `node:net` sockets)'}; "load core busy" is its CPU time over the wall time, so near 100 % means it, not the server, set the pace.`,
  );
  lines.push('- Ratios are ours ÷ peer where higher is better, peer ÷ ours where lower is better: above 1× means ours is better.', '');

  const header = (first: string) => [
    `| ${first} | metric | ${columns.join(' | ')} | ${peers.map((peer) => `vs ${peer}`).join(' | ')} |`,
    `| --- | --- | ${columns.map(() => '---:').join(' | ')} | ${peers.map(() => '---:').join(' | ')} |`,
  ];
  /** One table row: the metric for each server, then ours against each peer. */
  const row = (entry: { id: string; label: string }, name: string, metric: string, options: { digits?: number; lowerIsBetter?: boolean; withRatio?: boolean; scale?: number } = {}) => {
    const { digits = 0, lowerIsBetter = false, withRatio = true, scale = 1 } = options;
    const v = (kind: ServerKind) => {
      const value = m(entry.id, kind, metric);
      return value === undefined ? undefined : value * scale;
    };
    const ratios = peers.map((peer) => (withRatio ? ratio(v('ours'), v(peer), lowerIsBetter) : '')).join(' | ');
    return `| ${entry.label} | ${name} | ${columns.map((kind) => number(v(kind), digits)).join(' | ')} | ${ratios} |`;
  };
  const section = (workload: Workload, title: string, first: string, rows: (entry: Case) => string[]) => {
    const entries = list.filter((entry) => entry.workload === workload);
    if (entries.length === 0) return;
    lines.push(`## ${title}`, '', ...header(first), ...entries.flatMap(rows), '');
  };
  const counts = (entry: Case) => [
    row(entry, 'lost', 'lost', { withRatio: false }),
    row(entry, 'out of order', 'outOfOrder', { withRatio: false }),
  ];
  section('W1', 'W1: idle connections, and how fast they open', 'connections', (entry) => [
    row(entry, 'RSS per connection (KiB)', 'rssPerConnection', { digits: 2, lowerIsBetter: true, scale: 1 / 1024 }),
    row(entry, '**connects/s**', 'connectPerSecond'),
    row(entry, 'server CPU µs per connect', 'serverMicrosPerConnect', { digits: 1, lowerIsBetter: true }),
    row(entry, 'load core busy %', 'loadBusy', { withRatio: false, scale: 100 }),
    row(entry, 'failed', 'failed', { withRatio: false }),
  ]);
  const fanOutRows = (entry: Case) => [
    row(entry, '**deliveries/s**', 'deliveriesPerSecond'),
    row(entry, 'publishes/s', 'publishPerSecond'),
    row(entry, 'server CPU µs per delivery', 'serverMicrosPerDelivery', { digits: 2, lowerIsBetter: true }),
    ...counts(entry),
    row(entry, 'server CPU s', 'serverCpu', { digits: 2, withRatio: false }),
    row(entry, 'load-generator CPU s', 'loadCpu', { digits: 2, withRatio: false }),
    row(entry, 'load core busy %', 'loadBusy', { withRatio: false, scale: 100 }),
    row(entry, 'wall s', 'seconds', { digits: 2, withRatio: false }),
  ];
  section('W2', 'W2: fan-out, 16 concurrent keep-alive publishers, ~120-byte events', 'subscribers × events', fanOutRows);
  section('W5', 'W5: fan-out, one publisher in lockstep (each publish waits for the previous 202)', 'subscribers × events', fanOutRows);
  section('W3', 'W3: publish→receive latency at 10 events/s', 'subscribers', (entry) => [
    row(entry, 'p50 ms', 'p50', { digits: 2, lowerIsBetter: true }),
    row(entry, '**p99 ms**', 'p99', { digits: 2, lowerIsBetter: true }),
    row(entry, 'max ms', 'max', { digits: 2, lowerIsBetter: true }),
    ...counts(entry),
    row(entry, 'server CPU s', 'serverCpu', { digits: 2, withRatio: false }),
    row(entry, 'load-generator CPU s', 'loadCpu', { digits: 2, withRatio: false }),
  ]);
  section('W4', 'W4: connections held in one server process, heartbeats every second', 'connections', (entry) => [
    row(entry, 'connections opened', 'connections', { withRatio: false }),
    row(entry, 'held to the end', 'held', { withRatio: false }),
    row(entry, 'errors', 'errors', { withRatio: false }),
    row(entry, `fewest heartbeats on one connection (expected ≥ ${number(m(entry.id, 'ours', 'expectedHeartbeats'))})`, 'minHeartbeats', { withRatio: false }),
    row(entry, 'connects/s', 'connectPerSecond'),
    row(entry, '**server RSS (MiB)**', 'rssMiB', { digits: 1, lowerIsBetter: true }),
    row(entry, 'server CPU s (connect + hold)', 'serverCpu', { digits: 2, lowerIsBetter: true }),
  ]);
  lines.push(...runtimeTables(results, list));
  lines.push(...floors(results));
  return lines.join('\n') + '\n';
}

/**
 * The same server under each runtime: what each costs per connection and per delivery. Each
 * cell carries its ratio to ours compiled on this Node (`npm run start:dist`), above 1× meaning better.
 */
function runtimeTables(results: Results, list: Case[]): string[] {
  const kinds = SERVERS.filter((kind) => isOurs(kind));
  if (kinds.length < 2) return [];
  const m = (caseId: string, kind: ServerKind, metric: string) => medianOf(results, caseId, kind, metric);
  const lines = ['## Runtimes: ours on each', ''];
  lines.push('The same `servers/ours.ts` under each runtime, in the same run; in brackets, the ratio to the first column (above 1× is better).', '');
  lines.push(`| workload | metric | ${kinds.map((kind) => runtimeOf(kind).name).join(' | ')} |`, `| --- | --- |${' ---: |'.repeat(kinds.length)}`);
  const row = (entry: Case, name: string, metric: string, digits: number, better: 'higher' | 'lower' | undefined, scale = 1) => {
    const base = m(entry.id, 'ours', metric);
    const cells = kinds.map((kind) => {
      const value = m(entry.id, kind, metric);
      if (value === undefined) return '–';
      const text = number(value / scale, digits);
      if (better === undefined || kind === 'ours') return text;
      return `${text} (${ratio(value, base, better === 'lower')})`;
    });
    lines.push(`| ${entry.label} | ${name} | ${cells.join(' | ')} |`);
  };
  for (const entry of list) {
    if (entry.workload === 'W1') {
      row(entry, 'RSS per connection (KiB)', 'rssPerConnection', 2, 'lower', 1024);
      row(entry, 'connects/s', 'connectPerSecond', 0, 'higher');
      row(entry, 'server CPU µs per connect', 'serverMicrosPerConnect', 1, 'lower');
    } else if (entry.workload === 'W2' || entry.workload === 'W5') {
      row(entry, `**deliveries/s** (${entry.workload})`, 'deliveriesPerSecond', 0, 'higher');
      row(entry, 'server CPU µs per delivery', 'serverMicrosPerDelivery', 2, 'lower');
      row(entry, 'lost', 'lost', 0, undefined);
      row(entry, 'out of order', 'outOfOrder', 0, undefined);
    } else if (entry.workload === 'W3') {
      row(entry, '**p99 ms**', 'p99', 2, 'lower');
    } else {
      row(entry, 'held to the end', 'held', 0, undefined);
      row(entry, 'server RSS (MiB)', 'rssMiB', 1, 'lower');
    }
  }
  lines.push('');
  return lines;
}

/** The goals of issue 13 (and the fan-out wins that must stay), judged on this run's medians. */
function floors(results: Results): string[] {
  const m = (caseId: string, kind: ServerKind, metric: string) => medianOf(results, caseId, kind, metric);
  const lines = ['## Floors', ''];
  const present = (id: string, kind: ServerKind = 'ours') => (results.get(id)?.get(kind)?.length ?? 0) > 0;
  const check = (name: string, ok: boolean) => lines.push(`- ${ok ? 'met' : '**missed**'}: ${name}`);
  // Each run measures ours and the peer one after the other, so a run's own ratio shows how
  // far the machine's noise moves the verdict: a floor met in one run and missed in the next
  // sits inside it. Empty for a single run.
  const runByRun = (id: string, metric: string, peer: ServerKind): string => {
    const ours = results.get(id)!.get('ours')!;
    const theirs = results.get(id)!.get(peer)!;
    if (ours.length < 2 || ours.length !== theirs.length) return '';
    return ours.map((sample, index) => (sample[metric]! / theirs[index]![metric]!).toFixed(2)).join(', ');
  };
  const atLeast = (id: string, metric: string, peer: ServerKind, factor: number, name: string) => {
    if (!present(id) || !present(id, peer)) return;
    const value = m(id, 'ours', metric)! / m(id, peer, metric)!;
    const spread = runByRun(id, metric, peer);
    check(`${name}: ≥ ${factor}× ${peer} (${value.toFixed(2)}×${spread && `; run by run ${spread}`})`, value >= factor);
  };
  for (const n of [1000, 10_000]) atLeast(`W5-${n}`, 'deliveriesPerSecond', 'go', 1, `W5 one publisher in lockstep, ${n.toLocaleString('en')} subscribers, deliveries/s`);
  atLeast('W2-100', 'deliveriesPerSecond', 'go', 1, 'W2 16 publishers, 100 subscribers, deliveries/s');
  for (const n of [1000, 10_000]) {
    for (const peer of ['go', 'better-sse', 'naive'] as const) {
      atLeast(`W2-${n}`, 'deliveriesPerSecond', peer, peer === 'go' ? 1 : 2, `W2 16 publishers, ${n.toLocaleString('en')} subscribers, deliveries/s`);
    }
  }
  if (present('W3-10000')) {
    const p99 = m('W3-10000', 'ours', 'p99')!;
    check(`W3 10,000 subscribers at 10 events/s: p99 ${p99.toFixed(1)} ms ≤ 150 ms`, p99 <= 150);
  }
  atLeast('W1-10000', 'connectPerSecond', 'go', 0.8, 'W1 10,000 streams opening, connects/s');
  if (present('W1-10000')) {
    const rss = m('W1-10000', 'ours', 'rssPerConnection')! / 1024;
    check(`W1 10,000 idle streams: RSS per stream ${rss.toFixed(2)} KiB ≤ 10 KiB`, rss <= 10);
  }
  if (present('W4-20000') && present('W4-20000', 'nchan')) {
    const ours = m('W4-20000', 'ours', 'rssMiB')!;
    const nchan = m('W4-20000', 'nchan', 'rssMiB')!;
    const spread = runByRun('W4-20000', 'rssMiB', 'nchan');
    check(`W4 holding ${m('W4-20000', 'ours', 'held')!.toLocaleString('en')} streams: RSS ${ours.toFixed(1)} MiB ≤ nchan's ${nchan.toFixed(1)} MiB${spread && ` (ours ÷ nchan run by run ${spread})`}`, ours <= nchan);
  }
  if (present('W4-20000')) {
    const held = m('W4-20000', 'ours', 'held')!;
    const ok = m('W4-20000', 'ours', 'errors') === 0 && m('W4-20000', 'ours', 'minHeartbeats')! >= m('W4-20000', 'ours', 'expectedHeartbeats')!;
    check(`W4 every one of ${held.toLocaleString('en')} streams held with its heartbeats, no error (${held.toLocaleString('en')} is the file limit here, not 20,000)`, ok && held >= connectionCeiling());
  }
  const cells = [...results].flatMap(([id, perServer]) => [...perServer].map(([kind, samples]) => ({ id, kind, samples })));
  const dirty = cells.filter(({ samples }) => samples.some((s) => (s['lost'] ?? 0) > 0 || (s['outOfOrder'] ?? 0) > 0 || (s['errors'] ?? 0) > 0 || (s['failed'] ?? 0) > 0));
  const oursDirty = dirty.filter(({ kind }) => isOurs(kind));
  check(`ours (on every runtime): zero lost, zero out of order, zero errors in every cell of every run${oursDirty.length > 0 ? ` (not in ${oursDirty.map(({ id, kind }) => `${kind} in ${id}`).join(', ')})` : ''}`, oursDirty.length === 0);
  const peersDirty = dirty.filter(({ kind }) => !isOurs(kind));
  if (peersDirty.length > 0) lines.push(`- peers with losses, disorder or errors: ${peersDirty.map(({ id, kind }) => `${kind} in ${id}`).join(', ')}`);
  lines.push('');
  return lines;
}

/** The chart beside RESULTS.md: deliveries/s of W2 and W5 and p99 of W3, per server and size. */
function chart(results: Results, list: Case[]): string {
  const panel = (workload: Workload, title: string, metric: string, unit: string, lowerIsBetter: boolean) => {
    const entries = list.filter((entry) => entry.workload === workload);
    return {
      title,
      unit,
      lowerIsBetter,
      groups: entries.map((entry) => ({
        label: entry.size.toLocaleString('en'),
        bars: entry.servers.map((kind) => ({ name: kind, value: medianOf(results, entry.id, kind, metric) })),
      })),
    };
  };
  return chartSvg({
    title: `SSE servers on one core: ${new Date().toISOString().slice(0, 10)}, ${runs === 1 ? 'one run' : `median of ${runs} runs`}`,
    servers: SERVERS,
    panels: [
      panel('W5', 'One publisher in lockstep: deliveries/s by subscribers', 'deliveriesPerSecond', 'deliveries/s', false),
      panel('W2', '16 publishers: deliveries/s by subscribers', 'deliveriesPerSecond', 'deliveries/s', false),
      panel('W3', 'Latency at 10 events/s: p99 ms by subscribers', 'p99', 'ms', true),
    ].filter((p) => p.groups.length > 0),
  });
}

// Runs last, once every constant above exists.
if (process.env['BENCH_CHILD'] !== '1') {
  const command = [...(hasTaskset ? ['taskset', '-c', '0'] : []), process.execPath, '--import', 'tsx', new URL(import.meta.url).pathname, ...args];
  const child = spawn('/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', ...command], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_CHILD: '1' },
  });
  child.on('exit', (code) => process.exit(code ?? 1));
} else {
  // Exit through 'exit' on Ctrl-C or kill, so the Go build folder is removed; the servers and
  // workers end when their channel to this process closes.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  await main();
}
