/**
 * Extent tracking: once the mask detector confirms a tone pair, decide exactly which 5 ms
 * sub-blocks hold it, by predicting each tone's phasor and testing every sub-block against the
 * prediction (masking-notes.md §3, "extent tracking").
 *
 * Why coherent prediction: a window detector keeps firing for up to 40 ms after a tone ends,
 * and plain energy at the tone frequencies is kept alive by speech. A continuing sinusoid has
 * a phasor we can predict — same amplitude, phase advancing at a known rate — while speech
 * does not, so "does this sub-block look like the tone we locked on?" ends the mask within a
 * sub-block or two of the tone's real end.
 *
 * The tracker never names a digit. It reports each tone it followed as a `ToneSegment`; the
 * digit classifier judges those against ITU-T Q.24.
 */

import {
  BIN_COUNT,
  FilterBank,
  OFFSET_COUNT,
  OFFSET_STEP_PCT,
  SUB_BLOCK_SAMPLES,
  TONE_HZ,
  binHz,
} from './filterbank.ts';
import type { PairCandidate, SlidingWindow } from './detector.ts';

/** Both tones must project onto their prediction within this range (10 ms phasors). */
const PRESENT_MIN = 0.6;
const PRESENT_MAX = 2.0;
/** PLL gains for amplitude, phase and rotation, and the gate on the samples it learns from. */
const PLL_AMPLITUDE_GAIN = 0.2;
const PLL_PHASE_GAIN = 0.3;
const PLL_ROTATION_GAIN = 0.05;
const PLL_GATE_MIN = 0.6;
const PLL_GATE_MAX = 1.6;
/** Candidate reference sub-blocks need this share of the window's peak amplitude at both tones. */
const REFERENCE_MIN_SHARE = 0.4;
/** Failing closed, the mask runs to the last sub-block with this share of the window's peak at both tones. */
const FAIL_CLOSED_SHARE = 0.3;
/** A tone is over after this many absent sub-blocks (15 ms). */
const END_AFTER_MISSES = 3;
/** After a miss, this many consecutive present sub-blocks resume the tone (and back-fill the gap). */
const RESUME_AFTER_PRESENT = 2;
/** Sub-blocks masked before the first present one and after each present one (5 ms each). */
const PRE_ROLL_SUB_BLOCKS = 1;
const POST_ROLL_SUB_BLOCKS = 1;
/** How far back a confirmation may extend the mask over earlier present sub-blocks (200 ms). */
const MAX_BACKTRACK_SUB_BLOCKS = 40;
/** A re-confirmation of the tone that just ended must match its amplitude within ±6 dB. */
const REACQUIRE_MAX_RATIO = 10 ** (6 / 20);
/** Within this many sub-blocks of a tone's end, a confirmation of the same pair is a re-confirmation. */
const REACQUIRE_WINDOW_SUB_BLOCKS = 8;

/** Where the tracker asks for masking; indices are sub-block indices of the stream. */
export interface MaskSink {
  /** Masks sub-blocks [from, to). Sub-blocks already sent are silently skipped by the sink. */
  mask(from: number, to: number): void;
}

/** One tone the tracker followed from start to end, with what the digit classifier needs. */
export interface ToneSegment {
  readonly lowTone: number;
  readonly highTone: number;
  /** Tone start and end in samples from the start of the stream (fractional sub-block edges). */
  readonly startSample: number;
  readonly endSample: number;
  /** Number of sub-blocks judged present. */
  readonly presentSubBlocks: number;
  /** Coherent sums over the present sub-blocks for every bin, and their total energy. */
  readonly sumRe: Float64Array;
  readonly sumIm: Float64Array;
  readonly energy: number;
  /** What was measured on each tone at its tracked bin. */
  readonly low: ToneStats;
  readonly high: ToneStats;
  /** Best (low + high tone energy) / energy of the 40 ms windows ending on present sub-blocks. */
  readonly maxWindowRatio: number;
}

