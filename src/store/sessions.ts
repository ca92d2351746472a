/**
 * Browser login sessions for the agent desktop.
 *
 * The cookie carries a random 32-byte token (base64url); the store keeps only its SHA-256, so
 * a copy of the database logs no one in. Each session has a CSRF token (random, 32 bytes) the
 * page sends back in a header, whether the second factor was passed, and an expiry on the
 * injected clock's calendar time. A session of a disabled user is no session.
 */

import { createHash, randomBytes } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import type { Clock } from '../clock.ts';
import { StoreInputError, StoreNotFoundError } from './errors.ts';
import { type Row, int, isoFromMs, text } from './sql.ts';

export const SESSION_TOKEN_BYTES = 32;

export interface NewSession {
  /** For the cookie; shown once, never stored. */
  readonly token: string;
  readonly csrfToken: string;
  /** ISO 8601. */
  readonly expiresAt: string;
}

export interface SessionInfo {
  readonly userId: string;
  readonly csrfToken: string;
  readonly expiresAt: string;
  readonly mfaPassed: boolean;
}

function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class SessionRepository {
  readonly #db: DatabaseSync;
  readonly #clock: Clock;

  constructor(db: DatabaseSync, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
  }

  /** A new session for an existing, enabled user, valid for `ttlMs` from now. */
  create(userId: string, options: { readonly ttlMs: number; readonly mfaPassed: boolean }): NewSession {
    if (!Number.isInteger(options.ttlMs) || options.ttlMs <= 0) throw new StoreInputError('ttlMs', 'must be a positive whole number of ms');
    const user = this.#db.prepare('SELECT 1 AS present FROM users WHERE id = ? AND disabled_at IS NULL').get(userId);
    if (!user) throw new StoreNotFoundError(`user:${userId}`);
    const token = randomBytes(SESSION_TOKEN_BYTES).toString('base64url');
    const csrfToken = randomBytes(SESSION_TOKEN_BYTES).toString('base64url');
    const nowMs = this.#clock.wallMs();
    const expiresAtMs = nowMs + options.ttlMs;
    this.#db
      .prepare('INSERT INTO sessions (token_hash, user_id, csrf_token, mfa_passed, created_at, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?)')
      .run(tokenHash(token), userId, csrfToken, options.mfaPassed ? 1 : 0, isoFromMs(nowMs), expiresAtMs);
    return { token, csrfToken, expiresAt: isoFromMs(expiresAtMs) };
  }

  /** The live session of this cookie token: undefined when unknown, expired or its user disabled. */
  get(token: string): SessionInfo | undefined {
    const row = this.#db
      .prepare(
        `SELECT s.user_id, s.csrf_token, s.mfa_passed, s.expires_at_ms FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ? AND s.expires_at_ms > ? AND u.disabled_at IS NULL`,
      )
      .get(tokenHash(token), this.#clock.wallMs()) as Row | undefined;
    if (!row) return undefined;
    return { userId: text(row, 'user_id'), csrfToken: text(row, 'csrf_token'), expiresAt: isoFromMs(int(row, 'expires_at_ms')), mfaPassed: int(row, 'mfa_passed') === 1 };
  }

  /** Logs this session out (nothing happens for an unknown token). */
  delete(token: string): void {
    this.#db.prepare('DELETE FROM sessions WHERE token_hash = ?').run(tokenHash(token));
  }

  /** Logs the user out everywhere; returns how many sessions ended. */
  deleteForUser(userId: string): number {
    return Number(this.#db.prepare('DELETE FROM sessions WHERE user_id = ?').run(userId).changes);
  }

  /** Removes expired sessions; returns how many. */
  prune(): number {
    return Number(this.#db.prepare('DELETE FROM sessions WHERE expires_at_ms <= ?').run(this.#clock.wallMs()).changes);
  }
}
