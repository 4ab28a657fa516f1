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
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, readFields, sendJson } from '../../http/json.ts';
import { rateLimited } from '../../http/rate-limit.ts';
import type { Route, RouteContext } from '../../http/router.ts';
import type { PubSub } from '../../hub/pubsub.ts';
import { parseLastEventId } from '../../hub/event-ids.ts';
import { ORDERS_CHANNEL, snapshotFrames } from './events.ts';
import { isOrderStatus, ORDER_STATUSES } from './model.ts';
import type { Orders } from './store.ts';
import { requireToken, watchToken } from './tokens.ts';

export interface OrderContext extends RouteContext {
  hub: PubSub;
  orders: Orders;
  /** The key for watch tokens; a function because with Redis it is known only once connected. */
  secret(): Buffer;
}

export function orderRoutes(context: OrderContext): Route[] {
  return [
    {
      method: 'POST',
      path: '/orders',
      handle: rateLimited(context.postsPerMinute, 'place orders', context.clientAddress, (req, res) => handleCreateOrder(context, req, res)),
    },
    { method: 'GET', path: '/orders', handle: (req, res) => handleListOrders(context, req, res) },
    { method: 'GET', path: '/orders/:id', handle: (req, res, url, { id }) => handleGetOrder(context, req, res, url, id!) },
    { method: 'POST', path: '/orders/:id/status', handle: (req, res, _url, { id }) => handleSetStatus(context, req, res, id!) },
    { method: 'GET', path: '/order_monitor', handle: (req, res, url) => handleOrderMonitor(context, req, res, url) },
  ];
}

/** One rule for reading one order and for watching it: the order's own token, or publisher access. */
function authorizeOrder(context: OrderContext, req: IncomingMessage, url: URL, id: string): void {
  if (url.searchParams.has('token')) requireToken(context.secret(), id, url.searchParams.get('token'));
  else context.requirePublisher(req);
}

/** Reads `?order=` and authorizes watching it, or all orders (publishers only). Returns the order id, if one. */
function authorizeWatch(context: OrderContext, req: IncomingMessage, url: URL): string | undefined {
  const orderId = url.searchParams.get('order');
  if (orderId === null) context.requirePublisher(req);
  else authorizeOrder(context, req, url, orderId);
  return orderId ?? undefined;
}

async function handleCreateOrder(context: OrderContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readFields(req, context.maxBodyBytes);
  const item = body['item'] ?? 'A parcel';
  const demo = body['demo'] ?? false;
  if (typeof item !== 'string' || item.trim() === '' || [...item].length > 100) {
    throw new HttpError(400, 'Cannot create an order: item must be text of 1 to 100 characters');
  }
  if (typeof demo !== 'boolean') throw new HttpError(400, 'Cannot create an order: demo must be true or false');
  const order = await context.orders.create({ item: item.trim(), demo });
  const token = watchToken(context.secret(), order.id);
  const watch = `/order_monitor?order=${encodeURIComponent(order.id)}&token=${encodeURIComponent(token)}`;
  sendJson(res, 201, { order, token, watch }, { Location: `/orders/${encodeURIComponent(order.id)}` });
}

async function handleListOrders(context: OrderContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  context.requirePublisher(req);
  sendJson(res, 200, { orders: await context.orders.list() });
}

async function handleGetOrder(context: OrderContext, req: IncomingMessage, res: ServerResponse, url: URL, id: string): Promise<void> {
  authorizeOrder(context, req, url, id);
  const order = await context.orders.get(id);
  if (!order) throw new HttpError(404, `No order ${JSON.stringify(id)}`);
  sendJson(res, 200, order);
}

async function handleSetStatus(context: OrderContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  context.requirePublisher(req);
  const { status } = await readFields(req, context.maxBodyBytes);
  if (!isOrderStatus(status)) {
    throw new HttpError(400, `Cannot update order: status must be one of ${ORDER_STATUSES.join(', ')}`);
  }
  sendJson(res, 200, await context.orders.setStatus(id, status));
}

async function handleOrderMonitor(context: OrderContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const orderId = authorizeWatch(context, req, url);
  const lastId = parseLastEventId(req, url);
  if (orderId !== undefined) {
    const order = await context.orders.get(orderId);
    if (!order) throw new HttpError(404, `No order ${JSON.stringify(orderId)}`);
    // The client may have gone away while we looked, before its stream (and its cleanup) exist.
    if (res.destroyed) return;
  }

  const stream = context.openStream(req, res);
  context.hub.subscribe(stream, {
    channels: [ORDERS_CHANNEL],
    lastEventId: lastId,
    key: orderId,
    // Every order (or the one) as it stands, each as an order_update, with the id of the newest
    // order event the state reflects. Orders change only together with a publish (in one
    // synchronous step in memory, in one script in Redis), so the snapshot and the live updates
    // after that id meet without gap or overlap.
    snapshot: async (current) => snapshotFrames(await context.orders.snapshot(orderId, current)),
  });
  stream.onClose(context.hub.unsubscribe);
}
