/**
 * Audio a phone plays: a .wav (16-bit PCM, μ-law or A-law), or a headerless .ul (μ-law) or .al
 * (A-law) file, at 8000 Hz only — sip-sim does not resample (UnsupportedSampleRateError says how
 * to convert). Several channels are mixed down to one, as a phone's microphone would hear them.
 */

import { linearChannels, readRecording } from '../src/tools/recording.ts';

/** Reads `path` as 8 kHz mono 16-bit samples. */
export async function readAudioFile(path: string): Promise<Int16Array> {
  return mixToMono(linearChannels(await readRecording(path)));
}

/** The mean of the channels (one channel is returned as is). */
export function mixToMono(channels: readonly Int16Array[]): Int16Array {
  const first = channels[0];
  if (!first) return new Int16Array(0);
  if (channels.length === 1) return first;
  const out = new Int16Array(first.length);
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (const channel of channels) sum += channel[i]!;
    out[i] = Math.round(sum / channels.length);
  }
  return out;
}
