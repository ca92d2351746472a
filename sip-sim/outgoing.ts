/**
 * What a simulated phone sends, one 20 ms tick at a time, pure: the audio frame (a file or
 * silence, with any in-band DTMF tone mixed in) and the RFC 4733 telephone-event packets of a
 * key press, serialized as RTP with one sequence number space and one SSRC. The pacer decides
 * when a tick happens; this module decides what it holds, so it is tested without a clock.
 *
 * A key press starts on a tick boundary (its onset is rounded to the nearest 20 ms frame), so
 * an in-band tone and the RFC 4733 events of the same key ('both') start at the same sample.
 */

import { MediaConfigError } from '../src/errors.ts';
import { type DtmfDigit, isDtmfDigit, SAMPLE_RATE_HZ } from '../src/media/dtmf/frequencies.ts';
import { addDtmfTone } from '../src/media/dtmf/tones.ts';
import { encode, type G711Law } from '../src/media/g711.ts';
import { digitToEvent, serializeTelephoneEvent, TelephoneEventSender } from '../src/media/rfc4733.ts';
import { serializeRtp } from '../src/media/rtp.ts';
import { uint16Add, uint32Add } from '../src/media/seq.ts';

export const PTIME_MS = 20;
/** Samples in one 20 ms frame at 8 kHz; also the RTP timestamp step of one packet. */
export const FRAME_SAMPLES = (SAMPLE_RATE_HZ * PTIME_MS) / 1000;
const SAMPLES_PER_MS = SAMPLE_RATE_HZ / 1000;

/** Defaults for keyed digits: tone and gap lengths, and the level of a typical phone. */
export const DEFAULT_TONE_MS = 100;
export const DEFAULT_GAP_MS = 100;
/** Low-group level, dBm0; the high group is DEFAULT_TWIST_DB louder (ITU-T Q.23 allows both). */
export const DEFAULT_LEVEL_DBM0 = -8;
export const DEFAULT_TWIST_DB = 2;

/** One key of the digit string, placed on the tick grid. */
export interface KeyPressPlan {
  /** Position in the digit string, from 0. */
  readonly index: number;
  readonly digit: DtmfDigit;
  /** The tick (20 ms frame) whose first sample is the key's onset. */
  readonly onsetTick: number;
  readonly toneMs: number;
}

export interface KeyPlanOptions {
  /** Keys 0–9, *, #, A–D (a–d accepted); '*' is a key like any other. */
  readonly digits: string;
  /** Audio before the first key, ms. */
  readonly afterMs: number;
  readonly toneMs: number;
  readonly gapMs: number;
}

/** Places each key: onset i at afterMs + i·(tone + gap), rounded to the nearest frame. */
export function planKeyPresses(options: KeyPlanOptions): KeyPressPlan[] {
  const { afterMs, toneMs, gapMs } = options;
  if (!(Number.isFinite(afterMs) && afterMs >= 0)) throw new MediaConfigError(`afterMs ${afterMs} must be ≥ 0`);
  if (!(Number.isFinite(toneMs) && Math.round(toneMs * SAMPLES_PER_MS) >= 1)) throw new MediaConfigError(`tone duration ${toneMs} ms is too short`);
  if (!(Number.isFinite(gapMs) && gapMs >= 0)) throw new MediaConfigError(`gap ${gapMs} ms must be ≥ 0`);
  return [...options.digits.toUpperCase()].map((key, index) => {
    // the position only: these are test digits, but errors never carry key values
    if (!isDtmfDigit(key)) throw new MediaConfigError(`the digit string has a character that is not a DTMF key at position ${index}`);
    return { index, digit: key, onsetTick: Math.round((afterMs + index * (toneMs + gapMs)) / PTIME_MS), toneMs };
  });
}

export interface OutgoingStreamOptions {
  readonly law: G711Law;
  readonly payloadType: number;
  /** 8 kHz mono audio to send; silence once it ends (or throughout, if absent). */
  readonly source?: Int16Array;
  readonly keys: readonly KeyPressPlan[];
  /** Mix each key's tone into the audio. */
  readonly inband: boolean;
  readonly levelDbm0: number;
  readonly twistDb: number;
  /** Send each key as RFC 4733 events with this payload type. */
  readonly telephoneEvent?: { readonly payloadType: number };
  /** Keep sending audio while a key's events are sent (a real phone pauses it). */
  readonly audioDuringEvents: boolean;
  readonly ssrc: number;
  readonly initialSequenceNumber: number;
  readonly initialTimestamp: number;
}

