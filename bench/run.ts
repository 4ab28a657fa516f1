/**
 * `npm run bench [-- --quick] [-- --runs N] [-- --only W2] [-- --profile]`: runs every workload
 * against three servers (ours and two peers), and against ours again under each other runtime
 * of tests/runtimes/ (Node 26, Deno, Bun), each its own process pinned to core 1, with the load
 * generator pinned to core 0, and writes the medians to bench/RESULTS.md (a full run) or prints
 * them (--quick).
 *
 * Everything talks to 127.0.0.0/8 only, every wait is bounded, and every process it starts
 * ends with it.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { percentiles, type HistogramSnapshot } from './histogram.ts';
import type { PublishResult } from './publisher.ts';
import type { WorkerCommand } from './load-worker.ts';
import { RUNTIMES, type Runtime, type RuntimeId } from '../tests/runtimes/runtimes.ts';

const here = new URL('.', import.meta.url).pathname;
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const profile = args.includes('--profile');
const option = (name: string): string | undefined => {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
};
const runs = Number(option('--runs') ?? (quick ? 1 : 3));
const only = option('--only');
const onlyServers = option('--servers')?.split(',');
const outFile = option('--out') ?? (quick ? undefined : `${here}RESULTS.md`);

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

/** Ours under each runtime: `ours` is `npm start` (this Node, with tsx); the rest run the same servers/ours.ts. */
type OursKind = 'ours' | 'ours-node26' | 'ours-deno' | 'ours-bun';
type ServerKind = OursKind | 'better-sse' | 'naive';
const RUNTIME_OF: Record<OursKind, RuntimeId> = { ours: 'node', 'ours-node26': 'node26', 'ours-deno': 'deno', 'ours-bun': 'bun' };
const runtimeOf = (kind: ServerKind): Runtime => RUNTIMES.find((runtime) => runtime.id === (RUNTIME_OF[kind as OursKind] ?? 'node'))!;
/** The runtimes installed here; one that is not is left out, and the run says why. */
const OURS = (Object.keys(RUNTIME_OF) as OursKind[]).filter((kind) => {
  const missing = runtimeOf(kind).missing;
  if (missing !== undefined && process.env['BENCH_CHILD'] === '1') console.error(`${kind} left out: ${missing}`);
  return missing === undefined;
});
const SERVERS: ServerKind[] = ['ours', 'better-sse', 'naive', ...OURS.filter((kind) => kind !== 'ours')];

interface RunningServer {
  kind: ServerKind;
  child: ChildProcess;
  pid: number;
  port: number;
}

/** Waits (bounded) for the next IPC message of one type from a child. */
function nextMessage<T>(child: ChildProcess, type: string, timeoutMs = 120_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage);
      reject(new Error(`timed out waiting for "${type}" from pid ${child.pid}`));
    }, timeoutMs);
    const onMessage = (message: { type: string }) => {
      if (message.type !== type) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve(message as T);
    };
    child.on('message', onMessage);
  });
}

async function startServer(kind: ServerKind, env: Record<string, string>): Promise<RunningServer> {
  const runtime = runtimeOf(kind);
  const server = runtime.command({ entry: `${here}servers/${kind.startsWith('ours') ? 'ours' : kind}.ts`, exposeGc: true });
  // Profiles are V8's --cpu-prof, so Node's (Node 26 included).
  if (profile && runtime.id.startsWith('node')) server.splice(1, 0, '--cpu-prof', `--cpu-prof-dir=${here}profiles`);
  const command = hasTaskset ? ['taskset', '-c', '1', ...server] : server;
  const child = spawn(command[0]!, command.slice(1), {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // Ours caps streams (10,000 in all, 100 per address) and backlog by default; the bench lifts
    // the caps so the workloads measure throughput and memory, not the limits.
    env: {
      ...process.env,
      ...runtime.env,
      HEARTBEAT_MS: '15000',
      MAX_BACKLOG_BYTES: String(64 * 1024 * 1024),
      MAX_STREAMS: '1000000',
      MAX_STREAMS_PER_ADDRESS: '1000000',
      ...env,
    },
  });
  const { port } = await nextMessage<{ port: number }>(child, 'listening', 30_000);
  return { kind, child, pid: child.pid!, port };
}

