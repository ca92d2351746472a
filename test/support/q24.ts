/**
 * ITU-T Q.24 receiver conditions for the AT&T and NTT columns (reference/dtmf.md §1.1), as
 * test signals made by sox — audio hushpay did not make — each with the digits a compliant
 * receiver must report: all sixteen for the accept set, none for the reject set.
 */

import { ALL_DIGITS } from '../../src/media/dtmf/frequencies.ts';
import { DtmfEngine } from '../../src/media/dtmf/engine.ts';
import { msToSamples, soxDtmf, type SoxDtmfOptions } from './soxgen.ts';

export interface Q24Condition {
  readonly name: string;
  readonly administration: 'AT&T' | 'NTT' | 'both';
  /** accept: every digit must be reported exactly once, in order; reject: none. */
  readonly expect: 'accept' | 'reject';
  readonly build: () => { signal: Int16Array; digits: string };
}

const SIXTEEN = ALL_DIGITS.join('');

function tones(options: Partial<SoxDtmfOptions> & { digits?: string }): () => { signal: Int16Array; digits: string } {
  const digits = options.digits ?? SIXTEEN;
  return () => ({ signal: soxDtmf({ onMs: 60, gapMs: 60, levelDbm0: -10, ...options, digits }), digits });
}

/** Tones of `onMs` with a `breakMs` silence cut into the middle of each (phase continues after it). */
function interrupted(onMs: number, breakMs: number): () => { signal: Int16Array; digits: string } {
  return () => {
    const gapMs = 80;
    const leadMs = 100;
    const signal = soxDtmf({ digits: SIXTEEN, onMs, gapMs, leadMs, levelDbm0: -10 });
    const on = msToSamples(onMs);
    const cut = msToSamples(breakMs);
    for (let i = 0; i < SIXTEEN.length; i++) {
      const start = msToSamples(leadMs) + i * (on + msToSamples(gapMs)) + Math.floor((on - cut) / 2);
      signal.fill(0, start, start + cut);
    }
    return { signal, digits: SIXTEEN };
  };
}

/** The same digit twice with a pause between: two digits must be reported. */
function repeated(onMs: number, pauseMs: number): () => { signal: Int16Array; digits: string } {
  const digits = ALL_DIGITS.map((d) => d + d).join('');
  return () => {
    // pairs of the same digit `pauseMs` apart, pairs 120 ms apart
    const parts: Int16Array[] = [];
    for (const d of ALL_DIGITS) {
      parts.push(soxDtmf({ digits: d, onMs, gapMs: pauseMs, leadMs: 0, levelDbm0: -10 }));
      parts.push(soxDtmf({ digits: d, onMs, gapMs: 120, leadMs: 0, levelDbm0: -10 }));
    }
    const lead = msToSamples(100);
    const signal = new Int16Array(lead + parts.reduce((n, p) => n + p.length, 0));
    let at = lead;
    for (const p of parts) {
      signal.set(p, at);
      at += p.length;
    }
    return { signal, digits };
  };
}

/** Noise 15 dB below the tone pair's total power (two tones at −10 dBm0: −7 dBm0). */
const PAIR_AT_MINUS_10_DBM0 = -10 + 10 * Math.log10(2);

