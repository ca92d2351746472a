/**
 * One call of a simulated phone, from either side: its RTP socket, what it sends (paced audio,
 * keyed digits) and what it measures and records of what it receives, its dialog once there is
 * one, and its end, reported once with a CallSummary.
 *
 * Lifecycle (STYLE.md practices 2 and 3): the phone creates the call and closes it; `end()` is
 * the one way out and runs once — it stops the pacer, clears the call's three timers (ring,
 * hang-up, periodic report), closes the socket, writes the recording, reports `ended`, and
 * resolves `ended`. `close()` hangs up a call that is up and ends any other.
 */

import { writeFile } from 'node:fs/promises';
import type { Clock, TimerHandle } from '../src/clock.ts';
import { MediaConfigError } from '../src/errors.ts';
import type { DtmfDigit } from '../src/media/dtmf/frequencies.ts';
import { decode } from '../src/media/g711.ts';
import { TelephoneEventReceiver } from '../src/media/rfc4733.ts';
import type { RtpPacket } from '../src/media/rtp.ts';
import type { SipHeaders } from '../src/sip/message.ts';
import { describeFailure } from '../src/tools/failure.ts';
import type { InfoRequest, ModifyRequest, SipDialog, DialogEndReason } from '../src/sip/ua.ts';
import { readAudioFile } from './audio-file.ts';
import { DTMF_RELAY_CONTENT_TYPE, formatDtmfRelay, parseDtmfRelay } from './dtmf-relay.ts';
import { DEFAULT_GAP_MS, DEFAULT_LEVEL_DBM0, DEFAULT_TONE_MS, DEFAULT_TWIST_DB, type KeyPressPlan, OutgoingStream, planKeyPresses, PTIME_MS } from './outgoing.ts';
import { Pacer } from './pacer.ts';
import { TimestampAlignedRecorder } from './recorder.ts';
import { DTMF_METHODS, type DtmfMethod, type EndReason, type PacingStats, type PhoneRole, type ReceivedPackets, type RecordBody, type SentPackets } from './records.ts';
import type { SimRtpSocket } from './rtp-socket.ts';
import { RtpReceiveStats, TIMESTAMP_UNITS_PER_MS } from './rtp-stats.ts';
import { negotiate, type NegotiatedMedia, TELEPHONE_EVENT_PAYLOAD_TYPE } from './sdp.ts';

/** Audio before the first key when `afterMs` is not given. */
export const DEFAULT_AFTER_MS = 500;

/** What a phone sends and records on a call. */
export interface CallMediaOptions {
  /** A .wav/.ul/.al file (8 kHz), or 8 kHz mono samples; silence if absent, and after its end. */
  readonly play?: string | Int16Array;
  /** Keys to press: 0–9, *, #, A–D. */
  readonly digits?: string;
  /** How to key them; default 'rfc4733'. */
  readonly dtmf?: DtmfMethod;
  /** Audio before the first key, ms; default 500. */
  readonly afterMs?: number;
  /** Tone length and the gap after it, ms; default 100 each. */
  readonly toneMs?: number;
  readonly gapMs?: number;
  /** Low-group tone level, dBm0 (default −8), and high minus low, dB (default +2). */
  readonly levelDbm0?: number;
  readonly twistDb?: number;
  /**
   * Keep sending audio while RFC 4733 events are sent. Default false (a real phone pauses the
   * audio); 'both' needs the audio, so it defaults to true there and refuses false.
   */
  readonly audioDuringEvents?: boolean;
  /** Write what is received to this WAV file (8 kHz mono PCM16, aligned by RTP timestamp). */
  readonly record?: string;
  /** Send a BYE this long after the answer. */
  readonly hangupAfterMs?: number;
  /** Send RTP at all (default true); a silent phone still receives and measures. */
  readonly sendRtp?: boolean;
}

/** The options checked and the audio read, before any SIP happens. */
export interface SendPlan {
  readonly source: Int16Array | undefined;
  readonly keys: readonly KeyPressPlan[];
  readonly dtmf: DtmfMethod;
  readonly levelDbm0: number;
  readonly twistDb: number;
  readonly audioDuringEvents: boolean;
  readonly record: string | undefined;
  readonly hangupAfterMs: number | undefined;
  readonly sendRtp: boolean;
}

