/**
 * Outbound webhooks: delivers the messages of a durable outbox to each tenant's endpoint, signed
 * the Standard Webhooks way (./signature.ts), retrying on the schedule below, and records every
 * attempt back into the outbox. The outbox (src/store/webhooks.ts) is the only state that
 * matters: the dispatcher keeps nothing across a restart but which messages it has in flight.
 *
 * Standard Webhooks, "Delivery success and failure" (spec/standard-webhooks.md):
 *   "A webhook delivery is considered successful if it was responded to with a `2xx` status code
 *    (status codes 200-299), and it is considered a failure in any other scenario."
 *   "`3xx`: Failure. Following redirects causes unnecessary load on both the sender and the
 *    receiver" — so `redirect: 'manual'`, and a 3xx is retried like any failure.
 *   "`410 Gone`: … Sender should disable the webhook endpoint, and stop sending it messages."
 *    — the message is `failed` at once, not retried. The endpoint is configuration, which this
 *    class cannot change: later messages to it each get one attempt and fail the same way.
 *   "some responses may also include a `Retry-After` header (e.g. `503 Service Unavailable`),
 *    which should be taken into consideration when scheduling the next attempt" — a Retry-After
 *    later than the schedule's next slot moves the next attempt out to it (capped at the longest
 *    delay of the schedule); an earlier one does not bring it forward.
 *   "It's recommended to also add some level of random jitter to retries"
 *    FIXME: no jitter; the schedule is exact (and so testable with a FakeClock).
 *
 * Delivery is at least once: a message whose attempt is cut short by `close()` has no attempt
 * recorded, stays due, and is sent again (same `webhook-id`) by the next dispatcher. Within one
 * dispatcher a message is never in flight twice; two dispatchers on one outbox could both send it.
 */

import { readFileSync } from 'node:fs';
import type { Clock, TimerHandle } from '../clock.ts';
import type { Logger } from '../log.ts';
import { WebhookSecretError } from './errors.ts';
import { webhookHeaders } from './signature.ts';

// ---------------------------------------------------------------------------------------------
// The outbox seam (implemented by src/store/webhooks.ts)
// ---------------------------------------------------------------------------------------------

export interface OutboxMessage {
  readonly id: string;
  readonly tenantId: string;
  readonly type: string;
  readonly body: string;
  readonly attempts: number;
  readonly createdAt: string;
  /**
   * POST here instead of the tenant's endpoint URL (a payment's status callback); signed with
   * the tenant's secrets all the same, so a tenant without webhook secrets gets none of these.
   */
  readonly url?: string | null;
}

export interface AttemptRecord {
  /** Wall-clock ms when the attempt started. */
  readonly atMs: number;
  /** HTTP status, null when no response. */
  readonly statusCode: number | null;
  readonly durationMs: number;
  /** Short reason: 'timeout', 'ECONNREFUSED', 'HTTP 500', 'no endpoint'. */
  readonly error: string | null;
  readonly outcome: 'delivered' | 'retry' | 'failed';
  /** Wall ms of the next try when outcome is 'retry', else null. */
  readonly nextAttemptAtMs: number | null;
}

export interface WebhookOutbox {
  /** Pending rows with next_attempt_at_ms <= now, oldest first. */
  due(nowWallMs: number, limit: number): OutboxMessage[];
  /** One transaction: a webhook_deliveries row (attempt = attempts + 1), attempts bumped, status moved on. */
  recordAttempt(id: string, attempt: AttemptRecord): void;
}

export type AttemptOutcome = AttemptRecord['outcome'];

/** Where a tenant's webhooks go, and the `whsec_` secrets to sign with (current first; old ones during a rotation). */
export interface WebhookEndpoint {
  readonly url: string;
  readonly secrets: readonly string[];
}

export interface WebhookDispatcherOptions {
  readonly outbox: WebhookOutbox;
  /** The tenant's endpoint, asked on every attempt (so a reloaded configuration applies at once); undefined when it has none. */
  readonly endpoint: (tenantId: string) => WebhookEndpoint | undefined;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly fetch?: typeof fetch;
  /** Per request, from sending to the response's status line. Default 10 s. */
  readonly timeoutMs?: number;
  /** How often the outbox is asked for due messages. Default 1 s. */
  readonly pollMs?: number;
  /** Requests in flight at once, across tenants. Default 4. */
  readonly concurrency?: number;
  /** Called once per recorded attempt (metrics); a throw here is logged and ignored. */
  readonly onAttempt?: (outcome: AttemptOutcome, tenantId: string) => void;
}

/**
 * Delay before the next attempt after attempt n fails (index n − 1): Standard Webhooks' example
 * schedule (Svix's), cut after the second 10 h — 8 attempts over about 27.6 h. After the last,
 * the message is `failed`.
 */
