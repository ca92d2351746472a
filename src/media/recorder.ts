/**
 * A call's recording: a stereo WAV in the call's G.711 law, the caller on the left — the
 * masked copy, so the recording holds no digit — and the agent on the right.
 *
 * The two directions arrive independently; frames are written when both channels have
 * samples, and when one channel falls more than `maxSkewSamples` behind (the agent on hold
 * sends nothing) the gap is filled with silence, so the file stays aligned and bounded in
 * memory. No timers: time is the sample count.
 */

import { type G711Law, SILENCE_BYTE } from './g711.ts';
import { WavFileWriter } from './wav.ts';

/** Bytes buffered before a write to disk (about 4 s of stereo G.711). */
const FLUSH_BYTES = 64 * 1024;

export class CallRecorder {
  readonly path: string;
  readonly #writer: WavFileWriter;
  readonly #silence: number;
  readonly #maxSkew: number;
  /** Pending samples per channel (left, right). */
  readonly #pending: [number[], number[]] = [[], []];
  #out = new Uint8Array(FLUSH_BYTES);
  #outLength = 0;
  #frames = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(path: string, writer: WavFileWriter, law: G711Law, maxSkewSamples: number) {
    this.path = path;
    this.#writer = writer;
    this.#silence = SILENCE_BYTE[law];
    this.#maxSkew = maxSkewSamples;
  }

  static async open(path: string, law: G711Law, maxSkewSamples = 8000): Promise<CallRecorder> {
    const writer = await WavFileWriter.open(path, { format: law, sampleRateHz: 8000, channels: 2 });
    return new CallRecorder(path, writer, law, maxSkewSamples);
  }

  /** Frames (stereo samples) written so far. */
  get frames(): number {
    return this.#frames;
  }

  /** The caller's masked audio. */
  left(bytes: Uint8Array): void {
    this.#append(0, bytes);
  }

  /** The agent's audio. */
  right(bytes: Uint8Array): void {
    this.#append(1, bytes);
  }

  #append(channel: 0 | 1, bytes: Uint8Array): void {
    if (this.#closed) return;
    const queue = this.#pending[channel];
    for (const b of bytes) queue.push(b);
    const other = this.#pending[channel === 0 ? 1 : 0];
    // one side silent for too long (hold, one-way audio): pad it so the file stays aligned
    if (queue.length - other.length > this.#maxSkew) {
      const pad = queue.length - other.length - this.#maxSkew;
      for (let i = 0; i < pad; i++) other.push(this.#silence);
    }
    this.#interleave(Math.min(queue.length, other.length));
  }

  #interleave(frames: number): void {
    if (frames <= 0) return;
    const [left, right] = this.#pending;
    for (let i = 0; i < frames; i++) {
      if (this.#outLength + 2 > this.#out.length) this.#flush();
      this.#out[this.#outLength++] = left[i]!;
      this.#out[this.#outLength++] = right[i]!;
    }
    left.splice(0, frames);
    right.splice(0, frames);
    this.#frames += frames;
  }

  #flush(): void {
    if (this.#outLength === 0) return;
    void this.#writer.write(this.#out.subarray(0, this.#outLength)).catch(() => {});
    this.#out = new Uint8Array(FLUSH_BYTES);
    this.#outLength = 0;
  }

  /** Writes what is pending (the shorter channel padded with silence) and closes the file, once. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    const [left, right] = this.#pending;
    while (left.length < right.length) left.push(this.#silence);
    while (right.length < left.length) right.push(this.#silence);
    this.#interleave(left.length);
    this.#flush();
    this.#closed = true;
    this.#closing = this.#writer.close();
    return this.#closing;
  }
}
