/**
 * The media engine's figures (the media issue's table), each measured in this run against
 * independent referees: multimon-ng and spandsp decide what a masked output still holds.
 */

import { DtmfEngine, type MaskMode } from '../../src/media/dtmf/engine.ts';
import { decode, encode } from '../../src/media/g711.ts';
import { musicOnHold, naturalSpeechFiles, readPcm16Wav, concatPcm, espeakCorpus, fliteSpeech, FLITE_VOICES, SENTENCES, scaleToActiveLevel } from '../support/corpus.ts';
import { ISSUE_MATRIX, buildMatrix, type MatrixTone } from '../support/matrix.ts';
import { runQ24 } from '../support/q24.ts';
import { SPANDSP_WIDE, decodeMultimon, decodeSpandsp, spandspCost } from '../support/referees.ts';
import { KEYPAD_KEYS, KEYPAD_KEYS_WIDE, LEAK_KEYS, type SceneKey, speechOverDigits } from '../support/scenes.ts';

export interface MaskRun {
  /** Output aligned with the input (the delay removed). */
  readonly output: Uint8Array;
  readonly spans: [number, number][];
  readonly digits: { digit: string; startMs: number; endMs: number }[];
  readonly seconds: number;
  readonly frames: number;
  readonly delaySamples: number;
}

/** Runs μ-law through a fresh engine in 20 ms packets, as a call would. */
export function maskUlaw(input: Uint8Array, options: { delayMs?: number; modes?: readonly MaskMode[] } = {}): MaskRun {
  const spans: [number, number][] = [];
  const digits: { digit: string; startMs: number; endMs: number }[] = [];
  const modes = options.modes ?? ['silence'];
  const engine = new DtmfEngine({
    ...(options.delayMs !== undefined ? { delayMs: options.delayMs } : {}),
    outputs: modes,
    onMaskedSpan: (a, b) => spans.push([a, b]),
    onDigit: (d) => digits.push(d),
  });
  const out = new Uint8Array(input.length + engine.delaySamples);
  let at = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < input.length; i += 160) {
    const chunk = engine.processG711('pcmu', input.subarray(i, i + 160))[0]!;
    out.set(chunk, at);
    at += chunk.length;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  out.set(engine.flushG711('pcmu')[0]!, at);
  return { output: out.subarray(engine.delaySamples), spans, digits, seconds, frames: Math.ceil(input.length / 160), delaySamples: engine.delaySamples };
}

export interface Decoded {
  readonly multimon: number;
  readonly spandsp: number;
  readonly wide: number;
}

export async function referees(ulaw: Uint8Array): Promise<Decoded> {
  const pcm = decode('pcmu', ulaw);
  const [m, s, w] = await Promise.all([decodeMultimon(pcm), decodeSpandsp(pcm), decodeSpandsp(pcm, SPANDSP_WIDE)]);
  return { multimon: m.length, spandsp: s.length, wide: w.length };
}

/**
 * Per tone: ms of tone sent before the mask began, and ms masked after it ended — following
 * the mask from the tone's end through spans that touch one another (gaps under 5 ms); a
 * span that starts later is a separate event (speech or music), not this tone's over-mask.
 */
export function toneEdges(tones: readonly { startSample: number; endSample: number }[], spans: readonly [number, number][], _gapSamples: number): { startLeakMs: number[]; afterEndMs: number[]; unmasked: number } {
  const startLeakMs: number[] = [];
  const afterEndMs: number[] = [];
  let unmasked = 0;
  let s = 0;
  const touching = 40;
  for (const t of tones) {
    while (s < spans.length && spans[s]![1] <= t.startSample) s++;
    let first = -1;
    let last = t.endSample;
    for (let k = s; k < spans.length && spans[k]![0] <= last + touching; k++) {
      const [a, b] = spans[k]!;
      if (a < t.endSample && b > t.startSample && first < 0) first = Math.max(a, t.startSample);
      if (first >= 0 && b > last) last = b;
    }
    if (first < 0) {
      unmasked++;
      continue;
    }
    startLeakMs.push((first - t.startSample) / 8);
    afterEndMs.push((last - t.endSample) / 8);
  }
  return { startLeakMs, afterEndMs, unmasked };
}

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** % of the input's 20 ms frames with at least one altered sample. */
export function framesAltered(spans: readonly [number, number][], samples: number): number {
  const touched = new Set<number>();
  for (const [a, b] of spans) for (let f = Math.floor(a / 160); f <= Math.floor((b - 1) / 160); f++) touched.add(f);
  return (100 * touched.size) / Math.ceil(samples / 160);
}

// ---------------------------------------------------------------------------------------------

export interface MatrixFigures {
  readonly tones: number;
  readonly input: Decoded;
  readonly byDelay: { delayMs: number; output: Decoded; startLeakP99: number; startLeakMax: number; afterEndP99: number; afterEndMax: number; unmasked: number }[];
}

