/**
 * The real SIP transport (RFC 3261 §18): UDP and TCP on one port number, and TLS on another
 * (§26.2.1, RFC 5630 §3: "SIP/2.0/TLS" in Via, port 5061), behind `SipTransport`.
 *
 * The socket edge of the SIP core. Everything that arrives is untrusted: it is framed (TCP and
 * TLS), parsed, counted and either delivered to the listener or reported as malformed; nothing
 * thrown by a parser or a listener ever escapes a socket callback, and `send` never throws. The
 * pure parts — the stream framer, the §18.2.1 Via stamping and the salvage of a 400 from bytes
 * that did not parse — are exported on their own and tested without sockets.
 *
 * TCP and TLS are one stream code path: a TLS connection is a TCP connection whose socket is a
 * `tls.TLSSocket`, framed, limited, timed out and counted the same way. Only the socket made
 * (accepted by `tls.Server` after its handshake, or opened by `tls.connect`) and the event that
 * says it is ready to write ('secureConnect' rather than 'connect') differ.
 *
 * Lifecycle (STYLE.md practices 2 and 3): `close()` is idempotent, destroys every socket and
 * connection (TLS handshakes in progress too), clears every timer (idle, connect, linger) and
 * resolves when all are closed.
 */

import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { type Clock, systemClock, type TimerHandle } from '../clock.ts';
import { SipParseError } from '../errors.ts';
import {
  canonicalHeaderName,
  formatVia,
  MAX_HEADER_LINES,
  MAX_MESSAGE_BYTES,
  parseCSeq,
  parseSipMessage,
  parseVia,
  serializeSipMessage,
  SipHeaders,
  type SipMessage,
  type SipRequest,
  type SipResponse,
  splitList,
} from './message.ts';
import type { SipAddress, SipTransport, SipTransportName, TransportListener } from './transport.ts';

/** RFC 5626 §4.4.1 suggests far longer keep-alives; an idle SIP connection is closed after this. */
export const DEFAULT_IDLE_TCP_TIMEOUT_MS = 5 * 60_000;
/**
 * Bound on connecting to a peer (for TLS, the handshake included; an inbound TLS handshake gets
 * as long); messages queued meanwhile are dropped (and counted) after it.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** Bound on the TCP and TLS connections open at once (inbound and outbound); more are refused. */
export const DEFAULT_MAX_TCP_CONNECTIONS = 1_024;
/** PCI DSS 4.2.1: only secure protocol versions, no fallback. */
const TLS_MIN_VERSION = 'TLSv1.2';
/** Bytes queued on one connection (while connecting, or unread by the peer) before sends drop. */
export const MAX_QUEUED_BYTES_PER_CONNECTION = 1024 * 1024;
/** After a framing error the connection gets this long to flush a 400 before it is destroyed. */
export const LINGER_AFTER_ERROR_MS = 1_000;
/** Attempts at finding a port number free on both UDP and TCP when listening on port 0. */
const EPHEMERAL_PORT_ATTEMPTS = 8;

// ---------------------------------------------------------------------------------------------
// TCP framing (RFC 3261 §18.3), pure
// ---------------------------------------------------------------------------------------------

export type FramerOutput =
  | { readonly kind: 'message'; readonly bytes: Uint8Array }
  /** A double-CRLF keep-alive ping (RFC 5626 §3.5.1): answer with a single CRLF pong. */
  | { readonly kind: 'ping' }
  /** The stream cannot be framed any more; `bytes` is what was buffered (for a salvage 400). */
  | { readonly kind: 'error'; readonly reason: string; readonly bytes: Uint8Array };

const CR = 0x0d;
const LF = 0x0a;
const PING = [CR, LF, CR, LF] as const;
const CONTENT_LENGTH_LINE = /^(?:content-length|l)[ \t]*:(.*)$/i;

/**
 * Cuts a SIP byte stream into messages by Content-Length.
 *
 * §18.3: "In the case of stream-oriented transports such as TCP, the Content-Length header
 * field indicates the size of the body. All SIP implementations MUST use it over TCP." A
 * missing, unreadable or contradictory Content-Length, a header section longer than
 * `maxMessageBytes` without a blank line, or a frame longer than `maxMessageBytes` leaves no
 * way to find the next message: the framer reports one error and is dead from then on.
 *
 * §7.5: CRLFs before a start line are skipped; each CRLFCRLF among them is a keep-alive ping.
 */
export class SipStreamFramer {
  readonly #maxMessageBytes: number;
  #buffer = new Uint8Array(4096);
  #start = 0;
  #end = 0;
  /** Where to resume looking for the blank line (earlier bytes were searched already). */
  #scanFrom = 0;
  /** Whole frame length once its headers are read, while waiting for the body. */
  #frameLength = 0;
  /** Position in the CRLFCRLF ping pattern reached by the CRLFs skipped so far. */
  #ping = 0;
  #failed = false;

  constructor(maxMessageBytes: number = MAX_MESSAGE_BYTES) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** Bytes held, waiting for the rest of a message. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  get failed(): boolean {
    return this.#failed;
  }

