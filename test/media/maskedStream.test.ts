import { describe, expect, it } from 'vitest';
import { type DigitEvent, DigitStream } from '../../src/media/digits.ts';
import { decode, encode } from '../../src/media/g711.ts';
import { MaskedMediaStream, RtpSequencer, type ListenerAudio } from '../../src/media/maskedStream.ts';
import { TelephoneEventSender, digitToEvent, serializeTelephoneEvent } from '../../src/media/rfc4733.ts';
import { parseRtp, serializeRtp } from '../../src/media/rtp.ts';
import { uint16Diff, uint32Diff } from '../../src/media/seq.ts';
import { decodeMultimon, decodeSpandsp } from '../support/referees.ts';
import { soxDtmf } from '../support/soxgen.ts';

const PCMU = 0;
const EVENT_PT = 101;
const SSRC = 0x1234abcd;

interface Harness {
  stream: MaskedMediaStream;
  digits: DigitEvent[];
  outputs: ListenerAudio[][];
  send(datagram: Uint8Array): void;
  close(): void;
}

function harness(listeners: ('flat' | 'silence' | 'noise')[] = ['flat', 'silence']): Harness {
  const digits: DigitEvent[] = [];
  const stream = new MaskedMediaStream({
    law: 'pcmu',
    audioPayloadType: PCMU,
    telephoneEventPayloadType: EVENT_PT,
    listeners,
    digits: new DigitStream((d) => digits.push(d)),
  });
  const outputs: ListenerAudio[][] = listeners.map(() => []);
  const take = (chunks: ListenerAudio[][]): void => chunks.forEach((c, r) => outputs[r]!.push(...c));
  return {
    stream,
    digits,
    outputs,
    send: (datagram) => take(stream.input(datagram)),
    close: () => take(stream.close()),
  };
}

function audioPacket(seq: number, timestamp: number, payload: Uint8Array, ssrc = SSRC): Uint8Array {
  return serializeRtp({ payloadType: PCMU, sequenceNumber: seq & 0xffff, timestamp: timestamp >>> 0, ssrc, payload });
}

/** Splits μ-law audio into 20 ms RTP packets starting at `timestamp0`. */
function packetize(ulaw: Uint8Array, timestamp0: number, seq0 = 1000): Uint8Array[] {
  const packets: Uint8Array[] = [];
  for (let i = 0, n = 0; i + 160 <= ulaw.length; i += 160, n++) packets.push(audioPacket(seq0 + n, timestamp0 + i, ulaw.subarray(i, i + 160)));
  return packets;
}

function joined(chunks: ListenerAudio[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.payload.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c.payload, at);
    at += c.payload.length;
  }
  return out;
}

/** Each listener's chunks follow each other with no gap or overlap on the stream clock. */
function expectContinuous(chunks: ListenerAudio[]): void {
  let next = chunks[0]?.sample ?? 0;
  for (const c of chunks) {
    expect(c.sample).toBe(next);
    next = c.sample + c.payload.length;
  }
}

