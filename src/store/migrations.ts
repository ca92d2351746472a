/**
 * The store's schema, as numbered migrations in code, and the runner that applies them.
 *
 * - `schema_migrations` records each version applied (and when). Opening a file applies, in
 *   order, every migration newer than its highest version, each in its own transaction with its
 *   row in `schema_migrations`: a failed migration rolls back whole and the store does not open.
 * - A file whose highest version is newer than this code knows was written by a newer hushpay:
 *   refused, never written to.
 * - Migrations are append-only: a released one is never edited, a change is a new number.
 *
 * Card data: no table has a column for a card number, an expiry or a security code. A payment
 * keeps what PCI DSS 3.4.1 allows to be shown (brand, last four) and the gateway's result.
 */

import type { DatabaseSync } from 'node:sqlite';
import { StoreSchemaError } from './errors.ts';
import { type Row, int, isoFromMs, transaction } from './sql.ts';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

const PAYMENT_STATUSES = "'capturing', 'ready', 'authorizing', 'approved', 'declined', 'error', 'failed', 'cancelled', 'refused'";

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'users, api keys, browser sessions',
    sql: `
      CREATE TABLE users (
        id             TEXT PRIMARY KEY,
        tenant_id      TEXT,
        username       TEXT NOT NULL UNIQUE COLLATE NOCASE,
        role           TEXT NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
        -- scrypt$N$r$p$saltB64$hashB64
        password_hash  TEXT NOT NULL,
        -- RFC 4648 base32; NULL = no second factor yet
        totp_secret    TEXT,
        -- the last TOTP time step accepted, so a code is accepted once (PCI DSS 8.5.1)
        totp_last_step INTEGER,
        created_at     TEXT NOT NULL,
        disabled_at    TEXT
      ) STRICT;
      CREATE INDEX users_tenant ON users (tenant_id, username);

      CREATE TABLE api_keys (
        id         TEXT PRIMARY KEY,
        tenant_id  TEXT NOT NULL,
        name       TEXT NOT NULL,
        -- the key's first 8 characters, to show and to find candidates by
        prefix     TEXT NOT NULL,
        -- SHA-256 of the whole key; the key itself is shown once and never stored
        key_hash   BLOB NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
      ) STRICT;
      CREATE INDEX api_keys_prefix ON api_keys (prefix);
      CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

      CREATE TABLE sessions (
        -- SHA-256 of the cookie token; the token itself is never stored
        token_hash    BLOB PRIMARY KEY,
        user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        csrf_token    TEXT NOT NULL,
        mfa_passed    INTEGER NOT NULL CHECK (mfa_passed IN (0, 1)),
        created_at    TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX sessions_user ON sessions (user_id);
      CREATE INDEX sessions_expiry ON sessions (expires_at_ms);
    `,
  },
  {
    version: 2,
    name: 'payments',
    sql: `
      CREATE TABLE payments (
        id              TEXT PRIMARY KEY,
        tenant_id       TEXT NOT NULL,
        call_id         TEXT NOT NULL,
        -- not a foreign key: a payment record outlives any change to its agent's account
        agent_user_id   TEXT,
        operation       TEXT NOT NULL,
        -- in the currency's minor unit (JPY: yen)
        amount_value    INTEGER,
        currency        TEXT,
        method_kind     TEXT,
        method_count    INTEGER,
        order_id        TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        -- JSON array of the capture fields asked for
        fields          TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN (${PAYMENT_STATUSES})),
        brand           TEXT,
        last4           TEXT CHECK (last4 IS NULL OR (length(last4) = 4 AND last4 NOT GLOB '*[^0-9]*')),
        -- JSON object: per-field counts
        progress        TEXT,
        -- JSON: the PublicResult (no card data: hushpay never had it to give)
        result          TEXT,
        failure         TEXT,
        error           TEXT,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        UNIQUE (tenant_id, idempotency_key)
      ) STRICT;
      CREATE INDEX payments_tenant_created ON payments (tenant_id, created_at);
      CREATE INDEX payments_agent_created ON payments (agent_user_id, created_at);
      CREATE INDEX payments_created ON payments (created_at);
    `,
  },
  {
    version: 3,
    name: 'desktop events',
    sql: `
      -- AUTOINCREMENT: an id is never reused, even after prune() empties the table, so a
      -- WebSocket client resuming "after 41" never misses a newer event numbered 41
      CREATE TABLE events (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id     TEXT NOT NULL,
        call_id       TEXT NOT NULL,
        agent_user_id TEXT,
        payment_id    TEXT,
        type          TEXT NOT NULL,
        payload       TEXT NOT NULL,
        at            TEXT NOT NULL,
        at_ms         INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX events_at ON events (at_ms);
    `,
  },
  {
    version: 4,
    name: 'audit log (append-only, hash-chained)',
    sql: `
      CREATE TABLE audit_log (
        seq        INTEGER PRIMARY KEY,
        at         TEXT NOT NULL,
        tenant_id  TEXT,
        actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'apiKey', 'system')),
        actor_id   TEXT,
        action     TEXT NOT NULL,
        outcome    TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
        origin     TEXT NOT NULL,
        resource   TEXT,
        -- RFC 8785 canonical JSON object
        details    TEXT NOT NULL,
        -- SHA-256, 32 bytes each; the first entry's prev_hash is 32 zero bytes
        prev_hash  BLOB NOT NULL,
        hash       BLOB NOT NULL
      ) STRICT;
      CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at);
      CREATE INDEX audit_log_at ON audit_log (at);
      CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
      CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    `,
  },
  {
    version: 5,
    name: 'webhook outbox and delivery log',
    sql: `
      CREATE TABLE webhook_outbox (
        id                 TEXT PRIMARY KEY,
        tenant_id          TEXT NOT NULL,
        type               TEXT NOT NULL,
        -- the exact bytes POSTed (UTF-8 JSON), the same on every attempt
        body               TEXT NOT NULL,
        status             TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts           INTEGER NOT NULL DEFAULT 0,
        -- calendar ms (wall clock: it must mean the same after a restart); NULL once settled
        next_attempt_at_ms INTEGER,
        created_at         TEXT NOT NULL,
        settled_at         TEXT
      ) STRICT;
      CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at_ms) WHERE status = 'pending';
      CREATE INDEX webhook_outbox_tenant ON webhook_outbox (tenant_id, created_at);

      CREATE TABLE webhook_deliveries (
        outbox_id   TEXT NOT NULL REFERENCES webhook_outbox (id) ON DELETE CASCADE,
        attempt     INTEGER NOT NULL,
        at          TEXT NOT NULL,
        status_code INTEGER,
        duration_ms INTEGER NOT NULL,
        error       TEXT,
        PRIMARY KEY (outbox_id, attempt)
      ) STRICT;
    `,
  },
  {
    version: 6,
    name: "status callbacks: a payment's own URL, and outbox messages addressed to one",
    sql: `
      -- the statusCallback given when the payment was started (http or https), if any
      ALTER TABLE payments ADD COLUMN status_callback TEXT;
      -- a message for one URL (a payment's status callback) rather than the tenant's endpoint
      ALTER TABLE webhook_outbox ADD COLUMN url TEXT;
    `,
  },
];

