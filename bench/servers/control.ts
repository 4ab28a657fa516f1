/**
 * The runner's side channel into a benchmark server process: the server reports its port once
 * it listens, collects garbage when asked (so RSS readings measure what is kept, not what is
 * waiting for the collector), and exits when the runner disconnects or goes away.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export function reportListening(server: Server): void {
  const { port } = server.address() as AddressInfo;
  process.send?.({ type: 'listening', port });
}

process.on('message', (message: { type: string }) => {
  if (message.type === 'gc') {
    // Node and Deno expose V8's collector as `gc` (--expose-gc, --v8-flags=--expose-gc);
    // Bun's JavaScriptCore has its own, `Bun.gc(true)` (synchronous).
    const runtime = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
    if (runtime.gc) runtime.gc();
    else runtime.Bun?.gc(true);
    process.send?.({ type: 'gc' });
  }
});
process.on('disconnect', () => process.exit(0));
