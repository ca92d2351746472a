/**
 * SIP messages (RFC 3261 §7, §20, §25): the model, a checked parser and a serializer.
 *
 * The parser takes one message's bytes (a UDP datagram, or one frame cut by TCP framing) and
 * either returns a message or throws a SipParseError naming the rule that failed — never
 * anything else, whatever the bytes. It accepts compact header names, header folding,
 * comma-separated multi-value headers, and checks Content-Length and the headers every
 * request needs (§8.1.1: To, From, CSeq, Call-ID, Max-Forwards, Via).
 *
 *   generic-message  =  start-line *message-header CRLF [ message-body ]
 *   start-line       =  Request-Line / Status-Line
 *   Request-Line     =  Method SP Request-URI SP SIP-Version CRLF
 *   Status-Line      =  SIP-Version SP Status-Code SP Reason-Phrase CRLF
 */

import { SipParseError } from '../errors.ts';

export const SIP_VERSION = 'SIP/2.0';
/** Largest message accepted, bytes (RFC 3261 §18.1.1 puts UDP's practical limit far lower). */
export const MAX_MESSAGE_BYTES = 65_535;
/** Largest number of header lines accepted in one message. */
export const MAX_HEADER_LINES = 256;

/** RFC 3261 §7.3.3 compact forms, and a few from later RFCs. */
const COMPACT: Readonly<Record<string, string>> = {
  i: 'Call-ID',
  m: 'Contact',
  e: 'Content-Encoding',
  l: 'Content-Length',
  c: 'Content-Type',
  f: 'From',
  s: 'Subject',
  k: 'Supported',
  t: 'To',
  v: 'Via',
  o: 'Event',
  r: 'Refer-To',
  b: 'Referred-By',
  u: 'Allow-Events',
  x: 'Session-Expires',
};

/** Canonical spelling of the headers we meet, so lookups are case-insensitive and output tidy. */
const CANONICAL = new Map(
  [
    'Accept', 'Accept-Encoding', 'Accept-Language', 'Alert-Info', 'Allow', 'Allow-Events', 'Authentication-Info',
    'Authorization', 'Call-ID', 'Call-Info', 'Contact', 'Content-Disposition', 'Content-Encoding',
    'Content-Language', 'Content-Length', 'Content-Type', 'CSeq', 'Date', 'Error-Info', 'Event', 'Expires',
    'From', 'In-Reply-To', 'Max-Forwards', 'Min-Expires', 'MIME-Version', 'Organization', 'P-Asserted-Identity',
    'Priority', 'Proxy-Authenticate', 'Proxy-Authorization', 'Proxy-Require', 'RAck', 'Reason', 'Record-Route',
    'Refer-To', 'Referred-By', 'Reply-To', 'Require', 'Retry-After', 'Route', 'RSeq', 'Server', 'Session-Expires',
    'Subject', 'Supported', 'Timestamp', 'To', 'Unsupported', 'User-Agent', 'Via', 'Warning', 'WWW-Authenticate',
    'Diversion', 'History-Info', 'Min-SE', 'Privacy', 'Path',
  ].map((name) => [name.toLowerCase(), name]),
);

/** Headers whose value is a comma-separated list (§7.3.1), so one line may hold several. */
const LIST_HEADERS = new Set(['via', 'route', 'record-route', 'contact', 'allow', 'supported', 'require', 'proxy-require', 'unsupported', 'accept', 'allow-events', 'path']);

export function canonicalHeaderName(name: string): string {
  const lower = name.toLowerCase();
  const expanded = lower.length === 1 ? COMPACT[lower] : undefined;
  if (expanded) return expanded;
  return CANONICAL.get(lower) ?? name;
}

/** An ordered list of header fields; names compare case-insensitively and compact forms expand. */
export class SipHeaders {
  readonly #fields: { name: string; value: string }[] = [];

  constructor(fields: Iterable<readonly [string, string]> = []) {
    for (const [name, value] of fields) this.append(name, value);
  }

