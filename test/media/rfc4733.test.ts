import { describe, expect, it } from 'vitest';
import { MediaConfigError, TelephoneEventTooShortError } from '../../src/errors.ts';
import {
  digitToEvent,
  eventToDigit,
  parseTelephoneEvent,
  type ReceivedKeyPress,
  serializeTelephoneEvent,
  type TelephoneEvent,
  type TelephoneEventPacket,
  TelephoneEventReceiver,
  type TelephoneEventRtp,
  TelephoneEventSender,
} from '../../src/media/rfc4733.ts';
import { parseRtp, serializeRtp } from '../../src/media/rtp.ts';
import { uint16Add, uint32Add } from '../../src/media/seq.ts';

const TELEPHONE_EVENT_PT = 101;
const SSRC = 0x5eed;

/** Telephone-event RTP packets as the receiver sees them, built without going through the wire. */
function rtp(timestamp: number, telephoneEvent: TelephoneEvent, ssrc = SSRC): TelephoneEventRtp {
  return { payloadType: TELEPHONE_EVENT_PT, ssrc, timestamp, payload: serializeTelephoneEvent(telephoneEvent) };
}

function update(event: number, timestamp: number, duration: number, end = false): TelephoneEventRtp {
  return rtp(timestamp, { event, end, volume: 10, duration });
}

function receiveAll(receiver: TelephoneEventReceiver, packets: readonly TelephoneEventRtp[]): ReceivedKeyPress[] {
  return packets.flatMap((packet) => receiver.receive(packet));
}

function summary(packets: readonly TelephoneEventPacket[]): string[] {
  return packets.map((p) => `${p.marker ? 'M ' : ''}ts=${p.timestamp} d=${p.telephoneEvent.duration}${p.telephoneEvent.end ? ' E' : ''}`);
}

describe('telephone-event payload (RFC 4733 §2.3)', () => {
  it('reads event, E bit, volume and duration', () => {
    expect(parseTelephoneEvent(Uint8Array.of(0x05, 0x8a, 0x03, 0x20))).toEqual({ event: 5, end: true, volume: 10, duration: 800 });
    expect(parseTelephoneEvent(Uint8Array.of(0xff, 0x3f, 0xff, 0xff))).toEqual({ event: 255, end: false, volume: 63, duration: 0xffff });
  });

  it('ignores the R bit, and any bytes after the first event', () => {
    expect(parseTelephoneEvent(Uint8Array.of(0x0b, 0x40 | 0x07, 0x00, 0xa0, 0x01, 0x02))).toEqual({ event: 11, end: false, volume: 7, duration: 160 });
  });

  it.each([0, 1, 2, 3])('rejects a %i-byte payload with TelephoneEventTooShortError', (length) => {
    const parse = () => parseTelephoneEvent(new Uint8Array(length));
    expect(parse).toThrow(TelephoneEventTooShortError);
    expect(parse).toThrow(expect.objectContaining({ code: 'HP_ERR_TELEPHONE_EVENT_TOO_SHORT', length }));
  });

  it('serializes with the R bit clear and round-trips every field', () => {
    const cases: TelephoneEvent[] = [
      { event: 0, end: false, volume: 0, duration: 0 },
      { event: 11, end: true, volume: 63, duration: 0xffff },
      { event: 200, end: false, volume: 37, duration: 0x1234 },
    ];
    for (const telephoneEvent of cases) {
      const bytes = serializeTelephoneEvent(telephoneEvent);
      expect(bytes.length).toBe(4);
      expect(bytes[1]! & 0x40).toBe(0);
      expect(parseTelephoneEvent(bytes)).toEqual(telephoneEvent);
    }
  });

  it.each<[string, TelephoneEvent]>([
    ['event 256', { event: 256, end: false, volume: 0, duration: 0 }],
    ['volume 64', { event: 1, end: false, volume: 64, duration: 0 }],
    ['duration 0x10000', { event: 1, end: false, volume: 0, duration: 0x10000 }],
    ['negative duration', { event: 1, end: false, volume: 0, duration: -1 }],
  ])('refuses to serialize %s', (_name, telephoneEvent) => {
    expect(() => serializeTelephoneEvent(telephoneEvent)).toThrow(MediaConfigError);
  });
});

