/**
 * The caller's media on its way to the listeners (the agent's leg, the recording): RTP in,
 * masked audio out, digits on the side. Pure — packets in, packets out; the relay owns the
 * sockets and the call owns this.
 *
 * - Audio (PCMU or PCMA) goes through the DTMF engine: every DTMF-like tone is masked on each
 *   listener's output, in that listener's mode, and in-band digits are named.
 * - RFC 4733 telephone-events are never forwarded. They are named as digits, and their span
 *   of the timeline is masked; where the phone stops sending audio during an event, the span
 *   is filled with audio in the call's codec, so each listener's stream keeps continuous
 *   sequence numbers and timestamps.
 * - Lost audio (a timestamp jump of up to `maxGapFillMs`) is filled with silence so the
 *   timeline stays true; a larger jump (a hold, a new source) re-anchors the timeline without
 *   filling. Late and duplicate packets are dropped and counted; malformed ones likewise.
 */

import { type G711Law, SILENCE_BYTE } from './g711.ts';
import { DtmfEngine, type MaskMode } from './dtmf/engine.ts';
import { SAMPLE_RATE_HZ } from './dtmf/frequencies.ts';
import type { DigitStream } from './digits.ts';
import { MediaParseError, UnexpectedPayloadTypeError } from '../errors.ts';
import { TelephoneEventReceiver, parseTelephoneEvent } from './rfc4733.ts';
import { RtpDropCounter, type RtpPacket } from './rtp.ts';
import { uint16Add, uint32Add, uint32Diff } from './seq.ts';

export interface MaskedStreamOptions {
  readonly law: G711Law;
  readonly audioPayloadType: number;
  /** Negotiated telephone-event payload type, if any. */
  readonly telephoneEventPayloadType?: number;
  /** One output per listener, in this order. */
  readonly listeners: readonly MaskMode[];
  readonly delayMs?: number;
  /** Where named digits go (in-band and RFC 4733). */
  readonly digits: DigitStream;
  /** Largest timestamp gap filled with silence, ms (default 100). */
  readonly maxGapFillMs?: number;
  /** Samples per output packet (default 160, 20 ms). */
  readonly packetSamples?: number;
}

/** A listener's next packet of audio; `sample` is its position on the stream's own clock. */
export interface ListenerAudio {
  readonly payload: Uint8Array;
  readonly sample: number;
}

export interface MaskedStreamStats {
  readonly packetsIn: number;
  readonly dropped: Readonly<Record<string, number>>;
  readonly late: number;
  readonly eventPackets: number;
  readonly filledSamples: number;
  readonly maskedTones: number;
}

/** The most an event may run ahead of the audio before we stop believing it (1 s). */
const MAX_EVENT_FILL_SAMPLES = SAMPLE_RATE_HZ;

export class MaskedMediaStream {
  readonly #options: MaskedStreamOptions;
  readonly #engine: DtmfEngine;
  readonly #receiver: TelephoneEventReceiver | undefined;
  readonly #drops = new RtpDropCounter();
  readonly #maxGapFill: number;
  readonly #packetSamples: number;
  /** Per listener: output bytes not yet a whole packet, and the stream sample they start at. */
  readonly #carry: { bytes: Uint8Array; length: number; sample: number }[];
  /** Per listener: the engine's output, reused packet after packet. */
  #scratch: Uint8Array[] = [];
  /** Per listener: stream samples sent so far. */
  readonly #emitted: number[] = [];

  /** The audio's SSRC; its timeline is the stream's. */
  #ssrc: number | undefined;
  /** Where an event SSRC other than the audio's is anchored on the stream's timeline. */
  #eventClock: { ssrc: number; timestamp: number; sample: number } | undefined;
  /** Event packets since the last audio packet (two or more: the phone stopped its audio). */
  #eventsSinceAudio = 0;
  /** RTP timestamp of the next sample the engine expects, and that sample's index. */
  #expectedTimestamp = 0;
  #expectedSample = 0;
  #packetsIn = 0;
  #late = 0;
  #eventPackets = 0;
  #filled = 0;
  #closed = false;

