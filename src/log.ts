/**
 * Logging: pino, JSON lines. Card data never reaches a log — by construction (log calls carry
 * ids, counts and codes, not digits) and, as a second line of defence, by redaction of every
 * field whose name could hold one, at any depth the paths list.
 */

import { pino, type Logger } from 'pino';

/** Field names that must never be logged with their values (pino `redact` paths). */
export const REDACTED_FIELDS = ['digit', 'digits', 'pan', 'cardNumber', 'cvv', 'securityCode', 'expiry', 'password', 'secret', 'authorization'];

const paths = REDACTED_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env['HUSHPAY_LOG_LEVEL'] ?? 'info',
      base: { service: 'hushpay' },
      redact: { paths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    (options.destination ?? process.stderr) as pino.DestinationStream,
  );
}

export type { Logger };