  append(name: string, value: string): this {
    this.#fields.push({ name: canonicalHeaderName(name), value });
    return this;
  }

  /** Replaces every field of this name with one. */
  set(name: string, value: string): this {
    this.remove(name);
    return this.append(name, value);
  }

  /** Puts a field before all others (a proxy's Via, a B2BUA's Record-Route). */
  prepend(name: string, value: string): this {
    this.#fields.unshift({ name: canonicalHeaderName(name), value });
    return this;
  }

  remove(name: string): this {
    const key = canonicalHeaderName(name).toLowerCase();
    for (let i = this.#fields.length - 1; i >= 0; i--) if (this.#fields[i]!.name.toLowerCase() === key) this.#fields.splice(i, 1);
    return this;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** The first field's value (for a list header: the first line, which may hold several). */
  get(name: string): string | undefined {
    const key = canonicalHeaderName(name).toLowerCase();
    return this.#fields.find((f) => f.name.toLowerCase() === key)?.value;
  }

  /** Every value of a header, list headers split at their commas (outside quotes and <>). */
  getAll(name: string): string[] {
    const key = canonicalHeaderName(name).toLowerCase();
    const values: string[] = [];
    for (const f of this.#fields) {
      if (f.name.toLowerCase() !== key) continue;
      if (LIST_HEADERS.has(key)) values.push(...splitList(f.value));
      else values.push(f.value);
    }
    return values;
  }

  entries(): readonly { readonly name: string; readonly value: string }[] {
    return this.#fields;
  }

  clone(): SipHeaders {
    const copy = new SipHeaders();
    for (const f of this.#fields) copy.append(f.name, f.value);
    return copy;
  }
}

/** Splits a list header value at top-level commas. */
export function splitList(value: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '<') depth++;
    else if (c === '>') depth = Math.max(0, depth - 1);
    else if (c === ',' && depth === 0) {
      const part = value.slice(start, i).trim();
      if (part) parts.push(part);
      start = i + 1;
    }
  }
  const last = value.slice(start).trim();
  if (last) parts.push(last);
  return parts;
}

export interface SipRequest {
  readonly kind: 'request';
  readonly method: string;
  readonly uri: string;
  readonly headers: SipHeaders;
  readonly body: Uint8Array;
}

export interface SipResponse {
  readonly kind: 'response';
  readonly status: number;
  readonly reason: string;
  readonly headers: SipHeaders;
  readonly body: Uint8Array;
}

export type SipMessage = SipRequest | SipResponse;

const CRLF = '\r\n';
const encoder = new TextEncoder();
// Header bytes are UTF-8 (§7); invalid sequences become U+FFFD rather than an exception.
const decoder = new TextDecoder('utf-8', { fatal: false });

/** Finds the blank line that ends the headers; accepts bare LF line ends too (robustness). */
function findHeaderEnd(bytes: Uint8Array): { headerEnd: number; bodyStart: number } | undefined {
  for (let i = 0; i < bytes.length - 1; i++) {
    if (bytes[i] === 0x0a) {
      if (bytes[i + 1] === 0x0a) return { headerEnd: i, bodyStart: i + 2 };
      if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return { headerEnd: i, bodyStart: i + 3 };
    }
  }
  return undefined;
}

const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;
/** C0 controls other than HTAB, and DEL: no header or start line may carry them (§25.1 excludes CTLs). */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const STATUS_LINE = /^SIP\/2\.0 ([1-6]\d\d) ?(.*)$/;
const REQUEST_LINE = /^(\S+) (\S+) SIP\/2\.0$/;

/** Parses one whole message. `transport` tells whether a missing Content-Length is allowed (UDP only). */
export function parseSipMessage(bytes: Uint8Array, transport: 'udp' | 'tcp' | 'tls' = 'udp'): SipMessage {
  if (bytes.length > MAX_MESSAGE_BYTES) throw new SipParseError('message too large', bytes.length);
  // RFC 3261 §7.5: implementations should ignore CRLFs before the start line (keep-alives).
  let start = 0;
  while (start < bytes.length && (bytes[start] === 0x0d || bytes[start] === 0x0a)) start++;
  const view = bytes.subarray(start);
  const end = findHeaderEnd(view);
  if (!end) throw new SipParseError('no blank line after the headers', view.length);
  const head = decoder.decode(view.subarray(0, end.headerEnd));
  // Lines end in CRLF (or a bare LF): cut at each LF and drop one CR before it. Any other CR is
  // left in the line, where the control-character checks below refuse it.
  const lines = head.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  const firstLine = lines.shift()!;
  if (CONTROL.test(firstLine)) throw new SipParseError('control character in the start line', firstLine.length);
  const startLine = firstLine.trimEnd();
  // Judge the start line first, so garbage is reported as such rather than as a missing header.
  const status = STATUS_LINE.exec(startLine);
  const request = status ? null : REQUEST_LINE.exec(startLine);
  if (!status && !request) throw new SipParseError('start line is neither a request nor a status line', startLine.length);
  if (request && !TOKEN.test(request[1]!)) throw new SipParseError('method is not a token', request[1]!.length);

  const headers = new SipHeaders();
  let current: { name: string; value: string } | undefined;
  let count = 0;
  const commit = (): void => {
    if (current) headers.append(current.name, current.value.trim());
  };
  for (const raw of lines) {
    if (raw.length === 0) continue;
    // A bare CR or NUL inside a line would become a line break or a terminator further on
    // (header injection through a B2BUA that copies values); reject rather than repair.
    if (CONTROL.test(raw)) throw new SipParseError('control character in a header line', raw.length);
    if (raw[0] === ' ' || raw[0] === '\t') {
      // folded continuation of the previous header (§7.3.1)
      if (!current) throw new SipParseError('continuation line before any header', 0);
      current.value += ' ' + raw.trim();
      continue;
    }
    commit();
    if (++count > MAX_HEADER_LINES) throw new SipParseError('too many header lines', count);
    const colon = raw.indexOf(':');
    if (colon <= 0) throw new SipParseError('header line without a name and colon', raw.length);
    const name = raw.slice(0, colon).trim();
    if (!TOKEN.test(name)) throw new SipParseError('header name is not a token', name.length);
    current = { name, value: raw.slice(colon + 1) };
  }
  commit();

  // Body: Content-Length says how much (§18.3, §20.14); on UDP a missing one means "the rest".
  const available = view.length - end.bodyStart;
  const lengthHeaders = headers.getAll('Content-Length');
  const lengthHeader = lengthHeaders[0];
  // Two different lengths frame the stream two ways (request smuggling); refuse both.
  if (lengthHeaders.some((v) => v.trim() !== lengthHeader?.trim())) throw new SipParseError('contradictory Content-Length headers', lengthHeaders.length);
  let bodyLength: number;
  if (lengthHeader === undefined) {
    if (transport !== 'udp') throw new SipParseError('no Content-Length on a stream transport', 0);
    bodyLength = available;
  } else {
    if (!/^\d{1,10}$/.test(lengthHeader.trim())) throw new SipParseError('Content-Length is not a number', lengthHeader.length);
    bodyLength = Number(lengthHeader.trim());
    if (bodyLength > available) throw new SipParseError('Content-Length larger than the body', bodyLength - available);
  }
  const body = view.slice(end.bodyStart, end.bodyStart + bodyLength);

  if (status) {
    const response: SipResponse = { kind: 'response', status: Number(status[1]), reason: status[2] ?? '', headers, body };
    checkCommonHeaders(response);
    return response;
  }
  const method = request![1]!;
  const message: SipRequest = { kind: 'request', method, uri: request![2]!, headers, body };
  checkCommonHeaders(message);
  if (!headers.has('Max-Forwards') && method !== 'ACK' && method !== 'CANCEL') {
    // §8.1.1.6 says MUST; many peers omit it on in-dialog requests. Be liberal, assume 70.
    headers.append('Max-Forwards', '70');
  }
  parseUri(message.uri); // the Request-URI must at least parse
  const cseq = parseCSeq(headers.get('CSeq')!);
  if (cseq.method !== method) throw new SipParseError('CSeq method differs from the request method', cseq.method.length);
  return message;
}

function checkCommonHeaders(message: SipMessage): void {
  const h = message.headers;
  for (const name of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) {
    if (!h.get(name)?.trim()) throw new SipParseError(`missing ${name}`, 0);
  }
  parseVia(h.getAll('Via')[0] ?? '');
  parseNameAddr(h.get('From')!);
  parseNameAddr(h.get('To')!);
  parseCSeq(h.get('CSeq')!);
}

export function serializeSipMessage(message: SipMessage): Uint8Array {
  const lines: string[] = [];
  lines.push(message.kind === 'request' ? `${message.method} ${message.uri} ${SIP_VERSION}` : `${SIP_VERSION} ${message.status} ${message.reason}`);
  for (const f of message.headers.entries()) {
    if (f.name === 'Content-Length') continue;
    lines.push(`${f.name}: ${f.value}`);
  }
  lines.push(`Content-Length: ${message.body.length}`);
  const head = encoder.encode(lines.join(CRLF) + CRLF + CRLF);
  const out = new Uint8Array(head.length + message.body.length);
  out.set(head);
  out.set(message.body, head.length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Header values
// ---------------------------------------------------------------------------------------------

export interface SipUri {
  readonly scheme: 'sip' | 'sips' | 'tel';
  readonly user: string | undefined;
  readonly host: string;
  readonly port: number | undefined;
  /** URI parameters (`;transport=tcp;lr`), names lower-cased; a flag has the value ''. */
  readonly params: ReadonlyMap<string, string>;
}

// host: an IPv6 reference, or RFC 3986 reg-name characters (unreserved, pct-encoded, sub-delims
// but ';'), which covers hostnames and IPv4 and keeps spaces, quotes and non-ASCII out.
const URI = /^(sips?|tel):(?:([^@;?]+)@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,=]*)(?::(\d{1,5}))?((?:;[^?]*)?)(?:\?(.*))?$/;

export function parseUri(text: string): SipUri {
  const m = URI.exec(text.trim());
  if (!m) throw new SipParseError('not a SIP URI', text.length);
  const scheme = m[1]!.toLowerCase() as SipUri['scheme'];
  if (scheme === 'tel') return { scheme, user: m[3] || m[2], host: '', port: undefined, params: parseParams(m[5] ?? '') };
  const host = m[3] ?? '';
  if (!host) throw new SipParseError('SIP URI without a host', text.length);
  const port = m[4] === undefined ? undefined : Number(m[4]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new SipParseError('SIP URI port out of range', port);
  const user = m[2]?.split(':')[0];
  return { scheme, user: user === undefined ? undefined : decodeURIComponentSafe(user), host: host.toLowerCase(), port, params: parseParams(m[5] ?? '') };
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export function formatUri(uri: SipUri): string {
  const user = uri.user === undefined ? '' : `${uri.user}@`;
  if (uri.scheme === 'tel') return `tel:${uri.user ?? ''}${formatParams(uri.params)}`;
  const port = uri.port === undefined ? '' : `:${uri.port}`;
  return `${uri.scheme}:${user}${uri.host}${port}${formatParams(uri.params)}`;
}

function parseParams(text: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const part of text.split(';')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    if (eq < 0) params.set(p.toLowerCase(), '');
    else params.set(p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim());
  }
  return params;
}

function formatParams(params: ReadonlyMap<string, string>): string {
  let out = '';
  for (const [k, v] of params) out += v === '' ? `;${k}` : `;${k}=${v}`;
  return out;
}

/** A From, To, Contact, Route or Record-Route value: `"Name" <uri>;params` or `uri;params`. */
export interface NameAddr {
  readonly displayName: string | undefined;
  readonly uri: string;
  /** Header parameters (`;tag=…`, `;expires=…`), names lower-cased. */
  readonly params: ReadonlyMap<string, string>;
}

export function parseNameAddr(text: string): NameAddr {
  const value = text.trim();
  if (value === '*') return { displayName: undefined, uri: '*', params: new Map() };
  const open = indexOutsideQuotes(value, '<');
  if (open >= 0) {
    const close = value.indexOf('>', open);
    if (close < 0) throw new SipParseError('name-addr without its closing >', value.length);
    let display = value.slice(0, open).trim();
    if (display.startsWith('"') && display.endsWith('"') && display.length >= 2) display = display.slice(1, -1);
    const uri = value.slice(open + 1, close).trim();
    parseUri(uri);
    return { displayName: display || undefined, uri, params: parseParams(value.slice(close + 1)) };
  }
  const semi = value.indexOf(';');
  const uri = semi < 0 ? value : value.slice(0, semi);
  parseUri(uri);
  return { displayName: undefined, uri: uri.trim(), params: parseParams(semi < 0 ? '' : value.slice(semi)) };
}

/** The index of `char` outside any quoted string (a display name may hold `<` or `,`), or -1. */
function indexOutsideQuotes(value: string, char: string): number {
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === char) return i;
  }
  if (quoted) throw new SipParseError('unterminated quoted string', value.length);
  return -1;
}

export function formatNameAddr(addr: NameAddr): string {
  const display = addr.displayName ? `"${addr.displayName.replace(/["\\]/g, '')}" ` : '';
  return `${display}<${addr.uri}>${formatParams(addr.params)}`;
}

export function withParam(addr: NameAddr, name: string, value: string): NameAddr {
  const params = new Map(addr.params);
  params.set(name, value);
  return { ...addr, params };
}

export interface Via {
  readonly transport: string;
  readonly host: string;
  readonly port: number | undefined;
  readonly params: ReadonlyMap<string, string>;
  readonly branch: string | undefined;
}

const VIA = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+(\[[0-9a-fA-F:.]+\]|[^\s:;]+)(?:\s*:\s*(\d{1,5}))?\s*((?:;.*)?)$/;

export function parseVia(text: string): Via {
  const m = VIA.exec(text.trim());
  if (!m) throw new SipParseError('Via is not SIP/2.0/transport host', text.length);
  const params = parseParams(m[4] ?? '');
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new SipParseError('Via port out of range', port);
  return { transport: m[1]!.toUpperCase(), host: m[2]!.toLowerCase(), port, params, branch: params.get('branch') };
}

export function formatVia(via: Via): string {
  const port = via.port === undefined ? '' : `:${via.port}`;
  return `SIP/2.0/${via.transport} ${via.host}${port}${formatParams(via.params)}`;
}

export interface CSeq {
  readonly seq: number;
  readonly method: string;
}

export function parseCSeq(text: string): CSeq {
  const m = /^\s*(\d{1,10})\s+(\S+)\s*$/.exec(text);
  if (!m || !TOKEN.test(m[2]!)) throw new SipParseError('CSeq is not "number method"', text.length);
  const seq = Number(m[1]);
  if (seq > 2 ** 31 - 1) throw new SipParseError('CSeq number too large', seq);
  return { seq, method: m[2]! };
}

/** The tag parameter of a From or To value, if any. */
export function tagOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  return parseNameAddr(text).params.get('tag') || undefined;
}

/** The text of a body, if it is text. */
export function bodyText(message: SipMessage): string {
  return decoder.decode(message.body);
}

export function textBody(text: string): Uint8Array {
  return encoder.encode(text);
}

/** The standard reason phrases hushpay sends. */
export const REASONS: Readonly<Record<number, string>> = {
  100: 'Trying',
  180: 'Ringing',
  183: 'Session Progress',
  200: 'OK',
  202: 'Accepted',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  415: 'Unsupported Media Type',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  491: 'Request Pending',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Server Time-out',
  513: 'Message Too Large',
  600: 'Busy Everywhere',
  603: 'Decline',
};
