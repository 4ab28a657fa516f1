/** server.ts on Deno 2 (deno run with the permissions the server needs): the suite in ./suite.ts. */
import { describeRuntime } from './suite.ts';

describeRuntime('deno');
