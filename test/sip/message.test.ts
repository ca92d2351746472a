import { describe, expect, it } from 'vitest';
import { SipParseError } from '../../src/errors.ts';
import {
  bodyText,
  MAX_HEADER_LINES,
  MAX_MESSAGE_BYTES,
  parseCSeq,
  parseNameAddr,
  parseSipMessage,
  parseUri,
  parseVia,
  serializeSipMessage,
  type SipMessage,
  tagOf,
} from '../../src/sip/message.ts';
import { fuzzMessages, parseEach, SIP_SEEDS } from '../support/sipFuzz.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Lines joined with CRLF, a blank line, then the body. */
function msg(lines: readonly string[], body = ''): Uint8Array {
  return enc.encode(lines.join('\r\n') + '\r\n\r\n' + body);
}

const VIA = 'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds';
const FROM = 'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774';
const TO = 'To: Bob <sip:bob@biloxi.example.com>';
const CALL_ID = 'Call-ID: a84b4c76e66710@pc33.atlanta.example.com';
const CSEQ = 'CSeq: 314159 INVITE';
const MAX_FORWARDS = 'Max-Forwards: 70';

/** A valid INVITE with these headers replaced or removed (value undefined) or added. */
function invite(overrides: Record<string, string | undefined> = {}, body = '', extra: readonly string[] = []): Uint8Array {
  const base: Record<string, string> = { Via: VIA, From: FROM, To: TO, 'Call-ID': CALL_ID, CSeq: CSEQ, 'Max-Forwards': MAX_FORWARDS };
  const lines = ['INVITE sip:bob@biloxi.example.com SIP/2.0'];
  for (const [name, line] of Object.entries(base)) {
    if (name in overrides) {
      const v = overrides[name];
      if (v !== undefined) lines.push(v);
    } else lines.push(line);
  }
  lines.push(...extra);
  if (!('Content-Length' in overrides)) lines.push(`Content-Length: ${enc.encode(body).length}`);
  else if (overrides['Content-Length'] !== undefined) lines.push(overrides['Content-Length']);
  return msg(lines, body);
}

/** Asserts that parsing throws a SipParseError (never anything else) and returns it. */
function parseError(bytes: Uint8Array, transport: 'udp' | 'tcp' = 'udp'): SipParseError {
  let thrown: unknown;
  try {
    parseSipMessage(bytes, transport);
  } catch (error) {
    thrown = error;
  }
  expect(thrown, 'expected a SipParseError').toBeInstanceOf(SipParseError);
  const error = thrown as SipParseError;
  expect(error.code).toBe('HP_ERR_SIP_PARSE');
  expect(typeof error.detail).toBe('number');
  return error;
}

/**
 * A message's content, for comparing two parses: headers in a stable sort by name, since only
 * the order of fields of the same name means anything (§7.3.1) and the serializer moves
 * Content-Length last.
 */
function shape(m: SipMessage): unknown {
  return {
    start: m.kind === 'request' ? [m.method, m.uri] : [m.status, m.reason],
    headers: m.headers
      .entries()
      .map((f) => [f.name, f.value])
      .sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0)),
    body: [...m.body],
  };
}

