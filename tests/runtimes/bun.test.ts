/** server.ts on Bun 1 (bun server.ts): the suite in ./suite.ts. */
import { describeRuntime } from './suite.ts';

describeRuntime('bun');
