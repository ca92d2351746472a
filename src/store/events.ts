/**
 * Desktop events kept for WebSocket resume: a desktop that reconnects says the last id it saw
 * and gets what it missed, in order, then live events.
 *
 * Ids come from SQLite AUTOINCREMENT: they only ever grow and are never reused, even after
 * `prune` has emptied the table, so "after N" never skips a newer event that took N's number.
 * Payloads are hushpay's masked PaymentEvents (counts, brand, masked forms, results); a payload
 * with a card-data field name is refused (json.ts).
 */

import type { DatabaseSync } from 'node:sqlite';
import type { Clock } from '../clock.ts';
import { StoreInputError } from './errors.ts';
import { type JsonObject, parseJsonObject, toJsonObject } from './json.ts';
import { type Row, checkLimit, int, isoFromMs, text, textOrNull } from './sql.ts';

export interface NewEvent {
  readonly tenantId: string;
  readonly callId: string;
  readonly agentUserId: string | null;
  readonly paymentId: string | null;
  readonly type: string;
  readonly payload: object;
}

export interface StoredEvent {
  readonly id: number;
  /** ISO 8601. */
  readonly at: string;
  readonly tenantId: string;
  readonly callId: string;
  readonly agentUserId: string | null;
  readonly paymentId: string | null;
  readonly type: string;
  readonly payload: JsonObject;
}

export const EVENTS_MAX_LIMIT = 10_000;

function toEvent(row: Row): StoredEvent {
  return {
    id: int(row, 'id'),
    at: text(row, 'at'),
    tenantId: text(row, 'tenant_id'),
    callId: text(row, 'call_id'),
    agentUserId: textOrNull(row, 'agent_user_id'),
    paymentId: textOrNull(row, 'payment_id'),
    type: text(row, 'type'),
    payload: parseJsonObject(text(row, 'payload')),
  };
}

export class EventRepository {
  readonly #db: DatabaseSync;
  readonly #clock: Clock;

  constructor(db: DatabaseSync, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
  }

  append(event: NewEvent): { id: number; at: string } {
    const payload = JSON.stringify(toJsonObject('payload', event.payload));
    const atMs = this.#clock.wallMs();
    const at = isoFromMs(atMs);
    const { lastInsertRowid } = this.#db
      .prepare('INSERT INTO events (tenant_id, call_id, agent_user_id, payment_id, type, payload, at, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(event.tenantId, event.callId, event.agentUserId, event.paymentId, event.type, payload, at, atMs);
    return { id: Number(lastInsertRowid), at };
  }

  /** Events with an id above `afterId`, oldest first, optionally of one tenant and/or one agent. */
  after(afterId: number, options: { readonly tenantId?: string; readonly agentUserId?: string; readonly limit: number }): StoredEvent[] {
    if (!Number.isInteger(afterId) || afterId < 0) throw new StoreInputError('afterId', 'must be a whole number');
    const where = ['id > ?'];
    const params: (string | number)[] = [afterId];
    if (options.tenantId !== undefined) {
      where.push('tenant_id = ?');
      params.push(options.tenantId);
    }
    if (options.agentUserId !== undefined) {
      where.push('agent_user_id = ?');
      params.push(options.agentUserId);
    }
    params.push(checkLimit('limit', options.limit, options.limit, EVENTS_MAX_LIMIT));
    return this.#db.prepare(`SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`).all(...params).map(toEvent);
  }

  /** Removes events older than `olderThanMs` (an age, on the clock's calendar time); returns how many. */
  prune(olderThanMs: number): number {
    if (!Number.isFinite(olderThanMs) || olderThanMs < 0) throw new StoreInputError('olderThanMs', 'must be a non-negative number of ms');
    const cutoffMs = this.#clock.wallMs() - olderThanMs;
    return Number(this.#db.prepare('DELETE FROM events WHERE at_ms < ?').run(cutoffMs).changes);
  }

  /** The highest id ever given (0 before the first event), whether or not it was pruned since. */
  lastId(): number {
    const row = this.#db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as Row | undefined;
    return row ? int(row, 'seq') : 0;
  }
}
