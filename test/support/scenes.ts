/**
 * Speech over digits: key presses laid over speech, as when a caller keys a card number while
 * talking or while the agent talks over them. Used for both jobs of the engine:
 * - leaks: every tone, however weak or short, must be masked (the prototype's scene set,
 *   masking-notes.md §2: stronger tone −3…−30 dBm0, twist −8…+8 dB, offsets ±3 %, 20–200 ms);
 * - detection: keypad-like digits (nominal level and frequency) must all be named.
 */

import { ALL_DIGITS, type DtmfDigit, SAMPLE_RATE_HZ } from '../../src/media/dtmf/frequencies.ts';
import { addDtmfTone, toInt16 } from '../../src/media/dtmf/tones.ts';
import { seededRandom } from './matrix.ts';

export interface SceneKey {
  readonly digit: DtmfDigit;
  readonly startSample: number;
  readonly endSample: number;
  readonly levelDbm0: number;
  readonly twistDb: number;
  readonly lowOffsetPct: number;
  readonly highOffsetPct: number;
}

export interface KeyDistribution {
  /** Level of the stronger tone, dBm0: one of these, at random. */
  readonly levelsDbm0: readonly number[];
  /** Uniform ranges. */
  readonly twistDb: readonly [number, number];
  readonly offsetPct: readonly [number, number];
  readonly durationMs: readonly [number, number];
  /** Silence-free spacing between key presses, ms (uniform). */
  readonly spacingMs: readonly [number, number];
}

/** The prototype's leak set: anything a decoder might still read. */
export const LEAK_KEYS: KeyDistribution = {
  levelsDbm0: [-3, -10, -15, -20, -25, -30],
  twistDb: [-8, 8],
  offsetPct: [-3, 3],
  durationMs: [20, 200],
  spacingMs: [300, 800],
};

/**
 * A handset keying a card number: tones of 60–120 ms within ±0.5 % of nominal (crystal or
 * digitally synthesised DTMF; Q.23 allows ±1.8 %, which `KEYPAD_KEYS_WIDE` stands for).
 */
export const KEYPAD_KEYS: KeyDistribution = {
  levelsDbm0: [-8, -9, -10, -11, -12],
  twistDb: [-2, 3],
  offsetPct: [-0.5, 0.5],
  durationMs: [60, 120],
  spacingMs: [300, 1000],
};

/** The same keypad with the frequency spread of a worn or cheap sender, ±1 %. */
export const KEYPAD_KEYS_WIDE: KeyDistribution = { ...KEYPAD_KEYS, offsetPct: [-1, 1] };

/**
 * Lays `count` key presses (cycling through all 16 digits) over `speech`, starting 0.5 s in,
 * and returns the mixed signal (cut to the last key plus 0.5 s) and the keys.
 */
export function speechOverDigits(speech: Int16Array, count: number, keys: KeyDistribution, seed: number): { signal: Int16Array; keys: SceneKey[] } {
  const random = seededRandom(seed);
  const uniform = ([lo, hi]: readonly [number, number]): number => lo + (hi - lo) * random();
  const signal = Float64Array.from(speech);
  const placed: SceneKey[] = [];
  let at = SAMPLE_RATE_HZ / 2;
  for (let i = 0; i < count; i++) {
    const digit = ALL_DIGITS[i % ALL_DIGITS.length]!;
    const length = Math.round((uniform(keys.durationMs) * SAMPLE_RATE_HZ) / 1000);
    if (at + length + SAMPLE_RATE_HZ / 2 > signal.length) break;
    const levelDbm0 = keys.levelsDbm0[Math.floor(random() * keys.levelsDbm0.length)]!;
    const twistDb = uniform(keys.twistDb);
    const lowOffsetPct = uniform(keys.offsetPct);
    const highOffsetPct = uniform(keys.offsetPct);
    addDtmfTone(signal, at, length, digit, {
      levelDbm0: twistDb > 0 ? levelDbm0 - twistDb : levelDbm0,
      twistDb,
      lowOffsetPct,
      highOffsetPct,
      lowPhaseRad: random() * 2 * Math.PI,
      highPhaseRad: random() * 2 * Math.PI,
    });
    placed.push({ digit, startSample: at, endSample: at + length, levelDbm0, twistDb, lowOffsetPct, highOffsetPct });
    at += length + Math.round((uniform(keys.spacingMs) * SAMPLE_RATE_HZ) / 1000);
  }
  const end = Math.min(signal.length, (placed.at(-1)?.endSample ?? 0) + SAMPLE_RATE_HZ / 2);
  return { signal: toInt16(signal.subarray(0, end)), keys: placed };
}
