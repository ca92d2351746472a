/**
 * Password hashes: scrypt (RFC 7914) from node:crypto, stored as one self-describing string
 *
 *     scrypt$N$r$p$<salt, base64>$<hash, base64>
 *
 * with N = 16384, r = 8, p = 1, a random 16-byte salt and a 64-byte key. Verification reads the
 * parameters back from the string, so stronger ones later need no migration of old hashes.
 *
 * Both functions are async: scrypt at these parameters takes tens of ms of CPU and 16 MiB, and
 * the same event loop relays and masks call audio every 20 ms, so it runs on libuv's pool.
 */

import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { StoreInputError } from './errors.ts';

export const SCRYPT_N = 16384;
export const SCRYPT_R = 8;
export const SCRYPT_P = 1;
export const SCRYPT_KEY_BYTES = 64;
export const SCRYPT_SALT_BYTES = 16;

interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

function derive(password: string, salt: Uint8Array, keyBytes: number, params: ScryptParams): Promise<Buffer> {
  // scrypt needs 128·N·r bytes; node's default cap (32 MiB) is set from the parameters instead
  const maxmem = 256 * params.N * params.r;
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keyBytes, { ...params, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  if (password.length === 0) throw new StoreInputError('password', 'must not be empty');
  const salt = randomBytes(SCRYPT_SALT_BYTES);
  const params = { N: SCRYPT_N, r: SCRYPT_R, p: SCRYPT_P };
  const key = await derive(password, salt, SCRYPT_KEY_BYTES, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/** Parameters, salt and key of a stored hash; undefined for a string that is not one. */
function parse(stored: string): { params: ScryptParams; salt: Buffer; key: Buffer } | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  const salt = Buffer.from(parts[4]!, 'base64');
  const key = Buffer.from(parts[5]!, 'base64');
  if (![N, r, p].every((n) => Number.isInteger(n) && n > 0) || salt.length === 0 || key.length === 0) return undefined;
  return { params: { N, r, p }, salt, key };
}

/** Whether `password` matches `stored`; the comparison is constant-time. */
export async function verifyPasswordHash(password: string, stored: string): Promise<boolean> {
  const parsed = parse(stored);
  if (!parsed) return false;
  const key = await derive(password, parsed.salt, parsed.key.length, parsed.params);
  return timingSafeEqual(key, parsed.key);
}

let dummy: Promise<string> | undefined;

/**
 * A hash of a random password, made once per process: verifying against it when a username
 * does not exist costs what a real verification costs, so timing does not tell which exist.
 */
export function dummyPasswordHash(): Promise<string> {
  dummy ??= hashPassword(randomBytes(18).toString('base64'));
  return dummy;
}

/** PCI DSS 8.3.6: at least 12 characters, with both letters and digits. */
export const PASSWORD_MIN_CHARS = 12;

/**
 * What is wrong with `password` as a new password under PCI DSS 8.3.6, or undefined if nothing.
 * The store hashes any non-empty password (hashPassword); where a person chooses one (`hushpay
 * users add`, a desktop password change) this is checked first.
 */
export function passwordPolicyProblem(password: string): string | undefined {
  if ([...password].length < PASSWORD_MIN_CHARS) return `must be at least ${PASSWORD_MIN_CHARS} characters`;
  if (!/\p{L}/u.test(password) || !/\p{Nd}/u.test(password)) return 'must contain both letters and digits';
  return undefined;
}
