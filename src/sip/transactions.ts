/**
 * SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state for INVITE 2xx).
 *
 * Four state machines, each owning its timers by their RFC names and closed exactly once:
 *
 *   client INVITE      Calling ─1xx→ Proceeding ─2xx→ Accepted (Timer M) ─→ Terminated
 *                        └─ 300-699 → Completed (ACK sent; Timer D) ─→ Terminated
 *   client non-INVITE  Trying ─1xx→ Proceeding ─final→ Completed (Timer K) ─→ Terminated
 *   server INVITE      Proceeding ─2xx→ Accepted (Timer L) ─→ Terminated
 *                        └─ 300-699 → Completed (Timer G resend, H) ─ACK→ Confirmed (Timer I)
 *   server non-INVITE  Trying ─1xx→ Proceeding ─final→ Completed (Timer J) ─→ Terminated
 *
 * Timers A, E and G retransmit over unreliable transports only; B, F and H give up after
 * 64·T1; D, I, J and K absorb retransmissions and are zero on reliable transports
 * (RFC 3261 Appendix A). T1, T2 and T4 come in with the clock, so tests run them in
 * microseconds on a FakeClock.
 */

import type { Clock, TimerHandle } from '../clock.ts';
import { type SipMessage, type SipRequest, type SipResponse, REASONS, SipHeaders, parseCSeq, parseVia } from './message.ts';
import { isStream, type SipAddress, type SipTransport } from './transport.ts';

export interface SipTimers {
  /** RTT estimate, ms (RFC 3261 default 500). */
  readonly T1: number;
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses (4 s). */
  readonly T2: number;
  /** Maximum duration a message remains in the network (5 s). */
  readonly T4: number;
}

export const DEFAULT_TIMERS: SipTimers = { T1: 500, T2: 4000, T4: 5000 };

/** RFC 3261 §8.1.1.7: every branch we make starts with the magic cookie. */
export const MAGIC_COOKIE = 'z9hG4bK';

export function newBranch(): string {
  return MAGIC_COOKIE + randomToken(16);
}

export function randomToken(length: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = '';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

/** What a client transaction tells its user. */
export interface ClientTransactionUser {
  response(response: SipResponse): void;
  /** Timer B or F fired, or the transport failed: behave as if a 408 arrived (§8.1.3.1). */
  timeout(): void;
}

/** The core above the transactions: new requests, and what no transaction claims. */
export interface TransactionCore {
  /** A new request (not a retransmission), with its server transaction (none for ACK). */
  request(request: SipRequest, transaction: ServerTransaction | undefined, from: SipAddress): void;
  /** A response no client transaction matches (e.g. a retransmitted 2xx after Accepted ended). */
  strayResponse(response: SipResponse, from: SipAddress): void;
}

type State = 'calling' | 'trying' | 'proceeding' | 'accepted' | 'completed' | 'confirmed' | 'terminated';

abstract class Transaction {
  readonly key: string;
  protected readonly layer: TransactionLayer;
  protected state: State;
  readonly #timers = new Map<string, TimerHandle>();

  constructor(layer: TransactionLayer, key: string, state: State) {
    this.layer = layer;
    this.key = key;
    this.state = state;
  }

  get terminated(): boolean {
    return this.state === 'terminated';
  }

  /** Starts (or restarts) the timer named as in RFC 3261. */
  protected startTimer(name: string, ms: number, fire: () => void): void {
    this.stopTimer(name);
    this.#timers.set(
      name,
      this.layer.clock.setTimeout(() => {
        this.#timers.delete(name);
        if (this.state !== 'terminated') fire();
      }, ms),
    );
  }

  protected stopTimer(name: string): void {
    const handle = this.#timers.get(name);
    if (handle !== undefined) {
      this.layer.clock.clearTimeout(handle);
      this.#timers.delete(name);
    }
  }

  /** Ends the transaction: every timer cleared, removed from the layer. Idempotent. */
  terminate(): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    for (const handle of this.#timers.values()) this.layer.clock.clearTimeout(handle);
    this.#timers.clear();
    this.layer.forget(this);
  }
}

export class ClientTransaction extends Transaction {
  readonly request: SipRequest;
  readonly to: SipAddress;
  readonly #user: ClientTransactionUser;
  readonly #invite: boolean;
  readonly #reliable: boolean;

  constructor(layer: TransactionLayer, key: string, request: SipRequest, to: SipAddress, user: ClientTransactionUser) {
    const invite = request.method === 'INVITE';
    super(layer, key, invite ? 'calling' : 'trying');
    this.request = request;
    this.to = to;
    this.#user = user;
    this.#invite = invite;
    this.#reliable = layer.transport.reliable(to.transport);
  }

