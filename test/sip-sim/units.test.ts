// The pure stages of sip-sim, without sockets: what one tick sends, where a received packet is
// recorded, how loss and jitter are counted, how the pacer keeps to its schedule, and how offer
// and answer pick codecs.

import { describe, expect, it } from 'vitest';
import type { Clock, TimerHandle } from '../../src/clock.ts';
import { MediaConfigError, SdpError } from '../../src/errors.ts';
import { parseTelephoneEvent } from '../../src/media/rfc4733.ts';
import { parseRtp } from '../../src/media/rtp.ts';
import { mixToMono } from '../../sip-sim/audio-file.ts';
import { numberedPath, OutgoingStream, Pacer, parseDtmfRelay, parseHostPort, planKeyPresses, RtpReceiveStats, TimestampAlignedRecorder } from '../../sip-sim/index.ts';
import { answer, negotiate, offer } from '../../sip-sim/sdp.ts';

describe('planKeyPresses', () => {
  it('puts key i at afterMs + i·(tone + gap), on the nearest 20 ms tick; * is a key like any other', () => {
    const keys = planKeyPresses({ digits: '4*1#', afterMs: 110, toneMs: 100, gapMs: 100 });
    expect(keys.map((k) => [k.digit, k.onsetTick])).toEqual([['4', 6], ['*', 16], ['1', 26], ['#', 36]]);
  });

  it.each([
    ['12x4', /position 2/],
    ['1,2', /position 1/],
  ])('refuses %s naming only the position', (digits, message) => {
    expect(() => planKeyPresses({ digits, afterMs: 0, toneMs: 100, gapMs: 100 })).toThrow(MediaConfigError);
    expect(() => planKeyPresses({ digits, afterMs: 0, toneMs: 100, gapMs: 100 })).toThrow(message);
  });
});

function stream(overrides: Partial<ConstructorParameters<typeof OutgoingStream>[0]> = {}, events = true): OutgoingStream {
  return new OutgoingStream({
    law: 'pcmu',
    payloadType: 0,
    keys: planKeyPresses({ digits: '5', afterMs: 40, toneMs: 100, gapMs: 100 }),
    inband: false,
    levelDbm0: -8,
    twistDb: 2,
    ...(events ? { telephoneEvent: { payloadType: 101 } } : {}),
    audioDuringEvents: false,
    ssrc: 0x1234,
    initialSequenceNumber: 0xfffe,
    initialTimestamp: 0xffffff00,
    ...overrides,
  });
}

