/**
 * Desktop users: agents, supervisors and admins, each of one tenant (or none: a platform admin).
 *
 * - Passwords: scrypt hashes (password.ts). `verifyPassword` does the same scrypt work whether
 *   or not the username exists or is disabled, and compares in constant time.
 * - Second factor: a TOTP secret per user. `User` says only whether one is set; the secret
 *   leaves through `totpSecret(userId)` alone, and `acceptTotp` checks a code and refuses its
 *   reuse (PCI DSS 8.5.1).
 * - Usernames are unique across tenants (a login names no tenant) and compared without case.
 * - Disabling a user ends their browser sessions; users are never deleted (the audit log and
 *   payment records name them).
 */

import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { Clock } from '../clock.ts';
import { StoreConflictError, StoreInputError, StoreNotFoundError } from './errors.ts';
import { dummyPasswordHash, hashPassword, verifyPasswordHash } from './password.ts';
import { type Row, SQLITE_CONSTRAINT_UNIQUE, intOrNull, isSqliteError, isoFromMs, randomId, text, textOrNull, transaction } from './sql.ts';
import { checkTotpSecret, matchTotpStep } from './totp.ts';

export const ROLES = ['agent', 'supervisor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface User {
  readonly id: string;
  readonly tenantId: string | null;
  readonly username: string;
  readonly role: Role;
  readonly totpEnabled: boolean;
  readonly createdAt: string;
  readonly disabled: boolean;
}

export interface NewUser {
  readonly tenantId: string | null;
  readonly username: string;
  readonly role: Role;
  readonly password: string;
}

const USERNAME_MAX_CHARS = 128;
const COLUMNS = 'id, tenant_id, username, role, totp_secret IS NOT NULL AS totp_enabled, created_at, disabled_at';

function toUser(row: Row): User {
  return {
    id: text(row, 'id'),
    tenantId: textOrNull(row, 'tenant_id'),
    username: text(row, 'username'),
    role: text(row, 'role') as Role,
    totpEnabled: row['totp_enabled'] === 1,
    createdAt: text(row, 'created_at'),
    disabled: textOrNull(row, 'disabled_at') !== null,
  };
}

function checkUsername(username: string): string {
  const trimmed = username.trim();
  if (trimmed.length === 0 || trimmed.length > USERNAME_MAX_CHARS || /[\s\p{Cc}]/u.test(trimmed)) {
    throw new StoreInputError('username', `must be 1 to ${USERNAME_MAX_CHARS} characters, without spaces`);
  }
  return trimmed;
}

export class UserRepository {
  readonly #db: DatabaseSync;
  readonly #clock: Clock;
  readonly #byId: StatementSync;
  readonly #byUsername: StatementSync;
  readonly #credentials: StatementSync;

  constructor(db: DatabaseSync, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
    this.#byId = db.prepare(`SELECT ${COLUMNS} FROM users WHERE id = ?`);
    this.#byUsername = db.prepare(`SELECT ${COLUMNS} FROM users WHERE username = ?`);
    this.#credentials = db.prepare(`SELECT ${COLUMNS}, password_hash FROM users WHERE username = ?`);
  }