describe('DTMF event codes (RFC 4733 §3.2)', () => {
  it('maps 0–9, *, #, A–D to 0–15 and back', () => {
    const keys = '0123456789*#ABCD';
    for (let event = 0; event < 16; event++) {
      expect(digitToEvent(keys[event]!)).toBe(event);
      expect(eventToDigit(event)).toBe(keys[event]);
    }
  });

  it.each(['', 'a', 'E', '10', '##', ' 1'])('digitToEvent(%j) is undefined', (text) => {
    expect(digitToEvent(text)).toBeUndefined();
  });

  it.each([16, 32, 255, -1, 1.5, Number.NaN])('eventToDigit(%d) is undefined (not a DTMF event)', (event) => {
    expect(eventToDigit(event)).toBeUndefined();
  });
});

describe('TelephoneEventSender (RFC 4733 §2.5.1)', () => {
  it('sends a 100 ms key press as a marked first packet, growing updates at one timestamp, and three end packets', () => {
    const sender = new TelephoneEventSender({ event: 5, startTimestamp: 1000, durationTimestampUnits: 800 });
    expect(summary(sender.packets())).toEqual([
      'M ts=1000 d=160',
      'ts=1000 d=320',
      'ts=1000 d=480',
      'ts=1000 d=640',
      'ts=1000 d=800 E',
      'ts=1000 d=800 E',
      'ts=1000 d=800 E',
    ]);
    expect(sender.packetCount).toBe(7);
    expect(sender.packetAt(0)?.telephoneEvent).toEqual({ event: 5, end: false, volume: 10, duration: 160 });
    expect(sender.packetAt(7)).toBeUndefined();
  });

  it('ends on the exact duration when it is not a whole number of intervals', () => {
    const sender = new TelephoneEventSender({ event: 11, startTimestamp: 0, durationTimestampUnits: 500, packetIntervalTimestampUnits: 400, volume: 20 });
    expect(summary(sender.packets())).toEqual(['M ts=0 d=400', 'ts=0 d=500 E', 'ts=0 d=500 E', 'ts=0 d=500 E']);
    expect(sender.packets().every((p) => p.telephoneEvent.volume === 20 && p.telephoneEvent.event === 11)).toBe(true);
  });

  it('sends a press shorter than one interval as three end packets, the first one marked', () => {
    const sender = new TelephoneEventSender({ event: 0, startTimestamp: 7, durationTimestampUnits: 100 });
    expect(summary(sender.packets())).toEqual(['M ts=7 d=100 E', 'ts=7 d=100 E', 'ts=7 d=100 E']);
  });

  it('cuts an event longer than 0xFFFF units into segments (§2.5.1.3), timestamps wrapping', () => {
    const startTimestamp = 0xffffff00;
    const durationTimestampUnits = 2 * 0xffff + 1000; // about 16.5 s at 8 kHz
    const packets = new TelephoneEventSender({ event: 9, startTimestamp, durationTimestampUnits }).packets();

    const segmentTimestamps = [...new Set(packets.map((p) => p.timestamp))];
    expect(segmentTimestamps).toEqual([startTimestamp, uint32Add(startTimestamp, 0xffff), uint32Add(startTimestamp, 2 * 0xffff)]);
    expect(segmentTimestamps[1]).toBe(0xfeff); // wrapped past 0xffffffff
    expect(packets.filter((p) => p.marker)).toEqual([packets[0]]);
    for (const p of packets) expect(p.telephoneEvent.duration).toBeLessThanOrEqual(0xffff);

    for (const segment of segmentTimestamps.slice(0, 2)) {
      const inSegment = packets.filter((p) => p.timestamp === segment);
      // durations only grow within a segment, and its final packet (the maximum, E clear) goes out three times
      const durations = inSegment.map((p) => p.telephoneEvent.duration);
      expect(durations).toEqual([...durations].sort((a, b) => a - b));
      expect(summary(inSegment.slice(-3))).toEqual(Array(3).fill(`ts=${segment} d=65535`));
      expect(inSegment.some((p) => p.telephoneEvent.end)).toBe(false);
    }
    const last = packets.filter((p) => p.timestamp === segmentTimestamps[2]);
    expect(last[0]!.telephoneEvent.duration).toBeLessThan(1000); // the duration restarts
    expect(summary(last.slice(-3))).toEqual(Array(3).fill(`ts=${segmentTimestamps[2]} d=1000 E`));
    expect(packets.filter((p) => p.telephoneEvent.end)).toHaveLength(3);
  });

  it('ends a press of exactly 0xFFFF units in one segment', () => {
    const packets = new TelephoneEventSender({ event: 1, startTimestamp: 0, durationTimestampUnits: 0xffff }).packets();
    expect(new Set(packets.map((p) => p.timestamp)).size).toBe(1);
    expect(summary(packets.slice(-4))).toEqual(['ts=0 d=65440', 'ts=0 d=65535 E', 'ts=0 d=65535 E', 'ts=0 d=65535 E']);
  });

  it.each([
    ['event 256', { event: 256 }],
    ['volume 64', { volume: 64 }],
    ['duration 0', { durationTimestampUnits: 0 }],
    ['fractional duration', { durationTimestampUnits: 1.5 }],
    ['interval 0', { packetIntervalTimestampUnits: 0 }],
    ['start timestamp 2^32', { startTimestamp: 0x1_0000_0000 }],
  ])('refuses %s', (_name, override) => {
    expect(() => new TelephoneEventSender({ event: 1, startTimestamp: 0, durationTimestampUnits: 800, ...override })).toThrow(MediaConfigError);
  });
});

