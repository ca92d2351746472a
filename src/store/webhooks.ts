/**
 * The webhook outbox and its delivery log.
 *
 * - `enqueue` keeps a message with the exact bytes to POST, in the Standard Webhooks payload
 *   shape `{"type": …, "timestamp": …, "data": …}`, due at once. The same bytes go on every
 *   attempt, so a receiver can de-duplicate on the `webhook-id` (the message id) and the
 *   signature stays the same body's.
 * - The dispatcher (src/webhooks/dispatcher.ts) takes `due` messages, POSTs them, and records
 *   each attempt with `recordAttempt`: one transaction writes the delivery log row and moves the
 *   message on — `retry` (pending, due again at `nextAttemptAtMs`), `delivered` or `failed`
 *   (settled, never due again).
 * - Times that decide when a message is due are calendar ms (wall clock), so a message keeps
 *   its turn across a restart.
 *
 * Card data: `data` passes through json.ts (card-data and credential field names refused); the
 * events it carries are hushpay's masked ones.
 */

import type { DatabaseSync } from 'node:sqlite';
import type { Clock } from '../clock.ts';
import { StoreConflictError, StoreInputError, StoreNotFoundError } from './errors.ts';
import { toJsonObject } from './json.ts';
import { type Row, checkLimit, int, intOrNull, isoFromMs, randomId, text, textOrNull, transaction } from './sql.ts';
import type { AttemptRecord, OutboxMessage, WebhookOutbox } from '../webhooks/dispatcher.ts';

// the outbox the dispatcher depends on is its seam, defined beside it (src/webhooks/dispatcher.ts)
export type { AttemptRecord, OutboxMessage, WebhookOutbox };

export const WEBHOOK_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type WebhookStatus = (typeof WEBHOOK_STATUSES)[number];
export type AttemptOutcome = AttemptRecord['outcome'];
const OUTCOMES: readonly AttemptOutcome[] = ['delivered', 'retry', 'failed'];

export const WEBHOOK_DUE_MAX_LIMIT = 1_000;
export const WEBHOOK_DELIVERIES_DEFAULT_LIMIT = 100;
export const WEBHOOK_DELIVERIES_MAX_LIMIT = 10_000;
/** A delivery's `error` is cut to this many characters: a reason, not a response body. */
export const WEBHOOK_ERROR_MAX_CHARS = 200;
const TYPE_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/;

export interface NewWebhookMessage {
  readonly tenantId: string;
  /** The event type, e.g. `payment.completed`. */
  readonly type: string;
  /** The event's data: the `data` of the body. */
  readonly payload: object;
  /** Send to this URL (a payment's status callback) instead of the tenant's endpoint. */
  readonly url?: string;
}

export interface OutboxRecord extends OutboxMessage {
  readonly status: WebhookStatus;
  /** Wall ms the message is next due; null once settled. */
  readonly nextAttemptAtMs: number | null;
  /** ISO 8601; null while pending. */
  readonly settledAt: string | null;
}

export interface DeliveryRecord {
  readonly outboxId: string;
  readonly tenantId: string;
  readonly type: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** ISO 8601: when the attempt started. */
  readonly at: string;
  readonly statusCode: number | null;
  readonly durationMs: number;
  readonly error: string | null;
  /** What the attempt led to: every attempt but a message's last was a retry. */
  readonly outcome: AttemptOutcome;
}

export interface DeliveryQuery {
  readonly tenantId?: string;
  readonly outboxId?: string;
  /** Default 100, at most 10,000. */
  readonly limit?: number;
}

export interface WebhookCounts {
  readonly pending: number;
  readonly delivered: number;
  readonly failed: number;
}

const MESSAGE_COLUMNS = 'id, tenant_id, type, body, status, attempts, next_attempt_at_ms, created_at, settled_at, url';

