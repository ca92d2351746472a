/**
 * One call through the B2BUA: the caller's leg (A, from the trunk) and the agent's leg (B, to
 * the PBX), their RTP endpoints, the masked media stream, the recording — all owned here and
 * closed exactly once, when either side hangs up or anything fails.
 *
 *   trunk ──A── [A endpoint] ─► MaskedMediaStream ─► agent output ─► [B endpoint] ──B── PBX
 *                    ▲                    └─► recording output ─► CallRecorder (left)
 *                    └──────────── agent → caller passes ◄─────┴─► CallRecorder (right)
 */

import { join } from 'node:path';
import type { Clock } from '../clock.ts';
import type { HushpayConfig, TenantConfig } from '../config.ts';
import { SdpError, SipRequestFailedError } from '../errors.ts';
import { TypedEmitter } from '../events.ts';
import { type DigitEvent, DigitStream } from '../media/digits.ts';
import { type G711Law, PAYLOAD_TYPE, decodeTable, encodeSample } from '../media/g711.ts';
import { MaskedMediaStream, RtpSequencer } from '../media/maskedStream.ts';
import { CallRecorder } from '../media/recorder.ts';
import { NoRtpWatch } from './noRtp.ts';
import type { Logger } from '../log.ts';
import type { CardTestingGuard } from '../payments/guard.ts';
import { PromptPlayer } from '../payments/prompts.ts';
import { type PaymentEvent, PaymentSession } from '../payments/session.ts';
import { paymentSettings, type TenantPaymentsRegistry } from '../payments/tenant.ts';
import type { RtpEndpoint, RtpPortRange } from '../media/relay.ts';
import { randomToken } from '../sip/transactions.ts';
import { parseUri } from '../sip/message.ts';
import type { PortDialog, PortInfo, PortInvite, PortModify, PortResponder, SignalingPort } from '../sip/port.ts';
import { type DtmfDigit, isDtmfDigit } from '../media/dtmf/frequencies.ts';
import { type Direction, type ParsedSdp, type SdpCodec, g711Codecs, parseSdp, telephoneEvent, writeSdp } from './sdp.ts';

export type CallState = 'setup' | 'active' | 'ended';

export interface CallEnd {
  /** Who or what ended it. */
  readonly reason: 'caller' | 'agent' | 'cancelled' | 'rejected' | 'no-rtp' | 'error' | 'shutdown';
  /** The SIP status the caller got when the call never connected. */
  readonly status?: number;
}

export interface CallDeps {
  readonly port: SignalingPort;
  readonly rtpPorts: RtpPortRange;
  readonly clock: Clock;
  readonly config: HushpayConfig;
  /** Where payments go; without it a call masks digits but takes no payment. */
  readonly payments?: {
    readonly tenants: TenantPaymentsRegistry;
    readonly guard: CardTestingGuard;
    readonly logger: Logger;
  };
}

interface CallEvents extends Record<string, unknown[]> {
  active: [];
  digit: [DigitEvent];
  /** What the agent's desktop may see of a payment on this call (masked only). */
  payment: [PaymentEvent];
  ended: [CallEnd];
}

/** Hushpay's own id for a call, given to the PBX as X-Hushpay-Call-Id for the desktop to match. */
function newCallId(): string {
  return `hp_${randomToken(20)}`;
}

export class Call extends TypedEmitter<CallEvents> {
  readonly id = newCallId();
  readonly tenant: TenantConfig;
  readonly startedAt: number;
  /** Calendar time the call began (ms since the epoch). */
  readonly startedAtWallMs: number;
  readonly #deps: CallDeps;
  readonly #invite: PortInvite;
  readonly #res: PortResponder;
  #state: CallState = 'setup';
  #a: RtpEndpoint | undefined;
  #b: RtpEndpoint | undefined;
  #dialogA: PortDialog | undefined;
  #dialogB: PortDialog | undefined;
  #media: MaskedMediaStream | undefined;
  #sequencer: RtpSequencer | undefined;
  #recorder: CallRecorder | undefined;
  readonly #noRtp: NoRtpWatch;
  #recordingOpenError: string | undefined;
  #abortB = new AbortController();
  #closing: Promise<void> | undefined;
  /** Payload type of telephone-event on each leg (they may differ), if negotiated. */
  #eventPtA: number | undefined;
  #eventPtB: number | undefined;
  #onHold = false;
  readonly digits: DigitStream;
  #sessionVersion = 1;
  readonly #sessionId = String(Math.floor(Math.random() * 1e9));
  #law: G711Law = 'pcmu';
  #payments: PaymentSession | undefined;
  /** Prompts for the caller, mixed into the agent's audio on its way to the caller. */
  readonly #prompts = new PromptPlayer();