/** Checks the options and reads the file; throws MediaConfigError, WavFormatError, … before a call starts. */
export async function prepareSendPlan(options: CallMediaOptions): Promise<SendPlan> {
  const dtmf = options.dtmf ?? 'rfc4733';
  if (!DTMF_METHODS.includes(dtmf)) throw new MediaConfigError(`dtmf must be one of ${DTMF_METHODS.join(', ')}`);
  if (dtmf === 'both' && options.audioDuringEvents === false) {
    throw new MediaConfigError("dtmf 'both' mixes the tone into the audio, so the audio cannot pause during events");
  }
  const hangupAfterMs = options.hangupAfterMs;
  if (hangupAfterMs !== undefined && !(Number.isFinite(hangupAfterMs) && hangupAfterMs >= 0)) throw new MediaConfigError(`hangupAfterMs ${hangupAfterMs} must be ≥ 0`);
  const keys = planKeyPresses({
    digits: options.digits ?? '',
    afterMs: options.afterMs ?? DEFAULT_AFTER_MS,
    toneMs: options.toneMs ?? DEFAULT_TONE_MS,
    gapMs: options.gapMs ?? DEFAULT_GAP_MS,
  });
  const play = options.play;
  return {
    source: typeof play === 'string' ? await readAudioFile(play) : play,
    keys,
    dtmf,
    levelDbm0: options.levelDbm0 ?? DEFAULT_LEVEL_DBM0,
    twistDb: options.twistDb ?? DEFAULT_TWIST_DB,
    audioDuringEvents: options.audioDuringEvents ?? dtmf === 'both',
    record: options.record,
    hangupAfterMs,
    sendRtp: options.sendRtp ?? true,
  };
}

export interface SentDigit {
  readonly index: number;
  readonly digit: DtmfDigit;
  readonly dtmf: DtmfMethod;
  /** Onset in the sent audio, ms from the answer. */
  readonly audioMs: number;
}

export interface ReceivedDigit {
  readonly digit: DtmfDigit;
  readonly via: 'rfc4733' | 'info';
  readonly durationMs: number;
}

export interface ReceivedInfo {
  readonly contentType: string;
  readonly body: string;
}

export interface CallSummary {
  readonly role: PhoneRole;
  readonly call: number;
  readonly callId: string;
  /** The INVITE's final status: 200 if answered, else the failure (486, 487, 408, …). */
  readonly status: number;
  readonly reason: EndReason;
  readonly answered: boolean;
  readonly codec: 'PCMU' | 'PCMA' | null;
  readonly timing: {
    /** From the INVITE (sent or received) to the first 180/183, ms. */
    readonly inviteToRingingMs: number | null;
    /** From the INVITE to the answer (200 received, or the ACK of the 200 sent), ms. */
    readonly inviteToAnswerMs: number | null;
    /** From the answer to the end, ms. */
    readonly talkMs: number;
    /** From the INVITE to the end, ms. */
    readonly totalMs: number;
  };
  readonly sent: SentPackets;
  readonly received: ReceivedPackets;
  readonly pacing: PacingStats;
  readonly digitsSent: readonly SentDigit[];
  readonly digitsReceived: readonly ReceivedDigit[];
  /** Every SIP INFO received, any content type. */
  readonly infos: readonly ReceivedInfo[];
  /** Length of the recording (or of what would have been recorded), in 8 kHz samples. */
  readonly recordedSamples: number;
  /** The WAV file written, if `record` was given and the write succeeded. */
  readonly recording: string | undefined;
}

/** What a call needs of its phone. */
export interface CallHost {
  readonly clock: Clock;
  /** Address for RTP sockets, and the one written in SDP. */
  readonly rtpHost: string;
  readonly sdpAddress: string;
  /** Periodic `rtp` records, ms (0: only the final one). */
  readonly rtpReportIntervalMs: number;
  report(body: RecordBody): void;
  /** A BYE in flight, for close() to wait for. */
  byeSent(answered: Promise<void>): void;
  callEnded(call: SimCall): void;
}

type CallState = 'inviting' | 'ringing' | 'active' | 'ending' | 'ended';