async function stopServer(server: RunningServer): Promise<void> {
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.disconnect();
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function collectGarbage(server: RunningServer): Promise<void> {
  server.child.send({ type: 'gc' });
  await nextMessage(server.child, 'gc', 10_000);
}

/** Resident memory in bytes, from /proc. */
function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

/** User + system CPU time in seconds, from /proc (clock ticks are 1/100 s on Linux). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
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

class LoadGenerator {
  readonly workers: ChildProcess[];

  constructor(count: number) {
    this.workers = Array.from({ length: count }, () =>
      fork(`${here}load-worker.ts`, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
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

  /** Publishes from the first worker (the load core is shared anyway). */
  publish(server: RunningServer, count: number, ratePerSecond?: number): Promise<PublishResult & { error?: string }> {
    return this.#ask(
      this.workers[0]!,
      { type: 'publish', options: { host: '127.0.0.1', port: server.port, channel: 'bench', count, concurrency: 16, ratePerSecond } },
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

/** W1: idle connections: memory per connection and how fast they open. */
async function idle(kind: ServerKind, connections: number): Promise<Metrics> {
  const server = await startServer(kind, {});
  const load = new LoadGenerator(workersFor(connections));
  try {
    await delay(300);
    await collectGarbage(server);
    const before = rssBytes(server.pid);
    const { failed, seconds } = await load.connect(server, connections);
    await delay(500);
    await collectGarbage(server);
    const after = rssBytes(server.pid);
    const stats = await load.stats(0);
    return {
      rssPerConnection: (after - before) / connections,
      connectPerSecond: connections / seconds,
      failed: Math.max(failed, stats.errors),
    };
  } finally {
    await load.close();
    await stopServer(server);
  }
}

/** W2: fan-out: publish `events` as fast as the server takes them; wait until all arrive. */
async function fanOut(kind: ServerKind, subscribers: number, events: number): Promise<Metrics> {
  const server = await startServer(kind, {});
  const load = new LoadGenerator(workersFor(subscribers));
  try {
    const { failed } = await load.connect(server, subscribers);
    await load.reset();
    const loadBefore = await load.stats(0);
    const serverBefore = cpuSeconds(server.pid);
    const published = await load.publish(server, events);
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
    return {
      deliveriesPerSecond: stats.events / seconds,
      publishPerSecond: published.published / ((published.finishedAt - published.startedAt) / 1e6),
      lost: stats.lost + subscribers * published.failed,
      outOfOrder: stats.outOfOrder,
      errors: Math.max(failed, stats.errors),
      serverCpu: cpuSeconds(server.pid) - serverBefore,
      loadCpu: (stats.cpuMicros - loadBefore.cpuMicros) / 1e6,
      seconds,
    };
  } finally {
    await load.close();
    await stopServer(server);
  }
}

/** W3: latency at a fixed publish rate. */
async function latency(kind: ServerKind, subscribers: number, seconds: number): Promise<Metrics> {
  const server = await startServer(kind, {});
  const load = new LoadGenerator(workersFor(subscribers));
  const rate = 10;
  try {
    const { failed } = await load.connect(server, subscribers, true);
    // Warm up (JIT, buffers), then measure from a clean slate.
    await load.publish(server, 5, rate);
    await delay(500);
    await load.reset();
    const serverBefore = cpuSeconds(server.pid);
    const loadBefore = await load.stats(0);
    const published = await load.publish(server, rate * seconds, rate);
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
    await stopServer(server);
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
  const server = await startServer(kind, { HEARTBEAT_MS: String(heartbeatMs) });
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
    await stopServer(server);
  }
}

// ---------------------------------------------------------------------------------------------
// Runner and report
// ---------------------------------------------------------------------------------------------

interface Case {
  id: string;
  workload: 'W1' | 'W2' | 'W3' | 'W4';
  label: string;
  servers: ServerKind[];
  run(kind: ServerKind): Promise<Metrics>;
}

function cases(): Case[] {
  const list: Case[] = [];
  // --quick keeps the levels the floors are judged at and drops the rest, to stay under 2 minutes.
  for (const n of quick ? [10_000] : [1000, 10_000]) {
    list.push({ id: `W1-${n}`, workload: 'W1', label: `${n.toLocaleString('en')} idle`, servers: SERVERS, run: (kind) => idle(kind, n) });
  }
  const fanOutEvents: Record<number, number> = quick ? { 100: 500, 1000: 150, 10_000: 20 } : { 100: 5000, 1000: 1500, 10_000: 200 };
  for (const n of quick ? [1000, 10_000] : [100, 1000, 10_000]) {
    const k = fanOutEvents[n]!;
    list.push({ id: `W2-${n}`, workload: 'W2', label: `${n.toLocaleString('en')} subs × ${k} events`, servers: SERVERS, run: (kind) => fanOut(kind, n, k) });
  }
  const latencySeconds = quick ? 2 : 10;
  for (const n of quick ? [10_000] : [1000, 10_000]) {
    list.push({ id: `W3-${n}`, workload: 'W3', label: `${n.toLocaleString('en')} subs, 10 ev/s × ${latencySeconds} s`, servers: SERVERS, run: (kind) => latency(kind, n, latencySeconds) });
  }
  const holdSeconds = quick ? 5 : 15;
  list.push({ id: 'W4-20000', workload: 'W4', label: `20,000 held ${holdSeconds} s, heartbeat 1 s`, servers: OURS, run: (kind) => hold(kind, 20_000, holdSeconds) });
  return list.filter((entry) => only === undefined || entry.id.startsWith(only));
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
  const started = Date.now();
  const results: Results = new Map();
  const list = cases();
  for (let run = 1; run <= runs; run++) {
    for (const entry of list) {
      for (const kind of entry.servers.filter((k) => onlyServers === undefined || onlyServers.includes(k))) {
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

function render(results: Results, list: Case[], elapsed: number): string {
  const lines: string[] = [];
  const m = (caseId: string, kind: ServerKind, metric: string) => medianOf(results, caseId, kind, metric);
  lines.push('# Benchmark results', '');
  lines.push(`- Machine: ${machine()}`);
  lines.push(`- Date: ${new Date().toISOString().slice(0, 10)}; ${runs === 1 ? 'one run' : `median of ${runs} runs`}${quick ? ' (--quick: fewer events, shorter holds)' : ''}; took ${Math.round(elapsed)} s`);
  lines.push(`- Pinning: ${hasTaskset ? 'each server on core 1, the whole load generator on core 0 (`taskset`)' : 'none (taskset not found)'}`);
  lines.push('- Servers: **ours** (`createApp` from server.ts), **better-sse** 0.16 (one channel, `broadcast`), **naive** (a Set of responses, `res.write` per client per event). All three take the same `POST /publish` JSON body.');
  lines.push(`- Runtimes: ours again under ${OURS.filter((kind) => kind !== 'ours').map((kind) => runtimeOf(kind).name).join(', ') || 'no other runtime (none installed)'} (tests/runtimes/), the same servers/ours.ts; see the last section.`);
  lines.push('- Ratios are ours ÷ peer where higher is better, peer ÷ ours where lower is better: above 1× means ours is better.', '');

  /** One table row: the metric for each server, then ours against each peer. */
  const peerRow = (entry: { id: string; label: string }, name: string, metric: string, digits: number, lowerIsBetter: boolean, withRatio: boolean) => {
    const v = (k: ServerKind) => m(entry.id, k, metric);
    const ratios = withRatio ? `${ratio(v('ours'), v('better-sse'), lowerIsBetter)} | ${ratio(v('ours'), v('naive'), lowerIsBetter)}` : ' | ';
    return `| ${entry.label} | ${name} | ${number(v('ours'), digits)} | ${number(v('better-sse'), digits)} | ${number(v('naive'), digits)} | ${ratios} |`;
  };
  const has = (prefix: string) => list.some((entry) => entry.id.startsWith(prefix));
  if (has('W1')) {
    lines.push('## W1: idle connections', '');
    lines.push('| connections | metric | ours | better-sse | naive | vs better-sse | vs naive |', '| --- | --- | ---: | ---: | ---: | ---: | ---: |');
    for (const entry of list.filter((e) => e.workload === 'W1')) {
      const label = entry.label.split(' ')[0];
      const rss = (k: ServerKind) => m(entry.id, k, 'rssPerConnection');
      lines.push(`| ${label} | RSS per connection (KiB) | ${number(kib(rss('ours')), 2)} | ${number(kib(rss('better-sse')), 2)} | ${number(kib(rss('naive')), 2)} | ${ratio(rss('ours'), rss('better-sse'), true)} | ${ratio(rss('ours'), rss('naive'), true)} |`);
      const rate = (k: ServerKind) => m(entry.id, k, 'connectPerSecond');
      lines.push(`| ${label} | connects/s | ${number(rate('ours'))} | ${number(rate('better-sse'))} | ${number(rate('naive'))} | ${ratio(rate('ours'), rate('better-sse'))} | ${ratio(rate('ours'), rate('naive'))} |`);
      const failed = (k: ServerKind) => m(entry.id, k, 'failed');
      lines.push(`| ${label} | failed | ${number(failed('ours'))} | ${number(failed('better-sse'))} | ${number(failed('naive'))} | | |`);
    }
    lines.push('');
  }
  if (has('W2')) {
    lines.push('## W2: fan-out (16 concurrent keep-alive publishers, ~120-byte events)', '');
    lines.push('| subscribers × events | metric | ours | better-sse | naive | vs better-sse | vs naive |', '| --- | --- | ---: | ---: | ---: | ---: | ---: |');
    for (const entry of list.filter((e) => e.workload === 'W2')) {
      const row = (name: string, metric: string, digits = 0, lowerIsBetter = false, withRatio = true) =>
        lines.push(peerRow(entry, name, metric, digits, lowerIsBetter, withRatio));
      row('**deliveries/s**', 'deliveriesPerSecond');
      row('publishes/s', 'publishPerSecond');
      row('lost', 'lost', 0, false, false);
      row('out of order', 'outOfOrder', 0, false, false);
      row('server CPU s', 'serverCpu', 2, false, false);
      row('load-generator CPU s', 'loadCpu', 2, false, false);
      row('wall s', 'seconds', 2, false, false);
    }
    lines.push('');
  }
  if (has('W3')) {
    lines.push('## W3: publish→receive latency at 10 events/s', '');
    lines.push('| subscribers | metric | ours | better-sse | naive | vs better-sse | vs naive |', '| --- | --- | ---: | ---: | ---: | ---: | ---: |');
    for (const entry of list.filter((e) => e.workload === 'W3')) {
      const row = (name: string, metric: string, digits = 2, lowerIsBetter = true, withRatio = true) =>
        lines.push(peerRow(entry, name, metric, digits, lowerIsBetter, withRatio));
      row('p50 ms', 'p50');
      row('**p99 ms**', 'p99');
      row('max ms', 'max');
      row('lost', 'lost', 0, true, false);
      row('out of order', 'outOfOrder', 0, true, false);
      row('server CPU s', 'serverCpu', 2, true, false);
      row('load-generator CPU s', 'loadCpu', 2, true, false);
    }
    lines.push('');
  }
  if (has('W4')) {
    lines.push('## W4: connections held in one server process (ours)', '');
    lines.push('| metric | value |', '| --- | ---: |');
    const v = (metric: string) => m('W4-20000', 'ours', metric);
    lines.push(`| connections opened | ${number(v('connections'))} |`);
    lines.push(`| held to the end | ${number(v('held'))} |`);
    lines.push(`| errors | ${number(v('errors'))} |`);
    lines.push(`| fewest heartbeats on one connection (expected ≥ ${number(v('expectedHeartbeats'))}) | ${number(v('minHeartbeats'))} |`);
    lines.push(`| connects/s | ${number(v('connectPerSecond'))} |`);
    lines.push(`| server RSS (MiB) | ${number(v('rssMiB'), 1)} |`);
    lines.push(`| server CPU s (connect + hold) | ${number(v('serverCpu'), 2)} |`);
    lines.push('');
  }
  lines.push(...runtimeTables(results, list));
  lines.push(...floors(results, list));
  return lines.join('\n') + '\n';
}

/**
 * The same server under each runtime: what each costs per connection and per delivery. Each
 * cell carries its ratio to ours on this Node with tsx (`npm start`), above 1× meaning better.
 */
function runtimeTables(results: Results, list: Case[]): string[] {
  const kinds = OURS.filter((kind) => list.some((entry) => results.get(entry.id)?.has(kind)));
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
      row(entry, 'failed', 'failed', 0, undefined);
    } else if (entry.workload === 'W2') {
      row(entry, '**deliveries/s**', 'deliveriesPerSecond', 0, 'higher');
      row(entry, 'server CPU s', 'serverCpu', 2, 'lower');
      row(entry, 'load-generator CPU s', 'loadCpu', 2, undefined);
      row(entry, 'lost', 'lost', 0, undefined);
      row(entry, 'out of order', 'outOfOrder', 0, undefined);
    } else if (entry.workload === 'W3') {
      row(entry, 'p50 ms', 'p50', 2, 'lower');
      row(entry, '**p99 ms**', 'p99', 2, 'lower');
      row(entry, 'server CPU s', 'serverCpu', 2, 'lower');
      row(entry, 'load-generator CPU s', 'loadCpu', 2, undefined);
      row(entry, 'lost', 'lost', 0, undefined);
    } else {
      row(entry, 'held to the end', 'held', 0, undefined);
      row(entry, 'fewest heartbeats on one connection', 'minHeartbeats', 0, undefined);
      row(entry, 'server RSS (MiB)', 'rssMiB', 1, 'lower');
      row(entry, 'server CPU s (connect + hold)', 'serverCpu', 2, 'lower');
    }
  }
  lines.push('');
  return lines;
}

function kib(bytes: number | undefined): number | undefined {
  return bytes === undefined ? undefined : bytes / 1024;
}

function floors(results: Results, list: Case[]): string[] {
  const m = (caseId: string, kind: ServerKind, metric: string) => medianOf(results, caseId, kind, metric);
  const lines = ['## Floors', ''];
  const check = (name: string, ok: boolean | undefined) => {
    if (ok !== undefined) lines.push(`- ${ok ? 'met' : '**missed**'}: ${name}`);
  };
  // Judged on ours under `npm start`; a run without it (`--servers ours-bun`) has no floors to judge.
  const present = (id: string) => list.some((entry) => entry.id === id) && results.get(id)?.has('ours') === true;
  for (const n of [1000, 10_000]) {
    const id = `W2-${n}`;
    if (!present(id)) continue;
    const ours = m(id, 'ours', 'deliveriesPerSecond')!;
    const better = m(id, 'better-sse', 'deliveriesPerSecond')!;
    const naive = m(id, 'naive', 'deliveriesPerSecond')!;
    check(`W2 ${n} subscribers: deliveries/s ≥ 2× better-sse (${(ours / better).toFixed(2)}×) and ≥ 2× naive (${(ours / naive).toFixed(2)}×)`, ours >= 2 * better && ours >= 2 * naive);
    const samples = results.get(id)?.get('ours') ?? [];
    check(`W2 ${n} subscribers: zero lost and zero out of order in every run`, samples.every((s) => s['lost'] === 0 && s['outOfOrder'] === 0 && s['errors'] === 0));
  }
  for (const n of [1000, 10_000]) {
    const id = `W1-${n}`;
    if (!present(id)) continue;
    const ours = m(id, 'ours', 'rssPerConnection')!;
    const peers = Math.min(m(id, 'better-sse', 'rssPerConnection')!, m(id, 'naive', 'rssPerConnection')!);
    check(`W1 ${n} idle: RSS per connection ${(ours / 1024).toFixed(2)} KiB ≤ both peers (best peer ${(peers / 1024).toFixed(2)} KiB) and < 10 KiB`, ours <= peers && ours < 10 * 1024);
  }
  if (present('W3-10000')) {
    const p99 = m('W3-10000', 'ours', 'p99')!;
    check(`W3 10,000 subscribers at 10 events/s: p99 ${p99.toFixed(2)} ms < 100 ms`, p99 < 100);
  }
  if (present('W4-20000')) {
    const held = m('W4-20000', 'ours', 'held')!;
    const ok = held >= 20_000 && m('W4-20000', 'ours', 'errors') === 0 && m('W4-20000', 'ours', 'minHeartbeats')! >= m('W4-20000', 'ours', 'expectedHeartbeats')!;
    check(`W4 20,000 connections held with heartbeats and no error (held ${held.toLocaleString('en')})`, ok);
  }
  lines.push('');
  return lines;
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
  await main();
}
