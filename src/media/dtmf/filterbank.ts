/**
 * The DTMF front end: single-bin DFTs on 5 ms sub-blocks at 56 frequencies, the eight DTMF
 * nominal frequencies each at seven offsets from −3.5 % to +3.5 %.
 *
 * Every DFT is taken against the ABSOLUTE sample phase, e^{−jω·n} with n counted from the
 * start of the stream. Then the DFT of any run of sub-blocks is simply the sum of their
 * sub-block values, so windows of 10, 20 and 40 ms — and the whole length of a tone — cost
 * additions, not new transforms (masking-notes.md §3).
 *
 * Cost. A direct DFT needs 56 complex multiply-adds per sample. Instead each sub-block is
 * mixed down once per nominal frequency (8 per sample), summed in four 10-sample chunks, and
 * the seven offsets are formed from the four chunk sums with one twiddle each. Treating the
 * offset rotation as constant within a 10-sample chunk loses at most 0.06 dB at 3.5 % of
 * 1633 Hz; `CHUNK_GAIN` puts that back, so a tone on any bin reads its true level.
 */

import { HIGH_GROUP_HZ, LOW_GROUP_HZ, SAMPLE_RATE_HZ } from './frequencies.ts';

export const SUB_BLOCK_SAMPLES = 40; // 5 ms
export const SUB_BLOCK_MS = (SUB_BLOCK_SAMPLES * 1000) / SAMPLE_RATE_HZ;
const CHUNK_SAMPLES = 10;
const CHUNKS = SUB_BLOCK_SAMPLES / CHUNK_SAMPLES;

export const TONE_COUNT = 8; // 4 low group, then 4 high group
export const OFFSET_COUNT = 7;
export const BIN_COUNT = TONE_COUNT * OFFSET_COUNT;
export const MAX_OFFSET_PCT = 3.5;
export const OFFSET_STEP_PCT = (2 * MAX_OFFSET_PCT) / (OFFSET_COUNT - 1);
/** Index of the nominal (0 %) offset. */
export const NOMINAL_OFFSET = (OFFSET_COUNT - 1) / 2;

export const TONE_HZ: readonly number[] = [...LOW_GROUP_HZ, ...HIGH_GROUP_HZ];

export function offsetPct(offset: number): number {
  return (offset - NOMINAL_OFFSET) * OFFSET_STEP_PCT;
}

export function binIndex(tone: number, offset: number): number {
  return tone * OFFSET_COUNT + offset;
}

export function binHz(bin: number): number {
  const tone = Math.floor(bin / OFFSET_COUNT);
  return TONE_HZ[tone]! * (1 + offsetPct(bin % OFFSET_COUNT) / 100);
}

/** Angular frequency of every bin, radians per sample. */
const BIN_OMEGA = Float64Array.from({ length: BIN_COUNT }, (_, bin) => (2 * Math.PI * binHz(bin)) / SAMPLE_RATE_HZ);

/** Mixing tables: cos/sin of each nominal frequency at local sample m of a sub-block. */
const MIX_COS = new Float64Array(TONE_COUNT * SUB_BLOCK_SAMPLES);
const MIX_SIN = new Float64Array(TONE_COUNT * SUB_BLOCK_SAMPLES);
/**
 * Offset twiddles. Offsets come in ± pairs around the nominal (Δ and −Δ), so with
 * P = Σ_c Y_c·cos(Δ·m_c) and Q = Σ_c Y_c·sin(Δ·m_c) over the chunk sums Y_c, the two bins are
 * P − jQ (for +Δ) and P + jQ (for −Δ): half the multiplications of two separate sums.
 * Indexed [(tone * PAIRS + pair) * CHUNKS + c], pair p meaning offsets NOMINAL ± (p + 1).
 */
const PAIRS = (OFFSET_COUNT - 1) / 2;
const PAIR_COS = new Float64Array(TONE_COUNT * PAIRS * CHUNKS);
const PAIR_SIN = new Float64Array(TONE_COUNT * PAIRS * CHUNKS);
/** Rotation that carries a bin's phasor from one sub-block to the next: e^{−jω·40}. */
export const STEP_RE = new Float64Array(BIN_COUNT);
export const STEP_IM = new Float64Array(BIN_COUNT);

