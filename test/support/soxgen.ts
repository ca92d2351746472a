// An independent DTMF test-signal generator: sox synthesises every tone and the noise, in the
// spirit of shared/tools/gen_dtmf.sh. It exists so that tests can check hushpay's own tone
// generator and detector against audio hushpay did not make. Only silence padding and the
// noise mix are done here (plain array arithmetic).
//
// Level convention (spandsp/ITU): 0 dBm0 sine = rms 16,174 = peak 22,873 in 16-bit linear.

import { execFileSync } from 'node:child_process';

export const SAMPLE_RATE = 8000;
/** rms of a 0 dBm0 signal in 16-bit linear units. */
export const DBM0_RMS = 16174;

const LOW: Record<string, number> = {
  '1': 697, '2': 697, '3': 697, A: 697,
  '4': 770, '5': 770, '6': 770, B: 770,
  '7': 852, '8': 852, '9': 852, C: 852,
  '*': 941, '0': 941, '#': 941, D: 941,
};
const HIGH: Record<string, number> = {
  '1': 1209, '4': 1209, '7': 1209, '*': 1209,
  '2': 1336, '5': 1336, '8': 1336, '0': 1336,
  '3': 1477, '6': 1477, '9': 1477, '#': 1477,
  A: 1633, B: 1633, C: 1633, D: 1633,
};

export interface SoxDtmfOptions {
  /** digits from 0-9 * # A-D (lower-case a-d accepted) */
  digits: string;
  /** tone duration per digit, ms */
  onMs: number;
  /** silence after each digit, ms */
  gapMs: number;
  /** silence before the first digit, ms (default 100, as gen_dtmf.sh) */
  leadMs?: number;
  /** level of the low-group tone, dBm0 */
  levelDbm0: number;
  /** high-group level minus low-group level, dB (default 0) */
  twistDb?: number;
  /** low-group frequency offset, percent (default 0) */
  lowOffsetPct?: number;
  /** high-group frequency offset, percent (default 0) */
  highOffsetPct?: number;
  /** white noise (flat 0–4 kHz) over the whole signal, dBm0 rms; absent = no noise */
  noiseDbm0?: number;
}

/** ms → whole samples at 8 kHz */
export function msToSamples(ms: number): number {
  return Math.round((ms * SAMPLE_RATE) / 1000);
}

const RAW_OUT = ['-t', 'raw', '-e', 'signed-integer', '-b', '16', '-L', '-r', String(SAMPLE_RATE), '-c', '1', '-'];

function runSox(args: string[]): Int16Array {
  let out: Buffer;
  try {
    out = execFileSync('sox', ['-D', '-R', '-V1', ...args], { maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`sox failed (apt-get install sox): ${msg}`);
  }
  const n = Math.floor(out.length / 2);
  const s = new Int16Array(n);
  for (let i = 0; i < n; i++) s[i] = out.readInt16LE(2 * i);
  return s;
}

/** sox gain (dB re full-scale sine) that gives a sine of `dbm0`. */
function sineGainDb(dbm0: number): number {
  return dbm0 + 20 * Math.log10((DBM0_RMS * Math.SQRT2) / 32767);
}

/** One tone pair of exactly `n` samples, synthesised by sox. */
function soxTonePair(n: number, fLow: number, fHigh: number, lowDbm0: number, highDbm0: number): Int16Array {
  if (n <= 0) return new Int16Array(0);
  return runSox([
    '-r', String(SAMPLE_RATE), '-c', '2', '-n',
    ...RAW_OUT,
    'synth', `${n}s`, 'sine', fLow.toFixed(4), 'sine', fHigh.toFixed(4),
    'remix', `1p${sineGainDb(lowDbm0).toFixed(4)},2p${sineGainDb(highDbm0).toFixed(4)}`,
  ]);
}

/** `n` samples of sox white noise (uniform, flat to 4 kHz) at `dbm0` rms. Repeatable (sox -R). */
export function soxWhiteNoise(n: number, dbm0: number): Int16Array {
  if (n <= 0) return new Int16Array(0);
  // uniform [-1, 1] has rms 1/sqrt(3) of full scale
  const gain = dbm0 + 20 * Math.log10(DBM0_RMS / 32767) - 20 * Math.log10(1 / Math.sqrt(3));
  return runSox(['-r', String(SAMPLE_RATE), '-c', '1', '-n', ...RAW_OUT, 'synth', `${n}s`, 'whitenoise', 'gain', gain.toFixed(4)]);
}

/** DTMF test audio made by sox: lead silence, then per digit a tone and a gap. 8 kHz mono s16. */
export function soxDtmf(opts: SoxDtmfOptions): Int16Array {
  const lead = msToSamples(opts.leadMs ?? 100);
  const on = msToSamples(opts.onMs);
  const gap = msToSamples(opts.gapMs);
  if (on <= 0 || gap < 0 || lead < 0) throw new RangeError('soxDtmf: onMs must be > 0, gapMs and leadMs >= 0');
  const twist = opts.twistDb ?? 0;
  const lowMul = 1 + (opts.lowOffsetPct ?? 0) / 100;
  const highMul = 1 + (opts.highOffsetPct ?? 0) / 100;
  const digits = [...opts.digits.toUpperCase()];
  const out = new Int16Array(lead + digits.length * (on + gap));
  const cache = new Map<string, Int16Array>();
  let pos = lead;
  for (const d of digits) {
    const lo = LOW[d];
    const hi = HIGH[d];
    if (lo === undefined || hi === undefined) throw new RangeError(`soxDtmf: bad digit '${d}'`);
    let tone = cache.get(d);
    if (!tone) {
      tone = soxTonePair(on, lo * lowMul, hi * highMul, opts.levelDbm0, opts.levelDbm0 + twist);
      if (tone.length !== on) throw new Error(`sox made ${tone.length} samples, wanted ${on}`);
      cache.set(d, tone);
    }
    out.set(tone, pos);
    pos += on + gap;
  }
  if (opts.noiseDbm0 !== undefined) {
    const noise = soxWhiteNoise(out.length, opts.noiseDbm0);
    for (let i = 0; i < out.length; i++) {
      const v = (out[i] ?? 0) + (noise[i] ?? 0);
      out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
    }
  }
  return out;
}

/** Nominal (low, high) frequencies of a digit, Hz. */
export function dtmfFrequencies(digit: string): { low: number; high: number } {
  const d = digit.toUpperCase();
  const low = LOW[d];
  const high = HIGH[d];
  if (low === undefined || high === undefined) throw new RangeError(`bad DTMF digit '${digit}'`);
  return { low, high };
}
