/**
 * WAV (RIFF/WAVE) files for call recordings and tools: 16-bit PCM (format tag 1), A-law (6) and
 * μ-law (7), mono or stereo, any sample rate.
 *
 * Reading walks the chunk list (Microsoft "Multimedia Programming Interface and Data
 * Specifications 1.0", 1991, RIFF and WAVE chapters): chunks it does not know (LIST, cue, …) are
 * skipped, and an odd-sized chunk is followed by one pad byte. A header that does not describe its
 * contents is rejected with WavFormatError and a reason built from numbers only.
 *
 * Decisions:
 * - A data chunk that claims more bytes than the file holds is rejected (a lying or truncated
 *   header), with one exception: a data size of 0 or 0xFFFFFFFF is what a streaming recorder
 *   leaves before it patches the sizes on close, so a file that was never closed is read by
 *   taking the rest of the file as data, cut down to whole frames. (WavFileWriter itself writes
 *   a data size of 0 until close(), so its files survive a crash.) The same rule means a real,
 *   empty data chunk followed by another chunk would read that chunk as audio; hushpay's
 *   writers put the data chunk last, as almost every writer does.
 * - The RIFF size field is not checked, for the same streaming reason; the chunk walk stops once
 *   it has both the fmt and the data chunk, so bytes after them are never read.
 * - WAVE_FORMAT_EXTENSIBLE (0xFFFE) is not supported (sox and ffmpeg only write it for more than
 *   two channels or more than 16 bits, which hushpay does not use either).
 */

import { writeSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { InvalidStateError, MediaConfigError, WavFormatError } from '../errors.ts';
import { decode, encode, type G711Law } from './g711.ts';

export type WavSampleFormat = 'pcm16' | 'pcmu' | 'pcma';

export interface WavParams {
  readonly format: WavSampleFormat;
  readonly sampleRateHz: number;
  /** 1 (mono) or 2 (stereo: for recordings, caller and agent). */
  readonly channels: number;
}

export interface WavAudio extends WavParams {
  /** Interleaved sample bytes (16-bit little-endian for pcm16); a view into the file buffer. */
  readonly data: Uint8Array;
  /** Sample frames: one sample per channel. */
  readonly frames: number;
}

const FORMAT_TAG: Readonly<Record<WavSampleFormat, number>> = { pcm16: 1, pcma: 6, pcmu: 7 };
const BITS_PER_SAMPLE: Readonly<Record<WavSampleFormat, number>> = { pcm16: 16, pcma: 8, pcmu: 8 };
const FORMAT_BY_TAG: ReadonlyMap<number, WavSampleFormat> = new Map([[1, 'pcm16'], [6, 'pcma'], [7, 'pcmu']]);
const MAX_CHANNELS = 2;

const RIFF_HEADER_BYTES = 12; // "RIFF", size, "WAVE"
const CHUNK_HEADER_BYTES = 8; // id, size
const PCM_FMT_BYTES = 16; // WAVEFORMAT + wBitsPerSample
const NON_PCM_FMT_BYTES = 18; // WAVEFORMATEX with cbSize = 0
const FACT_BYTES = 4; // dwSampleLength
const MAX_UINT32 = 0xffffffff;
/** Data sizes a streaming writer leaves in the header before it knows the real one. */
const UNKNOWN_DATA_SIZES: ReadonlySet<number> = new Set([0, MAX_UINT32]);

function fourCC(bytes: Uint8Array, offset: number): string {
  return String.fromCharCode(bytes[offset]!, bytes[offset + 1]!, bytes[offset + 2]!, bytes[offset + 3]!);
}

function bytesPerSample(format: WavSampleFormat): number {
  return BITS_PER_SAMPLE[format] / 8;
}

/** Bytes per sample frame. */
export function blockAlignOf(params: WavParams): number {
  return params.channels * bytesPerSample(params.format);
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

interface FmtChunk {
  readonly formatTag: number;
  readonly channels: number;
  readonly sampleRateHz: number;
  readonly byteRate: number;
  readonly blockAlign: number;
  readonly bitsPerSample: number;
}

/** Reads a WAV file held in memory; the returned `data` is a view into `buf`. */
export function readWav(buf: Uint8Array): WavAudio {
  if (buf.length < RIFF_HEADER_BYTES) throw new WavFormatError(`file has ${buf.length} bytes, fewer than the ${RIFF_HEADER_BYTES}-byte RIFF header`);
  if (fourCC(buf, 0) !== 'RIFF' || fourCC(buf, 8) !== 'WAVE') throw new WavFormatError('not a RIFF/WAVE file');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);

  let fmt: FmtChunk | undefined;
  let dataStart = -1;
  let dataSize = 0;
  let dataSizeUnknown = false;
  let offset = RIFF_HEADER_BYTES;
  while ((fmt === undefined || dataStart < 0) && offset + CHUNK_HEADER_BYTES <= buf.length) {
    const id = fourCC(buf, offset);
    const size = view.getUint32(offset + 4, true);
    const bodyStart = offset + CHUNK_HEADER_BYTES;
    const remaining = buf.length - bodyStart;
    let bodySize = size;
    if (id === 'data' && dataStart < 0) {
      dataStart = bodyStart;
      // See the module comment: 0 and 0xFFFFFFFF mean "recorder not closed", take the rest.
      dataSizeUnknown = UNKNOWN_DATA_SIZES.has(size);
      dataSize = dataSizeUnknown ? remaining : size;
      if (dataSize > remaining) throw new WavFormatError(`data chunk declares ${size} bytes, only ${remaining} in the file`);
      bodySize = dataSize;
    } else if (size > remaining) {
      throw new WavFormatError(`chunk at offset ${offset} declares ${size} bytes, only ${remaining} in the file`);
    } else if (id === 'fmt ' && fmt === undefined) { // a second fmt or data chunk is skipped like any other
      if (size < PCM_FMT_BYTES) throw new WavFormatError(`fmt chunk has ${size} bytes, needs at least ${PCM_FMT_BYTES}`);
      fmt = {
        formatTag: view.getUint16(bodyStart, true),
        channels: view.getUint16(bodyStart + 2, true),
        sampleRateHz: view.getUint32(bodyStart + 4, true),
        byteRate: view.getUint32(bodyStart + 8, true),
        blockAlign: view.getUint16(bodyStart + 12, true),
        bitsPerSample: view.getUint16(bodyStart + 14, true),
      };
    }
    // "If the chunk size is an odd number of bytes, a pad byte with value zero is written after ckData."
    offset = bodyStart + bodySize + (bodySize & 1);
  }
  if (fmt === undefined) throw new WavFormatError('no fmt chunk');
  if (dataStart < 0) throw new WavFormatError('no data chunk');

  const params = checkFmt(fmt);
  const blockAlign = blockAlignOf(params);
  if (dataSizeUnknown) {
    dataSize -= dataSize % blockAlign; // a recorder that died mid-frame
  } else if (dataSize % blockAlign !== 0) {
    throw new WavFormatError(`data chunk of ${dataSize} bytes is not a whole number of ${blockAlign}-byte frames`);
  }
  return { ...params, data: buf.subarray(dataStart, dataStart + dataSize), frames: dataSize / blockAlign };
}

function checkFmt(fmt: FmtChunk): WavParams {
  const format = FORMAT_BY_TAG.get(fmt.formatTag);
  if (format === undefined) throw new WavFormatError(`unsupported format tag ${fmt.formatTag} (supported: 1 PCM, 6 A-law, 7 μ-law)`);
  if (fmt.channels === 0 || fmt.channels > MAX_CHANNELS) throw new WavFormatError(`${fmt.channels} channels, expected 1 or 2`);
  if (fmt.sampleRateHz === 0) throw new WavFormatError('sample rate 0');
  const bits = BITS_PER_SAMPLE[format];
  if (fmt.bitsPerSample !== bits) {
    throw new WavFormatError(`${fmt.bitsPerSample} bits per sample, format tag ${fmt.formatTag} needs ${bits}`);
  }
  const params: WavParams = { format, sampleRateHz: fmt.sampleRateHz, channels: fmt.channels };
  const blockAlign = blockAlignOf(params);
  if (fmt.blockAlign !== blockAlign) {
    throw new WavFormatError(`block align ${fmt.blockAlign}, expected ${fmt.channels} channels × ${bits / 8} bytes = ${blockAlign}`);
  }
  const byteRate = fmt.sampleRateHz * blockAlign;
  if (fmt.byteRate !== byteRate) {
    throw new WavFormatError(`byte rate ${fmt.byteRate}, expected ${fmt.sampleRateHz} Hz × ${blockAlign} bytes = ${byteRate}`);
  }
  return params;
}

/** Decodes the samples to 16-bit linear, one array per channel (G.711 through ./g711.ts). */
export function decodeWavToInt16(wav: WavAudio): Int16Array[] {
  const channels = Array.from({ length: wav.channels }, () => new Int16Array(wav.frames));
  if (wav.format === 'pcm16') {
    const view = new DataView(wav.data.buffer, wav.data.byteOffset, wav.data.byteLength);
    for (let frame = 0, offset = 0; frame < wav.frames; frame++) {
      for (const channel of channels) {
        channel[frame] = view.getInt16(offset, true);
        offset += 2;
      }
    }
    return channels;
  }
  const law: G711Law = wav.format;
  if (wav.channels === 1) return [decode(law, wav.data, channels[0])];
  return channels.map((out, c) => decode(law, deinterleaveBytes(wav.data, c, wav.channels), out));
}

function deinterleaveBytes(data: Uint8Array, channel: number, channelCount: number): Uint8Array {
  const out = new Uint8Array(data.length / channelCount);
  for (let frame = 0; frame < out.length; frame++) out[frame] = data[frame * channelCount + channel]!;
  return out;
}

/** The inverse of decodeWavToInt16: per-channel linear samples to interleaved WAV sample bytes. */
export function encodeInt16ToWavData(format: WavSampleFormat, channels: readonly Int16Array[]): Uint8Array {
  const frames = channels[0]?.length ?? 0;
  if (channels.length === 0 || channels.length > MAX_CHANNELS) throw new MediaConfigError(`WAV needs 1 or 2 channels, got ${channels.length}`);
  if (channels.some((c) => c.length !== frames)) throw new MediaConfigError('WAV channels differ in length');
  const out = new Uint8Array(frames * channels.length * bytesPerSample(format));
  if (format === 'pcm16') {
    const view = new DataView(out.buffer);
    for (let frame = 0, offset = 0; frame < frames; frame++) {
      for (const channel of channels) {
        view.setInt16(offset, channel[frame]!, true);
        offset += 2;
      }
    }
    return out;
  }
  channels.forEach((samples, c) => {
    const encoded = encode(format, samples);
    for (let frame = 0; frame < frames; frame++) out[frame * channels.length + c] = encoded[frame]!;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

function checkParams(params: WavParams): void {
  if (!(params.format in FORMAT_TAG)) throw new MediaConfigError('WAV format must be pcm16, pcmu or pcma');
  if (params.channels !== 1 && params.channels !== 2) throw new MediaConfigError(`WAV needs 1 or 2 channels, got ${params.channels}`);
  const { sampleRateHz } = params;
  if (!Number.isInteger(sampleRateHz) || sampleRateHz < 1 || sampleRateHz * blockAlignOf(params) > MAX_UINT32) {
    throw new MediaConfigError(`WAV sample rate ${sampleRateHz} Hz out of range`);
  }
}

/**
 * The header up to and including the data chunk's size field. PCM gets the canonical 44 bytes;
 * G.711 gets the 18-byte fmt (cbSize 0) and the fact chunk that non-PCM formats require: 58 bytes.
 */
function headerBytesOf(format: WavSampleFormat): number {
  const isPcm = format === 'pcm16';
  const fmtBytes = isPcm ? PCM_FMT_BYTES : NON_PCM_FMT_BYTES;
  const factChunkBytes = isPcm ? 0 : CHUNK_HEADER_BYTES + FACT_BYTES;
  return RIFF_HEADER_BYTES + CHUNK_HEADER_BYTES + fmtBytes + factChunkBytes + CHUNK_HEADER_BYTES;
}

function buildHeader(params: WavParams, dataBytes: number): Uint8Array {
  const isPcm = params.format === 'pcm16';
  const fmtBytes = isPcm ? PCM_FMT_BYTES : NON_PCM_FMT_BYTES;
  const headerBytes = headerBytesOf(params.format);
  const blockAlign = blockAlignOf(params);
  const out = new Uint8Array(headerBytes);
  const view = new DataView(out.buffer);
  const ascii = (offset: number, text: string): void => {
    for (let i = 0; i < 4; i++) out[offset + i] = text.charCodeAt(i);
  };

  ascii(0, 'RIFF');
  view.setUint32(4, headerBytes - CHUNK_HEADER_BYTES + dataBytes + (dataBytes & 1), true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, fmtBytes, true);
  view.setUint16(20, FORMAT_TAG[params.format], true);
  view.setUint16(22, params.channels, true);
  view.setUint32(24, params.sampleRateHz, true);
  view.setUint32(28, params.sampleRateHz * blockAlign, true);
  view.setUint16(32, blockAlign, true);
  view.setUint16(34, BITS_PER_SAMPLE[params.format], true);
  let offset = 36;
  if (!isPcm) {
    view.setUint16(offset, 0, true); // cbSize
    ascii(offset + 2, 'fact');
    view.setUint32(offset + 6, FACT_BYTES, true);
    view.setUint32(offset + 10, dataBytes / blockAlign, true); // dwSampleLength: frames
    offset += 2 + CHUNK_HEADER_BYTES + FACT_BYTES;
  }
  ascii(offset, 'data');
  view.setUint32(offset + 4, dataBytes, true);
  return out;
}

function checkDataSize(params: WavParams, headerBytes: number, dataBytes: number): void {
  const blockAlign = blockAlignOf(params);
  if (dataBytes % blockAlign !== 0) throw new MediaConfigError(`WAV data of ${dataBytes} bytes is not a whole number of ${blockAlign}-byte frames`);
  if (headerBytes - CHUNK_HEADER_BYTES + dataBytes + 1 > MAX_UINT32) throw new MediaConfigError(`WAV data of ${dataBytes} bytes exceeds the 4 GiB RIFF limit`);
}

/** A whole WAV file: header, the interleaved sample bytes, and a pad byte if their length is odd. */
export function writeWav(params: WavParams, data: Uint8Array): Uint8Array {
  checkParams(params);
  checkDataSize(params, headerBytesOf(params.format), data.length);
  const header = buildHeader(params, data.length);
  const out = new Uint8Array(header.length + data.length + (data.length & 1));
  out.set(header);
  out.set(data, header.length);
  return out;
}

/**
 * Streams a WAV file to disk: the header goes first with a data size of 0 (which readWav takes
 * as "the rest of the file", so a recording survives a crash), data is appended, and close()
 * patches the RIFF, fact and data sizes and closes the file. The writer owns its file handle.
 */
export class WavFileWriter {
  readonly params: WavParams;
  readonly #handle: FileHandle;
  readonly #headerBytes: number;
  #dataBytes = 0;
  /** Every file operation runs after the previous one, so write() callers need not await in turn. */
  #tail: Promise<void> = Promise.resolve();
  /** write() calls not yet settled. */
  #queued = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(handle: FileHandle, params: WavParams) {
    this.#handle = handle;
    this.params = { format: params.format, sampleRateHz: params.sampleRateHz, channels: params.channels };
    this.#headerBytes = headerBytesOf(params.format);
  }

  /** Creates `path` (failing if it exists: a recording is never overwritten) and writes the header. */
  static async open(path: string, params: WavParams): Promise<WavFileWriter> {
    checkParams(params);
    return WavFileWriter.fromFileHandle(await open(path, 'wx'), params);
  }

  /**
   * Takes ownership of a handle opened for writing (not append: writes are positioned from
   * offset 0, and close() truncates whatever the file held after the new data) and writes the
   * header. The handle is the writer's from this call on: if the header cannot be written, the
   * handle is closed before the error is thrown.
   */
  static async fromFileHandle(handle: FileHandle, params: WavParams): Promise<WavFileWriter> {
    try {
      checkParams(params);
      const writer = new WavFileWriter(handle, params);
      await writer.#writeAt(buildHeader(params, 0), 0);
      return writer;
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Sample frames accepted so far. */
  get frames(): number {
    return this.#dataBytes / blockAlignOf(this.params);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Appends interleaved sample bytes (whole frames). The bytes are copied at once, so the caller
   * may reuse its buffer as soon as write() returns; the promise settles when they are on disk.
   */
  write(data: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new InvalidStateError('WavFileWriter is closed'));
    const blockAlign = blockAlignOf(this.params);
    if (data.length % blockAlign !== 0) {
      return Promise.reject(new MediaConfigError(`WAV write of ${data.length} bytes is not a whole number of ${blockAlign}-byte frames`));
    }
    try {
      checkDataSize(this.params, this.#headerBytes, this.#dataBytes + data.length);
    } catch (err) {
      return Promise.reject(err);
    }
    const position = this.#headerBytes + this.#dataBytes;
    this.#dataBytes += data.length;
    return this.#enqueue(data.slice(), position);
  }

  /**
   * Appends like write(), but at once, in the calling thread, from the caller's buffer (no copy).
   * For the media path: an 8–16 KiB write to the page cache costs about 8 µs here, while the
   * thread pool's writes, queued by hundreds of calls at once, took the core from the event loop
   * for tens of milliseconds (docs/sip.md, "Recording and the event loop"). Throws what the
   * write throws.
   */
  writeSync(data: Uint8Array): void {
    if (this.#closed) throw new InvalidStateError('WavFileWriter is closed');
    if (this.#queued > 0) throw new InvalidStateError('WavFileWriter.writeSync while asynchronous writes are queued');
    const blockAlign = blockAlignOf(this.params);
    if (data.length % blockAlign !== 0) throw new MediaConfigError(`WAV write of ${data.length} bytes is not a whole number of ${blockAlign}-byte frames`);
    checkDataSize(this.params, this.#headerBytes, this.#dataBytes + data.length);
    const position = this.#headerBytes + this.#dataBytes;
    for (let done = 0; done < data.length;) {
      const written = writeSync(this.#handle.fd, data, done, data.length - done, position + done);
      if (written <= 0) throw new InvalidStateError(`WAV write made no progress after ${done} of ${data.length} bytes`);
      done += written;
    }
    this.#dataBytes += data.length;
  }

  /** Patches the sizes and closes the file. Idempotent: later calls return the same promise. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closing = this.#finish();
    return this.#closing;
  }

  async #finish(): Promise<void> {
    try {
      await this.#tail;
      const end = this.#headerBytes + this.#dataBytes;
      if (this.#dataBytes & 1) await this.#writeAt(new Uint8Array(1), end); // RIFF pad byte
      await this.#writeAt(buildHeader(this.params, this.#dataBytes), 0);
      await this.#handle.truncate(end + (this.#dataBytes & 1));
    } finally {
      await this.#handle.close();
    }
  }

  #enqueue(bytes: Uint8Array, position: number): Promise<void> {
    this.#queued++;
    const written = this.#tail.then(() => this.#writeAt(bytes, position)).finally(() => this.#queued--);
    this.#tail = written.catch(() => undefined); // a failed write rejects its own caller only
    return written;
  }

  async #writeAt(bytes: Uint8Array, position: number): Promise<void> {
    for (let done = 0; done < bytes.length;) {
      const { bytesWritten } = await this.#handle.write(bytes, done, bytes.length - done, position + done);
      done += bytesWritten;
    }
  }
}
