/**
 * The order shipping tracker, over HTTP:
 * - `POST /orders` places an order (public) and returns a watch token for it;
 * - `POST /orders/:id/status` is the logistics side (publishers only) moving an order along;
 * - `GET /order_monitor[?order=ID&token=T]` streams `order_update` events: first a snapshot of
 *   the current state, then every change, resumable with `Last-Event-ID`.
 *
 * Watching one order needs its token, an HMAC of the order id under a server secret: only
 * whoever created the order (or was given the link) can follow it, and guessing ids gets
 * nobody anywhere. Watching every order needs the publish key (or loopback).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { requirePublisher } from '../../http/access.ts';
import { HttpError, readFields, sendJson } from '../../http/json.ts';
import type { PubSub, Snapshot } from '../../hub/memory-hub.ts';
import { isOrderStatus, ORDER_STATUSES, type Order, type Orders, type OrdersSnapshot } from './store.ts';
import { MAX_BODY_BYTES, parseLastEventId } from '../../hub/routes.ts';
import type { OpenStream } from '../../http/stream-limits.ts';
import { formatEvent } from '../../sse/format.ts';

/**
 * The hub channel for order updates. The colon makes it internal: public channel names cannot
 * contain one, so `/stream` can never subscribe to it and `/publish` can never forge an update.
 */
export const ORDERS_CHANNEL = 'orders:updates';

export interface OrderContext {
  hub: PubSub;
  orders: Orders;
  openStream: OpenStream;
  publishKey: string | undefined;
  secret: Buffer;
  clientAddress(req: IncomingMessage): string | undefined;
}

/**
 * Announces a saved change to every watcher of all orders and of this one. For the file store
 * with the in-process hub, which cannot fail here (the event name is fixed, the hub is memory),
 * so the rejection is caught only to keep a floating promise from ever crashing the process.
 * (The Redis store saves and publishes in one script instead: lib/redis-orders.ts.)
 */
export function publishOrder(hub: PubSub, order: Order): void {
  hub.publish({ channel: ORDERS_CHANNEL, event: 'order_update', data: JSON.stringify(order), key: order.id }).catch(() => {});
}

/**
 * The secret behind watch tokens: ORDER_SECRET if set, else one generated once and kept beside
 * the orders (readable by the owner only), so tokens stay valid across restarts.
 */
export function loadSecret(dataDir: string, configured: string | undefined): Buffer {
  if (configured) return Buffer.from(configured);
  const file = join(dataDir, 'secret');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    // `wx`: if two processes race to create it, the second fails instead of overwriting.
    writeFileSync(file, randomBytes(32).toString('base64url'), { mode: 0o600, flag: 'wx' });
  }
  return Buffer.from(readFileSync(file, 'utf8').trim());
}

export function watchToken(secret: Buffer, orderId: string): string {
  return createHmac('sha256', secret).update(orderId).digest('base64url');
}

/** Throws 401/403 unless `token` is this order's token; constant time, like any secret compare. */
function requireToken(secret: Buffer, orderId: string, token: string | null): void {
  if (token === null || token === '') throw new HttpError(401, 'Watching one order needs its token (?token=)');
  const expected = Buffer.from(watchToken(secret, orderId));
  const given = Buffer.from(token);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new HttpError(403, 'That token does not match the order');
  }
}

/** Reads `?order=&token=`, or checks publisher access for all orders. Returns the order id, if one. */
function authorizeWatch(context: OrderContext, req: IncomingMessage, url: URL): string | undefined {
  const orderId = url.searchParams.get('order');
  if (orderId === null) {
    requirePublisher(req, context.clientAddress(req), context.publishKey);
    return undefined;
  }
  requireToken(context.secret, orderId, url.searchParams.get('token'));
  return orderId;
}

export async function handleCreateOrder(context: OrderContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readFields(req, MAX_BODY_BYTES);
  const item = body['item'] ?? 'A parcel';
  const demo = body['demo'] ?? false;
  if (typeof item !== 'string' || item.trim() === '' || [...item].length > 100) {
    throw new HttpError(400, 'Cannot create an order: item must be text of 1 to 100 characters');
  }
  if (typeof demo !== 'boolean') throw new HttpError(400, 'Cannot create an order: demo must be true or false');
  const order = await context.orders.create({ item: item.trim(), demo });
  const token = watchToken(context.secret, order.id);
  const watch = `/order_monitor?order=${encodeURIComponent(order.id)}&token=${encodeURIComponent(token)}`;
  sendJson(res, 201, { order, token, watch }, { Location: `/orders/${encodeURIComponent(order.id)}` });
}

export async function handleListOrders(context: OrderContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  requirePublisher(req, context.clientAddress(req), context.publishKey);
  sendJson(res, 200, { orders: await context.orders.list() });
}

export async function handleGetOrder(context: OrderContext, req: IncomingMessage, res: ServerResponse, url: URL, id: string): Promise<void> {
  // The order's own token, or publisher access: the same rule as watching it.
  if (url.searchParams.has('token')) requireToken(context.secret, id, url.searchParams.get('token'));
  else requirePublisher(req, context.clientAddress(req), context.publishKey);
  const order = await context.orders.get(id);
  if (!order) throw new HttpError(404, `No order ${JSON.stringify(id)}`);
  sendJson(res, 200, order);
}

export async function handleSetStatus(context: OrderContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  requirePublisher(req, context.clientAddress(req), context.publishKey);
  const { status } = await readFields(req, MAX_BODY_BYTES);
  if (!isOrderStatus(status)) {
    throw new HttpError(400, `Cannot update order: status must be one of ${ORDER_STATUSES.join(', ')}`);
  }
  sendJson(res, 200, await context.orders.setStatus(id, status));
}

/** Every order in the snapshot as an `order_update` carrying the snapshot's id (or a lone id when none). */
function snapshotFrames({ orders, upTo }: OrdersSnapshot): Snapshot {
  const id = String(upTo);
  if (orders.length === 0) return { upTo, frames: formatEvent({ id }) };
  return { upTo, frames: orders.map((order) => formatEvent({ event: 'order_update', id, data: JSON.stringify(order) })).join('') };
}

export async function handleOrderMonitor(context: OrderContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const orderId = authorizeWatch(context, req, url);
  const lastId = parseLastEventId(req, url);
  if (orderId !== undefined) {
    // The file store answers at once; only a shared store (Redis) makes us wait, and only then
    // can the client have gone away meanwhile, before its stream (and its cleanup) exist.
    const found = context.orders.get(orderId);
    const order = found instanceof Promise ? await found : found;
    if (!order) throw new HttpError(404, `No order ${JSON.stringify(orderId)}`);
    if (res.destroyed) return;
  }

  const stream = context.openStream(req, res);
  const unsubscribe = context.hub.subscribe(stream, {
    channels: [ORDERS_CHANNEL],
    lastEventId: lastId,
    key: orderId,
    // Every order (or the one) as it stands, each as an order_update, with the id of the newest
    // order event the state reflects. Orders change only together with a publish (in one
    // synchronous step in memory, in one script in Redis), so the snapshot and the live updates
    // after that id meet without gap or overlap.
    snapshot: (current) => {
      const taken = context.orders.snapshot(orderId, current);
      return taken instanceof Promise ? taken.then(snapshotFrames) : snapshotFrames(taken);
    },
  });
  stream.onClose(unsubscribe);
}
