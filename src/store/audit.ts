/**
 * The audit log (PCI DSS 10.2): who did what, to what, when, from where, and whether it worked.
 * Each entry carries the six 10.2.2 fields — user identification (`actorType` + `actorId`), type
 * of event (`action`), date and time (`at`), success or failure (`outcome`), origination
 * (`origin`: an IP address, `cli`, `system`) and the affected resource (`resource`) — plus the
 * tenant and a `details` object, which refuses card-data and credential field names (json.ts).
 *
 * Append-only, twice over (PCI DSS 10.3.2, 10.3.4):
 * - triggers refuse UPDATE and DELETE on `audit_log` (migration 4);
 * - each entry is hash-chained to the one before it:
 *
 *       hash = SHA-256( prev_hash ‖ UTF-8( RFC 8785 canonical JSON of
 *              { seq, at, tenantId, actorType, actorId, action, outcome, origin, resource, details } ) )
 *
 *   where `prev_hash` is the previous entry's `hash` (32 zero bytes for seq 1). `verify()`
 *   recomputes the chain and names the first entry that is edited, missing, out of order or
 *   not linked to the one before, so dropping the triggers and editing a row is still caught.
 *
 * What a hash chain cannot show alone: the newest entries removed (the chain is just shorter)
 * or the whole chain rewritten from some entry on. `verify()` returns the chain's `head` (the
 * last entry's hash); kept somewhere else (a log shipper, a ticket), it anchors the chain.
 */

import { createHash } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import type { Clock } from '../clock.ts';
import { StoreInputError } from './errors.ts';
import { type JsonObject, canonicalJson, parseJsonObject, toJsonObject } from './json.ts';
import { type Row, blob, checkLimit, int, isoFromMs, normalizeIso, text, textOrNull, transaction } from './sql.ts';

