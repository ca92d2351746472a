/**
 * The embedded SIP core's user agent: UAS and UAC cores and dialogs (RFC 3261 §8, §12–§15),
 * above the transaction layer, behind the signaling port (port.ts) that hushpay's calls use.
 *
 * - UAS: a new INVITE goes to the port's 'invite' handler with a request and a responder;
 *   `createUAS` answers 200 with SDP and retransmits it (T1 doubling to T2) until the ACK
 *   (§13.3.1.4), giving up with a BYE after 64·T1. CANCEL answers 200 and 487s the INVITE.
 * - UAC: `createUAC` sends an INVITE, answers a 401/407 challenge once with digest
 *   credentials, ACKs the 2xx (again for each retransmission), and can be cancelled.
 * - Dialogs: tags, CSeq, remote target and route set (§12.1); re-INVITE and UPDATE (hold and
 *   resume pass their SDP through), INFO, BYE; 481 for unknown dialogs, 491 on glare.
 * - Out of dialog: OPTIONS gets 200 with Allow and Accept (trunk keep-alives); other
 *   methods 405; malformed requests the 400 the transport built.
 */

import type { Clock, TimerHandle } from '../clock.ts';
import { InvalidStateError, SipRequestFailedError } from '../errors.ts';
import { TypedEmitter } from '../events.ts';
import {
  type NameAddr,
  type SipMessage,
  type SipRequest,
  type SipResponse,
  SipHeaders,
  bodyText,
  formatNameAddr,
  parseCSeq,
  parseNameAddr,
  parseUri,
  parseVia,
  tagOf,
  textBody,
} from './message.ts';
import { type ClientTransactionUser, DEFAULT_TIMERS, type ServerTransaction, type SipTimers, TransactionLayer, makeResponse, newBranch, randomToken, responseAddress } from './transactions.ts';
import { defaultPort, type SipAddress, type SipTransport, type SipTransportName } from './transport.ts';

export const ALLOW = 'INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE';
/** How long close() waits for the answers to its BYEs. */
const CLOSE_WAIT_MS = 2000;
export const ACCEPT = 'application/sdp, application/dtmf-relay, application/dtmf';

/** Credentials hushpay answers a digest challenge with (from the config, never logged). */
export interface SipCredentials {
  readonly username: string;
  readonly password: string;
}

/** Answers a challenge: returns the request to send instead, or undefined if it cannot. */
export type ChallengeAnswerer = (request: SipRequest, response: SipResponse, credentials: SipCredentials) => SipRequest | undefined;

export interface UserAgentOptions {
  readonly transport: Pick<SipTransport, 'send' | 'reliable' | 'local'>;
  readonly clock: Clock;
  readonly timers?: SipTimers;
  /** The host (and port) put in Contact and Via; defaults to the transport's address. */
  readonly advertise?: { host: string; port?: number };
  readonly userAgent?: string;
  /** Digest support (digest.ts); without it 401/407 are final. */
  readonly answerChallenge?: ChallengeAnswerer;
  /** Resolves a host name to an address (tests and IP literals need none). */
  readonly resolve?: (host: string) => Promise<string>;
}

/** An incoming INVITE that starts a call. */
export class IncomingInvite extends TypedEmitter<{ cancel: [] }> {
  readonly request: SipRequest;
  readonly source: SipAddress;
  readonly transaction: ServerTransaction;
  /** The To tag our responses carry (the dialog's local tag). */
  readonly localTag = randomToken(10);
  #cancelled = false;

  constructor(request: SipRequest, source: SipAddress, transaction: ServerTransaction) {
    super();
    this.request = request;
    this.source = source;
    this.transaction = transaction;
  }

  get callId(): string {
    return this.request.headers.get('Call-ID')!;
  }
  get uri(): string {
    return this.request.uri;
  }
  get from(): NameAddr {
    return parseNameAddr(this.request.headers.get('From')!);
  }
  get to(): NameAddr {
    return parseNameAddr(this.request.headers.get('To')!);
  }
  get headers(): SipHeaders {
    return this.request.headers;
  }
  get sdp(): string {
    return bodyText(this.request);
  }
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** @internal */
  markCancelled(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.emit('cancel');
  }
}

export interface ResponseOptions {
  readonly reason?: string;
  readonly headers?: Iterable<readonly [string, string]>;
  readonly body?: string;
  readonly contentType?: string;
}

/** Answers an IncomingInvite with provisional or failure responses (success: createUAS). */
export class InviteResponder {
  readonly #invite: IncomingInvite;
  readonly #ua: SipUserAgent;

  constructor(invite: IncomingInvite, ua: SipUserAgent) {
    this.#invite = invite;
    this.#ua = ua;
  }

  get answered(): boolean {
    return this.#invite.transaction.answered;
  }