describe('MaskedMediaStream', () => {
  it('masks in-band digits on every listener, names them once, and keeps each output continuous', async () => {
    const keyed = '4111222233334444';
    const ulaw = encode('pcmu', soxDtmf({ digits: keyed, onMs: 80, gapMs: 80, levelDbm0: -8, leadMs: 200 }));
    const h = harness();
    for (const p of packetize(ulaw, 90_000)) h.send(p);
    h.close();

    expect(h.digits.map((d) => d.digit).join('')).toBe(keyed);
    expect(new Set(h.digits.map((d) => d.source))).toEqual(new Set(['inband']));
    for (const out of h.outputs) {
      expectContinuous(out);
      // every input sample comes out, after the delay line's initial silence
      expect(joined(out).length).toBe(Math.floor(ulaw.length / 160) * 160 + h.stream.delaySamples);
      const pcm = decode('pcmu', joined(out));
      expect(await decodeMultimon(pcm)).toEqual([]);
      expect(await decodeSpandsp(pcm)).toEqual([]);
    }
    // the input itself was decodable: the referees are not blind
    expect((await decodeMultimon(decode('pcmu', ulaw))).join('')).toBe(keyed);
    // what the stream exposes for metrics and logs carries counts, never the digits
    const exposed = JSON.stringify([h.stream.stats]);
    for (const run of ['4111', '2222', '3333', '4444']) expect(exposed).not.toContain(run);
  });

  it('never forwards RFC 4733 events; fills their span with masked audio when the phone stops sending audio', () => {
    const h = harness(['flat', 'silence']);
    let seq = 1;
    let ts = 8000;
    const silence = new Uint8Array(160).fill(0xff);
    // 200 ms of audio, a key '5' sent only as events (100 ms), then audio again
    for (let i = 0; i < 10; i++, ts += 160) h.send(audioPacket(seq++, ts, silence));
    const sender = new TelephoneEventSender({ event: digitToEvent('5')!, startTimestamp: ts, durationTimestampUnits: 800 });
    for (const p of sender.packets()) {
      h.send(serializeRtp({ payloadType: EVENT_PT, sequenceNumber: seq++, timestamp: p.timestamp, ssrc: SSRC, marker: p.marker, payload: serializeTelephoneEvent(p.telephoneEvent) }));
    }
    ts += 800;
    for (let i = 0; i < 10; i++, ts += 160) h.send(audioPacket(seq++, ts, silence));
    h.close();

    expect(h.digits).toHaveLength(1);
    expect(h.digits[0]).toMatchObject({ digit: '5', source: 'rfc4733', startMs: 200, endMs: 300 });
    for (const out of h.outputs) {
      expectContinuous(out);
      // 10 + 5 + 10 packets of audio: the event's 100 ms is there as audio
      expect(joined(out).length).toBe(25 * 160 + h.stream.delaySamples);
    }
    // the flat listener hears a beep where the key was, the silence listener silence
    const flat = decode('pcmu', joined(h.outputs[0]!));
    const silent = decode('pcmu', joined(h.outputs[1]!));
    const delay = h.stream.delaySamples;
    const energy = (pcm: Int16Array, from: number, to: number): number => pcm.subarray(from + delay, to + delay).reduce((s, v) => s + v * v, 0);
    expect(energy(flat, 1610, 2390)).toBeGreaterThan(1e6);
    expect(energy(silent, 1610, 2390)).toBe(0);
  });

  it('reports a key sent both as an event and as a tone once', () => {
    const h = harness(['silence']);
    const ulaw = encode('pcmu', soxDtmf({ digits: '7', onMs: 100, gapMs: 200, levelDbm0: -8, leadMs: 200 }));
    const audio = packetize(ulaw, 0);
    // the phone sends the tone in the audio and, alongside, events for the same 100 ms
    const sender = new TelephoneEventSender({ event: digitToEvent('7')!, startTimestamp: 1600, durationTimestampUnits: 800 });
    const events = sender.packets().map((p, i) =>
      serializeRtp({ payloadType: EVENT_PT, sequenceNumber: 5000 + i, timestamp: p.timestamp, ssrc: SSRC, payload: serializeTelephoneEvent(p.telephoneEvent) }),
    );
    audio.forEach((packet, i) => {
      h.send(packet);
      const due = events.filter((_, k) => k >= (i - 10) && k < i - 9);
      for (const e of due) h.send(e);
    });
    for (const e of events) h.send(e); // late repeats of the end packet are harmless too
    h.close();
    expect(h.digits.map((d) => d.digit)).toEqual(['7']);
    expect(h.stream.stats.eventPackets).toBeGreaterThan(0);
  });

  it('fills a lost packet with silence, drops late and duplicate packets, and counts what it dropped', () => {
    const h = harness(['silence']);
    const tone = new Uint8Array(160).fill(0x7e);
    const packets = Array.from({ length: 10 }, (_, i) => audioPacket(i, i * 160, tone));
    for (const [i, p] of packets.entries()) if (i !== 4) h.send(p); // packet 4 lost
    h.send(packets[2]!); // a duplicate arrives late
    h.close();
    const out = joined(h.outputs[0]!);
    expect(out.length).toBe(10 * 160 + h.stream.delaySamples);
    expect(h.stream.stats.filledSamples).toBe(160);
    expect(h.stream.stats.late).toBe(1);
    const d = h.stream.delaySamples;
    // the lost 20 ms became silence, the rest passed byte for byte
    expect(out.subarray(4 * 160 + d, 5 * 160 + d).every((b) => b === 0xff)).toBe(true);
    expect(out.subarray(5 * 160 + d, 6 * 160 + d).every((b) => b === 0x7e)).toBe(true);
  });

  it.each([
    ['shorter than the RTP header', Uint8Array.of(0x80, 0, 0), 'HP_ERR_RTP_HEADER_TOO_SHORT'],
    ['RTP version 1', Uint8Array.of(0x40, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff), 'HP_ERR_RTP_BAD_VERSION'],
    ['a CSRC count past the end', Uint8Array.of(0x8f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1), 'HP_ERR_RTP_CSRC_OVERRUN'],
    ['padding past the payload', Uint8Array.of(0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0x09), 'HP_ERR_RTP_BAD_PADDING'],
    ['a telephone-event payload under 4 bytes', serializeRtp({ payloadType: EVENT_PT, sequenceNumber: 1, timestamp: 0, ssrc: SSRC, payload: Uint8Array.of(5, 0x80) }), 'HP_ERR_TELEPHONE_EVENT_TOO_SHORT'],
    ['a payload type never negotiated', serializeRtp({ payloadType: 18, sequenceNumber: 1, timestamp: 0, ssrc: SSRC, payload: new Uint8Array(20) }), 'HP_ERR_RTP_UNEXPECTED_PAYLOAD_TYPE'],
  ])('drops and counts a packet with %s, and the call carries on', (_name, bad, code) => {
    const h = harness(['silence']);
    const tone = new Uint8Array(160).fill(0x7e);
    h.send(audioPacket(1, 0, tone));
    expect(() => h.send(bad)).not.toThrow();
    h.send(audioPacket(2, 160, tone));
    h.close();
    expect(h.stream.stats.dropped[code]).toBe(1);
    expect(joined(h.outputs[0]!).length).toBe(320 + h.stream.delaySamples);
  });
});

