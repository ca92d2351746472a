/**
 * JSON the store keeps: audit details, event and webhook payloads, payment results.
 *
 * - `toJsonObject` takes what a caller passed (an object of any declared type) through JSON's
 *   own rules (a CardDigits becomes its masked form, `undefined` fields go), and refuses any
 *   field whose *name* says card data or a credential (`pan`, `securityCode`, `password`, …) at
 *   any depth: a second line of defence behind the masked events, as pino's redact paths are
 *   for logs (src/log.ts). The one exception is a capture field's progress count under the
 *   field's name (`"security-code": { "entered": 3, "expected": 3 }`): counts only, at most 19.
 * - `canonicalJson` is the JSON Canonicalization Scheme (RFC 8785) for the values JSON.parse
 *   gives: object keys sorted by UTF-16 code units, no whitespace, numbers and strings as
 *   ECMAScript's JSON.stringify writes them (which is what RFC 8785 §3.2.2 specifies). The audit
 *   chain hashes it, so anyone can recompute a hash from a row with any RFC 8785 library.
 */

import { StoreInputError } from './errors.ts';

export type JsonValue = string | number | boolean | null | readonly JsonValue[] | JsonObject;
export type JsonObject = { readonly [key: string]: JsonValue };

/** Field names (lower-cased, punctuation removed) that never go into the store. */
const FORBIDDEN_FIELDS = new Set([
  'pan',
  'cardnumber',
  'paymentcardnumber',
  'cardno',
  'primaryaccountnumber',
  'securitycode',
  'cvv',
  'cvv2',
  'cvc',
  'cvc2',
  'csc',
  'expiry',
  'expirationdate',
  'expdate',
  'track1',
  'track2',
  'pin',
  'pinblock',
  'digit',
  'digits',
  'password',
  'secret',
  'authorization',
]);

export function isForbiddenField(name: string): boolean {
  return FORBIDDEN_FIELDS.has(name.toLowerCase().replace(/[^a-z0-9]/g, ''));
}

/** The most digits a capture field has (a 19-digit PAN): a count above it is not a count. */
export const FIELD_COUNT_MAX = 19;

/**
 * Whether `value` is a capture field's progress count, `{ entered, expected, valid? }` with
 * counts of at most FIELD_COUNT_MAX: what the desktop keeps per field under the field's own
 * name (`"security-code": { "entered": 3, "expected": 3 }`). Nothing a caller keyed fits in it.
 */
export function isFieldCount(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const count = (n: unknown): boolean => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= FIELD_COUNT_MAX;
  return Object.entries(value).every(([k, v]) => ((k === 'entered' || k === 'expected') && count(v)) || (k === 'valid' && typeof v === 'boolean')) && 'entered' in value && 'expected' in value;
}

function refuseForbidden(value: JsonValue, path: string): void {
  if (Array.isArray(value)) {
    value.forEach((v: JsonValue, i) => refuseForbidden(v, `${path}[${i}]`));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      // a field's name over its count ("security-code": { "entered": 3, … }) is not the field
      if (isForbiddenField(key) && !isFieldCount(v)) throw new StoreInputError(`${path}.${key}`, 'card data and credentials are never stored');
      refuseForbidden(v, `${path}.${key}`);
    }
  }
}

/** `value` as a plain JSON object, or a StoreInputError naming `field`. */
export function toJsonObject(field: string, value: object): JsonObject {
  let parsed: unknown;
  try {
    const text = JSON.stringify(value);
    parsed = text === undefined ? undefined : JSON.parse(text);
  } catch {
    throw new StoreInputError(field, 'must be JSON (no BigInt, no cycles)');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new StoreInputError(field, 'must be a JSON object');
  const object = parsed as JsonObject;
  refuseForbidden(object, field);
  return object;
}

/** RFC 8785 canonical JSON of a value JSON.parse could have made. */
export function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new StoreInputError('json', 'numbers must be finite');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v: JsonValue) => canonicalJson(v)).join(',')}]`;
  const object = value as JsonObject;
  // Array.prototype.sort compares UTF-16 code units, as RFC 8785 §3.2.3 asks
  const keys = Object.keys(object).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(object[k]!)}`).join(',')}}`;
}

export function parseJsonObject(text: string): JsonObject {
  return JSON.parse(text) as JsonObject;
}
