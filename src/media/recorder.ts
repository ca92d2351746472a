/**
 * A call's recording: a stereo WAV in the call's G.711 law, the caller on the left — the
 * masked copy, so the recording holds no digit — and the agent on the right.
 *
 * The two directions arrive independently; frames are written when both channels have
 * samples, and when one channel runs more than `maxSkewSamples` ahead of the other (the agent
 * on hold sends nothing) the other is filled with silence, so the file stays aligned and the
 * memory bounded. No timers: time is the sample count.
 *
 * A write that fails (a full disk) ends the recording, not the call: `error` says why, and
 * what was written stays a valid file.
 */

import { type G711Law, SILENCE_BYTE } from './g711.ts';
import { WavFileWriter } from './wav.ts';

/**
 * Bytes buffered before a write to disk: half a second of stereo G.711. Written synchronously
 * from one reused buffer (WavFileWriter.writeSync): about 8 µs per write, no allocation, and each
 * call's writes fall at its own moment instead of queueing in the thread pool together.
 */
const FLUSH_BYTES = 8 * 1024;

/** One channel's samples not yet written: a ring of bytes, its size a power of two. */
class ChannelQueue {
  buffer: Uint8Array;
  mask: number;
  /** Index of the oldest pending byte. */
  start = 0;
  length = 0;

  constructor(capacity: number) {
    this.buffer = new Uint8Array(powerOfTwoAtLeast(capacity));
    this.mask = this.buffer.length - 1;
  }

  push(bytes: Uint8Array): void {
    if (this.length + bytes.length > this.buffer.length) this.#grow(this.length + bytes.length);
    const at = (this.start + this.length) & this.mask;
    const first = Math.min(bytes.length, this.buffer.length - at);
    if (first === bytes.length) this.buffer.set(bytes, at);
    else {
      this.buffer.set(bytes.subarray(0, first), at);
      this.buffer.set(bytes.subarray(first), 0);
    }
    this.length += bytes.length;
  }

  pushFill(value: number, count: number): void {
    if (this.length + count > this.buffer.length) this.#grow(this.length + count);
    const at = (this.start + this.length) & this.mask;
    const first = Math.min(count, this.buffer.length - at);
    this.buffer.fill(value, at, at + first);
    this.buffer.fill(value, 0, count - first);
    this.length += count;
  }

  drop(count: number): void {
    this.start = (this.start + count) & this.mask;
    this.length -= count;
  }

  #grow(needed: number): void {
    const next = new Uint8Array(powerOfTwoAtLeast(needed));
    for (let i = 0; i < this.length; i++) next[i] = this.buffer[(this.start + i) & this.mask]!;
    this.buffer = next;
    this.mask = next.length - 1;
    this.start = 0;
  }
}

function powerOfTwoAtLeast(n: number): number {
  let size = 1;
  while (size < n) size *= 2;
  return size;
}

export class CallRecorder {
  readonly path: string;
  readonly #writer: WavFileWriter;
  readonly #silence: number;
  readonly #maxSkew: number;
  readonly #left: ChannelQueue;
  readonly #right: ChannelQueue;
  readonly #out = new Uint8Array(FLUSH_BYTES);
  #outLength = 0;
  #frames = 0;
  #closed = false;
  #error: Error | undefined;
  #closing: Promise<void> | undefined;

  private constructor(path: string, writer: WavFileWriter, law: G711Law, maxSkewSamples: number) {
    this.path = path;
    this.#writer = writer;
    this.#silence = SILENCE_BYTE[law];
    this.#maxSkew = maxSkewSamples;
    // a queue holds at most the skew plus one packet before it is written out
    this.#left = new ChannelQueue(maxSkewSamples + 1024);
    this.#right = new ChannelQueue(maxSkewSamples + 1024);
  }

  /** `maxSkewSamples`: how far one direction may run ahead before the other is filled (default 0.5 s). */
  static async open(path: string, law: G711Law, maxSkewSamples = 4000): Promise<CallRecorder> {
    const writer = await WavFileWriter.open(path, { format: law, sampleRateHz: 8000, channels: 2 });
    return new CallRecorder(path, writer, law, maxSkewSamples);
  }

  /** Why the recording stopped early, if it did. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Frames (stereo samples) written so far. */
  get frames(): number {
    return this.#frames;
  }

  /** The caller's masked audio. */
  left(bytes: Uint8Array): void {
    this.#append(this.#left, this.#right, bytes);
  }

  /** The agent's audio. */
  right(bytes: Uint8Array): void {
    this.#append(this.#right, this.#left, bytes);
  }

  #append(queue: ChannelQueue, other: ChannelQueue, bytes: Uint8Array): void {
    if (this.#closed) return;
    queue.push(bytes);
    // one side silent for too long (hold, one-way audio): fill it so the file stays aligned
    const ahead = queue.length - other.length - this.#maxSkew;
    if (ahead > 0) other.pushFill(this.#silence, ahead);
    this.#interleave(Math.min(queue.length, other.length));
  }

  #interleave(frames: number): void {
    if (frames <= 0) return;
    const left = this.#left;
    const right = this.#right;
    const l = left.buffer;
    const r = right.buffer;
    const lm = left.mask;
    const rm = right.mask;
    let li = left.start;
    let ri = right.start;
    const out = this.#out;
    for (let i = 0; i < frames; i++) {
      if (this.#outLength + 2 > out.length) {
        this.#flush();
        if (this.#error) return; // the recording has ended; what was written stays valid
      }
      out[this.#outLength++] = l[li]!;
      out[this.#outLength++] = r[ri]!;
      li = (li + 1) & lm;
      ri = (ri + 1) & rm;
    }
    left.drop(frames);
    right.drop(frames);
    this.#frames += frames;
  }

  #flush(): void {
    if (this.#outLength === 0 || this.#error) return;
    try {
      this.#writer.writeSync(this.#out.subarray(0, this.#outLength));
    } catch (error) {
      this.#error = error instanceof Error ? error : new Error(String(error));
      this.#closed = true; // nothing more is queued; close() still finishes the file
    }
    this.#outLength = 0;
  }

  /** Writes what is pending (the shorter channel filled with silence) and closes the file, once. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    if (!this.#error) {
      const left = this.#left;
      const right = this.#right;
      if (left.length < right.length) left.pushFill(this.#silence, right.length - left.length);
      if (right.length < left.length) right.pushFill(this.#silence, left.length - right.length);
      this.#interleave(left.length);
      this.#flush();
    }
    this.#closed = true;
    this.#closing = this.#writer.close();
    return this.#closing;
  }
}