  constructor(deps: CallDeps, tenant: TenantConfig, invite: PortInvite, res: PortResponder) {
    super();
    this.#deps = deps;
    this.tenant = tenant;
    this.#invite = invite;
    this.#res = res;
    this.startedAt = deps.clock.now();
    this.startedAtWallMs = deps.clock.wallMs();
    this.digits = new DigitStream((d) => {
      this.emit('digit', d);
      this.#payments?.key(d.digit);
    });
    this.#noRtp = new NoRtpWatch({ clock: deps.clock, timeoutMs: deps.config.media.noRtpTimeoutMs, count: () => this.#a?.packetsIn ?? 0, onSilent: () => void this.close({ reason: 'no-rtp' }) });
  }

  get state(): CallState {
    return this.#state;
  }

  get sipCallId(): string {
    return this.#invite.callId;
  }

  /** The caller's number (the From user part), if it has one. */
  get callerNumber(): string | undefined {
    return parseFromUser(this.#invite.headers.get('From'));
  }

  /** The number called (the Request-URI user part), if it has one. */
  get calledNumber(): string | undefined {
    try {
      return parseUri(this.#invite.uri).user;
    } catch {
      return undefined;
    }
  }

  /** Counts for metrics and tests (never digit values). */
  get stats(): { media: MaskedMediaStream['stats'] | undefined; digits: DigitStream['counts']; a: RtpEndpoint['stats'] | undefined; b: RtpEndpoint['stats'] | undefined; recordingPath: string | undefined; recordingError: string | undefined } {
    return { media: this.#media?.stats, digits: this.digits.counts, a: this.#a?.stats, b: this.#b?.stats, recordingPath: this.#recorder?.path, recordingError: this.#recordingOpenError ?? this.#recorder?.error?.message };
  }

  /** Sets the call up: anchor media, place the agent leg, answer the caller. */
  async start(): Promise<void> {
    const config = this.#deps.config;
    this.#invite.on('cancel', () => {
      this.#abortB.abort();
      void this.close({ reason: 'cancelled', status: 487 });
    });
    let offerA: ParsedSdp;
    try {
      offerA = parseSdp(this.#invite.sdp);
    } catch (err) {
      return this.#reject(488, err instanceof SdpError ? err.reason : 'bad SDP');
    }
    const codecs = g711Codecs(offerA.audio.codecs);
    if (codecs.length === 0) return this.#reject(488, 'no PCMU or PCMA offered');
    const eventA = telephoneEvent(offerA.audio.codecs);
    try {
      const host = config.media.host;
      this.#a = await this.#deps.rtpPorts.open(host, (data) => this.#fromCaller(data));
      this.#b = await this.#deps.rtpPorts.open(host, (data) => this.#fromAgent(data));
    } catch {
      return this.#reject(503, 'no media ports');
    }
    if (this.#ended()) return;
    this.#a.setRemote({ host: offerA.audio.address, port: offerA.audio.port });
    this.#res.send(100);

    // the agent leg: the caller's G.711 codecs (and telephone-event) on our B port
    const offerB = this.#sdp(this.#b.port, [...codecs, ...(eventA ? [eventA] : [])], offerA.audio.direction);
    const headers: [string, string][] = [['X-Hushpay-Call-Id', this.id]];
    for (const { name, value } of this.#invite.headers.entries()) if (/^x-/i.test(name) && !/^x-hushpay-/i.test(name)) headers.push([name, value]);
    const from = parseFromUser(this.#invite.headers.get('From'));
    const credentials = this.tenant.pbxCredentials ? { username: this.tenant.pbxCredentials.username, password: process.env[this.tenant.pbxCredentials.passwordEnv] ?? '' } : undefined;
    try {
      this.#dialogB = await this.#deps.port.createUAC(
        this.tenant.pbx,
        { localSdp: offerB, headers, ...(from !== undefined ? { fromUser: from } : {}), ...(credentials ? { credentials } : {}) },
        { signal: this.#abortB.signal, onProvisional: (r) => r.status === 180 && !this.#res.answered && this.#res.send(180) },
      );
    } catch (err) {
      const status = err instanceof SipRequestFailedError ? mapFailure(err.status) : 502;
      return this.#reject(status, 'agent leg failed');
    }
    if (this.#ended() || this.#invite.cancelled) {
      void this.#dialogB.destroy();
      return;
    }
    let answerB: ParsedSdp;
    try {
      answerB = parseSdp(this.#dialogB.remoteSdp);
    } catch {
      void this.#dialogB.destroy();
      return this.#reject(488, 'agent leg answered with bad SDP');
    }
    const chosen = g711Codecs(answerB.audio.codecs)[0];
    if (!chosen || !codecs.some((c) => c.name === chosen.name)) {
      void this.#dialogB.destroy();
      return this.#reject(488, 'agent leg chose no G.711 codec');
    }
    const eventB = telephoneEvent(answerB.audio.codecs);
    this.#eventPtA = eventA && eventB ? eventA.payloadType : undefined;
    this.#eventPtB = eventA && eventB ? eventB.payloadType : undefined;
    this.#b.setRemote({ host: answerB.audio.address, port: answerB.audio.port });
    this.#law = chosen.name === 'pcma' ? 'pcma' : 'pcmu';

    // media: the caller's audio masked for the agent (and the recording)
    const listeners = this.tenant.recording ? [this.tenant.masking.agent, this.tenant.masking.recording] : [this.tenant.masking.agent];
    this.#media = new MaskedMediaStream({
      law: this.#law,
      audioPayloadType: PAYLOAD_TYPE[this.#law],
      ...(eventA ? { telephoneEventPayloadType: eventA.payloadType } : {}),
      listeners,
      delayMs: config.media.maskDelayMs,
      digits: this.digits,
    });
    this.#sequencer = new RtpSequencer({ ssrc: randomUint32(), payloadType: PAYLOAD_TYPE[this.#law], initialSequenceNumber: randomUint32() & 0xffff, initialTimestamp: randomUint32() });
    if (this.tenant.recording) {
      try {
        this.#recorder = await CallRecorder.open(join(config.dataDir, 'recordings', `${this.id}.wav`), this.#law);
      } catch (err) {
        // a recording that cannot be written must not stop the call; the end of the call says so
        this.#recordingOpenError = `cannot create the recording: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      }
    }

    const answerA = this.#sdp(this.#a.port, [chosen, ...(this.#eventPtA !== undefined && eventA ? [eventA] : [])], answerB.audio.direction);
    try {
      this.#dialogA = await this.#deps.port.createUAS(this.#invite, this.#res, { localSdp: answerA });
    } catch {
      void this.close({ reason: this.#invite.cancelled ? 'cancelled' : 'error' });
      return;
    }
    if (this.#ended()) {
      void this.#dialogA.destroy();
      return;
    }
    this.#wireDialogs(this.#dialogA, this.#dialogB);
    this.#state = 'active';
    this.#noRtp.start();
    this.emit('active');
  }

  /**
   * The call's payments, once both legs are up (undefined where hushpay takes no payments).
   * Made on first use: most calls never take a payment, and a session (its statechart) costs
   * memory on every call that has one.
   */
  get payments(): PaymentSession | undefined {
    if (!this.#payments && this.#state === 'active') this.#startPayments();
    return this.#payments;
  }

  #startPayments(): void {
    const deps = this.#deps.payments;
    if (!deps) return;
    const session = new PaymentSession({
      callId: this.id,
      callerNumber: parseFromUser(this.#invite.headers.get('From')),
      settings: paymentSettings(this.tenant),
      gateway: deps.tenants.gateway(this.tenant.id),
      guard: deps.guard,
      clock: this.#deps.clock,
      logger: deps.logger,
    });
    const library = deps.tenants.prompts(this.tenant.id);
    session.on('event', (e) => this.emit('payment', e));
    session.on('prompt', (p) => this.#prompts.enqueue(library.render(p.prompt, p.amount)));
    this.#payments = session;
  }

  /** Whether the call has ended (a method, so checks after an await are not narrowed away). */
  #ended(): boolean {
    return this.#state === 'ended';
  }

  #sdp(port: number, codecs: readonly SdpCodec[], direction: Direction): string {
    const media = this.#deps.config.media;
    return writeSdp({ sessionId: this.#sessionId, sessionVersion: this.#sessionVersion++, address: media.advertise ?? media.host, port, codecs, direction });
  }

  #reject(status: number, _why: string): void {
    if (!this.#res.answered) this.#res.send(status);
    void this.close({ reason: status === 487 ? 'cancelled' : 'rejected', status });
  }

  #wireDialogs(a: PortDialog, b: PortDialog): void {
    a.on('destroy', () => void this.close({ reason: 'caller' }));
    b.on('destroy', () => void this.close({ reason: 'agent' }));
    a.on('modify', (req) => void this.#relayModify(req, 'a'));
    b.on('modify', (req) => void this.#relayModify(req, 'b'));
    a.on('info', (req) => this.#callerInfo(req));
    b.on('info', (req) => req.respond(200));
  }

  /** A re-INVITE or UPDATE (hold, resume, a new address): pass it to the other leg. */
  async #relayModify(req: PortModify, side: 'a' | 'b'): Promise<void> {
    const [from, to, endpointFrom, endpointTo] = side === 'a' ? [this.#dialogA, this.#dialogB, this.#a, this.#b] : [this.#dialogB, this.#dialogA, this.#b, this.#a];
    if (!from || !to || !endpointFrom || !endpointTo) return req.respond(500);
    let offer: ParsedSdp;
    try {
      offer = parseSdp(req.sdp);
    } catch {
      return req.respond(488);
    }
    endpointFrom.setRemote({ host: offer.audio.address, port: offer.audio.port });
    const codecs = this.#legCodecs(side === 'a' ? 'b' : 'a');
    try {
      const answerText = await to.modify(this.#sdp(endpointTo.port, codecs, offer.audio.direction));
      const answer = parseSdp(answerText);
      endpointTo.setRemote({ host: answer.audio.address, port: answer.audio.port });
      const wasOnHold = this.#onHold;
      this.#onHold = offer.audio.direction !== 'sendrecv' || answer.audio.direction !== 'sendrecv';
      // the watch pauses on hold and starts afresh on resume; any other re-INVITE or UPDATE (a
      // session refresh) leaves it running, so refreshes cannot keep a silent call alive
      if (this.#onHold) this.#noRtp.stop();
      else if (wasOnHold && !this.#ended()) this.#noRtp.start();
      req.respond(200, { sdp: this.#sdp(endpointFrom.port, this.#legCodecs(side), answer.audio.direction) });
    } catch (err) {
      req.respond(err instanceof SipRequestFailedError ? err.status : 500);
    }
  }

  /** The codecs negotiated on a leg (the chosen G.711 and, if any, that leg's telephone-event PT). */
  #legCodecs(side: 'a' | 'b'): SdpCodec[] {
    const audio: SdpCodec = { payloadType: PAYLOAD_TYPE[this.#law], name: this.#law, clockRate: 8000, fmtp: undefined };
    const event = side === 'a' ? this.#eventPtA : this.#eventPtB;
    return event === undefined ? [audio] : [audio, { payloadType: event, name: 'telephone-event', clockRate: 8000, fmtp: '0-16' }];
  }

  /** SIP INFO digits from the caller feed the digit stream and are never forwarded. */
  #callerInfo(req: PortInfo): void {
    const digit = parseInfoDigit(req.contentType, req.body);
    // an INFO carries no media time: it is placed at the caller's audio received so far
    if (digit) this.digits.sipInfo(digit.digit, this.#media?.positionMs ?? 0, digit.durationMs);
    req.respond(digit || req.contentType === '' ? 200 : 415);
  }

  #fromCaller(data: Buffer): void {
    const media = this.#media;
    if (!media) return; // early media before the agent leg answered: not forwarded
    const outputs = media.input(data);
    const agent = outputs[0];
    if (agent && this.#b && this.#sequencer) for (const chunk of agent) this.#b.send(this.#sequencer.packet(chunk));
    const recording = outputs[1];
    if (recording && this.#recorder) for (const chunk of recording) this.#recorder.left(chunk.payload);
  }

  #fromAgent(data: Buffer): void {
    if (!this.#a || this.#state !== 'active') return;
    // the agent's telephone-events keep their meaning on the caller's leg: map the payload type
    if (data.length >= 12 && this.#eventPtB !== undefined && (data[1]! & 0x7f) === this.#eventPtB && this.#eventPtA !== undefined) {
      data[1] = (data[1]! & 0x80) | this.#eventPtA;
    }
    if (data.length > 12 && (data[1]! & 0x7f) === PAYLOAD_TYPE[this.#law]) {
      const cc = data[0]! & 0x0f;
      let offset = 12 + 4 * cc;
      if (data[0]! & 0x10 && data.length >= offset + 4) offset += 4 + 4 * ((data[offset + 2]! << 8) | data[offset + 3]!);
      if (offset < data.length) {
        const payload = data.subarray(offset);
        // the recording keeps the agent as they spoke; the caller hears the prompts over them
        this.#recorder?.right(payload);
        if (this.#prompts.playing) this.#mixPrompt(payload);
      }
    }
    this.#a.send(data);
  }

  /** Adds the prompt's next samples to the agent's audio, in place, in the call's law. */
  #mixPrompt(payload: Uint8Array): void {
    const prompt = this.#prompts.next(payload.length);
    if (!prompt) return;
    const table = decodeTable(this.#law);
    for (let i = 0; i < payload.length; i++) {
      const mixed = table[payload[i]!]! + prompt[i]!;
      payload[i] = encodeSample(this.#law, mixed > 32767 ? 32767 : mixed < -32768 ? -32768 : mixed);
    }
  }

  /** Ends both legs and releases everything, once. */
  close(end: CallEnd): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#state = 'ended';
    this.#noRtp.stop();
    // set before any work: ending one leg makes the other's 'destroy' call close() again, and
    // the first reason must stand
    this.#closing = Promise.resolve().then(() => this.#close(end));
    return this.#closing;
  }

  async #close(end: CallEnd): Promise<void> {
    this.#abortB.abort();
    if (!this.#res.answered && !this.#invite.cancelled) this.#res.send(end.status ?? 503);
    const byes = [this.#dialogA?.destroy(), this.#dialogB?.destroy()];
    const tail = this.#media?.close();
    if (tail && this.#recorder && tail[1]) for (const chunk of tail[1]) this.#recorder.left(chunk.payload);
    this.#a?.close();
    this.#b?.close();
    this.#prompts.stop();
    await Promise.allSettled([...byes, this.#payments?.close()]);
    await this.#recorder?.close().catch(() => {});
    this.emit('ended', end);
    this.removeAllListeners();
  }
}

/** Maps a failure on the agent leg to the response the caller gets. */
export function mapFailure(status: number): number {
  if (status === 401 || status === 407) return 502; // our credentials failed: not the caller's problem
  if (status >= 300 && status < 400) return 502; // redirects are not followed
  if (status === 408 || status === 0) return 408;
  if (status === 503) return 503;
  if (status >= 500 && status < 600) return 502;
  return status; // 4xx and 6xx mean the same to the caller
}

function parseFromUser(from: string | undefined): string | undefined {
  const m = from ? /sips?:([^@;>]+)@/.exec(from) : null;
  return m?.[1];
}

/** `application/dtmf-relay` (Signal=5, Duration=160) or `application/dtmf` (5). */
export function parseInfoDigit(contentType: string, body: string): { digit: DtmfDigit; durationMs: number } | undefined {
  const type = contentType.split(';')[0]!.trim();
  // some phones send * # A-D as their RFC 4733 event codes 10-15
  const byCode: Record<string, string> = { '10': '*', '11': '#', '12': 'A', '13': 'B', '14': 'C', '15': 'D' };
  if (type === 'application/dtmf-relay') {
    const signal = /^\s*Signal\s*=\s*(\S{1,2})\s*$/im.exec(body)?.[1]?.toUpperCase();
    const duration = Number(/^\s*Duration\s*=\s*(\d+)\s*$/im.exec(body)?.[1] ?? '160');
    const digit = signal === undefined ? undefined : (byCode[signal] ?? signal);
    if (digit && isDtmfDigit(digit)) return { digit, durationMs: duration };
    return undefined;
  }
  if (type === 'application/dtmf') {
    const value = body.trim().toUpperCase();
    const digit = byCode[value] ?? value;
    if (isDtmfDigit(digit)) return { digit, durationMs: 160 };
  }
  return undefined;
}

function randomUint32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}
