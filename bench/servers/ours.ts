/**
 * This project's server, built with `createApp` exactly as `npm start` builds it. The runner
 * passes the settings in the environment, read by the same `loadConfig` as production.
 */
import { loadConfig } from '../../lib/http/config.ts';
import { createApp } from '../../server.ts';
import { reportListening } from './control.ts';

const app = createApp({ ...loadConfig(process.env), port: 0, host: '127.0.0.1', logger: () => {} });
await app.listen();
reportListening(app.server);
