/**
 * The hub and orders contracts on the Redis backend, against a private redis-server. Skipped
 * with a message when redis-server is not installed (a failure under CI, which installs it).
 * What only Redis adds (outages, cut connections, leases, several processes) is in
 * tests/scale/redis.test.ts.
 */
import { after, describe } from 'node:test';
import { redis } from './backends.ts';
import { historyLimitsContract } from './history-limits-contract.ts';
import { hubContract } from './hub-contract.ts';
import { ordersContract } from './orders-contract.ts';

const backend = redis();
if (backend.skip) console.log(`# ${backend.skip}`);

describe('the Redis backend', { skip: backend.skip }, () => {
  after(() => backend.close());
  hubContract(backend);
  historyLimitsContract(backend);
  ordersContract(backend);
});
