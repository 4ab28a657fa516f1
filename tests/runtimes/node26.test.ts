/** server.ts on Node 26, stripping the types itself (node server.ts): the suite in ./suite.ts. */
import { describeRuntime } from './suite.ts';

describeRuntime('node26');
