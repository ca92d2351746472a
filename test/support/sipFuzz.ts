/**
 * A deterministic SIP fuzz corpus, and a fast end-to-end survival check built on it.
 *
 * `fuzzMessages(count, seed)` mutates a few valid seed messages (an RFC 3665 §2.1-style basic
 * session, OPTIONS, an RFC 2976 INFO carrying application/dtmf-relay, REGISTER) with 1–3 of
 * the mutators below, chosen by a seeded PRNG: the same (count, seed) always gives the same
 * bytes. Most results are malformed; a few stay valid, which is fine — the point is that a
 * receiver survives all of them and still answers afterwards.
 *
 * `assertSurvivesFuzz(target)` throws the corpus at a live SIP endpoint over UDP or TCP (one
 * TCP connection per message, so each message starts a fresh stream), checks that everything
 * it got back is a well-formed SIP response and that no malformed *response* was answered, and
 * then checks that a valid OPTIONS is still answered. It is written for any process: the
 * transport tests point it at `UdpTcpTransport`, the end-to-end test at the whole of hushpay.
 */

import dgram from 'node:dgram';
import net from 'node:net';
import { parseSipMessage, type SipMessage } from '../../src/sip/message.ts';

// ---------------------------------------------------------------------------------------------
// seeds (written out by hand after RFC 3665 §2.1, RFC 4317 offers and RFC 2976 INFO)
// ---------------------------------------------------------------------------------------------

const crlf = (lines: readonly string[], body = ''): string => lines.join('\r\n') + '\r\n\r\n' + body;

const OFFER_SDP = crlf([
  'v=0',
  'o=alice 2890844526 2890844526 IN IP4 192.0.2.10',
  's=-',
  'c=IN IP4 192.0.2.10',
  't=0 0',
  'm=audio 49170 RTP/AVP 0 8 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-15',
  'a=ptime:20',
  'a=sendrecv',
]).slice(0, -2);

const ANSWER_SDP = crlf([
  'v=0',
  'o=hushpay 1 1 IN IP4 192.0.2.20',
  's=hushpay',
  'c=IN IP4 192.0.2.20',
  't=0 0',
  'm=audio 30000 RTP/AVP 0 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-15',
  'a=sendrecv',
]).slice(0, -2);

const withLength = (lines: readonly string[], body = ''): string =>
  crlf([...lines, `Content-Length: ${Buffer.byteLength(body)}`], body);

