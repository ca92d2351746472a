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
 * Talk-off (speech read as a digit). Two voice harmonics can sit on a DTMF pair for 40 ms or
 * more, and a digit keyed while the caller talks is just as buried; what tells them apart is
 * how clearly the pair stands out at its best moment (`maxWindowRatio`, the pair's share of
 * a 40 ms window) and how exact it is. A tone that is clear at some moment (≥ 0.7) is judged
 * by the Q.24 limits above. A tone that is never clear (0.5–0.7) must also be within ±1.2 %
 * of nominal — keypads are far more exact than Q.23's ±1.8 %, voice harmonics are not — and
 * its low group may be at most 4 dB louder, where speech's falling spectrum puts its
 * harmonics. Chosen on 131 min of natural speech (5 languages) and 5,500 keys (±1 % off
 * nominal) under −14 dBm0 speech: no talk-off on that speech or on 3.5 min of espeak-ng,
 * 97 % of the buried keys named.
 */

import { BIN_COUNT, NOMINAL_OFFSET, OFFSET_COUNT, SUB_BLOCK_SAMPLES, TONE_HZ, binHz, sinusoidEnergy } from './filterbank.ts';
import { KEYPAD, type DtmfDigit, SAMPLE_RATE_HZ, powerToDbm0 } from './frequencies.ts';
import type { ToneSegment, ToneStats } from './tracker.ts';

export interface Q24Rules {
  readonly maxFrequencyDeviationPct: number;
  readonly minToneLevelDbm0: number;
  readonly minDurationMs: number;
  /** Gaps shorter than this between two segments of the same pair are bridged. */
  readonly bridgeGapMs: number;
  /** Accepted high − low level difference, dB. */
  readonly maxReverseTwistDb: number;
  readonly maxNormalTwistDb: number;
  /** Each tone must stand this far above its group's other nominal tones. */
  readonly minPurityDb: number;
  /** A tone whose best 40 ms window reaches this pair share is clear of other sound. */
  readonly clearWindowRatio: number;
  /** Below this best-window share a tone is never a digit. */
  readonly minWindowRatio: number;
  /** Limits for a tone that is never clear. */
  readonly buriedMaxDeviationPct: number;
  readonly buriedMaxNormalTwistDb: number;
}

export const Q24: Q24Rules = {
  maxFrequencyDeviationPct: 2.4,
  minToneLevelDbm0: -27,
  minDurationMs: 32,
  bridgeGapMs: 20,
  maxReverseTwistDb: 6,
  maxNormalTwistDb: 9,
  minPurityDb: 10,
  clearWindowRatio: 0.7,
  minWindowRatio: 0.5,
  buriedMaxDeviationPct: 1.2,
  buriedMaxNormalTwistDb: 4,
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
  /** |coherent sum|² / (n·Σ|S_b|²) of each tone: 1 for a steady sinusoid, less for speech. */
  readonly lowCoherence: number;
  readonly highCoherence: number;
  /** Best pair share of a 40 ms window during the tone. */
  readonly maxWindowRatio: number;
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
  low: ToneStats;
  high: ToneStats;
  maxWindowRatio: number;
}

/**
 * One tone's frequency deviation (from the mean rotation between consecutive sub-blocks at
 * its tracked bin), its sinusoid energy over the present sub-blocks (from its coherent
 * amplitude in the tracker's phase frame), and its coherence.
 */
function measureTone(stats: ToneStats, tone: number): { deviationPct: number; energy: number; coherence: number } {
  // the lag sum's angle is the tone's phase advance per sub-block, ω·40 mod 2π; take the
  // value nearest the tracked bin's own advance
  const binAdvance = (2 * Math.PI * binHz(stats.bin) * SUB_BLOCK_SAMPLES) / SAMPLE_RATE_HZ;
  let advance = binAdvance;
  if (stats.lagRe !== 0 || stats.lagIm !== 0) {
    const measured = Math.atan2(stats.lagIm, stats.lagRe);
    advance = measured + 2 * Math.PI * Math.round((binAdvance - measured) / (2 * Math.PI));
  }
  const hz = (advance * SAMPLE_RATE_HZ) / (2 * Math.PI * SUB_BLOCK_SAMPLES);
  const amplitude = stats.amplitude;
  const samples = stats.count * SUB_BLOCK_SAMPLES;
  return {
    deviationPct: (hz / TONE_HZ[tone]! - 1) * 100,
    // a coherent sum |C| over `samples`: sinusoid energy 2|C|²/N
    energy: samples > 0 ? (2 * amplitude * amplitude) / samples : 0,
    coherence: stats.incoherent > 0 ? (amplitude * amplitude) / (stats.count * stats.incoherent) : 0,
  };
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
      p.low.merge(segment.low);
      p.high.merge(segment.high);
      p.maxWindowRatio = Math.max(p.maxWindowRatio, segment.maxWindowRatio);
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
      low: segment.low.copy(),
      high: segment.high.copy(),
      maxWindowRatio: segment.maxWindowRatio,
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
    const low = measureTone(p.low, p.lowTone);
    const high = measureTone(p.high, p.highTone);
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
      lowCoherence: low.coherence,
      highCoherence: high.coherence,
      maxWindowRatio: p.maxWindowRatio,
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
    const deviation = Math.max(Math.abs(m.lowDeviationPct), Math.abs(m.highDeviationPct));
    if (
      m.durationMs < r.minDurationMs ||
      Math.min(m.lowLevelDbm0, m.highLevelDbm0) < r.minToneLevelDbm0 ||
      m.purityDb < r.minPurityDb ||
      m.maxWindowRatio < r.minWindowRatio ||
      twist > r.maxReverseTwistDb
    ) {
      return false;
    }
    if (m.maxWindowRatio >= r.clearWindowRatio) return deviation <= r.maxFrequencyDeviationPct && -twist <= r.maxNormalTwistDb;
    return deviation <= r.buriedMaxDeviationPct && -twist <= r.buriedMaxNormalTwistDb;
  }
}