/**
 * What was measured of one tone over the sub-blocks judged present: its phasor at the tracked
 * bin in each of them (absolute phase, so phasors of bridged segments stay coherent), from
 * which the classifier finds the tone's exact frequency and level afterwards.
 */
export class ToneStats {
  bin = 0;
  /** Sub-block index, and phasor at `bin`, of each present sub-block (at most MAX_KEPT). */
  readonly index: number[] = [];
  readonly re: number[] = [];
  readonly im: number[] = [];
  /** Σ|S_b|² over them. */
  incoherent = 0;

  get count(): number {
    return this.index.length;
  }

  reset(bin: number): void {
    this.bin = bin;
    this.index.length = 0;
    this.re.length = 0;
    this.im.length = 0;
    this.incoherent = 0;
  }

  add(bank: FilterBank, j: number): void {
    if (this.index.length >= MAX_KEPT_SUB_BLOCKS) return;
    const at = bank.slot(j) * BIN_COUNT + this.bin;
    const re = bank.re[at]!;
    const im = bank.im[at]!;
    this.index.push(j);
    this.re.push(re);
    this.im.push(im);
    this.incoherent += re * re + im * im;
  }

  /**
   * Adds another segment of the same tone (a bridged interruption). Phasors measured at
   * another bin are carried to this one: e^{−j(ω_this − ω_other)·n0}.
   */
  merge(other: ToneStats): void {
    const delta = BIN_OMEGA_OF(this.bin) - BIN_OMEGA_OF(other.bin);
    for (let i = 0; i < other.index.length && this.index.length < MAX_KEPT_SUB_BLOCKS; i++) {
      const j = other.index[i]!;
      const angle = -delta * j * SUB_BLOCK_SAMPLES;
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      this.index.push(j);
      this.re.push(other.re[i]! * c - other.im[i]! * s);
      this.im.push(other.re[i]! * s + other.im[i]! * c);
    }
    this.incoherent += other.incoherent;
  }

  copy(): ToneStats {
    const c = new ToneStats();
    c.reset(this.bin);
    c.merge(this);
    return c;
  }
}

/** Longest tone measured in full (2 s); the rest of a longer one adds nothing to its verdict. */
const MAX_KEPT_SUB_BLOCKS = 400;

function BIN_OMEGA_OF(bin: number): number {
  return (2 * Math.PI * binHz(bin)) / 8000;
}

/** One tracked component (the low or the high tone) of a pair. */
class TrackedTone {
  bin = 0;
  /** Phase advance per sub-block of the tone at `bin`, radians (residual frequency). */
  rotation = 0;
  /** Predicted sub-block phasor at sub-block `refIndex`. */
  refRe = 0;
  refIm = 0;
  refIndex = 0;

  /** Predicted sub-block phasor at sub-block j, written to `out`. */
  predict(j: number, out: Complex): void {
    const angle = this.rotation * (j - this.refIndex);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    out.re = this.refRe * c - this.refIm * s;
    out.im = this.refRe * s + this.refIm * c;
  }

  amplitude(): number {
    return Math.hypot(this.refRe, this.refIm);
  }
}

interface Complex {
  re: number;
  im: number;
}

const predicted: Complex = { re: 0, im: 0 };
const ratio: Complex = { re: 0, im: 0 };

/**
 * The 10 ms projection of sub-blocks (j − 1, j) of `tone` onto its prediction, as the complex
 * ratio measured / predicted, written to `out`.
 */
function project10ms(bank: FilterBank, tone: TrackedTone, j: number, out: Complex): void {
  tone.predict(j, predicted);
  // prediction for j − 1 is the one for j turned back by one rotation step
  const c = Math.cos(tone.rotation);
  const s = Math.sin(tone.rotation);
  const pr = predicted.re + (predicted.re * c + predicted.im * s);
  const pi = predicted.im + (predicted.im * c - predicted.re * s);
  const a = bank.slot(j) * BIN_COUNT + tone.bin;
  const b = bank.slot(j - 1) * BIN_COUNT + tone.bin;
  const mr = bank.re[a]! + bank.re[b]!;
  const mi = bank.im[a]! + bank.im[b]!;
  const norm = pr * pr + pi * pi;
  if (norm === 0) {
    out.re = 0;
    out.im = 0;
    return;
  }
  out.re = (mr * pr + mi * pi) / norm;
  out.im = (mi * pr - mr * pi) / norm;
}