export interface OutgoingTick {
  readonly tick: number;
  /** Serialized RTP packets to send now, in order. */
  readonly packets: readonly Uint8Array[];
  readonly audioPackets: number;
  readonly telephoneEventPackets: number;
  /** Keys whose onset is this tick. */
  readonly keysStarting: readonly KeyPressPlan[];
}

/** The telephone-event volume field of a tone at `levelDbm0` (dBm0 with the sign dropped, 0…63). */
export function volumeField(levelDbm0: number): number {
  return Math.min(63, Math.max(0, Math.round(-levelDbm0)));
}

export class OutgoingStream {
  readonly #o: OutgoingStreamOptions;
  readonly #senders = new Map<number, TelephoneEventSender>();
  readonly #frame = new Int16Array(FRAME_SAMPLES);
  #tick = 0;
  #packetsSent = 0;

  constructor(options: OutgoingStreamOptions) {
    this.#o = options;
  }

  /** The RTP timestamp of tick `tick`'s audio frame. */
  timestampOf(tick: number): number {
    return uint32Add(this.#o.initialTimestamp, tick * FRAME_SAMPLES);
  }

  /** The next tick's packets. */
  next(): OutgoingTick {
    const tick = this.#tick++;
    const o = this.#o;
    const packets: Uint8Array[] = [];
    const eventPacket = o.telephoneEvent ? this.#eventPacket(tick, o.telephoneEvent.payloadType) : undefined;
    let audioPackets = 0;
    if (eventPacket === undefined || o.audioDuringEvents) {
      packets.push(this.#rtp({ payloadType: o.payloadType, timestamp: this.timestampOf(tick), payload: encode(o.law, this.#audioFrame(tick)) }));
      audioPackets = 1;
    }
    if (eventPacket) packets.push(eventPacket);
    return { tick, packets, audioPackets, telephoneEventPackets: eventPacket ? 1 : 0, keysStarting: this.#o.keys.filter((k) => k.onsetTick === tick) };
  }

  #rtp(p: { payloadType: number; timestamp: number; payload: Uint8Array; marker?: boolean }): Uint8Array {
    const sequenceNumber = uint16Add(this.#o.initialSequenceNumber, this.#packetsSent++);
    return serializeRtp({ ...p, sequenceNumber, ssrc: this.#o.ssrc });
  }

  #audioFrame(tick: number): Int16Array {
    const frame = this.#frame;
    const start = tick * FRAME_SAMPLES;
    frame.fill(0);
    const source = this.#o.source;
    if (source && start < source.length) frame.set(source.subarray(start, Math.min(source.length, start + FRAME_SAMPLES)));
    if (this.#o.inband) {
      for (const key of this.#o.keys) {
        const onset = key.onsetTick * FRAME_SAMPLES;
        const length = Math.round(key.toneMs * SAMPLES_PER_MS);
        if (onset < start + FRAME_SAMPLES && onset + length > start) {
          // addDtmfTone counts phase from `onset - start`, so the tone runs on across frames
          addDtmfTone(frame, onset - start, length, key.digit, { levelDbm0: this.#o.levelDbm0, twistDb: this.#o.twistDb });
        }
      }
    }
    return frame;
  }

  /**
   * The telephone-event packet of the newest key that has started, if its press is still going
   * (end retransmissions included). A key starting cuts the previous one's retransmissions short.
   */
  #eventPacket(tick: number, payloadType: number): Uint8Array | undefined {
    let key: KeyPressPlan | undefined;
    for (const k of this.#o.keys) if (k.onsetTick <= tick && (!key || k.onsetTick >= key.onsetTick)) key = k;
    if (!key) return undefined;
    let sender = this.#senders.get(key.index);
    if (!sender) {
      sender = new TelephoneEventSender({
        event: digitToEvent(key.digit)!,
        startTimestamp: this.timestampOf(key.onsetTick),
        durationTimestampUnits: Math.round(key.toneMs * SAMPLES_PER_MS),
        volume: volumeField(this.#o.levelDbm0),
        packetIntervalTimestampUnits: FRAME_SAMPLES,
      });
      this.#senders.set(key.index, sender);
    }
    const packet = sender.packetAt(tick - key.onsetTick);
    if (!packet) return undefined;
    return this.#rtp({ payloadType, timestamp: packet.timestamp, marker: packet.marker, payload: serializeTelephoneEvent(packet.telephoneEvent) });
  }
}
