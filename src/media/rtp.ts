/**
 * RTP packets (RFC 3550 §5.1, https://www.rfc-editor.org/rfc/rfc3550#section-5.1): a checked
 * parser for untrusted datagrams and a serializer.
 *
 * The parser checks the length before every read (pion `rtp/packet.go` style) and throws one
 * specific MediaParseError per broken rule, carrying the numbers that broke it. It never copies:
 * `payload`, and the extension's `data`, are views into the datagram. The socket edge catches
 * those errors with an RtpDropCounter: count and drop, never throw into the call.
 */

import {
  MediaConfigError,
  MediaParseError,
  RtpBadPaddingError,
  RtpBadVersionError,
  RtpCsrcOverrunError,
  RtpExtensionOverrunError,
  RtpHeaderTooShortError,
} from '../errors.ts';

/** The RTP version this code speaks; RFC 3550 §5.1: "The version defined by this specification is two (2)." */
export const RTP_VERSION = 2;
/** The fixed header, up to and including the SSRC. */
export const RTP_FIXED_HEADER_BYTES = 12;
/** CC is a 4-bit field. */
export const RTP_MAX_CSRC_COUNT = 15;
/** The extension preamble: 16-bit profile field and 16-bit length. */
const EXTENSION_PREAMBLE_BYTES = 4;
const CSRC_BYTES = 4;
const EXTENSION_WORD_BYTES = 4;
const MAX_PADDING_BYTES = 255;

/** The RFC 3550 §5.3.1 header extension, left undecoded (RFC 8285 elements live in `data`). */
export interface RtpHeaderExtension {
  /** The 16 bits "defined by profile" (0xBEDE for RFC 8285 one-byte elements). */
  readonly profile: number;
  /** The extension body, a multiple of 4 bytes; a view into the packet. */
  readonly data: Uint8Array;
}

export interface RtpPacket {
  readonly version: number;
  /** The P bit. When set, `paddingLength` bytes (the last one counting them) follow the payload. */
  readonly padding: boolean;
  readonly extension?: RtpHeaderExtension;
  readonly marker: boolean;
  readonly payloadType: number;
  readonly sequenceNumber: number;
  /** Media clock, in timestamp units (8000 per second for G.711 and telephone-event at 8 kHz). */
  readonly timestamp: number;
  readonly ssrc: number;
  readonly csrc: readonly number[];
  /** A view into the parsed buffer, padding excluded. */
  readonly payload: Uint8Array;
  /** Bytes of padding including the count byte; 0 when the P bit is clear. */
  readonly paddingLength: number;
}

/**
 * What serializeRtp needs. The version (always 2), the P bit and the CC field are derived;
 * a parsed RtpPacket is accepted as is, which is what makes parse → serialize a round trip.
 */
export interface RtpPacketInit {
  readonly marker?: boolean;
  readonly payloadType: number;
  readonly sequenceNumber: number;
  readonly timestamp: number;
  readonly ssrc: number;
  readonly csrc?: readonly number[];
  readonly extension?: RtpHeaderExtension;
  readonly payload: Uint8Array;
  /** Padding bytes to append, count byte included (1…255); 0 or absent for none. */
  readonly paddingLength?: number;
}

/*
 * RFC 3550 §5.1, RTP Fixed Header Fields:
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                           timestamp                           |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |           synchronization source (SSRC) identifier            |
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *    |            contributing source (CSRC) identifiers             |
 *    |                             ....                              |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * RFC 3550 §5.3.1, RTP Header Extension (present when X = 1, after the CSRC list):
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |      defined by profile       |           length              |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                        header extension                       |
 *    |                             ....                              |
 *
 * "the length field [counts] the number of 32-bit words in the extension, excluding the
 * four-octet extension header (therefore zero is a valid length)."
 *
 * Padding (§5.1): "The last octet of the padding contains a count of how many padding octets
 * should be ignored, including itself." A count of 0 therefore cannot be right.
 */

