// The SSE inspector: reads an event stream with fetch, parses it with the spec's rules, and
// reconnects the way EventSource does, showing every step. Plain JavaScript, no build step.
// Server text only ever reaches the page through textContent and createElement: it is
// untrusted input, and parsed as HTML any markup in it would turn into live elements.
'use strict';

// ---------------------------------------------------------------------------------------------
// 1. The parser: the spec's "event stream interpretation", fed one chunk at a time.
//    https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
// ---------------------------------------------------------------------------------------------

/** Finds the next line ending: CRLF, lone LF or lone CR (CRLF first, so it counts once). */
const LINE_BREAK = /\r\n|\r|\n/g;

/**
 * Turns the bytes of one response into lines, and lines into events.
 *
 * `push` returns every line the chunk completed, each with what it did (`kind`, plus the
 * dispatched `event` on a blank line, the new `retry` on a valid retry line, or why a field was
 * `ignored`), so the page can show the raw and the parsed view side by side.
 */
class EventStreamParser {
  #decoder = new TextDecoder('utf-8');
  /** The start of a line whose ending has not arrived yet. */
  #partial = '';
  /** The previous chunk ended with CR: if this one starts with LF, that LF finishes a CRLF. */
  #afterCR = false;
  #data = '';
  #type = '';
  #idBuffer = '';
  /** The last event id: set when an event is dispatched, sent back as Last-Event-ID. */
  lastEventId;

  constructor(lastEventId = '') {
    this.lastEventId = lastEventId;
    this.begin();
  }

  /**
   * Starts reading a new response. Everything half-read is dropped; the last event id carries
   * over, as it does in EventSource, so events after a reconnect that have no `id:` of their
   * own still report where the stream is.
   */
  begin() {
    // A new decoder per response: it also drops a leading byte order mark, as the spec asks.
    this.#decoder = new TextDecoder('utf-8');
    this.#partial = '';
    this.#afterCR = false;
    this.#data = '';
    this.#type = '';
    this.#idBuffer = this.lastEventId;
  }

  /** Feeds one chunk of bytes; returns the lines it completed, in order. */
  push(bytes) {
    // `stream: true` keeps the first bytes of a character that is split across two chunks
    // until the rest arrives; without it each half would decode to U+FFFD.
    return this.#split(this.#decoder.decode(bytes, { stream: true }));
  }

  /**
   * The response ended. Returns the lines still to show and whether an unfinished event (or
   * line) was thrown away: the spec dispatches an event only on its blank line.
   */
  end() {
    const lines = this.#split(this.#decoder.decode());
    const discarded = this.#partial !== '' || this.#data !== '' || this.#type !== '';
    this.#partial = '';
    return { lines, discarded };
  }

  #split(text) {
    if (text === '') return [];
    const lines = [];
    let start = 0;
    // The CR special case. A lone CR is a complete line ending, so a chunk that ends in CR has
    // ended its line, and it is handled now: the server may send nothing more for minutes.
    // But the CR may be the first half of a CRLF whose LF arrives in the next chunk. That LF
    // is not an empty line; read as one, it would dispatch the event before its next field.
    if (this.#afterCR && text.startsWith('\n')) {
      lines.push({ kind: 'crlf-tail', text: '', eol: '\n' });
      start = 1;
    }
    LINE_BREAK.lastIndex = start;
    for (let match = LINE_BREAK.exec(text); match !== null; match = LINE_BREAK.exec(text)) {
      const line = this.#partial + text.slice(start, match.index);
      this.#partial = '';
      lines.push(this.#interpret(line, match[0]));
      start = LINE_BREAK.lastIndex;
    }
    this.#partial += text.slice(start);
    this.#afterCR = text.endsWith('\r');
    return lines;
  }

  /** One complete line: a blank line dispatches, `:` starts a comment, else `field: value`. */
  #interpret(text, eol) {
    const line = { kind: 'field', text, eol };
    if (text === '') {
      line.kind = 'blank';
      line.event = this.#dispatch();
      return line;
    }
    if (text.startsWith(':')) {
      line.kind = 'comment';
      return line;
    }
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    // Exactly one space is stripped, so "data:  x" keeps the payload's own leading space.
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') {
      this.#type = value;
    } else if (field === 'data') {
      this.#data += value + '\n';
    } else if (field === 'id') {
      // An id with NUL could not be sent back in a header, so the whole field is ignored.
      if (value.includes('\0')) line.ignored = 'an id containing NUL is ignored';
      else this.#idBuffer = value;
    } else if (field === 'retry') {
      if (/^[0-9]+$/.test(value)) line.retry = Number(value);
      else line.ignored = 'retry must be ASCII digits only';
    } else {
      line.ignored = `unknown field "${field}" is ignored`;
    }
    return line;
  }

  /** The blank line: returns the event to dispatch, or undefined when there is no data. */
  #dispatch() {
    // The id is taken even when nothing is dispatched: a lone `id:` frame moves the resume point.
    this.lastEventId = this.#idBuffer;
    if (this.#data === '') {
      this.#type = '';
      return undefined;
    }
    // Data lines were joined with LF; the last LF is the joiner's, not the payload's.
    const event = { type: this.#type || 'message', id: this.lastEventId, data: this.#data.slice(0, -1) };
    this.#data = '';
    this.#type = '';
    return event;
  }
}

