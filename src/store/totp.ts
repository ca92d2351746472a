/**
 * TOTP, the second factor for desktop logins (PCI DSS 8.4.2): RFC 6238 over RFC 4226 HOTP with
 * the parameters every authenticator app uses — HMAC-SHA-1, 6 digits, 30-second steps from the
 * Unix epoch — accepting the step before and after the current one for clock drift
 * (RFC 6238 §5.2: "at most one time step is allowed as the network delay").
 *
 * Secrets are RFC 4648 base32 (no padding), 20 random bytes: RFC 4226 §4 R6 asks for at least
 * 128 bits and recommends 160. Codes are compared in constant time. Replay (a code accepted
 * twice, PCI DSS 8.5.1) is refused where state lives: `UserRepository.acceptTotp`.
 */

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { StoreInputError } from './errors.ts';

export const TOTP_STEP_MS = 30_000;
export const TOTP_DIGITS = 6;
/** Steps accepted either side of the current one. */
export const TOTP_WINDOW_STEPS = 1;
export const TOTP_SECRET_BYTES = 20;
/** The shortest secret accepted (RFC 4226 R6: 128 bits). */
export const TOTP_MIN_SECRET_BYTES = 16;

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 §6 base32, without padding (as otpauth URIs carry it). */
export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** Base32 to bytes; case, spaces and `=` padding are forgiven (people type these). */
export function base32Decode(text: string): Buffer {
  const clean = text.replace(/[\s=]/g, '').toUpperCase();
  const bytes: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const ch of clean) {
    const value = BASE32_ALPHABET.indexOf(ch);
    if (value < 0) throw new StoreInputError('secret', 'is not base32 (A–Z, 2–7)');
    buffer = ((buffer << 5) | value) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bytes.push((buffer >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(bytes);
}

export function generateTotpSecret(): string {
  return base32Encode(randomBytes(TOTP_SECRET_BYTES));
}

/** A secret fit to store: base32 of at least TOTP_MIN_SECRET_BYTES; returned in canonical form. */
export function checkTotpSecret(secret: string): string {
  const key = base32Decode(secret);
  if (key.length < TOTP_MIN_SECRET_BYTES) throw new StoreInputError('secret', `must be at least ${TOTP_MIN_SECRET_BYTES} bytes (${Math.ceil((TOTP_MIN_SECRET_BYTES * 8) / 5)} base32 characters)`);
  return base32Encode(key);
}

/** RFC 4226 §5.3: HMAC-SHA-1 of the 8-byte big-endian counter, dynamic truncation, mod 10^digits. */
export function hotp(key: Uint8Array, counter: number, digits = TOTP_DIGITS): string {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(message).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

/** The time step (RFC 6238 T) of a calendar time in ms. */
export function totpStep(timeMs: number): number {
  return Math.floor(timeMs / TOTP_STEP_MS);
}

export function totpCode(secret: string, timeMs: number): string {
  return hotp(base32Decode(secret), totpStep(timeMs));
}

/**
 * The step `code` belongs to, within ±TOTP_WINDOW_STEPS of `timeMs`, or undefined. Every
 * candidate is computed and compared, so the time taken does not say which one matched.
 */
export function matchTotpStep(secret: string, code: string, timeMs: number): number | undefined {
  if (!/^\d{6}$/.test(code)) return undefined;
  const key = base32Decode(secret);
  const now = totpStep(timeMs);
  const given = Buffer.from(code, 'ascii');
  let matched: number | undefined;
  for (let step = now - TOTP_WINDOW_STEPS; step <= now + TOTP_WINDOW_STEPS; step++) {
    const equal = timingSafeEqual(Buffer.from(hotp(key, step), 'ascii'), given);
    if (equal && matched === undefined) matched = step;
  }
  return matched;
}

export function verifyTotp(secret: string, code: string, timeMs: number): boolean {
  return matchTotpStep(secret, code, timeMs) !== undefined;
}

/**
 * The `otpauth://` URI an authenticator app scans (as a QR code), in the Key Uri Format
 * authenticator apps share: `otpauth://totp/Issuer:account?secret=…&issuer=Issuer&…`.
 */
export function otpauthUri(options: { readonly secret: string; readonly account: string; readonly issuer?: string }): string {
  const issuer = options.issuer ?? 'hushpay';
  if (issuer.includes(':') || options.account.includes(':')) throw new StoreInputError('issuer', 'the issuer and account must not contain ":"');
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(options.account)}`;
  const query = new URLSearchParams({ secret: checkTotpSecret(options.secret), issuer, algorithm: 'SHA1', digits: String(TOTP_DIGITS), period: String(TOTP_STEP_MS / 1000) });
  return `otpauth://totp/${label}?${query.toString().replace(/\+/g, '%20')}`;
}
