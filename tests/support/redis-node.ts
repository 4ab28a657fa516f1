/**
 * One server process for the multi-process Redis tests: configured from the environment like
 * `npm start`, on a free port, printing its URL on stdout once it listens.
 */
import { createApp } from '../../server.ts';
import { loadConfig } from '../../lib/http/config.ts';
import { silentLogger } from '../../lib/http/log.ts';

const app = createApp({ ...loadConfig(process.env), port: 0, logger: silentLogger });
const url = await app.listen();
process.stdout.write(`${url.href}\n`);
process.on('SIGTERM', () => {
  void app.shutdown().then(() => process.exit(0));
});