function toRecord(row: Row): OutboxRecord {
  return {
    id: text(row, 'id'),
    tenantId: text(row, 'tenant_id'),
    type: text(row, 'type'),
    body: text(row, 'body'),
    attempts: int(row, 'attempts'),
    createdAt: text(row, 'created_at'),
    status: text(row, 'status') as WebhookStatus,
    nextAttemptAtMs: intOrNull(row, 'next_attempt_at_ms'),
    settledAt: textOrNull(row, 'settled_at'),
    url: textOrNull(row, 'url'),
  };
}

function toMessage(row: Row): OutboxMessage {
  return { id: text(row, 'id'), tenantId: text(row, 'tenant_id'), type: text(row, 'type'), body: text(row, 'body'), attempts: int(row, 'attempts'), createdAt: text(row, 'created_at'), url: textOrNull(row, 'url') };
}

/** An http(s) URL with a host, at most 2,048 characters (what a status callback may be). */
export function checkCallbackUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StoreInputError('url', 'must be an http:// or https:// URL');
  }
  if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.host === '' || url.length > 2048) throw new StoreInputError('url', 'must be an http:// or https:// URL of at most 2048 characters');
  return url;
}

function wholeMs(field: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new StoreInputError(field, 'must be a non-negative number of ms');
  return Math.round(value);
}

export class WebhookOutboxRepository implements WebhookOutbox {
  readonly #db: DatabaseSync;
  readonly #clock: Clock;

  constructor(db: DatabaseSync, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
  }

  /** Keeps a message to POST, due now; returns its id (the `webhook-id`) and the exact body. */
  enqueue(message: NewWebhookMessage): { id: string; body: string } {
    if (message.tenantId.length === 0) throw new StoreInputError('tenantId', 'must not be empty');
    if (!TYPE_PATTERN.test(message.type)) throw new StoreInputError('type', 'must be a lower-case event type such as payment.completed');
    const data = toJsonObject('payload', message.payload);
    const nowMs = this.#clock.wallMs();
    const now = isoFromMs(nowMs);
    const body = JSON.stringify({ type: message.type, timestamp: now, data });
    const id = randomId('msg_');
    this.#db
      .prepare("INSERT INTO webhook_outbox (id, tenant_id, type, body, status, attempts, next_attempt_at_ms, created_at, url) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)")
      .run(id, message.tenantId, message.type, body, nowMs, now, message.url === undefined ? null : checkCallbackUrl(message.url));
    return { id, body };
  }

  due(nowWallMs: number, limit: number): OutboxMessage[] {
    if (!Number.isFinite(nowWallMs)) throw new StoreInputError('nowWallMs', 'must be a number of ms');
    const max = checkLimit('limit', limit, limit, WEBHOOK_DUE_MAX_LIMIT);
    return this.#db
      .prepare(
        `SELECT ${MESSAGE_COLUMNS} FROM webhook_outbox
         WHERE status = 'pending' AND next_attempt_at_ms <= ?
         ORDER BY created_at, rowid LIMIT ?`,
      )
      .all(Math.floor(nowWallMs), max)
      .map(toMessage);
  }

