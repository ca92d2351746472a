/**
 * The drachtio adapter of the signaling port: drachtio-srf (npm) talking to a drachtio-server
 * (a SIP server in C++, neither on npm nor in Debian) over its TCP admin connection. The
 * server owns the SIP transport, transactions and retransmissions; this process sees requests
 * and dialogs, as with the embedded adapter.
 *
 * drachtio-srf is untyped CommonJS: every object of it that crosses into hushpay is read
 * through the small interfaces below, and header values are checked to be strings.
 *
 * How drachtio's API maps onto the port (port.ts):
 * - an INVITE (srf.invite) becomes a PortInvite; drachtio-server has already sent 100 Trying,
 *   and on CANCEL it answers 200 and 487 itself — the invite only hears 'cancel';
 * - createUAS resolves once the caller's ACK arrives (as the embedded core does), not when the
 *   200 goes out (drachtio's own promise); a 200 never ACKed ends with drachtio-server's BYE;
 * - createUAC's AbortSignal cancels the INVITE drachtio sent (req.cancel()), once it is known;
 * - a Dialog's 'destroy' (a BYE) is { by: 'remote' } when the far end sent it, and { by:
 *   'timeout' } when drachtio-server ended the call itself (no ACK for our 200); destroy()
 *   emits { by: 'local' } like the embedded dialog;
 * - re-INVITE ('modify') and UPDATE ('update') both become 'modify'; INFO becomes 'info';
 *   a modify or info nobody answers gets 200 (with our SDP for a modify).
 */

import drachtioSrf from 'drachtio-srf';
import type { HushpayConfig } from '../config.ts';
import { ConfigError, DrachtioConnectError, InvalidStateError, SipRequestFailedError } from '../errors.ts';
import { TypedEmitter } from '../events.ts';
import type { Logger } from '../log.ts';
import { SipHeaders, type SipResponse, textBody } from './message.ts';
import type {
  PortDialog,
  PortDialogEnd,
  PortDialogEvents,
  PortInfo,
  PortInvite,
  PortModify,
  PortResponder,
  PortSource,
  PortUacCallbacks,
  PortUacOptions,
  SignalingPort,
  SignalingPortEvents,
} from './port.ts';

// ---------------------------------------------------------------------------------------------
// drachtio-srf, as far as hushpay uses it
// ---------------------------------------------------------------------------------------------

type HeaderRecord = Record<string, string>;

/** A SIP message of drachtio-srf (Request and Response delegate these to their SipMessage). */
interface DrachtioMessage {
  /** Lower-cased names (X- and P- headers keep theirs); repeated headers joined by commas. */
  readonly headers: Readonly<Record<string, unknown>>;
  readonly body?: unknown;
  get(name: string): unknown;
}

interface DrachtioRequest extends DrachtioMessage {
  readonly method: string;
  readonly uri: string;
  /** 'network' for what arrived from a SIP peer, 'application' for what drachtio-server made. */
  readonly source?: unknown;
  readonly source_address?: unknown;
  readonly source_port?: unknown;
  readonly protocol?: unknown;
  on(event: 'cancel', listener: () => void): unknown;
  cancel(callback: (err: unknown) => void): void;
}

interface DrachtioResponse extends DrachtioMessage {
  readonly status: number;
  readonly reason?: unknown;
  readonly finalResponseSent: boolean;
  send(status: number, reason: string | undefined, options: { headers?: HeaderRecord; body?: string }): void;
}

interface DrachtioDialog {
  readonly sip: { readonly callId: string };
  readonly local: { readonly sdp?: unknown };
  readonly remote: { readonly sdp?: unknown };
  modify(sdp: string): Promise<unknown>;
  request(options: { method: string; headers: HeaderRecord; body?: string }): Promise<DrachtioResponse>;
  destroy(): Promise<unknown>;
  on(event: 'destroy', listener: (req: DrachtioRequest | undefined, reason?: unknown) => void): unknown;
  on(event: 'modify' | 'update' | 'info', listener: (req: DrachtioRequest, res: DrachtioResponse) => void): unknown;
  once(event: 'ack', listener: () => void): unknown;
}

type DialogCallback = (err: unknown, dialog?: DrachtioDialog) => void;

