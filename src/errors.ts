/**
 * Every error hushpay raises on purpose is one of these classes, each with a stable `code`.
 *
 * Rules (STYLE.md practice 15, and the card-data standard):
 * - Messages carry numbers (lengths, offsets, counts), never payload bytes, digits or card data.
 * - Codes are stable: API clients, logs and metrics key on them. `test/errors.test.ts` checks
 *   that every code is documented in README.md.
 */

export abstract class HushpayError extends Error {
  abstract readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

// ---------------------------------------------------------------------------------------------
// Media: untrusted packets and files. Parsers throw these; the socket edge counts and drops them.
// ---------------------------------------------------------------------------------------------

/** Base for everything a media parser rejects; `reason` names the rule that failed. */
export abstract class MediaParseError extends HushpayError {}

/** An RTP packet shorter than its fixed 12-byte header (RFC 3550 §5.1). */
export class RtpHeaderTooShortError extends MediaParseError {
  readonly code = 'HP_ERR_RTP_HEADER_TOO_SHORT';
  readonly length: number;
  constructor(length: number) {
    super(`RTP packet has ${length} bytes, fewer than the 12-byte fixed header`);
    this.length = length;
  }
}

/** RTP version field other than 2. */
export class RtpBadVersionError extends MediaParseError {
  readonly code = 'HP_ERR_RTP_BAD_VERSION';
  readonly version: number;
  constructor(version: number) {
    super(`RTP version ${version}, expected 2`);
    this.version = version;
  }
}

/** The CSRC list (CC × 4 bytes) runs past the end of the packet. */
export class RtpCsrcOverrunError extends MediaParseError {
  readonly code = 'HP_ERR_RTP_CSRC_OVERRUN';
  readonly csrcCount: number;
  readonly length: number;
  constructor(csrcCount: number, length: number) {
    super(`RTP CSRC count ${csrcCount} needs ${12 + 4 * csrcCount} bytes, packet has ${length}`);
    this.csrcCount = csrcCount;
    this.length = length;
  }
}

/** The header extension (or its 4-byte preamble) runs past the end of the packet. */
export class RtpExtensionOverrunError extends MediaParseError {
  readonly code = 'HP_ERR_RTP_EXTENSION_OVERRUN';
  readonly needed: number;
  readonly length: number;
  constructor(needed: number, length: number) {
    super(`RTP header extension needs ${needed} bytes, packet has ${length}`);
    this.needed = needed;
    this.length = length;
  }
}

/** The padding count (last byte) is zero or larger than the payload it pads. */
export class RtpBadPaddingError extends MediaParseError {
  readonly code = 'HP_ERR_RTP_BAD_PADDING';
  readonly padding: number;
  readonly available: number;
  constructor(padding: number, available: number) {
    super(`RTP padding count ${padding} with ${available} bytes after the header`);
    this.padding = padding;
    this.available = available;
  }
}

/** An RTP packet of a payload type the call did not negotiate. */
export class UnexpectedPayloadTypeError extends MediaParseError {
  readonly code = 'HP_ERR_RTP_UNEXPECTED_PAYLOAD_TYPE';
  readonly payloadType: number;
  constructor(payloadType: number) {
    super(`RTP payload type ${payloadType} was not negotiated`);
    this.payloadType = payloadType;
  }
}

/** An RFC 4733 telephone-event payload shorter than 4 bytes. */
export class TelephoneEventTooShortError extends MediaParseError {
  readonly code = 'HP_ERR_TELEPHONE_EVENT_TOO_SHORT';
  readonly length: number;
  constructor(length: number) {
    super(`telephone-event payload has ${length} bytes, needs 4`);
    this.length = length;
  }
}

/** A WAV file whose header does not describe its contents, or that hushpay cannot read. */
export class WavFormatError extends MediaParseError {
  readonly code = 'HP_ERR_WAV_FORMAT';
  readonly reason: string;
  constructor(reason: string) {
    super(`WAV: ${reason}`);
    this.reason = reason;
  }
}

/** No RTP port free in the configured range. */
export class RtpPortsExhaustedError extends HushpayError {
  readonly code = 'HP_ERR_RTP_PORTS_EXHAUSTED';
  constructor(min: number, max: number) {
    super(`no free RTP port in ${min}-${max}`);
  }
}

/** A request the caller made that the media code cannot honour (bad option, bad size). */
export class MediaConfigError extends HushpayError {
  readonly code = 'HP_ERR_MEDIA_CONFIG';
  readonly reason: string;
  constructor(reason: string) {
    super(reason);
    this.reason = reason;
  }
}

// ---------------------------------------------------------------------------------------------
// Recording tools (hushpay detect / scrub)
// ---------------------------------------------------------------------------------------------

/** A recording at a sample rate the DTMF engine does not work at (8000 Hz only; no resampling). */
export class UnsupportedSampleRateError extends HushpayError {
  readonly code = 'HP_ERR_UNSUPPORTED_SAMPLE_RATE';
  readonly sampleRateHz: number;
  readonly supportedHz: number;
  constructor(sampleRateHz: number, supportedHz: number) {
    super(`sample rate ${sampleRateHz} Hz: the DTMF engine works at ${supportedHz} Hz only and hushpay does not resample (convert first, e.g. sox IN -r ${supportedHz} OUT)`);
    this.sampleRateHz = sampleRateHz;
    this.supportedHz = supportedHz;
  }
}

/** A file whose name does not say it is a recording hushpay reads (.wav, .ul, .al). */
export class UnsupportedFileTypeError extends HushpayError {
  readonly code = 'HP_ERR_UNSUPPORTED_FILE_TYPE';
  readonly extension: string;
  constructor(extension: string) {
    super(`file extension '${extension}' is not a recording hushpay reads (.wav; raw 8 kHz G.711: .ul μ-law, .al A-law)`);
    this.extension = extension;
  }
}

// ---------------------------------------------------------------------------------------------
// SIP
// ---------------------------------------------------------------------------------------------

/** A SIP message hushpay cannot parse; `detail` is a number (a length, a count), never text of it. */
export class SipParseError extends HushpayError {
  readonly code = 'HP_ERR_SIP_PARSE';
  readonly reason: string;
  readonly detail: number;
  constructor(reason: string, detail: number) {
    super(`SIP: ${reason} (${detail})`);
    this.reason = reason;
    this.detail = detail;
  }
}

/**
 * SIP Digest authentication (RFC 3261 §22, RFC 7616, RFC 8760) that cannot go on: a challenge
 * that is not Digest or lacks realm/nonce, an algorithm or qop hushpay does not do, a value that
 * cannot be put in a header. `reason` is fixed text: never a credential, a nonce or header text.
 */
export class SipDigestError extends HushpayError {
  readonly code = 'HP_ERR_SIP_DIGEST';
  readonly reason: string;
  constructor(reason: string) {
    super(`SIP digest: ${reason}`);
    this.reason = reason;
  }
}

/** An SDP body hushpay cannot use; `reason` names the rule. */
export class SdpError extends HushpayError {
  readonly code = 'HP_ERR_SDP';
  readonly reason: string;
  constructor(reason: string) {
    super(`SDP: ${reason}`);
    this.reason = reason;
  }
}

/** A SIP request that ended with a final response other than 2xx (or 408 for a timeout). */
export class SipRequestFailedError extends HushpayError {
  readonly code = 'HP_ERR_SIP_REQUEST_FAILED';
  readonly method: string;
  readonly status: number;
  /** The request's Call-ID, when there is one to tell (a failed INVITE's). */
  readonly callId: string | undefined;
  constructor(method: string, status: number, reason?: string, callId?: string) {
    super(`${method} failed: ${status}${reason ? ` ${reason}` : ''}`);
    this.method = method;
    this.status = status;
    this.callId = callId;
  }
}

/**
 * hushpay could not connect to the drachtio-server in front of it (sip.engine 'drachtio'): the
 * address does not answer in time, or the server refused the secret. hushpay does not start.
 */
export class DrachtioConnectError extends HushpayError {
  readonly code = 'HP_ERR_DRACHTIO_CONNECT';
  readonly address: string;
  constructor(address: string, problem: string) {
    super(`drachtio-server at ${address}: ${problem}`);
    this.address = address;
  }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/** A configuration mistake; `field` names it (`tenants[0].pbx`, `--sip`). hushpay does not start. */
export class ConfigError extends HushpayError {
  readonly code = 'HP_ERR_CONFIG';
  readonly field: string;
  constructor(field: string, problem: string) {
    super(`${field}: ${problem}`);
    this.field = field;
  }
}

// ---------------------------------------------------------------------------------------------
// Payments
// ---------------------------------------------------------------------------------------------

/**
 * A gateway call that cannot be made as asked (a programming mistake, not a decline): a stored
 * charge with neither a token nor a member ID. Declines and gateway failures are results, never
 * this. The message names fields, never their values.
 */
export class GatewayRequestError extends HushpayError {
  readonly code = 'HP_ERR_GATEWAY_REQUEST';
}

// ---------------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------------

/** An operation on an object that has already been closed. */
export class InvalidStateError extends HushpayError {
  readonly code = 'HP_ERR_INVALID_STATE';
}

/** A command-line usage mistake; the CLI prints the message and exits with status 2. */
export class UsageError extends HushpayError {
  readonly code = 'HP_ERR_USAGE';
}
