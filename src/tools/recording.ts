/**
 * Call recordings as the tools read and write them: WAV files (16-bit PCM, μ-law, A-law; mono
 * or stereo) and headerless G.711 files (`.ul` μ-law, `.al` A-law; 8 kHz mono by convention,
 * as sox and Asterisk write them). The kind of a file is decided by its extension, never by
 * sniffing its bytes, so a `.wav` that is not a WAV file fails loudly instead of being read as
 * raw audio.
 *
 * The DTMF engine works at 8000 Hz only; a recording at any other rate is rejected
 * (UnsupportedSampleRateError) rather than resampled.
 *
 * Pure apart from `readRecording`; every function returns values and writes nothing.
 */

import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { UnsupportedFileTypeError, UnsupportedSampleRateError } from '../errors.ts';
import { SAMPLE_RATE_HZ } from '../media/dtmf/frequencies.ts';
import type { G711Law } from '../media/g711.ts';
import { decodeWavToInt16, readWav, type WavAudio, type WavSampleFormat, writeWav } from '../media/wav.ts';

/** Samples per engine call: one 20 ms RTP frame at 8 kHz, as the engine sees them on a call. */
export const FRAME_SAMPLES = 160;

/** How a recording is stored: a WAV file, or bare G.711 bytes of one law. */
export type RecordingKind = 'wav' | 'raw-pcmu' | 'raw-pcma';

export interface Recording extends WavAudio {
  readonly kind: RecordingKind;
}

const KIND_BY_EXTENSION: ReadonlyMap<string, RecordingKind> = new Map([
  ['.wav', 'wav'],
  ['.ul', 'raw-pcmu'],
  ['.al', 'raw-pcma'],
]);

/** The extensions the tools read, lower case with the dot. */
export const RECORDING_EXTENSIONS: readonly string[] = [...KIND_BY_EXTENSION.keys()];

/** The kind a file name says it is (extension, case-insensitive), or undefined. */
export function recordingKindOf(path: string): RecordingKind | undefined {
  return KIND_BY_EXTENSION.get(extname(path).toLowerCase());
}

/** As `recordingKindOf`, but throws UnsupportedFileTypeError for any other extension. */
export function requireRecordingKind(path: string): RecordingKind {
  const kind = recordingKindOf(path);
  if (kind === undefined) throw new UnsupportedFileTypeError(extname(path) || '(none)');
  return kind;
}

/**
 * Reads a recording held in memory. WAV data is a view into `bytes` (see readWav); raw data is
 * `bytes` itself. Throws WavFormatError for a bad WAV header and UnsupportedSampleRateError for
 * a WAV at any rate but 8000 Hz.
 */
export function parseRecording(kind: RecordingKind, bytes: Uint8Array): Recording {
  if (kind === 'wav') {
    const wav = readWav(bytes);
    if (wav.sampleRateHz !== SAMPLE_RATE_HZ) throw new UnsupportedSampleRateError(wav.sampleRateHz, SAMPLE_RATE_HZ);
    return { ...wav, kind };
  }
  const format: G711Law = kind === 'raw-pcmu' ? 'pcmu' : 'pcma';
  return { kind, format, sampleRateHz: SAMPLE_RATE_HZ, channels: 1, data: bytes, frames: bytes.length };
}

/** Reads the file at `path` as the recording its extension names. */
export async function readRecording(path: string): Promise<Recording> {
  const kind = requireRecordingKind(path);
  const bytes = await readFile(path);
  return parseRecording(kind, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

/**
 * The file bytes of a recording of the same kind and format as `like` holding `data`
 * (interleaved sample bytes). WAV output gets hushpay's canonical header (writeWav): chunks
 * other than fmt, fact and data are not carried over, so the file holds nothing but audio
 * that went through the tool.
 */
export function serializeRecording(like: Recording, data: Uint8Array): Uint8Array {
  if (like.kind !== 'wav') return data;
  return writeWav({ format: like.format, sampleRateHz: like.sampleRateHz, channels: like.channels }, data);
}

/** The samples of every channel as 16-bit linear (G.711 decoded). */
export function linearChannels(recording: Recording): Int16Array[] {
  return decodeWavToInt16(recording); // a raw recording is a mono WavAudio without the header
}

/** The sample bytes of one channel of an 8-bit (G.711) recording. */
export function g711Channel(recording: Recording, channel: number): Uint8Array {
  const { channels, data } = recording;
  if (channels === 1) return data;
  const out = new Uint8Array(recording.frames);
  for (let frame = 0; frame < out.length; frame++) out[frame] = data[frame * channels + channel]!;
  return out;
}

/** Interleaves per-channel G.711 bytes into WAV sample order. */
export function interleaveBytes(channels: readonly Uint8Array[]): Uint8Array {
  const count = channels.length;
  const first = channels[0];
  if (count === 1 && first !== undefined) return first;
  const frames = first?.length ?? 0;
  const out = new Uint8Array(frames * count);
  channels.forEach((bytes, c) => {
    for (let frame = 0; frame < frames; frame++) out[frame * count + c] = bytes[frame]!;
  });
  return out;
}

/** The G.711 law of a sample format, or undefined for 16-bit PCM. */
export function g711LawOf(format: WavSampleFormat): G711Law | undefined {
  return format === 'pcm16' ? undefined : format;
}
