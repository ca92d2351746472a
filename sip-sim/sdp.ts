/**
 * Offer and answer as a simple phone makes them (RFC 3264), pure: offer PCMU (0), PCMA (8) and
 * telephone-event/8000 (101), ptime 20; answer with the first G.711 codec of the offer and its
 * telephone-event if it has one, keeping the offer's payload type numbers (§6.1).
 */

import { g711Codecs, type ParsedSdp, parseSdp, type SdpCodec, telephoneEvent, writeSdp } from '../src/calls/sdp.ts';
import { SdpError } from '../src/errors.ts';
import type { G711Law } from '../src/media/g711.ts';

export const TELEPHONE_EVENT_PAYLOAD_TYPE = 101;

export const OFFERED_CODECS: readonly SdpCodec[] = [
  { payloadType: 0, name: 'pcmu', clockRate: 8000, fmtp: undefined },
  { payloadType: 8, name: 'pcma', clockRate: 8000, fmtp: undefined },
  { payloadType: TELEPHONE_EVENT_PAYLOAD_TYPE, name: 'telephone-event', clockRate: 8000, fmtp: '0-16' },
];

/** What one side sends and expects, once offer and answer are known. */
export interface NegotiatedMedia {
  readonly law: G711Law;
  readonly payloadType: number;
  /** The telephone-event payload type both sides have, if any. */
  readonly telephoneEvent: number | undefined;
  /** Where to send RTP (the far end's c= and m= port); undefined while the far end does not want media (hold). */
  readonly remote: { readonly host: string; readonly port: number } | undefined;
}

export function offer(address: string, port: number, sessionId: string): string {
  return writeSdp({ sessionId, sessionVersion: 1, address, port, codecs: OFFERED_CODECS, direction: 'sendrecv' });
}

function remoteOf(sdp: ParsedSdp): NegotiatedMedia['remote'] {
  const { address, port, direction } = sdp.audio;
  if (port === 0 || address === '0.0.0.0' || address === '::' || direction === 'inactive' || direction === 'sendonly') return undefined;
  return { host: address, port };
}

/** Reads a peer's SDP (an answer, or a re-INVITE's offer) for what to send and where. */
export function negotiate(remoteSdp: string): NegotiatedMedia {
  const sdp = parseSdp(remoteSdp);
  const codec = g711Codecs(sdp.audio.codecs)[0];
  if (!codec) throw new SdpError('no PCMU or PCMA at 8000 Hz');
  return { law: codec.name === 'pcmu' ? 'pcmu' : 'pcma', payloadType: codec.payloadType, telephoneEvent: telephoneEvent(sdp.audio.codecs)?.payloadType, remote: remoteOf(sdp) };
}

/** Answers an offer: the SDP to send back and the media it sets up. Throws SdpError (→ 488). */
export function answer(offerSdp: string, address: string, port: number, sessionId: string): { sdp: string; media: NegotiatedMedia } {
  const media = negotiate(offerSdp);
  const codecs = parseSdp(offerSdp).audio.codecs.filter((c) => c.payloadType === media.payloadType || c.payloadType === media.telephoneEvent);
  return { sdp: writeSdp({ sessionId, sessionVersion: 1, address, port, codecs, direction: 'sendrecv' }), media };
}