describe('OutgoingStream', () => {
  it('sends a key as RFC 4733 events (marker, growing duration, three end packets) with the audio paused', () => {
    const s = stream();
    const packets = Array.from({ length: 12 }, () => s.next()).flatMap((t) => t.packets.map((p) => parseRtp(p)));

    expect(packets.map((p) => p.payloadType)).toEqual([0, 0, 101, 101, 101, 101, 101, 101, 101, 0, 0, 0]);
    expect(packets.map((p) => p.sequenceNumber)).toEqual([0xfffe, 0xffff, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const events = packets.filter((p) => p.payloadType === 101);
    expect(events.map((p) => p.marker)).toEqual([true, false, false, false, false, false, false]);
    // every event packet carries the onset (tick 2) as its timestamp, across the 32-bit wrap
    expect(new Set(events.map((p) => p.timestamp))).toEqual(new Set([(0xffffff00 + 2 * 160) >>> 0]));
    expect(events.map((p) => parseTelephoneEvent(p.payload))).toEqual([
      ...[160, 320, 480, 640].map((duration) => ({ event: 5, end: false, volume: 8, duration })),
      ...[800, 800, 800].map((duration) => ({ event: 5, end: true, volume: 8, duration })),
    ]);
    // audio resumes on the media clock: tick 9 is 9 frames after tick 0
    expect(packets[9]!.timestamp).toBe((0xffffff00 + 9 * 160) >>> 0);
  });

  it('keeps the audio going during events when asked, and reports the key on its onset tick', () => {
    const s = stream({ audioDuringEvents: true });
    const ticks = Array.from({ length: 4 }, () => s.next());

    expect(ticks.map((t) => [t.audioPackets, t.telephoneEventPackets])).toEqual([[1, 0], [1, 0], [1, 1], [1, 1]]);
    expect(ticks.map((t) => t.keysStarting.map((k) => k.digit).join(''))).toEqual(['', '', '5', '']);
  });

  it("mixes an in-band tone into exactly the key's samples, phase-continuous across frames", () => {
    const s = stream({ inband: true, keys: planKeyPresses({ digits: '5', afterMs: 20, toneMs: 30, gapMs: 0 }) }, false);
    const silence = 0xff; // μ-law zero
    const frames = Array.from({ length: 3 }, () => parseRtp(s.next().packets[0]!).payload);

    expect(frames[0]!.every((b) => b === silence)).toBe(true);
    expect(frames[1]!.filter((b) => b === silence).length).toBeLessThan(10);
    expect(frames[2]!.subarray(0, 80).filter((b) => b === silence).length).toBeLessThan(10);
    expect(frames[2]!.subarray(80).every((b) => b === silence)).toBe(true);
  });

  it('sends the file, then silence', () => {
    const source = new Int16Array(200).fill(1000);
    const s = stream({ source, keys: [] });
    const [a, b] = [s.next(), s.next()].map((t) => parseRtp(t.packets[0]!).payload);

    expect(a!.every((x) => x === a![0] && x !== 0xff)).toBe(true);
    expect(b!.subarray(0, 40).every((x) => x === a![0])).toBe(true);
    expect(b!.subarray(40).every((x) => x === 0xff)).toBe(true);
  });
});

describe('RtpReceiveStats', () => {
  const packet = (sequenceNumber: number, timestamp: number, ssrc = 1) => ({ ssrc, sequenceNumber, timestamp });

  it('counts loss from sequence gaps across the 16-bit wrap, and late packets as out of order', () => {
    const stats = new RtpReceiveStats();
    for (const seq of [65533, 65534, 1, 2, 65535, 5]) stats.receive(packet(seq, 0), 0, false);

    // expected 65533…5 = 9, received 6
    expect(stats.totals()).toMatchObject({ packets: 6, lost: 3, outOfOrder: 1 });
  });

  it('computes RFC 3550 interarrival jitter: 0 on a steady stream, J += (|D| − J)/16 otherwise', () => {
    const steady = new RtpReceiveStats();
    for (let i = 0; i < 50; i++) steady.receive(packet(i, i * 160), 1000 + i * 20, true);
    expect(steady.totals().jitterMs).toBe(0);

    const late = new RtpReceiveStats();
    late.receive(packet(0, 0), 0, true);
    late.receive(packet(1, 160), 24, true); // D = 4 ms = 32 units: J = 32/16 = 2 units
    late.receive(packet(2, 320), 40, true); // D = −4 ms: J = 2 + (32 − 2)/16 = 3.875 units
    expect(late.totals().jitterMs).toBeCloseTo(3.875 / 8, 10);
    expect(late.totals().maxJitterMs).toBeCloseTo(3.875 / 8, 10);
  });

  it('keeps streams apart by SSRC', () => {
    const stats = new RtpReceiveStats();
    stats.receive(packet(10, 0, 1), 0, true);
    stats.receive(packet(500, 0, 2), 0, true);
    stats.receive(packet(12, 320, 1), 40, true);

    expect(stats.totals()).toMatchObject({ packets: 3, lost: 1 });
    expect(stats.stream(2)).toMatchObject({ received: 1, lost: 0 });
  });
});

describe('TimestampAlignedRecorder', () => {
  const frame = (value: number) => new Int16Array(160).fill(value);

  it('places packets by timestamp: a lost one leaves silence, a late one fills its hole', () => {
    const r = new TimestampAlignedRecorder(true);
    r.push(7, 1000, frame(1), 0);
    r.push(7, 1320, frame(3), 40); // 1160 lost…
    r.push(7, 1640, frame(5), 80); // …and 1480 comes late
    r.push(7, 1480, frame(4), 85);

    const s = r.samples();
    expect(s.length).toBe(800);
    expect([s[0], s[160], s[320], s[480], s[640]]).toEqual([1, 0, 3, 4, 5]);
  });

  it('anchors a new SSRC at its arrival time, never over what is written', () => {
    const r = new TimestampAlignedRecorder(true);
    r.push(1, 0, frame(1), 0);
    r.push(2, 99999, frame(2), 100); // 100 ms after the first: position 800
    r.push(3, 5, frame(3), 100); // arrives at the same time, but 800…960 is taken

    const s = r.samples();
    expect([s[0], s[799], s[800], s[960]]).toEqual([1, 0, 2, 3]);
    expect(r.lengthSamples).toBe(1120);
  });

  it('tracks the extent alone when it does not keep samples', () => {
    const r = new TimestampAlignedRecorder(false);
    r.push(1, 0, frame(1), 0);
    r.push(1, 800, frame(1), 100);
    expect([r.lengthSamples, r.samples().length]).toEqual([960, 0]);
  });
});

/** A clock whose time moves only by `fireAt`, which runs the timer that is due. */
class ManualClock implements Clock {
  time = 0;
  timer: { at: number; callback: () => void; requestedMs: number } | undefined;
  now(): number {
    return this.time;
  }
  wallMs(): number {
    return Date.UTC(2026, 10, 21) + this.time;
  }
  setTimeout(callback: () => void, ms: number): TimerHandle {
    this.timer = { at: this.time + ms, callback, requestedMs: ms };
    return 1;
  }
  clearTimeout(): void {
    this.timer = undefined;
  }
  fireAt(time: number): void {
    const timer = this.timer!;
    this.timer = undefined;
    this.time = time;
    timer.callback();
  }
}

describe('Pacer', () => {
  it('keeps to start + n·20 ms however late its timer fires, and skips ticks after a long stall', () => {
    const clock = new ManualClock();
    const ticks: number[] = [];
    const pacer = new Pacer(clock, 20, (n) => ticks.push(n));

    pacer.start();
    clock.fireAt(25); // tick 1 five ms late…
    expect(clock.timer?.requestedMs).toBe(15); // …and tick 2 still due at 40, not 45
    clock.fireAt(40.2);
    clock.fireAt(500); // ticks 3…24 are more than 200 ms late: skipped, tick 25 is due now

    expect(ticks).toEqual([0, 1, 2, 25]);
    expect(pacer.stats()).toMatchObject({ ticks: 4, skipped: 22, maxMs: 5 });
    pacer.stop();
    expect(clock.timer).toBeUndefined();
  });

  it('sends every tick due in one wake-up when it is behind by less than the catch-up limit', () => {
    const clock = new ManualClock();
    const ticks: number[] = [];
    new Pacer(clock, 20, (n) => ticks.push(n)).start();
    clock.fireAt(65);
    expect(ticks).toEqual([0, 1, 2, 3]);
  });
});

describe('offer and answer', () => {
  it('offers PCMU, PCMA and telephone-event/8000 at ptime 20', () => {
    const sdp = offer('127.0.0.1', 40000, '1');
    expect(sdp).toContain('m=audio 40000 RTP/AVP 0 8 101\r\n');
    expect(sdp).toContain('a=rtpmap:101 telephone-event/8000\r\n');
    expect(sdp).toContain('a=ptime:20\r\n');
  });

  it("answers with the offer's first G.711 codec and its telephone-event payload type", () => {
    const remote = 'v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 18 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\n';
    const { sdp, media } = answer(remote, '127.0.0.1', 40000, '1');

    expect(media).toEqual({ law: 'pcma', payloadType: 8, telephoneEvent: 96, remote: { host: '10.0.0.1', port: 5004 } });
    expect(sdp).toContain('m=audio 40000 RTP/AVP 8 96\r\n');
    expect(() => negotiate(remote.replace('18 8 0 96', '18'))).toThrow(SdpError);
  });

  it('stops sending to a far end on hold (sendonly or port 0)', () => {
    const remote = 'v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\na=sendonly\r\n';
    expect(negotiate(remote).remote).toBeUndefined();
  });
});

describe('small parsers', () => {
  it('reads dtmf-relay bodies, including 10 and 11 for * and #', () => {
    expect(parseDtmfRelay('Signal=5\r\nDuration=160\r\n')).toEqual({ digit: '5', durationMs: 160 });
    expect(parseDtmfRelay('Signal=10\r\n')).toEqual({ digit: '*', durationMs: undefined });
    expect(parseDtmfRelay('Signal=11\nDuration=100')).toEqual({ digit: '#', durationMs: 100 });
    expect(parseDtmfRelay('Signal=Z\r\n')).toBeUndefined();
  });

  it('reads HOST:PORT, names recordings per call, and mixes channels to mono', () => {
    expect(parseHostPort('127.0.0.1:5060')).toEqual({ host: '127.0.0.1', port: 5060 });
    expect(parseHostPort('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseHostPort('localhost')).toBeUndefined();
    expect(numberedPath('/tmp/rec/agent.wav', 3)).toBe('/tmp/rec/agent-3.wav');
    expect(mixToMono([Int16Array.of(100, -100), Int16Array.of(300, 101)])).toEqual(Int16Array.of(200, 1));
  });
});