const codecName = (m: NegotiatedMedia): 'PCMU' | 'PCMA' => (m.law === 'pcmu' ? 'PCMU' : 'PCMA');
const randomUint = (bits: 16 | 32): number => Math.floor(Math.random() * 2 ** bits);
const round2 = (ms: number): number => Math.round(ms * 100) / 100;

export class SimCall {
  readonly role: PhoneRole;
  /** The call's number on its phone, from 1. */
  readonly index: number;
  /** Resolves once, when the call is over and its recording written. Never rejects. */
  readonly ended: Promise<CallSummary>;
  /** The INVITE's headers (agent side). */
  inviteHeaders: SipHeaders | undefined;
  #callId = '';
  readonly #host: CallHost;
  readonly #plan: SendPlan;
  readonly #stats = new RtpReceiveStats();
  readonly #recorder: TimestampAlignedRecorder;
  #teReceiver: TelephoneEventReceiver;
  #teReceivePayloadType: number | undefined = TELEPHONE_EVENT_PAYLOAD_TYPE;
  #rtp: SimRtpSocket | undefined;
  #dialog: SipDialog | undefined;
  #media: NegotiatedMedia | undefined;
  #stream: OutgoingStream | undefined;
  #pacer: Pacer | undefined;
  #ringTimer: TimerHandle | undefined;
  #ringDone: ((answer: boolean) => void) | undefined;
  #hangupTimer: TimerHandle | undefined;
  #reportTimer: TimerHandle | undefined;
  #state: CallState = 'inviting';
  #status = 0;
  #ending: Promise<void> | undefined;
  #bye: Promise<void> | undefined;
  /** Abandons an INVITE still in progress (a CANCEL, or a failure response); returns the status it ends with. */
  onAbort: (() => number) | undefined;
  readonly #resolve: (summary: CallSummary) => void;
  // timing, ms on the host clock
  readonly #inviteAt: number;
  #ringingAt: number | undefined;
  #answeredAt: number | undefined;
  // counters
  #sent = { packets: 0, audioPackets: 0, telephoneEventPackets: 0 };
  #audioPackets = 0;
  #telephoneEventPackets = 0;
  #otherPayloadPackets = 0;
  #audioSamples = 0;
  readonly #digitsSent: SentDigit[] = [];
  readonly #digitsReceived: ReceivedDigit[] = [];
  readonly #infos: ReceivedInfo[] = [];

  constructor(host: CallHost, role: PhoneRole, index: number, plan: SendPlan) {
    this.#host = host;
    this.role = role;
    this.index = index;
    this.#plan = plan;
    this.#recorder = new TimestampAlignedRecorder(plan.record !== undefined);
    this.#teReceiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PAYLOAD_TYPE });
    this.#inviteAt = host.clock.now();
    const { promise, resolve } = Promise.withResolvers<CallSummary>();
    this.ended = promise;
    this.#resolve = resolve;
  }

  get callId(): string {
    return this.#callId;
  }

