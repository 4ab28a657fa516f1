/** server.ts on the Node that runs npm, with tsx (npm start): the suite in ./suite.ts. */
import { describeRuntime } from './suite.ts';

describeRuntime('node');
