/**
 * The payment gateway port: one interface, three adapters (sandbox, gmo-pg, stripe).
 *
 * - Every call carries an idempotency key and a timeout. Adapters retry only where a retry
 *   cannot move money twice: where the gateway honours the idempotency key (Stripe, the
 *   sandbox), or before the request could have reached it (a refused connection).
 * - Declines are results, not exceptions: every call resolves to a `GatewayResult`, with the
 *   gateway's own codes kept beside hushpay's normalised status and reason. Adapters throw only
 *   for a programming mistake (a wiped card, a missing reference).
 * - Card data enters as `CardDigits` and leaves through `reveal()` only while the request is
 *   built; the caller wipes the digits after the call returns.
 */

import type { CardBrand, Expiry } from './card.ts';
import type { CardDigits } from './digits.ts';

export type GatewayOperation = 'authorize' | 'capture' | 'sale' | 'verify' | 'storeCard' | 'chargeStored' | 'void' | 'refund';

/** Japanese payment methods (支払方法), as GMO-PG's Method 1–5 and JPO codes carry them. */
export type PaymentMethod =
  | { readonly kind: 'lump' } // 一括
  | { readonly kind: 'installments'; readonly count: number } // 分割
  | { readonly kind: 'bonus-lump' } // ボーナス一括
  | { readonly kind: 'revolving' }; // リボ

export const LUMP: PaymentMethod = { kind: 'lump' };

export interface CardInput {
  readonly pan: CardDigits;
  /** Omitted where the tenant does not capture it. */
  readonly securityCode?: CardDigits;
  readonly expiry: Expiry;
  readonly brand: CardBrand;
}

export interface CallOptions {
  /** Unique per logical operation; a retry of the same operation reuses it. */
  readonly idempotencyKey: string;
  /** Whole-call budget including retries; default 30 s. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface ChargeRequest {
  /** The merchant's order ID (the transaction ID in the result). */
  readonly orderId: string;
  /** In the currency's minor unit (JPY: yen; USD: cents). */
  readonly amount: number;
  /** ISO 4217. */
  readonly currency: string;
  readonly method?: PaymentMethod;
  readonly card: CardInput;
}

export interface VerifyRequest {
  readonly orderId: string;
  readonly card: CardInput;
}

/** What a capture, void or refund acts on: a result's own reference. */
export interface ReferenceRequest {
  readonly orderId: string;
  readonly transactionRef: string;
  /** Capture or refund less than the whole; default the whole. */
  readonly amount?: number;
}

export interface StoreCardRequest {
  /** The merchant's member ID the card is filed under (GMO-PG MemberID, Stripe customer). */
  readonly memberId: string;
  readonly card: CardInput;
}

export interface ChargeStoredRequest {
  readonly orderId: string;
  readonly amount: number;
  readonly currency: string;
  readonly method?: PaymentMethod;
  /** The token `storeCard` returned, or the member ID (its default card). */
  readonly token?: string;
  readonly memberId?: string;
}

export type GatewayStatus = 'approved' | 'declined' | 'error';

/** hushpay's words for why, the same whatever the gateway. */
export type DeclineReason =
  | 'insufficient-funds'
  | 'expired-card'
  | 'incorrect-security-code'
  | 'incorrect-number'
  | 'lost-or-stolen'
  | 'card-declined'
  | 'processing-error'
  | 'timeout'
  | 'invalid-request'
  | 'gateway-unavailable';

/**
 * One shape for every gateway and operation, with the fields Japanese order systems expect:
 * result code, detail code, message, transaction ID (the merchant's order ID), approval
 * number, the gateway's error code and message, and when the request was sent and answered.
 */
export interface GatewayResult {
  readonly gateway: string;
  readonly operation: GatewayOperation;
  readonly status: GatewayStatus;
  /** Set unless approved. */
  readonly reason?: DeclineReason;
  /** The gateway's top-level result (GMO-PG `OK` or the ErrCode, Stripe the status or error type). */
  readonly resultCode: string;
  /** The gateway's detail (GMO-PG ErrInfo, Stripe decline_code or code). */
  readonly detailCode: string;
  /** Plain words, safe to show an agent. */
  readonly message: string;
  /** The merchant's order ID. */
  readonly transactionId: string;
  /** The gateway's own reference for capture, void and refund. */
  readonly transactionRef?: string;
  /** 承認番号: the issuer's approval number. */
  readonly approvalNumber?: string;
  readonly gatewayErrorCode?: string;
  readonly gatewayErrorMessage?: string;
  /** ISO 8601 times the request was sent and the answer received. */
  readonly requestedAt: string;
  readonly respondedAt: string;
  /** A reusable token (storeCard), or the payment method the gateway made. */
  readonly token?: string;
  readonly brand?: CardBrand;
  readonly last4?: string;
  readonly amount?: number;
  readonly currency?: string;
}

export interface Gateway {
  readonly name: string;
  authorize(request: ChargeRequest, options: CallOptions): Promise<GatewayResult>;
  capture(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult>;
  /** Authorize and capture at once. */
  sale(request: ChargeRequest, options: CallOptions): Promise<GatewayResult>;
  /** A card check with no charge. */
  verify(request: VerifyRequest, options: CallOptions): Promise<GatewayResult>;
  /** Files the card under the member ID; the result's token charges it later. */
  storeCard(request: StoreCardRequest, options: CallOptions): Promise<GatewayResult>;
  chargeStored(request: ChargeStoredRequest, options: CallOptions): Promise<GatewayResult>;
  void(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult>;
  refund(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult>;
  /** Releases connections and timers; idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_GATEWAY_TIMEOUT_MS = 30_000;
