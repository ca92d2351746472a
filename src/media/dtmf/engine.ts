/**
 * The DTMF engine of one audio direction (the caller's): hears every digit and masks every
 * DTMF-like tone on its way to the listeners.
 *
 *   samples ─► FilterBank ─► MaskDetector ─► ToneTracker ─► mask marks ─┐
 *                                               └─► DigitClassifier ─► digits
 *   samples ─► delay line (D ms) ────────────────────────────────────────┴─► renderer per listener
 *
 * Masking is a lookahead problem (DESIGN.md decision 1): the listeners hear the audio D ms
 * late, so a tone can be confirmed and its extent found before its first sample leaves. One
 * analysis serves every listener; each listener only chooses what replaces a masked tone
 * (`flat` beep, `silence` or comfort `noise`). Samples that are not masked leave unchanged —
 * byte for byte when the input is G.711.
 *
 * Pure: no sockets, no timers. Time is the sample count of the stream.
 */

import { type G711Law, decodeTable, encodeSample } from '../g711.ts';
import { MediaConfigError } from '../../errors.ts';
import { DigitClassifier, type InbandDigit, Q24, type Q24Rules, type ToneMeasurement } from './classifier.ts';
import { MaskDetector } from './detector.ts';
import { FilterBank, SUB_BLOCK_SAMPLES } from './filterbank.ts';
import { SAMPLE_RATE_HZ } from './frequencies.ts';
import { ComfortNoise, FLAT_BEEP_RAMP_SAMPLES, FlatBeep, rampGain } from './tones.ts';
import { type MaskSink, ToneTracker, type ToneSegment } from './tracker.ts';

export type MaskMode = 'flat' | 'silence' | 'noise';
export const MASK_MODES: readonly MaskMode[] = ['flat', 'silence', 'noise'];

export const DEFAULT_DELAY_MS = 20;
export const MAX_DELAY_MS = 20;

export interface DtmfEngineOptions {
  /** Added latency on every masked output, ms (0–20; default 20). */
  delayMs?: number;
  /** One rendered output per listener, in this order. Empty: detection only. */
  outputs?: readonly MaskMode[];
  /** Called for every digit named in-band (internal only: never log or send its value). */
  onDigit?: (digit: InbandDigit) => void;
  /** Called for every tone the tracker followed (for diagnostics and tests). */
  onTone?: (segment: ToneSegment) => void;
  onMeasurement?: (measurement: ToneMeasurement, accepted: boolean) => void;
  /** Called as each masked span of the stream is sent: [fromSample, toSample) of the input. */
  onMaskedSpan?: (fromSample: number, toSample: number) => void;
  rules?: Q24Rules;
}

/** Sub-blocks of analysis history: 40 ms windows, the delay line and the back-track. */
const HISTORY_SUB_BLOCKS = 64;
/** Mask marks kept ahead of and behind the output point, in sub-blocks. */
const MASK_RING_SUB_BLOCKS = 1024;
const MASK_RING_MASK = MASK_RING_SUB_BLOCKS - 1;
/**
 * Samples the delay line holds: the delay, a few sub-blocks, and the longest piece a frame is
 * split into (1,720 samples, 215 ms: a packet is 20–60 ms). 2,048 keeps the engine's memory
 * per call small (6 KiB here), which matters for hundreds of calls in one process.
 */
const DELAY_RING_SAMPLES = 2048;
const RING_MASK = DELAY_RING_SAMPLES - 1;
/** The longest piece a frame is split into: what the ring leaves, in whole sub-blocks (1,720). */
const MAX_FRAME_SAMPLES = Math.floor((DELAY_RING_SAMPLES - 4 * SUB_BLOCK_SAMPLES - (MAX_DELAY_MS * SAMPLE_RATE_HZ) / 1000) / SUB_BLOCK_SAMPLES) * SUB_BLOCK_SAMPLES;

interface Renderer {
  readonly mode: MaskMode;
  beep: FlatBeep;
  noise: ComfortNoise;
  /** Samples since the current masked run began (flat ramps). */
  runPosition: number;
}

