/**
 * The mask detector: "is there a DTMF-like dual tone in this window?", asked every 5 ms of two
 * windows, more leniently than any decoder we know asks it (masking-notes.md §3).
 *
 * - Detector A, 40 ms window: the window multimon-ng itself uses, with a lower energy-ratio bar
 *   (0.40 with a ±3.5 % frequency grid, against multimon-ng's 0.40 at nominal frequencies) and
 *   a lower purity bar (6 dB against its 10 dB).
 * - Detector B, 20 ms window: catches short tones in noise, where a 40 ms window can never
 *   reach a high energy ratio.
 *
 * It does not name digits: a confirmation hands the tone pair to the tracker, which decides
 * exactly which samples to mask, and whose tone segments the digit classifier later judges.
 */

import {
  BIN_COUNT,
  FilterBank,
  NOMINAL_OFFSET,
  OFFSET_COUNT,
  SUB_BLOCK_SAMPLES,
} from './filterbank.ts';
import { dbm0ToPower } from './frequencies.ts';

export interface WindowRule {
  readonly name: 'A' | 'A′' | 'B';
  /** Window length in sub-blocks. */
  readonly subBlocks: number;
  /** Minimum (low-tone energy + high-tone energy) / window energy. */
  readonly minPairRatio: number;
  /** Peak must be this many dB above each other nominal tone of its group. */
  readonly minPurityDb: number;
  /** Peak must be this many dB above anything within ±3.5 % of the group's other tones (0 = off). */
  readonly minWidePurityDb: number;
  /** Largest accepted |high − low| level difference, dB. */
  readonly maxTwistDb: number;
  /** Weakest accepted tone, dBm0. multimon-ng decodes −70 dBm0 tones in digital silence. */
  readonly minToneLevelDbm0: number;
  /** Look for the pair at the nominal frequencies only (as decoders do), not the ±3.5 % grid. */
  readonly nominalOnly: boolean;
}

export const DETECTOR_A: WindowRule = {
  name: 'A',
  subBlocks: 8,
  minPairRatio: 0.4,
  minPurityDb: 6,
  minWidePurityDb: 5,
  maxTwistDb: 10,
  minToneLevelDbm0: -80,
  nominalOnly: false,
};

/**
 * Detector A′: the 40 ms window asked the decoders' own question. Speech under a key press
 * often puts energy beside the other tones of a group, which A's wide-purity test reads as
 * impurity, so A can miss a buried key that a decoder still reads. Decoders measure only the
 * nominal frequencies (multimon-ng: pair ≥ 40 % of a 40 ms window, 10 dB above the group's
 * other tones; spandsp: 8 dB), so A′ measures there too, a margin more leniently: pair ≥ 35 %
 * at the nominal bins, 8 dB purity, no wide test. Looking only at nominal frequencies keeps
 * voice harmonics that merely lie near a DTMF pair out of it.
 */
export const DETECTOR_A_PRIME: WindowRule = {
  name: 'A′',
  subBlocks: 8,
  minPairRatio: 0.35,
  minPurityDb: 8,
  minWidePurityDb: 0,
  maxTwistDb: 10,
  minToneLevelDbm0: -80,
  nominalOnly: true,
};

export const DETECTOR_B: WindowRule = {
  name: 'B',
  subBlocks: 4,
  minPairRatio: 0.8,
  minPurityDb: 6,
  minWidePurityDb: 0,
  maxTwistDb: 10,
  minToneLevelDbm0: -80,
  nominalOnly: false,
};

/** What a window that passed a rule found. */
export interface PairCandidate {
  readonly rule: WindowRule;
  /** Peak bins (0–55) of the low and high group. */
  readonly lowBin: number;
  readonly highBin: number;
  /** Tone indices: 0–3 low group, 4–7 high group. */
  readonly lowTone: number;
  readonly highTone: number;
  readonly pairRatio: number;
}

/**
 * Window sums kept by adding the newest sub-block and subtracting the one that left, so each
 * window costs 2 additions per bin per sub-block whatever its length.
 */
export class SlidingWindow {
  readonly subBlocks: number;
  readonly re = new Float64Array(BIN_COUNT);
  readonly im = new Float64Array(BIN_COUNT);
  /** Sinusoid energy per bin, refreshed by `refreshTones`. */
  readonly tone = new Float64Array(BIN_COUNT);
  energy = 0;

  constructor(subBlocks: number) {
    this.subBlocks = subBlocks;
  }

