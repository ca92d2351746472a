/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com; spec:
 * github.com/standard-webhooks/standard-webhooks spec/standard-webhooks.md, version 1.0.0),
 * symmetric scheme only (`v1`, HMAC-SHA256; the asymmetric `v1a` is not implemented, and `v1a`
 * entries in a header are skipped when verifying).
 *
 *   "The content to be signed is therefore: `{msg_id}.{timestamp}.{payload}`."
 *
 *   webhook-id: msg_2KWPBgLlAfxdpx2AI54pPJ85f4W
 *   webhook-timestamp: 1674087231                       (integer Unix seconds of the attempt)
 *   webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= v1,…
 *
 * "The signature header is a space delimited list of signatures … to support zero downtime
 * secret rotation": `sign()` signs with every secret given (current first, then the old ones
 * still honoured), and `verify()` accepts a match under any of the secrets it is given.
 *
 * Secrets: "Random. At least 24 bytes (192 bits, 512 maximum)", "base64 encoded, prefixed with
 * `whsec_`". Unlike the reference library, which also takes bare base64, the prefix is required
 * here: a secret without it is more likely a mistake (a different scheme's key) than a choice.
 *
 * "It's important that both the message id and the timestamp not be user controlled, or at the
 * very least not be allowed to include any `.`": ids with a `.` are refused both ways.
 *
 * "When verifying symmetric signatures, use a constant time comparison function": signatures are
 * compared as the 32 HMAC bytes with `crypto.timingSafeEqual`.
 */

import { createHmac, timingSafeEqual } from 'node:crypto';
import { WebhookHeaderError, WebhookSecretError, WebhookSignatureError, WebhookTimestampError } from './errors.ts';

export const WEBHOOK_ID_HEADER = 'webhook-id';
export const WEBHOOK_TIMESTAMP_HEADER = 'webhook-timestamp';
export const WEBHOOK_SIGNATURE_HEADER = 'webhook-signature';

/** "verify the `webhook-timestamp` header has a timestamp that is within some allowable tolerance" — 5 minutes, as the reference libraries. */
export const DEFAULT_TOLERANCE_MS = 5 * 60 * 1000;

const SECRET_PREFIX = 'whsec_';
const MIN_SECRET_BYTES = 24;
const MAX_SECRET_BYTES = 64;
const HMAC_SHA256_BYTES = 32;
const MAX_MSG_ID_CHARS = 256;
/** Base64 (standard alphabet), padding optional. */
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Visible ASCII except `.` (the delimiter of the signed content). */
const MSG_ID = /^[\x21-\x2d\x2f-\x7e]+$/;
const TIMESTAMP = /^[0-9]{1,15}$/;

/** The three headers of a signed request (a type, not an interface, so it is a HeaderSource too). */
export type WebhookHeaders = {
  readonly 'webhook-id': string;
  readonly 'webhook-timestamp': string;
  readonly 'webhook-signature': string;
};

/** Request headers as node:http (`IncomingHttpHeaders`), fetch (`Headers`) or a plain object give them; names match case-insensitively. */
export type HeaderSource = Headers | { readonly [name: string]: string | readonly string[] | undefined };

/** What `verify()` found: the id to deduplicate on, the attempt's time, and which secret matched. */
export interface VerifiedWebhook {
  readonly msgId: string;
  readonly timestampSeconds: number;
  /** Index into the secrets given to `verify()` of the first one a signature matched under. */
  readonly secretIndex: number;
}

/** Decodes `whsec_<base64>` to the HMAC key. Throws WebhookSecretError; the message never holds the secret. */
export function parseSecret(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new WebhookSecretError('does not start with whsec_');
  const encoded = secret.slice(SECRET_PREFIX.length);
  const unpadded = encoded.replace(/=+$/, '');
  if (!BASE64.test(encoded) || unpadded.length % 4 === 1 || (encoded.length !== unpadded.length && encoded.length % 4 !== 0)) {
    throw new WebhookSecretError('is not whsec_ followed by base64');
  }
  const key = Buffer.from(encoded, 'base64');
  if (key.length < MIN_SECRET_BYTES || key.length > MAX_SECRET_BYTES) {
    throw new WebhookSecretError(`decodes to ${key.length} bytes, needs ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES}`);
  }
  return key;
}

function parseSecrets(secrets: string | readonly string[]): Buffer[] {
  const list = typeof secrets === 'string' ? [secrets] : secrets;
  if (list.length === 0) throw new WebhookSecretError('no secrets given');
  return list.map(parseSecret);
}

function checkMsgId(msgId: string): void {
  if (msgId.length === 0) throw new WebhookHeaderError(WEBHOOK_ID_HEADER, 'is empty');
  if (msgId.length > MAX_MSG_ID_CHARS) throw new WebhookHeaderError(WEBHOOK_ID_HEADER, `has ${msgId.length} characters, at most ${MAX_MSG_ID_CHARS}`);
  if (!MSG_ID.test(msgId)) throw new WebhookHeaderError(WEBHOOK_ID_HEADER, 'must be visible ASCII without "."');
}

function hmac(key: Buffer, msgId: string, timestampSeconds: number, body: string | Uint8Array): Buffer {
  return createHmac('sha256', key).update(`${msgId}.${timestampSeconds}.`).update(body).digest();
}

/**
 * The `webhook-signature` value for one message attempt: `v1,<base64>` per secret, space
 * separated, in the order given. `timestampSeconds` is the attempt's Unix time in whole seconds
 * (the `webhook-timestamp` value); `body` the exact bytes sent (a string is sent as UTF-8).
 */
export function sign(msgId: string, timestampSeconds: number, body: string | Uint8Array, secrets: string | readonly string[]): string {
  checkMsgId(msgId);
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) throw new WebhookHeaderError(WEBHOOK_TIMESTAMP_HEADER, 'must be a non-negative integer of seconds');
  return parseSecrets(secrets)
    .map((key) => `v1,${hmac(key, msgId, timestampSeconds, body).toString('base64')}`)
    .join(' ');
}

