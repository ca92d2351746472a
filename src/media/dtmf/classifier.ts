/**
 * The digit classifier: judges each tone the tracker followed against ITU-T Q.24 and names the
 * digit of those that pass. One rule set meets both administrations' columns of the Q.24 table
 * (reference/dtmf.md §1.1), by putting each threshold between the stricter "must operate"
 * and the stricter "must not operate" value:
 *
 * | parameter                 | must operate (AT&T / NTT) | must not (AT&T / NTT) | threshold here  |
 * |---------------------------|---------------------------|-----------------------|-----------------|
 * | frequency deviation       | ±1.5 % / ±1.8 %           | ±3.5 % / ±3.0 %       | ±2.4 %          |
 * | level per tone            | ≥ −25 dBm / ≥ −24 dBm     | ≤ −55 dBm / ≤ −29 dBm | −27 dBm0        |
 * | duration                  | ≥ 40 ms / ≥ 40 ms         | ≤ 23 ms / ≤ 24 ms     | 32 ms           |
 * | interruption bridged      | ≤ 10 ms                   | pause ≥ 40 / ≥ 30 ms  | gaps < 20 ms    |
 * | twist, high − low         | +4…−8 dB / ±5 dB          | –                     | +6…−9 dB        |
 *
 * Talk-off (speech read as a digit) is kept down by the energy-ratio and purity tests.
 */

import {
  BIN_COUNT,
  NOMINAL_OFFSET,
  OFFSET_COUNT,
  OFFSET_STEP_PCT,
  SUB_BLOCK_SAMPLES,
  offsetPct,
  sinusoidEnergy,
} from './filterbank.ts';
import { KEYPAD, type DtmfDigit, SAMPLE_RATE_HZ, powerToDbm0 } from './frequencies.ts';
import type { ToneSegment } from './tracker.ts';

export interface Q24Rules {
  readonly maxFrequencyDeviationPct: number;
  readonly minToneLevelDbm0: number;
  readonly minDurationMs: number;
  /** Gaps shorter than this between two segments of the same pair are bridged. */
  readonly bridgeGapMs: number;
  /** Accepted high − low level difference, dB. */
  readonly maxReverseTwistDb: number;
  readonly maxNormalTwistDb: number;
  /** Minimum (low + high tone energy) / total energy over the tone. */
  readonly minPairRatio: number;
  /** Each tone must stand this far above its group's other nominal tones. */
  readonly minPurityDb: number;
}

export const Q24: Q24Rules = {
  maxFrequencyDeviationPct: 2.4,
  minToneLevelDbm0: -27,
  minDurationMs: 32,
  bridgeGapMs: 20,
  maxReverseTwistDb: 6,
  maxNormalTwistDb: 9,
  minPairRatio: 0.5,
  minPurityDb: 10,
};

/** A digit heard in-band, with its tone's start and end in ms from the start of the stream. */
export interface InbandDigit {
  readonly digit: DtmfDigit;
  readonly startMs: number;
  readonly endMs: number;
}

/** What the classifier measured on a tone (also used by tests to explain rejections). */
export interface ToneMeasurement {
  readonly digit: DtmfDigit;
  readonly durationMs: number;
  readonly lowDeviationPct: number;
  readonly highDeviationPct: number;
  readonly lowLevelDbm0: number;
  readonly highLevelDbm0: number;
  readonly pairRatio: number;
  readonly purityDb: number;
}

interface Pending {
  lowTone: number;
  highTone: number;
  startSample: number;
  endSample: number;
  presentSubBlocks: number;
  sumRe: Float64Array;
  sumIm: Float64Array;
  energy: number;
}

/** Peak of one tone's seven offsets: interpolated deviation (%) and sinusoid energy. */
function tonePeak(p: Pending, tone: number, samples: number): { deviationPct: number; energy: number } {
  const base = tone * OFFSET_COUNT;
  let best = 0;
  const magnitude = new Float64Array(OFFSET_COUNT);
  for (let o = 0; o < OFFSET_COUNT; o++) {
    magnitude[o] = Math.hypot(p.sumRe[base + o]!, p.sumIm[base + o]!);
    if (magnitude[o]! > magnitude[best]!) best = o;
  }
  let delta = 0;
  let peak = magnitude[best]!;
  if (best > 0 && best < OFFSET_COUNT - 1) {
    const left = magnitude[best - 1]!;
    const right = magnitude[best + 1]!;
    const denominator = left - 2 * peak + right;
    if (denominator < 0) {
      delta = Math.max(-0.5, Math.min(0.5, (0.5 * (left - right)) / denominator));
      peak -= 0.25 * (left - right) * delta;
    }
  } else {
    // on the edge of the grid: the tone is at least this far off, which is past every limit
    delta = best === 0 ? -0.5 : 0.5;
  }
  return { deviationPct: offsetPct(best) + delta * OFFSET_STEP_PCT, energy: (2 * peak * peak) / samples };
}

