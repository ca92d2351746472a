/**
 * Time, injected. Everything that waits (SIP timers, no-RTP timeouts, flows) takes a Clock, so
 * tests run a 64×T1 timeout in microseconds, deterministically, with `FakeClock.advance`.
 * The shape matches xstate v5's clock (`setTimeout` / `clearTimeout`), so one clock serves the
 * statecharts too.
 */

export type TimerHandle = { readonly __timer: unique symbol } | number | object;

export interface Clock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Milliseconds since the Unix epoch: calendar time (card expiry, result timestamps). */
  wallMs(): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallMs: () => Date.now(),
  setTimeout: (callback, ms) => {
    const handle = setTimeout(callback, ms);
    handle.unref?.();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface FakeTimer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
}

/** A clock that moves only when told to. Timers due at the same time fire in creation order. */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, FakeTimer>();

  readonly #epochAtZero: number;

  /** `wallStart`: the calendar time (ms since the epoch) at `start`; default 2026-11-21T00:00Z. */
  constructor(start = 0, wallStart = Date.UTC(2026, 10, 21)) {
    this.#now = start;
    this.#epochAtZero = wallStart - start;
  }

  now(): number {
    return this.#now;
  }

  wallMs(): number {
    return this.#epochAtZero + this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    if (typeof handle === 'number') this.#timers.delete(handle);
  }

  /** Pending timers (a leak check for tests). */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.#timers.values()) if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
      if (!next) break;
      this.#timers.delete(next.id);
      this.#now = next.at;
      next.callback();
    }
    this.#now = target;
  }
}
