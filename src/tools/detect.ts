/**
 * `hushpay detect`: every DTMF digit heard in a recording, for audits ("did card digits reach
 * this recording?"). One detection-only DtmfEngine per channel, fed 160 samples (one 20 ms RTP
 * frame) at a time as on a live call, so a recording is judged exactly as the call was.
 *
 * Times are ms from the first sample of the recording, rounded to whole ms (the engine places
 * a tone's edges to within a few ms; more digits would claim precision it does not have).
 */

import { type DtmfDigit, SAMPLE_RATE_HZ } from '../media/dtmf/frequencies.ts';
import { DtmfEngine } from '../media/dtmf/engine.ts';
import type { WavSampleFormat } from '../media/wav.ts';
import { FRAME_SAMPLES, linearChannels, readRecording, type Recording, type RecordingKind } from './recording.ts';

export interface DetectedDigit {
  readonly digit: DtmfDigit;
  /** Tone start and end, ms from the start of the recording, rounded to whole ms. */
  readonly startMs: number;
  readonly endMs: number;
  /** Stereo recordings only: the channel (0 left, 1 right) the digit was heard on. */
  readonly channel?: number;
}

export interface DetectReport {
  readonly kind: RecordingKind;
  readonly format: WavSampleFormat;
  readonly channels: number;
  readonly durationMs: number;
  /** In time order (by start; a tie puts channel 0 first). */
  readonly digits: readonly DetectedDigit[];
}

/** The digits of one channel of 8 kHz linear samples, in the order the engine named them. */
export function detectChannel(samples: Int16Array): { digit: DtmfDigit; startMs: number; endMs: number }[] {
  const found: { digit: DtmfDigit; startMs: number; endMs: number }[] = [];
  const engine = new DtmfEngine({
    outputs: [],
    onDigit: (d) => found.push({ digit: d.digit, startMs: Math.round(d.startMs), endMs: Math.round(d.endMs) }),
  });
  for (let offset = 0; offset < samples.length; offset += FRAME_SAMPLES) {
    engine.processLinear(samples.subarray(offset, Math.min(samples.length, offset + FRAME_SAMPLES)));
  }
  engine.flushLinear();
  return found;
}

/** Every digit in a recording; stereo digits carry their channel. */
export function detectDigits(recording: Recording): DetectedDigit[] {
  const channels = linearChannels(recording);
  if (channels.length === 1) return sortByTime(detectChannel(channels[0]!));
  const all = channels.flatMap((samples, channel) => detectChannel(samples).map((d) => ({ ...d, channel })));
  return sortByTime(all);
}

function sortByTime<T extends DetectedDigit>(digits: T[]): T[] {
  // Array.prototype.sort is stable, so digits of one channel keep the engine's order on ties.
  return digits.sort((a, b) => a.startMs - b.startMs || (a.channel ?? 0) - (b.channel ?? 0));
}

export function detectRecording(recording: Recording): DetectReport {
  return {
    kind: recording.kind,
    format: recording.format,
    channels: recording.channels,
    durationMs: (recording.frames * 1000) / SAMPLE_RATE_HZ,
    digits: detectDigits(recording),
  };
}

/** Reads `path` (kind by extension) and detects its digits. */
export async function detectFile(path: string): Promise<DetectReport> {
  return detectRecording(await readRecording(path));
}