  /** Sends a 1xx, or a 3xx–6xx final response. */
  send(status: number, options: ResponseOptions = {}): void {
    if (status >= 200 && status < 300) throw new InvalidStateError('answer an INVITE with createUAS');
    this.#invite.transaction.respond(this.#ua.buildResponse(this.#invite.request, status, this.#invite.localTag, options));
  }
}

export interface DialogEndReason {
  readonly by: 'local' | 'remote' | 'timeout' | 'error';
  readonly status?: number;
}

/** A re-INVITE or UPDATE the peer sent; the listener must `respond`. */
export interface ModifyRequest {
  readonly method: 'INVITE' | 'UPDATE';
  readonly sdp: string;
  readonly headers: SipHeaders;
  respond(status: number, options?: { sdp?: string; reason?: string }): void;
}

/** An INFO the peer sent (DTMF relay, typically); answered 200 unless a listener says otherwise. */
export interface InfoRequest {
  readonly headers: SipHeaders;
  readonly contentType: string;
  readonly body: string;
  respond(status: number): void;
}

interface DialogEvents extends Record<string, unknown[]> {
  destroy: [DialogEndReason];
  modify: [ModifyRequest];
  info: [InfoRequest];
}

/** A 2xx sent and not yet ACKed, with its two timers (§13.3.1.4). */
interface Unacked2xx {
  readonly response: SipResponse;
  readonly request: SipRequest;
  readonly to: SipAddress;
  retransmit: TimerHandle | undefined;
  giveUp: TimerHandle | undefined;
  interval: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

export class SipDialog extends TypedEmitter<DialogEvents> {
  readonly role: 'uas' | 'uac';
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  readonly localUri: string;
  readonly remoteUri: string;
  /** Where in-dialog requests go (the peer's Contact), and the route set (§12.1). */
  remoteTarget: string;
  readonly routeSet: readonly string[];
  localSdp: string;
  remoteSdp: string;
  readonly #ua: SipUserAgent;
  /** The transport the dialog was set up on, and its connection. */
  readonly #via: SipAddress;
  #localSeq: number;
  #remoteSeq: number;
  #destroyed = false;
  #pendingInvite = false;
  /** §13.3.1.4 / §13.2.2.4: the 2xx we retransmit until the ACK (UAS), or the ACK we repeat (UAC). */
  #unacked: Unacked2xx | undefined;
  #lastAck: { ack: SipRequest; to: SipAddress; seq: number } | undefined;

  constructor(ua: SipUserAgent, init: { role: 'uas' | 'uac'; callId: string; localTag: string; remoteTag: string; localUri: string; remoteUri: string; remoteTarget: string; routeSet: readonly string[]; localSeq: number; remoteSeq: number; localSdp: string; remoteSdp: string; via: SipAddress }) {
    super();
    this.#ua = ua;
    this.role = init.role;
    this.callId = init.callId;
    this.localTag = init.localTag;
    this.remoteTag = init.remoteTag;
    this.localUri = init.localUri;
    this.remoteUri = init.remoteUri;
    this.remoteTarget = init.remoteTarget;
    this.routeSet = init.routeSet;
    this.#localSeq = init.localSeq;
    this.#remoteSeq = init.remoteSeq;
    this.localSdp = init.localSdp;
    this.remoteSdp = init.remoteSdp;
    this.#via = init.via;
  }