export const RETRY_DELAYS_MS: readonly number[] = [5_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000, 5 * 3_600_000, 10 * 3_600_000, 10 * 3_600_000];

/** Attempts a message gets in all: the first, then one per retry delay. */
export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length + 1;

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_POLL_MS = 1_000;
export const DEFAULT_CONCURRENCY = 4;

function packageVersion(): string {
  const parsed: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const version = typeof parsed === 'object' && parsed !== null && 'version' in parsed ? parsed.version : undefined;
  return typeof version === 'string' ? version : '0.0.0';
}

export const USER_AGENT = `hushpay-webhooks/${packageVersion()}`;

/** Why a request was aborted: by its own timer, or by `close()`. */
const TIMEOUT = Symbol('timeout');
const CLOSED = Symbol('closed');

interface InFlight {
  readonly controller: AbortController;
  readonly done: Promise<void>;
}

/** `Retry-After` (delay-seconds or an HTTP-date) as ms from `nowWallMs`; undefined if absent or unreadable. */
export function retryAfterMs(value: string | null, nowWallMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^[0-9]{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowWallMs);
}

/** A short reason for a request that got no response: a system error code, never error text. */
function networkReason(error: unknown): string {
  let e: unknown = error;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    if ('code' in e && typeof e.code === 'string' && /^[A-Z][A-Z0-9_]{1,40}$/.test(e.code)) return e.code;
    e = 'cause' in e ? e.cause : undefined;
  }
  return 'network error';
}

export class WebhookDispatcher {
  readonly #outbox: WebhookOutbox;
  readonly #endpoint: (tenantId: string) => WebhookEndpoint | undefined;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #pollMs: number;
  readonly #concurrency: number;
  readonly #onAttempt: ((outcome: AttemptOutcome, tenantId: string) => void) | undefined;

  readonly #inFlight = new Map<string, InFlight>();
  #pollTimer: TimerHandle | undefined;
  #started = false;
  #closed: Promise<void> | undefined;