/** The highest version applied to `db` (0 for a new file). */
export function schemaVersion(db: DatabaseSync): number {
  const table = db.prepare("SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (!table) return 0;
  const row = db.prepare('SELECT coalesce(max(version), 0) AS version FROM schema_migrations').get() as Row;
  return int(row, 'version');
}

/**
 * Applies every migration newer than the file's version, each in its own transaction; returns
 * the versions applied (empty when the file is up to date).
 */
export function migrate(db: DatabaseSync, migrations: readonly Migration[], nowMs: () => number): number[] {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new StoreSchemaError(`migration ${m.version} ('${m.name}') is numbered out of order: expected ${i + 1}`);
  });
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
  ) STRICT`);
  const current = schemaVersion(db);
  if (current > migrations.length) {
    throw new StoreSchemaError(`the database is at schema version ${current}, newer than this hushpay knows (${migrations.length}): it was written by a newer hushpay`);
  }
  const applied: number[] = [];
  for (const migration of migrations.slice(current)) {
    try {
      transaction(db, () => {
        db.exec(migration.sql);
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(migration.version, migration.name, isoFromMs(nowMs()));
      });
    } catch (err) {
      throw new StoreSchemaError(`migration ${migration.version} ('${migration.name}') failed and was rolled back: ${err instanceof Error ? err.message : String(err)}`);
    }
    applied.push(migration.version);
  }
  return applied;
}
