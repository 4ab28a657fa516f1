/**
 * A private `redis-server` for one test run: on a free loopback port, without persistence
 * unless a test asks for it (then in a temporary directory, for restart tests), stopped by the
 * test that started it. Tests skip with a visible message when redis-server is not installed,
 * and fail under CI, where `.ci/run` installs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Why Redis tests cannot run here, or undefined when they can. Under CI, missing Redis is an error. */
export function redisMissing(): string | undefined {
  const found = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (found) return undefined;
  if (process.env['CI']) throw new Error('redis-server is not installed, and CI is set: .ci/run should have installed it');
  return 'redis-server is not installed (apt-get install redis-server); skipping the Redis tests';
}

/** A port nobody listens on now (the OS picks it; we let it go at once). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export class RedisServer {
  readonly port: number;
  readonly #persistent: boolean;
  readonly #dir: string;
  #process: ChildProcess | undefined;

  private constructor(port: number, persistent: boolean) {
    this.port = port;
    this.#persistent = persistent;
    this.#dir = mkdtempSync(join(tmpdir(), 'sse-redis-'));
  }

  /** Starts one; `persistent` keeps data across `stop()`/`start()` (append-only file in a temp dir). */
  static async start(options: { persistent?: boolean } = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), options.persistent ?? false);
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** (Re)starts the server on its port; resolves once it accepts connections. */
  async start(): Promise<void> {
    const persistence = this.#persistent
      ? ['--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--dir', this.#dir]
      : ['--appendonly', 'no', '--save', '', '--dir', this.#dir];
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', ...persistence], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.#process = child;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${output}`)), 10_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}:\n${output}`));
      });
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk;
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.stdout!.resume();
  }

  /** Stops it (SIGTERM: with persistence, the append-only file is already on disk) and waits for the exit. */
  async stop(): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (!child || child.exitCode !== null) return;
    child.removeAllListeners('exit');
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }
}