  constructor(options: WebhookDispatcherOptions) {
    this.#outbox = options.outbox;
    this.#endpoint = options.endpoint;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    this.#concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.#onAttempt = options.onAttempt;
    for (const [name, value] of [['timeoutMs', this.#timeoutMs], ['pollMs', this.#pollMs], ['concurrency', this.#concurrency]] as const) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
    }
  }

  /** Messages being delivered now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Delivers what is due now, then polls the outbox every `pollMs` until `close()`. */
  start(): void {
    if (this.#closed || this.#started) return;
    this.#started = true;
    this.#poll();
  }

  /** Delivers what is due now (e.g. right after an enqueue), without waiting for the next poll. */
  kick(): void {
    if (this.#closed) return;
    this.#fill();
  }

  /** Resolves when nothing is in flight (including deliveries that finishing ones start). */
  async whenIdle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight.values()].map((f) => f.done));
  }

  /**
   * Stops polling, aborts the requests in flight (their attempts are not recorded: the messages
   * stay due for the next dispatcher), and resolves when they have settled. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed) return this.#closed;
    if (this.#pollTimer !== undefined) this.#clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    for (const f of this.#inFlight.values()) f.controller.abort(CLOSED);
    this.#closed = this.whenIdle();
    return this.#closed;
  }

  #poll(): void {
    this.#pollTimer = undefined;
    if (this.#closed) return;
    this.#fill();
    this.#pollTimer = this.#clock.setTimeout(() => this.#poll(), this.#pollMs);
  }

  /** Starts deliveries of due messages while there are free slots. Never throws. */
  #fill(): void {
    const free = this.#concurrency - this.#inFlight.size;
    if (free <= 0) return;
    let due: OutboxMessage[];
    try {
      // Ask for enough to fill the free slots even if every message in flight is among the due.
      due = this.#outbox.due(this.#clock.wallMs(), free + this.#inFlight.size);
    } catch (error) {
      this.#logger.error({ err: error }, 'webhook outbox: reading due messages failed');
      return;
    }
    let started = 0;
    for (const message of due) {
      if (started >= free) break;
      if (this.#inFlight.has(message.id)) continue;
      const controller = new AbortController();
      const done = this.#deliver(message, controller)
        .catch((error: unknown) => {
          this.#logger.error({ msgId: message.id, tenantId: message.tenantId, err: error }, 'webhook delivery threw');
          return false;
        })
        .then((recorded) => {
          this.#inFlight.delete(message.id);
          // A slot came free: pull the backlog now rather than at the next poll. Not after an
          // attempt that went unrecorded: the message is still due, and would be sent again at
          // once, in a loop, for as long as the outbox cannot record.
          if (recorded && !this.#closed) this.#fill();
        });
      this.#inFlight.set(message.id, { controller, done });
      started++;
    }
  }

  /** One attempt; true when it was recorded in the outbox. */
  async #deliver(message: OutboxMessage, controller: AbortController): Promise<boolean> {
    const attempt = message.attempts + 1;
    const base = { msgId: message.id, tenantId: message.tenantId, type: message.type, attempt };
    const atMs = this.#clock.wallMs();
    const startedMono = this.#clock.now();

    // a message addressed to one URL (a payment's status callback) is signed with the tenant's secrets
    const tenantEndpoint = this.#endpoint(message.tenantId);
    const endpoint = tenantEndpoint && message.url ? { url: message.url, secrets: tenantEndpoint.secrets } : tenantEndpoint;
    if (!endpoint) {
      return this.#record(message, base, { atMs, statusCode: null, durationMs: 0, error: 'no endpoint', outcome: 'failed', nextAttemptAtMs: null });
    }

    let headers: Record<string, string>;
    try {
      headers = { 'content-type': 'application/json', 'user-agent': USER_AGENT, ...webhookHeaders(message.id, atMs, message.body, endpoint.secrets) };
    } catch (error) {
      // A configuration mistake (a secret not whsec_…, or none) or an outbox id unfit for the
      // header: no attempt can succeed as things are, so the message fails now.
      const reason = error instanceof WebhookSecretError ? 'bad secret' : 'bad message id';
      return this.#record(message, base, { atMs, statusCode: null, durationMs: 0, error: reason, outcome: 'failed', nextAttemptAtMs: null });
    }

    const timer = this.#clock.setTimeout(() => controller.abort(TIMEOUT), this.#timeoutMs);
    let statusCode: number | null = null;
    let retryAfter: string | null = null;
    let reason: string | null;
    try {
      const response = await this.#fetch(endpoint.url, { method: 'POST', headers, body: message.body, redirect: 'manual', signal: controller.signal });
      statusCode = response.status;
      retryAfter = response.headers.get('retry-after');
      // The answer's body is not read: drop it so the connection can be released.
      await response.body?.cancel().catch(() => undefined);
      reason = statusCode >= 200 && statusCode <= 299 ? null : `HTTP ${statusCode}`;
    } catch (error) {
      if (controller.signal.reason === CLOSED) {
        this.#logger.info({ ...base }, 'webhook attempt cut short by close; the message stays due');
        return false;
      }
      reason = controller.signal.reason === TIMEOUT ? 'timeout' : networkReason(error);
    } finally {
      this.#clock.clearTimeout(timer);
    }

    const durationMs = Math.max(0, Math.round(this.#clock.now() - startedMono));
    const record = { atMs, statusCode, durationMs, error: reason };
    if (reason === null) return this.#record(message, base, { ...record, outcome: 'delivered', nextAttemptAtMs: null });
    if (statusCode === 410 || attempt >= MAX_ATTEMPTS) return this.#record(message, base, { ...record, outcome: 'failed', nextAttemptAtMs: null });
    const maxDelayMs = Math.max(...RETRY_DELAYS_MS);
    const scheduledMs = RETRY_DELAYS_MS[attempt - 1] ?? maxDelayMs;
    const askedMs = retryAfterMs(retryAfter, this.#clock.wallMs());
    const delayMs = askedMs === undefined ? scheduledMs : Math.min(maxDelayMs, Math.max(scheduledMs, askedMs));
    return this.#record(message, base, { ...record, outcome: 'retry', nextAttemptAtMs: this.#clock.wallMs() + delayMs });
  }

  #record(message: OutboxMessage, base: { msgId: string; tenantId: string; type: string; attempt: number }, record: AttemptRecord): boolean {
    try {
      this.#outbox.recordAttempt(message.id, record);
    } catch (error) {
      // The message stays due with its old attempt count: it is tried again at the next poll.
      this.#logger.error({ ...base, err: error }, 'webhook outbox: recording an attempt failed');
      return false;
    }
    const fields = { ...base, status: record.statusCode, outcome: record.outcome, error: record.error, durationMs: record.durationMs, nextAttemptAtMs: record.nextAttemptAtMs };
    if (record.outcome === 'delivered') this.#logger.info(fields, 'webhook delivered');
    else if (record.outcome === 'retry') this.#logger.warn(fields, 'webhook attempt failed; will retry');
    else this.#logger.error(fields, 'webhook failed; no more attempts');
    try {
      this.#onAttempt?.(record.outcome, message.tenantId);
    } catch (error) {
      this.#logger.error({ err: error }, 'webhook onAttempt listener threw');
    }
    return true;
  }
}
