/**
 * The card-testing guard: someone with a list of stolen numbers calls in and keys card after
 * card to learn which work. Per tenant, a limit on failed cards per call and per caller number
 * per hour; past either, a new payment is refused, and the agent is told why.
 *
 * A failed card is one the gateway declined, or one the caller could not key valid within its
 * attempts. Counts live in memory on the injected clock (an hour is a sliding window); they
 * hold call ids and caller numbers, never card data.
 */

import type { Clock } from '../clock.ts';

export interface CardTestingLimits {
  /** Failed cards one call may have before it is refused a new payment. */
  readonly perCall: number;
  /** Failed cards one caller number may have in any hour. */
  readonly perCallerPerHour: number;
}

export const DEFAULT_CARD_TESTING_LIMITS: CardTestingLimits = { perCall: 3, perCallerPerHour: 5 };

const HOUR_MS = 3_600_000;

export type GuardVerdict = { readonly allowed: true } | { readonly allowed: false; readonly reason: 'card-testing-limit-call' | 'card-testing-limit-caller'; readonly failures: number };

export class CardTestingGuard {
  readonly #clock: Clock;
  readonly #byCall = new Map<string, number>();
  readonly #byCaller = new Map<string, number[]>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Whether a new payment may start on this call, for this caller, under these limits. */
  check(tenantId: string, callId: string, callerNumber: string | undefined, limits: CardTestingLimits): GuardVerdict {
    const onCall = this.#byCall.get(`${tenantId}|${callId}`) ?? 0;
    if (onCall >= limits.perCall) return { allowed: false, reason: 'card-testing-limit-call', failures: onCall };
    if (callerNumber) {
      const recent = this.#recent(`${tenantId}|${callerNumber}`);
      if (recent >= limits.perCallerPerHour) return { allowed: false, reason: 'card-testing-limit-caller', failures: recent };
    }
    return { allowed: true };
  }

  /** Counts one failed card. */
  recordFailure(tenantId: string, callId: string, callerNumber: string | undefined): void {
    const callKey = `${tenantId}|${callId}`;
    this.#byCall.set(callKey, (this.#byCall.get(callKey) ?? 0) + 1);
    if (callerNumber) {
      const key = `${tenantId}|${callerNumber}`;
      this.#recent(key);
      const times = this.#byCaller.get(key) ?? [];
      times.push(this.#clock.now());
      this.#byCaller.set(key, times);
    }
  }

  /** Forgets a call once it has ended (its caller's hour stays). */
  callEnded(tenantId: string, callId: string): void {
    this.#byCall.delete(`${tenantId}|${callId}`);
  }

  /** Failures of a caller in the last hour, pruning older ones. */
  #recent(key: string): number {
    const times = this.#byCaller.get(key);
    if (!times) return 0;
    const since = this.#clock.now() - HOUR_MS;
    while (times.length > 0 && times[0]! <= since) times.shift();
    if (times.length === 0) this.#byCaller.delete(key);
    return times.length;
  }
}