export interface DtmfEngineStats {
  /** Tones the tracker followed (every one was masked). */
  readonly masked: number;
  /** Digits the classifier named. */
  readonly digits: number;
  /** Samples replaced on the outputs. */
  readonly maskedSamples: number;
}

export class DtmfEngine implements MaskSink {
  readonly delaySamples: number;
  readonly #bank = new FilterBank(HISTORY_SUB_BLOCKS);
  readonly #detector = new MaskDetector();
  readonly #tracker: ToneTracker;
  readonly #classifier: DigitClassifier;
  readonly #renderers: Renderer[];
  readonly #onTone: ((segment: ToneSegment) => void) | undefined;
  readonly #onMaskedSpan: ((fromSample: number, toSample: number) => void) | undefined;
  /** Start of the masked span being sent, or −1. */
  #spanStart = -1;

  /** Linear samples of the stream, by sample index modulo the ring. */
  readonly #ring = new Int16Array(DELAY_RING_SAMPLES);
  /** Original G.711 bytes, kept so unmasked output is byte-identical. */
  readonly #bytes = new Uint8Array(DELAY_RING_SAMPLES);
  /** A sub-block that wraps around the end of the ring, copied straight. */
  readonly #block = new Int16Array(SUB_BLOCK_SAMPLES);
  /** maskMarks[j % size] === j + 1 when sub-block j is masked. */
  readonly #maskMarks = new Int32Array(MASK_RING_SUB_BLOCKS);
  /** Samples received, analysed (whole sub-blocks) and sent. */
  #received = 0;
  #analysed = 0;
  #sent = 0;
  #tones = 0;
  #digits = 0;
  #maskedSamples = 0;