describe('parseSipMessage: header forms', () => {
  it('expands compact header names (RFC 3261 §7.3.3)', () => {
    const m = parseSipMessage(
      msg([
        'INVITE sip:bob@biloxi.example.com SIP/2.0',
        'v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK1',
        'f: <sip:alice@atlanta.example.com>;tag=1',
        't: <sip:bob@biloxi.example.com>',
        'i: abc@host',
        'CSeq: 1 INVITE',
        'm: <sip:alice@192.0.2.10>',
        'c: application/sdp',
        'k: timer',
        'l: 4',
      ], 'v=0\r'),
    );
    expect(m.headers.entries().map((f) => f.name)).toEqual(['Via', 'From', 'To', 'Call-ID', 'CSeq', 'Contact', 'Content-Type', 'Supported', 'Content-Length', 'Max-Forwards']);
    expect(m.headers.get('Call-ID')).toBe('abc@host');
    expect(m.headers.get('call-id')).toBe('abc@host');
    expect(m.headers.get('i')).toBe('abc@host');
    expect(bodyText(m)).toBe('v=0\r');
  });

  it.each([
    ['a space', 'Subject: I know you are there,\r\n pick up the phone', 'I know you are there, pick up the phone'],
    ['a tab', 'Subject: one\r\n\ttwo', 'one two'],
    ['several lines', 'Subject: a\r\n  b\r\n   c', 'a b c'],
    ['a bare LF', 'Subject: a\n b', 'a b'],
  ])('unfolds a header continued on the next line with %s (§7.3.1)', (_name, line, value) => {
    const m = parseSipMessage(invite({}, '', [line]));
    expect(m.headers.get('Subject')).toBe(value);
  });

  it('splits Via and Route lists at top-level commas, not at commas in quotes or <>', () => {
    const m = parseSipMessage(
      invite({ Via: 'Via: SIP/2.0/UDP first.example.com;branch=z9hG4bKa, SIP/2.0/TCP second.example.com:5061;branch=z9hG4bKb' }, '', [
        'Via: SIP/2.0/UDP third.example.com;branch=z9hG4bKc',
        'Route: "Doe, John" <sip:p1.example.com;lr>, <sip:p2.example.com;lr;x="a,b">',
        'Route: <sip:p3.example.com;lr>',
        'Contact: "Bob, the <builder>" <sip:bob@192.0.2.4>',
      ]),
    );
    expect(m.headers.getAll('Via').map((v) => parseVia(v).host)).toEqual(['first.example.com', 'second.example.com', 'third.example.com']);
    expect(parseVia(m.headers.getAll('Via')[1]!)).toMatchObject({ transport: 'TCP', port: 5061, branch: 'z9hG4bKb' });
    expect(m.headers.getAll('Route')).toEqual(['"Doe, John" <sip:p1.example.com;lr>', '<sip:p2.example.com;lr;x="a,b">', '<sip:p3.example.com;lr>']);
    expect(m.headers.getAll('Contact')).toHaveLength(1);
    expect(parseNameAddr(m.headers.get('Contact')!)).toMatchObject({ displayName: 'Bob, the <builder>', uri: 'sip:bob@192.0.2.4' });
  });

  it('keeps the order of repeated headers and of their values', () => {
    const m = parseSipMessage(invite({}, '', ['Record-Route: <sip:a;lr>', 'Record-Route: <sip:b;lr>, <sip:c;lr>']));
    expect(m.headers.getAll('Record-Route')).toEqual(['<sip:a;lr>', '<sip:b;lr>', '<sip:c;lr>']);
  });

  it('adds Max-Forwards: 70 to a request that has none, except ACK and CANCEL (liberal reading of §8.1.1.6)', () => {
    expect(parseSipMessage(invite({ 'Max-Forwards': undefined })).headers.get('Max-Forwards')).toBe('70');
    expect(parseSipMessage(enc.encode(SIP_SEEDS['ack']!.replace('Max-Forwards: 70\r\n', ''))).headers.has('Max-Forwards')).toBe(false);
  });

  it('skips CRLFs before the start line (§7.5) and accepts bare LF line ends', () => {
    expect(parseSipMessage(enc.encode('\r\n\r\n' + SIP_SEEDS['options']!)).kind).toBe('request');
    expect(parseSipMessage(enc.encode(SIP_SEEDS['options']!.replace(/\r\n/g, '\n')), 'tcp').kind).toBe('request');
  });
});

