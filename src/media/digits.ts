/**
 * One ordered stream of the caller's key presses from all three channels a phone may use:
 * in-band tones (named by the DTMF engine), RFC 4733 telephone-events and SIP INFO.
 *
 * Some phones send a key two ways at once (an event and the tone in the audio, or an INFO and
 * the tone). That is one key press, so a report that overlaps in time a press already
 * reported by another channel, with the same digit, is absorbed into it — each press absorbs
 * at most one report per other channel, so two quick presses of the same key stay two.
 *
 * Digit values are card data during a capture: the stream is internal, and nothing here logs
 * or serialises a digit.
 */

import type { DtmfDigit } from './dtmf/frequencies.ts';

export type DigitSource = 'inband' | 'rfc4733' | 'sipinfo';

/** A key press, internal only. Times are ms on the call's media clock. */
export interface DigitEvent {
  readonly digit: DtmfDigit;
  readonly source: DigitSource;
  readonly startMs: number;
  readonly endMs: number;
}

/** How far apart two channels' reports of one press may be, ms, beyond overlapping. */
const MATCH_SLACK_MS: Readonly<Record<DigitSource, number>> = {
  inband: 20,
  rfc4733: 20,
  // an INFO carries its arrival time, not the tone's: allow for signalling delay
  sipinfo: 150,
};

/** Reported presses kept for matching, ms of media time. */
const MEMORY_MS = 2000;

interface Reported {
  readonly event: DigitEvent;
  /** Channels whose report has already been absorbed into this press. */
  readonly absorbed: Set<DigitSource>;
}

export interface DigitStreamCounts {
  readonly inband: number;
  readonly rfc4733: number;
  readonly sipinfo: number;
  /** Reports absorbed as duplicates of a press another channel reported. */
  readonly duplicates: number;
}

export class DigitStream {
  readonly #onDigit: (event: DigitEvent) => void;
  readonly #recent: Reported[] = [];
  readonly #counts = { inband: 0, rfc4733: 0, sipinfo: 0, duplicates: 0 };

  constructor(onDigit: (event: DigitEvent) => void) {
    this.#onDigit = onDigit;
  }

  /** Counts per channel (values never), for metrics. */
  get counts(): DigitStreamCounts {
    return { ...this.#counts };
  }

  inband(digit: DtmfDigit, startMs: number, endMs: number): void {
    this.#report({ digit, source: 'inband', startMs, endMs });
  }

  rfc4733(digit: DtmfDigit, startMs: number, endMs: number): void {
    this.#report({ digit, source: 'rfc4733', startMs, endMs });
  }

  /** The hook for SIP INFO digits (application/dtmf-relay, application/dtmf). */
  sipInfo(digit: DtmfDigit, startMs: number, durationMs: number): void {
    this.#report({ digit, source: 'sipinfo', startMs, endMs: startMs + durationMs });
  }

  #report(event: DigitEvent): void {
    const horizon = event.startMs - MEMORY_MS;
    while (this.#recent.length > 0 && this.#recent[0]!.event.endMs < horizon) this.#recent.shift();
    const slack = Math.max(MATCH_SLACK_MS[event.source], 0);
    for (const earlier of this.#recent) {
      const e = earlier.event;
      if (e.source === event.source || e.digit !== event.digit || earlier.absorbed.has(event.source)) continue;
      const pairSlack = Math.max(slack, MATCH_SLACK_MS[e.source]);
      if (event.startMs <= e.endMs + pairSlack && e.startMs <= event.endMs + pairSlack) {
        earlier.absorbed.add(event.source);
        this.#counts.duplicates++;
        return;
      }
    }
    this.#recent.push({ event, absorbed: new Set() });
    this.#counts[event.source]++;
    this.#onDigit(event);
  }
}
