/**
 * The no-RTP watch: tells its owner when a leg has received nothing for `timeoutMs`. It reads no
 * time per packet — the media path only counts — and looks at the count every quarter of the
 * timeout: four quiet quarters in a row mean at least `timeoutMs` of silence, and it says so
 * after between 1 and 1¼ times the timeout. One named timer, on the injected clock, owned here.
 */

import type { Clock, TimerHandle } from '../clock.ts';

const CHECKS = 4;

export class NoRtpWatch {
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #count: () => number;
  readonly #onSilent: () => void;
  #checkTimer: TimerHandle | undefined;
  #seen = 0;
  #quiet = 0;

  constructor(options: { clock: Clock; timeoutMs: number; count: () => number; onSilent: () => void }) {
    this.#clock = options.clock;
    this.#timeoutMs = options.timeoutMs;
    this.#count = options.count;
    this.#onSilent = options.onSilent;
  }

  /** (Re)starts the watch from now: silence before this call does not count. */
  start(): void {
    this.stop();
    this.#seen = this.#count();
    this.#quiet = 0;
    this.#schedule();
  }

  stop(): void {
    if (this.#checkTimer !== undefined) this.#clock.clearTimeout(this.#checkTimer);
    this.#checkTimer = undefined;
  }

  #schedule(): void {
    this.#checkTimer = this.#clock.setTimeout(() => this.#check(), this.#timeoutMs / CHECKS);
  }

  #check(): void {
    this.#checkTimer = undefined;
    const now = this.#count();
    this.#quiet = now === this.#seen ? this.#quiet + 1 : 0;
    this.#seen = now;
    if (this.#quiet >= CHECKS) this.#onSilent();
    else this.#schedule();
  }
}