export async function matrixFigures(delays: readonly number[]): Promise<MatrixFigures> {
  const { signal, tones } = buildMatrix(ISSUE_MATRIX, 1);
  const input = encode('pcmu', signal);
  const inputDecoded = await referees(input);
  const gap = (ISSUE_MATRIX.gapMs * 8000) / 1000;
  const byDelay = [];
  for (const delayMs of delays) {
    const run = maskUlaw(input, { delayMs });
    const edges = toneEdges(tones, run.spans, gap);
    byDelay.push({
      delayMs,
      output: await referees(run.output),
      startLeakP99: quantile(edges.startLeakMs, 0.99),
      startLeakMax: Math.max(...edges.startLeakMs),
      afterEndP99: quantile(edges.afterEndMs, 0.99),
      afterEndMax: Math.max(...edges.afterEndMs),
      unmasked: edges.unmasked,
    });
  }
  return { tones: tones.length, input: inputDecoded, byDelay };
}

export { type MatrixTone };

// ---------------------------------------------------------------------------------------------

/** Natural speech, the Asterisk prompt sets: all of each language, as one stream per language. */
export function naturalSpeech(): { language: string; samples: Int16Array }[] {
  return naturalSpeechFiles().map((set) => ({ language: set.language, samples: concatPcm(set.files.map(readPcm16Wav)) }));
}

export interface FalseMaskingFigures {
  readonly natural: { language: string; minutes: number; pct: number; digits: number }[];
  readonly naturalPct: number;
  readonly naturalDigits: number;
  readonly naturalMinutes: number;
  readonly espeak: { pitch: number; pct: number }[];
  readonly espeakPct: number;
  readonly espeakDigits: number;
  readonly flitePct: number | undefined;
  readonly musicPct: number;
  readonly musicMinutes: number;
  /** Detector + masker (two listeners: flat, silence) µs per 20 ms frame over natural speech, best of 3 passes. */
  readonly costUs: number;
  readonly spandspCostUs: number;
}

export async function falseMaskingFigures(speech: { language: string; samples: Int16Array }[]): Promise<FalseMaskingFigures> {
  const natural = [];
  let altered = 0;
  let frames = 0;
  let digits = 0;
  for (const { language, samples } of speech) {
    const input = encode('pcmu', samples);
    const run = maskUlaw(input);
    const pct = framesAltered(run.spans, input.length);
    natural.push({ language, minutes: input.length / 8000 / 60, pct, digits: run.digits.length });
    altered += (pct / 100) * Math.ceil(input.length / 160);
    frames += Math.ceil(input.length / 160);
    digits += run.digits.length;
  }
  // cost: the two listeners of a call (agent: flat, recording: silence), best of three passes
  const all = encode('pcmu', concatPcm(speech.map((s) => s.samples)));
  let best = Infinity;
  for (let pass = 0; pass < 3; pass++) {
    const run = maskUlaw(all, { modes: ['flat', 'silence'] });
    best = Math.min(best, (run.seconds * 1e6) / run.frames);
  }
  const sp = await spandspCost(decode('pcmu', all));
  const spandspCostUs = (sp.cpuSeconds * 1e6) / (sp.samples / 160);

  const espeak = espeakCorpus();
  const byPitch = [];
  let espeakAltered = 0;
  let espeakFrames = 0;
  let espeakDigits = 0;
  for (const pitch of [...new Set(espeak.map((e) => e.pitch))].sort((a, b) => a - b)) {
    const input = encode('pcmu', concatPcm(espeak.filter((e) => e.pitch === pitch).map((e) => e.samples)));
    const run = maskUlaw(input);
    const pct = framesAltered(run.spans, input.length);
    byPitch.push({ pitch, pct });
    espeakAltered += (pct / 100) * Math.ceil(input.length / 160);
    espeakFrames += Math.ceil(input.length / 160);
    espeakDigits += run.digits.length;
  }

  let flitePct: number | undefined;
  try {
    const flite = concatPcm(FLITE_VOICES.flatMap((voice) => (SENTENCES['en'] ?? []).slice(0, 6).map((text) => fliteSpeech(text, voice))));
    const input = encode('pcmu', flite);
    flitePct = framesAltered(maskUlaw(input).spans, input.length);
  } catch {
    flitePct = undefined; // flite not installed
  }

  const music = concatPcm(musicOnHold().map((m) => m.samples));
  const musicInput = encode('pcmu', music);

  return {
    natural,
    naturalPct: (100 * altered) / frames,
    naturalDigits: digits,
    naturalMinutes: frames / 50 / 60,
    espeak: byPitch,
    espeakPct: (100 * espeakAltered) / espeakFrames,
    espeakDigits,
    flitePct,
    musicPct: framesAltered(maskUlaw(musicInput).spans, musicInput.length),
    musicMinutes: music.length / 8000 / 60,
    costUs: best,
    spandspCostUs,
  };
}

// ---------------------------------------------------------------------------------------------