  /** Call after `bank.push`; the window then ends at the newest sub-block. */
  update(bank: FilterBank): void {
    const newest = bank.count - 1;
    const added = bank.slot(newest) * BIN_COUNT;
    const leaving = newest - this.subBlocks;
    const re = this.re;
    const im = this.im;
    if (leaving >= 0) {
      const removed = bank.slot(leaving) * BIN_COUNT;
      for (let bin = 0; bin < BIN_COUNT; bin++) {
        re[bin] = re[bin]! + bank.re[added + bin]! - bank.re[removed + bin]!;
        im[bin] = im[bin]! + bank.im[added + bin]! - bank.im[removed + bin]!;
      }
      this.energy += bank.energy[bank.slot(newest)]! - bank.energy[bank.slot(leaving)]!;
    } else {
      for (let bin = 0; bin < BIN_COUNT; bin++) {
        re[bin] = re[bin]! + bank.re[added + bin]!;
        im[bin] = im[bin]! + bank.im[added + bin]!;
      }
      this.energy += bank.energy[bank.slot(newest)]!;
    }
    if (this.energy < 0) this.energy = 0; // rounding after long digital silence
  }

  /** Strongest bin of each group (over all offsets, and over the nominal bins only). */
  readonly peaks = { low: 0, high: 0, lowNominal: 0, highNominal: 0 };

  /**
   * Sinusoid energies of every bin from the current sums, and each group's peaks, in one
   * pass (only when a rule asks).
   */
  refreshTones(): void {
    const scale = 2 / (this.subBlocks * SUB_BLOCK_SAMPLES);
    const re = this.re;
    const im = this.im;
    const tone = this.tone;
    const peaks = this.peaks;
    let low = 0;
    let lowNominal = NOMINAL_OFFSET;
    const half = 4 * OFFSET_COUNT;
    for (let bin = 0; bin < half; bin++) {
      const e = (re[bin]! * re[bin]! + im[bin]! * im[bin]!) * scale;
      tone[bin] = e;
      if (e > tone[low]!) low = bin;
    }
    let high = half;
    let highNominal = half + NOMINAL_OFFSET;
    for (let bin = half; bin < BIN_COUNT; bin++) {
      const e = (re[bin]! * re[bin]! + im[bin]! * im[bin]!) * scale;
      tone[bin] = e;
      if (e > tone[high]!) high = bin;
    }
    for (let t = 1; t < 4; t++) {
      const l = t * OFFSET_COUNT + NOMINAL_OFFSET;
      if (tone[l]! > tone[lowNominal]!) lowNominal = l;
      const h = half + l;
      if (tone[h]! > tone[highNominal]!) highNominal = h;
    }
    peaks.low = low;
    peaks.high = high;
    peaks.lowNominal = lowNominal;
    peaks.highNominal = highNominal;
  }
}

const DB_TO_POWER_RATIO = (db: number): number => 10 ** (db / 10);

/** Precomputed thresholds of a rule, as power ratios. */
interface CompiledRule {
  readonly rule: WindowRule;
  readonly purity: number;
  readonly widePurity: number;
  readonly twist: number;
  /** Minimum sinusoid energy over the window for the weakest accepted tone. */
  readonly minToneEnergy: number;
}

function compile(rule: WindowRule): CompiledRule {
  return {
    rule,
    purity: DB_TO_POWER_RATIO(rule.minPurityDb),
    widePurity: rule.minWidePurityDb > 0 ? DB_TO_POWER_RATIO(rule.minWidePurityDb) : 0,
    twist: DB_TO_POWER_RATIO(rule.maxTwistDb),
    minToneEnergy: dbm0ToPower(rule.minToneLevelDbm0) * rule.subBlocks * SUB_BLOCK_SAMPLES,
  };
}

interface GroupPeak {
  bin: number;
  energy: number;
}

const scratchLow: GroupPeak = { bin: 0, energy: 0 };
const scratchHigh: GroupPeak = { bin: 0, energy: 0 };

/** Whether the peak stands clear of the group's other three tones (nominal and, if asked, wide). */
function pure(tone: Float64Array, firstTone: number, peak: GroupPeak, compiled: CompiledRule): boolean {
  const peakTone = (peak.bin / OFFSET_COUNT) | 0;
  for (let t = firstTone; t < firstTone + 4; t++) {
    if (t === peakTone) continue;
    const base = t * OFFSET_COUNT;
    if (peak.energy < compiled.purity * tone[base + NOMINAL_OFFSET]!) return false;
    if (compiled.widePurity > 0) {
      for (let o = 0; o < OFFSET_COUNT; o++) if (peak.energy < compiled.widePurity * tone[base + o]!) return false;
    }
  }
  return true;
}

