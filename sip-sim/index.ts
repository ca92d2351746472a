/**
 * sip-sim: the caller, agent and trunk that hushpay's tests and users place calls with, on real
 * UDP. `SimCaller` places calls, `SimAgent` answers them; both report what happens as typed
 * events and as JSON-line records (records.ts), and end each call with a CallSummary.
 */

export { SimAgent, type SimAgentOptions, MAX_UNCLAIMED_CALLS, numberedPath, headerRecord } from './agent.ts';
export { type CallMediaOptions, type CallSummary, type ReceivedDigit, type ReceivedInfo, type SentDigit, SimCall, DEFAULT_AFTER_MS } from './call.ts';
export { parseHostPort, type PlaceCallOptions, SimCaller } from './caller.ts';
export { DTMF_RELAY_CONTENT_TYPE, formatDtmfRelay, parseDtmfRelay } from './dtmf-relay.ts';
export { DEFAULT_GAP_MS, DEFAULT_LEVEL_DBM0, DEFAULT_TONE_MS, DEFAULT_TWIST_DB, FRAME_SAMPLES, type KeyPressPlan, OutgoingStream, planKeyPresses, PTIME_MS } from './outgoing.ts';
export { Pacer } from './pacer.ts';
export { BYE_WAIT_MS, SimPhone, type SimPhoneOptions } from './phone.ts';
export { TimestampAlignedRecorder } from './recorder.ts';
export * from './records.ts';
export { DeviationHistogram, type RtpReceiveTotals, RtpReceiveStats, type RtpStreamSnapshot } from './rtp-stats.ts';
export { type NegotiatedMedia, negotiate, OFFERED_CODECS, TELEPHONE_EVENT_PAYLOAD_TYPE } from './sdp.ts';