for (let tone = 0; tone < TONE_COUNT; tone++) {
  const omega = (2 * Math.PI * TONE_HZ[tone]!) / SAMPLE_RATE_HZ;
  for (let m = 0; m < SUB_BLOCK_SAMPLES; m++) {
    MIX_COS[tone * SUB_BLOCK_SAMPLES + m] = Math.cos(omega * m);
    MIX_SIN[tone * SUB_BLOCK_SAMPLES + m] = -Math.sin(omega * m);
  }
}
for (let tone = 0; tone < TONE_COUNT; tone++) {
  for (let pair = 0; pair < PAIRS; pair++) {
    const delta = (2 * Math.PI * TONE_HZ[tone]! * offsetPct(NOMINAL_OFFSET + pair + 1)) / 100 / SAMPLE_RATE_HZ;
    // Constant rotation within a chunk attenuates a tone on this bin by the Dirichlet kernel
    // D = sin(LΔ/2) / (L sin(Δ/2)); dividing the twiddle by D restores unit gain.
    const chunkGain = Math.sin((CHUNK_SAMPLES * delta) / 2) / (CHUNK_SAMPLES * Math.sin(delta / 2));
    for (let c = 0; c < CHUNKS; c++) {
      const centre = c * CHUNK_SAMPLES + (CHUNK_SAMPLES - 1) / 2;
      PAIR_COS[(tone * PAIRS + pair) * CHUNKS + c] = Math.cos(delta * centre) / chunkGain;
      PAIR_SIN[(tone * PAIRS + pair) * CHUNKS + c] = Math.sin(delta * centre) / chunkGain;
    }
  }
}
for (let bin = 0; bin < BIN_COUNT; bin++) {
  STEP_RE[bin] = Math.cos(BIN_OMEGA[bin]! * SUB_BLOCK_SAMPLES);
  STEP_IM[bin] = -Math.sin(BIN_OMEGA[bin]! * SUB_BLOCK_SAMPLES);
}

/** The rotations are renormalised every this many sub-blocks (rounding drift is ~1e-16 a step). */
const RENORMALISE_EVERY = 64;

/**
 * Sub-block history. `history` sub-blocks are kept; `index` counts sub-blocks from the start of
 * the stream, so sub-block i lives in ring slot i % history.
 */
export class FilterBank {
  readonly history: number;
  /**
   * Phasors, [slot * BIN_COUNT + bin], kept as 32-bit floats: the history is most of a call's
   * engine memory (64 slots × 56 bins × 2), and a 24-bit mantissa is far finer than any
   * threshold here. The sliding sums add and later subtract the same stored values, so the
   * rounding does not accumulate.
   */
  readonly re: Float32Array;
  readonly im: Float32Array;
  /** Energy (sum of squares) of each sub-block, by slot. */
  readonly energy: Float64Array;
  /** Number of sub-blocks analysed so far; the newest is `count - 1`. */
  count = 0;

  /** e^{−jω·n0} for the current sub-block start n0, per bin (absolute phase). */
  readonly #rotRe = new Float64Array(BIN_COUNT).fill(1);
  readonly #rotIm = new Float64Array(BIN_COUNT);
  readonly #x = new Float64Array(SUB_BLOCK_SAMPLES);
  readonly #chunkRe = new Float64Array(TONE_COUNT * CHUNKS);
  readonly #chunkIm = new Float64Array(TONE_COUNT * CHUNKS);
  /** Local-phase phasors of the newest sub-block, [bin * 2] re, [bin * 2 + 1] im. */
  readonly #local = new Float64Array(BIN_COUNT * 2);

  constructor(history: number) {
    this.history = history;
    this.re = new Float32Array(history * BIN_COUNT);
    this.im = new Float32Array(history * BIN_COUNT);
    this.energy = new Float64Array(history);
  }

  slot(index: number): number {
    return index % this.history;
  }

