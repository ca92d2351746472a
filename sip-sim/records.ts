/**
 * What a simulated phone reports: one discriminated union of records, each both a typed event
 * (`phone.on('answered', r => …)`) and one JSON line (`jsonLine(r)`), so a test and a shell
 * pipeline read the same facts.
 *
 * Digits appear in these records on purpose: sip-sim keys test digits, never card data, and a
 * test must be able to see which key went out and which came back.
 */

import type { DtmfDigit } from '../src/media/dtmf/frequencies.ts';

/** How digits are keyed: a tone in the audio, RFC 4733 events, SIP INFO, or tone and events at once. */
export type DtmfMethod = 'inband' | 'rfc4733' | 'info' | 'both';
export const DTMF_METHODS: readonly DtmfMethod[] = ['inband', 'rfc4733', 'info', 'both'];

export type PhoneRole = 'caller' | 'agent';

/**
 * Why a call ended:
 * - `hangup`: this phone sent the BYE (hangupAfterMs, or hangup());
 * - `remote-hangup`: the far end sent the BYE;
 * - `rejected`: the INVITE got a final failure response (or the agent sent one, as told);
 * - `cancelled`: the caller cancelled the INVITE before it was answered;
 * - `timeout`: the 2xx was never ACKed (RFC 3261 §13.3.1.4), or the INVITE was never answered;
 * - `closed`: the phone was closed with the call up;
 * - `failed`: anything else (an SDP without a usable codec, a socket error).
 */
export type EndReason = 'hangup' | 'remote-hangup' | 'rejected' | 'cancelled' | 'timeout' | 'closed' | 'failed';

/** Packets this phone sent on one call. */
export interface SentPackets {
  readonly packets: number;
  readonly audioPackets: number;
  readonly telephoneEventPackets: number;
}

/** What this phone received on one call (RFC 3550 loss and jitter; see rtp-stats.ts). */
export interface ReceivedPackets {
  readonly packets: number;
  /** Packets expected from the sequence numbers minus packets received (RFC 3550 §6.4.1). */
  readonly lost: number;
  /** Packets that arrived after a later sequence number (or as duplicates). */
  readonly outOfOrder: number;
  /** RFC 3550 §6.4.1 interarrival jitter of the audio at the end of the call, ms. */
  readonly jitterMs: number;
  /** The highest the interarrival jitter reached during the call, ms. */
  readonly maxJitterMs: number;
  readonly audioPackets: number;
  /** Packets of the telephone-event payload type this phone offered or answered. */
  readonly telephoneEventPackets: number;
  /** Packets of any other payload type (neither G.711 nor the negotiated telephone-event). */
  readonly otherPayloadPackets: number;
  /** Datagrams that were not RTP (counted and dropped). */
  readonly malformed: number;
  /** Decoded audio samples (8 kHz) received. */
  readonly audioSamples: number;
}

/** Send-time accuracy of the 20 ms schedule: actual minus due send time, ms. */
export interface PacingStats {
  readonly ticks: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Ticks dropped because the process fell more than MAX_CATCH_UP_MS behind. */
  readonly skipped: number;
}

interface RecordBase {
  /** ms since the phone started, on the monotonic clock. */
  readonly atMs: number;
  readonly phone: PhoneRole;
}

interface CallRecordBase extends RecordBase {
  /** The call's number on this phone, from 1. */
  readonly call: number;
  readonly callId: string;
}

/** Printed first by `sip-sim agent`: where it answers. */
export interface ListeningRecord extends RecordBase {
  readonly event: 'listening';
  /** `udp:host:port` */
  readonly sip: string;
}

export interface InviteSentRecord extends CallRecordBase {
  readonly event: 'invite-sent';
  readonly to: string;
  /** `udp:host:port` (or `tls:…`) the INVITE went to. */
  readonly target: string;
}

export interface InviteReceivedRecord extends CallRecordBase {
  readonly event: 'invite-received';
  readonly from: string;
  readonly to: string;
  /** Every header of the INVITE, by the name it arrived with (repeated headers joined by ", "). */
  readonly headers: Readonly<Record<string, string>>;
}

export interface RingingRecord extends CallRecordBase {
  readonly event: 'ringing';
  readonly status: number;
}

export interface AnsweredRecord extends CallRecordBase {
  readonly event: 'answered';
  readonly codec: 'PCMU' | 'PCMA';
  /** The telephone-event payload type both sides have, or null. */
  readonly telephoneEvent: number | null;
  readonly localRtp: string;
  readonly remoteRtp: string;
  readonly inviteToAnswerMs: number;
}

export interface DigitSentRecord extends CallRecordBase {
  readonly event: 'digit-sent';
  readonly dtmf: DtmfMethod;
  /** Position of the key in the digit string, from 0. */
  readonly index: number;
  readonly digit: DtmfDigit;
  /** Where the key starts in the audio this phone sends, ms from the answer. */
  readonly audioMs: number;
}

export interface DigitReceivedRecord extends CallRecordBase {
  readonly event: 'digit-received';
  readonly via: 'rfc4733' | 'info';
  readonly digit: DtmfDigit;
  readonly durationMs: number;
}

export interface InfoReceivedRecord extends CallRecordBase {
  readonly event: 'info-received';
  readonly contentType: string;
  readonly body: string;
}

export interface RtpRecord extends CallRecordBase {
  readonly event: 'rtp';
  /** true for the call's last summary, false for a periodic one. */
  readonly final: boolean;
  readonly sent: SentPackets;
  readonly received: ReceivedPackets;
  readonly pacing: PacingStats;
}

export interface ByeSentRecord extends CallRecordBase {
  readonly event: 'bye-sent';
}

export interface ByeReceivedRecord extends CallRecordBase {
  readonly event: 'bye-received';
}

export interface EndedRecord extends CallRecordBase {
  readonly event: 'ended';
  readonly reason: EndReason;
  /** The INVITE's final status: 200 for a call that was answered, else the failure (486, 487, 408 …). */
  readonly status: number;
  /** From the answer to the end, ms (0 if never answered). */
  readonly durationMs: number;
}

export interface ErrorRecord extends RecordBase {
  readonly event: 'error';
  readonly call?: number;
  readonly code: string;
  readonly message: string;
}

export type SimRecord =
  | ListeningRecord
  | InviteSentRecord
  | InviteReceivedRecord
  | RingingRecord
  | AnsweredRecord
  | DigitSentRecord
  | DigitReceivedRecord
  | InfoReceivedRecord
  | RtpRecord
  | ByeSentRecord
  | ByeReceivedRecord
  | EndedRecord
  | ErrorRecord;

export type SimRecordName = SimRecord['event'];

/** The phone's events: `record` for every record, and each record under its own name. */
export type SimEvents = { record: [SimRecord] } & { [K in SimRecordName]: [Extract<SimRecord, { event: K }>] };

/** Distributes over the union, so a record can be built without its common fields. */
export type RecordBody<R extends SimRecord = SimRecord> = R extends SimRecord ? Omit<R, 'atMs' | 'phone'> : never;

/** One record as a JSON line (with its newline), `event` first. */
export function jsonLine(record: SimRecord): string {
  return `${JSON.stringify(record)}\n`;
}