export const AUDIT_ACTOR_TYPES = ['user', 'apiKey', 'system'] as const;
export type AuditActorType = (typeof AUDIT_ACTOR_TYPES)[number];
export const AUDIT_OUTCOMES = ['success', 'failure'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** SHA-256 digest length; the first entry's `prev_hash` is this many zero bytes. */
export const AUDIT_HASH_BYTES = 32;
export const AUDIT_LIST_DEFAULT_LIMIT = 100;
export const AUDIT_LIST_MAX_LIMIT = 10_000;
const TEXT_MAX_CHARS = 256;

export interface NewAuditEntry {
  readonly actorType: AuditActorType;
  /** The user or API key id; null for the system itself. */
  readonly actorId: string | null;
  readonly tenantId: string | null;
  /** What happened, e.g. `user.login`, `apiKey.create`, `payment.start`. */
  readonly action: string;
  /** What it happened to, e.g. `user:usr_x`, `payment:pay_x`; null when nothing in particular. */
  readonly resource: string | null;
  readonly outcome: AuditOutcome;
  /** Where it came from: a client IP address, `cli`, `system`. */
  readonly origin: string;
  readonly details?: object;
}

export interface AuditEntry {
  readonly seq: number;
  /** ISO 8601, from the store clock's calendar time. */
  readonly at: string;
  readonly tenantId: string | null;
  readonly actorType: AuditActorType;
  readonly actorId: string | null;
  readonly action: string;
  readonly outcome: AuditOutcome;
  readonly origin: string;
  readonly resource: string | null;
  readonly details: JsonObject;
  /** Hex SHA-256 of the entry before (64 zeros for the first). */
  readonly prevHash: string;
  /** Hex SHA-256 of `prevHash` and this entry's canonical JSON. */
  readonly hash: string;
}

export interface AuditQuery {
  readonly tenantId?: string;
  /** Only entries of this action (e.g. `config.load`). */
  readonly action?: string;
  /** At or after (ISO 8601). */
  readonly from?: string;
  /** Before (ISO 8601). */
  readonly to?: string;
  /** Default 100, at most 10,000. */
  readonly limit?: number;
}

export type AuditVerification =
  | { readonly ok: true; readonly entries: number; readonly head: string | null }
  | { readonly ok: false; readonly entries: number; readonly firstBadSeq: number; readonly problem: string; readonly head: string | null };

/** The fields the hash covers, by the names it covers them under. */
interface HashedFields {
  readonly seq: number;
  readonly at: string;
  readonly tenantId: string | null;
  readonly actorType: string;
  readonly actorId: string | null;
  readonly action: string;
  readonly outcome: string;
  readonly origin: string;
  readonly resource: string | null;
  readonly details: JsonObject;
}

/** SHA-256(prevHash ‖ canonical JSON of the fields). */
export function auditEntryHash(prevHash: Uint8Array, fields: HashedFields): Buffer {
  const json = canonicalJson({
    seq: fields.seq,
    at: fields.at,
    tenantId: fields.tenantId,
    actorType: fields.actorType,
    actorId: fields.actorId,
    action: fields.action,
    outcome: fields.outcome,
    origin: fields.origin,
    resource: fields.resource,
    details: fields.details,
  });
  return createHash('sha256').update(prevHash).update(json, 'utf8').digest();
}

const ZERO_HASH = Buffer.alloc(AUDIT_HASH_BYTES);

function checkText(field: string, value: string, nullable: false): string;
function checkText(field: string, value: string | null, nullable: true): string | null;
function checkText(field: string, value: string | null, nullable: boolean): string | null {
  if (value === null && nullable) return null;
  // an empty actor id or resource (a login with an empty username) is still recorded
  if (typeof value !== 'string' || (value.length === 0 && !nullable) || value.length > TEXT_MAX_CHARS || /\p{Cc}/u.test(value)) {
    throw new StoreInputError(field, `must be ${nullable ? 'at most' : '1 to'} ${TEXT_MAX_CHARS} characters without control characters${nullable ? ', or null' : ''}`);
  }
  return value;
}

function toEntry(row: Row): AuditEntry {
  return {
    seq: int(row, 'seq'),
    at: text(row, 'at'),
    tenantId: textOrNull(row, 'tenant_id'),
    actorType: text(row, 'actor_type') as AuditActorType,
    actorId: textOrNull(row, 'actor_id'),
    action: text(row, 'action'),
    outcome: text(row, 'outcome') as AuditOutcome,
    origin: text(row, 'origin'),
    resource: textOrNull(row, 'resource'),
    details: parseJsonObject(text(row, 'details')),
    prevHash: Buffer.from(blob(row, 'prev_hash')).toString('hex'),
    hash: Buffer.from(blob(row, 'hash')).toString('hex'),
  };
}

export class AuditLog {
  readonly #db: DatabaseSync;
  readonly #clock: Clock;

  constructor(db: DatabaseSync, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
  }

  /**
   * Appends an entry at the end of the chain. The last hash is read and the entry inserted in
   * one write transaction, so two writers (two processes on one file) cannot both link to the
   * same entry.
   */
  append(entry: NewAuditEntry): AuditEntry {
    if (!AUDIT_ACTOR_TYPES.includes(entry.actorType)) throw new StoreInputError('actorType', `must be one of ${AUDIT_ACTOR_TYPES.join(', ')}`);
    if (!AUDIT_OUTCOMES.includes(entry.outcome)) throw new StoreInputError('outcome', `must be one of ${AUDIT_OUTCOMES.join(', ')}`);
    const fields = {
      tenantId: checkText('tenantId', entry.tenantId, true),
      actorType: entry.actorType,
      actorId: checkText('actorId', entry.actorId, true),
      action: checkText('action', entry.action, false),
      outcome: entry.outcome,
      origin: checkText('origin', entry.origin, false),
      resource: checkText('resource', entry.resource, true),
      details: toJsonObject('details', entry.details ?? {}),
    };
    // RFC 8785 refuses what it cannot write (non-finite numbers cannot come out of JSON.parse,
    // but check before taking the write lock); the stored text is the canonical form
    const detailsJson = canonicalJson(fields.details);
    return transaction(this.#db, () => {
      const last = this.#db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1').get() as Row | undefined;
      const seq = last ? int(last, 'seq') + 1 : 1;
      const prevHash = last ? blob(last, 'hash') : ZERO_HASH;
      const at = isoFromMs(this.#clock.wallMs());
      const hash = auditEntryHash(prevHash, { seq, at, ...fields });
      this.#db
        .prepare(
          `INSERT INTO audit_log (seq, at, tenant_id, actor_type, actor_id, action, outcome, origin, resource, details, prev_hash, hash)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(seq, at, fields.tenantId, fields.actorType, fields.actorId, fields.action, fields.outcome, fields.origin, fields.resource, detailsJson, prevHash, hash);
      return { seq, at, ...fields, prevHash: Buffer.from(prevHash).toString('hex'), hash: hash.toString('hex') };
    });
  }

  /** Entries matching every filter given, newest first. */
  list(query: AuditQuery = {}): AuditEntry[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (query.tenantId !== undefined) {
      where.push('tenant_id = ?');
      params.push(query.tenantId);
    }
    if (query.action !== undefined) {
      where.push('action = ?');
      params.push(query.action);
    }
    if (query.from !== undefined) {
      where.push('at >= ?');
      params.push(normalizeIso('from', query.from));
    }
    if (query.to !== undefined) {
      where.push('at < ?');
      params.push(normalizeIso('to', query.to));
    }
    params.push(checkLimit('limit', query.limit, AUDIT_LIST_DEFAULT_LIMIT, AUDIT_LIST_MAX_LIMIT));
    const sql = `SELECT * FROM audit_log ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
    return this.#db.prepare(sql).all(...params).map(toEntry);
  }

  /**
   * Walks the whole chain from seq 1 and recomputes every hash. The first problem found ends
   * the walk: an entry missing (a gap in seq), an entry whose `prev_hash` is not its
   * predecessor's hash (removed, reordered or re-linked), or an entry whose contents no longer
   * give its hash (edited). `entries` is how many entries were read.
   */
  verify(): AuditVerification {
    let entries = 0;
    let expectedSeq = 1;
    let prevHash: Uint8Array = ZERO_HASH;
    let head: string | null = null;
    const broken = (firstBadSeq: number, problem: string): AuditVerification => ({ ok: false, entries, firstBadSeq, problem, head });
    // iterate(): the chain is read a row at a time, never held whole in memory
    for (const row of this.#db.prepare('SELECT * FROM audit_log ORDER BY seq').iterate() as Iterable<Row>) {
      entries++;
      let seq: number;
      try {
        seq = int(row, 'seq');
      } catch {
        return broken(expectedSeq, 'seq is not an integer');
      }
      if (seq !== expectedSeq) {
        const missing = seq - 1 === expectedSeq ? `entry ${expectedSeq} is missing` : `entries ${expectedSeq} to ${seq - 1} are missing`;
        return broken(expectedSeq, `${missing} (the next entry found is ${seq})`);
      }
      let storedPrev: Uint8Array;
      let storedHash: Uint8Array;
      let fields: HashedFields;
      try {
        storedPrev = blob(row, 'prev_hash');
        storedHash = blob(row, 'hash');
        fields = {
          seq,
          at: text(row, 'at'),
          tenantId: textOrNull(row, 'tenant_id'),
          actorType: text(row, 'actor_type'),
          actorId: textOrNull(row, 'actor_id'),
          action: text(row, 'action'),
          outcome: text(row, 'outcome'),
          origin: text(row, 'origin'),
          resource: textOrNull(row, 'resource'),
          details: parseDetails(text(row, 'details')),
        };
      } catch (err) {
        return broken(seq, `the entry cannot be read: ${err instanceof Error ? err.message : 'unreadable'}`);
      }
      if (!Buffer.from(storedPrev).equals(prevHash)) {
        return broken(seq, seq === 1 ? 'prev_hash of the first entry is not 32 zero bytes' : `prev_hash does not match the hash of entry ${seq - 1} (entries removed, reordered or re-linked)`);
      }
      if (!auditEntryHash(prevHash, fields).equals(storedHash)) {
        return broken(seq, 'the hash does not match the entry: it was changed after it was written');
      }
      prevHash = storedHash;
      head = Buffer.from(storedHash).toString('hex');
      expectedSeq = seq + 1;
    }
    return { ok: true, entries, head };
  }
}

function parseDetails(json: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new StoreInputError('details', 'is not JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new StoreInputError('details', 'is not a JSON object');
  return value as JsonObject;
}
