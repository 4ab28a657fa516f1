/** The hub and orders contracts on the default backend: everything in this process. */
import { after, describe } from 'node:test';
import { inProcess } from './backends.ts';
import { historyLimitsContract } from './history-limits-contract.ts';
import { hubContract } from './hub-contract.ts';
import { ordersContract } from './orders-contract.ts';

const backend = inProcess();

describe('the in-process backend', () => {
  after(() => backend.close());
  hubContract(backend);
  historyLimitsContract(backend);
  ordersContract(backend);
});