  /** @internal Set once, when the Call-ID is known. */
  set callId(value: string) {
    if (this.#callId === '') this.#callId = value;
  }

  get state(): CallState {
    return this.#state;
  }

  /** Whether the call is ending or has ended. */
  get over(): boolean {
    return this.#state === 'ending' || this.#state === 'ended';
  }

  get dialog(): SipDialog | undefined {
    return this.#dialog;
  }

  /** The RTP address this call receives on (once its socket is open). */
  get localRtp(): { host: string; port: number } | undefined {
    return this.#rtp ? { host: this.#rtp.host, port: this.#rtp.port } : undefined;
  }

  /** Counters so far, for tests that look while the call is up. */
  get received(): ReceivedPackets {
    const t = this.#stats.totals();
    return {
      packets: t.packets,
      lost: t.lost,
      outOfOrder: t.outOfOrder,
      jitterMs: round2(t.jitterMs),
      maxJitterMs: round2(t.maxJitterMs),
      audioPackets: this.#audioPackets,
      telephoneEventPackets: this.#telephoneEventPackets,
      otherPayloadPackets: this.#otherPayloadPackets,
      malformed: this.#rtp?.malformed ?? 0,
      audioSamples: this.#audioSamples,
    };
  }

  get digitsReceived(): readonly ReceivedDigit[] {
    return this.#digitsReceived;
  }

  get infos(): readonly ReceivedInfo[] {
    return this.#infos;
  }

  /** @internal The socket, opened by the phone before the offer or answer is written. */
  attachRtp(rtp: SimRtpSocket): void {
    this.#rtp = rtp;
  }

  /** @internal The RTP socket's packets. */
  receivePacket = (packet: RtpPacket, arrivalMs: number): void => {
    if (this.#state === 'ended') return;
    const pt = packet.payloadType;
    const audio = pt === 0 || pt === 8;
    this.#stats.receive(packet, arrivalMs, audio);
    if (audio) {
      this.#audioPackets++;
      this.#audioSamples += packet.payload.length;
      this.#recorder.push(packet.ssrc, packet.timestamp, decode(pt === 0 ? 'pcmu' : 'pcma', packet.payload), arrivalMs);
    } else if (pt === this.#teReceivePayloadType) {
      this.#telephoneEventPackets++;
      try {
        for (const press of this.#teReceiver.receive(packet)) this.#digitReceived(press.digit, 'rfc4733', press.durationTimestampUnits / TIMESTAMP_UNITS_PER_MS);
      } catch {
        this.#otherPayloadPackets++; // a payload shorter than an event: not telephone-event after all
      }
    } else this.#otherPayloadPackets++;
  };

  /** @internal A 180/183 went out or came in. */
  ringing(status: number): void {
    if (this.#state !== 'inviting') return;
    this.#state = 'ringing';
    this.#ringingAt = this.#host.clock.now();
    this.#host.report({ event: 'ringing', call: this.index, callId: this.#callId, status });
  }

  /** @internal Agent: rings for `ms`; resolves true when it is time to answer, false if the call ended first. */
  ring(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      this.#ringDone = resolve;
      this.#ringTimer = this.#host.clock.setTimeout(() => {
        this.#ringTimer = undefined;
        this.#ringDone = undefined;
        resolve(true);
      }, ms);
    });
  }