/** Sub-blocks in the wide (20 ms) presence test used when back-tracking. */
const WIDE_SUB_BLOCKS = 4;

/** The projection of sub-blocks [from, to] summed onto their summed prediction. */
function projectSpan(bank: FilterBank, tone: TrackedTone, from: number, to: number, out: Complex): void {
  let mr = 0;
  let mi = 0;
  let pr = 0;
  let pi = 0;
  for (let j = from; j <= to; j++) {
    tone.predict(j, predicted);
    pr += predicted.re;
    pi += predicted.im;
    const a = bank.slot(j) * BIN_COUNT + tone.bin;
    mr += bank.re[a]!;
    mi += bank.im[a]!;
  }
  const norm = pr * pr + pi * pi;
  out.re = norm === 0 ? 0 : (mr * pr + mi * pi) / norm;
  out.im = norm === 0 ? 0 : (mi * pr - mr * pi) / norm;
}

/** The 5 ms projection of sub-block j onto the prediction (real part, clamped to [0, 1]). */
function occupancy(bank: FilterBank, tone: TrackedTone, j: number): number {
  if (!bank.holds(j)) return 0;
  tone.predict(j, predicted);
  const a = bank.slot(j) * BIN_COUNT + tone.bin;
  const norm = predicted.re * predicted.re + predicted.im * predicted.im;
  if (norm === 0) return 0;
  const r = (bank.re[a]! * predicted.re + bank.im[a]! * predicted.im) / norm;
  return r < 0 ? 0 : r > 1 ? 1 : r;
}

/** Parabolic interpolation of the peak across neighbouring offsets: −0.5…+0.5 grid steps. */
function interpolatePeak(magnitudes: ArrayLike<number>, offset: number): number {
  if (offset <= 0 || offset >= OFFSET_COUNT - 1) return 0;
  const left = magnitudes[offset - 1]!;
  const mid = magnitudes[offset]!;
  const right = magnitudes[offset + 1]!;
  const denominator = left - 2 * mid + right;
  if (denominator >= 0) return 0;
  const delta = (0.5 * (left - right)) / denominator;
  return delta < -0.5 ? -0.5 : delta > 0.5 ? 0.5 : delta;
}

/** Rotation per sub-block, radians, of a tone `stepsFromBin` grid steps away from `bin`. */
function residualRotation(bin: number, stepsFromBin: number): number {
  const tone = (bin / OFFSET_COUNT) | 0;
  const stepHz = binSpacingHz(tone);
  return (2 * Math.PI * stepsFromBin * stepHz * SUB_BLOCK_SAMPLES) / 8000;
}

function binSpacingHz(tone: number): number {
  return (TONE_HZ[tone]! * OFFSET_STEP_PCT) / 100;
}

export class ToneTracker {
  readonly #bank: FilterBank;
  /** The detector's 40 ms window (its tone energies are fresh after every sub-block). */
  readonly #window: SlidingWindow;
  #maxWindowRatio = 0;
  readonly #sink: MaskSink;
  readonly #onSegment: (segment: ToneSegment) => void;
  readonly #low = new TrackedTone();
  readonly #high = new TrackedTone();

  #active = false;
  #lowTone = 0;
  #highTone = 0;
  #firstPresent = 0;
  #lastPresent = 0;
  #misses = 0;
  #resumeRun = 0;
  #presentCount = 0;
  readonly #sumRe = new Float64Array(BIN_COUNT);
  readonly #sumIm = new Float64Array(BIN_COUNT);
  #energy = 0;
  readonly #lowStats = new ToneStats();
  readonly #highStats = new ToneStats();

  /** The tone that ended last, for the re-confirmation check. */
  #lastEnded: { lowTone: number; highTone: number; endIndex: number; lowAmp: number; highAmp: number } | undefined;