/** Parses one RTP packet; throws a MediaParseError subclass naming the first rule it breaks. */
export function parseRtp(buf: Uint8Array): RtpPacket {
  if (buf.length < RTP_FIXED_HEADER_BYTES) throw new RtpHeaderTooShortError(buf.length);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);

  const first = buf[0]!;
  const version = first >> 6;
  if (version !== RTP_VERSION) throw new RtpBadVersionError(version);
  const padding = (first & 0x20) !== 0;
  const hasExtension = (first & 0x10) !== 0;
  const csrcCount = first & 0x0f;
  const second = buf[1]!;

  let offset = RTP_FIXED_HEADER_BYTES;
  if (offset + CSRC_BYTES * csrcCount > buf.length) throw new RtpCsrcOverrunError(csrcCount, buf.length);
  const csrc: number[] = [];
  for (let i = 0; i < csrcCount; i++, offset += CSRC_BYTES) csrc.push(view.getUint32(offset));

  let extension: RtpHeaderExtension | undefined;
  if (hasExtension) {
    if (offset + EXTENSION_PREAMBLE_BYTES > buf.length) {
      throw new RtpExtensionOverrunError(offset + EXTENSION_PREAMBLE_BYTES, buf.length);
    }
    const profile = view.getUint16(offset);
    const dataStart = offset + EXTENSION_PREAMBLE_BYTES;
    const dataEnd = dataStart + EXTENSION_WORD_BYTES * view.getUint16(offset + 2);
    if (dataEnd > buf.length) throw new RtpExtensionOverrunError(dataEnd, buf.length);
    extension = { profile, data: buf.subarray(dataStart, dataEnd) };
    offset = dataEnd;
  }

  let paddingLength = 0;
  if (padding) {
    const available = buf.length - offset;
    // With nothing after the header there is no count byte to read: report a count of 0.
    paddingLength = available > 0 ? buf[buf.length - 1]! : 0;
    if (paddingLength === 0 || paddingLength > available) throw new RtpBadPaddingError(paddingLength, available);
  }

  const packet = {
    version,
    padding,
    marker: (second & 0x80) !== 0,
    payloadType: second & 0x7f,
    sequenceNumber: view.getUint16(2),
    timestamp: view.getUint32(4),
    ssrc: view.getUint32(8),
    csrc,
    payload: buf.subarray(offset, buf.length - paddingLength),
    paddingLength,
  };
  return extension ? { ...packet, extension } : packet;
}

function checkField(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new MediaConfigError(`RTP ${name} ${value} outside 0…${max}`);
}

/** Writes a packet (version 2); padding bytes are zero except the last, which counts them. */
export function serializeRtp(packet: RtpPacketInit): Uint8Array {
  const csrc = packet.csrc ?? [];
  const paddingLength = packet.paddingLength ?? 0;
  const { extension } = packet;
  checkField('payload type', packet.payloadType, 0x7f);
  checkField('sequence number', packet.sequenceNumber, 0xffff);
  checkField('timestamp', packet.timestamp, 0xffffffff);
  checkField('SSRC', packet.ssrc, 0xffffffff);
  checkField('CSRC count', csrc.length, RTP_MAX_CSRC_COUNT);
  for (const source of csrc) checkField('CSRC', source, 0xffffffff);
  checkField('padding length', paddingLength, MAX_PADDING_BYTES);
  if (extension) {
    checkField('extension profile', extension.profile, 0xffff);
    checkField('extension length', extension.data.length, 0xffff * EXTENSION_WORD_BYTES);
    if (extension.data.length % EXTENSION_WORD_BYTES !== 0) {
      throw new MediaConfigError(`RTP extension length ${extension.data.length} is not a multiple of 4`);
    }
  }

  const extensionBytes = extension ? EXTENSION_PREAMBLE_BYTES + extension.data.length : 0;
  const headerBytes = RTP_FIXED_HEADER_BYTES + CSRC_BYTES * csrc.length + extensionBytes;
  const out = new Uint8Array(headerBytes + packet.payload.length + paddingLength);
  const view = new DataView(out.buffer);

  out[0] = (RTP_VERSION << 6) | (paddingLength > 0 ? 0x20 : 0) | (extension ? 0x10 : 0) | csrc.length;
  out[1] = (packet.marker === true ? 0x80 : 0) | packet.payloadType;
  view.setUint16(2, packet.sequenceNumber);
  view.setUint32(4, packet.timestamp);
  view.setUint32(8, packet.ssrc);
  let offset = RTP_FIXED_HEADER_BYTES;
  for (const source of csrc) {
    view.setUint32(offset, source);
    offset += CSRC_BYTES;
  }
  if (extension) {
    view.setUint16(offset, extension.profile);
    view.setUint16(offset + 2, extension.data.length / EXTENSION_WORD_BYTES);
    out.set(extension.data, offset + EXTENSION_PREAMBLE_BYTES);
    offset += extensionBytes;
  }
  out.set(packet.payload, offset);
  if (paddingLength > 0) out[out.length - 1] = paddingLength;
  return out;
}

/**
 * Counts rejected packets by error code, for the socket edge: "count and drop, never throw into
 * the call" (STYLE.md practice 7). Only MediaParseErrors are counted; they carry numbers, never
 * payload bytes, so the snapshot is safe to log and export as metrics.
 */
export class RtpDropCounter {
  readonly #dropsByCode = new Map<string, number>();

  /** Counts one dropped packet under the error's code. */
  record(err: MediaParseError): void {
    this.#dropsByCode.set(err.code, (this.#dropsByCode.get(err.code) ?? 0) + 1);
  }

  /** Parses `buf`; on a MediaParseError counts it and returns undefined. Anything else is a bug and is rethrown. */
  parseOrDrop(buf: Uint8Array): RtpPacket | undefined {
    try {
      return parseRtp(buf);
    } catch (err) {
      if (!(err instanceof MediaParseError)) throw err;
      this.record(err);
      return undefined;
    }
  }

  /** Packets dropped so far, over all codes. */
  get total(): number {
    let sum = 0;
    for (const count of this.#dropsByCode.values()) sum += count;
    return sum;
  }

  /** A copy of the counts, keyed by error code (`HP_ERR_…`). */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.#dropsByCode);
  }
}
