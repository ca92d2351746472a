/**
 * What a phone heard, placed by RTP timestamp, pure: each decoded audio packet is written at
 * the sample position its timestamp names, so a lost or late packet leaves (or fills) silence
 * where it belongs instead of shifting everything after it. The result is 8 kHz mono PCM16.
 *
 * - The first packet's timestamp is position 0.
 * - A new SSRC (the far end switched streams) is anchored at its arrival time, but never
 *   before the end of what is already written.
 * - A jump of more than MAX_TIMESTAMP_JUMP_SAMPLES either way within one SSRC is a
 *   discontinuity (a sender restarting its clock), anchored the same way.
 * - Packets that would land before position 0 are dropped and counted.
 */

import { uint32Diff } from '../src/media/seq.ts';
import { SAMPLE_RATE_HZ } from '../src/media/dtmf/frequencies.ts';
import { encodeInt16ToWavData, writeWav } from '../src/media/wav.ts';

/** 60 s at 8 kHz. */
export const MAX_TIMESTAMP_JUMP_SAMPLES = 60 * SAMPLE_RATE_HZ;
const SAMPLES_PER_MS = SAMPLE_RATE_HZ / 1000;
const INITIAL_CAPACITY_SAMPLES = 10 * SAMPLE_RATE_HZ;

export class TimestampAlignedRecorder {
  /** Whether samples are kept (to write a file) or only the extent is tracked. */
  readonly #keepSamples: boolean;
  #samples: Int16Array;
  /** One past the last sample written. */
  #end = 0;
  #anchor: { readonly ssrc: number; readonly timestamp: number; readonly position: number } | undefined;
  #firstArrivalMs = 0;
  #dropped = 0;

  constructor(keepSamples: boolean) {
    this.#keepSamples = keepSamples;
    this.#samples = new Int16Array(keepSamples ? INITIAL_CAPACITY_SAMPLES : 0);
  }

  /** Samples from the first packet's start to the end of the latest-reaching one. */
  get lengthSamples(): number {
    return this.#end;
  }

  get droppedPackets(): number {
    return this.#dropped;
  }

  /** Writes one packet's decoded samples where its timestamp puts them. */
  push(ssrc: number, timestamp: number, samples: Int16Array, arrivalMs: number): void {
    let anchor = this.#anchor;
    if (!anchor) {
      this.#firstArrivalMs = arrivalMs;
      anchor = this.#anchor = { ssrc, timestamp, position: 0 };
    }
    let position = anchor.position + uint32Diff(timestamp, anchor.timestamp);
    if (anchor.ssrc !== ssrc || Math.abs(position - this.#end) > MAX_TIMESTAMP_JUMP_SAMPLES) {
      position = Math.max(this.#end, Math.round((arrivalMs - this.#firstArrivalMs) * SAMPLES_PER_MS));
      this.#anchor = { ssrc, timestamp, position };
    }
    if (position < 0) {
      this.#dropped++;
      return;
    }
    const end = position + samples.length;
    if (this.#keepSamples) {
      this.#reserve(end);
      this.#samples.set(samples, position);
    }
    this.#end = Math.max(this.#end, end);
  }

  /** The recording so far (a copy), gaps as silence. Empty if samples are not kept. */
  samples(): Int16Array {
    return this.#keepSamples ? this.#samples.slice(0, this.#end) : new Int16Array(0);
  }

  /** The recording as a WAV file: 8 kHz, mono, 16-bit PCM. */
  toWav(): Uint8Array {
    return writeWav({ format: 'pcm16', sampleRateHz: SAMPLE_RATE_HZ, channels: 1 }, encodeInt16ToWavData('pcm16', [this.samples()]));
  }

  #reserve(length: number): void {
    if (length <= this.#samples.length) return;
    let capacity = this.#samples.length || INITIAL_CAPACITY_SAMPLES;
    while (capacity < length) capacity *= 2;
    const grown = new Int16Array(capacity);
    grown.set(this.#samples.subarray(0, this.#end));
    this.#samples = grown;
  }
}
