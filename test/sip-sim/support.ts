// Helpers for the sip-sim tests: a clock that counts the timers still pending (every timer of
// a phone, its calls and its SIP stack goes through it), and counts of the socket handles the
// process holds, so a test can assert that close() left nothing behind.

import { readFileSync } from 'node:fs';
import { type Clock, systemClock, type TimerHandle } from '../../src/clock.ts';
import { decodeWavToInt16, readWav } from '../../src/media/wav.ts';

/** The system clock, counting the timers set through it and not yet fired or cleared. */
export class CountingClock implements Clock {
  readonly #pending = new Set<TimerHandle>();

  now(): number {
    return systemClock.now();
  }

  wallMs(): number {
    return systemClock.wallMs();
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const handle = systemClock.setTimeout(() => {
      this.#pending.delete(handle);
      callback();
    }, ms);
    this.#pending.add(handle);
    return handle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#pending.delete(handle);
    systemClock.clearTimeout(handle);
  }

  get pending(): number {
    return this.#pending.size;
  }
}

/** Socket handles this process holds (UDP sockets, TCP servers and connections). */
export function openSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap' || r === 'TCPServerWrap' || r === 'TCPWrap').length;
}

/** A mono 8 kHz WAV file's samples. */
export function readMonoWav(path: string): Int16Array {
  const wav = readWav(new Uint8Array(readFileSync(path)));
  if (wav.sampleRateHz !== 8000 || wav.channels !== 1) throw new Error(`expected 8 kHz mono, got ${wav.sampleRateHz} Hz × ${wav.channels}`);
  return decodeWavToInt16(wav)[0]!;
}