  constructor(options: DtmfEngineOptions = {}) {
    const delayMs = options.delayMs ?? DEFAULT_DELAY_MS;
    if (!(delayMs >= 0 && delayMs <= MAX_DELAY_MS)) {
      throw new MediaConfigError(`mask delay must be 0–${MAX_DELAY_MS} ms, got ${delayMs}`);
    }
    this.delaySamples = Math.round((delayMs * SAMPLE_RATE_HZ) / 1000);
    this.#onTone = options.onTone;
    this.#onMaskedSpan = options.onMaskedSpan;
    const onDigit = options.onDigit;
    this.#classifier = new DigitClassifier(
      (digit) => {
        this.#digits++;
        onDigit?.(digit);
      },
      options.rules ?? Q24,
      options.onMeasurement,
    );
    this.#tracker = new ToneTracker(this.#bank, this.#detector.long, this, (segment) => {
      this.#tones++;
      this.#onTone?.(segment);
      this.#classifier.segment(segment);
    });
    this.#renderers = (options.outputs ?? []).map((mode, i) => ({
      mode,
      beep: new FlatBeep(),
      noise: new ComfortNoise(0x5eed + i),
      runPosition: 0,
    }));
  }

  get stats(): DtmfEngineStats {
    return { masked: this.#tones, digits: this.#digits, maskedSamples: this.#maskedSamples };
  }

  /** Samples received so far (the stream clock). */
  get position(): number {
    return this.#received;
  }

  /** MaskSink: marks sub-blocks [from, to) masked, skipping what has already been sent. */
  mask(from: number, to: number): void {
    const first = Math.max(from, Math.floor(this.#sent / SUB_BLOCK_SAMPLES));
    const last = Math.min(to, Math.floor(this.#received / SUB_BLOCK_SAMPLES) + MASK_RING_SUB_BLOCKS / 2);
    for (let j = first; j < last; j++) this.#maskMarks[j & MASK_RING_MASK] = j + 1;
  }

  /**
   * Masks the samples [fromSample, toSample) whatever the detector thinks — used where a digit
   * is known from another channel (an RFC 4733 event) and its audio must not pass.
   */
  forceMask(fromSample: number, toSample: number): void {
    this.mask(Math.floor(fromSample / SUB_BLOCK_SAMPLES), Math.ceil(toSample / SUB_BLOCK_SAMPLES));
  }

  isMasked(sample: number): boolean {
    const j = Math.floor(sample / SUB_BLOCK_SAMPLES);
    return this.#maskMarks[j & MASK_RING_MASK] === j + 1;
  }

  /**
   * Feeds linear samples; returns, per output, the same number of samples delayed by the
   * delay line and masked. With no outputs it only detects.
   */
  processLinear(samples: Int16Array): Int16Array[] {
    const outputs = this.#renderers.map(() => new Int16Array(samples.length));
    for (let offset = 0; offset < samples.length; offset += MAX_FRAME_SAMPLES) {
      const count = Math.min(samples.length - offset, MAX_FRAME_SAMPLES);
      for (let i = 0; i < count; i++) this.#ring[(this.#received + i) & RING_MASK] = samples[offset + i]!;
      this.#received += count;
      this.#analyse();
      this.#emit(outputs, undefined, offset, count, this.#received - this.delaySamples - count);
    }
    return outputs;
  }

  /** As `processLinear`, for G.711 bytes in and out; unmasked bytes pass unchanged. */
  processG711(law: G711Law, bytes: Uint8Array): Uint8Array[] {
    const outputs = this.#renderers.map(() => new Uint8Array(bytes.length));
    this.processG711Into(law, bytes, outputs);
    return outputs;
  }

  /**
   * As `processG711`, writing into the caller's arrays (each at least `bytes.length` long):
   * the per-packet path of a call allocates nothing here.
   */
  processG711Into(law: G711Law, bytes: Uint8Array, outputs: readonly Uint8Array[]): void {
    const table = decodeTable(law);
    for (let offset = 0; offset < bytes.length; offset += MAX_FRAME_SAMPLES) {
      const count = Math.min(bytes.length - offset, MAX_FRAME_SAMPLES);
      // decode straight into the delay line, keeping the bytes beside the samples
      for (let i = 0; i < count; i++) {
        const at = (this.#received + i) & RING_MASK;
        const byte = bytes[offset + i]!;
        this.#bytes[at] = byte;
        this.#ring[at] = table[byte]!;
      }
      this.#received += count;
      this.#analyse();
      this.#emit(outputs, law, offset, count, this.#received - this.delaySamples - count);
    }
  }

  /** End of stream: judges pending tones and returns the last `delay` samples of each output. */
  flushLinear(): Int16Array[] {
    this.#finishAnalysis();
    const outputs = this.#renderers.map(() => new Int16Array(this.#received - this.#sent));
    this.#emit(outputs, undefined, 0, this.#received - this.#sent, this.#sent);
    this.#trace(this.#sent, false);
    return outputs;
  }

  flushG711(law: G711Law): Uint8Array[] {
    this.#finishAnalysis();
    const outputs = this.#renderers.map(() => new Uint8Array(this.#received - this.#sent));
    this.#emit(outputs, law, 0, this.#received - this.#sent, this.#sent);
    this.#trace(this.#sent, false);
    return outputs;
  }

  #finishAnalysis(): void {
    // pad the last partial sub-block with silence so its audio is analysed too
    const partial = this.#received - this.#analysed;
    if (partial > 0) {
      const pad = new Float64Array(SUB_BLOCK_SAMPLES);
      for (let i = 0; i < partial; i++) pad[i] = this.#ring[(this.#analysed + i) & RING_MASK]!;
      this.#bank.push(pad, 0);
      this.#analysed += SUB_BLOCK_SAMPLES;
      this.#tracker.step(this.#detector.update(this.#bank), Math.floor(this.#sent / SUB_BLOCK_SAMPLES));
    }
    this.#tracker.flush();
    this.#classifier.flush();
  }

  /** Analyses every whole sub-block received and not yet analysed. */
  #analyse(): void {
    const block = this.#block;
    while (this.#received - this.#analysed >= SUB_BLOCK_SAMPLES) {
      const start = this.#analysed & RING_MASK;
      let source: Int16Array = this.#ring;
      let offset = start;
      if (start + SUB_BLOCK_SAMPLES > DELAY_RING_SAMPLES) {
        for (let i = 0; i < SUB_BLOCK_SAMPLES; i++) block[i] = this.#ring[(start + i) & RING_MASK]!;
        source = block;
        offset = 0;
      }
      this.#bank.push(source, offset);
      this.#analysed += SUB_BLOCK_SAMPLES;
      const candidate = this.#detector.update(this.#bank);
      this.#tracker.step(candidate, Math.floor(this.#sent / SUB_BLOCK_SAMPLES));
      const pending = this.#classifier.pendingPair();
      this.#classifier.advance(this.#analysed, pending !== undefined && this.#tracker.follows(pending));
    }
  }

  /** The replacement for masked `sample` on one renderer's output. */
  #render(renderer: Renderer, sample: number): number {
    const position = renderer.runPosition++;
    switch (renderer.mode) {
      case 'silence':
        return 0;
      case 'noise':
        return renderer.noise.next();
      case 'flat': {
        if (position === 0) renderer.beep.reset();
        const remaining = SUB_BLOCK_SAMPLES - 1 - (sample % SUB_BLOCK_SAMPLES);
        const nextMasked = this.isMasked(sample + remaining + 1);
        const gain = rampGain(position, FLAT_BEEP_RAMP_SAMPLES) * (nextMasked ? 1 : rampGain(remaining, FLAT_BEEP_RAMP_SAMPLES));
        return renderer.beep.next(gain);
      }
    }
  }

  /** Tracks masked spans for `onMaskedSpan` as samples are sent. */
  #trace(sample: number, masked: boolean): void {
    if (masked) {
      if (this.#spanStart < 0) this.#spanStart = sample;
    } else if (this.#spanStart >= 0) {
      this.#onMaskedSpan?.(this.#spanStart, sample);
      this.#spanStart = -1;
    }
  }

  /**
   * Sends `count` samples starting at stream sample `first` into `outputs[r][offset…]`, one
   * sub-block run at a time (masks are whole sub-blocks): unmasked runs are copied from the
   * delay line — G.711 bytes as they came — and masked runs are rendered per listener.
   */
  #emit(outputs: readonly (Int16Array | Uint8Array)[], law: G711Law | undefined, offset: number, count: number, first: number): void {
    const source = law ? this.#bytes : this.#ring;
    const silence = law ? encodeSample(law, 0) : 0;
    for (let i = 0; i < count; ) {
      const sample = first + i;
      if (sample < 0) {
        // the delay line starts out full of silence
        const end = Math.min(count, i - sample);
        for (const out of outputs) out.fill(silence, offset + i, offset + end);
        i = end;
        continue;
      }
      const end = Math.min(count, i + SUB_BLOCK_SAMPLES - (sample % SUB_BLOCK_SAMPLES));
      const masked = this.isMasked(sample);
      this.#trace(sample, masked);
      if (!masked) {
        for (let r = 0; r < outputs.length; r++) {
          this.#renderers[r]!.runPosition = 0;
          const out = outputs[r]!;
          for (let k = i; k < end; k++) out[offset + k] = source[(first + k) & RING_MASK]!;
        }
      } else {
        for (let r = 0; r < outputs.length; r++) {
          const renderer = this.#renderers[r]!;
          const out = outputs[r]!;
          for (let k = i; k < end; k++) {
            const value = this.#render(renderer, first + k);
            out[offset + k] = law ? encodeSample(law, value) : clamp16(value);
          }
        }
        this.#maskedSamples += end - i;
      }
      i = end;
    }
    this.#sent = first + count;
  }
}

function clamp16(value: number): number {
  const rounded = Math.round(value);
  return rounded > 32767 ? 32767 : rounded < -32768 ? -32768 : rounded;
}
