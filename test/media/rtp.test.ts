import { describe, expect, it } from 'vitest';
import {
  MediaConfigError,
  type MediaParseError,
  RtpBadPaddingError,
  RtpBadVersionError,
  RtpCsrcOverrunError,
  RtpExtensionOverrunError,
  RtpHeaderTooShortError,
} from '../../src/errors.ts';
import { parseRtp, type RtpPacketInit, RtpDropCounter, serializeRtp } from '../../src/media/rtp.ts';

function hex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
}

// V=2 P=0 X=0 CC=0 | M=1 PT=0 | seq 0x1234 | ts 0xdeadbeef | ssrc 0x01020304 | 4 bytes μ-law payload
const SIMPLE = hex('80 80 1234 deadbeef 01020304 ff7f0080');

// V=2 P=1 X=1 CC=2 | M=0 PT=101 | seq 0xffff | ts 0 | ssrc 0xcafebabe
// | csrc 0x11111111 0x22222222 | ext profile 0xbede, length 1: 0x10aa0000 | payload 0b0a00a0 | padding 3
const EVERYTHING = hex('b2 65 ffff 00000000 cafebabe 11111111 22222222 bede0001 10aa0000 0b0a00a0 000003');

describe('parseRtp', () => {
  it('reads every fixed header field of a G.711 packet', () => {
    const packet = parseRtp(SIMPLE);
    expect(packet).toEqual({
      version: 2,
      padding: false,
      marker: true,
      payloadType: 0,
      sequenceNumber: 0x1234,
      timestamp: 0xdeadbeef,
      ssrc: 0x01020304,
      csrc: [],
      payload: hex('ff7f0080'),
      paddingLength: 0,
    });
    expect('extension' in packet).toBe(false);
  });

  it('reads CSRCs, the header extension and padding, leaving the padding out of the payload', () => {
    const packet = parseRtp(EVERYTHING);
    expect(packet.padding).toBe(true);
    expect(packet.paddingLength).toBe(3);
    expect(packet.marker).toBe(false);
    expect(packet.payloadType).toBe(101);
    expect(packet.sequenceNumber).toBe(0xffff);
    expect(packet.csrc).toEqual([0x11111111, 0x22222222]);
    expect(packet.extension?.profile).toBe(0xbede);
    expect(packet.extension?.data).toEqual(hex('10aa0000'));
    expect(packet.payload).toEqual(hex('0b0a00a0'));
  });

  it('returns the payload as a view into the datagram, not a copy', () => {
    const datagram = new Uint8Array(64);
    datagram.set(SIMPLE, 20);
    const packet = parseRtp(datagram.subarray(20, 20 + SIMPLE.length));
    expect(packet.payload.buffer).toBe(datagram.buffer);
    expect(packet.payload.byteOffset).toBe(32);
    datagram[32] = 0x00;
    expect(packet.payload[0]).toBe(0x00);
  });

  it('accepts the edge cases the RFC allows', () => {
    // header only, empty payload
    expect(parseRtp(hex('80 00 0001 00000001 00000001')).payload.length).toBe(0);
    // extension of length 0: "zero is a valid length"
    const emptyExtension = parseRtp(hex('90 00 0001 00000001 00000001 abcd0000'));
    expect(emptyExtension.extension).toEqual({ profile: 0xabcd, data: new Uint8Array(0) });
    // padding that is the whole rest of the packet (a padding-only packet)
    const paddingOnly = parseRtp(hex('a0 00 0001 00000001 00000001 00000004'));
    expect([paddingOnly.paddingLength, paddingOnly.payload.length]).toEqual([4, 0]);
    // 15 CSRCs, the most CC can say
    const fifteen = parseRtp(Uint8Array.from([0x8f, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, ...new Uint8Array(60).fill(7)]));
    expect(fifteen.csrc).toHaveLength(15);
    expect(fifteen.csrc[14]).toBe(0x07070707);
  });

  type Malformed = [name: string, bytes: Uint8Array, errorClass: new (...args: never[]) => MediaParseError, code: string, numbers: Record<string, number>];
  it.each<Malformed>([
    ['an empty datagram', hex(''), RtpHeaderTooShortError, 'HP_ERR_RTP_HEADER_TOO_SHORT', { length: 0 }],
    ['11 bytes', hex('80 00 0001 00000001 000000'), RtpHeaderTooShortError, 'HP_ERR_RTP_HEADER_TOO_SHORT', { length: 11 }],
    ['version 0', hex('00 00 0001 00000001 00000001'), RtpBadVersionError, 'HP_ERR_RTP_BAD_VERSION', { version: 0 }],
    ['version 1', hex('40 00 0001 00000001 00000001'), RtpBadVersionError, 'HP_ERR_RTP_BAD_VERSION', { version: 1 }],
    ['version 3', hex('c0 00 0001 00000001 00000001'), RtpBadVersionError, 'HP_ERR_RTP_BAD_VERSION', { version: 3 }],
    ['CC=3 with two CSRCs present', hex('83 00 0001 00000001 00000001 11111111 22222222'), RtpCsrcOverrunError, 'HP_ERR_RTP_CSRC_OVERRUN', { csrcCount: 3, length: 20 }],
    ['CC=15 in a bare header', hex('8f 00 0001 00000001 00000001'), RtpCsrcOverrunError, 'HP_ERR_RTP_CSRC_OVERRUN', { csrcCount: 15, length: 12 }],
    ['X=1 with no extension preamble', hex('90 00 0001 00000001 00000001'), RtpExtensionOverrunError, 'HP_ERR_RTP_EXTENSION_OVERRUN', { needed: 16, length: 12 }],
    ['X=1 with half a preamble after one CSRC', hex('91 00 0001 00000001 00000001 11111111 bede'), RtpExtensionOverrunError, 'HP_ERR_RTP_EXTENSION_OVERRUN', { needed: 20, length: 18 }],
    ['extension length 2 words with 1 present', hex('90 00 0001 00000001 00000001 bede0002 10aa0000'), RtpExtensionOverrunError, 'HP_ERR_RTP_EXTENSION_OVERRUN', { needed: 24, length: 20 }],
    ['extension length 0xffff words', hex('90 00 0001 00000001 00000001 bedeffff 00000000'), RtpExtensionOverrunError, 'HP_ERR_RTP_EXTENSION_OVERRUN', { needed: 16 + 4 * 0xffff, length: 20 }],
    ['P=1 with a padding count of 0', hex('a0 00 0001 00000001 00000001 ff7f0000'), RtpBadPaddingError, 'HP_ERR_RTP_BAD_PADDING', { padding: 0, available: 4 }],
    ['P=1 with a count past the header', hex('a0 00 0001 00000001 00000001 ff7f0005'), RtpBadPaddingError, 'HP_ERR_RTP_BAD_PADDING', { padding: 5, available: 4 }],
    ['P=1 with a count reaching into the extension', hex('b0 00 0001 00000001 00000001 bede0001 00000000 02'), RtpBadPaddingError, 'HP_ERR_RTP_BAD_PADDING', { padding: 2, available: 1 }],
    ['P=1 with nothing after the header', hex('a0 00 0001 00000001 00000001'), RtpBadPaddingError, 'HP_ERR_RTP_BAD_PADDING', { padding: 0, available: 0 }],
  ])('rejects %s', (_name, bytes, errorClass, code, numbers) => {
    let thrown: unknown;
    try {
      parseRtp(bytes);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(errorClass);
    expect(thrown).toMatchObject({ code, ...numbers });
    // the message carries the numbers, never the packet's bytes
    for (const value of Object.values(numbers)) expect((thrown as Error).message).toContain(String(value));
  });
});

describe('serializeRtp', () => {
  it.each([['SIMPLE', SIMPLE], ['EVERYTHING', EVERYTHING]])('%s: parse then serialize gives the same bytes', (_name, bytes) => {
    expect(serializeRtp(parseRtp(bytes))).toEqual(bytes);
  });

  it('writes padding when asked, and the parser reads it back', () => {
    const init: RtpPacketInit = {
      marker: true, payloadType: 8, sequenceNumber: 65535, timestamp: 0xffffffff, ssrc: 42,
      csrc: [7], payload: hex('d5d5d5'), paddingLength: 5,
    };
    const bytes = serializeRtp(init);
    expect(bytes.length).toBe(12 + 4 + 3 + 5);
    expect(bytes[0]).toBe(0xa1);
    expect(Array.from(bytes.subarray(-5))).toEqual([0, 0, 0, 0, 5]);
    const packet = parseRtp(bytes);
    expect(packet).toMatchObject({ ...init, payload: hex('d5d5d5'), version: 2, padding: true });
  });

  it('defaults to no marker, no CSRCs, no extension and no padding', () => {
    const bytes = serializeRtp({ payloadType: 0, sequenceNumber: 1, timestamp: 2, ssrc: 3, payload: new Uint8Array(0) });
    expect(bytes).toEqual(hex('80 00 0001 00000002 00000003'));
  });

  it.each<[string, Partial<RtpPacketInit>, string]>([
    ['payload type 128', { payloadType: 128 }, 'RTP payload type 128 outside 0…127'],
    ['sequence number 65536', { sequenceNumber: 65536 }, 'RTP sequence number 65536 outside 0…65535'],
    ['negative timestamp', { timestamp: -1 }, 'RTP timestamp -1 outside 0…4294967295'],
    ['fractional SSRC', { ssrc: 1.5 }, 'RTP SSRC 1.5 outside 0…4294967295'],
    ['16 CSRCs', { csrc: new Array<number>(16).fill(1) }, 'RTP CSRC count 16 outside 0…15'],
    ['padding of 256', { paddingLength: 256 }, 'RTP padding length 256 outside 0…255'],
    ['a 3-byte extension', { extension: { profile: 1, data: new Uint8Array(3) } }, 'RTP extension length 3 is not a multiple of 4'],
  ])('refuses %s with MediaConfigError', (_name, override, message) => {
    const init = { payloadType: 0, sequenceNumber: 0, timestamp: 0, ssrc: 0, payload: new Uint8Array(0), ...override };
    expect(() => serializeRtp(init)).toThrow(MediaConfigError);
    expect(() => serializeRtp(init)).toThrow(message);
  });
});

describe('RtpDropCounter', () => {
  it('counts dropped packets by error code, and passes good packets through', () => {
    const drops = new RtpDropCounter();
    const datagrams = [SIMPLE, hex('80'), hex('40 00 0001 00000001 00000001'), hex('8000'), EVERYTHING, hex('a0 00 0001 00000001 00000001')];
    const accepted = datagrams.map((d) => drops.parseOrDrop(d)).filter((p) => p !== undefined);
    expect(accepted.map((p) => p.sequenceNumber)).toEqual([0x1234, 0xffff]);
    expect(drops.snapshot()).toEqual({
      HP_ERR_RTP_HEADER_TOO_SHORT: 2,
      HP_ERR_RTP_BAD_VERSION: 1,
      HP_ERR_RTP_BAD_PADDING: 1,
    });
    expect(drops.total).toBe(4);
  });

  it('records errors caught elsewhere, and its snapshot is a copy', () => {
    const drops = new RtpDropCounter();
    drops.record(new RtpHeaderTooShortError(3));
    const before = drops.snapshot();
    before['HP_ERR_RTP_HEADER_TOO_SHORT'] = 99;
    drops.record(new RtpHeaderTooShortError(4));
    expect(drops.snapshot()).toEqual({ HP_ERR_RTP_HEADER_TOO_SHORT: 2 });
  });

  it('rethrows anything that is not a parse error: that is a bug, not bad input', () => {
    const drops = new RtpDropCounter();
    expect(() => drops.parseOrDrop(undefined as unknown as Uint8Array)).toThrow(TypeError);
    expect(drops.total).toBe(0);
  });
});
