// The page's script: plain JavaScript, no build step, one small function per panel.
// Server text is always written with textContent, never parsed as HTML: an event's data is
// untrusted input, and as HTML any markup (and script) in it would run.
'use strict';

/** Shows an EventSource's connection state in `element` (connecting, open, reconnecting, closed). */
function showState(source, element) {
  const set = (state, text = state) => {
    element.textContent = text;
    element.dataset.state = state;
  };
  set('connecting');
  source.addEventListener('open', () => set('open'));
  // `error` fires on every drop. readyState tells whether the browser will retry by itself
  // (CONNECTING) or has given up (CLOSED). It gives up for good after any answer other than
  // 200 (a 429 or 503 when the server is full, for instance), so the user has to be told.
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CONNECTING) set('reconnecting');
    else set('closed', 'closed: the server refused the stream (busy?); reload the page to try again');
  });
  return set;
}

// Tests pass ?interval=50 to make the paragraph quick; people get the default second.
const params = new URLSearchParams(location.search);

function startParagraph() {
  const list = document.getElementById('paragraph-sentences');
  list.replaceChildren();
  const interval = params.get('interval');
  const source = new EventSource(interval ? `/events?interval=${encodeURIComponent(interval)}` : '/events');
  const setState = showState(source, document.getElementById('paragraph-state'));
  source.addEventListener('message', (event) => {
    const item = document.createElement('li');
    item.textContent = event.data;
    item.value = Number(event.lastEventId);
    list.append(item);
  });
  // Closing on `end` saves a round trip; without it the browser would reconnect and get 204.
  source.addEventListener('end', () => {
    source.close();
    setState('finished');
  });
  return source;
}

let paragraph = startParagraph();
document.getElementById('paragraph-restart').addEventListener('click', () => {
  paragraph.close();
  paragraph = startParagraph();
});

// ---------------------------------------------------------------------------------------------
// The hub: every /stream panel shares ONE EventSource. Over HTTP/1.1 a browser allows six
// connections per origin, and each EventSource holds one open for good: one per panel would
// leave a second tab of this page hanging. Following other channels means reopening that one
// connection with the new list, passing the last id so nothing published meanwhile is missed.
// ---------------------------------------------------------------------------------------------

const hub = {
  channels: ['sse'],
  handlers: [],
  source: undefined,
  lastEventId: '',
  setState: undefined,

  /** Calls `handler` for every event of `type`, across reconnects and channel changes. */
  on(type, handler) {
    this.handlers.push([type, handler]);
    this.source?.addEventListener(type, handler);
  },

  /** (Re)opens the connection following `channels`. */
  follow(channels) {
    this.channels = [...new Set(channels)];
    // A new EventSource starts with no last id of its own, so hand it the one we tracked.
    this.source?.close();
    const query = new URLSearchParams(this.channels.map((channel) => ['channel', channel]));
    if (this.lastEventId) query.set('lastEventId', this.lastEventId);
    this.source = new EventSource(`/stream?${query}`);
    this.setState = showState(this.source, document.getElementById('stream-state'));
    for (const [type, handler] of this.handlers) this.source.addEventListener(type, handler);
  },
};
// Remember the newest id of any event, whatever its type.
for (const type of ['message', 'social', 'response_status', 'reset']) {
  hub.on(type, (event) => {
    if (event.lastEventId) hub.lastEventId = event.lastEventId;
  });
}

function chatChannels() {
  const form = document.getElementById('chat-follow');
  const channels = [...form.querySelectorAll('input[name="channel"]:checked')].map((box) => box.value);
  const own = document.getElementById('chat-own-channel').value.trim();
  if (own) channels.push(own);
  return channels;
}

hub.on('social', (event) => {
  const { channel, message } = JSON.parse(event.data);
  const item = document.createElement('li');
  const tag = document.createElement('strong');
  tag.textContent = `${channel}: `;
  item.append(tag, document.createTextNode(message));
  document.getElementById('chat-log').prepend(item);
});

document.getElementById('chat-follow').addEventListener('submit', (submit) => {
  submit.preventDefault();
  hub.follow(['sse', ...chatChannels()]);
});

document.getElementById('chat-form').addEventListener('submit', async (submit) => {
  submit.preventDefault();
  const input = document.getElementById('chat-message');
  const errorText = document.getElementById('chat-error');
  errorText.textContent = '';
  const response = await fetch('/messages', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel: document.getElementById('chat-channel').value, message: input.value }),
  });
  if (response.ok) input.value = '';
  else errorText.textContent = (await response.json()).error;
});

hub.follow(['sse', ...chatChannels()]);

// ---------------------------------------------------------------------------------------------
// Live data and the status monitor: both ride on channel `sse` of the shared hub connection.
// ---------------------------------------------------------------------------------------------

// Unnamed events (no `event:` line) arrive as type "message": what `onmessage` receives.
hub.on('message', (event) => {
  const { time, clients } = JSON.parse(event.data);
  document.getElementById('ticker-time').textContent = new Date(time).toLocaleTimeString();
  document.getElementById('ticker-clients').textContent = String(clients);
});

hub.on('response_status', (event) => {
  const { status, time, error } = JSON.parse(event.data);
  document.getElementById('status-code').textContent = status === 0 ? `none (${error})` : String(status);
  document.getElementById('status-time').textContent = time.toFixed(3);
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()}: ${status === 0 ? error : status} in ${time.toFixed(3)} s`;
  const log = document.getElementById('status-log');
  log.prepend(item);
  while (log.children.length > 10) log.lastElementChild.remove();
});

// The answer arrives as a response_status event too, for everyone watching, so it is not used here.
document.getElementById('status-probe').addEventListener('click', () => fetch('/request_status'));

// ---------------------------------------------------------------------------------------------
// Orders: a separate EventSource, opened only while an order is being watched.
// ---------------------------------------------------------------------------------------------

let orderSource;

function showOrder(order) {
  const steps = document.getElementById('order-steps');
  steps.replaceChildren(
    ...order.history.map(({ status, at }) => {
      const item = document.createElement('li');
      item.textContent = `${status.replaceAll('_', ' ')} at ${new Date(at).toLocaleTimeString()}`;
      return item;
    }),
  );
  steps.dataset.status = order.status;
  if (order.status === 'delivered' || order.status === 'cancelled') {
    // Finished: nothing more will happen, so give the connection back.
    orderSource.close();
    document.getElementById('order-state').textContent = `${order.item}: ${order.status}`;
    document.getElementById('order-state').dataset.state = 'finished';
  }
}

document.getElementById('order-form').addEventListener('submit', async (submit) => {
  submit.preventDefault();
  const response = await fetch('/orders', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ item: document.getElementById('order-item').value, demo: true }),
  });
  const body = await response.json();
  if (!response.ok) {
    document.getElementById('order-state').textContent = body.error;
    return;
  }
  orderSource?.close();
  // The watch URL carries the order's token; the first event is a snapshot of the order.
  orderSource = new EventSource(body.watch);
  showState(orderSource, document.getElementById('order-state'));
  orderSource.addEventListener('order_update', (event) => showOrder(JSON.parse(event.data)));
});
