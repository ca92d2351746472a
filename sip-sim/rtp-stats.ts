/**
 * Receive-side measurements for one call, pure: packets, loss from sequence gaps and RFC 3550
 * interarrival jitter, per SSRC and in total. The benchmark reads these to grade what hushpay
 * forwards; nothing here owns a socket or a timer (arrival times are passed in).
 */

import { uint16Diff, uint32Diff, UINT16_MODULUS } from '../src/media/seq.ts';

/** The RTP clock of G.711 and telephone-event at 8 kHz: timestamp units per ms. */
export const TIMESTAMP_UNITS_PER_MS = 8;

/**
 * RFC 3550 §6.4.1 (https://www.rfc-editor.org/rfc/rfc3550#section-6.4.1), interarrival jitter:
 * "If Si is the RTP timestamp from packet i, and Ri is the time of arrival in RTP timestamp units
 * for packet i, then for two packets i and j, D may be expressed as
 *     D(i,j) = (Rj - Ri) - (Sj - Si) = (Rj - Sj) - (Ri - Si)
 * The interarrival jitter J is calculated continuously as each data packet i is received from
 * source SSRC_n, using this difference D for that packet and the previous packet i-1 in order of
 * arrival (not necessarily in sequence), according to the formula
 *     J(i) = J(i-1) + (|D(i-1,i)| - J(i-1))/16"
 */
const JITTER_GAIN = 1 / 16;

interface StreamState {
  readonly baseSeq: number;
  /** Highest sequence number seen, and the wraps before it (RFC 3550 A.1's cycles). */
  maxSeq: number;
  cycles: number;
  received: number;
  outOfOrder: number;
  /** Arrival (ms) and RTP timestamp of the previous audio packet. */
  last: { readonly arrivalMs: number; readonly timestamp: number } | undefined;
  jitter: number;
  maxJitter: number;
}

export interface RtpStreamSnapshot {
  readonly ssrc: number;
  readonly received: number;
  /** RFC 3550 A.3: extended highest sequence number − base + 1. */
  readonly expected: number;
  readonly lost: number;
  readonly outOfOrder: number;
  readonly jitterMs: number;
  readonly maxJitterMs: number;
}

export interface RtpReceiveTotals {
  readonly packets: number;
  readonly lost: number;
  readonly outOfOrder: number;
  /** Jitter of the stream that sent most recently, ms. */
  readonly jitterMs: number;
  /** Highest jitter any stream reached, ms. */
  readonly maxJitterMs: number;
  readonly streams: readonly RtpStreamSnapshot[];
}

export class RtpReceiveStats {
  readonly #streams = new Map<number, StreamState>();
  #lastSsrc: number | undefined;

  /**
   * Counts one packet. `jitterSample` is false for packets whose timestamp does not advance with
   * the media clock (RFC 4733 events carry their onset), which would read as jitter.
   */
  receive(packet: { readonly ssrc: number; readonly sequenceNumber: number; readonly timestamp: number }, arrivalMs: number, jitterSample: boolean): void {
    let s = this.#streams.get(packet.ssrc);
    if (!s) {
      s = { baseSeq: packet.sequenceNumber, maxSeq: packet.sequenceNumber, cycles: 0, received: 0, outOfOrder: 0, last: undefined, jitter: 0, maxJitter: 0 };
      this.#streams.set(packet.ssrc, s);
    } else {
      const delta = uint16Diff(packet.sequenceNumber, s.maxSeq);
      if (delta > 0) {
        if (packet.sequenceNumber < s.maxSeq) s.cycles += UINT16_MODULUS;
        s.maxSeq = packet.sequenceNumber;
      } else s.outOfOrder++;
    }
    s.received++;
    this.#lastSsrc = packet.ssrc;
    if (!jitterSample) return;
    if (s.last !== undefined) {
      const d = (arrivalMs - s.last.arrivalMs) * TIMESTAMP_UNITS_PER_MS - uint32Diff(packet.timestamp, s.last.timestamp);
      s.jitter += (Math.abs(d) - s.jitter) * JITTER_GAIN;
      s.maxJitter = Math.max(s.maxJitter, s.jitter);
    }
    s.last = { arrivalMs, timestamp: packet.timestamp };
  }

  stream(ssrc: number): RtpStreamSnapshot | undefined {
    const s = this.#streams.get(ssrc);
    return s ? snapshot(ssrc, s) : undefined;
  }

  totals(): RtpReceiveTotals {
    const streams = [...this.#streams].map(([ssrc, s]) => snapshot(ssrc, s));
    const last = this.#lastSsrc === undefined ? undefined : streams.find((s) => s.ssrc === this.#lastSsrc);
    return {
      packets: streams.reduce((n, s) => n + s.received, 0),
      lost: streams.reduce((n, s) => n + s.lost, 0),
      outOfOrder: streams.reduce((n, s) => n + s.outOfOrder, 0),
      jitterMs: last?.jitterMs ?? 0,
      maxJitterMs: streams.reduce((m, s) => Math.max(m, s.maxJitterMs), 0),
      streams,
    };
  }
}

function snapshot(ssrc: number, s: StreamState): RtpStreamSnapshot {
  const expected = s.cycles + s.maxSeq - s.baseSeq + 1;
  return {
    ssrc,
    received: s.received,
    expected,
    // duplicates can make received exceed expected; RFC 3550 A.3 clamps the reported loss too
    lost: Math.max(0, expected - s.received),
    outOfOrder: s.outOfOrder,
    jitterMs: s.jitter / TIMESTAMP_UNITS_PER_MS,
    maxJitterMs: s.maxJitter / TIMESTAMP_UNITS_PER_MS,
  };
}

/**
 * A histogram of send-time deviations (actual − due, ms) at 0.1 ms resolution, so a call of
 * hours costs a fixed few kilobytes. Deviations outside [−MIN, +MAX) land in the end bins.
 */
export class DeviationHistogram {
  static readonly BIN_MS = 0.1;
  static readonly MIN_MS = -5;
  static readonly MAX_MS = 500;
  readonly #bins = new Uint32Array(Math.round((DeviationHistogram.MAX_MS - DeviationHistogram.MIN_MS) / DeviationHistogram.BIN_MS));
  #count = 0;
  #max = -Infinity;

  add(deviationMs: number): void {
    const bin = Math.floor((deviationMs - DeviationHistogram.MIN_MS) / DeviationHistogram.BIN_MS);
    this.#bins[Math.min(this.#bins.length - 1, Math.max(0, bin))]!++;
    this.#count++;
    this.#max = Math.max(this.#max, deviationMs);
  }

  get count(): number {
    return this.#count;
  }

  get maxMs(): number {
    return this.#count === 0 ? 0 : this.#max;
  }

  /** The deviation below which `fraction` of the samples fall (upper edge of its bin), ms. */
  quantile(fraction: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.ceil(fraction * this.#count);
    let seen = 0;
    for (let i = 0; i < this.#bins.length; i++) {
      seen += this.#bins[i]!;
      if (seen >= rank) return Math.min(this.#max, DeviationHistogram.MIN_MS + (i + 1) * DeviationHistogram.BIN_MS);
    }
    return this.#max;
  }
}