export class DigitClassifier {
  readonly #rules: Q24Rules;
  readonly #onDigit: (digit: InbandDigit) => void;
  readonly #onMeasurement: ((m: ToneMeasurement, accepted: boolean) => void) | undefined;
  #pending: Pending | undefined;

  constructor(
    onDigit: (digit: InbandDigit) => void,
    rules: Q24Rules = Q24,
    onMeasurement?: (m: ToneMeasurement, accepted: boolean) => void,
  ) {
    this.#rules = rules;
    this.#onDigit = onDigit;
    this.#onMeasurement = onMeasurement;
  }

  /** A tone the tracker finished following. */
  segment(segment: ToneSegment): void {
    const p = this.#pending;
    const bridge = (this.#rules.bridgeGapMs * SAMPLE_RATE_HZ) / 1000;
    if (p && p.lowTone === segment.lowTone && p.highTone === segment.highTone && segment.startSample - p.endSample < bridge) {
      for (let bin = 0; bin < BIN_COUNT; bin++) {
        p.sumRe[bin] = p.sumRe[bin]! + segment.sumRe[bin]!;
        p.sumIm[bin] = p.sumIm[bin]! + segment.sumIm[bin]!;
      }
      p.energy += segment.energy;
      p.presentSubBlocks += segment.presentSubBlocks;
      p.endSample = Math.max(p.endSample, segment.endSample);
      return;
    }
    this.#finish();
    this.#pending = {
      lowTone: segment.lowTone,
      highTone: segment.highTone,
      startSample: segment.startSample,
      endSample: segment.endSample,
      presentSubBlocks: segment.presentSubBlocks,
      sumRe: Float64Array.from(segment.sumRe),
      sumIm: Float64Array.from(segment.sumIm),
      energy: segment.energy,
    };
  }

  /**
   * Time has reached `sample` (and the tracker follows `trackingPair`, if any): a pending tone
   * that can no longer be continued is judged now.
   */
  advance(sample: number, trackingSamePair: boolean): void {
    const p = this.#pending;
    if (!p || trackingSamePair) return;
    // a continuation would have been confirmed within a 40 ms window after the gap
    const horizon = ((this.#rules.bridgeGapMs + 40) * SAMPLE_RATE_HZ) / 1000;
    if (sample - p.endSample > horizon) this.#finish();
  }

  /** End of stream: judge what is pending. */
  flush(): void {
    this.#finish();
  }

  pendingPair(): { lowTone: number; highTone: number } | undefined {
    return this.#pending;
  }

  #finish(): void {
    const p = this.#pending;
    this.#pending = undefined;
    if (!p || p.presentSubBlocks === 0) return;
    const samples = p.presentSubBlocks * SUB_BLOCK_SAMPLES;
    const low = tonePeak(p, p.lowTone, samples);
    const high = tonePeak(p, p.highTone, samples);
    let purity = Infinity;
    for (const [group, peakEnergy, own] of [
      [0, low.energy, p.lowTone],
      [4, high.energy, p.highTone],
    ] as const) {
      for (let t = group; t < group + 4; t++) {
        if (t === own) continue;
        const at = t * OFFSET_COUNT + NOMINAL_OFFSET;
        const other = sinusoidEnergy(p.sumRe[at]!, p.sumIm[at]!, samples);
        purity = Math.min(purity, 10 * Math.log10(peakEnergy / Math.max(other, 1e-9)));
      }
    }
    const digit = KEYPAD[p.lowTone]![p.highTone - 4]!;
    const measurement: ToneMeasurement = {
      digit,
      durationMs: ((p.endSample - p.startSample) * 1000) / SAMPLE_RATE_HZ,
      lowDeviationPct: low.deviationPct,
      highDeviationPct: high.deviationPct,
      lowLevelDbm0: powerToDbm0(low.energy / samples),
      highLevelDbm0: powerToDbm0(high.energy / samples),
      pairRatio: p.energy > 0 ? (low.energy + high.energy) / p.energy : 0,
      purityDb: purity,
    };
    const accepted = this.#accepts(measurement);
    this.#onMeasurement?.(measurement, accepted);
    if (accepted) {
      this.#onDigit({
        digit,
        startMs: (p.startSample * 1000) / SAMPLE_RATE_HZ,
        endMs: (p.endSample * 1000) / SAMPLE_RATE_HZ,
      });
    }
  }

  #accepts(m: ToneMeasurement): boolean {
    const r = this.#rules;
    const twist = m.highLevelDbm0 - m.lowLevelDbm0;
    return (
      m.durationMs >= r.minDurationMs &&
      Math.abs(m.lowDeviationPct) <= r.maxFrequencyDeviationPct &&
      Math.abs(m.highDeviationPct) <= r.maxFrequencyDeviationPct &&
      Math.min(m.lowLevelDbm0, m.highLevelDbm0) >= r.minToneLevelDbm0 &&
      twist <= r.maxReverseTwistDb &&
      -twist <= r.maxNormalTwistDb &&
      m.pairRatio >= r.minPairRatio &&
      m.purityDb >= r.minPurityDb
    );
  }
}