  push(chunk: Uint8Array): FramerOutput[] {
    if (this.#failed) return [];
    this.#append(chunk);
    const out: FramerOutput[] = [];
    const b = this.#buffer;
    for (;;) {
      if (this.#frameLength === 0) {
        // leading CRLFs: keep-alives, not part of any message
        while (this.#start < this.#end && (b[this.#start] === CR || b[this.#start] === LF)) {
          const byte = b[this.#start++]!;
          if (byte === PING[this.#ping]) {
            if (++this.#ping === PING.length) {
              out.push({ kind: 'ping' });
              this.#ping = 0;
            }
          } else this.#ping = byte === CR ? 1 : 0;
        }
        this.#scanFrom = Math.max(this.#scanFrom, this.#start);
        if (this.#start === this.#end) break;
        this.#ping = 0;
        const header = this.#findHeaderEnd();
        if (header === undefined) {
          if (this.#end - this.#start > this.#maxMessageBytes) return this.#fail(out, 'header section too large');
          break;
        }
        const length = this.#contentLength(header.headerEnd);
        if (typeof length === 'string') return this.#fail(out, length);
        const frameLength = header.bodyStart - this.#start + length;
        if (frameLength > this.#maxMessageBytes) return this.#fail(out, 'message too large');
        this.#frameLength = frameLength;
      }
      if (this.#end - this.#start < this.#frameLength) break;
      out.push({ kind: 'message', bytes: b.slice(this.#start, this.#start + this.#frameLength) });
      this.#start += this.#frameLength;
      this.#scanFrom = this.#start;
      this.#frameLength = 0;
    }
    if (this.#start === this.#end) {
      this.#start = this.#end = this.#scanFrom = 0;
    }
    return out;
  }

  #fail(out: FramerOutput[], reason: string): FramerOutput[] {
    out.push({ kind: 'error', reason, bytes: this.#buffer.slice(this.#start, Math.min(this.#end, this.#start + this.#maxMessageBytes)) });
    this.#failed = true;
    this.#buffer = new Uint8Array(0);
    this.#start = this.#end = this.#scanFrom = this.#frameLength = 0;
    return out;
  }

  #append(chunk: Uint8Array): void {
    const used = this.#end - this.#start;
    if (this.#end + chunk.length > this.#buffer.length) {
      if (used + chunk.length <= this.#buffer.length) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
      } else {
        let size = this.#buffer.length * 2;
        while (size < used + chunk.length) size *= 2;
        const grown = new Uint8Array(size);
        grown.set(this.#buffer.subarray(this.#start, this.#end));
        this.#buffer = grown;
      }
      this.#scanFrom -= this.#start;
      this.#start = 0;
      this.#end = used;
    }
    this.#buffer.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  /** The blank line, as `parseSipMessage` finds it: LF LF or LF CR LF. */
  #findHeaderEnd(): { headerEnd: number; bodyStart: number } | undefined {
    const b = this.#buffer;
    for (let i = this.#scanFrom; i < this.#end - 1; i++) {
      if (b[i] !== LF) continue;
      if (b[i + 1] === LF) return { headerEnd: i, bodyStart: i + 2 };
      if (b[i + 1] === CR) {
        if (i + 2 >= this.#end) {
          this.#scanFrom = i;
          return undefined;
        }
        if (b[i + 2] === LF) return { headerEnd: i, bodyStart: i + 3 };
      }
    }
    this.#scanFrom = Math.max(this.#start, this.#end - 1);
    return undefined;
  }

  /** The body length the headers declare, or the reason they declare none usable. */
  #contentLength(headerEnd: number): number | string {
    const head = Buffer.from(this.#buffer.buffer, this.#buffer.byteOffset + this.#start, headerEnd - this.#start).toString('latin1');
    let value: string | undefined;
    for (const raw of head.split('\n')) {
      const m = CONTENT_LENGTH_LINE.exec(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
      if (!m) continue;
      const v = m[1]!.trim();
      if (!/^\d{1,10}$/.test(v)) return 'Content-Length is not a number';
      if (value !== undefined && Number(value) !== Number(v)) return 'contradictory Content-Length headers';
      value = v;
    }
    if (value === undefined) return 'no Content-Length on a stream transport';
    return Number(value);
  }
}

// ---------------------------------------------------------------------------------------------
// RFC 3261 §18.2.1 and RFC 3581: stamping the top Via of a received request, pure
// ---------------------------------------------------------------------------------------------

const stripBrackets = (host: string): string => (host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host).toLowerCase();

/**
 * §18.2.1: "If the host portion of the 'sent-by' field contains a domain name, or if it contains
 * an IP address that differs from the packet source address, the server MUST add a 'received'
 * parameter to that Via header field value." RFC 3581 §4: when the top Via has an `rport`
 * parameter with no value, set it to the source port and add `received` even if the address is
 * the same. Returns the request unchanged when there is nothing to add.
 */
export function stampReceived(request: SipRequest, from: SipAddress): SipRequest {
  const headers = stampHeaders(request.headers, from);
  return headers === request.headers ? request : { ...request, headers };
}

function stampHeaders(headers: SipHeaders, from: SipAddress): SipHeaders {
  const fields = headers.entries();
  const index = fields.findIndex((f) => f.name === 'Via');
  if (index < 0) return headers;
  const values = splitList(fields[index]!.value);
  const top = values[0];
  if (top === undefined) return headers;
  const via = parseVia(top);
  const source = stripBrackets(from.host);
  const wantsRport = via.params.get('rport') === '';
  if (!wantsRport && stripBrackets(via.host) === source) return headers;
  const params = new Map(via.params);
  params.set('received', source);
  if (wantsRport) params.set('rport', String(from.port));
  values[0] = formatVia({ ...via, params });
  const stamped = new SipHeaders();
  fields.forEach((f, i) => stamped.append(f.name, i === index ? values.join(', ') : f.value));
  return stamped;
}

// ---------------------------------------------------------------------------------------------
// 400 Bad Request from bytes that did not parse, pure
// ---------------------------------------------------------------------------------------------

const SALVAGE_REQUEST_LINE = /^([A-Za-z0-9\-.!%*_+`'~]+) \S+ SIP\/2\.0[ \t]*$/;
const SALVAGE_HEADERS = new Set(['Via', 'From', 'To', 'Call-ID', 'CSeq']);
const SALVAGE_CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const salvageDecoder = new TextDecoder('utf-8', { fatal: false });

/**
 * A 400 Bad Request answering `bytes`, or undefined when they are not a request or lack what a
 * response needs (§8.2.6.2: Via, From, To, Call-ID and CSeq copied from the request). The
 * header lines are read leniently, one by one, so a request broken elsewhere (a bad body
 * length, a bad Contact, a bad header name) can still be answered — but the 400 itself must
 * parse, so one whose copied headers are broken is not offered. Never for a response
 * (§18.1.2 has no answer for a broken response), never for an ACK (§17.1.1.3).
 */
export function salvageBadRequest(bytes: Uint8Array, from?: SipAddress): SipResponse | undefined {
  let start = 0;
  while (start < bytes.length && (bytes[start] === CR || bytes[start] === LF)) start++;
  const view = bytes.subarray(start, start + Math.min(bytes.length - start, MAX_MESSAGE_BYTES));
  let headEnd = view.length;
  for (let i = 0; i < view.length - 1; i++) {
    if (view[i] === LF && (view[i + 1] === LF || (view[i + 1] === CR && view[i + 2] === LF))) {
      headEnd = i;
      break;
    }
  }
  const lines = salvageDecoder.decode(view.subarray(0, headEnd)).split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  const requestLine = SALVAGE_REQUEST_LINE.exec(lines[0] ?? '');
  if (!requestLine || requestLine[1] === 'ACK') return undefined;
  const found = new Map<string, string>();
  const vias: string[] = [];
  let current: { name: string; value: string } | undefined;
  const take = (): void => {
    if (!current) return;
    const value = current.value.trim();
    if (current.name === 'Via') vias.push(...splitList(value));
    else if (!found.has(current.name)) found.set(current.name, value);
    current = undefined;
  };
  for (const line of lines.slice(1, MAX_HEADER_LINES + 1)) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (current) current.value += ' ' + line.trim();
      continue;
    }
    take();
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = canonicalHeaderName(line.slice(0, colon).trim());
    if (SALVAGE_HEADERS.has(name)) current = { name, value: line.slice(colon + 1) };
  }
  take();
  const values = ['From', 'To', 'Call-ID', 'CSeq'].map((n) => found.get(n));
  if (vias.length === 0 || values.some((v) => !v) || [...vias, ...values].some((v) => v === undefined || SALVAGE_CONTROL.test(v))) return undefined;
  const [fromValue, toValue, callId, cseq] = values as [string, string, string, string];
  try {
    parseVia(vias[0]!);
    parseCSeq(cseq);
  } catch {
    return undefined;
  }
  const headers = new SipHeaders();
  headers.append('Via', vias.join(', '));
  headers.append('From', fromValue);
  // §8.2.6.2: a response that is not to a dialog-forming request with a To tag MUST add one.
  headers.append('To', /;\s*tag\s*=/i.test(toValue) ? toValue : `${toValue};tag=${randomBytes(5).toString('hex')}`);
  headers.append('Call-ID', callId);
  headers.append('CSeq', cseq);
  let stamped = headers;
  if (from) {
    try {
      stamped = stampHeaders(headers, from);
    } catch {
      // the top Via parsed above, so this does not happen; keep the unstamped copy if it does
    }
  }
  const reply: SipResponse = { kind: 'response', status: 400, reason: 'Bad Request', headers: stamped, body: new Uint8Array(0) };
  // Send nothing we would not accept ourselves: a 400 echoing a broken From is noise to the peer.
  try {
    parseSipMessage(serializeSipMessage(reply), 'tcp');
  } catch {
    return undefined;
  }
  return reply;
}

// ---------------------------------------------------------------------------------------------
// the transport
// ---------------------------------------------------------------------------------------------

/** SIP over TLS: the listener's port, what this end presents, and what peers must present. */
export interface SipTlsOptions {
  /** Port the TLS listener binds (on the transport's host); 0 picks a free one. Usually 5061. */
  readonly port: number;
  /** PEM certificate (chain) presented to peers, and its private key (src/tls.ts reads them). */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /**
   * PEM CA certificates the certificate of a peer we connect to must chain to. Default: Node's
   * bundled CAs and the system's store.
   */
  readonly ca?: string | Buffer | undefined;
  /** Tests only: accept any certificate on connections we open (no chain or name check). */
  readonly insecureSkipVerify?: boolean | undefined;
}

export interface UdpTcpTransportOptions {
  /** Address to bind, e.g. '127.0.0.1', '0.0.0.0', '::'. */
  readonly host: string;
  /** Port for both UDP and TCP; 0 picks one free on both. */
  readonly port: number;
  readonly udp?: boolean;
  readonly tcp?: boolean;
  /** SIP over TLS too, on its own port; without it, sends to a TLS address are dropped and counted. */
  readonly tls?: SipTlsOptions | undefined;
  readonly listener: TransportListener;
  /** Largest message accepted or framed, bytes; at most (and by default) MAX_MESSAGE_BYTES. */
  readonly maxMessageBytes?: number;
  /** Idle TCP and TLS connections are closed after this. */
  readonly idleTcpTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  /** TCP and TLS connections, together. */
  readonly maxTcpConnections?: number;
  readonly clock?: Clock;
}

/** Why bytes were dropped, on the way in or out. */
export type TransportDropReason =
  /** a datagram larger than maxMessageBytes */
  | 'oversized'
  /** bytes that did not parse (reported to listener.malformed, perhaps with a 400) */
  | 'malformed'
  /** a TCP or TLS stream that could not be framed; the connection was closed */
  | 'tcpFraming'
  /** a TCP or TLS connection that ended in the middle of a message */
  | 'tcpTruncated'
  /** a connection refused because maxTcpConnections were open */
  | 'connectionLimit'
  /**
   * a TLS handshake that failed, inbound (not TLS at all, a protocol version refused, the peer
   * gave up) or outbound (the peer's certificate failed verification); the connection was closed
   */
  | 'tlsHandshake'
  /** the listener threw (the message was delivered; the throw was swallowed) */
  | 'listenerThrew'
  /** an outgoing message that could not be serialized */
  | 'sendSerialize'
  /** a socket error on send, a failed or timed-out connect (with the messages queued on it) */
  | 'sendSocket'
  /** a send to a transport not listening, or after close */
  | 'sendUnavailable'
  /** a send while the connection already had MAX_QUEUED_BYTES_PER_CONNECTION waiting */
  | 'sendBackpressure'
  /** anything else that went wrong inside a socket callback (a bug) */
  | 'internal';

export interface UdpTcpTransportStats {
  /** Datagrams, and TCP and TLS frames, received (before parsing). */
  readonly received: Readonly<Record<SipTransportName, number>>;
  /** Messages passed to listener.message. */
  readonly delivered: number;
  readonly sent: Readonly<Record<SipTransportName, number>>;
  /** Keep-alive pings answered with a pong. */
  readonly pings: number;
  readonly connections: { readonly open: number; readonly opened: number; readonly idleClosed: number };
  readonly dropped: Readonly<Record<TransportDropReason, number>>;
  /** Malformed input by the parser's or framer's reason. */
  readonly malformedReasons: Readonly<Record<string, number>>;
}

type StreamTransportName = Exclude<SipTransportName, 'udp'>;

interface Connection {
  readonly id: string;
  readonly transport: StreamTransportName;
  /** A `tls.TLSSocket` for TLS (a net.Socket underneath). */
  readonly socket: net.Socket;
  readonly remote: SipAddress;
  readonly key: string;
  readonly framer: SipStreamFramer;
  state: 'connecting' | 'open' | 'closing';
  queue: Uint8Array[];
  queuedBytes: number;
  lastActivity: number;
  idleTimer: TimerHandle | undefined;
  connectTimer: TimerHandle | undefined;
  lingerTimer: TimerHandle | undefined;
  readonly closed: Promise<void>;
}

const DROP_REASONS: readonly TransportDropReason[] = [
  'oversized',
  'malformed',
  'tcpFraming',
  'tcpTruncated',
  'connectionLimit',
  'tlsHandshake',
  'listenerThrew',
  'sendSerialize',
  'sendSocket',
  'sendUnavailable',
  'sendBackpressure',
  'internal',
];

/** IPv4-mapped IPv6 addresses (a dual-stack socket's view of IPv4 peers) back to IPv4. */
function normalizeHost(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address;
}

/** A connection to reuse for a send: one per transport, address and port. */
const remoteKey = (transport: StreamTransportName, host: string, port: number): string => `${transport}|${stripBrackets(host)}|${port}`;

function bindUdp(host: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
    const onError = (error: Error): void => {
      socket.close();
      reject(error);
    };
    socket.once('error', onError);
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

function listenTcp(host: string, port: number): Promise<net.Server> {
  return listenServer(net.createServer({ noDelay: true }), host, port);
}

/**
 * The TLS listener (RFC 3261 §26.2.1). It asks no certificate of the client: inbound peers are
 * told apart by address (tenant `sources`), as over UDP and TCP. The handshake is bounded by
 * `handshakeTimeoutMs`; a failed one is reported as 'tlsClientError' and its socket destroyed.
 */
function listenTls(host: string, options: SipTlsOptions, handshakeTimeoutMs: number): Promise<tls.Server> {
  const server = tls.createServer({ cert: options.cert, key: options.key, minVersion: TLS_MIN_VERSION, requestCert: false, handshakeTimeout: handshakeTimeoutMs, noDelay: true });
  return listenServer(server, host, options.port);
}

/**
 * What outbound TLS connections check the peer against: `ca`, else Node's bundled CAs and the
 * system's store (tls.getCACertificates); this end's certificate is offered if a peer asks.
 */
interface TlsClient {
  readonly context: tls.SecureContext;
  /** False only when a test asked for insecureSkipVerify. */
  readonly verify: boolean;
}

function clientContext(options: SipTlsOptions): tls.SecureContext {
  const ca = options.ca ?? [...new Set([...tls.getCACertificates('default'), ...tls.getCACertificates('system')])];
  return tls.createSecureContext({ ca, cert: options.cert, key: options.key, minVersion: TLS_MIN_VERSION });
}

function listenServer<S extends net.Server>(server: S, host: string, port: number): Promise<S> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      server.close();
      reject(error);
    };
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}

const closeUdp = (socket: dgram.Socket): Promise<void> =>
  new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });

/**
 * dgram and net.Server emit 'close' on the next tick, before libuv has released the handle (in
 * the loop's close phase); two turns of the check phase put us after it, so `close()` resolves
 * with the handles really gone (`process.getActiveResourcesInfo()` no longer lists them).
 */
const afterCloseCallbacks = (): Promise<void> => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

const closeServer = (server: net.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/**
 * SIP over UDP and TCP on one port, and TLS on its own. Messages that parse go to
 * `listener.message`, requests with their top Via stamped (§18.2.1); bytes that do not go to
 * `listener.malformed` with a 400 when one can be built. TCP and TLS connections are named by
 * `SipAddress.connection`, so a response goes back on the connection its request came on.
 */
export class UdpTcpTransport implements SipTransport {
  readonly local: Readonly<Record<SipTransportName, { host: string; port: number } | undefined>>;

  readonly #listener: TransportListener;
  readonly #clock: Clock;
  readonly #maxMessageBytes: number;
  readonly #idleTcpTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #maxTcpConnections: number;
  readonly #udp: dgram.Socket | undefined;
  /** The stream listeners: TCP (with UDP's port number) and TLS (its own). */
  readonly #servers: Readonly<Record<StreamTransportName, net.Server | undefined>>;
  /** What outbound TLS connections verify the peer with; set when TLS is on. */
  readonly #tlsClient: TlsClient | undefined;
  /** Raw sockets accepted by the TLS listener, handshake under way or done, so close() can end them all. */
  readonly #tlsAccepted = new Set<net.Socket>();
  readonly #connections = new Map<string, Connection>();
  readonly #byRemote = new Map<string, Connection>();
  #nextConnectionId = 1;
  /** UDP sends handed to the socket and not yet written, and who waits for them. */
  #udpInFlight = 0;
  readonly #udpDrained: (() => void)[] = [];
  #closed = false;
  #closing: Promise<void> | undefined;

  readonly #received: Record<SipTransportName, number> = { udp: 0, tcp: 0, tls: 0 };
  readonly #sent: Record<SipTransportName, number> = { udp: 0, tcp: 0, tls: 0 };
  #delivered = 0;
  #pings = 0;
  #opened = 0;
  #idleClosed = 0;
  readonly #dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<TransportDropReason, number>;
  readonly #malformedReasons: Record<string, number> = {};

  static async listen(options: UdpTcpTransportOptions): Promise<UdpTcpTransport> {
    const wantUdp = options.udp ?? true;
    const wantTcp = options.tcp ?? true;
    if (!wantUdp && !wantTcp && !options.tls) throw new TypeError('UdpTcpTransport.listen: neither udp, tcp nor tls is enabled');
    // made first: a certificate or key that OpenSSL refuses fails here, before any socket is bound
    const tlsClient = options.tls ? { context: clientContext(options.tls), verify: options.tls.insecureSkipVerify !== true } : undefined;
    const attempts = options.port === 0 && wantUdp && wantTcp ? EPHEMERAL_PORT_ATTEMPTS : 1;
    for (let attempt = 1; ; attempt++) {
      let udp: dgram.Socket | undefined;
      let tcp: net.Server | undefined;
      try {
        udp = wantUdp ? await bindUdp(options.host, options.port) : undefined;
        // with port 0, TCP takes the number UDP was given
        const port = udp ? udp.address().port : options.port;
        tcp = wantTcp ? await listenTcp(options.host, port) : undefined;
      } catch (error) {
        if (udp) await closeUdp(udp);
        const inUse = error instanceof Error && (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (!inUse || attempt >= attempts) throw error;
        continue;
      }
      let tlsServer: tls.Server | undefined;
      try {
        tlsServer = options.tls ? await listenTls(options.host, options.tls, options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS) : undefined;
      } catch (error) {
        if (udp) await closeUdp(udp);
        if (tcp) await closeServer(tcp);
        throw error;
      }
      return new UdpTcpTransport(options, udp, { tcp, tls: tlsServer }, tlsClient);
    }
  }

  private constructor(
    options: UdpTcpTransportOptions,
    udp: dgram.Socket | undefined,
    servers: { tcp: net.Server | undefined; tls: tls.Server | undefined },
    tlsClient: TlsClient | undefined,
  ) {
    this.#listener = options.listener;
    this.#clock = options.clock ?? systemClock;
    this.#maxMessageBytes = Math.min(options.maxMessageBytes ?? MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES);
    this.#idleTcpTimeoutMs = options.idleTcpTimeoutMs ?? DEFAULT_IDLE_TCP_TIMEOUT_MS;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#maxTcpConnections = options.maxTcpConnections ?? DEFAULT_MAX_TCP_CONNECTIONS;
    this.#udp = udp;
    this.#servers = servers;
    this.#tlsClient = tlsClient;
    const udpAddress = udp?.address();
    const bound = (server: net.Server | undefined): { host: string; port: number } | undefined => {
      const address = server?.address();
      return address && typeof address === 'object' ? { host: options.host, port: address.port } : undefined;
    };
    this.local = {
      udp: udpAddress ? { host: options.host, port: udpAddress.port } : undefined,
      tcp: bound(servers.tcp),
      tls: bound(servers.tls),
    };
    if (udp) {
      udp.on('message', (bytes, rinfo) => this.#guard(() => this.#onDatagram(bytes, rinfo)));
      udp.on('error', () => this.#dropped.internal++);
    }
    if (servers.tcp) {
      servers.tcp.on('connection', (socket) => this.#guard(() => this.#onAccept(socket, 'tcp')));
      servers.tcp.on('error', () => this.#dropped.internal++);
    }
    if (servers.tls) {
      const server = servers.tls;
      // handshakes under way count too: beyond the limit the server refuses the TCP connection
      server.maxConnections = this.#maxTcpConnections;
      server.on('drop', () => this.#dropped.connectionLimit++);
      server.on('connection', (raw: net.Socket) =>
        this.#guard(() => {
          this.#tlsAccepted.add(raw);
          raw.once('close', () => this.#tlsAccepted.delete(raw));
        }),
      );
      server.on('secureConnection', (socket: tls.TLSSocket) => this.#guard(() => this.#onAccept(socket, 'tls')));
      // not TLS (a plain SIP client on the TLS port), a refused version, a handshake timeout:
      // Node has destroyed the socket; nothing was delivered, nothing is answered
      server.on('tlsClientError', () => {
        if (!this.#closed) this.#dropped.tlsHandshake++;
      });
      server.on('error', () => this.#dropped.internal++);
    }
  }

  reliable(transport: SipTransportName): boolean {
    return transport !== 'udp';
  }

  stats(): UdpTcpTransportStats {
    return {
      received: { ...this.#received },
      delivered: this.#delivered,
      sent: { ...this.#sent },
      pings: this.#pings,
      connections: { open: this.#connections.size, opened: this.#opened, idleClosed: this.#idleClosed },
      dropped: { ...this.#dropped },
      malformedReasons: { ...this.#malformedReasons },
    };
  }

  /** Ids of the TCP and TLS connections open now (for tests and the agent desktop's health view). */
  connectionIds(): string[] {
    return [...this.#connections.keys()];
  }

  send(message: SipMessage, to: SipAddress): void {
    try {
      if (this.#closed) {
        this.#dropped.sendUnavailable++;
        return;
      }
      let bytes: Uint8Array;
      try {
        bytes = serializeSipMessage(message);
      } catch {
        this.#dropped.sendSerialize++;
        return;
      }
      if (to.transport === 'udp') this.#sendUdp(bytes, to);
      else this.#sendStream(bytes, to, to.transport);
    } catch {
      this.#dropped.internal++;
    }
  }

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    const waits: Promise<void>[] = [];
    for (const c of this.#connections.values()) {
      this.#clearTimers(c);
      c.socket.destroy();
      waits.push(c.closed);
    }
    // TLS handshakes still under way are not connections yet; the listener waits for them
    for (const raw of this.#tlsAccepted) raw.destroy();
    this.#tlsAccepted.clear();
    for (const server of [this.#servers.tcp, this.#servers.tls]) if (server) waits.push(closeServer(server));
    // a datagram sent just before close() (a final response) still goes out
    const udp = this.#udp;
    if (udp) waits.push(this.#udpSendsDone().then(() => closeUdp(udp)));
    this.#closing = Promise.all(waits)
      .then(afterCloseCallbacks)
      .then(() => {
        this.#connections.clear();
        this.#byRemote.clear();
      });
    return this.#closing;
  }

  // -- receiving ---------------------------------------------------------------------------

  /** Runs a socket callback; nothing escapes it. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch {
      this.#dropped.internal++;
    }
  }

  #onDatagram(bytes: Uint8Array, rinfo: dgram.RemoteInfo): void {
    if (this.#closed) return;
    this.#received.udp++;
    const from: SipAddress = { transport: 'udp', host: normalizeHost(rinfo.address), port: rinfo.port };
    if (bytes.length > this.#maxMessageBytes) {
      this.#dropped.oversized++;
      this.#reportMalformed('message too large', from, undefined);
      return;
    }
    // RFC 5626 §4.4.1: a CRLF keep-alive on UDP is STUN, not SIP; a bare CRLF datagram is ignored.
    if (bytes.every((b) => b === CR || b === LF)) return;
    this.#deliver(bytes, from, 'udp');
  }

  #deliver(bytes: Uint8Array, from: SipAddress, transport: SipTransportName): void {
    let message: SipMessage;
    try {
      message = parseSipMessage(bytes, transport);
      if (message.kind === 'request') message = stampReceived(message, from);
    } catch (error) {
      this.#dropped.malformed++;
      const reason = error instanceof SipParseError ? error.reason : 'parser failure';
      if (!(error instanceof SipParseError)) this.#dropped.internal++;
      this.#reportMalformed(reason, from, bytes);
      return;
    }
    this.#delivered++;
    try {
      this.#listener.message(message, from);
    } catch {
      this.#dropped.listenerThrew++;
    }
  }

  /** Counts the reason and tells the listener, with a 400 when the bytes allow one. */
  #reportMalformed(reason: string, from: SipAddress, bytes: Uint8Array | undefined): void {
    this.#malformedReasons[reason] = (this.#malformedReasons[reason] ?? 0) + 1;
    let reply: SipResponse | undefined;
    try {
      reply = bytes ? salvageBadRequest(bytes, from) : undefined;
    } catch {
      reply = undefined;
    }
    try {
      this.#listener.malformed(reason, from, reply);
    } catch {
      this.#dropped.listenerThrew++;
    }
  }

  // -- TCP and TLS connections ---------------------------------------------------------------

  /** A connection accepted: by the TCP listener, or by the TLS listener once its handshake is done. */
  #onAccept(socket: net.Socket, transport: StreamTransportName): void {
    if (this.#closed || this.#connections.size >= this.#maxTcpConnections) {
      if (!this.#closed) this.#dropped.connectionLimit++;
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    const host = normalizeHost(socket.remoteAddress ?? '');
    const port = socket.remotePort ?? 0;
    this.#adopt(socket, transport, host, port, 'open');
  }

  #adopt(socket: net.Socket, transport: StreamTransportName, host: string, port: number, state: Connection['state']): Connection {
    const id = `${transport}-${this.#nextConnectionId++}`;
    const c: Connection = {
      id,
      transport,
      socket,
      remote: { transport, host, port, connection: id },
      key: remoteKey(transport, host, port),
      framer: new SipStreamFramer(this.#maxMessageBytes),
      state,
      queue: [],
      queuedBytes: 0,
      lastActivity: this.#clock.now(),
      idleTimer: undefined,
      connectTimer: undefined,
      lingerTimer: undefined,
      closed: new Promise((resolve) => socket.once('close', () => resolve())),
    };
    this.#opened++;
    this.#connections.set(id, c);
    if (!this.#byRemote.has(c.key)) this.#byRemote.set(c.key, c);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#guard(() => this.#onData(c, chunk)));
    socket.on('end', () =>
      this.#guard(() => {
        if (c.framer.buffered > 0 && !c.framer.failed) this.#dropped.tcpTruncated++;
      }),
    );
    socket.on('error', () => {
      if (c.queue.length > 0) this.#dropped.sendSocket += c.queue.length;
      c.queue = [];
      c.queuedBytes = 0;
    });
    socket.on('close', () => this.#guard(() => this.#forget(c)));
    this.#armIdle(c, this.#idleTcpTimeoutMs);
    return c;
  }

  #forget(c: Connection): void {
    this.#clearTimers(c);
    if (this.#connections.get(c.id) === c) this.#connections.delete(c.id);
    if (this.#byRemote.get(c.key) === c) this.#byRemote.delete(c.key);
  }

  #clearTimers(c: Connection): void {
    if (c.idleTimer !== undefined) this.#clock.clearTimeout(c.idleTimer);
    if (c.connectTimer !== undefined) this.#clock.clearTimeout(c.connectTimer);
    if (c.lingerTimer !== undefined) this.#clock.clearTimeout(c.lingerTimer);
    c.idleTimer = c.connectTimer = c.lingerTimer = undefined;
  }

  /** One timer per connection: when it fires, close if idle long enough, else wait the rest. */
  #armIdle(c: Connection, delayMs: number): void {
    c.idleTimer = this.#clock.setTimeout(() => {
      c.idleTimer = undefined;
      if (this.#closed || c.socket.destroyed) return;
      const idleMs = this.#clock.now() - c.lastActivity;
      if (idleMs >= this.#idleTcpTimeoutMs) {
        this.#idleClosed++;
        c.socket.destroy();
      } else this.#armIdle(c, this.#idleTcpTimeoutMs - idleMs);
    }, delayMs);
  }

  #onData(c: Connection, chunk: Uint8Array): void {
    if (this.#gone(c)) return;
    c.lastActivity = this.#clock.now();
    for (const out of c.framer.push(chunk)) {
      if (out.kind === 'ping') {
        this.#pings++;
        this.#write(c, new Uint8Array([CR, LF]));
      } else if (out.kind === 'message') {
        this.#received[c.transport]++;
        this.#deliver(out.bytes, c.remote, c.transport);
      } else {
        this.#received[c.transport]++;
        this.#dropped.tcpFraming++;
        // tell the listener first, so a 400 it sends is written before the connection ends
        this.#reportMalformed(out.reason, c.remote, out.bytes);
        this.#endConnection(c);
      }
      // the listener may have closed the transport or the connection meanwhile
      if (this.#gone(c)) return;
    }
  }

  #gone(c: Connection): boolean {
    return this.#closed || c.state === 'closing' || c.socket.destroyed;
  }

  /** Flushes what was written, then closes; destroyed after a short linger if the peer stalls. */
  #endConnection(c: Connection): void {
    if (c.state === 'closing') return;
    c.state = 'closing';
    if (this.#byRemote.get(c.key) === c) this.#byRemote.delete(c.key);
    c.socket.end();
    c.lingerTimer = this.#clock.setTimeout(() => {
      c.lingerTimer = undefined;
      c.socket.destroy();
    }, LINGER_AFTER_ERROR_MS);
  }

  // -- sending -------------------------------------------------------------------------------

  #sendUdp(bytes: Uint8Array, to: SipAddress): void {
    const udp = this.#udp;
    if (!udp) {
      this.#dropped.sendUnavailable++;
      return;
    }
    try {
      this.#udpInFlight++;
      udp.send(bytes, to.port, stripBrackets(to.host), (error) => {
        if (error) this.#dropped.sendSocket++;
        else this.#sent.udp++;
        if (--this.#udpInFlight === 0) for (const resolve of this.#udpDrained.splice(0)) resolve();
      });
    } catch {
      this.#udpInFlight--;
      this.#dropped.sendSocket++; // e.g. a port out of range
    }
  }

  /** Resolves once every UDP send already handed to the socket has been written (dgram resolves addresses asynchronously). */
  #udpSendsDone(): Promise<void> {
    if (this.#udpInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#udpDrained.push(resolve));
  }

  #sendStream(bytes: Uint8Array, to: SipAddress, transport: StreamTransportName): void {
    if (!this.#servers[transport]) {
      this.#dropped.sendUnavailable++;
      return;
    }
    // §18.2.2: a response goes back on the connection the request came on; if that is gone,
    // open a new one to the address (the layer above passes received/rport in `to`).
    const usable = (c: Connection | undefined): Connection | undefined => (c && c.state !== 'closing' && c.transport === transport ? c : undefined);
    const named = to.connection === undefined ? undefined : this.#connections.get(to.connection);
    const c = usable(named) ?? usable(this.#byRemote.get(remoteKey(transport, to.host, to.port))) ?? this.#connect(to, transport);
    if (!c) return;
    if (c.state === 'connecting') {
      if (c.queuedBytes + bytes.length > MAX_QUEUED_BYTES_PER_CONNECTION) {
        this.#dropped.sendBackpressure++;
        return;
      }
      c.queue.push(bytes);
      c.queuedBytes += bytes.length;
      return;
    }
    this.#write(c, bytes);
  }

  #write(c: Connection, bytes: Uint8Array): void {
    if (c.socket.destroyed || !c.socket.writable) {
      this.#dropped.sendSocket++;
      return;
    }
    if (c.socket.writableLength + bytes.length > MAX_QUEUED_BYTES_PER_CONNECTION) {
      this.#dropped.sendBackpressure++;
      return;
    }
    c.lastActivity = this.#clock.now();
    c.socket.write(bytes, (error) => {
      if (error) this.#dropped.sendSocket++;
    });
    this.#sent[c.transport]++;
  }

  /**
   * Opens a connection and queues on it until it is ready: connected (TCP), or connected and
   * the handshake done with the peer's certificate verified (TLS, RFC 5922 §7.2: against the
   * name the URI gave, `to.servername`, else the address).
   */
  #connect(to: SipAddress, transport: StreamTransportName): Connection | undefined {
    if (this.#connections.size >= this.#maxTcpConnections) {
      this.#dropped.connectionLimit++;
      return undefined;
    }
    const host = stripBrackets(to.host);
    if (!(to.port > 0 && to.port < 65536)) {
      this.#dropped.sendSocket++;
      return undefined;
    }
    let socket: net.Socket;
    let ready: 'connect' | 'secureConnect' = 'connect';
    if (transport === 'tls') {
      const client = this.#tlsClient;
      if (!client) {
        this.#dropped.sendUnavailable++;
        return undefined;
      }
      const servername = to.servername ?? (net.isIP(host) ? undefined : host);
      socket = tls.connect({ host, port: to.port, secureContext: client.context, rejectUnauthorized: client.verify, ...(servername !== undefined ? { servername } : {}) });
      ready = 'secureConnect';
    } else socket = net.connect({ host, port: to.port, noDelay: true });
    const c = this.#adopt(socket, transport, host, to.port, 'connecting');
    c.connectTimer = this.#clock.setTimeout(() => {
      c.connectTimer = undefined;
      if (c.state === 'connecting') socket.destroy();
    }, this.#connectTimeoutMs);
    let connected = false;
    socket.once('connect', () => (connected = true));
    socket.once(ready, () =>
      this.#guard(() => {
        if (c.connectTimer !== undefined) this.#clock.clearTimeout(c.connectTimer);
        c.connectTimer = undefined;
        if (c.state !== 'connecting') return;
        c.state = 'open';
        const queued = c.queue;
        c.queue = [];
        c.queuedBytes = 0;
        for (const bytes of queued) this.#write(c, bytes);
      }),
    );
    socket.on('close', () => {
      // connected over TCP but never secure: the handshake failed (a certificate not trusted)
      if (transport === 'tls' && connected && c.state === 'connecting' && !this.#closed) this.#dropped.tlsHandshake++;
      // never connected (refused, timed out, closed meanwhile): what was queued is lost
      if (c.queue.length > 0) this.#dropped.sendSocket += c.queue.length;
      c.queue = [];
      c.queuedBytes = 0;
    });
    return c;
  }
}
