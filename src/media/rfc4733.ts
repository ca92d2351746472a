/**
 * RFC 4733 telephone-event payloads (https://www.rfc-editor.org/rfc/rfc4733): the 4-byte event
 * format, the DTMF event codes, and a pure sender and receiver for key presses.
 *
 * Neither the sender nor the receiver owns a timer or a socket. The sender is asked for the packet
 * to send at each packet interval; the receiver is handed parsed RTP packets and answers with the
 * key presses they complete. Sequence numbers and the SSRC belong to the RTP session, not here.
 *
 * Not implemented: several events packed in one payload (§2.5.1.5). The parser reads the first
 * 4-byte event and ignores the rest, so a packed payload yields its first event only.
 */

import { MediaConfigError, TelephoneEventTooShortError } from '../errors.ts';
import type { DtmfDigit } from './dtmf/frequencies.ts';
import type { RtpPacket } from './rtp.ts';
import { uint32Add, uint32Diff, uint32Gt } from './seq.ts';

/** Size of one event in the payload (§2.3). */
export const TELEPHONE_EVENT_PAYLOAD_BYTES = 4;
/** The duration field is 16 bits: about 8.2 s at 8 kHz. */
export const MAX_DURATION_TIMESTAMP_UNITS = 0xffff;
/** 20 ms at the 8 kHz telephone-event clock: the usual audio ptime, and our update interval. */
export const DEFAULT_PACKET_INTERVAL_TIMESTAMP_UNITS = 160;
/** §2.5.1.4: "The final packet for each event and for each segment SHOULD be sent a total of three times". */
export const FINAL_PACKET_TRANSMISSIONS = 3;
/** Volume field of the packets we send: the tone at −10 dBm0. */
export const DEFAULT_VOLUME_DBM0_BELOW_ZERO = 10;
/** The 6-bit volume field: "Power levels range from 0 to -63 dBm0" (§2.3.4). */
export const MAX_VOLUME_DBM0_BELOW_ZERO = 63;
const MAX_EVENT_CODE = 255;

/** One telephone event as carried on the wire; field names are RFC 4733 §2.3's. */
export interface TelephoneEvent {
  /** Event code, 0…255 (§3.2: 0–9 digits, 10 '*', 11 '#', 12–15 A–D). */
  readonly event: number;
  /** The E bit: this packet reports the end of the event. */
  readonly end: boolean;
  /** Tone power in dBm0 with the sign dropped: 10 means −10 dBm0. 0…63. */
  readonly volume: number;
  /** Time since the event (or segment) began, in RTP timestamp units. 0…0xFFFF. */
  readonly duration: number;
}

/*
 * RFC 4733 §2.3, Payload Format:
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |     event     |E|R| volume    |          duration             |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * §2.3.3, R: "This field is reserved for future use. The sender MUST set it to zero, and the
 * receiver MUST ignore it." The RTP timestamp of every packet of an event is the event's onset;
 * the duration field says how long it has lasted so far.
 */

/** Reads the first event of a telephone-event payload; throws TelephoneEventTooShortError under 4 bytes. */
export function parseTelephoneEvent(payload: Uint8Array): TelephoneEvent {
  if (payload.length < TELEPHONE_EVENT_PAYLOAD_BYTES) throw new TelephoneEventTooShortError(payload.length);
  const flags = payload[1]!;
  return {
    event: payload[0]!,
    end: (flags & 0x80) !== 0,
    volume: flags & 0x3f,
    duration: (payload[2]! << 8) | payload[3]!,
  };
}

function checkRange(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new MediaConfigError(`telephone-event ${name} ${value} outside 0…${max}`);
}

/** Writes one event as a 4-byte payload, R bit zero. */
export function serializeTelephoneEvent(telephoneEvent: TelephoneEvent): Uint8Array {
  const { event, end, volume, duration } = telephoneEvent;
  checkRange('event', event, MAX_EVENT_CODE);
  checkRange('volume', volume, MAX_VOLUME_DBM0_BELOW_ZERO);
  checkRange('duration', duration, MAX_DURATION_TIMESTAMP_UNITS);
  return Uint8Array.of(event, (end ? 0x80 : 0) | volume, duration >> 8, duration & 0xff);
}