interface DrachtioSrf {
  connect(options: { host: string; port: number; secret: string }): unknown;
  disconnect(): void;
  invite(handler: (req: DrachtioRequest, res: DrachtioResponse) => void): void;
  on(event: 'connect', listener: (err: unknown, hostport?: unknown) => void): unknown;
  on(event: 'error' | 'close' | 'reconnecting', listener: (arg?: unknown) => void): unknown;
  createUAS(req: DrachtioRequest, res: DrachtioResponse, options: { localSdp: string; headers: HeaderRecord }, callback: DialogCallback): unknown;
  createUAC(
    uri: string,
    options: { localSdp: string; headers: HeaderRecord; auth?: { username: string; password: string }; callingNumber?: string; callingName?: string },
    progress: { cbRequest: (err: unknown, req?: DrachtioRequest) => void; cbProvisional: (res: DrachtioResponse) => void },
    callback: DialogCallback,
  ): unknown;
}

type SrfConstructor = new () => DrachtioSrf;

/** drachtio-srf's class, read through the interfaces above (its bundled types are loose). */
const Srf = drachtioSrf as unknown as SrfConstructor;

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

/** How long connect() waits for drachtio-server to take and authenticate the connection. */
export const DRACHTIO_CONNECT_TIMEOUT_MS = 10_000;
/** How long close() waits for the answers to its BYEs (as the embedded core). */
const CLOSE_WAIT_MS = 2000;

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** drachtio's header record as SipHeaders (each name once; repeated fields stay comma-joined). */
export function headersOf(message: DrachtioMessage): SipHeaders {
  const headers = new SipHeaders();
  for (const [name, value] of Object.entries(message.headers)) {
    if (typeof value === 'string') headers.append(name, value);
    else if (typeof value === 'number') headers.append(name, String(value));
  }
  return headers;
}

/** Port header pairs as drachtio's record; a repeated name is joined with a comma (drachtio's own way). */
export function headerRecord(headers: Iterable<readonly [string, string]> | undefined): HeaderRecord {
  const record: HeaderRecord = {};
  for (const [name, value] of headers ?? []) {
    const existing = Object.keys(record).find((k) => k.toLowerCase() === name.toLowerCase());
    if (existing === undefined) record[name] = value;
    else record[existing] = `${record[existing]},${value}`;
  }
  return record;
}

function responseOf(res: DrachtioResponse): SipResponse {
  return { kind: 'response', status: res.status, reason: text(res.reason), headers: headersOf(res), body: textBody(text(res.body)) };
}

/** The SIP status of one of drachtio-srf's SipErrors (or 0 when it is some other error). */
function statusOf(err: unknown): number {
  if (typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number') return err.status;
  return 0;
}

function reasonOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'reason' in err && typeof err.reason === 'string') return err.reason;
  return undefined;
}

/** An error drachtio-srf gave, as the port's error: a SIP failure keeps its status; anything else is 503. */
function failure(method: string, err: unknown): SipRequestFailedError {
  const status = statusOf(err);
  return status > 0 ? new SipRequestFailedError(method, status, reasonOf(err)) : new SipRequestFailedError(method, 503, 'drachtio request failed');
}

function sourceOf(req: DrachtioRequest): PortSource {
  const protocol = text(req.protocol).toLowerCase();
  const transport = protocol === 'tcp' || protocol === 'ws' ? 'tcp' : protocol === 'tls' || protocol === 'wss' ? 'tls' : 'udp';
  const port = typeof req.source_port === 'number' ? req.source_port : Number(req.source_port ?? 5060);
  return { transport, host: text(req.source_address), port: Number.isInteger(port) ? port : 5060 };
}

/** `udp/127.0.0.1:5060` (drachtio-server's hostport) as `udp:127.0.0.1:5060` (the port's listing). */
function listingOf(hostport: string): string {
  const m = /^([a-z]+)\/(.+)$/i.exec(hostport.trim());
  return m ? `${m[1]!.toLowerCase()}:${m[2]}` : hostport.trim();
}

// ---------------------------------------------------------------------------------------------
// The port's objects over drachtio's
// ---------------------------------------------------------------------------------------------