  constructor(options: MaskedStreamOptions) {
    this.#options = options;
    this.#maxGapFill = Math.round(((options.maxGapFillMs ?? 100) * SAMPLE_RATE_HZ) / 1000);
    this.#packetSamples = options.packetSamples ?? 160;
    const digits = options.digits;
    this.#engine = new DtmfEngine({
      outputs: options.listeners,
      ...(options.delayMs !== undefined ? { delayMs: options.delayMs } : {}),
      onDigit: (d) => digits.inband(d.digit, d.startMs, d.endMs),
    });
    this.#receiver =
      options.telephoneEventPayloadType !== undefined
        ? new TelephoneEventReceiver({ payloadType: options.telephoneEventPayloadType })
        : undefined;
    this.#carry = options.listeners.map(() => ({ bytes: new Uint8Array(this.#packetSamples), length: 0, sample: 0 }));
  }

  get delaySamples(): number {
    return this.#engine.delaySamples;
  }

  /** The caller's audio received so far, ms (the clock digit times are on). */
  get positionMs(): number {
    return (this.#engine.position * 1000) / SAMPLE_RATE_HZ;
  }

  get stats(): MaskedStreamStats {
    return {
      packetsIn: this.#packetsIn,
      dropped: this.#drops.snapshot(),
      late: this.#late,
      eventPackets: this.#eventPackets,
      filledSamples: this.#filled,
      maskedTones: this.#engine.stats.masked,
    };
  }

  /**
   * Takes one datagram from the caller. Returns, per listener, the whole packets of audio it
   * completes (often one each; none for a dropped packet; several after a fill).
   */
  input(datagram: Uint8Array): ListenerAudio[][] {
    const out: ListenerAudio[][] = this.#options.listeners.map(() => []);
    if (this.#closed) return out;
    this.#packetsIn++;
    const packet = this.#drops.parseOrDrop(datagram);
    if (!packet) return out;
    if (packet.payloadType === this.#options.audioPayloadType) {
      if (packet.ssrc !== this.#ssrc) this.#resync(packet);
      this.#audio(packet, out);
    } else if (packet.payloadType === this.#options.telephoneEventPayloadType) {
      this.#event(packet, out);
    } else {
      this.#drops.record(new UnexpectedPayloadTypeError(packet.payloadType));
    }
    return out;
  }

  /** End of the call: judges pending tones and releases what the delay line holds. */
  close(): ListenerAudio[][] {
    const out: ListenerAudio[][] = this.#options.listeners.map(() => []);
    if (this.#closed) return out;
    this.#closed = true;
    for (const press of this.#receiver?.flush() ?? []) this.#reportEvent(press.digit, press.startTimestamp, press.durationTimestampUnits, this.#eventClock?.ssrc);
    const tails = this.#engine.flushG711(this.#options.law);
    tails.forEach((tail, r) => this.#packetize(r, tail, out, true));
    return out;
  }

  /** A new audio source (a new SSRC): its timestamps start where the stream is now. */
  #resync(packet: RtpPacket): void {
    this.#ssrc = packet.ssrc;
    this.#expectedTimestamp = packet.timestamp;
    this.#expectedSample = this.#engine.position;
  }

  /**
   * Stream sample index of an event's RTP timestamp. Events normally share the audio's SSRC
   * and clock; a phone (or a replay) that sends them from another SSRC gets that SSRC's clock
   * anchored where the stream is when its first event arrives.
   */
  #eventSampleOf(packet: RtpPacket): number {
    if (packet.ssrc === this.#ssrc) return this.#expectedSample + uint32Diff(packet.timestamp, this.#expectedTimestamp);
    if (this.#eventClock?.ssrc !== packet.ssrc) this.#eventClock = { ssrc: packet.ssrc, timestamp: packet.timestamp, sample: this.#engine.position };
    return this.#eventClock.sample + uint32Diff(packet.timestamp, this.#eventClock.timestamp);
  }

  #audio(packet: RtpPacket, out: ListenerAudio[][]): void {
    const gap = uint32Diff(packet.timestamp, this.#expectedTimestamp);
    let payload = packet.payload;
    if (gap < 0) {
      // late, duplicate, or already covered by an event fill: keep only what is new
      if (-gap >= payload.length) {
        this.#late++;
        return;
      }
      payload = payload.subarray(-gap);
    } else if (gap > 0) {
      if (gap <= this.#maxGapFill) this.#fill(gap, out);
      else this.#reanchor(packet.timestamp);
    }
    this.#eventsSinceAudio = 0;
    this.#feed(payload, out);
  }

  #event(packet: RtpPacket, out: ListenerAudio[][]): void {
    this.#eventPackets++;
    let event;
    try {
      event = parseTelephoneEvent(packet.payload);
    } catch (err) {
      if (err instanceof MediaParseError) {
        this.#drops.record(err);
        return;
      }
      throw err;
    }
    // mask the event's span of the timeline; fill it only where the audio has stopped (two
    // event packets with no audio between them) — a phone that sends both keeps its timeline
    const start = this.#eventSampleOf(packet);
    const end = start + event.duration;
    this.#engine.forceMask(start, end);
    this.#eventsSinceAudio++;
    const ahead = end - this.#engine.position;
    if (this.#eventsSinceAudio >= 2 && ahead > 0 && ahead <= MAX_EVENT_FILL_SAMPLES) {
      const before = start - this.#engine.position;
      if (before > 0 && before <= this.#maxGapFill) this.#fill(before, out);
      const rest = end - this.#engine.position;
      if (rest > 0) this.#fill(rest, out);
    }
    for (const press of this.#receiver!.receive(packet)) this.#reportEvent(press.digit, press.startTimestamp, press.durationTimestampUnits, packet.ssrc);
  }

  #reportEvent(digit: Parameters<DigitStream['rfc4733']>[0], startTimestamp: number, duration: number, ssrc: number | undefined): void {
    const start = this.#eventSampleOf({ ssrc: ssrc ?? this.#ssrc ?? 0, timestamp: startTimestamp } as RtpPacket);
    this.#options.digits.rfc4733(digit, (start * 1000) / SAMPLE_RATE_HZ, ((start + duration) * 1000) / SAMPLE_RATE_HZ);
  }

  /** Feeds `samples` of silence (the codec's silence byte) to keep the timeline whole. */
  #fill(samples: number, out: ListenerAudio[][]): void {
    this.#filled += samples;
    this.#feed(new Uint8Array(samples).fill(SILENCE_BYTE[this.#options.law]), out);
  }

  #reanchor(timestamp: number): void {
    this.#expectedTimestamp = timestamp;
    this.#expectedSample = this.#engine.position;
  }

  #feed(bytes: Uint8Array, out: ListenerAudio[][]): void {
    if (bytes.length === 0) return;
    if (this.#scratch[0] === undefined || this.#scratch[0].length < bytes.length) this.#scratch = this.#options.listeners.map(() => new Uint8Array(Math.max(bytes.length, 4 * this.#packetSamples)));
    const outputs = this.#scratch.map((b) => b.subarray(0, bytes.length));
    this.#engine.processG711Into(this.#options.law, bytes, outputs);
    this.#expectedTimestamp = uint32Add(this.#expectedTimestamp, bytes.length);
    this.#expectedSample += bytes.length;
    outputs.forEach((bytesOut, r) => this.#packetize(r, bytesOut, out, false));
  }

  /** Cuts a listener's output into whole packets; with `final`, the remainder too. */
  #packetize(r: number, bytes: Uint8Array, out: ListenerAudio[][], final: boolean): void {
    const carry = this.#carry[r]!;
    const size = this.#packetSamples;
    let offset = 0;
    while (offset < bytes.length) {
      if (carry.length === 0) carry.sample = this.#sentSample(r);
      const take = Math.min(size - carry.length, bytes.length - offset);
      carry.bytes.set(bytes.subarray(offset, offset + take), carry.length);
      carry.length += take;
      offset += take;
      if (carry.length === size) this.#emit(r, out);
    }
    if (final && carry.length > 0) this.#emit(r, out);
  }

  #sentSample(r: number): number {
    return this.#emitted[r] ?? 0;
  }

  #emit(r: number, out: ListenerAudio[][]): void {
    const carry = this.#carry[r]!;
    // Buffer.allocUnsafe takes small buffers from Node's shared pool: no allocation per packet
    const payload = Buffer.allocUnsafe(carry.length);
    payload.set(carry.bytes.subarray(0, carry.length));
    out[r]!.push({ payload, sample: carry.sample });
    this.#emitted[r] = carry.sample + carry.length;
    carry.length = 0;
  }
}

const RTP_HEADER = 12;

/**
 * Writes one listener's audio as RTP with its own SSRC: sequence numbers count packets and
 * timestamps count samples from random starting points (RFC 3550 §5.1), so the listener sees
 * one continuous stream whatever happened upstream.
 */
export class RtpSequencer {
  readonly ssrc: number;
  readonly payloadType: number;
  #sequenceNumber: number;
  readonly #timestampBase: number;
  #first = true;

  constructor(options: { ssrc: number; payloadType: number; initialSequenceNumber: number; initialTimestamp: number }) {
    this.ssrc = options.ssrc >>> 0;
    this.payloadType = options.payloadType;
    this.#sequenceNumber = options.initialSequenceNumber & 0xffff;
    this.#timestampBase = options.initialTimestamp >>> 0;
  }

  packet(audio: ListenerAudio): Uint8Array {
    // RFC 3550 §5.1 fixed header (no CSRC, no extension), written straight into a pooled buffer
    const packet = Buffer.allocUnsafe(RTP_HEADER + audio.payload.length);
    packet[0] = 0x80;
    packet[1] = (this.#first ? 0x80 : 0) | (this.payloadType & 0x7f);
    packet.writeUInt16BE(this.#sequenceNumber, 2);
    packet.writeUInt32BE(uint32Add(this.#timestampBase, audio.sample), 4);
    packet.writeUInt32BE(this.ssrc, 8);
    packet.set(audio.payload, RTP_HEADER);
    this.#first = false;
    this.#sequenceNumber = uint16Add(this.#sequenceNumber, 1);
    return packet;
  }

}
