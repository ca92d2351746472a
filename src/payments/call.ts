/**
 * What every gateway adapter does around a request: a deadline on the injected clock (the
 * caller's signal and the call's timeout in one AbortSignal), the times a request was sent and
 * answered, and the one retry rule — again only when the request cannot have reached the
 * gateway (a refused connection), or when the gateway honours the idempotency key.
 */

import type { Clock, TimerHandle } from '../clock.ts';
import { type CallOptions, DEFAULT_GATEWAY_TIMEOUT_MS } from './gateway.ts';

export interface Deadline {
  readonly signal: AbortSignal;
  /** Whether the deadline (not the caller's signal) ended the call. */
  timedOut(): boolean;
  /** Clears the timer; call once the request has settled. */
  dispose(): void;
}

/** The call's deadline, on the injected clock so tests can run a 30 s timeout in no time. */
export function deadline(clock: Clock, options: CallOptions): Deadline {
  const controller = new AbortController();
  let expired = false;
  let timer: TimerHandle | undefined = clock.setTimeout(() => {
    expired = true;
    timer = undefined;
    controller.abort(new GatewayTimeout());
  }, options.timeoutMs ?? DEFAULT_GATEWAY_TIMEOUT_MS);
  const onAbort = (): void => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) controller.abort(options.signal.reason);
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    timedOut: () => expired,
    dispose: () => {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      options.signal?.removeEventListener('abort', onAbort);
    },
  };
}

/** The reason an aborted request carries when the deadline passed. */
export class GatewayTimeout extends Error {
  constructor() {
    super('gateway call timed out');
    this.name = 'GatewayTimeout';
  }
}

/** A connection the gateway refused or never accepted: the request cannot have arrived. */
export function neverArrived(error: unknown): boolean {
  const code = (error as { cause?: { code?: string }; code?: string })?.cause?.code ?? (error as { code?: string })?.code;
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
}

/** ISO 8601 from the injected clock's calendar time. */
export function isoNow(clock: Clock): string {
  return new Date(clock.wallMs()).toISOString();
}

/** Waits `ms` on the injected clock, or until `signal` aborts. */
export function pause(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