/** All three headers for sending `body` as message `msgId` at `nowMs` (ms since the epoch). */
export function webhookHeaders(msgId: string, nowMs: number, body: string | Uint8Array, secrets: string | readonly string[]): WebhookHeaders {
  const timestampSeconds = Math.floor(nowMs / 1000);
  return {
    [WEBHOOK_ID_HEADER]: msgId,
    [WEBHOOK_TIMESTAMP_HEADER]: String(timestampSeconds),
    [WEBHOOK_SIGNATURE_HEADER]: sign(msgId, timestampSeconds, body, secrets),
  };
}

function header(headers: HeaderSource, name: string): string {
  let value: string | readonly string[] | null | undefined;
  if (headers instanceof Headers) {
    value = headers.get(name);
  } else {
    for (const [key, v] of Object.entries(headers)) {
      if (key.toLowerCase() !== name) continue;
      if (value !== undefined && v !== undefined) throw new WebhookHeaderError(name, 'is present more than once');
      value = v;
    }
  }
  if (Array.isArray(value)) {
    if (value.length > 1) throw new WebhookHeaderError(name, 'is present more than once');
    value = value[0];
  }
  if (typeof value !== 'string' || value.length === 0) throw new WebhookHeaderError(name, 'is missing');
  return value;
}

/**
 * Checks that `body` arrived as signed, by the holder of one of `secrets`, within `toleranceMs`
 * of `nowMs` (either side). Returns what it verified, or throws WebhookSecretError (a bad secret
 * given to it), WebhookHeaderError, WebhookTimestampError or WebhookSignatureError. `body` must
 * be the raw bytes received, not JSON re-serialised.
 */
export function verify(
  headers: HeaderSource,
  body: string | Uint8Array,
  secrets: string | readonly string[],
  nowMs: number,
  toleranceMs = DEFAULT_TOLERANCE_MS,
): VerifiedWebhook {
  const keys = parseSecrets(secrets);
  const msgId = header(headers, WEBHOOK_ID_HEADER);
  checkMsgId(msgId);
  const timestampText = header(headers, WEBHOOK_TIMESTAMP_HEADER);
  if (!TIMESTAMP.test(timestampText)) throw new WebhookHeaderError(WEBHOOK_TIMESTAMP_HEADER, 'is not an integer of seconds');
  const timestampSeconds = Number(timestampText);
  const signatures = header(headers, WEBHOOK_SIGNATURE_HEADER);

  const ageMs = nowMs - timestampSeconds * 1000;
  if (Math.abs(ageMs) > toleranceMs) throw new WebhookTimestampError(Math.trunc(ageMs / 1000), Math.trunc(toleranceMs / 1000));

  // "v1,<base64>" entries, space separated; other versions (v1a, later ones) are not ours to check.
  const candidates: Buffer[] = [];
  let v1Count = 0;
  for (const entry of signatures.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    v1Count++;
    const encoded = entry.slice(comma + 1);
    const decoded = Buffer.from(encoded, 'base64');
    // Only the canonical encoding of 32 bytes can match; anything else is a mismatch, not an error.
    if (decoded.length === HMAC_SHA256_BYTES && decoded.toString('base64') === encoded) candidates.push(decoded);
  }

  for (const [secretIndex, key] of keys.entries()) {
    const expected = hmac(key, msgId, timestampSeconds, body);
    let matched = false;
    // Every candidate is compared (no early exit), each in constant time.
    for (const candidate of candidates) matched = timingSafeEqual(candidate, expected) || matched;
    if (matched) return { msgId, timestampSeconds, secretIndex };
  }
  throw new WebhookSignatureError(v1Count, keys.length);
}
