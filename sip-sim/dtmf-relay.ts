/**
 * SIP INFO DTMF, `application/dtmf-relay` (the Cisco/Asterisk convention, no RFC):
 *
 *     Signal=5
 *     Duration=100
 *
 * Signal is the key (0–9, *, #, A–D; some phones send 10 and 11 for * and #), Duration its
 * length in ms. Pure.
 */

import { type DtmfDigit, isDtmfDigit } from '../src/media/dtmf/frequencies.ts';

export const DTMF_RELAY_CONTENT_TYPE = 'application/dtmf-relay';

export function formatDtmfRelay(digit: DtmfDigit, durationMs: number): string {
  return `Signal=${digit}\r\nDuration=${Math.round(durationMs)}\r\n`;
}

/** The key and duration of a dtmf-relay body, or undefined if it names no key. */
export function parseDtmfRelay(body: string): { digit: DtmfDigit; durationMs: number | undefined } | undefined {
  const fields = new Map<string, string>();
  for (const line of body.split(/\r?\n/)) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  const signal = fields.get('signal');
  if (signal === undefined) return undefined;
  const key = signal === '10' ? '*' : signal === '11' ? '#' : signal.toUpperCase();
  if (!isDtmfDigit(key)) return undefined;
  const duration = Number(fields.get('duration'));
  return { digit: key, durationMs: Number.isFinite(duration) && fields.has('duration') ? duration : undefined };
}
