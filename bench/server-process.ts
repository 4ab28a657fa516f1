/**
 * The servers under test, each started as its own process pinned to core 1: the JavaScript
 * ones (ours, better-sse, naive, and ours again under tsx, Node 26, Deno and Bun) are driven over
 * IPC (./servers/control.ts), the Go one over its standard input and output
 * (./servers/go/hub.go), nginx + nchan by its port and signals (./servers/nchan/config.ts).
 * Either way the runner can ask for the port, for a garbage collection
 * before an RSS reading, and for the process to end.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RUNTIMES, type Runtime, type RuntimeId } from '../tests/runtimes/runtimes.ts';
import { freePort } from '../tests/support/redis-server.ts';
import { NCHAN_MODULE, NGINX, nchanConfig } from './servers/nchan/config.ts';

const here = new URL('.', import.meta.url).pathname;

/**
 * `ours` is servers/ours.ts as `npm run build` compiled it, on this Node (`npm run start:dist`,
 * how it is deployed); `ours-tsx` is the same under tsx (`npm start`, how it is read and
 * edited); `ours-*` run it on another runtime.
 */
export type OursKind = 'ours' | 'ours-tsx' | 'ours-node26' | 'ours-deno' | 'ours-bun';
export type ServerKind = OursKind | 'go' | 'nchan' | 'better-sse' | 'naive';

/** Every server, ours first, then the peers, then ours on the other runtimes; the runner drops those that cannot run here. */
export const ALL_SERVERS: readonly ServerKind[] = ['ours', 'go', 'nchan', 'better-sse', 'naive', 'ours-tsx', 'ours-node26', 'ours-deno', 'ours-bun'];

const RUNTIME_OF: Record<OursKind, RuntimeId> = { ours: 'node-built', 'ours-tsx': 'node', 'ours-node26': 'node26', 'ours-deno': 'deno', 'ours-bun': 'bun' };

export function isOurs(kind: ServerKind): kind is OursKind {
  return kind in RUNTIME_OF;
}

/** The runtime a server runs on: its own for `ours-*`, and compiled on this Node, as ours is, for every other JavaScript one. */
export function runtimeOf(kind: ServerKind): Runtime {
  const id = isOurs(kind) ? RUNTIME_OF[kind] : 'node-built';
  return RUNTIMES.find((runtime) => runtime.id === id)!;
}

