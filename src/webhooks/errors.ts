/**
 * The webhook code's coded errors. They extend HushpayError like every code in src/errors.ts.
 *
 * Messages name headers, lengths, counts and seconds: never a secret (or any of its bytes), a
 * signature, a message body or header text a sender chose.
 */

import { HushpayError } from '../errors.ts';

/**
 * A signing secret that is not `whsec_` followed by base64 of 24 to 64 bytes (Standard Webhooks:
 * "Random. At least 24 bytes (192 bits, 512 maximum)", "base64 encoded, prefixed with `whsec_`"),
 * or an empty list of secrets. `reason` is fixed text and counts.
 */
export class WebhookSecretError extends HushpayError {
  readonly code = 'HP_ERR_WEBHOOK_SECRET';
  readonly reason: string;
  constructor(reason: string) {
    super(`webhook secret: ${reason}`);
    this.reason = reason;
  }
}

/** Base for everything `verify()` rejects: the request is not an authentic, fresh webhook. */
export abstract class WebhookVerificationError extends HushpayError {}

/** A `webhook-*` header that is missing, repeated or malformed; `header` names it. */
export class WebhookHeaderError extends WebhookVerificationError {
  readonly code = 'HP_ERR_WEBHOOK_HEADER';
  readonly header: string;
  readonly reason: string;
  constructor(header: string, reason: string) {
    super(`${header}: ${reason}`);
    this.header = header;
    this.reason = reason;
  }
}

/** A `webhook-timestamp` further than the tolerance from now (a replay, or a clock far off). */
export class WebhookTimestampError extends WebhookVerificationError {
  readonly code = 'HP_ERR_WEBHOOK_TIMESTAMP';
  /** Now minus the timestamp, in seconds: positive when too old, negative when too new. */
  readonly ageSeconds: number;
  readonly toleranceSeconds: number;
  constructor(ageSeconds: number, toleranceSeconds: number) {
    super(
      ageSeconds > 0
        ? `webhook-timestamp is ${ageSeconds} s old, tolerance ${toleranceSeconds} s`
        : `webhook-timestamp is ${-ageSeconds} s in the future, tolerance ${toleranceSeconds} s`,
    );
    this.ageSeconds = ageSeconds;
    this.toleranceSeconds = toleranceSeconds;
  }
}

/** No `v1` signature in `webhook-signature` matches the content under any of the secrets. */
export class WebhookSignatureError extends WebhookVerificationError {
  readonly code = 'HP_ERR_WEBHOOK_SIGNATURE';
  /** How many `v1` signatures the header carried (other versions are ignored). */
  readonly v1Count: number;
  readonly secretCount: number;
  constructor(v1Count: number, secretCount: number) {
    super(v1Count === 0 ? 'webhook-signature carries no v1 signature' : `none of ${v1Count} v1 signature(s) matches under ${secretCount} secret(s)`);
    this.v1Count = v1Count;
    this.secretCount = secretCount;
  }
}
