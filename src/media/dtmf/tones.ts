/**
 * Signal sources: DTMF key presses, the neutral "flat" beep and comfort noise.
 *
 * All return or fill 16-bit linear samples at 8 kHz. They are used by the masker (flat beep,
 * comfort noise), by sip-sim to key digits in-band, and by tests and the benchmark to build
 * test audio (which is then also checked against sox-made audio, so no stage grades itself).
 */

import { type DtmfDigit, SAMPLE_RATE_HZ, dbm0ToRms, dbm0ToSineAmplitude, digitFrequencies } from './frequencies.ts';

export interface DtmfToneOptions {
  /** Level of the low-group tone, dBm0. */
  levelDbm0: number;
  /** High-group level minus low-group level, dB (+4 = high group 4 dB louder). */
  twistDb?: number;
  /** Frequency offsets in percent of nominal. */
  lowOffsetPct?: number;
  highOffsetPct?: number;
  /** Start phases in radians (default 0). */
  lowPhaseRad?: number;
  highPhaseRad?: number;
}

/** Adds one DTMF tone pair to `out[start, start + length)` (mixing, not overwriting). */
export function addDtmfTone(out: Float64Array | Int16Array, start: number, length: number, digit: DtmfDigit, options: DtmfToneOptions): void {
  const { lowHz, highHz } = digitFrequencies(digit);
  const twistDb = options.twistDb ?? 0;
  const lowAmplitude = dbm0ToSineAmplitude(options.levelDbm0);
  const highAmplitude = dbm0ToSineAmplitude(options.levelDbm0 + twistDb);
  const lowStep = (2 * Math.PI * lowHz * (1 + (options.lowOffsetPct ?? 0) / 100)) / SAMPLE_RATE_HZ;
  const highStep = (2 * Math.PI * highHz * (1 + (options.highOffsetPct ?? 0) / 100)) / SAMPLE_RATE_HZ;
  const lowPhase = options.lowPhaseRad ?? 0;
  const highPhase = options.highPhaseRad ?? 0;
  const end = Math.min(out.length, start + length);
  for (let n = Math.max(0, start); n < end; n++) {
    const k = n - start;
    const value = out[n]! + lowAmplitude * Math.sin(lowPhase + lowStep * k) + highAmplitude * Math.sin(highPhase + highStep * k);
    out[n] = out instanceof Int16Array ? clamp16(value) : value;
  }
}

export function clamp16(value: number): number {
  const rounded = Math.round(value);
  return rounded > 32767 ? 32767 : rounded < -32768 ? -32768 : rounded;
}

/** Rounds and clips a float signal to 16-bit samples. */
export function toInt16(signal: Float64Array): Int16Array {
  const out = new Int16Array(signal.length);
  for (let i = 0; i < signal.length; i++) out[i] = clamp16(signal[i]!);
  return out;
}

/**
 * The flat beep an agent hears in place of a key press: one sine, the same for every key.
 * 1000 Hz lies outside both DTMF groups (941 Hz + 3.5 % = 974 Hz, 1209 Hz − 3.5 % = 1167 Hz),
 * and a single tone is never a DTMF pair, so no decoder can read a digit from it.
 */
export const FLAT_BEEP_HZ = 1000;
export const FLAT_BEEP_LEVEL_DBM0 = -18;
/** Raised-cosine ramp at each end of a beep, so it starts and stops without clicks. */
export const FLAT_BEEP_RAMP_SAMPLES = 20;

/** Phase-continuous source of the flat beep; `next()` returns one sample of the steady tone. */
export class FlatBeep {
  readonly #step = (2 * Math.PI * FLAT_BEEP_HZ) / SAMPLE_RATE_HZ;
  readonly #amplitude = dbm0ToSineAmplitude(FLAT_BEEP_LEVEL_DBM0);
  #phase = 0;

  /** One sample scaled by `gain` (0–1, the ramp envelope). */
  next(gain: number): number {
    const value = this.#amplitude * gain * Math.sin(this.#phase);
    this.#phase += this.#step;
    if (this.#phase > 2 * Math.PI) this.#phase -= 2 * Math.PI;
    return value;
  }

  reset(): void {
    this.#phase = 0;
  }
}

/** Raised-cosine gain for position `index` of a ramp of `length` samples (0 → 1). */
export function rampGain(index: number, length: number): number {
  if (index >= length) return 1;
  if (index < 0) return 0;
  return 0.5 - 0.5 * Math.cos((Math.PI * (index + 0.5)) / length);
}

/** Comfort noise level: quiet enough to be unobtrusive, loud enough to be heard as a live line. */
export const COMFORT_NOISE_LEVEL_DBM0 = -55;

/**
 * White comfort noise from a small seeded generator (mulberry32), so outputs are reproducible
 * in tests. White noise has no spectral peaks, so it carries no DTMF pair.
 */
export class ComfortNoise {
  #state: number;
  readonly #scale: number;

  constructor(seed = 0x5eed, levelDbm0 = COMFORT_NOISE_LEVEL_DBM0) {
    this.#state = seed >>> 0;
    // uniform in [-1, 1) has rms 1/√3
    this.#scale = dbm0ToRms(levelDbm0) * Math.sqrt(3);
  }

  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const uniform = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return (uniform * 2 - 1) * this.#scale;
  }
}

export interface KeyPress {
  digit: DtmfDigit;
  /** Start time in ms from the start of the signal, and tone duration. */
  startMs: number;
  durationMs: number;
  options: DtmfToneOptions;
}

/** Renders key presses into a float signal of the given length (samples). */
export function renderKeyPresses(lengthSamples: number, presses: readonly KeyPress[], base?: Float64Array): Float64Array {
  const out = base ? Float64Array.from(base) : new Float64Array(lengthSamples);
  for (const press of presses) {
    const start = Math.round((press.startMs * SAMPLE_RATE_HZ) / 1000);
    const length = Math.round((press.durationMs * SAMPLE_RATE_HZ) / 1000);
    addDtmfTone(out, start, length, press.digit, press.options);
  }
  return out;
}
