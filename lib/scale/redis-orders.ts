/**
 * Orders in Redis, so any process serves and watches any order: the same `Orders` as the file
 * store (lib/demos/orders/store.ts), and the same two rules, kept by Lua scripts.
 *
 * - **Write first, publish after, in one step.** A script writes the order and then publishes
 *   its `order_update` (id, stream entry, pub/sub) through the hub's own publish code. Redis
 *   runs a script atomically, so no watcher can see the event without the order, or the order
 *   without its event: a snapshot taken by another script is current as of exactly one id.
 * - **Check and set.** The state machine stays in TypeScript (`withStatus`). A status change
 *   reads the order, computes the next state, and asks the script to write it only if the order
 *   is still what was read; if another process changed it meanwhile, it reads again.
 *
 * Keys: `<prefix>orders` (a hash of order id → JSON), `<prefix>orders:sequence` (a sorted set
 * of order ids by the id of their creation event, so lists keep creation order) and
 * `<prefix>orders:finished` (delivered or cancelled ones, the first to make room).
 */
import { randomBytes } from 'node:crypto';
import { orderEvent } from '../demos/orders/events.ts';
import { isFinished, newOrder, withStatus, type Order, type OrderStatus } from '../demos/orders/model.ts';
import { storeFull, type Orders, type OrdersSnapshot } from '../demos/orders/store.ts';
import { HttpError } from '../http/json.ts';
import { LuaScript } from './redis-client.ts';
import { eventBody, LUA_LIBRARY } from './redis-scripts.ts';
import type { RedisStore } from './redis-store.ts';

const KEYS = `
local orders = prefix .. 'orders'
local sequence = prefix .. 'orders:sequence'
local finished = prefix .. 'orders:finished'
`;

/** ARGV[6] channel, [7] event body, [8] order id, [9] order JSON, [10] most orders kept. */
const CREATE = new LuaScript(`${LUA_LIBRARY}${KEYS}
if redis.call('HLEN', orders) >= tonumber(ARGV[10]) then
  local done = redis.call('SPOP', finished)
  if not done then return 'full' end
  redis.call('HDEL', orders, done)
  redis.call('ZREM', sequence, done)
end
if redis.call('HSETNX', orders, ARGV[8], ARGV[9]) == 0 then return 'exists' end
local id = publish(ARGV[6], ARGV[7])
redis.call('ZADD', sequence, string.format('%d', id), ARGV[8])
return id`);

/** ARGV[6] channel, [7] event body, [8] order id, [9] the JSON it was read as, [10] new JSON, [11] '1' if now finished. */
const SET_STATUS = new LuaScript(`${LUA_LIBRARY}${KEYS}
local current = redis.call('HGET', orders, ARGV[8])
if not current then return 'missing' end
if current ~= ARGV[9] then return 'conflict' end
redis.call('HSET', orders, ARGV[8], ARGV[10])
if ARGV[11] == '1' then redis.call('SADD', finished, ARGV[8]) end
return publish(ARGV[6], ARGV[7])`);

/** ARGV[6] an order id, or '' for all. Returns the newest id, then the order JSON(s) in creation order. */
const SNAPSHOT = new LuaScript(`${LUA_LIBRARY}${KEYS}
ensure_counter()
local result = { tonumber(redis.call('GET', prefix .. 'id')) }
local ids = {ARGV[6]}
if ARGV[6] == '' then ids = redis.call('ZRANGE', sequence, 0, -1) end
for _, id in ipairs(ids) do
  local order = redis.call('HGET', orders, id)
  if order then result[#result + 1] = order end
end
return result`);

/** Check-and-set rounds before giving up on an order other writers keep changing. */
const MAX_ATTEMPTS = 10;

export class RedisOrderStore implements Orders {
  readonly #store: RedisStore;
  readonly #maxOrders: number;
  /** Changes under way, for `idle()` at shutdown. */
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(store: RedisStore, options: { maxOrders: number }) {
    this.#store = store;
    this.#maxOrders = options.maxOrders;
  }

  /**
   * The secret behind watch tokens, shared by every process: ORDER_SECRET if set, else one
   * made once and kept in Redis (`SET NX`: if two processes race, both read the winner's).
   */
  async secret(configured: string | undefined): Promise<Buffer> {
    if (configured) return Buffer.from(configured);
    const key = `${this.#store.prefix}order-secret`;
    await this.#store.command(['SET', key, randomBytes(32).toString('base64url'), 'NX'], 'load the order secret');
    return Buffer.from(String(await this.#store.command(['GET', key], 'load the order secret')));
  }

  async idle(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
  }

  /** Orders can be saved exactly while Redis can be reached. */
  get available(): boolean {
    return this.#store.available;
  }

  async get(id: string): Promise<Order | undefined> {
    const json = await this.#store.command(['HGET', `${this.#store.prefix}orders`, id], 'read the order');
    return typeof json === 'string' ? (JSON.parse(json) as Order) : undefined;
  }

  async list(): Promise<Order[]> {
    return (await this.snapshot(undefined)).orders;
  }

  /** The orders and the newest id, read in one script; `current` is not needed. */
  async snapshot(orderId: string | undefined): Promise<OrdersSnapshot> {
    const reply = (await this.#store.run(SNAPSHOT, [orderId ?? ''], 'read the orders')) as unknown[];
    return { upTo: Number(reply[0]), orders: reply.slice(1).map((json) => JSON.parse(String(json)) as Order) };
  }

  create(input: { item: string; demo: boolean }): Promise<Order> {
    return this.#track(async () => {
      const order = newOrder(input);
      const json = JSON.stringify(order);
      const reply = await this.#store.run(
        CREATE,
        [...this.#event(order), order.id, json, String(this.#maxOrders)],
        'create an order',
      );
      if (reply === 'full') throw storeFull();
      // 72 random bits do not collide in practice; if they ever do, say so rather than overwrite.
      if (reply === 'exists') throw new Error(`Cannot create an order: id ${order.id} is taken`);
      return order;
    });
  }

  setStatus(id: string, status: OrderStatus): Promise<Order> {
    return this.#track(async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const read = await this.#store.command(['HGET', `${this.#store.prefix}orders`, id], 'update the order');
        if (typeof read !== 'string') throw new HttpError(404, `No order ${JSON.stringify(id)}`);
        const order = withStatus(JSON.parse(read) as Order, status);
        const json = JSON.stringify(order);
        const reply = await this.#store.run(
          SET_STATUS,
          [...this.#event(order), id, read, json, isFinished(order) ? '1' : '0'],
          'update the order',
        );
        if (reply === 'missing') throw new HttpError(404, `No order ${JSON.stringify(id)}`);
        if (reply !== 'conflict') return order;
        // Someone else moved it between our read and our write: read again and re-check the move.
      }
      throw new HttpError(409, `Cannot update order ${id}: it keeps changing; try again`);
    });
  }

  /** The script arguments of the order's event: its channel and stored form, as the file store publishes it. */
  #event(order: Order): [string, string] {
    const event = orderEvent(order);
    return [event.channel, eventBody(event)];
  }

  #track<T>(change: () => Promise<T>): Promise<T> {
    const running = change();
    this.#inFlight.add(running);
    const forget = () => this.#inFlight.delete(running);
    running.then(forget, forget);
    return running;
  }
}
