/**
 * hushpay's embedded store: one SQLite file (node:sqlite) under the data directory, holding
 * desktop users, browser sessions, API keys, payment records, desktop events, the audit log
 * and the webhook outbox — and never card data (no table has a column for it, and JSON columns
 * refuse card-data field names: json.ts).
 *
 * `Store.open` makes the directory (0700) and the file (0600) if missing, sets the pragmas
 * (WAL, foreign keys, a 5 s busy timeout, synchronous NORMAL, secure_delete) and applies the
 * migrations. Opened `readOnly` (`hushpay audit verify`), it creates nothing, migrates nothing
 * and refuses a file whose schema is not exactly this hushpay's. The Store owns the connection:
 * `close()` closes it, once.
 */

import { chmodSync, existsSync, mkdirSync, openSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { Clock } from '../clock.ts';
import { ApiKeyRepository } from './apiKeys.ts';
import { AuditLog } from './audit.ts';
import { StoreMissingError, StoreSchemaError } from './errors.ts';
import { EventRepository } from './events.ts';
import { MIGRATIONS, migrate, schemaVersion } from './migrations.ts';
import { PaymentRepository } from './payments.ts';
import { SessionRepository } from './sessions.ts';
import { isSqliteError, transaction } from './sql.ts';
import { UserRepository } from './users.ts';
import { WebhookOutboxRepository } from './webhooks.ts';

export type { ApiKey } from './apiKeys.ts';
export { API_KEY_PREFIX, ApiKeyRepository } from './apiKeys.ts';
export type { AuditActorType, AuditEntry, AuditOutcome, AuditQuery, AuditVerification, NewAuditEntry } from './audit.ts';
export { AuditLog, auditEntryHash } from './audit.ts';
export { StoreConflictError, StoreInputError, StoreMissingError, StoreNotFoundError, StoreSchemaError } from './errors.ts';
export type { NewEvent, StoredEvent } from './events.ts';
export { EventRepository } from './events.ts';
export type { JsonObject, JsonValue } from './json.ts';
export { MIGRATIONS } from './migrations.ts';
export type { Amount, NewPayment, PaymentQuery, PaymentRecord, PaymentStatus, PaymentUpdate, PaymentsCsvOptions } from './payments.ts';
export { PAYMENT_STATUSES, PaymentRepository, paymentsCsv } from './payments.ts';
export type { NewSession, SessionInfo } from './sessions.ts';
export { SessionRepository } from './sessions.ts';
export { generateTotpSecret, otpauthUri, totpCode } from './totp.ts';
export type { NewUser, Role, User } from './users.ts';
export { ROLES, UserRepository } from './users.ts';
export type {
  AttemptOutcome,
  AttemptRecord,
  DeliveryQuery,
  DeliveryRecord,
  NewWebhookMessage,
  OutboxMessage,
  OutboxRecord,
  WebhookCounts,
  WebhookOutbox,
  WebhookStatus,
} from './webhooks.ts';
export { WebhookOutboxRepository } from './webhooks.ts';

export interface StoreOptions {
  /** Every time the store writes comes from this clock's `wallMs()`. */
  readonly clock: Clock;
  /** Open without creating, migrating or writing (default false). */
  readonly readOnly?: boolean;
}

/** ms a write waits for another connection's write lock before SQLITE_BUSY. */
export const STORE_BUSY_TIMEOUT_MS = 5_000;
export const STORE_DIR_MODE = 0o700;
export const STORE_FILE_MODE = 0o600;
/** SQLITE_NOTADB: the file is not a SQLite database (https://www.sqlite.org/rescode.html). */
const SQLITE_NOTADB = 26;

export class Store {
  /** The file name under the data directory. */
  static readonly DEFAULT_FILE = 'hushpay.db';

  readonly path: string;
  readonly readOnly: boolean;
  readonly users: UserRepository;
  readonly sessions: SessionRepository;
  readonly apiKeys: ApiKeyRepository;
  readonly payments: PaymentRepository;
  readonly events: EventRepository;
  readonly audit: AuditLog;
  readonly webhooks: WebhookOutboxRepository;
  readonly #db: DatabaseSync;
  #closed = false;

  private constructor(db: DatabaseSync, path: string, readOnly: boolean, clock: Clock) {
    this.#db = db;
    this.path = path;
    this.readOnly = readOnly;
    this.users = new UserRepository(db, clock);
    this.sessions = new SessionRepository(db, clock);
    this.apiKeys = new ApiKeyRepository(db, clock);
    this.payments = new PaymentRepository(db, clock);
    this.events = new EventRepository(db, clock);
    this.audit = new AuditLog(db, clock);
    this.webhooks = new WebhookOutboxRepository(db, clock);
  }

  /**
   * Opens (creating and migrating, unless `readOnly`) the store at `path`.
   * - StoreMissingError: `readOnly` and no file at `path`.
   * - StoreSchemaError: not a SQLite file; a schema newer than this hushpay; a migration that
   *   failed (rolled back); `readOnly` and a schema older than this hushpay.
   */
  static open(path: string, options: StoreOptions): Store {
    const readOnly = options.readOnly ?? false;
    if (readOnly) {
      if (!existsSync(path)) throw new StoreMissingError(path);
    } else {
      mkdirSync(dirname(path), { recursive: true, mode: STORE_DIR_MODE });
      // created 0600 before SQLite opens it; SQLite gives the -wal and -shm files the same mode
      closeSync(openSync(path, 'a', STORE_FILE_MODE));
      chmodSync(path, STORE_FILE_MODE);
    }
    const db = new DatabaseSync(path, { readOnly, timeout: STORE_BUSY_TIMEOUT_MS, enableForeignKeyConstraints: true });
    try {
      if (!readOnly) db.exec('PRAGMA journal_mode = WAL');
      db.exec(`PRAGMA foreign_keys = ON; PRAGMA busy_timeout = ${STORE_BUSY_TIMEOUT_MS}; PRAGMA synchronous = NORMAL; PRAGMA secure_delete = ON`);
      if (readOnly) {
        const version = schemaVersion(db);
        if (version !== MIGRATIONS.length) {
          throw new StoreSchemaError(
            version > MIGRATIONS.length
              ? `the database is at schema version ${version}, newer than this hushpay knows (${MIGRATIONS.length}): it was written by a newer hushpay`
              : `the database is at schema version ${version}, older than this hushpay's (${MIGRATIONS.length}): start hushpay once to migrate it`,
          );
        }
      } else {
        migrate(db, MIGRATIONS, () => options.clock.wallMs());
      }
    } catch (err) {
      db.close();
      if (isSqliteError(err, SQLITE_NOTADB)) throw new StoreSchemaError(`${path} is not a SQLite database`);
      throw err;
    }
    return new Store(db, path, readOnly, options.clock);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Runs `fn` (synchronous) in one transaction, so several repository calls — a payment
   * update, its event, its webhook, its audit entry — commit together or not at all.
   */
  transaction<T>(fn: () => T): T {
    return transaction(this.#db, fn);
  }

  /** Closes the connection (checkpointing the WAL when it is the last one). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}