  start(): void {
    const { T1, T2 } = this.layer.timers;
    this.layer.transport.send(this.request, this.to);
    if (this.#invite) {
      // §17.1.1.2: Timer A retransmits (unreliable only), Timer B gives up.
      if (!this.#reliable) this.#retransmit('A', T1, Infinity);
      this.startTimer('B', 64 * T1, () => this.#timeout());
    } else {
      // §17.1.2.2: Timer E retransmits, doubling up to T2; Timer F gives up.
      if (!this.#reliable) this.#retransmit('E', T1, T2);
      this.startTimer('F', 64 * T1, () => this.#timeout());
    }
  }

  #retransmit(timer: 'A' | 'E', interval: number, cap: number): void {
    this.startTimer(timer, interval, () => {
      if (this.state === 'calling' || this.state === 'trying' || (timer === 'E' && this.state === 'proceeding')) {
        this.layer.transport.send(this.request, this.to);
        // in Proceeding a non-INVITE retransmits every T2 (§17.1.2.2)
        const next = this.state === 'proceeding' ? this.layer.timers.T2 : Math.min(2 * interval, cap);
        this.#retransmit(timer, next, cap);
      }
    });
  }

  #timeout(): void {
    this.terminate();
    this.#user.timeout();
  }

  /** The layer is closing: end now and tell the user, so nothing waits for ever. */
  abort(): void {
    if (this.terminated) return;
    this.#timeout();
  }

  receive(response: SipResponse): void {
    const status = response.status;
    if (this.#invite) this.#receiveInvite(response, status);
    else this.#receiveNonInvite(response, status);
  }

  #receiveInvite(response: SipResponse, status: number): void {
    const { T1 } = this.layer.timers;
    switch (this.state) {
      case 'calling':
      case 'proceeding':
        this.stopTimer('A');
        if (status < 200) {
          this.state = 'proceeding';
          this.#user.response(response);
        } else if (status < 300) {
          // RFC 6026 §7.2: Accepted, passing further 2xx up for the TU to ACK, Timer M.
          this.state = 'accepted';
          this.stopTimer('B');
          this.startTimer('M', 64 * T1, () => this.terminate());
          this.#user.response(response);
        } else {
          this.state = 'completed';
          this.stopTimer('B');
          this.#sendAck(response);
          this.startTimer('D', this.#reliable ? 0 : 32_000, () => this.terminate());
          this.#user.response(response);
        }
        return;
      case 'accepted':
        if (status >= 200 && status < 300) this.#user.response(response);
        return;
      case 'completed':
        // a retransmitted final response: ACK it again, do not tell the TU (§17.1.1.2)
        if (status >= 300) this.#sendAck(response);
        return;
      default:
        return;
    }
  }

  #receiveNonInvite(response: SipResponse, status: number): void {
    switch (this.state) {
      case 'trying':
      case 'proceeding':
        if (status < 200) {
          this.state = 'proceeding';
          this.#user.response(response);
          return;
        }
        this.state = 'completed';
        this.stopTimer('E');
        this.stopTimer('F');
        this.startTimer('K', this.#reliable ? 0 : this.layer.timers.T4, () => this.terminate());
        this.#user.response(response);
        return;
      default:
        return; // Completed absorbs retransmissions
    }
  }

  /** §17.1.1.3: the ACK for a non-2xx final response belongs to the transaction. */
  #sendAck(response: SipResponse): void {
    const request = this.request;
    const headers = new SipHeaders();
    headers.append('Via', request.headers.getAll('Via')[0]!);
    for (const route of request.headers.getAll('Route')) headers.append('Route', route);
    headers.append('Max-Forwards', '70');
    headers.append('From', request.headers.get('From')!);
    headers.append('To', response.headers.get('To')!);
    headers.append('Call-ID', request.headers.get('Call-ID')!);
    headers.append('CSeq', `${parseCSeq(request.headers.get('CSeq')!).seq} ACK`);
    this.layer.transport.send({ kind: 'request', method: 'ACK', uri: request.uri, headers, body: new Uint8Array(0) }, this.to);
  }
}

export class ServerTransaction extends Transaction {
  readonly request: SipRequest;
  readonly from: SipAddress;
  readonly #invite: boolean;
  readonly #reliable: boolean;
  #lastResponse: SipResponse | undefined;
  /** Called once if the transaction learns the response never reached the peer (Timer H). */
  onTimeout: (() => void) | undefined;

  constructor(layer: TransactionLayer, key: string, request: SipRequest, from: SipAddress) {
    const invite = request.method === 'INVITE';
    super(layer, key, invite ? 'proceeding' : 'trying');
    this.request = request;
    this.from = from;
    this.#invite = invite;
    this.#reliable = layer.transport.reliable(from.transport);
  }

  get isInvite(): boolean {
    return this.#invite;
  }

  /** Whether a final response has been sent. */
  get answered(): boolean {
    return this.state !== 'proceeding' && this.state !== 'trying';
  }

  /** The TU's response (§17.2.1 / §17.2.2). Responses after a final one are ignored. */
  respond(response: SipResponse): void {
    if (this.answered) return;
    const status = response.status;
    this.#lastResponse = response;
    this.layer.sendResponse(response, this.request, this.from);
    const { T1, T2 } = this.layer.timers;
    if (status < 200) {
      if (!this.#invite) this.state = 'proceeding';
      return;
    }
    if (this.#invite) {
      if (status < 300) {
        // RFC 6026 §7.1: Accepted absorbs retransmitted INVITEs for 64·T1 (Timer L); the
        // TU itself retransmits the 2xx until the ACK (§13.3.1.4).
        this.state = 'accepted';
        this.startTimer('L', 64 * T1, () => this.terminate());
        return;
      }
      this.state = 'completed';
      if (!this.#reliable) this.#resendFinal(T1, T2);
      this.startTimer('H', 64 * T1, () => {
        this.terminate();
        this.onTimeout?.();
      });
      return;
    }
    this.state = 'completed';
    this.startTimer('J', this.#reliable ? 0 : 64 * T1, () => this.terminate());
  }

  #resendFinal(interval: number, cap: number): void {
    this.startTimer('G', interval, () => {
      if (this.state !== 'completed' || !this.#lastResponse) return;
      this.layer.sendResponse(this.#lastResponse, this.request, this.from);
      this.#resendFinal(Math.min(2 * interval, cap), cap);
    });
  }

  /** A retransmission of the request, or (INVITE) the ACK for a non-2xx final response. */
  receive(request: SipRequest): void {
    if (request.method === 'ACK') {
      if (this.state === 'completed') {
        this.state = 'confirmed';
        this.stopTimer('G');
        this.stopTimer('H');
        this.startTimer('I', this.#reliable ? 0 : this.layer.timers.T4, () => this.terminate());
      }
      return;
    }
    // a retransmitted request: repeat the last response, if any (§17.2.1, §17.2.2)
    if (this.#lastResponse && this.state !== 'accepted') this.layer.sendResponse(this.#lastResponse, this.request, this.from);
  }
}

/**
 * The transaction layer: matches what the transport delivers to transactions (§17.1.3,
 * §17.2.3), passes new requests to the core, and sends responses where §18.2.2 says.
 */
export class TransactionLayer {
  readonly transport: Pick<SipTransport, 'send' | 'reliable'>;
  readonly clock: Clock;
  readonly timers: SipTimers;
  readonly #core: TransactionCore;
  readonly #clients = new Map<string, ClientTransaction>();
  readonly #servers = new Map<string, ServerTransaction>();
  #closed = false;

  constructor(transport: Pick<SipTransport, 'send' | 'reliable'>, clock: Clock, core: TransactionCore, timers: SipTimers = DEFAULT_TIMERS) {
    this.transport = transport;
    this.clock = clock;
    this.#core = core;
    this.timers = timers;
  }

  /** Live transactions (a leak check for tests). */
  get size(): number {
    return this.#clients.size + this.#servers.size;
  }

  /** Sends a request in a new client transaction. The top Via must carry a fresh branch. */
  sendRequest(request: SipRequest, to: SipAddress, user: ClientTransactionUser): ClientTransaction {
    const key = clientKey(request);
    const tx = new ClientTransaction(this, key, request, to, user);
    if (this.#closed) {
      tx.terminate();
      queueMicrotask(() => user.timeout());
      return tx;
    }
    this.#clients.set(key, tx);
    tx.start();
    return tx;
  }

  /** Sends outside any transaction (a 2xx's ACK, a stateless 400). */
  sendStateless(message: SipMessage, to: SipAddress): void {
    this.transport.send(message, to);
  }

  /** Sends a response to a request along its Via (§18.2.2), or back on its connection. */
  sendResponse(response: SipResponse, request: SipRequest, from: SipAddress): void {
    this.transport.send(response, responseAddress(request, from));
  }

  /** Everything the transport delivers comes here. */
  receive(message: SipMessage, from: SipAddress): void {
    if (this.#closed) return;
    if (message.kind === 'response') {
      const tx = this.#clients.get(responseKey(message));
      if (tx) tx.receive(message);
      else this.#core.strayResponse(message, from);
      return;
    }
    const key = serverKey(message);
    const existing = this.#servers.get(key);
    if (existing) {
      existing.receive(message);
      return;
    }
    if (message.method === 'ACK') {
      // ACK for a 2xx (its own branch) belongs to the dialog, not to a transaction
      this.#core.request(message, undefined, from);
      return;
    }
    const tx = new ServerTransaction(this, key, message, from);
    this.#servers.set(key, tx);
    if (tx.isInvite) tx.respond(makeResponse(message, 100)); // §17.2.1: 100 Trying at once
    this.#core.request(message, tx, from);
  }

  /** The server INVITE transaction a CANCEL targets (§9.2): same branch and sent-by. */
  inviteFor(cancel: SipRequest): ServerTransaction | undefined {
    return this.#servers.get(serverKey(cancel, 'INVITE'));
  }

  forget(tx: Transaction): void {
    if (this.#clients.get(tx.key) === tx) this.#clients.delete(tx.key);
    else if (this.#servers.get(tx.key) === tx) this.#servers.delete(tx.key);
  }

  /** Terminates every transaction (their timers with them). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const tx of [...this.#clients.values()]) tx.abort();
    for (const tx of [...this.#servers.values()]) tx.terminate();
  }
}

function clientKey(request: SipRequest): string {
  const via = parseVia(request.headers.getAll('Via')[0]!);
  return `${via.branch ?? ''}|${request.method === 'ACK' ? 'INVITE' : request.method}`;
}

function responseKey(response: SipResponse): string {
  const via = parseVia(response.headers.getAll('Via')[0]!);
  const method = parseCSeq(response.headers.get('CSeq')!).method;
  return `${via.branch ?? ''}|${method}`;
}

/**
 * §17.2.3: with an RFC 3261 branch, branch + sent-by + method (ACK matches its INVITE); for
 * an RFC 2543 peer (no magic cookie), Request-URI, tags, Call-ID, CSeq and Via stand in.
 */
function serverKey(request: SipRequest, asMethod?: string): string {
  const viaText = request.headers.getAll('Via')[0]!;
  const via = parseVia(viaText);
  const method = asMethod ?? (request.method === 'ACK' ? 'INVITE' : request.method);
  const sentBy = `${via.host}:${via.port ?? ''}`;
  if (via.branch?.startsWith(MAGIC_COOKIE)) return `${via.branch}|${sentBy}|${method}`;
  const cseq = parseCSeq(request.headers.get('CSeq')!).seq;
  return `2543|${request.uri}|${request.headers.get('From')}|${request.headers.get('Call-ID')}|${cseq}|${viaText}|${method}`;
}

/**
 * §18.2.2 with RFC 3581: back to the source port when rport asked for it, else along Via. Over
 * TCP and TLS: "the response MUST be sent using the existing connection to the source of the
 * original request", so a request that came over TLS is answered over TLS, on its connection.
 */
export function responseAddress(request: SipRequest, from: SipAddress): SipAddress {
  // FIXME: §18.2.2 "If that connection is no longer open, the server SHOULD open a connection to
  // the IP address in the 'received' parameter ... using the port in the 'sent-by' value"; the
  // transport opens one to the connection's source address and port instead.
  if (isStream(from.transport)) return from;
  const via = parseVia(request.headers.getAll('Via')[0]!);
  const rport = via.params.get('rport');
  if (rport !== undefined) return { transport: 'udp', host: via.params.get('received') || from.host, port: Number(rport) || from.port };
  return { transport: 'udp', host: via.params.get('received') || via.host, port: via.port ?? 5060 };
}

/** More Via lines than this are joined into one in a response, to stay within MAX_HEADER_LINES. */
const MAX_COPIED_VIA_LINES = 64;

/** §8.2.6: a response to `request` — Via, From, To, Call-ID and CSeq copied; a To tag if given. */
export function makeResponse(request: SipRequest, status: number, options: { reason?: string; toTag?: string; headers?: Iterable<readonly [string, string]>; body?: Uint8Array } = {}): SipResponse {
  const headers = new SipHeaders();
  // Via lines copied as they came (§8.2.6.2: same values, same order): splitting a line that
  // holds many values into one line each could make a response too long for the peer to parse;
  // and a request with very many Via lines gets them joined on one.
  const vias = request.headers.entries().filter((f) => f.name === 'Via').map((f) => f.value);
  if (vias.length > MAX_COPIED_VIA_LINES) headers.append('Via', vias.join(', '));
  else for (const via of vias) headers.append('Via', via);
  headers.append('From', request.headers.get('From')!);
  let to = request.headers.get('To')!;
  if (options.toTag && !/;\s*tag=/i.test(to)) to = `${to};tag=${options.toTag}`;
  headers.append('To', to);
  headers.append('Call-ID', request.headers.get('Call-ID')!);
  headers.append('CSeq', request.headers.get('CSeq')!);
  for (const [name, value] of options.headers ?? []) headers.append(name, value);
  return { kind: 'response', status, reason: options.reason ?? REASONS[status] ?? '', headers, body: options.body ?? new Uint8Array(0) };
}
