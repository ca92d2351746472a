/**
 * Logging: pino, JSON lines. Card data never reaches a log — by construction (log calls carry
 * ids, counts and codes, not digits) and, as a second line of defence, by redaction of every
 * field whose name could hold one, at any depth the paths list.
 */

import { pino, type Logger } from 'pino';

/** Field names that must never be logged with their values, matched at any depth, in any case. */
export const REDACTED_FIELDS = ['digit', 'digits', 'pan', 'cardNumber', 'cvv', 'securityCode', 'expiry', 'password', 'secret', 'authorization'];

const REDACTED = new Set(REDACTED_FIELDS.map((f) => f.toLowerCase()));
const CENSOR = '[redacted]';
/** Deeper than this, a value is replaced whole (a log line is never that deep on purpose). */
const MAX_DEPTH = 8;

/** A copy of `value` with every field of a redacted name censored, at any depth. */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (Array.isArray(value)) return depth >= MAX_DEPTH ? CENSOR : value.map((v) => redactDeep(v, depth + 1));
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return value;
  if (depth >= MAX_DEPTH) return CENSOR;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = REDACTED.has(key.toLowerCase()) ? CENSOR : redactDeep(v, depth + 1);
  return out;
}

export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env['HUSHPAY_LOG_LEVEL'] ?? 'info',
      base: { service: 'hushpay' },
      formatters: { log: (object) => redactDeep(object) as Record<string, unknown> },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    (options.destination ?? process.stderr) as pino.DestinationStream,
  );
}

export type { Logger };
