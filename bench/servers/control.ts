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
    (globalThis as { gc?: () => void }).gc?.();
    process.send?.({ type: 'gc' });
  }
});
process.on('disconnect', () => process.exit(0));