/** Valid messages the corpus is grown from. Each parses with `parseSipMessage`. */
export const SIP_SEEDS: Readonly<Record<string, string>> = {
  invite: withLength(
    [
      'INVITE sip:bob@biloxi.example.com SIP/2.0',
      'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds',
      'Max-Forwards: 70',
      'To: Bob <sip:bob@biloxi.example.com>',
      'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
      'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
      'CSeq: 314159 INVITE',
      'Contact: <sip:alice@pc33.atlanta.example.com>',
      'Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, INFO',
      'Content-Type: application/sdp',
    ],
    OFFER_SDP,
  ),
  ringing: withLength([
    'SIP/2.0 180 Ringing',
    'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.10',
    'To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf',
    'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
    'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
    'CSeq: 314159 INVITE',
    'Contact: <sip:bob@192.0.2.4>',
  ]),
  ok: withLength(
    [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.10',
      'To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf',
      'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
      'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
      'CSeq: 314159 INVITE',
      'Contact: <sip:bob@192.0.2.4>',
      'Content-Type: application/sdp',
    ],
    ANSWER_SDP,
  ),
  ack: withLength([
    'ACK sip:bob@192.0.2.4 SIP/2.0',
    'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds9',
    'Max-Forwards: 70',
    'To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf',
    'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
    'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
    'CSeq: 314159 ACK',
  ]),
  info: withLength(
    [
      'INFO sip:bob@192.0.2.4 SIP/2.0',
      'Via: SIP/2.0/TCP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds10;rport',
      'Max-Forwards: 70',
      'To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf',
      'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
      'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
      'CSeq: 314160 INFO',
      'Content-Type: application/dtmf-relay',
    ],
    'Signal=5\r\nDuration=160\r\n',
  ),
  bye: withLength([
    'BYE sip:alice@pc33.atlanta.example.com SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10',
    'Max-Forwards: 70',
    'From: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf',
    'To: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
    'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
    'CSeq: 231 BYE',
  ]),
  options: withLength([
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
  register: withLength([
    'REGISTER sip:registrar.biloxi.example.com SIP/2.0',
    'v: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7',
    'Max-Forwards: 70',
    't: Bob <sip:bob@biloxi.example.com>',
    'f: Bob <sip:bob@biloxi.example.com>;tag=456248',
    'i: 843817637684230@998sdasdh09',
    'CSeq: 1826 REGISTER',
    'm: <sip:bob@192.0.2.4>',
    'Expires: 7200',
  ]),
};

// ---------------------------------------------------------------------------------------------
// PRNG
// ---------------------------------------------------------------------------------------------

/** mulberry32: small, fast, good enough to pick mutations; the same seed gives the same stream. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Rng {
  (): number;
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
}

function rng(seed: number): Rng {
  const next = prng(seed);
  const r = (() => next()) as Rng;
  r.int = (n) => Math.floor(next() * n);
  r.pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  return r;
}

// ---------------------------------------------------------------------------------------------
// mutators: each takes the message as bytes and returns new bytes
// ---------------------------------------------------------------------------------------------

const enc = new TextEncoder();
const latin1 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
const fromLatin1 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'latin1'));

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Splits a message into its start line, header lines and body (on the first blank line). */
function split(bytes: Uint8Array): { start: string; headers: string[]; body: string } {
  const text = latin1(bytes);
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const body = end < 0 ? '' : text.slice(end + 4);
  const [start = '', ...headers] = head.split('\r\n');
  return { start, headers, body };
}

function join(parts: { start: string; headers: string[]; body: string }): Uint8Array {
  return fromLatin1([parts.start, ...parts.headers].join('\r\n') + '\r\n\r\n' + parts.body);
}

function editHeaders(bytes: Uint8Array, edit: (headers: string[], r: Rng) => string[], r: Rng): Uint8Array {
  const parts = split(bytes);
  return join({ ...parts, headers: edit(parts.headers, r) });
}

const isHeader = (line: string, ...names: string[]): boolean => {
  const colon = line.indexOf(':');
  const name = (colon < 0 ? line : line.slice(0, colon)).trim().toLowerCase();
  return names.includes(name);
};

const MANDATORY: readonly (readonly string[])[] = [
  ['via', 'v'],
  ['call-id', 'i'],
  ['cseq'],
  ['from', 'f'],
  ['to', 't'],
  ['max-forwards'],
  ['content-length', 'l'],
];

const BAD_URIS = [
  '',
  'sip:',
  'sip:@',
  'sip:alice@',
  'sip:@host',
  'sip:host:0',
  'sip:host:99999',
  'sip:[::1',
  'sip:alice@[zz::1]',
  'http://example.com/',
  'sip:al ice@host',
  'sip:host;;;;;=;=',
  'sip:host?%%%%',
  'sip:%E0%A4%A@host',
  '<sip:host>',
  'sips:',
  'tel:',
  '"',
  '\u00ff\u00fe',
  'sip:' + 'a'.repeat(4000) + '@' + 'b'.repeat(4000),
];

const BAD_CONTENT_LENGTHS = ['-1', '-0', 'abc', '', ' ', '1e3', '0x10', '99999999999', '4294967296', '1.5', '+5', '00000000000000000000005', '5 5', '\u00bd'];

const BAD_START_LINES = [
  'INVITE sip:bob@biloxi.example.com SIP/3.0',
  'INVITE sip:bob@biloxi.example.com sip/2.0',
  'INVITE  sip:bob@biloxi.example.com  SIP/2.0',
  'INVITE sip:bob@biloxi.example.com',
  'INVITE',
  '',
  'GET / HTTP/1.1',
  'HTTP/1.1 200 OK',
  'SIP/2.0 999 Weird',
  'SIP/2.0 99 Too Small',
  'SIP/2.0 2000 OK',
  'SIP/2.0',
  'SIP/2.0 OK',
  'IN(VITE sip:bob@host SIP/2.0',
  'INV\u00c9TE sip:bob@host SIP/2.0',
  '\u0000\u0000\u0000',
  'INVITE sip:bob@host SIP/2.0 trailing',
  'SSH-2.0-OpenSSH_9.6',
];

type Mutator = (bytes: Uint8Array, r: Rng) => Uint8Array;

export const MUTATORS: Readonly<Record<string, Mutator>> = {
  truncate: (b, r) => b.slice(0, r.int(b.length)),
  truncateInHeaders: (b, r) => {
    const end = latin1(b).indexOf('\r\n\r\n');
    return b.slice(0, r.int(end < 0 ? b.length : end + 2));
  },
  oversizedHeader: (b, r) => {
    const size = r.pick([65_536, 65_536, 70_000, 60_000, 32_768]);
    const name = r.pick(['Subject', 'X-Padding', 'Via', 'Call-ID', 'Contact', 'Route']);
    return editHeaders(b, (h) => [...h.slice(0, 2), `${name}: ${'x'.repeat(size)}`, ...h.slice(2)], r);
  },
  oversizedLineNoColon: (b, r) => editHeaders(b, (h) => [...h.slice(0, 1), 'A'.repeat(r.pick([65_536, 66_000])), ...h.slice(1)], r),
  contentLengthTooBig: (b, r) => editHeaders(b, (h) => h.map((l) => (isHeader(l, 'content-length', 'l') ? `Content-Length: ${Number(l.split(':')[1]) + 1 + r.int(5000)}` : l)), r),
  contentLengthTooSmall: (b, r) => editHeaders(b, (h) => h.map((l) => (isHeader(l, 'content-length', 'l') ? `Content-Length: ${Math.max(0, Number(l.split(':')[1]) - 1 - r.int(50))}` : l)), r),
  contentLengthBad: (b, r) => editHeaders(b, (h) => h.map((l) => (isHeader(l, 'content-length', 'l') ? `Content-Length: ${r.pick(BAD_CONTENT_LENGTHS)}` : l)), r),
  contentLengthTwice: (b, r) => editHeaders(b, (h) => [...h, `l: ${r.int(300)}`], r),
  dropMandatory: (b, r) => {
    const names = r.pick(MANDATORY);
    return editHeaders(b, (h) => h.filter((l) => !isHeader(l, ...names)), r);
  },
  emptyMandatory: (b, r) => {
    const names = r.pick(MANDATORY);
    return editHeaders(b, (h) => h.map((l) => (isHeader(l, ...names) ? `${l.split(':')[0]}:` : l)), r);
  },
  duplicateHeader: (b, r) => editHeaders(b, (h) => (h.length ? [...h, h[r.int(h.length)]!] : h), r),
  contradictoryHeaders: (b, r) =>
    editHeaders(
      b,
      (h) => [
        ...h,
        r.pick(['Call-ID: other-call@elsewhere', 'CSeq: 1 BYE', 'To: <sip:mallory@evil.example>;tag=zzz', 'From: <sip:eve@evil.example>', 'Via: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bKother', 'Max-Forwards: 0']),
      ],
      r,
    ),
  bitFlips: (b, r) => {
    const out = b.slice();
    const flips = 1 + r.int(8);
    for (let i = 0; i < flips && out.length; i++) {
      const at = r.int(out.length);
      out[at] = out[at]! ^ (1 << r.int(8));
    }
    return out;
  },
  byteNoise: (b, r) => {
    const out = b.slice();
    for (let i = 0; i < 1 + r.int(32) && out.length; i++) out[r.int(out.length)] = r.int(256);
    return out;
  },
  randomBinary: (_b, r) => {
    const out = new Uint8Array(r.int(3000));
    for (let i = 0; i < out.length; i++) out[i] = r.int(256);
    return out;
  },
  randomBinaryAfterStartLine: (b, r) => {
    const nl = latin1(b).indexOf('\r\n');
    const noise = new Uint8Array(r.int(2000));
    for (let i = 0; i < noise.length; i++) noise[i] = r.int(256);
    return concat(b.slice(0, nl + 2), noise);
  },
  crlfStormBefore: (b, r) => concat(fromLatin1('\r\n'.repeat(1 + r.int(2000))), b),
  crlfStormInside: (b, r) => {
    const at = r.int(b.length);
    return concat(b.slice(0, at), fromLatin1(r.pick(['\r\n', '\n', '\r', '\r\r\n']).repeat(1 + r.int(500))), b.slice(at));
  },
  onlyCrlf: (_b, r) => fromLatin1('\r\n'.repeat(r.int(5000))),
  bareLfLineEnds: (b) => fromLatin1(latin1(b).replace(/\r\n/g, '\n')),
  bareCrLineEnds: (b) => fromLatin1(latin1(b).replace(/\r\n/g, '\r')),
  invalidUtf8: (b, r) => {
    const bad = r.pick([[0xc0, 0x80], [0xff], [0xfe, 0xff], [0x80, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98]]);
    const at = r.int(b.length);
    return concat(b.slice(0, at), new Uint8Array(bad), b.slice(at));
  },
  invalidUtf8DisplayName: (b, r) =>
    editHeaders(b, (h) => h.map((l) => (isHeader(l, 'from', 'f') ? `From: "\u00c0\u0080\u00ff" <sip:alice@atlanta.example.com>;tag=${r.int(1e6)}` : l)), r),
  nulBytes: (b, r) => {
    const out = b.slice();
    for (let i = 0; i < 1 + r.int(4) && out.length; i++) out[r.int(out.length)] = 0;
    return out;
  },
  hugeCSeq: (b, r) =>
    editHeaders(b, (h) => h.map((l) => (isHeader(l, 'cseq') ? `CSeq: ${r.pick(['2147483648', '4294967296', '99999999999999999999', '-1', '0x10', '1e9', '', 'INVITE', '1 2 INVITE'])} ${l.split(' ').pop() ?? ''}` : l)), r),
  cseqMethodMismatch: (b, r) => editHeaders(b, (h) => h.map((l) => (isHeader(l, 'cseq') ? `CSeq: 1 ${r.pick(['BYE', 'INVITE', 'ACK', 'FOO', 'in vite', '@@'])}` : l)), r),
  badRequestUri: (b, r) => {
    const parts = split(b);
    const [method = 'INVITE'] = parts.start.split(' ');
    return join({ ...parts, start: `${method} ${r.pick(BAD_URIS)} SIP/2.0` });
  },
  badHeaderUri: (b, r) => {
    const names = r.pick([['from', 'f'], ['to', 't'], ['contact', 'm']]);
    const uri = r.pick(BAD_URIS);
    return editHeaders(b, (h) => h.map((l) => (isHeader(l, ...names) ? `${l.split(':')[0]}: ${r() < 0.5 ? `<${uri}>` : uri}` : l)), r);
  },
  badVia: (b, r) => {
    const via = r.pick(['SIP/2.0/UDP', 'SIP/2.0/UDP ', 'SIP/2.0 host', 'SIP/3.0/UDP host', 'SIP/2.0/UDP host:0', 'SIP/2.0/UDP host:70000', 'SIP/2.0/UDP [::1', 'SIP/2.0/UDP host;branch', ',', ',,,,', 'SIP/2.0/UDP host, garbage', '"', 'SIP/2.0/UDP ' + 'h'.repeat(5000)]);
    return editHeaders(b, (h) => h.map((l) => (isHeader(l, 'via', 'v') ? `Via: ${via}` : l)), r);
  },
  manyVias: (b, r) => editHeaders(b, (h) => h.map((l) => (isHeader(l, 'via', 'v') ? `${l}${', SIP/2.0/UDP relay.example.com;branch=z9hG4bKx'.repeat(100 + r.int(1000))}` : l)), r),
  badStartLine: (b, r) => join({ ...split(b), start: r.pick(BAD_START_LINES) }),
  requestToResponse: (b, r) => join({ ...split(b), start: `SIP/2.0 ${r.pick(['200 OK', '400 Bad Request', '180 Ringing', '487 Request Terminated'])}` }),
  badHeaderName: (b, r) =>
    editHeaders(b, (h) => {
      const out = [...h];
      out.splice(r.int(out.length + 1), 0, r.pick(['Bad Name: x', ': no name', 'NoColonHere', 'Ünïcode: x', 'X@Y: z', '\u0000: nul', '(comment): x', '"quoted": x']));
      return out;
    }, r),
  continuationFirst: (b, r) => editHeaders(b, (h) => [r.pick([' folded', '\tfolded']), ...h], r),
  folding: (b, r) => editHeaders(b, (h) => h.map((l) => (r() < 0.3 && l.includes(' ') ? l.replace(' ', '\r\n  ') : l)), r),
  tooManyHeaders: (b, r) => editHeaders(b, (h) => [...h, ...Array.from({ length: 257 + r.int(300) }, (_, i) => `X-H${i}: ${i}`)], r),
  bodyWithoutContentType: (b, r) => {
    const parts = split(b);
    const body = parts.body || 'v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\n';
    const headers = parts.headers.filter((l) => !isHeader(l, 'content-type', 'c', 'content-length', 'l'));
    return join({ ...parts, headers: [...headers, `Content-Length: ${body.length}`], body: r() < 0.5 ? body : body + '\u0000\u00ff' });
  },
  unterminatedQuote: (b, r) => editHeaders(b, (h) => h.map((l) => (isHeader(l, 'from', 'f', 'to', 't') ? l.replace(/<.*$/, '"no end <sip:x@y>') : l)), r),
  unterminatedAngle: (b, r) => editHeaders(b, (h) => h.map((l) => (isHeader(l, 'from', 'f', 'to', 't', 'contact', 'm') ? l.replace('>', '') : l)), r),
  deleteSpan: (b, r) => {
    const at = r.int(b.length);
    return concat(b.slice(0, at), b.slice(Math.min(b.length, at + 1 + r.int(64))));
  },
  duplicateSpan: (b, r) => {
    const at = r.int(b.length);
    const span = b.slice(at, at + 1 + r.int(128));
    return concat(b.slice(0, at), span, span, b.slice(at));
  },
  spliceTwo: (b, r) => {
    const other = enc.encode(r.pick(Object.values(SIP_SEEDS)));
    return concat(b.slice(0, r.int(b.length)), other.slice(r.int(other.length)));
  },
  twoMessages: (b, r) => concat(b, enc.encode(r.pick(Object.values(SIP_SEEDS)))),
  controlCharsInValue: (b, r) => editHeaders(b, (h) => [...h, `Subject: a${r.pick(['\r', '\u0000', '\u0007', '\u001b[2J', '\u007f'])}b`], r),
  longParams: (b, r) => editHeaders(b, (h) => h.map((l) => (isHeader(l, 'to', 't') ? `${l}${';p'.repeat(2000 + r.int(8000))}` : l)), r),
  emptyMessage: () => new Uint8Array(0),
  oneByte: (_b, r) => new Uint8Array([r.int(256)]),
};

const MUTATOR_NAMES = Object.keys(MUTATORS);

/**
 * `count` mutated messages, reproducible from `seed`. Each applies 1–3 mutators to a seed; about
 * 2 % are oversized (over 64 KiB), so the corpus of 10,000 stays near 25 MB.
 */
export function fuzzMessages(count: number, seed = 1): Uint8Array[] {
  const r = rng(seed);
  const seeds = Object.values(SIP_SEEDS).map((s) => enc.encode(s));
  const heavy = new Set(['oversizedHeader', 'oversizedLineNoColon']);
  const out: Uint8Array[] = [];
  while (out.length < count) {
    let bytes: Uint8Array = r.pick(seeds);
    const rounds = 1 + r.int(3);
    for (let i = 0; i < rounds; i++) {
      let name = r.pick(MUTATOR_NAMES);
      // keep oversized messages rare: re-draw most of the time
      if (heavy.has(name) && r() < 0.85) name = r.pick(MUTATOR_NAMES);
      if (heavy.has(name) && bytes.length > 80_000) continue;
      bytes = MUTATORS[name]!(bytes, r);
    }
    out.push(bytes);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// the end-to-end survival check
// ---------------------------------------------------------------------------------------------

export interface FuzzTarget {
  readonly transport: 'udp' | 'tcp';
  readonly host: string;
  readonly port: number;
}

export interface FuzzRunOptions {
  /** The corpus; default `fuzzMessages(count, seed)`. */
  readonly messages?: readonly Uint8Array[];
  readonly count?: number;
  readonly seed?: number;
  /** TCP: connections open at once (one message each). Default 64. */
  readonly tcpConcurrency?: number;
  /** UDP: bytes sent before a 1 ms pause, so a receiver (perhaps in this process) keeps up. Default 48 KiB. */
  readonly udpBurstBytes?: number;
  /** How long to wait for the OPTIONS probe's answer (it is retried within this time). */
  readonly probeTimeoutMs?: number;
  /** Which probe answers count as alive; default any final response (200–699). */
  readonly probeAccepts?: (status: number) => boolean;
}

export interface FuzzRunReport {
  readonly sent: number;
  /** Messages not sent (a datagram over 65,507 bytes cannot be sent on UDP). */
  readonly skipped: number;
  /** SIP responses that came back while the corpus was sent (400s and the odd 200). */
  readonly responses: number;
  readonly badRequests: number;
  /** TCP connections the target reset (a clean close after a framing error is not counted). */
  readonly resetByPeer: number;
  readonly probeStatus: number;
  readonly elapsedMs: number;
}

/** The assertion failure `assertSurvivesFuzz` throws. */
export class FuzzSurvivalError extends Error {
  override readonly name = 'FuzzSurvivalError';
}

const UDP_MAX_PAYLOAD = 65_507;

/**
 * Sends the fuzz corpus to `target`, then asserts it still answers a valid OPTIONS. Also asserts
 * that whatever came back parsed as SIP responses, and (TCP, where each connection carries one
 * message so replies can be matched) that no malformed response was answered.
 */
export async function assertSurvivesFuzz(target: FuzzTarget, options: FuzzRunOptions = {}): Promise<FuzzRunReport> {
  const started = performance.now();
  const messages = options.messages ?? fuzzMessages(options.count ?? 10_000, options.seed ?? 1);
  const tally = target.transport === 'udp' ? await blastUdp(target, messages, options.udpBurstBytes ?? 48 * 1024) : await blastTcp(target, messages, options.tcpConcurrency ?? 64);
  if (tally.notSip > 0) throw new FuzzSurvivalError(`${tally.notSip} replies from the target were not well-formed SIP responses; the first: ${tally.firstNotSip}`);
  if (tally.answeredResponses > 0) throw new FuzzSurvivalError(`the target answered ${tally.answeredResponses} malformed responses (RFC 3261 §18.1.2: responses are never answered)`);
  const probeStatus = await probeOptions(target, options.probeTimeoutMs ?? 2_000);
  const accepts = options.probeAccepts ?? ((status: number) => status >= 200 && status < 700);
  if (probeStatus === 0) throw new FuzzSurvivalError(`no answer to OPTIONS over ${target.transport} after the fuzz corpus`);
  if (!accepts(probeStatus)) throw new FuzzSurvivalError(`OPTIONS after the fuzz corpus answered ${probeStatus}`);
  return { sent: tally.sent, skipped: tally.skipped, responses: tally.responses, badRequests: tally.badRequests, resetByPeer: tally.resetByPeer, probeStatus, elapsedMs: performance.now() - started };
}

interface Tally {
  sent: number;
  requests: number;
  skipped: number;
  responses: number;
  badRequests: number;
  notSip: number;
  /** The first reply that was not SIP, with the parser's complaint, for the failure message. */
  firstNotSip?: string;
  answeredResponses: number;
  resetByPeer: number;
}

const newTally = (): Tally => ({ requests: 0, sent: 0, skipped: 0, responses: 0, badRequests: 0, notSip: 0, answeredResponses: 0, resetByPeer: 0 });

function countReply(tally: Tally, bytes: Uint8Array, transport: 'udp' | 'tcp'): SipMessage | undefined {
  try {
    const m = parseSipMessage(bytes, transport);
    if (m.kind !== 'response') {
      // a well-formed request of the target's own (a mutated INVITE that became a call gets
      // a BYE when its 200 is never ACKed): valid SIP, not a reply
      tally.requests++;
      return undefined;
    }
    tally.responses++;
    if (m.status === 400) tally.badRequests++;
    return m;
  } catch (error) {
    tally.notSip++;
    tally.firstNotSip ??= `${(error as Error).message}: ${JSON.stringify(Buffer.from(bytes).toString('latin1').slice(0, 600))}`;
    return undefined;
  }
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function blastUdp(target: FuzzTarget, messages: readonly Uint8Array[], burstBytes: number): Promise<Tally> {
  const tally = newTally();
  const socket = dgram.createSocket(net.isIPv6(target.host) ? 'udp6' : 'udp4');
  socket.on('message', (msg) => countReply(tally, msg, 'udp'));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  let inBurst = 0;
  let pending = 0;
  for (const m of messages) {
    if (m.length > UDP_MAX_PAYLOAD) {
      tally.skipped++;
      continue;
    }
    pending++;
    socket.send(m, target.port, target.host, () => pending--);
    tally.sent++;
    inBurst += m.length + 64;
    if (inBurst >= burstBytes) {
      inBurst = 0;
      await yieldToLoop();
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
  while (pending > 0) await yieldToLoop();
  await new Promise((resolve) => setTimeout(resolve, 50)); // late replies
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return tally;
}

/** Splits a TCP byte stream into SIP messages by Content-Length (replies only; lenient). */
function takeFrames(buffer: Buffer): { frames: Buffer[]; rest: Buffer } {
  const frames: Buffer[] = [];
  let rest = buffer;
  for (;;) {
    while (rest.length && (rest[0] === 0x0d || rest[0] === 0x0a)) rest = rest.subarray(1);
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const length = /\r\n(?:content-length|l)[ \t]*:[ \t]*(\d+)/i.exec(rest.subarray(0, end + 2).toString('latin1'));
    const total = end + 4 + Number(length?.[1] ?? 0);
    if (rest.length < total) break;
    frames.push(rest.subarray(0, total));
    rest = rest.subarray(total);
  }
  return { frames, rest };
}

// after any line end or a stray CR: the receiver skips CRs and LFs before a start line (§7.5)
const REQUEST_LINE_ANYWHERE = /(?:^|[\r\n])[A-Za-z0-9\-.!%*_+`'~]+ \S+ SIP\/2\.0\r?\n/g;

async function blastTcp(target: FuzzTarget, messages: readonly Uint8Array[], concurrency: number): Promise<Tally> {
  const tally = newTally();
  let next = 0;
  const one = (m: Uint8Array): Promise<void> =>
    new Promise((resolve) => {
      // A stream may hold more than one message (the `twoMessages` mutator); each request line in
      // it may earn one answer, anything more answers a response.
      const requestLines = Buffer.from(m.buffer, m.byteOffset, m.byteLength).toString('utf8').match(REQUEST_LINE_ANYWHERE)?.length ?? 0;
      let received: Buffer = Buffer.alloc(0);
      const socket = net.connect({ host: target.host, port: target.port });
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
      });
      socket.on('error', () => tally.resetByPeer++);
      socket.on('close', () => {
        const { frames } = takeFrames(received);
        let replies = 0;
        for (const f of frames) if (countReply(tally, f, 'tcp')) replies++;
        if (replies > requestLines) tally.answeredResponses += replies - requestLines;
        resolve();
      });
      socket.on('connect', () => {
        socket.write(m);
        tally.sent++;
        // half-close: the target sees the end of the stream and may still answer
        socket.end();
      });
    });
  const worker = async (): Promise<void> => {
    while (next < messages.length) await one(messages[next++]!);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return tally;
}

/** Sends a valid OPTIONS and returns the status of its answer, or 0 if none came. */
export async function probeOptions(target: FuzzTarget, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (let attempt = 1; performance.now() < deadline; attempt++) {
    const callId = `fuzz-probe-${attempt}-${Math.floor(Math.random() * 1e9)}`;
    const request = enc.encode(
      withLength([
        `OPTIONS sip:probe@${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port} SIP/2.0`,
        `Via: SIP/2.0/${target.transport.toUpperCase()} 127.0.0.1:9;branch=z9hG4bK${callId};rport`,
        'Max-Forwards: 70',
        `To: <sip:probe@${target.host.includes(':') ? `[${target.host}]` : target.host}>`,
        `From: <sip:fuzz@127.0.0.1>;tag=${attempt}`,
        `Call-ID: ${callId}`,
        `CSeq: ${attempt} OPTIONS`,
      ]),
    );
    const wait = Math.min(500 * attempt, deadline - performance.now());
    if (wait <= 0) break;
    const status = target.transport === 'udp' ? await probeUdp(target, request, callId, wait) : await probeTcp(target, request, callId, wait);
    if (status) return status;
  }
  return 0;
}

function probeUdp(target: FuzzTarget, request: Uint8Array, callId: string, waitMs: number): Promise<number> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(target.host) ? 'udp6' : 'udp4');
    const finish = (status: number): void => {
      clearTimeout(timer);
      socket.close();
      resolve(status);
    };
    const timer = setTimeout(() => finish(0), waitMs);
    socket.on('error', () => undefined);
    socket.on('message', (msg) => {
      try {
        const m = parseSipMessage(msg, 'udp');
        if (m.kind === 'response' && m.headers.get('Call-ID') === callId && m.status >= 200) finish(m.status);
      } catch {
        // not our answer
      }
    });
    socket.send(request, target.port, target.host);
  });
}

function probeTcp(target: FuzzTarget, request: Uint8Array, callId: string, waitMs: number): Promise<number> {
  return new Promise((resolve) => {
    let received: Buffer = Buffer.alloc(0);
    const socket = net.connect({ host: target.host, port: target.port });
    const finish = (status: number): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(status);
    };
    const timer = setTimeout(() => finish(0), waitMs);
    socket.on('error', () => finish(0));
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      const { frames, rest } = takeFrames(Buffer.concat([received, chunk]));
      received = rest;
      for (const f of frames) {
        try {
          const m = parseSipMessage(f, 'tcp');
          if (m.kind === 'response' && m.headers.get('Call-ID') === callId && m.status >= 200) return finish(m.status);
        } catch {
          // keep reading
        }
      }
      return undefined;
    });
  });
}

/**
 * Runs `parse` over the corpus and returns how many messages parsed and how many threw each
 * reason; throws if anything other than `isExpected` errors escaped, naming the first index.
 */
export function parseEach<E extends Error>(
  messages: readonly Uint8Array[],
  parse: (bytes: Uint8Array) => unknown,
  isExpected: (error: unknown) => error is E,
  reasonOf: (error: E) => string,
): { parsed: number; rejected: Map<string, number> } {
  let parsed = 0;
  const rejected = new Map<string, number>();
  messages.forEach((m, index) => {
    try {
      parse(m);
      parsed++;
    } catch (error) {
      if (!isExpected(error)) throw new FuzzSurvivalError(`message ${index} (${m.length} bytes) threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
      const reason = reasonOf(error);
      rejected.set(reason, (rejected.get(reason) ?? 0) + 1);
    }
  });
  return { parsed, rejected };
}
