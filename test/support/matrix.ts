/**
 * The tone matrix of the media issue: every digit over durations, levels, twists, frequency
 * offsets and noise, laid end to end with gaps, so one file holds the whole matrix and the
 * referee decoders run once over it.
 *
 * Levels are the level of the STRONGER tone; the weaker sits |twist| below it (as the
 * prototype's matrix did, masking-notes.md §2). Twist is high-group minus low-group level.
 * Noise, where asked, is white, 10 dB below the tone pair's total power, over the tone and
 * the gap after it.
 */

import { ALL_DIGITS, type DtmfDigit, SAMPLE_RATE_HZ, dbm0ToRms } from '../../src/media/dtmf/frequencies.ts';
import { addDtmfTone, toInt16 } from '../../src/media/dtmf/tones.ts';

export interface MatrixTone {
  readonly digit: DtmfDigit;
  readonly durationMs: number;
  readonly levelDbm0: number;
  readonly twistDb: number;
  readonly lowOffsetPct: number;
  readonly highOffsetPct: number;
  readonly snrDb: number | undefined;
  /** Position in the signal, samples. */
  readonly startSample: number;
  readonly endSample: number;
}

export interface MatrixAxes {
  readonly digits: readonly DtmfDigit[];
  readonly durationsMs: readonly number[];
  readonly levelsDbm0: readonly number[];
  readonly twistsDb: readonly number[];
  readonly offsetsPct: readonly (readonly [number, number])[];
  readonly snrsDb: readonly (number | undefined)[];
  readonly gapMs: number;
}

export const ISSUE_MATRIX: MatrixAxes = {
  digits: ALL_DIGITS,
  durationsMs: [20, 25, 30, 40, 60, 100, 500],
  levelsDbm0: [-3, -10, -20, -30, -40, -45],
  twistsDb: [-8, -4, 0, 4, 8],
  offsetsPct: [
    [0, 0],
    [-3, -3],
    [3, 3],
    [-3, 3],
    [3, -3],
  ],
  snrsDb: [undefined, 10],
  gapMs: 120,
};

/** Small seeded generator (mulberry32) so every run builds the same signal. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Gaussian noise from a uniform source (Box–Muller). */
export function gaussian(random: () => number): () => number {
  return () => {
    const u = Math.max(random(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  };
}

export function buildMatrix(axes: MatrixAxes = ISSUE_MATRIX, seed = 1): { signal: Int16Array; tones: MatrixTone[] } {
  const random = seededRandom(seed);
  const normal = gaussian(seededRandom(seed ^ 0x9e3779b9));
  const specs: Omit<MatrixTone, 'startSample' | 'endSample'>[] = [];
  for (const snrDb of axes.snrsDb)
    for (const [lowOffsetPct, highOffsetPct] of axes.offsetsPct)
      for (const twistDb of axes.twistsDb)
        for (const levelDbm0 of axes.levelsDbm0)
          for (const durationMs of axes.durationsMs)
            for (const digit of axes.digits) specs.push({ digit, durationMs, levelDbm0, twistDb, lowOffsetPct, highOffsetPct, snrDb });

  const gap = Math.round((axes.gapMs * SAMPLE_RATE_HZ) / 1000);
  let total = gap;
  for (const spec of specs) total += Math.round((spec.durationMs * SAMPLE_RATE_HZ) / 1000) + gap;
  const signal = new Float64Array(total);
  const tones: MatrixTone[] = [];
  let at = gap;
  for (const spec of specs) {
    const length = Math.round((spec.durationMs * SAMPLE_RATE_HZ) / 1000);
    // level is the stronger tone's; the weaker is |twist| below
    const lowLevel = spec.twistDb > 0 ? spec.levelDbm0 - spec.twistDb : spec.levelDbm0;
    addDtmfTone(signal, at, length, spec.digit, {
      levelDbm0: lowLevel,
      twistDb: spec.twistDb,
      lowOffsetPct: spec.lowOffsetPct,
      highOffsetPct: spec.highOffsetPct,
      lowPhaseRad: random() * 2 * Math.PI,
      highPhaseRad: random() * 2 * Math.PI,
    });
    if (spec.snrDb !== undefined) {
      const highLevel = lowLevel + spec.twistDb;
      const pairPower = dbm0ToRms(lowLevel) ** 2 + dbm0ToRms(highLevel) ** 2;
      const noiseRms = Math.sqrt(pairPower / 10 ** (spec.snrDb / 10));
      for (let n = at; n < at + length + gap; n++) signal[n] = signal[n]! + noiseRms * normal();
    }
    tones.push({ ...spec, startSample: at, endSample: at + length });
    at += length + gap;
  }
  return { signal: toInt16(signal), tones };
}
