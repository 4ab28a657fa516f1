// The page's script: plain JavaScript, no build step, one small function per panel.
// Server text is always written with textContent, never innerHTML: an event's data is
// untrusted input, and innerHTML would run any markup (and script) it contains.
'use strict';

/** Shows an EventSource's connection state in `element` (connecting, open, reconnecting, closed). */
function showState(source, element) {
  const set = (state) => {
    element.textContent = state;
    element.dataset.state = state;
  };
  set('connecting');
  source.addEventListener('open', () => set('open'));
  // `error` fires on every drop. readyState tells whether the browser will retry by itself
  // (CONNECTING) or has given up (CLOSED, e.g. after a non-200 answer such as 204).
  source.addEventListener('error', () => set(source.readyState === EventSource.CONNECTING ? 'reconnecting' : 'closed'));
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
