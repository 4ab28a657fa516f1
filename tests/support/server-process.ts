/**
 * The real server as a child process, started the way a reader starts it: `server.ts` run by a
 * command (by default this Node with tsx, as `npm start` does; tests/runtimes/ passes Node 26,
 * Deno and Bun), on a free port that it announces in its `server.listening` log line. For what
 * only a process can show: signals, exit codes, saving to disk, and which runtime runs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SERVER_ENTRY = new URL('../../server.ts', import.meta.url).pathname;

/**
 * V8's young generation capped at 1 MiB per semi-space, as `npm start` runs it (the README's
 * "Running it for real" says why): almost everything a stream allocates lives as long as the
 * stream, so a bigger nursery mostly holds memory (bench W1: about 1.3 KiB per idle stream),
 * while fan-out pays a few percent for the more frequent minor collections (W2).
 */
export const NODE_FLAGS = ['--max-semi-space-size=1'];

/** `npm start` without npm: this Node, with its flags and tsx to load TypeScript. */
export const NODE_WITH_TSX = [process.execPath, ...NODE_FLAGS, '--import', 'tsx', SERVER_ENTRY];

export interface ServerProcess {
  child: ChildProcess;
  url: URL;
  /** The data directory it was given (orders, saved history). */
  dataDir: string;
  /** What the server has logged so far (its last 64 KiB), for failure messages. */
  log(): string;
  /** Sends SIGTERM and resolves with the exit code; past `ms`, kills it and throws. */
  stop(ms?: number): Promise<number | null>;
}

export interface ServerProcessOptions {
  /** The command line, server.ts included; NODE_WITH_TSX when absent. */
  command?: readonly string[];
  /** On top of the quiet defaults below (and this process's environment). */
  env?: Record<string, string>;
  /** How long it may take to announce its port: a cold Deno or tsx compiles first. */
  startMs?: number;
}

const LOG_KEPT = 64 * 1024;

/**
 * Servers still running. None may outlive the tests: a file that runs out of time gets
 * SIGTERM from the test runner, and --test-force-exit ends one without its `after` hooks, so
 * whatever is left is killed on the way out, either way.
 */
const running = new Set<ChildProcess>();
function killLeftovers(): void {
  for (const child of running) child.kill('SIGKILL');
}
process.on('exit', killLeftovers);
process.once('SIGTERM', () => {
  killLeftovers();
  process.exit(143);
});

/**
 * Starts the server and resolves once it listens. The demo timers are off, so the only events
 * are the ones a test publishes, and each process gets a fresh data directory unless the
 * test passes DATA_DIR (to restart on the same one).
 */
export async function startServerProcess(options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const [file, ...args] = options.command ?? NODE_WITH_TSX;
  const dataDir = options.env?.['DATA_DIR'] ?? mkdtempSync(join(tmpdir(), 'sse-process-'));
  const child = spawn(file!, args, {
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      TICK_MS: '0',
      MONITOR_INTERVAL_MS: '0',
      COURIER_MS: '0',
      DATA_DIR: dataDir,
      ...options.env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString('utf8')).slice(-LOG_KEPT);
  });
  const url = await new Promise<URL>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      child.stderr!.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      child.kill('SIGKILL');
      reject(new Error(`${[file, ...args].join(' ')}: ${why}\n${log}`));
    };
    const timer = setTimeout(() => fail('did not start listening in time'), options.startMs ?? 30_000);
    const onData = () => {
      const match = /"event":"server.listening","url":"([^"]+)"/.exec(log);
      if (!match) return;
      clearTimeout(timer);
      child.stderr!.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      resolve(new URL(match[1]!));
    };
    const onExit = (code: number | null, signal: string | null) => fail(`exited (${code ?? signal}) before listening`);
    const onError = (error: Error) => fail(`could not be started: ${error.message}`);
    child.stderr!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
  return {
    child,
    url,
    dataDir,
    log: () => log,
    async stop(ms = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, 'exit', { signal: AbortSignal.timeout(ms) });
      child.kill('SIGTERM');
      try {
        const [code] = (await exited) as [number | null];
        return code;
      } catch (error) {
        child.kill('SIGKILL');
        throw new Error(`server did not exit within ${ms} ms of SIGTERM (${String(error)}):\n${log}`);
      }
    },
  };
}

/**
 * A publish burst, as clients would send during a deploy: `publishers` clients post to
 * `channel` back to back, and each stops once the server refuses (503 while shutting down,
 * or the connection refused). `accepted` holds the id of every event that got a 202.
 */
export function publishBurst(url: URL, channel: string, publishers: number): { accepted: string[]; finished(): Promise<void> } {
  const accepted: string[] = [];
  let stop = false;
  const publisher = async () => {
    while (!stop) {
      try {
        const response = await fetch(new URL('/publish', url), {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ channel, data: `event ${accepted.length}` }),
        });
        const body = (await response.json()) as { id?: string };
        if (response.status === 202) accepted.push(body.id!);
        else stop = true; // 503 while shutting down: stop, as a client would.
      } catch {
        stop = true; // connection refused once the listener is closed
      }
    }
  };
  const running = Promise.all(Array.from({ length: publishers }, publisher));
  return {
    accepted,
    async finished() {
      stop = true;
      await running;
    },
  };
}
