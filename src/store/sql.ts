/**
 * Small helpers every repository shares: typed reads of `node:sqlite` rows (a column of the wrong
 * type is a schema error, not a silent `undefined`), transactions, constraint checks, times,
 * limits and random ids.
 *
 * Times: rows keep calendar time as ISO 8601 text (`2026-11-21T00:00:00.000Z`, from the injected
 * clock's `wallMs()`), which sorts as text; where the store compares times it also keeps
 * integer ms columns (`*_ms`), which SQLite stores as binary integers.
 */

import { randomBytes } from 'node:crypto';
import type { DatabaseSync, SQLOutputValue } from 'node:sqlite';
import { StoreInputError, StoreSchemaError } from './errors.ts';

export type Row = Record<string, SQLOutputValue>;

function columnError(column: string, expected: string, value: SQLOutputValue | undefined): StoreSchemaError {
  const got = value === null ? 'null' : value === undefined ? 'no such column' : value instanceof Uint8Array ? 'blob' : typeof value;
  return new StoreSchemaError(`column ${column}: expected ${expected}, got ${got}`);
}

export function text(row: Row, column: string): string {
  const value = row[column];
  if (typeof value !== 'string') throw columnError(column, 'text', value);
  return value;
}

export function textOrNull(row: Row, column: string): string | null {
  const value = row[column];
  if (value === null) return null;
  if (typeof value !== 'string') throw columnError(column, 'text or null', value);
  return value;
}

export function int(row: Row, column: string): number {
  const value = row[column];
  if (typeof value === 'bigint') return Number(value);
  if (typeof value !== 'number') throw columnError(column, 'integer', value);
  return value;
}

export function intOrNull(row: Row, column: string): number | null {
  return row[column] === null ? null : int(row, column);
}

export function blob(row: Row, column: string): Uint8Array {
  const value = row[column];
  if (!(value instanceof Uint8Array)) throw columnError(column, 'blob', value);
  return value;
}

/**
 * Runs `fn` in one write transaction. BEGIN IMMEDIATE takes the write lock up front, so a
 * read-then-write (the audit chain's "last hash, then insert") cannot interleave with another
 * connection's; `busy_timeout` makes a second writer wait instead of failing at once.
 *
 * Inside a transaction already (a caller grouping several repository calls, `Store.transaction`)
 * it runs `fn` in a SAVEPOINT instead: the work commits or rolls back with the outer
 * transaction, and a failure in `fn` undoes `fn`'s part alone. `fn` must be synchronous: a
 * promise would let other work on this connection run inside the open transaction.
 */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  const nested = db.isTransaction;
  db.exec(nested ? 'SAVEPOINT hushpay_nested' : 'BEGIN IMMEDIATE');
  try {
    const result = fn();
    if (result instanceof Promise) {
      // the promise is left to settle on its own; its writes are rolled back with this transaction
      result.catch(() => undefined);
      throw new StoreInputError('transaction', 'the function must be synchronous (it returned a promise)');
    }
    db.exec(nested ? 'RELEASE hushpay_nested' : 'COMMIT');
    return result;
  } catch (err) {
    // (SQLite itself may have rolled the whole transaction back already, e.g. on SQLITE_FULL)
    if (db.isTransaction) db.exec(nested ? 'ROLLBACK TO hushpay_nested; RELEASE hushpay_nested' : 'ROLLBACK');
    throw err;
  }
}

/** SQLite extended result codes (https://www.sqlite.org/rescode.html). */
export const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;
export const SQLITE_CONSTRAINT_UNIQUE = 2067;

/** Whether `err` is node:sqlite's error for this extended result code. */
export function isSqliteError(err: unknown, errcode: number): boolean {
  return err instanceof Error && (err as Error & { errcode?: unknown }).errcode === errcode;
}

export function isoFromMs(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * An ISO 8601 time from an API caller, in the one form the rows hold (UTC, milliseconds), so
 * text comparison is time comparison. `2026-11-21` and `2026-11-21T09:00:00+09:00` are accepted.
 */
export function normalizeIso(field: string, value: string): string {
  const ms = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(ms)) throw new StoreInputError(field, 'must be an ISO 8601 date or time');
  return isoFromMs(ms);
}

/** A page size: `fallback` when not given, else an integer in 1..max. */
export function checkLimit(field: string, value: number | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) throw new StoreInputError(field, `must be an integer from 1 to ${max}`);
  return value;
}

export function checkOffset(value: number | undefined): number {
  if (value === undefined) return 0;
  if (!Number.isInteger(value) || value < 0) throw new StoreInputError('offset', 'must be a whole number');
  return value;
}

/** `prefix` + 16 random bytes, base64url (22 characters): ids that say what they name. */
export function randomId(prefix: string): string {
  return `${prefix}${randomBytes(16).toString('base64url')}`;
}