/** An incoming INVITE (drachtio's req). */
export class DrachtioInvite extends TypedEmitter<{ cancel: [] }> implements PortInvite {
  readonly callId: string;
  readonly uri: string;
  readonly headers: SipHeaders;
  readonly sdp: string;
  readonly source: PortSource;
  /** @internal */
  readonly req: DrachtioRequest;
  #cancelled = false;

  constructor(req: DrachtioRequest) {
    super();
    this.req = req;
    this.headers = headersOf(req);
    this.callId = this.headers.get('Call-ID') ?? '';
    this.uri = req.uri;
    this.sdp = text(req.body);
    this.source = sourceOf(req);
    req.on('cancel', () => {
      if (this.#cancelled) return;
      this.#cancelled = true;
      this.emit('cancel');
    });
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }
}

/** Provisional and failure responses to a DrachtioInvite (drachtio's res). */
export class DrachtioResponder implements PortResponder {
  /** @internal */
  readonly res: DrachtioResponse;
  readonly #invite: DrachtioInvite;
  readonly #logger: Logger;
  readonly #onFinal: (responder: DrachtioResponder) => void;

  constructor(invite: DrachtioInvite, res: DrachtioResponse, logger: Logger, onFinal: (responder: DrachtioResponder) => void = () => {}) {
    this.#invite = invite;
    this.res = res;
    this.#logger = logger;
    this.#onFinal = onFinal;
  }

  /** A final response went out (or drachtio-server sent the 487 for a CANCEL). */
  get answered(): boolean {
    return this.res.finalResponseSent || this.#invite.cancelled;
  }

  send(status: number, options: { reason?: string; headers?: Iterable<readonly [string, string]> } = {}): void {
    if (status >= 200 && status < 300) throw new InvalidStateError('answer an INVITE with createUAS');
    if (status === 100) return; // drachtio-server sent 100 Trying when the INVITE arrived
    if (this.answered) return;
    try {
      this.res.send(status, options.reason, { headers: headerRecord(options.headers) });
    } catch (err) {
      // drachtio-srf throws for a status it has no reason phrase for
      this.#logger.warn({ status, err: { message: (err as Error)?.message } }, 'drachtio: response not sent');
    }
    if (status >= 200) this.#onFinal(this);
  }
}

/** A dialog (drachtio's Dialog) behind the port's PortDialog. */
export class DrachtioDialogAdapter extends TypedEmitter<PortDialogEvents> implements PortDialog {
  readonly callId: string;
  localSdp: string;
  remoteSdp: string;
  readonly #dialog: DrachtioDialog;
  readonly #onEnd: (dialog: DrachtioDialogAdapter) => void;
  readonly #logger: Logger;
  #destroyed = false;
  #pendingModify = false;

