import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatEvent, SseFormatError } from '../../lib/sse/format.ts';
import { SseDecoder } from '../support/sse-decoder.ts';

describe('formatEvent', () => {
  it('writes data as one "data: " line with a blank line after', () => {
    assert.equal(formatEvent({ data: 'hello' }), 'data: hello\n\n');
  });

  it('writes fields in a fixed order: comment, event, id, retry, data', () => {
    assert.equal(
      formatEvent({ data: 'd', retry: 10, id: '7', event: 'tick', comment: 'c' }),
      ': c\nevent: tick\nid: 7\nretry: 10\ndata: d\n\n',
    );
  });

  it('splits data on LF, CRLF and lone CR into one data line each', () => {
    assert.equal(formatEvent({ data: 'a\nb\r\nc\rd' }), 'data: a\ndata: b\ndata: c\ndata: d\n\n');
  });

  it('keeps blank lines inside data as empty data lines', () => {
    assert.equal(formatEvent({ data: 'a\n\nb\n' }), 'data: a\ndata: \ndata: b\ndata: \n\n');
  });

  it('puts exactly one space after the colon, so leading spaces in data survive', () => {
    assert.equal(formatEvent({ data: '  two spaces' }), 'data:   two spaces\n\n');
  });

  it('treats empty strings and zero as values, not absence', () => {
    assert.equal(formatEvent({ data: '' }), 'data: \n\n');
    assert.equal(formatEvent({ id: '' }), 'id: \n\n');
    assert.equal(formatEvent({ retry: 0 }), 'retry: 0\n\n');
  });

  it('refuses an empty event type, which a browser would dispatch as message', () => {
    assert.throws(() => formatEvent({ event: '', data: 'x' }), /event type is empty/);
  });

  it('refuses lone surrogates, which UTF-8 cannot carry and would turn into U+FFFD', () => {
    for (const message of [{ data: 'a\uD800b' }, { event: '\uDC00' }, { id: 'x\uD83D' }, { comment: '\uDFFF' }]) {
      assert.throws(() => formatEvent(message), /lone surrogate/, JSON.stringify(message));
    }
    assert.equal(formatEvent({ data: '\u{1F600}' }), 'data: \u{1F600}\n\n');
  });

  it('splits multi-line comments into one comment line each', () => {
    assert.equal(formatEvent({ comment: 'one\ntwo' }), ': one\n: two\n\n');
  });

  it('refuses line breaks in event, and line breaks or NUL in id', () => {
    for (const event of ['a\nb', 'a\rb', 'a\r\nb']) {
      assert.throws(() => formatEvent({ event, data: 'x' }), SseFormatError);
    }
    for (const id of ['1\n2', '1\r2', '1\0']) {
      assert.throws(() => formatEvent({ id, data: 'x' }), SseFormatError);
    }
  });

  it('refuses a retry that is not a non-negative integer', () => {
    for (const retry of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60]) {
      assert.throws(() => formatEvent({ retry }), SseFormatError);
    }
  });

  it('refuses a message with no fields at all', () => {
    assert.throws(() => formatEvent({}), SseFormatError);
  });
});

describe('framing round trip through the spec decoder', () => {
  const corpus = [
    'plain',
    '',
    '漢字とかな、한국어',
    'emoji 🎉👩‍👩‍👧 and a flag 🇳🇿',
    'lone\rCR',
    'CRLF\r\nline',
    'trailing newline\n',
    '\n\nleading blank lines',
    'blank\n\n\nlines',
    ' leading space',
    '   several leading spaces',
    ': looks like a comment',
    'data: looks like a field',
    'id: 99\nevent: fake',
    'x'.repeat(256 * 1024),
    '\u2028line separator\u2029paragraph separator',
    'tab\there',
  ];

  for (const data of corpus) {
    it(`round-trips ${JSON.stringify(data.slice(0, 30))}${data.length > 30 ? `… (${data.length} chars)` : ''}`, () => {
      const decoder = new SseDecoder();
      const bytes = Buffer.from(formatEvent({ event: 'e', id: '42', data }));
      // Feed one byte at a time: a decoder must cope with any chunking, including a CRLF or
      // a UTF-8 character split across reads.
      const events = bytes.length < 4096 ? [...bytes].flatMap((byte) => decoder.push(Uint8Array.of(byte))) : decoder.push(bytes);
      // The spec turns every line break into LF, so CR and CRLF come back as LF.
      assert.deepEqual(events, [{ type: 'e', lastEventId: '42', data: data.replace(/\r\n|\r/g, '\n') }]);
    });
  }
});

describe('property: any text survives framing and the spec decoder', () => {
  /** A small seeded generator, so a failure can be replayed exactly. */
  function random(seed: number) {
    let state = seed >>> 0 || 1;
    return (below: number) => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) % below;
    };
  }
  // Characters chosen to hit every rule: line breaks, colons, spaces, NUL, BOM, astral planes.
  const alphabet = ['a', 'Z', ' ', ':', '\r', '\n', '\r\n', '\t', '\0', '\uFEFF', 'é', '中', '🎉', '\u2028', 'data:', 'id:'];
  const randomText = (next: (below: number) => number, max: number) => {
    let text = '';
    const length = next(max);
    for (let index = 0; index < length; index++) {
      text += next(4) === 0 ? String.fromCodePoint(next(0xd7ff) + 1) : alphabet[next(alphabet.length)]!;
    }
    return text;
  };

  it('round-trips 2000 random events, modulo CR and CRLF becoming LF', () => {
    const seed = Number(process.env['PROPERTY_SEED'] ?? 20261122);
    const next = random(seed);
    for (let round = 0; round < 2000; round++) {
      const data = randomText(next, 40);
      const event = randomText(next, 8).replace(/[\r\n]/g, '') || 'x';
      const id = randomText(next, 8).replace(/[\r\n\0]/g, '');
      const decoder = new SseDecoder();
      const bytes = Buffer.from(formatEvent({ event, id, data }));
      // Split the bytes at a random point: decoders must not care where reads end.
      const cut = next(bytes.length + 1);
      const events = [...decoder.push(bytes.subarray(0, cut)), ...decoder.push(bytes.subarray(cut))];
      assert.deepEqual(
        events,
        [{ type: event, lastEventId: id, data: data.replace(/\r\n|\r/g, '\n') }],
        `seed ${seed}, round ${round}: ${JSON.stringify({ event, id, data })}`,
      );
    }
  });
});
