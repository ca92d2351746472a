/**
 * Real-time pacing on a monotonic schedule: tick n is due at start + n·interval, computed from
 * the start every time, so timer lateness never accumulates (a chain of setTimeout(20) drifts
 * by each timer's lateness, about a millisecond a packet). Each wake-up sends every tick that
 * is due; if the process stalls for longer than MAX_CATCH_UP_MS the missed ticks are skipped
 * (a phone's sound card does not queue seconds of audio either) and counted.
 *
 * The one timer is a field, cleared by stop() (STYLE.md practice 3); time comes from the
 * injected Clock, so tests drive it with FakeClock.
 */

import type { Clock, TimerHandle } from '../src/clock.ts';
import type { PacingStats } from './records.ts';
import { DeviationHistogram } from './rtp-stats.ts';

/** A tick due within this much of now is sent now (timers fire on whole milliseconds). */
export const EARLY_TOLERANCE_MS = 0.5;
/** Further behind than this, missed ticks are skipped instead of sent in a burst. */
export const MAX_CATCH_UP_MS = 200;

export class Pacer {
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #onTick: (tick: number) => void;
  readonly #deviations = new DeviationHistogram();
  #startMs = 0;
  #next = 0;
  #skipped = 0;
  #timer: TimerHandle | undefined;
  #running = false;

  constructor(clock: Clock, intervalMs: number, onTick: (tick: number) => void) {
    this.#clock = clock;
    this.#intervalMs = intervalMs;
    this.#onTick = onTick;
  }

  /** Starts ticking: tick 0 at once. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#startMs = this.#clock.now();
    this.#run();
  }

  /** Stops for good; idempotent. */
  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Ticks sent so far. */
  get ticks(): number {
    return this.#deviations.count;
  }

  stats(): PacingStats {
    const h = this.#deviations;
    return { ticks: h.count, p50Ms: round2(h.quantile(0.5)), p99Ms: round2(h.quantile(0.99)), maxMs: round2(h.maxMs), skipped: this.#skipped };
  }

  #run = (): void => {
    this.#timer = undefined;
    while (this.#running) {
      const now = this.#clock.now();
      const due = this.#startMs + this.#next * this.#intervalMs;
      if (due > now + EARLY_TOLERANCE_MS) {
        this.#timer = this.#clock.setTimeout(this.#run, due - now);
        return;
      }
      if (now - due > MAX_CATCH_UP_MS) {
        const behind = Math.floor((now - this.#startMs) / this.#intervalMs);
        this.#skipped += behind - this.#next;
        this.#next = behind;
        continue;
      }
      this.#deviations.add(now - due);
      this.#onTick(this.#next++);
    }
  };
}

function round2(ms: number): number {
  return Math.round(ms * 100) / 100;
}