describe('name-addr, tags and other header values', () => {
  it.each([
    ['Bob <sip:bob@biloxi.example.com>;tag=a6c85cf', 'Bob', 'sip:bob@biloxi.example.com', 'a6c85cf'],
    ['"Bob Smith" <sip:bob@biloxi.example.com>;tag=x', 'Bob Smith', 'sip:bob@biloxi.example.com', 'x'],
    ['"A \\"quoted\\" <name>" <sip:a@b.example>;tag=q', 'A \\"quoted\\" <name>', 'sip:a@b.example', 'q'],
    ['<sip:bob@biloxi.example.com;transport=tcp>;tag=1', undefined, 'sip:bob@biloxi.example.com;transport=tcp', '1'],
    ['<sip:bob@biloxi.example.com>', undefined, 'sip:bob@biloxi.example.com', undefined],
    // addr-spec without <>: the parameters belong to the header (§20.10), the tag among them
    ['sip:bob@biloxi.example.com;tag=88', undefined, 'sip:bob@biloxi.example.com', '88'],
    ['sip:bob@biloxi.example.com', undefined, 'sip:bob@biloxi.example.com', undefined],
    ['tel:+15555550100;tag=t', undefined, 'tel:+15555550100', 't'],
  ])('%s', (text, displayName, uri, tag) => {
    const addr = parseNameAddr(text);
    expect(addr.displayName).toBe(displayName);
    expect(addr.uri).toBe(uri);
    expect(tagOf(text)).toBe(tag);
  });

  it.each([
    ['Bob <sip:bob@biloxi.example.com', 'name-addr without its closing >'],
    ['"Bob <sip:bob@biloxi.example.com>', 'unterminated quoted string'],
    ['Bob', 'not a SIP URI'],
    ['<http://example.com/>', 'not a SIP URI'],
    ['<sip:>', 'SIP URI without a host'],
    ['<sip:bob@>', 'SIP URI without a host'],
    ['<sip:@host>', 'not a SIP URI'],
    ['<sip:host:0>', 'SIP URI port out of range'],
    ['<sip:host:65536>', 'SIP URI port out of range'],
    ['<sip:bob@bi loxi>', 'not a SIP URI'],
    ['<sip:bob@biloxi.exa\ufffdmple.com>', 'not a SIP URI'],
    ['<sip:bob@"biloxi">', 'not a SIP URI'],
  ])('rejects %s', (text, reason) => {
    expect(() => parseNameAddr(text)).toThrow(SipParseError);
    expect(() => parseNameAddr(text)).toThrow(reason);
  });

  it('parses URIs with IPv6 references, ports and parameters', () => {
    expect(parseUri('sip:alice@[2001:db8::10]:5070;transport=tcp;lr')).toMatchObject({ scheme: 'sip', user: 'alice', host: '[2001:db8::10]', port: 5070 });
    expect([...parseUri('sips:Bob@Biloxi.Example.COM;Maddr=239.255.255.1;lr').params]).toEqual([['maddr', '239.255.255.1'], ['lr', '']]);
  });

  it.each([
    ['SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport', { transport: 'UDP', host: '192.0.2.1', port: 5060, branch: 'z9hG4bK1' }],
    ['SIP / 2.0 / tcp [2001:db8::1];branch=z9hG4bK2', { transport: 'TCP', host: '[2001:db8::1]', port: undefined, branch: 'z9hG4bK2' }],
  ])('parses Via %s', (text, expected) => {
    expect(parseVia(text)).toMatchObject(expected);
  });

  it.each([['1 INVITE', 1], ['2147483647 BYE', 2 ** 31 - 1], ['  42   ACK ', 42]])('parses CSeq %s', (text, seq) => {
    expect(parseCSeq(text).seq).toBe(seq);
  });
});

describe('parseSipMessage: Content-Length', () => {
  const body = 'v=0\r\n';

  it('on UDP, a missing Content-Length means the rest of the datagram (§18.3)', () => {
    const m = parseSipMessage(invite({ 'Content-Length': undefined }, body), 'udp');
    expect(bodyText(m)).toBe(body);
  });

  it('on TCP, a missing Content-Length is an error (§18.3: MUST)', () => {
    expect(parseError(invite({ 'Content-Length': undefined }, body), 'tcp').reason).toBe('no Content-Length on a stream transport');
  });

  it('a Content-Length smaller than the body cuts the body (the rest is discarded)', () => {
    const m = parseSipMessage(invite({ 'Content-Length': 'Content-Length: 3' }, body));
    expect(bodyText(m)).toBe('v=0');
  });

  it('two equal Content-Length headers are accepted', () => {
    expect(bodyText(parseSipMessage(invite({}, body, ['l: 5'])))).toBe(body);
  });

  it.each([
    ['larger than the body', 'Content-Length: 6', 'Content-Length larger than the body'],
    ['far larger than the body', 'Content-Length: 4294967295', 'Content-Length larger than the body'],
    ['negative', 'Content-Length: -1', 'Content-Length is not a number'],
    ['not a number', 'Content-Length: five', 'Content-Length is not a number'],
    ['empty', 'Content-Length:', 'Content-Length is not a number'],
    ['hexadecimal', 'Content-Length: 0x5', 'Content-Length is not a number'],
    ['eleven digits', 'Content-Length: 00000000005', 'Content-Length is not a number'],
  ])('%s → SipParseError', (_name, line, reason) => {
    for (const transport of ['udp', 'tcp'] as const) expect(parseError(invite({ 'Content-Length': line }, body), transport).reason).toBe(reason);
  });

  it('two different Content-Length headers → SipParseError (the stream could be cut two ways)', () => {
    expect(parseError(invite({}, body, ['l: 3'])).reason).toBe('contradictory Content-Length headers');
  });
});