export interface RunningServer {
  kind: ServerKind;
  pid: number;
  port: number;
  /** Collects garbage (and hands freed memory back), so RSS measures what is kept. */
  collectGarbage(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  env: Record<string, string>;
  /** Pin to core 1 with `taskset`. */
  pin: boolean;
  /** Where Node servers write `--cpu-prof` profiles, if anywhere. */
  profileDir?: string;
  /** Node flags for ours (run.ts's `--node-flags`), after `npm start`'s, so they win. */
  nodeFlags?: readonly string[];
}

/** Waits (bounded) for the next IPC message of one type from a child. */
export function nextMessage<T>(child: ChildProcess, type: string, timeoutMs = 120_000): Promise<T> {
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

let goBinaries: { hub: string; loadWorker: string } | undefined;
let goMissing: string | undefined;

/**
 * Builds the Go peer (./servers/go/hub.go) and the Go load worker (./load-go/worker.go) once
 * per run into a temporary folder, offline (`GOPROXY=off`: both use the standard library only).
 * Returns why they cannot run here, or undefined when they can.
 */
export function prepareGo(): string | undefined {
  if (goBinaries !== undefined || goMissing !== undefined) return goMissing;
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    goMissing = 'no `go` on PATH (Debian: apt-get install golang-go)';
    return goMissing;
  }
  const folder = mkdtempSync(join(tmpdir(), 'sse-bench-go-'));
  const build = (source: string, output: string) =>
    execFileSync('go', ['build', '-o', join(folder, output), source], {
      cwd: here,
      env: { ...process.env, GOPROXY: 'off', GOFLAGS: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  try {
    build('servers/go/hub.go', 'hub');
    build('load-go/worker.go', 'load-worker');
    goBinaries = { hub: join(folder, 'hub'), loadWorker: join(folder, 'load-worker') };
    process.on('exit', () => rmSync(folder, { recursive: true, force: true }));
  } catch (error) {
    rmSync(folder, { recursive: true, force: true });
    goMissing = `go build failed: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  }
  return goMissing;
}

/** The Go load worker, once `prepareGo` built it. */
export function goLoadWorker(): string | undefined {
  return goBinaries?.loadWorker;
}

/** The environment every server gets, before the workload's own settings. */
function serverEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HEARTBEAT_MS: '15000',
    // Ours caps streams (10,000 in all, 100 per address) and backlog by default; the bench
    // lifts the caps so the workloads measure throughput and memory, not the limits.
    MAX_BACKLOG_BYTES: String(64 * 1024 * 1024),
    MAX_STREAMS: '1000000',
    MAX_STREAMS_PER_ADDRESS: '1000000',
    ...env,
  };
}

export async function startServer(kind: ServerKind, options: StartOptions): Promise<RunningServer> {
  if (kind === 'go') return startGo(options);
  if (kind === 'nchan') return startNchan(options);
  return startNode(kind, options);
}

/** Why nginx + nchan cannot run here, or undefined when it can. */
export function nchanMissing(): string | undefined {
  if (!existsSync(NGINX)) return `no ${NGINX} (Debian: apt-get install nginx libnginx-mod-nchan)`;
  if (!existsSync(NCHAN_MODULE)) return `no ${NCHAN_MODULE} (Debian: apt-get install libnginx-mod-nchan)`;
  return undefined;
}

/**
 * nginx + nchan, one process, from a configuration written into a temporary folder. nginx
 * needs its port in the file, so a free one is found first (port 0, closed again).
 */
async function startNchan({ env, pin }: StartOptions): Promise<RunningServer> {
  const folder = mkdtempSync(join(tmpdir(), 'sse-bench-nchan-'));
  const port = await freePort();
  const heartbeatMs = Number(serverEnv(env)['HEARTBEAT_MS']);
  writeFileSync(join(folder, 'nginx.conf'), nchanConfig({ folder, port, heartbeatMs }));
  const nginx = [NGINX, '-p', folder, '-c', join(folder, 'nginx.conf')];
  const command = pin ? ['taskset', '-c', '1', ...nginx] : nginx;
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'inherit', 'inherit'] });
  const removeFolder = () => rmSync(folder, { recursive: true, force: true });
  child.once('exit', removeFolder);
  await untilAccepting(port, child, 10_000);
  return {
    kind: 'nchan',
    pid: child.pid!,
    port,
    // C frees as it goes: nothing to collect.
    async collectGarbage() {},
    // SIGTERM is nginx's fast shutdown (SIGQUIT would wait for the open streams to end).
    stop: () => stopChild(child, () => child.kill('SIGTERM')),
  };
}

/** Resolves once something accepts connections on `port`; rejects if `child` exits first or time runs out. */
async function untilAccepting(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx exited (${child.exitCode ?? child.signalCode}) before it listened`);
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (accepted) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nginx did not listen on port ${port} within ${timeoutMs} ms`);
}

async function startNode(kind: ServerKind, { env, pin, profileDir, nodeFlags = [] }: StartOptions): Promise<RunningServer> {
  const runtime = runtimeOf(kind);
  runtime.prepare?.();
  const server = runtime.command({ entry: `${here}servers/${isOurs(kind) ? 'ours' : kind}.ts`, exposeGc: true });
  // Profiles are V8's --cpu-prof, so Node's only (Node 26 included).
  if (profileDir !== undefined && runtime.id.startsWith('node')) server.splice(1, 0, '--cpu-prof', `--cpu-prof-dir=${profileDir}`);
  // Just before the script: a V8 flag given twice takes its last value.
  if (isOurs(kind) && runtime.id.startsWith('node')) server.splice(server.length - 1, 0, ...nodeFlags);
  const command = pin ? ['taskset', '-c', '1', ...server] : server;
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...serverEnv(env), ...runtime.env } });
  const { port } = await nextMessage<{ port: number }>(child, 'listening', 30_000);
  return {
    kind,
    pid: child.pid!,
    port,
    async collectGarbage() {
      child.send({ type: 'gc' });
      await nextMessage(child, 'gc', 10_000);
    },
    stop: () => stopChild(child, () => child.disconnect()),
  };
}

async function startGo({ env, pin }: StartOptions): Promise<RunningServer> {
  const binary = goBinaries?.hub;
  if (binary === undefined) throw new Error(`Cannot start the Go peer: ${prepareGo() ?? 'not built'}`);
  const command = pin ? ['taskset', '-c', '1', binary] : [binary];
  const child = spawn(command[0]!, command.slice(1), { stdio: ['pipe', 'pipe', 'inherit'], env: serverEnv(env) });
  const lines = createInterface({ input: child.stdout! });
  const waiters: Array<{ prefix: string; resolve: (line: string) => void }> = [];
  lines.on('line', (line) => {
    const index = waiters.findIndex((waiter) => line.startsWith(waiter.prefix));
    if (index !== -1) waiters.splice(index, 1)[0]!.resolve(line);
  });
  const nextLine = (prefix: string, timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for "${prefix}" from the Go peer`)), timeoutMs);
      waiters.push({
        prefix,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  const port = Number((await nextLine('listening ', 30_000)).split(' ')[1]);
  return {
    kind: 'go',
    pid: child.pid!,
    port,
    async collectGarbage() {
      const done = nextLine('gc', 10_000);
      child.stdin!.write('gc\n');
      await done;
    },
    stop: () => stopChild(child, () => child.stdin!.end()),
  };
}

/** Asks a child to exit, and kills it if it has not within 10 s. */
async function stopChild(child: ChildProcess, ask: () => void): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  ask();
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Resident memory in bytes, from /proc. */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

/** User + system CPU time in seconds, from /proc (clock ticks are 1/100 s on Linux). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
