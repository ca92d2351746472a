/**
 * API keys: how a tenant's systems (CRM, order system) call hushpay's API.
 *
 * A key is `hpk_` + 32 random bytes in base64url (47 characters). It is shown once, at
 * `create`; the store keeps its SHA-256 (a 256-bit random key needs no slow hash) and its first
 * 8 characters, to show in lists and to find candidates by. `authenticate` looks candidates up
 * by that prefix (not secret: it is shown) and compares every candidate's hash in constant time.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import type { Clock } from '../clock.ts';
import { StoreInputError, StoreNotFoundError } from './errors.ts';
import { type Row, blob, isoFromMs, randomId, text, textOrNull } from './sql.ts';

export interface ApiKey {
  readonly id: string;
  readonly tenantId: string;
  readonly name: string;
  /** The key's first 8 characters (`hpk_` and 4 more), to tell keys apart. */
  readonly prefix: string;
  readonly createdAt: string;
  readonly revokedAt: string | null;
}

export const API_KEY_PREFIX = 'hpk_';
export const API_KEY_RANDOM_BYTES = 32;
export const API_KEY_DISPLAY_CHARS = 8;
export const API_KEY_NAME_MAX_CHARS = 100;
const API_KEY_PATTERN = /^hpk_[A-Za-z0-9_-]{43}$/;

const COLUMNS = 'id, tenant_id, name, prefix, created_at, revoked_at';

function toApiKey(row: Row): ApiKey {
  return {
    id: text(row, 'id'),
    tenantId: text(row, 'tenant_id'),
    name: text(row, 'name'),
    prefix: text(row, 'prefix'),
    createdAt: text(row, 'created_at'),
    revokedAt: textOrNull(row, 'revoked_at'),
  };
}

function sha256(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export class ApiKeyRepository {
  readonly #db: DatabaseSync;
  readonly #clock: Clock;

  constructor(db: DatabaseSync, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
  }

  /** A new key for the tenant: `key` is the only time the secret is seen. */
  create(input: { readonly tenantId: string; readonly name: string }): { key: string; record: ApiKey } {
    if (input.tenantId.length === 0) throw new StoreInputError('tenantId', 'must not be empty');
    if (input.name.trim().length === 0 || input.name.length > API_KEY_NAME_MAX_CHARS || /\p{Cc}/u.test(input.name)) {
      throw new StoreInputError('name', `must be 1 to ${API_KEY_NAME_MAX_CHARS} characters without control characters`);
    }
    const key = `${API_KEY_PREFIX}${randomBytes(API_KEY_RANDOM_BYTES).toString('base64url')}`;
    const id = randomId('key_');
    this.#db
      .prepare('INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(id, input.tenantId, input.name, key.slice(0, API_KEY_DISPLAY_CHARS), sha256(key), isoFromMs(this.#clock.wallMs()));
    return { key, record: this.get(id)! };
  }

  /** The key's record if `key` is a live (not revoked) key; otherwise undefined. */
  authenticate(key: string): ApiKey | undefined {
    if (!API_KEY_PATTERN.test(key)) return undefined;
    const hash = sha256(key);
    const candidates = this.#db.prepare(`SELECT ${COLUMNS}, key_hash FROM api_keys WHERE prefix = ?`).all(key.slice(0, API_KEY_DISPLAY_CHARS));
    let found: Row | undefined;
    for (const row of candidates) {
      const equal = timingSafeEqual(blob(row, 'key_hash'), hash);
      if (equal) found = row;
    }
    if (!found) return undefined;
    const record = toApiKey(found);
    return record.revokedAt === null ? record : undefined;
  }

  get(id: string): ApiKey | undefined {
    const row = this.#db.prepare(`SELECT ${COLUMNS} FROM api_keys WHERE id = ?`).get(id) as Row | undefined;
    return row ? toApiKey(row) : undefined;
  }

  /** Revokes the key (idempotent: the first revocation time stays). */
  revoke(id: string): ApiKey {
    const { changes } = this.#db.prepare('UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?').run(isoFromMs(this.#clock.wallMs()), id);
    if (Number(changes) === 0) throw new StoreNotFoundError(`apiKey:${id}`);
    return this.get(id)!;
  }

  /** The tenant's keys, revoked ones included, oldest first. */
  list(tenantId: string): ApiKey[] {
    return this.#db.prepare(`SELECT ${COLUMNS} FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id`).all(tenantId).map(toApiKey);
  }
}