  constructor(bank: FilterBank, window: SlidingWindow, sink: MaskSink, onSegment: (segment: ToneSegment) => void) {
    this.#bank = bank;
    this.#window = window;
    this.#sink = sink;
    this.#onSegment = onSegment;
  }

  get active(): boolean {
    return this.#active;
  }

  /** Whether a tone of this pair is being followed now. */
  follows(pair: { lowTone: number; highTone: number }): boolean {
    return this.#active && pair.lowTone === this.#lowTone && pair.highTone === this.#highTone;
  }

  /**
   * Called once per sub-block after the filter bank and the detector have seen it, with the
   * detector's confirmation (if any).
   */
  step(candidate: PairCandidate | undefined, earliestMaskable: number): void {
    const k = this.#bank.count - 1;
    if (this.#active) {
      if (candidate && (candidate.lowTone !== this.#lowTone || candidate.highTone !== this.#highTone)) {
        this.#end();
      } else {
        this.#follow(k, earliestMaskable);
        return;
      }
    }
    if (candidate) this.#acquire(candidate, k, earliestMaskable);
  }

  /** Ends any tone in progress (end of stream). */
  flush(): void {
    if (this.#active) this.#end();
  }

  #present(j: number): boolean {
    if (!this.#bank.holds(j) || !this.#bank.holds(j - 1)) return false;
    project10ms(this.#bank, this.#low, j, ratio);
    if (ratio.re < PRESENT_MIN || ratio.re > PRESENT_MAX) return false;
    project10ms(this.#bank, this.#high, j, ratio);
    return ratio.re >= PRESENT_MIN && ratio.re <= PRESENT_MAX;
  }

  /** The 20 ms projection of sub-blocks [j, j + 3] (not past `newest`) for both tones. */
  #presentWide(j: number, newest: number): boolean {
    const last = j + WIDE_SUB_BLOCKS - 1;
    if (last > newest || !this.#bank.holds(j)) return false;
    for (const tone of [this.#low, this.#high]) {
      projectSpan(this.#bank, tone, j, last, ratio);
      if (ratio.re < PRESENT_MIN || ratio.re > PRESENT_MAX) return false;
    }
    return true;
  }

  #acquire(candidate: PairCandidate, k: number, earliestMaskable: number): void {
    const bank = this.#bank;
    const windowStart = Math.max(k - candidate.rule.subBlocks + 1, bank.count - bank.history + 1, 1);

    // Each tone's bin is its strongest offset in the window (whichever rule confirmed it), and
    // its residual rotation comes from the window spectrum around that peak.
    for (const [tone, bin] of [
      [this.#low, candidate.lowBin],
      [this.#high, candidate.highBin],
    ] as const) {
      const first = bin - (bin % OFFSET_COUNT);
      const magnitudes = new Float64Array(OFFSET_COUNT);
      let best = 0;
      for (let o = 0; o < OFFSET_COUNT; o++) {
        let re = 0;
        let im = 0;
        for (let j = windowStart; j <= k; j++) {
          re += bank.re[bank.slot(j) * BIN_COUNT + first + o]!;
          im += bank.im[bank.slot(j) * BIN_COUNT + first + o]!;
        }
        magnitudes[o] = Math.hypot(re, im);
        if (magnitudes[o]! > magnitudes[best]!) best = o;
      }
      tone.bin = first + best;
      tone.rotation = residualRotation(tone.bin, interpolatePeak(magnitudes, best));
    }

    // Reference: the candidate sub-block under which most of the window agrees ("consensus").
    let maxLow = 0;
    let maxHigh = 0;
    for (let j = windowStart; j <= k; j++) {
      maxLow = Math.max(maxLow, this.#magnitude(j, this.#low.bin));
      maxHigh = Math.max(maxHigh, this.#magnitude(j, this.#high.bin));
    }
    let bestIndex = -1;
    let bestAgree = -1;
    let bestStrength = 0;
    for (let c = windowStart; c <= k; c++) {
      const lowMag = this.#magnitude(c, this.#low.bin);
      const highMag = this.#magnitude(c, this.#high.bin);
      if (lowMag < REFERENCE_MIN_SHARE * maxLow || highMag < REFERENCE_MIN_SHARE * maxHigh) continue;
      this.#setReference(c);
      let agree = 0;
      for (let j = windowStart; j <= k; j++) if (this.#present(j)) agree++;
      const strength = lowMag * highMag;
      if (agree > bestAgree || (agree === bestAgree && strength > bestStrength)) {
        bestAgree = agree;
        bestIndex = c;
        bestStrength = strength;
      }
    }
    // The window holds a DTMF-like pair but maybe no sub-block of it predicts the others (a
    // tone buried in loud speech): then fail closed and mask what is still unsent of it.
    // Its end is the last sub-block where both tones are still near their peak in the window.
    const maskWindow = (): void => {
      let last = windowStart;
      for (let j = windowStart; j <= k; j++) {
        const low = this.#magnitude(j, this.#low.bin);
        const high = this.#magnitude(j, this.#high.bin);
        if (low >= FAIL_CLOSED_SHARE * maxLow && high >= FAIL_CLOSED_SHARE * maxHigh) last = j;
      }
      this.#sink.mask(windowStart - PRE_ROLL_SUB_BLOCKS, last + 1 + POST_ROLL_SUB_BLOCKS);
    };
    if (bestIndex < 0 || bestAgree <= 0) {
      maskWindow();
      return;
    }
    this.#setReference(bestIndex);
    if (!this.#refineReference(windowStart, k)) this.#setReference(bestIndex);

    // A confirmation of the pair that has just ended: the same tone seen again by a window that
    // still holds it, or the tone resuming after speech broke the track. Accept it only at the
    // same strength (speech after a tone must not extend its mask), and only for what is new.
    const last = this.#lastEnded;
    const reconfirmation =
      last !== undefined &&
      last.lowTone === candidate.lowTone &&
      last.highTone === candidate.highTone &&
      k - last.endIndex <= REACQUIRE_WINDOW_SUB_BLOCKS;
    if (reconfirmation && !(withinRatio(this.#low.amplitude(), last.lowAmp) && withinRatio(this.#high.amplitude(), last.highAmp))) {
      return;
    }

    // The longest run of present sub-blocks in the window, joined with present sub-blocks
    // around it across single misses, then back-tracked before the window.
    const present: boolean[] = [];
    for (let j = windowStart; j <= k; j++) present.push(this.#present(j));
    let runStart = -1;
    let runEnd = -1;
    for (let i = 0; i < present.length; ) {
      if (!present[i]) {
        i++;
        continue;
      }
      let e = i;
      while (e + 1 < present.length && present[e + 1]) e++;
      if (e - i > runEnd - runStart) {
        runStart = i;
        runEnd = e;
      }
      i = e + 1;
    }
    if (runStart < 0) {
      maskWindow();
      return;
    }
    while (runStart >= 2 && present[runStart - 2] && !present[runStart - 1]) {
      runStart -= 2;
      while (runStart > 0 && present[runStart - 1]) runStart--;
    }
    while (runEnd + 2 < present.length && present[runEnd + 2] && !present[runEnd + 1]) {
      runEnd += 2;
      while (runEnd + 1 < present.length && present[runEnd + 1]) runEnd++;
    }
    let first = windowStart + runStart;
    const lastPresent = windowStart + runEnd;
    const backLimit = Math.max(k - MAX_BACKTRACK_SUB_BLOCKS, earliestMaskable, bank.count - bank.history + 1);
    while (first - 1 >= backLimit && this.#present(first - 1)) first--;
    // The mask reaches further back, by the 20 ms projection as well: under loud speech the
    // 10 ms test misses sub-blocks that do hold the tone, and a decoder's 40 ms window still
    // finds it there. (The tone's measured extent stays with the 10 ms test.)
    let maskFirst = first;
    while (maskFirst - 1 >= backLimit && this.#presentWide(maskFirst - 1, k)) maskFirst--;
    let maskFrom = maskFirst - PRE_ROLL_SUB_BLOCKS;
    if (reconfirmation) {
      first = Math.max(first, last.endIndex + 1);
      if (lastPresent < first) return;
      // the same tone, broken by interference: close the gap as well
      maskFrom = last.endIndex + 1;
    }

    this.#active = true;
    this.#lowTone = candidate.lowTone;
    this.#highTone = candidate.highTone;
    this.#firstPresent = first;
    this.#lastPresent = lastPresent;
    this.#misses = k - lastPresent;
    this.#resumeRun = 0;
    this.#presentCount = 0;
    this.#sumRe.fill(0);
    this.#sumIm.fill(0);
    this.#energy = 0;
    this.#lowStats.reset(this.#low.bin);
    this.#highStats.reset(this.#high.bin);
    this.#maxWindowRatio = this.#windowRatio();
    for (let j = first; j <= lastPresent; j++) this.#accumulate(j);
    this.#sink.mask(maskFrom, lastPresent + 1 + POST_ROLL_SUB_BLOCKS);
    if (this.#misses >= END_AFTER_MISSES) this.#end();
  }

  #follow(k: number, earliestMaskable: number): void {
    if (this.#present(k)) {
      if (this.#misses === 0) {
        this.#maxWindowRatio = Math.max(this.#maxWindowRatio, this.#windowRatio());
        this.#accumulate(k);
        this.#learn(k);
        this.#lastPresent = k;
        this.#sink.mask(k, k + 1 + POST_ROLL_SUB_BLOCKS);
        return;
      }
      this.#resumeRun++;
      if (this.#resumeRun >= RESUME_AFTER_PRESENT) {
        // back-fill the gap (what is still unsent) and carry on
        for (let j = this.#lastPresent + 1; j <= k; j++) this.#accumulate(j);
        this.#sink.mask(Math.max(this.#lastPresent + 1, earliestMaskable), k + 1 + POST_ROLL_SUB_BLOCKS);
        this.#learn(k);
        this.#lastPresent = k;
        this.#misses = 0;
        this.#resumeRun = 0;
      }
      return;
    }
    this.#resumeRun = 0;
    this.#misses++;
    if (this.#misses >= END_AFTER_MISSES) this.#end();
  }

  /** PLL: nudge amplitude, phase and rotation toward the newest present sub-block. */
  #learn(k: number): void {
    for (const tone of [this.#low, this.#high]) {
      project10ms(this.#bank, tone, k, ratio);
      const magnitude = Math.hypot(ratio.re, ratio.im);
      tone.predict(k, predicted);
      tone.refRe = predicted.re;
      tone.refIm = predicted.im;
      tone.refIndex = k;
      if (magnitude < PLL_GATE_MIN || magnitude > PLL_GATE_MAX || ratio.re <= 0) continue;
      const phase = Math.atan2(ratio.im, ratio.re);
      const gain = 1 + PLL_AMPLITUDE_GAIN * (magnitude - 1);
      const turn = PLL_PHASE_GAIN * phase;
      const c = Math.cos(turn) * gain;
      const s = Math.sin(turn) * gain;
      const re = tone.refRe * c - tone.refIm * s;
      const im = tone.refRe * s + tone.refIm * c;
      tone.refRe = re;
      tone.refIm = im;
      tone.rotation += PLL_ROTATION_GAIN * phase;
    }
  }

  #accumulate(j: number): void {
    const bank = this.#bank;
    if (!bank.holds(j)) return;
    const base = bank.slot(j) * BIN_COUNT;
    for (let bin = 0; bin < BIN_COUNT; bin++) {
      this.#sumRe[bin] = this.#sumRe[bin]! + bank.re[base + bin]!;
      this.#sumIm[bin] = this.#sumIm[bin]! + bank.im[base + bin]!;
    }
    this.#energy += bank.energy[bank.slot(j)]!;
    this.#lowStats.add(bank, j);
    this.#highStats.add(bank, j);
    this.#presentCount++;
  }

  #end(): void {
    this.#active = false;
    const bank = this.#bank;
    // Fractional edges: how much of the sub-blocks just outside the present run the tone fills,
    // judged on the stronger tone (least disturbed by the other's leakage).
    const stronger = this.#low.amplitude() >= this.#high.amplitude() ? this.#low : this.#high;
    let start = this.#firstPresent * SUB_BLOCK_SAMPLES;
    for (let j = this.#firstPresent - 1; j >= this.#firstPresent - 2; j--) {
      const occ = occupancy(bank, stronger, j);
      start -= occ * SUB_BLOCK_SAMPLES;
      if (occ < 0.9) break;
    }
    let end = (this.#lastPresent + 1) * SUB_BLOCK_SAMPLES;
    for (let j = this.#lastPresent + 1; j <= this.#lastPresent + 2; j++) {
      const occ = occupancy(bank, stronger, j);
      end += occ * SUB_BLOCK_SAMPLES;
      if (occ < 0.9) break;
    }
    this.#lastEnded = {
      lowTone: this.#lowTone,
      highTone: this.#highTone,
      endIndex: this.#lastPresent,
      lowAmp: this.#low.amplitude(),
      highAmp: this.#high.amplitude(),
    };
    this.#onSegment({
      lowTone: this.#lowTone,
      highTone: this.#highTone,
      startSample: start,
      endSample: end,
      presentSubBlocks: this.#presentCount,
      sumRe: Float64Array.from(this.#sumRe),
      sumIm: Float64Array.from(this.#sumIm),
      energy: this.#energy,
      low: this.#lowStats.copy(),
      high: this.#highStats.copy(),
      maxWindowRatio: this.#maxWindowRatio,
    });
  }

  /** The tracked pair's share of the 40 ms window ending now (best offset of each tone). */
  #windowRatio(): number {
    const w = this.#window;
    if (w.energy <= 0) return 0;
    let low = 0;
    let high = 0;
    const lowBase = this.#lowTone * OFFSET_COUNT;
    const highBase = this.#highTone * OFFSET_COUNT;
    for (let o = 0; o < OFFSET_COUNT; o++) {
      low = Math.max(low, w.tone[lowBase + o]!);
      high = Math.max(high, w.tone[highBase + o]!);
    }
    return (low + high) / w.energy;
  }

  #magnitude(j: number, bin: number): number {
    const at = this.#bank.slot(j) * BIN_COUNT + bin;
    return Math.hypot(this.#bank.re[at]!, this.#bank.im[at]!);
  }

  #setReference(c: number): void {
    for (const tone of [this.#low, this.#high]) {
      const at = this.#bank.slot(c) * BIN_COUNT + tone.bin;
      tone.refRe = this.#bank.re[at]!;
      tone.refIm = this.#bank.im[at]!;
      tone.refIndex = c;
    }
  }

  /**
   * Averages the reference over the window's sub-blocks that agree with it. Returns false, with
   * the reference moved, if the average agrees with fewer sub-blocks than the single one did.
   */
  #refineReference(from: number, to: number): boolean {
    const agreeing: number[] = [];
    for (let j = from; j <= to; j++) if (this.#present(j)) agreeing.push(j);
    if (agreeing.length === 0) return false;
    for (const tone of [this.#low, this.#high]) {
      let re = 0;
      let im = 0;
      for (const j of agreeing) {
        const at = this.#bank.slot(j) * BIN_COUNT + tone.bin;
        // turn sub-block j's phasor back to the reference index
        const angle = -tone.rotation * (j - tone.refIndex);
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        re += this.#bank.re[at]! * c - this.#bank.im[at]! * s;
        im += this.#bank.re[at]! * s + this.#bank.im[at]! * c;
      }
      tone.refRe = re / agreeing.length;
      tone.refIm = im / agreeing.length;
    }
    let after = 0;
    for (let j = from; j <= to; j++) if (this.#present(j)) after++;
    return after >= agreeing.length;
  }

}

function withinRatio(a: number, b: number): boolean {
  return a <= b * REACQUIRE_MAX_RATIO && b <= a * REACQUIRE_MAX_RATIO;
}