describe('TelephoneEventReceiver (RFC 4733 §2.5.2)', () => {
  const FIVE = 5;

  it('reports a key press once, on its first end packet, ignoring the two retransmissions', () => {
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    const reportsPerPacket = [
      update(FIVE, 1000, 160), update(FIVE, 1000, 320), update(FIVE, 1000, 480),
      update(FIVE, 1000, 480, true), update(FIVE, 1000, 480, true), update(FIVE, 1000, 480, true),
    ].map((p) => receiver.receive(p));
    expect(reportsPerPacket.map((r) => r.length)).toEqual([0, 0, 0, 1, 0, 0]);
    expect(reportsPerPacket[3]).toEqual([{ digit: '5', startTimestamp: 1000, durationTimestampUnits: 480, volume: 10 }]);
    expect(receiver.flush()).toEqual([]);
  });

  it('tolerates a lost first packet', () => {
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    const reports = receiveAll(receiver, [update(1, 2000, 320), update(1, 2000, 480, true), update(1, 2000, 480, true)]);
    expect(reports).toEqual([{ digit: '1', startTimestamp: 2000, durationTimestampUnits: 480, volume: 10 }]);
  });

  it('ends an event whose end packets were lost when the next event starts', () => {
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    const reports = receiveAll(receiver, [
      update(4, 1000, 160), update(4, 1000, 320), update(4, 1000, 480),
      // all three end packets of '4' lost; the same key again, 200 ms later
      update(4, 2600, 160), update(4, 2600, 320, true),
    ]);
    expect(reports).toEqual([
      { digit: '4', startTimestamp: 1000, durationTimestampUnits: 480, volume: 10 },
      { digit: '4', startTimestamp: 2600, durationTimestampUnits: 320, volume: 10 },
    ]);
  });

  it('reports an event left open when the stream stops on flush(), and only once', () => {
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    expect(receiveAll(receiver, [update(10, 500, 160), update(10, 500, 320)])).toEqual([]);
    expect(receiver.flush()).toEqual([{ digit: '*', startTimestamp: 500, durationTimestampUnits: 320, volume: 10 }]);
    expect(receiver.flush()).toEqual([]);
    // late packets of the flushed event do not bring it back
    expect(receiveAll(receiver, [update(10, 500, 480, true)])).toEqual([]);
  });

  it('ignores packets that arrive after their event was reported, and never lets the duration shrink', () => {
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    const reports = receiveAll(receiver, [
      update(2, 1000, 160), update(2, 1000, 480), update(2, 1000, 320), update(2, 1000, 640, true),
      update(2, 1000, 480), // reordered update, after the end
      update(3, 1800, 160), update(2, 1000, 640, true), update(3, 1800, 320, true),
    ]);
    expect(reports.map((r) => [r.digit, r.durationTimestampUnits])).toEqual([['2', 640], ['3', 320]]);
  });

  it('reports a segmented long event (§2.5.1.3) as one key press with the total duration', () => {
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    const start = 0xfffff000;
    const reports = receiveAll(receiver, [
      update(7, start, 160), update(7, start, 65440),
      // the first segment's final packets (0xFFFF, E clear) are all lost
      update(7, uint32Add(start, 0xffff), 480), update(7, uint32Add(start, 0xffff), 0xffff),
      update(7, uint32Add(start, 2 * 0xffff), 160), update(7, uint32Add(start, 2 * 0xffff), 200, true),
      update(7, uint32Add(start, 2 * 0xffff), 200, true),
    ]);
    expect(reports).toEqual([{ digit: '7', startTimestamp: start, durationTimestampUnits: 2 * 0xffff + 200, volume: 10 }]);
  });

  it('does not take a different key 0xFFFF units later for a continuation', () => {
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    const reports = receiveAll(receiver, [update(7, 0, 800), update(8, 0xffff, 160, true)]);
    expect(reports.map((r) => r.digit)).toEqual(['7', '8']);
  });

  it('ignores other payload types, and tracks but does not report non-DTMF events', () => {
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    const audio = { ...update(3, 100, 160, true), payloadType: 0 };
    const flash = 16;
    const reports = receiveAll(receiver, [audio, update(3, 200, 160), update(flash, 400, 160), update(flash, 400, 800, true)]);
    expect(reports).toEqual([{ digit: '3', startTimestamp: 200, durationTimestampUnits: 160, volume: 10 }]);
  });

  it('throws TelephoneEventTooShortError for a short payload, for the socket edge to count', () => {
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    expect(() => receiver.receive({ payloadType: TELEPHONE_EVENT_PT, ssrc: SSRC, timestamp: 0, payload: new Uint8Array(3) }))
      .toThrow(TelephoneEventTooShortError);
  });

  it('starts afresh when the SSRC changes, even with older timestamps', () => {
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    const reports = receiveAll(receiver, [
      update(1, 50_000, 320),
      rtp(10, { event: 2, end: false, volume: 10, duration: 160 }, 0xbeef),
      rtp(10, { event: 2, end: true, volume: 10, duration: 320 }, 0xbeef),
    ]);
    expect(reports.map((r) => [r.digit, r.startTimestamp])).toEqual([['1', 50_000], ['2', 10]]);
  });
});