  get id(): string {
    return dialogId(this.callId, this.localTag, this.remoteTag);
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Sends a re-INVITE with new SDP; resolves with the peer's SDP. */
  async modify(sdp: string): Promise<string> {
    if (this.#destroyed) throw new InvalidStateError('dialog ended');
    if (this.#pendingInvite) throw new InvalidStateError('a re-INVITE is already pending');
    this.#pendingInvite = true;
    try {
      const response = await this.request('INVITE', { body: sdp, contentType: 'application/sdp' });
      this.localSdp = sdp;
      this.remoteSdp = bodyText(response);
      return this.remoteSdp;
    } finally {
      this.#pendingInvite = false;
    }
  }

  /** Sends an in-dialog request; resolves with its 2xx, rejects with SipRequestFailedError. */
  async request(method: string, options: { headers?: Iterable<readonly [string, string]>; body?: string; contentType?: string } = {}): Promise<SipResponse> {
    if (this.#destroyed && method !== 'BYE') throw new InvalidStateError('dialog ended');
    const request = this.#buildRequest(method, options);
    const to = await this.#ua.targetOf(this.routeSet[0] ? routeUri(this.routeSet[0]) : this.remoteTarget, this.#via);
    const response = await this.#ua.send(request, to);
    if (method === 'INVITE' && response.status >= 200 && response.status < 300) this.#ack(request, response, to);
    if (response.status >= 300) throw new SipRequestFailedError(method, response.status);
    return response;
  }

  /** Ends the dialog with a BYE (once; later calls return at once). */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#end({ by: 'local' });
    try {
      await this.request('BYE');
    } catch {
      // the peer may be gone; the dialog is over either way
    }
  }

  #buildRequest(method: string, options: { headers?: Iterable<readonly [string, string]>; body?: string; contentType?: string }): SipRequest {
    const seq = method === 'ACK' ? this.#localSeq : ++this.#localSeq;
    const headers = new SipHeaders();
    headers.append('Via', this.#ua.via(this.#via.transport));
    for (const route of this.routeSet) headers.append('Route', route);
    headers.append('Max-Forwards', '70');
    headers.append('From', `<${this.localUri}>;tag=${this.localTag}`);
    headers.append('To', `<${this.remoteUri}>;tag=${this.remoteTag}`);
    headers.append('Call-ID', this.callId);
    headers.append('CSeq', `${seq} ${method}`);
    headers.append('Contact', this.#ua.contact(this.#via.transport));
    headers.append('User-Agent', this.#ua.userAgent);
    if (method === 'INVITE' || method === 'UPDATE') headers.append('Allow', ALLOW);
    for (const [name, value] of options.headers ?? []) headers.append(name, value);
    if (options.body !== undefined) headers.set('Content-Type', options.contentType ?? 'application/sdp');
    // §12.2.1.1: a strict router (no lr) takes the Request-URI; we only follow loose routing
    return { kind: 'request', method, uri: this.remoteTarget, headers, body: options.body === undefined ? new Uint8Array(0) : textBody(options.body) };
  }

  /** UAC: ACK a 2xx (a new transaction-less request, §13.2.2.4), remembered for retransmissions. */
  #ack(invite: SipRequest, response: SipResponse, to: SipAddress): void {
    const seq = parseCSeq(invite.headers.get('CSeq')!).seq;
    const headers = new SipHeaders();
    headers.append('Via', this.#ua.via(to.transport));
    for (const route of this.routeSet) headers.append('Route', route);
    headers.append('Max-Forwards', '70');
    headers.append('From', invite.headers.get('From')!);
    headers.append('To', response.headers.get('To')!);
    headers.append('Call-ID', this.callId);
    headers.append('CSeq', `${seq} ACK`);
    headers.append('Contact', this.#ua.contact(to.transport));
    const ack: SipRequest = { kind: 'request', method: 'ACK', uri: this.remoteTarget, headers, body: new Uint8Array(0) };
    this.#lastAck = { ack, to, seq };
    this.#ua.sendStateless(ack, to);
  }

  /** @internal UAC: ACK the 2xx that set the dialog up. */
  ackInitial(invite: SipRequest, response: SipResponse, to: SipAddress): void {
    this.#ack(invite, response, to);
  }

  /** @internal A 2xx retransmission reached us: repeat its ACK. */
  repeatAck(response: SipResponse): void {
    const seq = parseCSeq(response.headers.get('CSeq')!).seq;
    if (this.#lastAck && this.#lastAck.seq === seq) this.#ua.sendStateless(this.#lastAck.ack, this.#lastAck.to);
  }

  /**
   * @internal UAS: retransmits a 2xx the server transaction has just sent until the ACK
   * arrives (§13.3.1.4); resolves on the ACK.
   */
  retransmit2xxUntilAck(request: SipRequest, response: SipResponse, to: SipAddress): Promise<void> {
    return new Promise((resolve, reject) => {
      const pending: Unacked2xx = { response, request, to, retransmit: undefined, giveUp: undefined, interval: this.#ua.timers.T1, resolve, reject };
      this.#unacked = pending;
      pending.giveUp = this.#ua.clock.setTimeout(() => this.#no2xxAck(), 64 * this.#ua.timers.T1);
      if (!this.#ua.reliable(to.transport)) this.#schedule2xx();
    });
  }

  #schedule2xx(): void {
    const pending = this.#unacked;
    if (!pending) return;
    pending.retransmit = this.#ua.clock.setTimeout(() => {
      if (this.#unacked !== pending) return;
      this.#ua.sendStateless(pending.response, pending.to);
      pending.interval = Math.min(2 * pending.interval, this.#ua.timers.T2);
      this.#schedule2xx();
    }, pending.interval);
  }

  #stop2xx(pending: Unacked2xx): void {
    if (pending.retransmit !== undefined) this.#ua.clock.clearTimeout(pending.retransmit);
    if (pending.giveUp !== undefined) this.#ua.clock.clearTimeout(pending.giveUp);
  }

  #no2xxAck(): void {
    const pending = this.#unacked;
    if (!pending) return;
    this.#stop2xx(pending);
    this.#unacked = undefined;
    pending.reject(new SipRequestFailedError('ACK', 408));
    // §13.3.1.4: no ACK within 64·T1 — confirm and then end the session
    void this.request('BYE').catch(() => {});
    this.#end({ by: 'timeout' });
  }

  /** @internal The ACK for our 2xx. */
  acked(ack: SipRequest): void {
    const pending = this.#unacked;
    if (!pending) return;
    if (parseCSeq(ack.headers.get('CSeq')!).seq !== parseCSeq(pending.request.headers.get('CSeq')!).seq) return;
    this.#stop2xx(pending);
    this.#unacked = undefined;
    pending.resolve();
  }

  /** @internal A request inside this dialog. */
  receive(request: SipRequest, tx: ServerTransaction | undefined, from: SipAddress): void {
    if (request.method === 'ACK') {
      this.acked(request);
      return;
    }
    if (!tx) return;
    const seq = parseCSeq(request.headers.get('CSeq')!).seq;
    // §12.2.2: a lower CSeq than the last one is out of order
    if (seq <= this.#remoteSeq && request.method !== 'CANCEL') {
      tx.respond(this.#ua.buildResponse(request, 500, this.localTag, { reason: 'Out of Order' }));
      return;
    }
    this.#remoteSeq = seq;
    const contact = request.headers.getAll('Contact')[0];
    if ((request.method === 'INVITE' || request.method === 'UPDATE') && contact) this.remoteTarget = parseNameAddr(contact).uri;
    switch (request.method) {
      case 'BYE':
        tx.respond(this.#ua.buildResponse(request, 200, this.localTag));
        this.#end({ by: 'remote' });
        return;
      case 'INVITE':
      case 'UPDATE':
        this.#modify(request, tx, from);
        return;
      case 'INFO':
        this.#info(request, tx);
        return;
      case 'OPTIONS':
        tx.respond(this.#ua.buildResponse(request, 200, this.localTag, { headers: [['Allow', ALLOW], ['Accept', ACCEPT]] }));
        return;
      default:
        tx.respond(this.#ua.buildResponse(request, 405, this.localTag, { headers: [['Allow', ALLOW]] }));
    }
  }

  #modify(request: SipRequest, tx: ServerTransaction, from: SipAddress): void {
    const method = request.method as 'INVITE' | 'UPDATE';
    if (method === 'INVITE' && (this.#pendingInvite || this.#unacked)) {
      tx.respond(this.#ua.buildResponse(request, 491, this.localTag)); // §14.2 glare
      return;
    }
    let answered = false;
    const respond = (status: number, options: { sdp?: string; reason?: string } = {}): void => {
      if (answered) return;
      answered = true;
      const body = options.sdp;
      const response = this.#ua.buildResponse(request, status, this.localTag, {
        ...(options.reason !== undefined ? { reason: options.reason } : {}),
        ...(body !== undefined ? { body, contentType: 'application/sdp' } : {}),
        headers: status >= 200 && status < 300 ? [['Contact', this.#ua.contact(this.#via.transport)]] : [],
      });
      if (status >= 200 && status < 300) {
        if (body !== undefined) this.localSdp = body;
        this.remoteSdp = bodyText(request) || this.remoteSdp;
        if (method === 'INVITE') {
          tx.respond(response);
          void this.retransmit2xxUntilAck(request, response, responseAddress(request, from)).catch(() => {});
          return;
        }
      }
      tx.respond(response);
    };
    const handled = this.emit('modify', { method, sdp: bodyText(request), headers: request.headers, respond });
    if (!handled) respond(200, { sdp: this.localSdp });
  }

  #info(request: SipRequest, tx: ServerTransaction): void {
    let answered = false;
    const respond = (status: number): void => {
      if (answered) return;
      answered = true;
      tx.respond(this.#ua.buildResponse(request, status, this.localTag));
    };
    this.emit('info', { headers: request.headers, contentType: (request.headers.get('Content-Type') ?? '').toLowerCase(), body: bodyText(request), respond });
    respond(200);
  }

  /** @internal Ends the dialog once, telling listeners why. */
  end(reason: DialogEndReason): void {
    this.#end(reason);
  }

  #end(reason: DialogEndReason): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    const pending = this.#unacked;
    if (pending) {
      this.#stop2xx(pending);
      this.#unacked = undefined;
      pending.reject(new SipRequestFailedError('ACK', 0));
    }
    this.#ua.forget(this);
    this.emit('destroy', reason);
  }
}

function routeUri(route: string): string {
  return parseNameAddr(route).uri;
}

/** The transport a URI asks for, if it asks: `sips:` means TLS (§26.2.2), else its `transport` parameter. */
function uriTransport(scheme: string, param: string | undefined): SipTransportName | undefined {
  if (scheme === 'sips') return 'tls';
  const t = param?.toLowerCase();
  return t === 'udp' || t === 'tcp' || t === 'tls' ? t : undefined;
}

/** The transport a request came over, as its sender wrote it in the top Via (§18.2.1). */
function arrivedOver(request: SipRequest): SipTransportName {
  const top = request.headers.getAll('Via')[0];
  const t = top === undefined ? 'udp' : parseVia(top).transport.toLowerCase();
  return t === 'tcp' || t === 'tls' ? t : 'udp';
}

export function dialogId(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}|${localTag}|${remoteTag}`;
}

export interface UacOptions {
  readonly localSdp: string;
  readonly headers?: Iterable<readonly [string, string]>;
  /** From user part and display name (default: hushpay). */
  readonly fromUser?: string;
  readonly fromDisplayName?: string;
  /** Where to send, if not the Request-URI's host (an outbound proxy or the PBX). */
  readonly target?: SipAddress;
  readonly credentials?: SipCredentials;
  readonly transport?: SipTransportName;
}

export interface UacCallbacks {
  readonly onProvisional?: (response: SipResponse) => void;
  /** Aborting sends a CANCEL (after the first provisional response, §9.1). */
  readonly signal?: AbortSignal;
}

/**
 * The user agent: owns the transaction layer and the dialogs, and routes what the transport
 * delivers. Emits 'invite' for each new INVITE.
 */
export class SipUserAgent extends TypedEmitter<{ invite: [IncomingInvite, InviteResponder]; malformed: [string] }> {
  readonly clock: Clock;
  readonly timers: SipTimers;
  readonly userAgent: string;
  readonly #transport: Pick<SipTransport, 'send' | 'reliable' | 'local'>;
  readonly #layer: TransactionLayer;
  readonly #options: UserAgentOptions;
  readonly #dialogs = new Map<string, SipDialog>();
  /** UAS INVITEs not yet answered with a final response, by Call-ID + From tag. */
  readonly #pending = new Map<string, IncomingInvite>();
  #closed = false;

  constructor(options: UserAgentOptions) {
    super();
    this.#options = options;
    this.#transport = options.transport;
    this.clock = options.clock;
    this.timers = options.timers ?? DEFAULT_TIMERS;
    this.userAgent = options.userAgent ?? 'hushpay';
    this.#layer = new TransactionLayer(options.transport, options.clock, {
      request: (request, tx, from) => this.#request(request, tx, from),
      strayResponse: (response) => this.#strayResponse(response),
    }, this.timers);
  }

  /** Live dialogs and transactions (leak checks). */
  get counts(): { dialogs: number; transactions: number; pending: number } {
    return { dialogs: this.#dialogs.size, transactions: this.#layer.size, pending: this.#pending.size };
  }

  /** Everything the transport delivers. */
  receive(message: SipMessage, from: SipAddress): void {
    if (this.#closed) return;
    this.#layer.receive(message, from);
  }

  /** Bytes the transport could not parse: answer 400 where a response can be built. */
  malformed(reason: string, from: SipAddress, reply: SipMessage | undefined): void {
    this.emit('malformed', reason);
    if (reply && !this.#closed) this.#layer.sendStateless(reply, from);
  }

  reliable(transport: SipTransportName): boolean {
    return this.#transport.reliable(transport);
  }

  #advertised(transport: SipTransportName): { host: string; port: number } {
    const local = this.#transport.local[transport] ?? this.#transport.local.udp ?? this.#transport.local.tcp;
    const host = this.#options.advertise?.host ?? local?.host ?? '127.0.0.1';
    return { host: host === '0.0.0.0' ? '127.0.0.1' : host, port: this.#options.advertise?.port ?? local?.port ?? 5060 };
  }

  /** Our Via for a request sent over `transport`: `SIP/2.0/UDP`, `/TCP` or `/TLS` (§18.1.1, §26.2.1). */
  via(transport: SipTransportName): string {
    const { host, port } = this.#advertised(transport);
    return `SIP/2.0/${transport.toUpperCase()} ${host}:${port};branch=${newBranch()};rport`;
  }

  /**
   * Our Contact for a dialog on `transport`: that transport's port, and `;transport=tcp` or
   * `;transport=tls` so the peer's requests in the dialog come back the same way. A `sip:` URI
   * with `transport=tls` rather than `sips:`: RFC 5630 §3.1.2 — TLS on this hop, no claim about
   * the hops beyond.
   */
  contact(transport: SipTransportName, user = 'hushpay'): string {
    const { host, port } = this.#advertised(transport);
    return `<sip:${user}@${host}:${port}${transport === 'udp' ? '' : `;transport=${transport}`}>`;
  }

  buildResponse(request: SipRequest, status: number, toTag: string | undefined, options: ResponseOptions = {}): SipResponse {
    const headers: [string, string][] = [['Server', this.userAgent]];
    if (status >= 200 && status < 300 && request.method === 'INVITE') headers.push(['Contact', this.contact(arrivedOver(request))], ['Allow', ALLOW]);
    for (const h of options.headers ?? []) headers.push([h[0], h[1]]);
    if (options.body !== undefined) headers.push(['Content-Type', options.contentType ?? 'application/sdp']);
    return makeResponse(request, status, {
      ...(options.reason !== undefined ? { reason: options.reason } : {}),
      ...(toTag !== undefined && status > 100 ? { toTag } : {}),
      headers: dedupe(headers),
      ...(options.body !== undefined ? { body: textBody(options.body) } : {}),
    });
  }

  sendStateless(message: SipMessage, to: SipAddress): void {
    this.#layer.sendStateless(message, to);
  }

  /** Sends a request in a client transaction; resolves with its final response (408 on timeout). */
  send(request: SipRequest, to: SipAddress, onProvisional?: (r: SipResponse) => void): Promise<SipResponse> {
    return new Promise((resolve) => {
      let done = false;
      const user: ClientTransactionUser = {
        response: (response) => {
          if (response.status < 200) onProvisional?.(response);
          else if (!done) {
            done = true;
            resolve(response);
          } else this.#strayResponse(response); // a retransmitted 2xx while Accepted: ACK again
        },
        timeout: () => {
          if (!done) {
            done = true;
            resolve(makeResponse(request, 408));
          }
        },
      };
      this.#layer.sendRequest(request, to, user);
    });
  }

  /**
   * Where a URI's requests go: its host, port and transport — the `transport` parameter, TLS for
   * a `sips:` URI (§26.2.2), else the dialog's own transport, else UDP. The default port is 5061
   * for TLS, 5060 otherwise (§19.1.2). A host name is resolved here (A/AAAA only, no SRV/NAPTR);
   * over TLS the name stays in `servername`, for SNI and the certificate check (RFC 5922 §7.2).
   */
  async targetOf(uri: string, fallback?: SipAddress): Promise<SipAddress> {
    const parsed = parseUri(uri);
    const transport = uriTransport(parsed.scheme, parsed.params.get('transport')) ?? fallback?.transport ?? 'udp';
    const name = parsed.host.replace(/^\[|\]$/g, '');
    let host = name;
    if (!/^[\d.]+$/.test(host) && !host.includes(':') && this.#options.resolve) host = await this.#options.resolve(host);
    const port = parsed.port ?? defaultPort(transport);
    if (fallback && fallback.transport === transport && fallback.connection && fallback.host === host && fallback.port === port) return fallback;
    return transport === 'tls' && host !== name ? { transport, host, port, servername: name } : { transport, host, port };
  }

  /** Answers an INVITE with 200 and SDP; resolves with the dialog once the ACK arrives. */
  async createUAS(invite: IncomingInvite, _res: InviteResponder, options: { localSdp: string; headers?: Iterable<readonly [string, string]> }): Promise<SipDialog> {
    if (invite.transaction.answered || invite.cancelled) throw new InvalidStateError('INVITE already answered or cancelled');
    const request = invite.request;
    const remoteTag = tagOf(request.headers.get('From')) ?? '';
    const contact = request.headers.getAll('Contact')[0];
    const dialog = new SipDialog(this, {
      role: 'uas',
      callId: invite.callId,
      localTag: invite.localTag,
      remoteTag,
      localUri: parseNameAddr(request.headers.get('To')!).uri,
      remoteUri: parseNameAddr(request.headers.get('From')!).uri,
      remoteTarget: contact ? parseNameAddr(contact).uri : parseNameAddr(request.headers.get('From')!).uri,
      routeSet: request.headers.getAll('Record-Route'),
      localSeq: Math.floor(Math.random() * 10_000),
      remoteSeq: parseCSeq(request.headers.get('CSeq')!).seq,
      localSdp: options.localSdp,
      remoteSdp: invite.sdp,
      via: invite.source,
    });
    this.#dialogs.set(dialog.id, dialog);
    this.#pending.delete(pendingKey(request));
    const response = this.buildResponse(request, 200, invite.localTag, {
      body: options.localSdp,
      headers: [...request.headers.getAll('Record-Route').map((r): [string, string] => ['Record-Route', r]), ['Contact', this.contact(invite.source.transport)], ...(options.headers ?? [])],
    });
    invite.transaction.respond(response);
    await dialog.retransmit2xxUntilAck(request, response, responseAddress(request, invite.source));
    return dialog;
  }

  /** Places a call: resolves with the dialog on 2xx, rejects with SipRequestFailedError otherwise. */
  async createUAC(uri: string, options: UacOptions, callbacks: UacCallbacks = {}): Promise<SipDialog> {
    if (this.#closed) throw new InvalidStateError('user agent closed');
    const target = options.target ?? (await this.targetOf(uri));
    const transport = options.transport ?? target.transport;
    const fromTag = randomToken(10);
    const callId = `${randomToken(20)}@hushpay`;
    const { host } = this.#advertised(transport);
    const fromUri = `sip:${options.fromUser ?? 'hushpay'}@${host}`;
    const from = formatNameAddr({ displayName: options.fromDisplayName, uri: fromUri, params: new Map([['tag', fromTag]]) });
    let seq = 1;
    const build = (): SipRequest => {
      const headers = new SipHeaders();
      headers.append('Via', this.via(transport));
      headers.append('Max-Forwards', '70');
      headers.append('From', from);
      headers.append('To', `<${uri}>`);
      headers.append('Call-ID', callId);
      headers.append('CSeq', `${seq} INVITE`);
      headers.append('Contact', this.contact(transport, options.fromUser));
      headers.append('Allow', ALLOW);
      headers.append('User-Agent', this.userAgent);
      for (const [name, value] of options.headers ?? []) headers.append(name, value);
      headers.set('Content-Type', 'application/sdp');
      return { kind: 'request', method: 'INVITE', uri, headers, body: textBody(options.localSdp) };
    };
    let request = build();
    let authTries = 0;
    for (;;) {
      const response = await this.#inviteOnce(request, target, callbacks);
      if ((response.status === 401 || response.status === 407) && options.credentials && this.#options.answerChallenge && authTries < 2) {
        const retry = this.#options.answerChallenge(request, response, options.credentials);
        if (retry) {
          authTries++;
          // same Call-ID and From tag, next CSeq, a new branch (§22.2)
          seq = parseCSeq(retry.headers.get('CSeq')!).seq;
          retry.headers.set('Via', this.via(transport));
          request = retry;
          continue;
        }
      }
      if (response.status >= 300 || response.status < 200) throw new SipRequestFailedError('INVITE', response.status, response.reason, callId);
      const toTag = tagOf(response.headers.get('To')) ?? '';
      const contact = response.headers.getAll('Contact')[0];
      const dialog = new SipDialog(this, {
        role: 'uac',
        callId,
        localTag: fromTag,
        remoteTag: toTag,
        localUri: fromUri,
        remoteUri: uri,
        remoteTarget: contact ? parseNameAddr(contact).uri : uri,
        routeSet: [...response.headers.getAll('Record-Route')].reverse(),
        localSeq: seq,
        remoteSeq: 0,
        localSdp: options.localSdp,
        remoteSdp: bodyText(response),
        via: target,
      });
      this.#dialogs.set(dialog.id, dialog);
      dialog.ackInitial(request, response, target);
      return dialog;
    }
  }

  #inviteOnce(request: SipRequest, target: SipAddress, callbacks: UacCallbacks): Promise<SipResponse> {
    let provisional = false;
    let cancelWanted = false;
    const cancel = (): void => {
      if (!provisional) {
        cancelWanted = true; // §9.1: CANCEL only after a provisional response
        return;
      }
      this.#sendCancel(request, target);
    };
    if (callbacks.signal?.aborted) cancelWanted = true;
    callbacks.signal?.addEventListener('abort', cancel, { once: true });
    return this.send(request, target, (response) => {
      provisional = true;
      if (cancelWanted) {
        cancelWanted = false;
        this.#sendCancel(request, target);
      }
      callbacks.onProvisional?.(response);
    }).finally(() => callbacks.signal?.removeEventListener('abort', cancel));
  }

  #sendCancel(invite: SipRequest, target: SipAddress): void {
    // §9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via as the INVITE
    const headers = new SipHeaders();
    headers.append('Via', invite.headers.getAll('Via')[0]!);
    for (const route of invite.headers.getAll('Route')) headers.append('Route', route);
    headers.append('Max-Forwards', '70');
    headers.append('From', invite.headers.get('From')!);
    headers.append('To', invite.headers.get('To')!);
    headers.append('Call-ID', invite.headers.get('Call-ID')!);
    headers.append('CSeq', `${parseCSeq(invite.headers.get('CSeq')!).seq} CANCEL`);
    void this.send({ kind: 'request', method: 'CANCEL', uri: invite.uri, headers, body: new Uint8Array(0) }, target);
  }

  #request(request: SipRequest, tx: ServerTransaction | undefined, from: SipAddress): void {
    const toTag = tagOf(request.headers.get('To'));
    if (toTag) {
      const fromTag = tagOf(request.headers.get('From')) ?? '';
      const dialog = this.#dialogs.get(dialogId(request.headers.get('Call-ID')!, toTag, fromTag));
      if (dialog) {
        dialog.receive(request, tx, from);
        return;
      }
      if (tx) tx.respond(makeResponse(request, 481));
      return;
    }
    if (!tx) return; // an ACK outside any dialog (a 2xx's ACK that came too late): nothing to do
    const maxForwards = Number(request.headers.get('Max-Forwards') ?? '70');
    if (maxForwards <= 0) {
      tx.respond(makeResponse(request, 483));
      return;
    }
    switch (request.method) {
      case 'INVITE':
        this.#invite(request, tx, from);
        return;
      case 'CANCEL':
        this.#cancel(request, tx);
        return;
      case 'OPTIONS':
        tx.respond(this.buildResponse(request, 200, randomToken(10), { headers: [['Allow', ALLOW], ['Accept', ACCEPT], ['Supported', '']].filter(([, v]) => v !== '') as [string, string][] }));
        return;
      case 'BYE':
      case 'INFO':
      case 'UPDATE':
        tx.respond(makeResponse(request, 481));
        return;
      default:
        tx.respond(this.buildResponse(request, 405, randomToken(10), { headers: [['Allow', ALLOW]] }));
    }
  }

  #invite(request: SipRequest, tx: ServerTransaction, from: SipAddress): void {
    const require = request.headers.getAll('Require').map((t) => t.toLowerCase()).filter((t) => t !== 'timer');
    if (require.length > 0) {
      tx.respond(this.buildResponse(request, 420, randomToken(10), { headers: [['Unsupported', require.join(', ')]] }));
      return;
    }
    if (this.#closed) {
      tx.respond(this.buildResponse(request, 503, randomToken(10)));
      return;
    }
    const invite = new IncomingInvite(request, from, tx);
    const key = pendingKey(request);
    this.#pending.set(key, invite);
    tx.onTimeout = () => this.#pending.delete(key);
    const responder = new InviteResponder(invite, this);
    if (!this.emit('invite', invite, responder)) responder.send(480);
    // forget it once a final response went out (createUAS removes it itself)
    queueMicrotask(() => {
      if (tx.answered) this.#pending.delete(key);
    });
  }

  #cancel(cancel: SipRequest, tx: ServerTransaction): void {
    const inviteTx = this.#layer.inviteFor(cancel);
    if (!inviteTx) {
      tx.respond(makeResponse(cancel, 481));
      return;
    }
    tx.respond(makeResponse(cancel, 200));
    const invite = this.#pending.get(pendingKey(inviteTx.request));
    if (!inviteTx.answered) {
      inviteTx.respond(this.buildResponse(inviteTx.request, 487, invite?.localTag));
    }
    if (invite) {
      this.#pending.delete(pendingKey(inviteTx.request));
      invite.markCancelled();
    }
  }

  #strayResponse(response: SipResponse): void {
    // a 2xx to an INVITE whose transaction has ended: ACK it again for its dialog (§13.2.2.4)
    const method = parseCSeq(response.headers.get('CSeq')!).method;
    if (method !== 'INVITE' || response.status < 200 || response.status >= 300) return;
    const fromTag = tagOf(response.headers.get('From')) ?? '';
    const toTag = tagOf(response.headers.get('To')) ?? '';
    this.#dialogs.get(dialogId(response.headers.get('Call-ID')!, fromTag, toTag))?.repeatAck(response);
  }

  forget(dialog: SipDialog): void {
    if (this.#dialogs.get(dialog.id) === dialog) this.#dialogs.delete(dialog.id);
  }

  /** Ends every dialog (with a BYE) and transaction, once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const byes = [...this.#dialogs.values()].map((d) => d.destroy());
    for (const invite of this.#pending.values()) if (!invite.transaction.answered) invite.transaction.respond(this.buildResponse(invite.request, 503, invite.localTag));
    this.#pending.clear();
    // wait for the BYEs' answers, but not for ever (the close timer is owned and cleared here)
    let closeTimer: TimerHandle | undefined;
    await Promise.race([Promise.allSettled(byes), new Promise((r) => (closeTimer = this.clock.setTimeout(() => r(undefined), CLOSE_WAIT_MS)))]);
    if (closeTimer !== undefined) this.clock.clearTimeout(closeTimer);
    this.#layer.close();
    this.removeAllListeners();
  }
}

function pendingKey(request: SipRequest): string {
  return `${request.headers.get('Call-ID')}|${tagOf(request.headers.get('From')) ?? ''}|${parseVia(request.headers.getAll('Via')[0]!).branch ?? ''}`;
}

function dedupe(headers: [string, string][]): [string, string][] {
  const single = new Set(['contact', 'allow', 'server', 'content-type']);
  const seen = new Set<string>();
  const out: [string, string][] = [];
  for (let i = headers.length - 1; i >= 0; i--) {
    const [name] = headers[i]!;
    const key = name.toLowerCase();
    if (single.has(key)) {
      if (seen.has(key)) continue;
      seen.add(key);
    }
    out.unshift(headers[i]!);
  }
  return out;
}