describe('parseSipMessage: malformed input throws SipParseError and nothing else', () => {
  it.each(['Via', 'From', 'To', 'Call-ID', 'CSeq'])('a request without %s', (name) => {
    expect(parseError(invite({ [name]: undefined })).reason).toBe(`missing ${name}`);
  });

  it.each(['Via', 'From', 'To', 'Call-ID', 'CSeq'])('a response without %s', (name) => {
    const text = SIP_SEEDS['ok']!.split('\r\n').filter((l) => !l.toLowerCase().startsWith(name.toLowerCase() + ':')).join('\r\n');
    expect(parseError(enc.encode(text)).reason).toBe(`missing ${name}`);
  });

  it.each(['Via', 'From', 'To', 'Call-ID', 'CSeq'])('a request with an empty %s', (name) => {
    expect(parseError(invite({ [name]: `${name}:   ` })).reason).toBe(`missing ${name}`);
  });

  const cases: [string, Uint8Array, string][] = [
    ['a CSeq whose method differs from the request', invite({ CSeq: 'CSeq: 1 BYE' }), 'CSeq method differs from the request method'],
    ['a CSeq without a method', invite({ CSeq: 'CSeq: 1' }), 'CSeq is not "number method"'],
    ['a CSeq over 2^31 - 1 (§8.1.1.5)', invite({ CSeq: 'CSeq: 2147483648 INVITE' }), 'CSeq number too large'],
    ['a CSeq of 20 digits', invite({ CSeq: 'CSeq: 99999999999999999999 INVITE' }), 'CSeq is not "number method"'],
    ['a negative CSeq', invite({ CSeq: 'CSeq: -1 INVITE' }), 'CSeq is not "number method"'],
    ['a Via without a host', invite({ Via: 'Via: SIP/2.0/UDP' }), 'Via is not SIP/2.0/transport host'],
    ['a Via of another version', invite({ Via: 'Via: SIP/3.0/UDP host' }), 'Via is not SIP/2.0/transport host'],
    ['a Via port of 70000', invite({ Via: 'Via: SIP/2.0/UDP host:70000' }), 'Via port out of range'],
    ['a From without its >', invite({ From: 'From: <sip:alice@atlanta.example.com;tag=1' }), 'name-addr without its closing >'],
    ['a To that is not a URI', invite({ To: 'To: bob' }), 'not a SIP URI'],
    ['a Request-URI that is not a URI', msg(['INVITE bob SIP/2.0', VIA, FROM, TO, CALL_ID, CSEQ, MAX_FORWARDS]), 'not a SIP URI'],
    ['an HTTP request line', msg(['GET / HTTP/1.1', 'Host: example.com']), 'start line is neither a request nor a status line'],
    ['an HTTP status line', msg(['HTTP/1.1 200 OK', VIA, FROM, TO, CALL_ID, CSEQ]), 'start line is neither a request nor a status line'],
    ['SIP/3.0', msg(['INVITE sip:bob@biloxi.example.com SIP/3.0', VIA, FROM, TO, CALL_ID, CSEQ]), 'start line is neither a request nor a status line'],
    ['a lower-case version', msg(['INVITE sip:bob@biloxi.example.com sip/2.0', VIA, FROM, TO, CALL_ID, CSEQ]), 'start line is neither a request nor a status line'],
    ['a status code of 99', msg(['SIP/2.0 99 Low', VIA, FROM, TO, CALL_ID, CSEQ]), 'start line is neither a request nor a status line'],
    ['a status code of 700', msg(['SIP/2.0 700 High', VIA, FROM, TO, CALL_ID, CSEQ]), 'start line is neither a request nor a status line'],
    ['an empty start line', msg(['', VIA, FROM, TO, CALL_ID, CSEQ]), 'start line is neither a request nor a status line'],
    ['a method that is not a token', msg(['INV(TE sip:bob@biloxi.example.com SIP/2.0', VIA, FROM, TO, CALL_ID, 'CSeq: 1 INV(TE']), 'method is not a token'],
    ['stray CRs at the end of the start line', enc.encode(`INVITE sip:bob@biloxi.example.com SIP/2.0\r\r\r\n${[VIA, FROM, TO, CALL_ID, CSEQ].join('\r\n')}\r\n\r\n`), 'control character in the start line'],
    ['stray CRs at the end of a header line', enc.encode(`INVITE sip:bob@biloxi.example.com SIP/2.0\r\n${[VIA, FROM, TO, CALL_ID, CSEQ].join('\r\r\n')}\r\n\r\n`), 'control character in a header line'],
    ['invalid UTF-8 in the Request-URI host', new Uint8Array([...enc.encode('INVITE sip:bob@bil'), 0xed, 0xa0, 0x80, ...enc.encode(`oxi.example.com SIP/2.0\r\n${[VIA, FROM, TO, CALL_ID, CSEQ].join('\r\n')}\r\n\r\n`)]), 'not a SIP URI'],
    ['a NUL in the start line', msg(['INVITE sip:bob@biloxi.exa\u0000mple.com SIP/2.0', VIA, FROM, TO, CALL_ID, CSEQ]), 'control character in the start line'],
    ['a header name with a space', invite({}, '', ['Bad Name: x']), 'header name is not a token'],
    ['a header name with @', invite({}, '', ['X@Y: z']), 'header name is not a token'],
    ['a header name in UTF-8', invite({}, '', ['Ünïcode: x']), 'header name is not a token'],
    ['a header without a name', invite({}, '', [': value']), 'header line without a name and colon'],
    ['a header line without a colon', invite({}, '', ['NoColonHere']), 'header line without a name and colon'],
    ['a continuation line before any header', msg(['INVITE sip:bob@biloxi.example.com SIP/2.0', ' folded', VIA, FROM, TO, CALL_ID, CSEQ]), 'continuation line before any header'],
    ['a bare CR inside a header value', invite({}, '', ['Subject: a\rInjected: b']), 'control character in a header line'],
    ['a NUL inside a header value', invite({}, '', ['Subject: a\u0000b']), 'control character in a header line'],
    ['an escape sequence in a header value', invite({}, '', ['Subject: \u001b[2J']), 'control character in a header line'],
    [`more than ${MAX_HEADER_LINES} header lines`, invite({}, '', Array.from({ length: MAX_HEADER_LINES }, (_, i) => `X-H${i}: ${i}`)), 'too many header lines'],
    ['a message over 64 KiB', invite({}, '', [`Subject: ${'x'.repeat(MAX_MESSAGE_BYTES)}`]), 'message too large'],
    ['a message with no blank line', enc.encode('INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP host\r\n'), 'no blank line after the headers'],
    ['nothing at all', new Uint8Array(0), 'no blank line after the headers'],
    ['only CRLFs', enc.encode('\r\n'.repeat(100)), 'no blank line after the headers'],
  ];
  it.each(cases)('%s', (_name, bytes, reason) => {
    expect(parseError(bytes).reason).toBe(reason);
  });

  it('binary garbage never throws anything but SipParseError', () => {
    let seed = 12345;
    for (let n = 0; n < 2000; n++) {
      const bytes = new Uint8Array((n * 37) % 1500);
      for (let i = 0; i < bytes.length; i++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        bytes[i] = seed >>> 24;
      }
      // a third of them behind a plausible start line, so the header code sees the noise
      const input = n % 3 === 0 ? new Uint8Array([...enc.encode('INVITE sip:a@b SIP/2.0\r\n'), ...bytes]) : bytes;
      expect(() => parseSipMessage(input)).toThrow(SipParseError);
    }
  });

  it('the fuzz corpus (10,000 mutated messages, UDP and TCP) throws SipParseError or parses, in well under a second per pass', () => {
    const corpus = fuzzMessages(10_000, 7);
    for (const transport of ['udp', 'tcp'] as const) {
      const started = performance.now();
      const { parsed, rejected } = parseEach(corpus, (b) => parseSipMessage(b, transport), (e): e is SipParseError => e instanceof SipParseError, (e) => e.reason);
      expect(parsed + [...rejected.values()].reduce((a, b) => a + b, 0)).toBe(corpus.length);
      expect(rejected.size).toBeGreaterThan(15); // many different rules fire
      expect(performance.now() - started).toBeLessThan(3_000);
    }
  });

  it('the fuzz corpus is the same for the same seed, and different for another', () => {
    const a = fuzzMessages(200, 3);
    expect(fuzzMessages(200, 3)).toEqual(a);
    expect(fuzzMessages(200, 4)).not.toEqual(a);
  });
});