// ---------------------------------------------------------------------------------------------
// DTMF event codes (§3.2, Table 3)
// ---------------------------------------------------------------------------------------------

/** Indexed by event code: 0–9, 10 = '*', 11 = '#', 12–15 = A–D. */
const DIGIT_BY_EVENT: readonly DtmfDigit[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

/** The event code of a DTMF key, or undefined for anything else (keys are upper case). */
export function digitToEvent(digit: string): number | undefined {
  const event = (DIGIT_BY_EVENT as readonly string[]).indexOf(digit);
  return event >= 0 ? event : undefined;
}

/** The DTMF key of an event code, or undefined for non-DTMF events (16 = flash, tones, …). */
export function eventToDigit(event: number): DtmfDigit | undefined {
  return Number.isInteger(event) ? DIGIT_BY_EVENT[event] : undefined;
}

// ---------------------------------------------------------------------------------------------
// Sender (§2.5.1)
// ---------------------------------------------------------------------------------------------

/** One packet to send: the caller adds sequence number, SSRC and payload type. */
export interface TelephoneEventPacket {
  readonly marker: boolean;
  /** RTP timestamp: the onset of the event, or of the segment for long events. */
  readonly timestamp: number;
  readonly telephoneEvent: TelephoneEvent;
}

export interface TelephoneEventSenderOptions {
  /** Event code, 0…255; digitToEvent() gives the code of a DTMF key. */
  readonly event: number;
  /** RTP timestamp at the onset of the key press. */
  readonly startTimestamp: number;
  /** How long the key is held, in timestamp units (800 = 100 ms at 8 kHz). At least 1. */
  readonly durationTimestampUnits: number;
  /** dBm0 with the sign dropped; default 10 (−10 dBm0). */
  readonly volume?: number;
  /** Update interval, in timestamp units; default 160 (20 ms at 8 kHz). */
  readonly packetIntervalTimestampUnits?: number;
}

/**
 * The packets of one key press, per RFC 4733 §2.5.1. Pure: packet `i` is the one to send `i`
 * packet intervals after the first, which goes out one interval after the onset.
 *
 * - §2.5.1.2 (paraphrased): the first packet of an event carries the marker bit; all packets of
 *   the event carry the event's onset as their RTP timestamp, and a duration that grows with
 *   each update (here: one packet interval per packet).
 * - §2.5.1.4: "The final packet for each event and for each segment SHOULD be sent a total of
 *   three times at the interval used by the source for updates." and "Once the sender has set
 *   the E bit for a packet, it MUST continue to set the E bit for any further retransmissions of
 *   that packet." The end packets all carry the final duration.
 * - §2.5.1.3 (paraphrased): an event longer than the duration field can say (0xFFFF) is cut into
 *   segments. The sender reports the maximum duration, without the E bit, then starts a new
 *   segment whose RTP timestamp is where the previous one reached its maximum (its timestamp
 *   plus 0xFFFF) and whose duration counts from there. Each segment's final packet is sent three
 *   times, like the event's. Continuation segments do not set the marker bit: the marker means a
 *   new event, and a receiver that keys on it would count the key twice.
 */
export class TelephoneEventSender {
  readonly #packets: readonly TelephoneEventPacket[];

  constructor(options: TelephoneEventSenderOptions) {
    const volume = options.volume ?? DEFAULT_VOLUME_DBM0_BELOW_ZERO;
    const intervalTimestampUnits = options.packetIntervalTimestampUnits ?? DEFAULT_PACKET_INTERVAL_TIMESTAMP_UNITS;
    checkRange('event', options.event, MAX_EVENT_CODE);
    checkRange('volume', volume, MAX_VOLUME_DBM0_BELOW_ZERO);
    checkRange('start timestamp', options.startTimestamp, 0xffffffff);
    checkRange('packet interval', intervalTimestampUnits, MAX_DURATION_TIMESTAMP_UNITS);
    if (intervalTimestampUnits === 0) throw new MediaConfigError('telephone-event packet interval must be at least 1');
    if (!Number.isSafeInteger(options.durationTimestampUnits) || options.durationTimestampUnits < 1) {
      throw new MediaConfigError(`telephone-event duration ${options.durationTimestampUnits} must be a whole number ≥ 1`);
    }
    this.#packets = schedule(options.event, volume, options.startTimestamp, options.durationTimestampUnits, intervalTimestampUnits);
  }

  /** How many packets the key press takes, end retransmissions included. */
  get packetCount(): number {
    return this.#packets.length;
  }

  /** The packet to send at `packetIndex` (0 = the first), or undefined once the press is over. */
  packetAt(packetIndex: number): TelephoneEventPacket | undefined {
    return this.#packets[packetIndex];
  }

  /** All packets, in sending order. */
  packets(): readonly TelephoneEventPacket[] {
    return this.#packets;
  }
}

function schedule(event: number, volume: number, startTimestamp: number, totalDuration: number, interval: number): TelephoneEventPacket[] {
  const packets: TelephoneEventPacket[] = [];
  const push = (segmentStart: number, duration: number, end: boolean): void => {
    packets.push({
      marker: packets.length === 0,
      timestamp: uint32Add(startTimestamp, segmentStart),
      telephoneEvent: { event, end, volume, duration },
    });
  };
  let segmentStart = 0; // offset of the current segment from the onset, in timestamp units
  for (let tick = 0; ;) {
    const elapsed = Math.min((tick + 1) * interval, totalDuration);
    const segmentDuration = elapsed - segmentStart;
    const eventGoesOn = elapsed < totalDuration;
    if (segmentDuration > MAX_DURATION_TIMESTAMP_UNITS || (segmentDuration === MAX_DURATION_TIMESTAMP_UNITS && eventGoesOn)) {
      // §2.5.1.3: report the maximum without the E bit, three times, then continue in a new segment.
      for (let i = 0; i < FINAL_PACKET_TRANSMISSIONS; i++) push(segmentStart, MAX_DURATION_TIMESTAMP_UNITS, false);
      segmentStart += MAX_DURATION_TIMESTAMP_UNITS;
      tick += FINAL_PACKET_TRANSMISSIONS;
    } else if (!eventGoesOn) {
      for (let i = 0; i < FINAL_PACKET_TRANSMISSIONS; i++) push(segmentStart, segmentDuration, true);
      return packets;
    } else {
      push(segmentStart, segmentDuration, false);
      tick++;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Receiver (§2.5.2)
// ---------------------------------------------------------------------------------------------

/** A DTMF key press as received, reported once, when it ends. */
export interface ReceivedKeyPress {
  readonly digit: DtmfDigit;
  /** RTP timestamp of the onset (of the first segment, for long events). */
  readonly startTimestamp: number;
  /** Total duration over all segments, in timestamp units. */
  readonly durationTimestampUnits: number;
  /** Last reported volume, dBm0 with the sign dropped. */
  readonly volume: number;
}

export interface TelephoneEventReceiverOptions {
  /** The dynamic payload type negotiated for telephone-event; other packets are ignored. */
  readonly payloadType: number;
}

/** What the receiver needs of an RTP packet (an RtpPacket from parseRtp will do). */
export type TelephoneEventRtp = Pick<RtpPacket, 'payloadType' | 'ssrc' | 'timestamp' | 'payload'>;

interface ActiveEvent {
  readonly event: number;
  readonly startTimestamp: number;
  segmentTimestamp: number;
  /** Sum of the completed segments, in timestamp units. */
  earlierSegmentsDuration: number;
  /** Longest duration reported in the current segment, in timestamp units. */
  segmentDuration: number;
  volume: number;
}

/**
 * Turns telephone-event packets into key presses, each reported exactly once, when it ends.
 *
 * An event is identified by its RTP timestamp, which every packet of the event carries as the
 * onset (§2.5.1.2); a new timestamp means a new event (or a new segment, §2.5.2.3). So:
 * - the three end packets: the first reports the press, the other two carry an old timestamp
 *   and are ignored, as is any packet whose timestamp is not after the newest one seen;
 * - a lost first packet: any packet with a new timestamp starts an event, marker or not;
 * - lost end packets: an event still open when a newer event starts is reported with the
 *   longest duration seen (and `flush()` reports one that is still open when the stream stops);
 * - long events (§2.5.1.3): a packet of the same event whose timestamp is exactly 0xFFFF after
 *   the current segment's continues the event; the press is reported once, with the durations
 *   of all segments added (each completed segment counts its full 0xFFFF).
 *
 * Non-DTMF events are tracked the same way (so they end the previous key) but not reported.
 * A packet with a payload shorter than 4 bytes throws TelephoneEventTooShortError for the socket
 * edge to count and drop. A change of SSRC ends the open event and forgets the timestamps seen.
 */
export class TelephoneEventReceiver {
  readonly #payloadType: number;
  #ssrc: number | undefined;
  #active: ActiveEvent | undefined;
  /** Newest segment timestamp seen from this SSRC. */
  #newestTimestamp: number | undefined;

  constructor(options: TelephoneEventReceiverOptions) {
    this.#payloadType = options.payloadType;
  }

  /** Consumes one packet; returns the key presses it completes (zero, one, or two). */
  receive(packet: TelephoneEventRtp): ReceivedKeyPress[] {
    if (packet.payloadType !== this.#payloadType) return [];
    const telephoneEvent = parseTelephoneEvent(packet.payload);
    const reports: ReceivedKeyPress[] = [];
    if (this.#ssrc !== packet.ssrc) {
      reports.push(...this.flush());
      this.#ssrc = packet.ssrc;
      this.#newestTimestamp = undefined;
    }
    const { timestamp } = packet;
    const active = this.#active;

    if (active && timestamp === active.segmentTimestamp) {
      if (telephoneEvent.event !== active.event) return reports; // two events at one onset: not RFC 4733; keep the first
      return this.#update(active, telephoneEvent, reports);
    }
    if (active && telephoneEvent.event === active.event && uint32Diff(timestamp, active.segmentTimestamp) === MAX_DURATION_TIMESTAMP_UNITS) {
      active.earlierSegmentsDuration += MAX_DURATION_TIMESTAMP_UNITS;
      active.segmentTimestamp = timestamp;
      active.segmentDuration = 0;
      this.#newestTimestamp = timestamp;
      return this.#update(active, telephoneEvent, reports);
    }
    if (this.#newestTimestamp !== undefined && !uint32Gt(timestamp, this.#newestTimestamp)) {
      return reports; // a retransmitted end packet, or a late packet of an event already reported
    }

    reports.push(...this.flush()); // the open event's end packets were lost
    const started: ActiveEvent = {
      event: telephoneEvent.event,
      startTimestamp: timestamp,
      segmentTimestamp: timestamp,
      earlierSegmentsDuration: 0,
      segmentDuration: 0,
      volume: telephoneEvent.volume,
    };
    this.#active = started;
    this.#newestTimestamp = timestamp;
    return this.#update(started, telephoneEvent, reports);
  }

  /** Ends the open event, if any (its end packets never came), and reports it if it is a DTMF key. */
  flush(): ReceivedKeyPress[] {
    const active = this.#active;
    if (!active) return [];
    this.#active = undefined;
    const digit = eventToDigit(active.event);
    if (digit === undefined) return [];
    return [{
      digit,
      startTimestamp: active.startTimestamp,
      durationTimestampUnits: active.earlierSegmentsDuration + active.segmentDuration,
      volume: active.volume,
    }];
  }

  #update(active: ActiveEvent, telephoneEvent: TelephoneEvent, reports: ReceivedKeyPress[]): ReceivedKeyPress[] {
    active.segmentDuration = Math.max(active.segmentDuration, telephoneEvent.duration);
    active.volume = telephoneEvent.volume;
    if (telephoneEvent.end) reports.push(...this.flush());
    return reports;
  }
}