  /**
   * @internal The dialog is up: start sending, and listen to it. `media` is what the answer
   * (or, for the agent, the offer) set up; `teReceivePayloadType` the telephone-event type this
   * side declared, so incoming events are recognised.
   */
  answered(dialog: SipDialog, media: NegotiatedMedia, teReceivePayloadType: number | undefined): void {
    if (this.over) {
      void dialog.destroy();
      return;
    }
    this.#state = 'active';
    this.#status = 200;
    this.#dialog = dialog;
    this.#media = media;
    this.#answeredAt = this.#host.clock.now();
    this.#teReceivePayloadType = teReceivePayloadType;
    if (teReceivePayloadType !== undefined && teReceivePayloadType !== TELEPHONE_EVENT_PAYLOAD_TYPE) {
      this.#teReceiver = new TelephoneEventReceiver({ payloadType: teReceivePayloadType });
    }
    dialog.on('destroy', this.#dialogEnded);
    dialog.on('info', this.#info);
    dialog.on('modify', this.#modify);
    const rtp = this.#rtp!;
    this.#host.report({
      event: 'answered',
      call: this.index,
      callId: this.#callId,
      codec: codecName(media),
      telephoneEvent: media.telephoneEvent ?? null,
      localRtp: `${rtp.host}:${rtp.port}`,
      remoteRtp: media.remote ? `${media.remote.host}:${media.remote.port}` : '-',
      inviteToAnswerMs: round2(this.#answeredAt - this.#inviteAt),
    });
    this.#startSending(media);
    const { clock, rtpReportIntervalMs } = this.#host;
    if (this.#plan.hangupAfterMs !== undefined) {
      this.#hangupTimer = clock.setTimeout(() => {
        this.#hangupTimer = undefined;
        void this.hangup();
      }, this.#plan.hangupAfterMs);
    }
    if (rtpReportIntervalMs > 0) this.#scheduleReport(rtpReportIntervalMs);
  }

  #startSending(media: NegotiatedMedia): void {
    const plan = this.#plan;
    const rfc4733 = plan.dtmf === 'rfc4733' || plan.dtmf === 'both';
    if (rfc4733 && plan.keys.length > 0 && media.telephoneEvent === undefined) {
      this.#host.report({ event: 'error', call: this.index, code: 'SIM_NO_TELEPHONE_EVENT', message: 'the far end has no telephone-event: RFC 4733 digits are not sent' });
    }
    this.#stream = new OutgoingStream({
      law: media.law,
      payloadType: media.payloadType,
      ...(plan.source ? { source: plan.source } : {}),
      keys: plan.keys,
      inband: plan.dtmf === 'inband' || plan.dtmf === 'both',
      levelDbm0: plan.levelDbm0,
      twistDb: plan.twistDb,
      ...(rfc4733 && media.telephoneEvent !== undefined ? { telephoneEvent: { payloadType: media.telephoneEvent } } : {}),
      audioDuringEvents: plan.audioDuringEvents,
      ssrc: randomUint(32),
      initialSequenceNumber: randomUint(16),
      initialTimestamp: randomUint(32),
    });
    this.#pacer = new Pacer(this.#host.clock, PTIME_MS, this.#tick);
    this.#pacer.start();
  }

  #tick = (): void => {
    const stream = this.#stream;
    if (!stream || this.#state !== 'active') return;
    const t = stream.next();
    const remote = this.#media?.remote;
    if (remote && this.#plan.sendRtp && this.#rtp) {
      for (const packet of t.packets) this.#rtp.send(packet, remote);
      this.#sent.packets += t.packets.length;
      this.#sent.audioPackets += t.audioPackets;
      this.#sent.telephoneEventPackets += t.telephoneEventPackets;
    }
    for (const key of t.keysStarting) this.#keyStarts(key);
  };

  #keyStarts(key: KeyPressPlan): void {
    const { dtmf } = this.#plan;
    const digit: SentDigit = { index: key.index, digit: key.digit, dtmf, audioMs: key.onsetTick * PTIME_MS };
    this.#digitsSent.push(digit);
    this.#host.report({ event: 'digit-sent', call: this.index, callId: this.#callId, ...digit });
    if (dtmf === 'info' && this.#dialog) {
      this.#dialog
        .request('INFO', { body: formatDtmfRelay(key.digit, key.toneMs), contentType: DTMF_RELAY_CONTENT_TYPE })
        .catch((error: unknown) => this.#reportError(error));
    }
  }

  #scheduleReport(intervalMs: number): void {
    this.#reportTimer = this.#host.clock.setTimeout(() => {
      this.#reportTimer = undefined;
      if (this.#state !== 'active') return;
      this.#reportRtp(false);
      this.#scheduleReport(intervalMs);
    }, intervalMs);
  }

  #reportRtp(final: boolean): void {
    this.#host.report({ event: 'rtp', call: this.index, callId: this.#callId, final, sent: { ...this.#sent }, received: this.received, pacing: this.#pacingStats() });
  }

  #pacingStats(): PacingStats {
    return this.#pacer?.stats() ?? { ticks: 0, p50Ms: 0, p99Ms: 0, maxMs: 0, skipped: 0 };
  }

  #digitReceived(digit: DtmfDigit, via: 'rfc4733' | 'info', durationMs: number): void {
    const received: ReceivedDigit = { digit, via, durationMs };
    this.#digitsReceived.push(received);
    this.#host.report({ event: 'digit-received', call: this.index, callId: this.#callId, ...received });
  }

  #info = (info: InfoRequest): void => {
    this.#infos.push({ contentType: info.contentType, body: info.body });
    this.#host.report({ event: 'info-received', call: this.index, callId: this.#callId, contentType: info.contentType, body: info.body });
    if (info.contentType.split(';')[0]!.trim() === DTMF_RELAY_CONTENT_TYPE) {
      const relay = parseDtmfRelay(info.body);
      if (relay) this.#digitReceived(relay.digit, 'info', relay.durationMs ?? 0);
    }
  };

  #modify = (request: ModifyRequest): void => {
    try {
      const media = negotiate(request.sdp);
      if (this.#media) this.#media = { ...this.#media, remote: media.remote };
      request.respond(200, { sdp: this.#dialog?.localSdp ?? '' });
    } catch {
      request.respond(488);
    }
  };

  #dialogEnded = (reason: DialogEndReason): void => {
    if (reason.by === 'local') return; // hangup() reports its own end
    if (reason.by === 'remote') {
      this.#host.report({ event: 'bye-received', call: this.index, callId: this.#callId });
      void this.end('remote-hangup', this.#status);
    } else void this.end(reason.by === 'timeout' ? 'timeout' : 'failed', this.#status);
  };

  #reportError(error: unknown): void {
    this.#host.report({ event: 'error', call: this.index, ...describeFailure(error) });
  }

  /**
   * Ends the call from this side: a BYE if it is up (resolving when the BYE is answered or given
   * up), a CANCEL if it is still being set up. Idempotent.
   */
  hangup(): Promise<void> {
    return this.#leave('hangup');
  }

  /** As hangup(), reporting the end as 'closed' (the phone is closing). */
  close(): Promise<void> {
    return this.#leave('closed');
  }

  #leave(reason: 'hangup' | 'closed'): Promise<void> {
    const dialog = this.#dialog;
    if (this.#state === 'active' && dialog) {
      this.#host.report({ event: 'bye-sent', call: this.index, callId: this.#callId });
      this.#bye = dialog.destroy();
      this.#host.byeSent(this.#bye);
      void this.end(reason, this.#status);
    } else if (this.#state === 'inviting' || this.#state === 'ringing') {
      const status = this.onAbort?.() ?? 0;
      void this.end(reason === 'hangup' ? 'cancelled' : reason, status);
    }
    return this.#bye ?? Promise.resolve();
  }

  /** @internal Ends the call once: stop, release, report, resolve. */
  end(reason: EndReason, status: number): Promise<void> {
    this.#ending ??= this.#end(reason, status);
    return this.#ending;
  }

  async #end(reason: EndReason, status: number): Promise<void> {
    this.#state = 'ending';
    this.#status = status;
    this.#pacer?.stop();
    const { clock } = this.#host;
    for (const timer of [this.#ringTimer, this.#hangupTimer, this.#reportTimer]) if (timer !== undefined) clock.clearTimeout(timer);
    this.#ringTimer = this.#hangupTimer = this.#reportTimer = undefined;
    this.#ringDone?.(false);
    this.#ringDone = undefined;
    const dialog = this.#dialog;
    if (dialog) {
      dialog.off('destroy', this.#dialogEnded);
      dialog.off('info', this.#info);
      dialog.off('modify', this.#modify);
    }
    const endedAt = clock.now();
    await this.#rtp?.close();
    for (const press of this.#teReceiver.flush()) this.#digitReceived(press.digit, 'rfc4733', press.durationTimestampUnits / TIMESTAMP_UNITS_PER_MS);
    if (this.#answeredAt !== undefined) this.#reportRtp(true);
    let recording: string | undefined;
    if (this.#plan.record !== undefined) {
      try {
        await writeFile(this.#plan.record, this.#recorder.toWav());
        recording = this.#plan.record;
      } catch (error) {
        this.#reportError(error);
      }
    }
    const talkMs = this.#answeredAt === undefined ? 0 : round2(endedAt - this.#answeredAt);
    this.#state = 'ended';
    this.#host.report({ event: 'ended', call: this.index, callId: this.#callId, reason, status, durationMs: talkMs });
    this.#resolve({
      role: this.role,
      call: this.index,
      callId: this.#callId,
      status,
      reason,
      answered: this.#answeredAt !== undefined,
      codec: this.#media ? codecName(this.#media) : null,
      timing: {
        inviteToRingingMs: this.#ringingAt === undefined ? null : round2(this.#ringingAt - this.#inviteAt),
        inviteToAnswerMs: this.#answeredAt === undefined ? null : round2(this.#answeredAt - this.#inviteAt),
        talkMs,
        totalMs: round2(endedAt - this.#inviteAt),
      },
      sent: { ...this.#sent },
      received: this.received,
      pacing: this.#pacingStats(),
      digitsSent: [...this.#digitsSent],
      digitsReceived: [...this.#digitsReceived],
      infos: [...this.#infos],
      recordedSamples: this.#recorder.lengthSamples,
      recording,
    });
    this.#host.callEnded(this);
  }
}