describe('RtpSequencer', () => {
  it('numbers packets and stamps samples continuously across the 16- and 32-bit wraps', () => {
    const sequencer = new RtpSequencer({ ssrc: 7, payloadType: 0, initialSequenceNumber: 0xfffe, initialTimestamp: 0xffffff00 });
    const packets = [0, 160, 320, 480].map((sample) => parseRtp(sequencer.packet({ sample, payload: new Uint8Array(160) })));
    for (let i = 1; i < packets.length; i++) {
      expect(uint16Diff(packets[i]!.sequenceNumber, packets[i - 1]!.sequenceNumber)).toBe(1);
      expect(uint32Diff(packets[i]!.timestamp, packets[i - 1]!.timestamp)).toBe(160);
    }
    expect(packets.map((p) => p.marker)).toEqual([true, false, false, false]);
    expect(packets[2]!.sequenceNumber).toBe(0);
  });
});

describe('DigitStream', () => {
  it('merges one press reported by two channels, keeps two quick presses of the same key', () => {
    const seen: DigitEvent[] = [];
    const stream = new DigitStream((d) => seen.push(d));
    stream.rfc4733('1', 1000, 1100);
    stream.inband('1', 1004, 1098); // the same press, heard in-band as well
    stream.rfc4733('1', 1140, 1240); // the key again, 40 ms later
    stream.inband('1', 1143, 1238);
    stream.sipInfo('2', 1400, 160);
    stream.inband('2', 1330, 1450); // INFO arrives late relative to the tone
    stream.inband('3', 1600, 1700);
    expect(seen.map((d) => `${d.digit}:${d.source}`)).toEqual(['1:rfc4733', '1:rfc4733', '2:sipinfo', '3:inband']);
    expect(stream.counts).toEqual({ inband: 1, rfc4733: 2, sipinfo: 1, duplicates: 3 });
  });
});