  /** A new user; the password is hashed off the event loop. A taken username: StoreConflictError. */
  async create(input: NewUser): Promise<User> {
    const username = checkUsername(input.username);
    if (!ROLES.includes(input.role)) throw new StoreInputError('role', `must be one of ${ROLES.join(', ')}`);
    const passwordHash = await hashPassword(input.password);
    const id = randomId('usr_');
    try {
      this.#db
        .prepare('INSERT INTO users (id, tenant_id, username, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(id, input.tenantId, username, input.role, passwordHash, isoFromMs(this.#clock.wallMs()));
    } catch (err) {
      if (isSqliteError(err, SQLITE_CONSTRAINT_UNIQUE)) throw new StoreConflictError('username', 'already taken');
      throw err;
    }
    return this.get(id)!;
  }

  /**
   * The user whose username and password these are, if enabled; otherwise undefined, after the
   * same scrypt work (an unknown username is checked against a dummy hash).
   */
  async verifyPassword(username: string, password: string): Promise<User | undefined> {
    const row = this.#credentials.get(username.trim()) as Row | undefined;
    const stored = row ? text(row, 'password_hash') : await dummyPasswordHash();
    const ok = await verifyPasswordHash(password, stored);
    if (!row || !ok) return undefined;
    const user = toUser(row);
    return user.disabled ? undefined : user;
  }

  /** Sets a new password (a credential change: the caller audits it). */
  async setPassword(userId: string, password: string): Promise<User> {
    const passwordHash = await hashPassword(password);
    this.#change(userId, 'UPDATE users SET password_hash = ? WHERE id = ?', passwordHash, userId);
    return this.get(userId)!;
  }

  get(id: string): User | undefined {
    const row = this.#byId.get(id) as Row | undefined;
    return row ? toUser(row) : undefined;
  }

  byUsername(username: string): User | undefined {
    const row = this.#byUsername.get(username.trim()) as Row | undefined;
    return row ? toUser(row) : undefined;
  }

  /** Users by username: of one tenant, of no tenant (`null`), or all (no argument). */
  list(tenantId?: string | null): User[] {
    const rows =
      tenantId === undefined
        ? this.#db.prepare(`SELECT ${COLUMNS} FROM users ORDER BY username`).all()
        : tenantId === null
          ? this.#db.prepare(`SELECT ${COLUMNS} FROM users WHERE tenant_id IS NULL ORDER BY username`).all()
          : this.#db.prepare(`SELECT ${COLUMNS} FROM users WHERE tenant_id = ? ORDER BY username`).all(tenantId);
    return rows.map(toUser);
  }

  /** Sets (base32, at least 128 bits) or clears (`null`) the user's TOTP secret. */
  setTotpSecret(userId: string, secretBase32: string | null): User {
    const secret = secretBase32 === null ? null : checkTotpSecret(secretBase32);
    this.#change(userId, 'UPDATE users SET totp_secret = ?, totp_last_step = NULL WHERE id = ?', secret, userId);
    return this.get(userId)!;
  }

  /** The user's TOTP secret (base32), for the verifier and the enrolment QR code only. */
  totpSecret(userId: string): string | undefined {
    const row = this.#db.prepare('SELECT totp_secret FROM users WHERE id = ?').get(userId) as Row | undefined;
    return row ? (textOrNull(row, 'totp_secret') ?? undefined) : undefined;
  }

  /**
   * Whether `code` is the user's TOTP code at `timeMs` (±1 step) and its step is later than
   * the last one accepted; if so, that step is remembered, so the same code (or an earlier one)
   * is refused from then on. A user without a secret: false.
   */
  acceptTotp(userId: string, code: string, timeMs: number): boolean {
    const row = this.#db.prepare('SELECT totp_secret, totp_last_step FROM users WHERE id = ? AND disabled_at IS NULL').get(userId) as Row | undefined;
    const secret = row ? textOrNull(row, 'totp_secret') : null;
    if (!row || secret === null) return false;
    const step = matchTotpStep(secret, code, timeMs);
    if (step === undefined) return false;
    const lastStep = intOrNull(row, 'totp_last_step');
    if (lastStep !== null && step <= lastStep) return false;
    // conditional, so two logins racing with one code cannot both win
    const changes = this.#db
      .prepare('UPDATE users SET totp_last_step = ? WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)')
      .run(step, userId, step).changes;
    return Number(changes) === 1;
  }

  /** Disables the user and ends their sessions; they can no longer log in. Idempotent. */
  disable(userId: string): User {
    transaction(this.#db, () => {
      this.#change(userId, 'UPDATE users SET disabled_at = coalesce(disabled_at, ?) WHERE id = ?', isoFromMs(this.#clock.wallMs()), userId);
      this.#db.prepare('DELETE FROM sessions WHERE user_id = ?').run(userId);
    });
    return this.get(userId)!;
  }

  #change(userId: string, sql: string, ...params: (string | null)[]): void {
    const { changes } = this.#db.prepare(sql).run(...params);
    if (Number(changes) === 0) throw new StoreNotFoundError(`user:${userId}`);
  }
}