/** Tests one window against one rule; returns the pair it found, or undefined. */
export function evaluateWindow(window: SlidingWindow, compiled: CompiledRule): PairCandidate | undefined {
  const tone = window.tone;
  const nominalOnly = compiled.rule.nominalOnly;
  const low = scratchLow;
  const high = scratchHigh;
  low.bin = nominalOnly ? window.peaks.lowNominal : window.peaks.low;
  high.bin = nominalOnly ? window.peaks.highNominal : window.peaks.high;
  low.energy = tone[low.bin]!;
  high.energy = tone[high.bin]!;
  const weaker = Math.min(low.energy, high.energy);
  const stronger = Math.max(low.energy, high.energy);
  if (weaker < compiled.minToneEnergy) return undefined;
  const pairRatio = (low.energy + high.energy) / window.energy;
  if (!(pairRatio >= compiled.rule.minPairRatio)) return undefined;
  if (stronger > compiled.twist * weaker) return undefined;
  if (!pure(tone, 0, low, compiled) || !pure(tone, 4, high, compiled)) return undefined;
  return {
    rule: compiled.rule,
    lowBin: low.bin,
    highBin: high.bin,
    lowTone: (low.bin / OFFSET_COUNT) | 0,
    highTone: (high.bin / OFFSET_COUNT) | 0,
    pairRatio,
  };
}

/** Updates two windows with the newest sub-block in one pass over the bank. */
function updateWindows(bank: FilterBank, a: SlidingWindow, b: SlidingWindow): void {
  const newest = bank.count - 1;
  const leavingA = newest - a.subBlocks;
  const leavingB = newest - b.subBlocks;
  if (leavingA < 0 || leavingB < 0) {
    a.update(bank);
    b.update(bank);
    return;
  }
  const added = bank.slot(newest) * BIN_COUNT;
  const removedA = bank.slot(leavingA) * BIN_COUNT;
  const removedB = bank.slot(leavingB) * BIN_COUNT;
  const bre = bank.re;
  const bim = bank.im;
  const are = a.re;
  const aim = a.im;
  const cre = b.re;
  const cim = b.im;
  for (let bin = 0; bin < BIN_COUNT; bin++) {
    const nr = bre[added + bin]!;
    const ni = bim[added + bin]!;
    are[bin] = are[bin]! + nr - bre[removedA + bin]!;
    aim[bin] = aim[bin]! + ni - bim[removedA + bin]!;
    cre[bin] = cre[bin]! + nr - bre[removedB + bin]!;
    cim[bin] = cim[bin]! + ni - bim[removedB + bin]!;
  }
  const energy = bank.energy[bank.slot(newest)]!;
  a.energy = Math.max(0, a.energy + energy - bank.energy[bank.slot(leavingA)]!);
  b.energy = Math.max(0, b.energy + energy - bank.energy[bank.slot(leavingB)]!);
}

/** Both windows of the mask detector, updated and asked once per sub-block. */
export class MaskDetector {
  readonly long: SlidingWindow;
  readonly short: SlidingWindow;
  readonly #longRules: readonly CompiledRule[];
  readonly #shortRules: readonly CompiledRule[];

  constructor(longRules: readonly WindowRule[] = [DETECTOR_A, DETECTOR_A_PRIME], shortRules: readonly WindowRule[] = [DETECTOR_B]) {
    this.long = new SlidingWindow(longRules[0]?.subBlocks ?? 8);
    this.short = new SlidingWindow(shortRules[0]?.subBlocks ?? 4);
    this.#longRules = longRules.map(compile);
    this.#shortRules = shortRules.map(compile);
  }

  /**
   * Updates both windows with the newest sub-block and returns a confirmed pair, if any rule
   * passes. The long window is asked first: its frequency estimate is the finer one.
   */
  update(bank: FilterBank): PairCandidate | undefined {
    updateWindows(bank, this.long, this.short);
    if (bank.count >= this.long.subBlocks) {
      this.long.refreshTones();
      for (const rule of this.#longRules) {
        const found = evaluateWindow(this.long, rule);
        if (found) return found;
      }
    }
    if (bank.count >= this.short.subBlocks) {
      this.short.refreshTones();
      for (const rule of this.#shortRules) {
        const found = evaluateWindow(this.short, rule);
        if (found) return found;
      }
    }
    return undefined;
  }

}