export interface SceneFigures {
  readonly keys: number;
  readonly minutes: number;
  readonly input: Decoded;
  readonly output: Decoded;
  readonly named: number;
  readonly invented: number;
}

function overlaps(d: { startMs: number; endMs: number }, k: SceneKey): boolean {
  return d.startMs * 8 < k.endSample && d.endMs * 8 > k.startSample;
}

/** Keys laid over speech at −14 dBm0: what leaks from the masked output, what is named. */
export async function sceneFigures(speech: Int16Array, keys: typeof LEAK_KEYS, count: number, seed: number): Promise<SceneFigures> {
  const scene = speechOverDigits(scaleToActiveLevel(speech, -14), count, keys, seed);
  const input = encode('pcmu', scene.signal);
  const run = maskUlaw(input);
  return {
    keys: scene.keys.length,
    minutes: input.length / 8000 / 60,
    input: await referees(input),
    output: await referees(run.output),
    named: scene.keys.filter((k) => run.digits.some((d) => d.digit === k.digit && overlaps(d, k))).length,
    invented: run.digits.filter((d) => !scene.keys.some((k) => d.digit === k.digit && overlaps(d, k))).length,
  };
}

export interface DetectionFigures {
  readonly keys: number;
  readonly hushpay: number;
  readonly multimon: number;
  readonly spandsp: number;
  readonly hushpayInvented: number;
}

/**
 * "160 keyed": keypad digits under −14 dBm0 speech, each judged per key — a decoder finds a
 * key when it reports that digit within the key's own stretch of audio (±100 ms).
 */
export async function detectionFigures(speech: Int16Array, count: number, seed: number, keys = KEYPAD_KEYS): Promise<DetectionFigures> {
  const scene = speechOverDigits(scaleToActiveLevel(speech, -14), count, keys, seed);
  const input = encode('pcmu', scene.signal);
  const run = maskUlaw(input);
  const pcm = decode('pcmu', input);
  let multimon = 0;
  let spandsp = 0;
  const margin = 800;
  const batch = 8;
  for (let i = 0; i < scene.keys.length; i += batch) {
    const results = await Promise.all(
      scene.keys.slice(i, i + batch).map(async (k) => {
        const clip = pcm.subarray(Math.max(0, k.startSample - margin), Math.min(pcm.length, k.endSample + margin));
        const [m, s] = await Promise.all([decodeMultimon(clip), decodeSpandsp(clip)]);
        return { m: m.includes(k.digit), s: s.some((d) => d.digit === k.digit) };
      }),
    );
    for (const r of results) {
      if (r.m) multimon++;
      if (r.s) spandsp++;
    }
  }
  return {
    keys: scene.keys.length,
    hushpay: scene.keys.filter((k) => run.digits.some((d) => d.digit === k.digit && overlaps(d, k))).length,
    multimon,
    spandsp,
    hushpayInvented: run.digits.filter((d) => !scene.keys.some((k) => d.digit === k.digit && overlaps(d, k))).length,
  };
}

export { KEYPAD_KEYS, KEYPAD_KEYS_WIDE, LEAK_KEYS };

// ---------------------------------------------------------------------------------------------

export function q24Figures(): { accept: number; acceptDetected: number; reject: number; rejectFalse: number; failures: string[] } {
  const results = runQ24();
  const accept = results.filter((r) => r.condition.expect === 'accept');
  const reject = results.filter((r) => r.condition.expect === 'reject');
  return {
    accept: accept.reduce((n, r) => n + r.expected.length, 0),
    acceptDetected: accept.reduce((n, r) => n + (r.pass ? r.expected.length : commonPrefix(r.expected, r.detected)), 0),
    reject: reject.length * 16,
    rejectFalse: reject.reduce((n, r) => n + r.detected.length, 0),
    failures: results.filter((r) => !r.pass).map((r) => `${r.condition.expect} ${r.condition.administration} ${r.condition.name}: got ${r.detected || 'nothing'}`),
  };
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i;
}

/** The delay a listener hears, measured: the lag at which unmasked output bytes equal the input's. */
export function measuredDelayMs(speech: Int16Array, delayMs: number): number {
  const input = encode('pcmu', speech.subarray(0, 8000 * 30));
  const engine = new DtmfEngine({ delayMs, outputs: ['flat'] });
  const out: Uint8Array[] = [];
  for (let i = 0; i < input.length; i += 160) out.push(engine.processG711('pcmu', input.subarray(i, i + 160))[0]!);
  const all = new Uint8Array(out.reduce((n, o) => n + o.length, 0));
  let at = 0;
  for (const o of out) {
    all.set(o, at);
    at += o.length;
  }
  let bestLag = -1;
  let bestEqual = -1;
  for (let lag = 0; lag <= 400; lag++) {
    let equal = 0;
    for (let i = 0; i + lag < all.length; i += 7) if (all[i + lag] === input[i]) equal++;
    if (equal > bestEqual) {
      bestEqual = equal;
      bestLag = lag;
    }
  }
  return bestLag / 8;
}