describe('sender → RTP wire → receiver', () => {
  /** Sends key presses the way an RTP session would: one packet per 20 ms tick, sequence numbers shared. */
  function wire(presses: { digit: string; startTimestamp: number; durationTimestampUnits: number }[], firstSequenceNumber: number): Uint8Array[] {
    const datagrams: Uint8Array[] = [];
    let sequenceNumber = firstSequenceNumber;
    for (const press of presses) {
      const sender = new TelephoneEventSender({ event: digitToEvent(press.digit)!, startTimestamp: press.startTimestamp, durationTimestampUnits: press.durationTimestampUnits });
      for (let i = 0; i < sender.packetCount; i++) {
        const packet = sender.packetAt(i)!;
        datagrams.push(serializeRtp({
          marker: packet.marker, payloadType: TELEPHONE_EVENT_PT, sequenceNumber, timestamp: packet.timestamp,
          ssrc: SSRC, payload: serializeTelephoneEvent(packet.telephoneEvent),
        }));
        sequenceNumber = uint16Add(sequenceNumber, 1);
      }
    }
    return datagrams;
  }

  it('a card number typed across the sequence-number and timestamp wraps comes out digit for digit', () => {
    const digits = '4111111111111111#';
    let startTimestamp = 0xffffe000;
    const presses = [...digits].map((digit) => {
      const press = { digit, startTimestamp, durationTimestampUnits: 640 + 80 * (digit === '#' ? 3 : 0) };
      startTimestamp = uint32Add(startTimestamp, 2400); // 300 ms between onsets
      return press;
    });
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    const reports = wire(presses, 65530).flatMap((datagram) => receiver.receive(parseRtp(datagram)));
    expect(reports.map((r) => r.digit).join('')).toBe(digits);
    expect(reports.map((r) => r.startTimestamp)).toEqual(presses.map((p) => p.startTimestamp));
    expect(reports.map((r) => r.durationTimestampUnits)).toEqual(presses.map((p) => p.durationTimestampUnits));
    expect(receiver.flush()).toEqual([]);
  });

  it('a 20 s key hold comes out as one press of 20 s', () => {
    const durationTimestampUnits = 20 * 8000;
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    const reports = wire([{ digit: '0', startTimestamp: 123, durationTimestampUnits }], 0).flatMap((d) => receiver.receive(parseRtp(d)));
    expect(reports).toEqual([{ digit: '0', startTimestamp: 123, durationTimestampUnits, volume: 10 }]);
  });

  it('survives losing every other packet', () => {
    const receiver = new TelephoneEventReceiver({ payloadType: TELEPHONE_EVENT_PT });
    const datagrams = wire([
      { digit: '9', startTimestamp: 0, durationTimestampUnits: 800 },
      { digit: '9', startTimestamp: 2400, durationTimestampUnits: 800 },
      { digit: 'D', startTimestamp: 4800, durationTimestampUnits: 70_000 },
    ], 100);
    const reports = datagrams.filter((_, i) => i % 2 === 1).flatMap((d) => receiver.receive(parseRtp(d)));
    expect(reports.map((r) => [r.digit, r.startTimestamp, r.durationTimestampUnits])).toEqual([
      ['9', 0, 800], ['9', 2400, 800], ['D', 4800, 70_000],
    ]);
  });
});