  constructor(dialog: DrachtioDialog, onEnd: (dialog: DrachtioDialogAdapter) => void, logger: Logger) {
    super();
    this.#dialog = dialog;
    this.#onEnd = onEnd;
    this.#logger = logger;
    this.callId = dialog.sip.callId;
    this.localSdp = text(dialog.local.sdp);
    this.remoteSdp = text(dialog.remote.sdp);
    dialog.on('destroy', (req, reason) => {
      // a BYE: from the far end, or made by drachtio-server itself (no ACK for our 200)
      const byServer = req !== undefined && req.source === 'application';
      this.#end(byServer ? { by: /ack/i.test(text(reason)) ? 'timeout' : 'error' } : { by: 'remote' });
    });
    dialog.on('modify', (req, res) => this.#modify('INVITE', req, res));
    dialog.on('update', (req, res) => this.#modify('UPDATE', req, res));
    dialog.on('info', (req, res) => this.#info(req, res));
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Sends a re-INVITE with new SDP; resolves with the peer's SDP. */
  async modify(sdp: string): Promise<string> {
    if (this.#destroyed) throw new InvalidStateError('dialog ended');
    if (this.#pendingModify) throw new InvalidStateError('a re-INVITE is already pending');
    this.#pendingModify = true;
    try {
      const answer = await this.#dialog.modify(sdp);
      this.localSdp = sdp;
      this.remoteSdp = text(answer);
      return this.remoteSdp;
    } catch (err) {
      throw failure('INVITE', err);
    } finally {
      this.#pendingModify = false;
    }
  }

  /** Sends an in-dialog request; resolves with its 2xx, rejects with SipRequestFailedError. */
  async request(method: string, options: { headers?: Iterable<readonly [string, string]>; body?: string; contentType?: string } = {}): Promise<SipResponse> {
    const upper = method.toUpperCase();
    if (this.#destroyed && upper !== 'BYE') throw new InvalidStateError('dialog ended');
    const headers = headerRecord(options.headers);
    if (options.body !== undefined) headers['Content-Type'] = options.contentType ?? 'application/sdp';
    let res: DrachtioResponse;
    try {
      res = await this.#dialog.request({ method: upper, headers, ...(options.body !== undefined ? { body: options.body } : {}) });
    } catch (err) {
      throw failure(upper, err);
    } finally {
      if (upper === 'BYE') this.#end({ by: 'local' });
    }
    if (res.status >= 300) throw new SipRequestFailedError(upper, res.status, text(res.reason) || undefined);
    return responseOf(res);
  }

  /** Ends the dialog with a BYE (once; later calls return at once). */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#end({ by: 'local' });
    try {
      await this.#dialog.destroy();
    } catch {
      // the peer or drachtio-server may be gone; the dialog is over either way
    }
  }

  #end(reason: PortDialogEnd): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#onEnd(this);
    this.emit('destroy', reason);
  }

  #modify(method: 'INVITE' | 'UPDATE', req: DrachtioRequest, res: DrachtioResponse): void {
    let answered = false;
    const offer = text(req.body);
    const respond = (status: number, options: { sdp?: string; reason?: string } = {}): void => {
      if (answered) return;
      answered = true;
      const ok = status >= 200 && status < 300;
      if (ok) {
        if (options.sdp !== undefined) this.localSdp = options.sdp;
        this.remoteSdp = offer || this.remoteSdp;
      }
      const body = options.sdp;
      try {
        res.send(status, options.reason, body !== undefined ? { body, headers: { 'Content-Type': 'application/sdp' } } : {});
      } catch (err) {
        this.#logger.warn({ status, err: { message: (err as Error)?.message } }, 'drachtio: response to re-INVITE not sent');
      }
    };
    const request: PortModify = { method, sdp: offer, headers: headersOf(req), respond };
    if (!this.emit('modify', request)) respond(200, { sdp: this.localSdp });
  }

  #info(req: DrachtioRequest, res: DrachtioResponse): void {
    let answered = false;
    const respond = (status: number): void => {
      if (answered) return;
      answered = true;
      try {
        res.send(status, undefined, {});
      } catch (err) {
        this.#logger.warn({ status, err: { message: (err as Error)?.message } }, 'drachtio: response to INFO not sent');
      }
    };
    const headers = headersOf(req);
    const info: PortInfo = { headers, contentType: (headers.get('Content-Type') ?? '').toLowerCase(), body: text(req.body), respond };
    this.emit('info', info);
    respond(200);
  }
}

// ---------------------------------------------------------------------------------------------
// The port
// ---------------------------------------------------------------------------------------------

export interface DrachtioConnectOptions {
  /** How long to wait for the connection and its authentication (default 10 s). */
  readonly timeoutMs?: number;
}

export class DrachtioPort extends TypedEmitter<SignalingPortEvents> implements SignalingPort {
  readonly listening: readonly string[];
  readonly #srf: DrachtioSrf;
  readonly #logger: Logger;
  readonly #ackWaitMs: number;
  readonly #dialogs = new Set<DrachtioDialogAdapter>();
  /** INVITEs not yet answered with a final response (503 on close). */
  readonly #pending = new Set<DrachtioResponder>();
  #closing: Promise<void> | undefined;

  private constructor(srf: DrachtioSrf, logger: Logger, listening: readonly string[], ackWaitMs: number) {
    super();
    this.#srf = srf;
    this.#logger = logger;
    this.listening = listening;
    this.#ackWaitMs = ackWaitMs;
  }

  /**
   * Connects to the drachtio-server named by config.sip.drachtio, with the secret from the
   * environment variable it names. Throws ConfigError when that is missing, and
   * DrachtioConnectError when the server cannot be reached or refuses the secret in time.
   */
  static async connect(config: HushpayConfig, logger: Logger, options: DrachtioConnectOptions = {}): Promise<DrachtioPort> {
    const target = config.sip.drachtio;
    if (!target) throw new ConfigError('sip.drachtio', 'is needed when sip.engine is drachtio ({ "host", "port", "secretEnv" })');
    const secret = process.env[target.secretEnv];
    if (secret === undefined || secret === '') throw new ConfigError('sip.drachtio.secretEnv', `the environment variable ${target.secretEnv} (the drachtio-server secret) is not set`);
    const timeoutMs = options.timeoutMs ?? DRACHTIO_CONNECT_TIMEOUT_MS;
    const address = `${target.host}:${target.port}`;

    const srf = new Srf();
    let port: DrachtioPort | undefined;
    let lastError = '';
    srf.on('error', (err) => {
      const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : (err as Error | undefined)?.message ?? 'error';
      lastError = code;
      logger.warn({ drachtio: address, code }, 'drachtio connection error');
    });
    srf.on('reconnecting', () => logger.info({ drachtio: address }, 'drachtio: reconnecting'));
    srf.on('close', () => {
      if (port && !port.#closing) logger.warn({ drachtio: address }, 'drachtio connection closed');
    });
    // routed before the connection, so the server learns of it on authentication
    srf.invite((req, res) => {
      if (port) port.#invite(req, res);
      else res.send(503, undefined, {});
    });

    const hostports = await new Promise<string>((resolve, reject) => {
      let state: 'waiting' | 'connected' | 'abandoned' = 'waiting';
      const timer = setTimeout(() => {
        state = 'abandoned';
        abandon(srf);
        reject(new DrachtioConnectError(address, `no connection within ${timeoutMs} ms${lastError ? ` (${lastError})` : ''}`));
      }, timeoutMs);
      srf.on('connect', (err, hostport) => {
        if (state === 'abandoned') {
          abandon(srf); // connected after we gave up: do not keep it
          return;
        }
        if (state === 'connected') {
          // drachtio-srf reconnected after the server went away (it routes INVITEs again itself)
          if (err) logger.error({ drachtio: address }, 'drachtio: reconnected, but the server refused the secret');
          else logger.info({ drachtio: address }, 'drachtio: reconnected');
          return;
        }
        clearTimeout(timer);
        if (err) {
          state = 'abandoned';
          abandon(srf);
          reject(new DrachtioConnectError(address, 'drachtio-server refused the secret'));
          return;
        }
        state = 'connected';
        resolve(text(hostport));
      });
      try {
        srf.connect({ host: target.host, port: target.port, secret });
      } catch (err) {
        clearTimeout(timer);
        state = 'abandoned';
        reject(new DrachtioConnectError(address, `cannot connect (${(err as Error)?.message ?? 'error'})`));
      }
    });
    const sip = hostports.split(',').filter((h) => h.trim() !== '').map(listingOf);
    logger.info({ drachtio: address, sip }, 'connected to drachtio-server');
    port = new DrachtioPort(srf, logger, [`drachtio:${address}`, ...sip], 64 * config.sip.timers.T1 + 5000);
    return port;
  }

  get counts(): { dialogs: number; transactions: number } {
    // drachtio-server owns the transactions and does not tell
    return { dialogs: this.#dialogs.size, transactions: 0 };
  }

  #invite(req: DrachtioRequest, res: DrachtioResponse): void {
    if (this.#closing) {
      res.send(503, undefined, {});
      return;
    }
    const invite = new DrachtioInvite(req);
    const responder = new DrachtioResponder(invite, res, this.#logger, (r) => this.#pending.delete(r));
    this.#pending.add(responder);
    invite.once('cancel', () => this.#pending.delete(responder));
    if (!this.emit('invite', invite, responder)) responder.send(480);
  }

  #track(dialog: DrachtioDialog): DrachtioDialogAdapter {
    const adapter = new DrachtioDialogAdapter(dialog, (d) => this.#dialogs.delete(d), this.#logger);
    this.#dialogs.add(adapter);
    return adapter;
  }

  /** Answers the INVITE with 200 and SDP; resolves with the dialog once the ACK arrives. */
  createUAS(invite: PortInvite, res: PortResponder, options: { localSdp: string; headers?: Iterable<readonly [string, string]> }): Promise<PortDialog> {
    if (!(invite instanceof DrachtioInvite) || !(res instanceof DrachtioResponder)) throw new InvalidStateError('not an INVITE of this port');
    if (res.answered || invite.cancelled) return Promise.reject(new InvalidStateError('INVITE already answered or cancelled'));
    if (this.#closing) return Promise.reject(new InvalidStateError('port closed'));
    this.#pending.delete(res);
    return new Promise<PortDialog>((resolve, reject) => {
      this.#srf.createUAS(invite.req, res.res, { localSdp: options.localSdp, headers: headerRecord(options.headers) }, (err, dialog) => {
        if (err || !dialog) {
          reject(failure('INVITE', err));
          return;
        }
        const adapter = this.#track(dialog);
        let done = false;
        const timer = setTimeout(() => {
          // drachtio-server gives up after 64·T1 and sends a BYE itself; this is a backstop
          if (done) return;
          done = true;
          reject(new SipRequestFailedError('ACK', 408));
          void adapter.destroy();
        }, this.#ackWaitMs);
        dialog.once('ack', () => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve(adapter);
        });
        adapter.once('destroy', (end) => {
          // ended before the ACK was seen: drachtio-server's BYE after 64·T1 without one (408),
          // or a BYE that overtook drachtio-srf's deferred 'ack' (0, as the embedded core says)
          if (done) return;
          done = true;
          clearTimeout(timer);
          reject(new SipRequestFailedError('ACK', end.by === 'timeout' ? 408 : 0));
        });
      });
    });
  }

  /** Places a call: resolves with the dialog on 2xx, rejects with SipRequestFailedError otherwise. */
  createUAC(uri: string, options: PortUacOptions, callbacks: PortUacCallbacks = {}): Promise<PortDialog> {
    if (this.#closing) return Promise.reject(new InvalidStateError('port closed'));
    const signal = callbacks.signal;
    return new Promise<PortDialog>((resolve, reject) => {
      let sent: DrachtioRequest | undefined;
      let cancelled = false;
      const cancel = (): void => {
        if (cancelled || !sent) return; // before the INVITE went out: cancelled as soon as it does
        cancelled = true;
        sent.cancel((err) => {
          if (err) this.#logger.debug({ err: { message: (err as Error)?.message } }, 'drachtio: CANCEL not sent');
        });
      };
      signal?.addEventListener('abort', cancel, { once: true });
      this.#srf.createUAC(
        uri,
        {
          localSdp: options.localSdp,
          headers: headerRecord(options.headers),
          ...(options.credentials ? { auth: { username: options.credentials.username, password: options.credentials.password } } : {}),
          ...(options.fromUser !== undefined ? { callingNumber: options.fromUser } : {}),
          ...(options.fromDisplayName !== undefined ? { callingName: options.fromDisplayName } : {}),
        },
        {
          cbRequest: (err, req) => {
            if (err || !req) return;
            sent = req;
            if (signal?.aborted) cancel();
          },
          cbProvisional: (provisional) => callbacks.onProvisional?.(responseOf(provisional)),
        },
        (err, dialog) => {
          signal?.removeEventListener('abort', cancel);
          if (err || !dialog) {
            reject(failure('INVITE', err));
            return;
          }
          const adapter = this.#track(dialog);
          if (signal?.aborted) {
            // answered as the CANCEL crossed it: the call is not wanted any more
            void adapter.destroy();
            reject(new SipRequestFailedError('INVITE', 487));
            return;
          }
          resolve(adapter);
        },
      );
    });
  }

  /** Ends every dialog and unanswered INVITE, and disconnects from drachtio-server, once. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const responder of this.#pending) responder.send(503);
      this.#pending.clear();
      const byes = [...this.#dialogs].map((d) => d.destroy());
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([Promise.allSettled(byes), new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
      clearTimeout(timer);
      abandon(this.#srf);
      this.removeAllListeners();
      this.#logger.info({ drachtio: this.listening[0] }, 'disconnected from drachtio-server');
    })();
    return this.#closing;
  }
}

/** Disconnects and stops drachtio-srf reconnecting (it throws when no socket is connected). */
function abandon(srf: DrachtioSrf): void {
  try {
    srf.disconnect();
  } catch {
    // not connected: disconnect() still marked the connection closing, so it will not retry
  }
}