export const Q24_CONDITIONS: readonly Q24Condition[] = [
  // ---- accept: the "must operate" column --------------------------------------------------
  { name: 'nominal, −10 dBm0, 50 ms on / 50 ms off', administration: 'both', expect: 'accept', build: tones({ onMs: 50, gapMs: 50 }) },
  { name: 'duration 40 ms, pause 40 ms', administration: 'AT&T', expect: 'accept', build: tones({ onMs: 40, gapMs: 40 }) },
  { name: 'duration 40 ms, pause 30 ms', administration: 'NTT', expect: 'accept', build: tones({ onMs: 40, gapMs: 30 }) },
  ...([1.5, -1.5] as const).flatMap((pct): Q24Condition[] => [
    { name: `low group ${pct > 0 ? '+' : ''}${pct} %`, administration: 'AT&T', expect: 'accept', build: tones({ lowOffsetPct: pct }) },
    { name: `high group ${pct > 0 ? '+' : ''}${pct} %`, administration: 'AT&T', expect: 'accept', build: tones({ highOffsetPct: pct }) },
  ]),
  ...([1.8, -1.8] as const).flatMap((pct): Q24Condition[] => [
    { name: `low group ${pct > 0 ? '+' : ''}${pct} %`, administration: 'NTT', expect: 'accept', build: tones({ lowOffsetPct: pct }) },
    { name: `high group ${pct > 0 ? '+' : ''}${pct} %`, administration: 'NTT', expect: 'accept', build: tones({ highOffsetPct: pct }) },
    { name: `both groups ${pct > 0 ? '+' : ''}${pct} %`, administration: 'NTT', expect: 'accept', build: tones({ lowOffsetPct: pct, highOffsetPct: pct }) },
    { name: `groups ${pct > 0 ? '+' : ''}${pct} % / ${-pct > 0 ? '+' : ''}${-pct} %`, administration: 'NTT', expect: 'accept', build: tones({ lowOffsetPct: pct, highOffsetPct: -pct }) },
  ]),
  { name: 'level 0 dBm0 per tone', administration: 'AT&T', expect: 'accept', build: tones({ levelDbm0: 0 }) },
  { name: 'level −3 dBm0 per tone', administration: 'NTT', expect: 'accept', build: tones({ levelDbm0: -3 }) },
  { name: 'level −24 dBm0 per tone', administration: 'NTT', expect: 'accept', build: tones({ levelDbm0: -24 }) },
  { name: 'level −25 dBm0 per tone', administration: 'AT&T', expect: 'accept', build: tones({ levelDbm0: -25 }) },
  { name: 'twist +4 dB (high group louder)', administration: 'AT&T', expect: 'accept', build: tones({ levelDbm0: -12, twistDb: 4 }) },
  { name: 'twist −8 dB (low group louder)', administration: 'AT&T', expect: 'accept', build: tones({ levelDbm0: -6, twistDb: -8 }) },
  { name: 'twist +5 dB', administration: 'NTT', expect: 'accept', build: tones({ levelDbm0: -12, twistDb: 5 }) },
  { name: 'twist −5 dB', administration: 'NTT', expect: 'accept', build: tones({ levelDbm0: -8, twistDb: -5 }) },
  { name: 'twist −8 dB with the weak tone at −25 dBm0', administration: 'AT&T', expect: 'accept', build: tones({ levelDbm0: -17, twistDb: -8 }) },
  { name: '−25 dBm0, +1.5 %, 40 ms', administration: 'AT&T', expect: 'accept', build: tones({ levelDbm0: -25, lowOffsetPct: 1.5, highOffsetPct: 1.5, onMs: 40, gapMs: 40 }) },
  { name: 'white noise, S/N 15 dB', administration: 'both', expect: 'accept', build: tones({ noiseDbm0: PAIR_AT_MINUS_10_DBM0 - 15 }) },
  { name: '10 ms interruption inside a 100 ms tone is bridged', administration: 'both', expect: 'accept', build: interrupted(100, 10) },
  { name: 'same digit twice, pause 40 ms', administration: 'AT&T', expect: 'accept', build: repeated(60, 40) },
  { name: 'same digit twice, pause 30 ms', administration: 'NTT', expect: 'accept', build: repeated(60, 30) },
  { name: 'signalling velocity 93 ms/digit (50 on, 43 off)', administration: 'AT&T', expect: 'accept', build: tones({ onMs: 50, gapMs: 43 }) },
  // ---- reject: the "must not operate" column ----------------------------------------------
  ...([3.5, -3.5, 4, -4, 5, -5] as const).flatMap((pct): Q24Condition[] => [
    { name: `low group ${pct > 0 ? '+' : ''}${pct} %`, administration: 'AT&T', expect: 'reject', build: tones({ lowOffsetPct: pct }) },
    { name: `high group ${pct > 0 ? '+' : ''}${pct} %`, administration: 'AT&T', expect: 'reject', build: tones({ highOffsetPct: pct }) },
  ]),
  ...([3.0, -3.0] as const).flatMap((pct): Q24Condition[] => [
    { name: `low group ${pct > 0 ? '+' : ''}${pct} %`, administration: 'NTT', expect: 'reject', build: tones({ lowOffsetPct: pct }) },
    { name: `high group ${pct > 0 ? '+' : ''}${pct} %`, administration: 'NTT', expect: 'reject', build: tones({ highOffsetPct: pct }) },
  ]),
  { name: 'duration 23 ms', administration: 'AT&T', expect: 'reject', build: tones({ onMs: 23, gapMs: 60 }) },
  { name: 'duration 24 ms', administration: 'NTT', expect: 'reject', build: tones({ onMs: 24, gapMs: 60 }) },
  { name: 'duration 20 ms', administration: 'both', expect: 'reject', build: tones({ onMs: 20, gapMs: 60 }) },
  { name: 'level −29 dBm0 per tone', administration: 'NTT', expect: 'reject', build: tones({ levelDbm0: -29 }) },
  { name: 'level −55 dBm0 per tone', administration: 'AT&T', expect: 'reject', build: tones({ levelDbm0: -55 }) },
];

/** Runs hushpay's detector over a condition and returns the digits it reported, in order. */
export function detectDigits(signal: Int16Array): string {
  let digits = '';
  const engine = new DtmfEngine({ onDigit: (d) => (digits += d.digit) });
  for (let i = 0; i < signal.length; i += 160) engine.processLinear(signal.subarray(i, i + 160));
  engine.flushLinear();
  return digits;
}

export interface Q24Result {
  readonly condition: Q24Condition;
  readonly expected: string;
  readonly detected: string;
  readonly pass: boolean;
}

export function runQ24(conditions: readonly Q24Condition[] = Q24_CONDITIONS): Q24Result[] {
  return conditions.map((condition) => {
    const { signal, digits } = condition.build();
    const detected = detectDigits(signal);
    const expected = condition.expect === 'accept' ? digits : '';
    return { condition, expected, detected, pass: detected === expected };
  });
}