  recordAttempt(id: string, attempt: AttemptRecord): void {
    if (!OUTCOMES.includes(attempt.outcome)) throw new StoreInputError('outcome', `must be one of ${OUTCOMES.join(', ')}`);
    const atMs = wholeMs('atMs', attempt.atMs);
    const durationMs = wholeMs('durationMs', attempt.durationMs);
    if (attempt.statusCode !== null && (!Number.isInteger(attempt.statusCode) || attempt.statusCode < 100 || attempt.statusCode > 999)) {
      throw new StoreInputError('statusCode', 'must be an HTTP status (100 to 999) or null');
    }
    let nextAttemptAtMs: number | null = null;
    if (attempt.outcome === 'retry') {
      if (attempt.nextAttemptAtMs === null) throw new StoreInputError('nextAttemptAtMs', "is needed when the outcome is 'retry'");
      nextAttemptAtMs = wholeMs('nextAttemptAtMs', attempt.nextAttemptAtMs);
    }
    const error = attempt.error === null ? null : attempt.error.slice(0, WEBHOOK_ERROR_MAX_CHARS);
    transaction(this.#db, () => {
      const row = this.#db.prepare('SELECT status, attempts FROM webhook_outbox WHERE id = ?').get(id) as Row | undefined;
      if (!row) throw new StoreNotFoundError(`webhookMessage:${id}`);
      const status = text(row, 'status');
      if (status !== 'pending') throw new StoreConflictError('status', `webhook message ${id} is already ${status}`);
      const number = int(row, 'attempts') + 1;
      this.#db
        .prepare('INSERT INTO webhook_deliveries (outbox_id, attempt, at, status_code, duration_ms, error) VALUES (?, ?, ?, ?, ?, ?)')
        .run(id, number, isoFromMs(atMs), attempt.statusCode, durationMs, error);
      const settled = attempt.outcome === 'retry' ? null : isoFromMs(this.#clock.wallMs());
      const newStatus: WebhookStatus = attempt.outcome === 'retry' ? 'pending' : attempt.outcome;
      this.#db
        .prepare('UPDATE webhook_outbox SET attempts = ?, status = ?, next_attempt_at_ms = ?, settled_at = ? WHERE id = ?')
        .run(number, newStatus, nextAttemptAtMs, settled, id);
    });
  }

  get(id: string): OutboxRecord | undefined {
    const row = this.#db.prepare(`SELECT ${MESSAGE_COLUMNS} FROM webhook_outbox WHERE id = ?`).get(id) as Row | undefined;
    return row ? toRecord(row) : undefined;
  }

  /** The delivery log, newest attempt first, optionally of one tenant and/or one message. */
  deliveries(query: DeliveryQuery = {}): DeliveryRecord[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (query.tenantId !== undefined) {
      where.push('o.tenant_id = ?');
      params.push(query.tenantId);
    }
    if (query.outboxId !== undefined) {
      where.push('d.outbox_id = ?');
      params.push(query.outboxId);
    }
    params.push(checkLimit('limit', query.limit, WEBHOOK_DELIVERIES_DEFAULT_LIMIT, WEBHOOK_DELIVERIES_MAX_LIMIT));
    const rows = this.#db
      .prepare(
        `SELECT d.outbox_id, o.tenant_id, o.type, d.attempt, d.at, d.status_code, d.duration_ms, d.error, o.status, o.attempts
         FROM webhook_deliveries d JOIN webhook_outbox o ON o.id = d.outbox_id
         ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY d.at DESC, d.rowid DESC LIMIT ?`,
      )
      .all(...params);
    return rows.map((row): DeliveryRecord => {
      const attempt = int(row, 'attempt');
      const status = text(row, 'status') as WebhookStatus;
      // only a message's last attempt can have settled it
      const outcome: AttemptOutcome = attempt < int(row, 'attempts') || status === 'pending' ? 'retry' : status;
      return {
        outboxId: text(row, 'outbox_id'),
        tenantId: text(row, 'tenant_id'),
        type: text(row, 'type'),
        attempt,
        at: text(row, 'at'),
        statusCode: intOrNull(row, 'status_code'),
        durationMs: int(row, 'duration_ms'),
        error: textOrNull(row, 'error'),
        outcome,
      };
    });
  }

  /** How many messages are in each state, of one tenant or of all. */
  counts(tenantId?: string): WebhookCounts {
    const rows =
      tenantId === undefined
        ? this.#db.prepare('SELECT status, count(*) AS n FROM webhook_outbox GROUP BY status').all()
        : this.#db.prepare('SELECT status, count(*) AS n FROM webhook_outbox WHERE tenant_id = ? GROUP BY status').all(tenantId);
    const counts = { pending: 0, delivered: 0, failed: 0 };
    for (const row of rows) {
      const status = text(row, 'status');
      if (status === 'pending' || status === 'delivered' || status === 'failed') counts[status] = int(row, 'n');
    }
    return counts;
  }
}
