/**
 * SDP (RFC 8866) as the B2BUA needs it: parse an offer or answer, and write the one hushpay
 * sends on each leg — media anchored on hushpay's own RTP port, only PCMU and PCMA, and
 * telephone-event/8000 where both sides have it, ptime 20; the direction attribute
 * (sendrecv / sendonly / recvonly / inactive) passes through, so hold and resume work.
 */

import { SdpError } from '../errors.ts';

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface SdpCodec {
  readonly payloadType: number;
  /** Lower-cased encoding name: 'pcmu', 'pcma', 'telephone-event', … */
  readonly name: string;
  readonly clockRate: number;
  readonly fmtp: string | undefined;
}

export interface SdpAudio {
  readonly port: number;
  /** Connection address (media-level c= if any, else session-level). */
  readonly address: string;
  readonly codecs: readonly SdpCodec[];
  readonly direction: Direction;
  readonly ptimeMs: number | undefined;
}

export interface ParsedSdp {
  readonly originUser: string;
  readonly sessionId: string;
  readonly sessionVersion: number;
  readonly audio: SdpAudio;
}

const STATIC: Readonly<Record<number, { name: string; clockRate: number }>> = {
  0: { name: 'pcmu', clockRate: 8000 },
  8: { name: 'pcma', clockRate: 8000 },
  3: { name: 'gsm', clockRate: 8000 },
  9: { name: 'g722', clockRate: 8000 },
  18: { name: 'g729', clockRate: 8000 },
};

const DIRECTIONS: readonly Direction[] = ['sendrecv', 'sendonly', 'recvonly', 'inactive'];

/** Parses the first audio stream of an SDP body. Throws SdpError naming what is wrong. */
export function parseSdp(text: string): ParsedSdp {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  if (lines[0] !== 'v=0') throw new SdpError('does not start with v=0');
  let origin: string[] | undefined;
  let sessionAddress: string | undefined;
  let sessionDirection: Direction | undefined;
  let media: { port: number; formats: number[]; address?: string; direction?: Direction; rtpmap: Map<number, { name: string; clockRate: number }>; fmtp: Map<number, string>; ptime?: number } | undefined;
  let audioDone = false;
  for (const line of lines) {
    if (line.length < 2 || line[1] !== '=') throw new SdpError('a line is not type=value');
    const type = line[0];
    const value = line.slice(2);
    if (type === 'm') {
      if (media) audioDone = true;
      if (audioDone) continue;
      const m = /^audio (\d{1,5})(?:\/\d+)? (RTP\/S?AVPF?|UDP\/TLS\/RTP\/SAVPF?) ([\d ]+)$/.exec(value);
      if (!m) {
        if (value.startsWith('audio ')) throw new SdpError('audio m= line is malformed');
        continue; // a non-audio stream (video): not ours
      }
      const port = Number(m[1]);
      if (port > 65535) throw new SdpError('media port out of range');
      media = { port, formats: m[3]!.trim().split(/\s+/).map(Number), rtpmap: new Map(), fmtp: new Map() };
      continue;
    }
    if (audioDone && type !== 'o') continue;
    if (type === 'o') {
      origin = value.split(' ');
      if (origin.length < 6) throw new SdpError('o= line has fewer than six fields');
    } else if (type === 'c') {
      const c = /^IN IP[46] (\S+)$/.exec(value);
      if (!c) throw new SdpError('c= line is not IN IP4/IP6 address');
      const address = c[1]!.split('/')[0]!;
      if (media) media.address = address;
      else sessionAddress = address;
    } else if (type === 'a') {
      const direction = DIRECTIONS.find((d) => value === d);
      if (direction) {
        if (media) media.direction = direction;
        else sessionDirection = direction;
      } else if (media) {
        const rtpmap = /^rtpmap:(\d+) ([^/\s]+)\/(\d+)/.exec(value);
        if (rtpmap) media.rtpmap.set(Number(rtpmap[1]), { name: rtpmap[2]!.toLowerCase(), clockRate: Number(rtpmap[3]) });
        const fmtp = /^fmtp:(\d+) (.*)$/.exec(value);
        if (fmtp) media.fmtp.set(Number(fmtp[1]), fmtp[2]!);
        const ptime = /^ptime:(\d+)$/.exec(value);
        if (ptime) media.ptime = Number(ptime[1]);
      }
    }
  }
  if (!origin) throw new SdpError('no o= line');
  if (!media) throw new SdpError('no audio stream');
  const address = media.address ?? sessionAddress;
  if (!address) throw new SdpError('no connection address for the audio stream');
  const codecs: SdpCodec[] = [];
  for (const pt of media.formats) {
    const known = media.rtpmap.get(pt) ?? STATIC[pt];
    if (!known) continue;
    codecs.push({ payloadType: pt, name: known.name, clockRate: known.clockRate, fmtp: media.fmtp.get(pt) });
  }
  return {
    originUser: origin[0]!,
    sessionId: origin[1]!,
    sessionVersion: Number(origin[2]) || 0,
    audio: { port: media.port, address, codecs, direction: media.direction ?? sessionDirection ?? 'sendrecv', ptimeMs: media.ptime },
  };
}

/** The codecs hushpay relays: G.711 only (the DTMF engine works on it). */
export function g711Codecs(codecs: readonly SdpCodec[]): SdpCodec[] {
  return codecs.filter((c) => (c.name === 'pcmu' || c.name === 'pcma') && c.clockRate === 8000);
}

export function telephoneEvent(codecs: readonly SdpCodec[]): SdpCodec | undefined {
  return codecs.find((c) => c.name === 'telephone-event' && c.clockRate === 8000);
}

export interface WriteSdpOptions {
  readonly sessionId: string;
  readonly sessionVersion: number;
  readonly address: string;
  readonly port: number;
  readonly codecs: readonly SdpCodec[];
  readonly direction: Direction;
}

/** Writes hushpay's SDP for one leg: one audio stream, ptime 20. */
export function writeSdp(options: WriteSdpOptions): string {
  const ip = options.address.includes(':') ? 'IP6' : 'IP4';
  const formats = options.codecs.map((c) => c.payloadType).join(' ');
  const lines = [
    'v=0',
    `o=hushpay ${options.sessionId} ${options.sessionVersion} IN ${ip} ${options.address}`,
    's=hushpay',
    `c=IN ${ip} ${options.address}`,
    't=0 0',
    `m=audio ${options.port} RTP/AVP ${formats}`,
  ];
  for (const c of options.codecs) {
    lines.push(`a=rtpmap:${c.payloadType} ${c.name === 'telephone-event' ? 'telephone-event' : c.name.toUpperCase()}/${c.clockRate}`);
    if (c.name === 'telephone-event') lines.push(`a=fmtp:${c.payloadType} ${c.fmtp ?? '0-16'}`);
  }
  lines.push('a=ptime:20', `a=${options.direction}`);
  return lines.join('\r\n') + '\r\n';
}