// ---------------------------------------------------------------------------------------------
// 2. The two views. Both are bounded: a stream with a heartbeat never ends, and neither should
//    the page's memory grow with it.
// ---------------------------------------------------------------------------------------------

const MAX_ROWS = 2000;
const rawList = document.getElementById('inspector-raw');
const eventRows = document.querySelector('#inspector-events tbody');
const stateText = document.getElementById('inspector-state');
const errorText = document.getElementById('inspector-error');
const retryText = document.getElementById('inspector-retry');
const lastIdText = document.getElementById('inspector-last-id');
const disconnectButton = document.getElementById('inspector-disconnect');

/** Shows connecting, open, reconnecting or closed (the names EventSource's states suggest). */
function setState(state) {
  stateText.textContent = state;
  stateText.dataset.state = state;
  disconnectButton.disabled = state === 'closed';
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function arrivalTime() {
  const now = new Date();
  const time = element('time', '', now.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3 }));
  time.dateTime = now.toISOString();
  return time;
}

/** Appends a row, drops the oldest past MAX_ROWS, and follows the end unless scrolled up. */
function appendRow(list, row) {
  const scroller = list.closest('.scroll');
  const atEnd = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 8;
  list.append(row);
  while (list.childElementCount > MAX_ROWS) list.firstElementChild.remove();
  if (atEnd) scroller.scrollTop = scroller.scrollHeight;
}

/** A line of the inspector's own: connecting, status, reconnecting, stopping. */
function showNote(text, kind) {
  const item = element('li', 'note');
  item.dataset.kind = kind;
  item.append(arrivalTime(), `— ${text}`);
  appendRow(rawList, item);
}

function showChunk(byteCount) {
  const item = element('li', 'chunk');
  item.append(arrivalTime(), `chunk of ${byteCount} bytes`);
  appendRow(rawList, item);
}

/** CR and LF are invisible, and which one ended a line is the point here: write them out. */
const VISIBLE_EOL = { '\r\n': '\\r\\n', '\n': '\\n', '\r': '\\r' };

function showLine(line) {
  const item = element('li', line.kind === 'field' ? 'line' : `line ${line.kind}`);
  item.dataset.kind = line.kind;
  item.append(arrivalTime(), element('span', 'text', line.text), element('span', 'eol', VISIBLE_EOL[line.eol]));
  let hint;
  if (line.kind === 'crlf-tail') hint = 'the LF of a CRLF split across two chunks (not a blank line)';
  else if (line.kind === 'blank') hint = line.event ? `dispatch "${line.event.type}"` : 'blank line, no data: nothing to dispatch';
  else if (line.ignored) hint = line.ignored;
  if (hint) item.append(element('span', 'hint', hint));
  appendRow(rawList, item);
}

function showEvent(event) {
  const row = document.createElement('tr');
  const time = document.createElement('td');
  time.append(arrivalTime());
  row.append(time, element('td', '', event.type), element('td', '', event.id), element('td', '', event.data));
  appendRow(eventRows, row);
}

// ---------------------------------------------------------------------------------------------
// 3. The connection, with EventSource's reconnect rules.
// ---------------------------------------------------------------------------------------------

/** EventSource's reconnection time until the server sends `retry:`. */
const DEFAULT_RETRY_MS = 3000;
/** setTimeout treats anything longer than this as 0, which would reconnect in a tight loop. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** The stream being inspected: one per press of Connect, across all its reconnects. */
let session;

/**
 * fetch headers are byte strings, while EventSource sends the id as UTF-8: encode it by hand
 * (one character per byte), so an id like "café" goes out as the same bytes.
 */
function asHeaderValue(text) {
  return String.fromCharCode(...new TextEncoder().encode(text));
}

function stopSession(current, message) {
  current.stopped = true;
  clearTimeout(current.timer);
  current.controller.abort();
  if (message) errorText.textContent = message;
  setState('closed');
}