  /** Analyses one sub-block of `SUB_BLOCK_SAMPLES` samples starting at `samples[start]`. */
  push(samples: ArrayLike<number>, start: number): void {
    const x = this.#x;
    let energy = 0;
    for (let m = 0; m < SUB_BLOCK_SAMPLES; m++) {
      const v = samples[start + m]!;
      x[m] = v;
      energy += v * v;
    }
    const chunkRe = this.#chunkRe;
    const chunkIm = this.#chunkIm;
    for (let tone = 0; tone < TONE_COUNT; tone++) {
      const table = tone * SUB_BLOCK_SAMPLES;
      for (let c = 0; c < CHUNKS; c++) {
        let accRe = 0;
        let accIm = 0;
        const base = c * CHUNK_SAMPLES;
        for (let m = base; m < base + CHUNK_SAMPLES; m++) {
          const v = x[m]!;
          accRe += v * MIX_COS[table + m]!;
          accIm += v * MIX_SIN[table + m]!;
        }
        chunkRe[tone * CHUNKS + c] = accRe;
        chunkIm[tone * CHUNKS + c] = accIm;
      }
    }

    // Offsets from the chunk sums: the nominal bin is their plain sum, each ± pair shares P and Q.
    const local = this.#local;
    for (let tone = 0; tone < TONE_COUNT; tone++) {
      const y = tone * CHUNKS;
      const nominal = (tone * OFFSET_COUNT + NOMINAL_OFFSET) * 2;
      local[nominal] = chunkRe[y]! + chunkRe[y + 1]! + chunkRe[y + 2]! + chunkRe[y + 3]!;
      local[nominal + 1] = chunkIm[y]! + chunkIm[y + 1]! + chunkIm[y + 2]! + chunkIm[y + 3]!;
      for (let pair = 0; pair < PAIRS; pair++) {
        const t = (tone * PAIRS + pair) * CHUNKS;
        let pr = 0;
        let pi = 0;
        let qr = 0;
        let qi = 0;
        for (let c = 0; c < CHUNKS; c++) {
          const yr = chunkRe[y + c]!;
          const yi = chunkIm[y + c]!;
          const cs = PAIR_COS[t + c]!;
          const sn = PAIR_SIN[t + c]!;
          pr += yr * cs;
          pi += yi * cs;
          qr += yr * sn;
          qi += yi * sn;
        }
        const up = nominal + (pair + 1) * 2;
        const down = nominal - (pair + 1) * 2;
        local[up] = pr + qi;
        local[up + 1] = pi - qr;
        local[down] = pr - qi;
        local[down + 1] = pi + qr;
      }
    }

    // Carry every bin to absolute phase, then advance its rotation by one sub-block.
    const slotBase = this.slot(this.count) * BIN_COUNT;
    const rotRe = this.#rotRe;
    const rotIm = this.#rotIm;
    const renormalise = this.count % RENORMALISE_EVERY === 0;
    for (let bin = 0; bin < BIN_COUNT; bin++) {
      const localRe = local[bin * 2]!;
      const localIm = local[bin * 2 + 1]!;
      const rr = rotRe[bin]!;
      const ri = rotIm[bin]!;
      this.re[slotBase + bin] = localRe * rr - localIm * ri;
      this.im[slotBase + bin] = localRe * ri + localIm * rr;
      let nr = rr * STEP_RE[bin]! - ri * STEP_IM[bin]!;
      let ni = rr * STEP_IM[bin]! + ri * STEP_RE[bin]!;
      if (renormalise) {
        // one Newton step keeps |rot| = 1 against rounding drift over hours of audio
        const norm = 1.5 - 0.5 * (nr * nr + ni * ni);
        nr *= norm;
        ni *= norm;
      }
      rotRe[bin] = nr;
      rotIm[bin] = ni;
    }
    this.energy[this.slot(this.count)] = energy;
    this.count++;
  }

  /** Whether sub-block `index` is still held. */
  holds(index: number): boolean {
    return index >= 0 && index < this.count && index >= this.count - this.history;
  }
}

/** Energy of a sinusoid matching a phasor summed over `samples` samples: 2|C|²/N. */
export function sinusoidEnergy(re: number, im: number, samples: number): number {
  return (2 * (re * re + im * im)) / samples;
}