// ---------------------------------------------------------------------------------------------
// round trips: realistic messages, written out by hand after RFC 3665 §2.1 (basic session),
// RFC 3261 §11 (OPTIONS), RFC 4317 §2.1 (audio offer/answer) and RFC 2976 INFO with
// application/dtmf-relay, in the serializer's canonical form (Content-Length last).
// ---------------------------------------------------------------------------------------------

const rfc4317Offer = ['v=0', 'o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com', 's=', 'c=IN IP4 host.atlanta.example.com', 't=0 0', 'm=audio 49170 RTP/AVP 0 8 97', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:97 iLBC/8000', ''].join('\r\n');
const rfc4317Answer = ['v=0', 'o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com', 's=', 'c=IN IP4 host.biloxi.example.com', 't=0 0', 'm=audio 49174 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', ''].join('\r\n');

const withBody = (lines: readonly string[], body = ''): string => [...lines, `Content-Length: ${enc.encode(body).length}`].join('\r\n') + '\r\n\r\n' + body;

const ROUND_TRIPS: Record<string, string> = {
  'INVITE with an SDP offer (RFC 3665 F1, RFC 4317)': withBody(
    [
      'INVITE sip:bob@biloxi.example.com SIP/2.0',
      'Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9',
      'Max-Forwards: 70',
      'From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl',
      'To: Bob <sip:bob@biloxi.example.com>',
      'Call-ID: 3848276298220188511@atlanta.example.com',
      'CSeq: 1 INVITE',
      'Contact: <sip:alice@client.atlanta.example.com;transport=tcp>',
      'Content-Type: application/sdp',
    ],
    rfc4317Offer,
  ),
  '180 Ringing (F2)': withBody([
    'SIP/2.0 180 Ringing',
    'Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101',
    'From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl',
    'To: Bob <sip:bob@biloxi.example.com>;tag=8321234356',
    'Call-ID: 3848276298220188511@atlanta.example.com',
    'CSeq: 1 INVITE',
    'Contact: <sip:bob@client.biloxi.example.com;transport=tcp>',
  ]),
  '200 OK with the SDP answer (F3)': withBody(
    [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101',
      'From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl',
      'To: Bob <sip:bob@biloxi.example.com>;tag=8321234356',
      'Call-ID: 3848276298220188511@atlanta.example.com',
      'CSeq: 1 INVITE',
      'Contact: <sip:bob@client.biloxi.example.com;transport=tcp>',
      'Content-Type: application/sdp',
    ],
    rfc4317Answer,
  ),
  'ACK (F4)': withBody([
    'ACK sip:bob@client.biloxi.example.com SIP/2.0',
    'Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bd5',
    'Max-Forwards: 70',
    'From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl',
    'To: Bob <sip:bob@biloxi.example.com>;tag=8321234356',
    'Call-ID: 3848276298220188511@atlanta.example.com',
    'CSeq: 1 ACK',
  ]),
  'BYE (F5)': withBody([
    'BYE sip:alice@client.atlanta.example.com SIP/2.0',
    'Via: SIP/2.0/TCP client.biloxi.example.com:5060;branch=z9hG4bKnashds7',
    'Max-Forwards: 70',
    'From: Bob <sip:bob@biloxi.example.com>;tag=8321234356',
    'To: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl',
    'Call-ID: 3848276298220188511@atlanta.example.com',
    'CSeq: 1 BYE',
  ]),
  '200 OK to the BYE (F6)': withBody([
    'SIP/2.0 200 OK',
    'Via: SIP/2.0/TCP client.biloxi.example.com:5060;branch=z9hG4bKnashds7;received=192.0.2.201',
    'From: Bob <sip:bob@biloxi.example.com>;tag=8321234356',
    'To: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl',
    'Call-ID: 3848276298220188511@atlanta.example.com',
    'CSeq: 1 BYE',
  ]),
  'OPTIONS (RFC 3261 §11.1)': withBody([
    'OPTIONS sip:carol@chicago.example.com SIP/2.0',
    'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877',
    'Max-Forwards: 70',
    'To: <sip:carol@chicago.example.com>',
    'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
    'Call-ID: a84b4c76e66710',
    'CSeq: 63104 OPTIONS',
    'Contact: <sip:alice@pc33.atlanta.example.com>',
    'Accept: application/sdp',
  ]),
  '200 OK to OPTIONS (RFC 3261 §11.2)': withBody([
    'SIP/2.0 200 OK',
    'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877;received=192.0.2.4',
    'To: <sip:carol@chicago.example.com>;tag=93810874',
    'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
    'Call-ID: a84b4c76e66710',
    'CSeq: 63104 OPTIONS',
    'Contact: <sip:carol@chicago.example.com>',
    'Contact: <mailto:carol@chicago.example.com>',
    'Allow: INVITE, ACK, CANCEL, OPTIONS, BYE',
    'Accept: application/sdp',
    'Accept-Encoding: gzip',
    'Accept-Language: en',
    'Supported: foo',
  ]),
  'INFO with application/dtmf-relay': withBody(
    [
      'INFO sip:bob@client.biloxi.example.com SIP/2.0',
      'Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf11;rport=5060;received=192.0.2.101',
      'Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1;received=192.0.2.1',
      'Max-Forwards: 69',
      'From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl',
      'To: Bob <sip:bob@biloxi.example.com>;tag=8321234356',
      'Call-ID: 3848276298220188511@atlanta.example.com',
      'CSeq: 2 INFO',
      'Content-Type: application/dtmf-relay',
    ],
    'Signal=5\r\nDuration=160\r\n',
  ),
  'REGISTER with a UTF-8 display name and a non-ASCII body': withBody(
    [
      'REGISTER sip:registrar.biloxi.example.com SIP/2.0',
      'Via: SIP/2.0/UDP [2001:db8::4]:5060;branch=z9hG4bKnashds7',
      'Max-Forwards: 70',
      'To: "Zoë Ñandú" <sip:zoe@biloxi.example.com>',
      'From: "Zoë Ñandú" <sip:zoe@biloxi.example.com>;tag=456248',
      'Call-ID: 843817637684230@998sdasdh09',
      'CSeq: 1826 REGISTER',
      'Contact: <sip:zoe@[2001:db8::4]>;expires=7200',
      'Content-Type: text/plain;charset=utf-8',
    ],
    'café ☕',
  ),
};

describe('serializeSipMessage(parseSipMessage(x))', () => {
  it.each(Object.entries(ROUND_TRIPS))('%s comes back byte for byte, on UDP and TCP', (_name, text) => {
    const bytes = enc.encode(text);
    for (const transport of ['udp', 'tcp'] as const) {
      const out = serializeSipMessage(parseSipMessage(bytes, transport));
      expect(dec.decode(out)).toBe(text);
      expect(out).toEqual(bytes);
    }
  });

  it.each(Object.entries(SIP_SEEDS))('the fuzz seed %s parses, and parses the same after a round trip', (_name, text) => {
    const first = parseSipMessage(enc.encode(text), 'tcp');
    expect(shape(parseSipMessage(serializeSipMessage(first), 'tcp'))).toEqual(shape(first));
  });

  it('a message in compact, folded, LF-only form comes back in canonical form with the same content', () => {
    const text = ['INVITE sip:bob@biloxi.example.com SIP/2.0', 'v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1,SIP/2.0/UDP b.example.com;branch=z9hG4bK2', 'f: <sip:alice@atlanta.example.com>;tag=1', 't: <sip:bob@biloxi.example.com>', 'i: x@y', 'CSeq: 1 INVITE', 'Subject: one', '  two', 'l: 2', '', 'hi'].join('\n');
    const first = parseSipMessage(enc.encode(text));
    const out = dec.decode(serializeSipMessage(first));
    expect(out).toContain('\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1,SIP/2.0/UDP b.example.com;branch=z9hG4bK2\r\n');
    expect(out).toContain('\r\nSubject: one two\r\n');
    expect(out.endsWith('\r\nContent-Length: 2\r\n\r\nhi')).toBe(true);
    expect(shape(parseSipMessage(enc.encode(out), 'tcp'))).toEqual(shape(first));
  });
});