async function connect(current, state) {
  setState(state);
  current.controller = new AbortController();
  const headers = { Accept: 'text/event-stream' };
  const lastId = current.parser.lastEventId;
  if (lastId !== '') headers['Last-Event-ID'] = asHeaderValue(lastId);
  showNote(`GET ${current.url.pathname}${current.url.search}${lastId === '' ? '' : ` with Last-Event-ID: ${lastId}`}`, 'request');

  let response;
  try {
    // no-store: a cached copy of a live stream would be a replay of the past, not the stream.
    response = await fetch(current.url, { headers, cache: 'no-store', signal: current.controller.signal });
  } catch (error) {
    if (current.stopped) return;
    showNote(`network error: ${error.message}`, 'error');
    reconnectLater(current);
    return;
  }
  if (current.stopped) return;

  // 204 No Content is the server's way to say "nothing more, ever": EventSource stops for good
  // instead of reconnecting. It is how a finished stream avoids being re-requested forever.
  if (response.status === 204) {
    showNote('204 No Content: the server has nothing more to send, so no reconnect (as EventSource)', 'no-content');
    stopSession(current);
    return;
  }
  // Anything else that is not a 200 event stream is not worth retrying: EventSource "fails
  // the connection" and stays closed, and so does the inspector.
  const contentType = response.headers.get('Content-Type') ?? '';
  const mediaType = contentType.split(';')[0].trim().toLowerCase();
  if (response.status !== 200 || mediaType !== 'text/event-stream') {
    const problem = response.status !== 200
      ? `HTTP ${response.status} ${response.statusText}`
      : `Content-Type is "${contentType}", not text/event-stream`;
    showNote(`${problem}: stopped`, 'error');
    // Discarding the body we will not read; if even that fails, say so in the console.
    response.body?.cancel().catch((error) => console.warn('Could not discard the response body:', error));
    stopSession(current, `Cannot inspect ${current.url.pathname}${current.url.search}: ${problem}`);
    return;
  }

  showNote(`200 ${contentType}`, 'open');
  setState('open');
  current.parser.begin();
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      showChunk(value.byteLength);
      for (const line of current.parser.push(value)) show(current, line);
    }
    if (current.stopped) return;
    showNote('the server ended the response', 'end');
  } catch (error) {
    if (current.stopped) return;
    showNote(`connection lost: ${error.message}`, 'error');
  }
  const { lines, discarded } = current.parser.end();
  for (const line of lines) show(current, line);
  if (discarded) showNote('an unfinished event was discarded: events count only once their blank line arrives', 'discard');
  reconnectLater(current);
}

/** Shows one parsed line, and acts on what it changed. */
function show(current, line) {
  showLine(line);
  if (line.retry !== undefined) {
    current.retryMs = line.retry;
    retryText.textContent = String(line.retry);
  }
  if (line.kind === 'blank') lastIdText.textContent = current.parser.lastEventId || '(none)';
  if (line.event) showEvent(line.event);
}

/** EventSource's answer to a dropped stream: wait the reconnection time, then try again. */
function reconnectLater(current) {
  if (current.stopped) return;
  setState('reconnecting');
  const lastId = current.parser.lastEventId;
  showNote(`reconnecting in ${current.retryMs} ms${lastId === '' ? '' : ` with Last-Event-ID: ${lastId}`}`, 'reconnect');
  current.timer = setTimeout(() => connect(current, 'reconnecting'), Math.min(current.retryMs, MAX_TIMEOUT_MS));
}

document.getElementById('inspector-form').addEventListener('submit', (submit) => {
  submit.preventDefault();
  if (session) stopSession(session);
  errorText.textContent = '';
  let url;
  try {
    url = new URL(document.getElementById('inspector-url').value, location.href);
  } catch {
    errorText.textContent = 'Cannot connect: that is not a URL';
    return;
  }
  // Same origin only: this is an inspector for this server. Another origin would have to
  // allow the read with CORS (and a Last-Event-ID header makes the request preflighted).
  if (url.origin !== location.origin) {
    errorText.textContent = `Cannot connect to ${url.origin}: only this page's origin (${location.origin}) can be inspected`;
    return;
  }
  const lastEventId = document.getElementById('inspector-last-event-id').value;
  session = { url, parser: new EventStreamParser(lastEventId), retryMs: DEFAULT_RETRY_MS, stopped: false, timer: undefined, controller: new AbortController() };
  retryText.textContent = String(DEFAULT_RETRY_MS);
  lastIdText.textContent = lastEventId || '(none)';
  connect(session, 'connecting');
});

disconnectButton.addEventListener('click', () => {
  if (!session || session.stopped) return;
  stopSession(session);
  showNote('disconnected', 'disconnect');
});
