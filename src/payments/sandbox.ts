/**
 * The sandbox gateway: hushpay's embedded default, a gateway with deterministic test cards
 * modelled on Stripe's published test numbers (interfaces.md §3.1).
 *
 * | card | answer |
 * |---|---|
 * | 4000000000009995 | declined: insufficient funds |
 * | 4000000000000069 | declined: expired card |
 * | 4000000000000127 | declined: incorrect security code |
 * | 4000000000009987, 4000000000009979 | declined: lost, stolen |
 * | 4000000000000002 | declined: card declined |
 * | 4000000000000119 | error: processing error |
 * | 4000000000003063 | answers after 60 s (past the default 30 s timeout) |
 * | any other card that passes the card rules (4242424242424242, 5555555555554444, 378282246310005, 3530111333300000, …) | approved |
 *
 * It runs in-process (`SandboxGateway`) and as a standalone HTTP server for integrators
 * (`startSandboxServer`, `hushpay sandbox-gateway`), reached by `SandboxHttpGateway`. Both sit
 * on one `SandboxBank`: authorizations, captures, voids, refunds and stored cards in memory,
 * and the idempotency keys it has seen (the same key answers the same result, as Stripe does).
 * A stored card keeps its test behaviour, brand and last four — never its digits.
 */

import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../clock.ts';
import { InvalidStateError } from '../errors.ts';
import { type CardBrand, CARD_BRANDS } from './card.ts';
import { deadline, isoNow, neverArrived, pause } from './call.ts';
import { CardDigits } from './digits.ts';
import type {
  CallOptions,
  CardInput,
  ChargeRequest,
  ChargeStoredRequest,
  DeclineReason,
  Gateway,
  GatewayOperation,
  GatewayResult,
  PaymentMethod,
  ReferenceRequest,
  StoreCardRequest,
  VerifyRequest,
} from './gateway.ts';

type Behaviour = 'approve' | 'insufficient_funds' | 'expired_card' | 'incorrect_cvc' | 'lost_card' | 'stolen_card' | 'card_declined' | 'processing_error' | 'slow';

const TEST_CARDS: Readonly<Record<string, Behaviour>> = {
  '4000000000009995': 'insufficient_funds',
  '4000000000000069': 'expired_card',
  '4000000000000127': 'incorrect_cvc',
  '4000000000009987': 'lost_card',
  '4000000000009979': 'stolen_card',
  '4000000000000002': 'card_declined',
  '4000000000000119': 'processing_error',
  '4000000000003063': 'slow',
};

/** How long the slow test card takes to answer. */
export const SLOW_CARD_DELAY_MS = 60_000;

const DECLINES: Readonly<Record<Exclude<Behaviour, 'approve' | 'slow'>, { reason: DeclineReason; message: string; error?: true }>> = {
  insufficient_funds: { reason: 'insufficient-funds', message: 'The card has insufficient funds.' },
  expired_card: { reason: 'expired-card', message: 'The card has expired.' },
  incorrect_cvc: { reason: 'incorrect-security-code', message: 'The security code is incorrect.' },
  lost_card: { reason: 'lost-or-stolen', message: 'The card was declined.' },
  stolen_card: { reason: 'lost-or-stolen', message: 'The card was declined.' },
  card_declined: { reason: 'card-declined', message: 'The card was declined.' },
  processing_error: { reason: 'processing-error', message: 'An error occurred while processing the card. Try again.', error: true },
};

interface Transaction {
  readonly orderId: string;
  readonly amount: number;
  readonly currency: string;
  state: 'authorized' | 'captured' | 'voided' | 'refunded';
  captured: number;
  refunded: number;
  readonly brand: CardBrand;
  readonly last4: string;
}

interface StoredCard {
  readonly memberId: string;
  readonly behaviour: Behaviour;
  readonly brand: CardBrand;
  readonly last4: string;
  readonly expiry: { readonly month: number; readonly year: number };
}

/** What the bank needs of a card: its test behaviour and what may be shown. Never the digits. */
interface CardFacts {
  readonly behaviour: Behaviour;
  readonly brand: CardBrand;
  readonly last4: string;
  readonly expired: boolean;
}

export type SandboxAnswer = { readonly result: Omit<GatewayResult, 'requestedAt' | 'respondedAt'>; readonly delayMs: number };

/** The sandbox's state and rules, shared by the in-process and HTTP forms. */
export class SandboxBank {
  readonly #clock: Clock;
  readonly #transactions = new Map<string, Transaction>();
  readonly #stored = new Map<string, StoredCard>();
  readonly #defaultCard = new Map<string, string>();
  readonly #idempotency = new Map<string, { fingerprint: string; answer: SandboxAnswer }>();
  #approvals = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Reads what the bank may know of a card, while the caller still holds the digits. */
  facts(card: CardInput): CardFacts {
    const behaviour = card.pan.reveal((pan) => TEST_CARDS[pan] ?? 'approve');
    const now = new Date(this.#clock.wallMs());
    const expired = card.expiry.year * 12 + card.expiry.month < now.getUTCFullYear() * 12 + now.getUTCMonth() + 1;
    return { behaviour, brand: card.brand, last4: card.pan.lastFour(), expired };
  }

  /**
   * Answers one operation, once per idempotency key: the same key with the same request answers
   * what it answered before; with a different request, invalid-request.
   */
  answer(operation: GatewayOperation, request: BankRequest, idempotencyKey: string): SandboxAnswer {
    const fingerprint = createHash('sha256').update(JSON.stringify({ operation, ...request, card: request.card ? { last4: request.card.last4 } : undefined })).digest('hex');
    const seen = this.#idempotency.get(idempotencyKey);
    if (seen) {
      if (seen.fingerprint === fingerprint) return seen.answer;
      return { result: this.#declined(operation, request.orderId ?? '', 'invalid-request', 'idempotency_error', 'This idempotency key was used with a different request.'), delayMs: 0 };
    }
    const answer = this.#answer(operation, request);
    this.#idempotency.set(idempotencyKey, { fingerprint, answer });
    return answer;
  }

  #answer(operation: GatewayOperation, request: BankRequest): SandboxAnswer {
    const orderId = request.orderId ?? '';
    switch (operation) {
      case 'authorize':
      case 'sale':
      case 'verify': {
        const card = request.card!;
        const refused = this.#refusal(operation, orderId, card);
        if (refused) return refused;
        const amount = operation === 'verify' ? 0 : request.amount!;
        const ref = `sbx_${randomBytes(12).toString('hex')}`;
        if (operation !== 'verify') {
          this.#transactions.set(ref, { orderId, amount, currency: request.currency!, state: operation === 'sale' ? 'captured' : 'authorized', captured: operation === 'sale' ? amount : 0, refunded: 0, brand: card.brand, last4: card.last4 });
        }
        // like a real gateway's payment method id (Stripe pm_…, GMO's card token): the card as a
        // reference for this one transaction, never the card itself
        const token = `sbx_tok_${randomBytes(12).toString('hex')}`;
        return this.#approved(operation, orderId, { transactionRef: ref, token, brand: card.brand, last4: card.last4, ...(operation === 'verify' ? {} : { amount, currency: request.currency! }) });
      }
      case 'storeCard': {
        const card = request.card!;
        const refused = this.#refusal(operation, orderId, card);
        if (refused) return refused;
        const token = `sbx_tok_${randomBytes(12).toString('hex')}`;
        this.#stored.set(token, { memberId: request.memberId!, behaviour: card.behaviour, brand: card.brand, last4: card.last4, expiry: request.expiry! });
        this.#defaultCard.set(request.memberId!, token);
        return this.#approved(operation, orderId, { token, brand: card.brand, last4: card.last4 });
      }
      case 'chargeStored': {
        const token = request.token ?? (request.memberId !== undefined ? this.#defaultCard.get(request.memberId) : undefined);
        const stored = token !== undefined ? this.#stored.get(token) : undefined;
        if (!stored || (request.memberId !== undefined && stored.memberId !== request.memberId)) {
          return { result: this.#declined(operation, orderId, 'invalid-request', 'resource_missing', 'No stored card for that token or member.'), delayMs: 0 };
        }
        const now = new Date(this.#clock.wallMs());
        const expired = stored.expiry.year * 12 + stored.expiry.month < now.getUTCFullYear() * 12 + now.getUTCMonth() + 1;
        const refused = this.#refusal(operation, orderId, { behaviour: stored.behaviour, brand: stored.brand, last4: stored.last4, expired });
        if (refused) return refused;
        const ref = `sbx_${randomBytes(12).toString('hex')}`;
        this.#transactions.set(ref, { orderId, amount: request.amount!, currency: request.currency!, state: 'captured', captured: request.amount!, refunded: 0, brand: stored.brand, last4: stored.last4 });
        return this.#approved(operation, orderId, { transactionRef: ref, token: token!, brand: stored.brand, last4: stored.last4, amount: request.amount!, currency: request.currency! });
      }
      case 'capture':
      case 'void':
      case 'refund':
        return { result: this.#follow(operation, request), delayMs: 0 };
    }
  }

  /** Capture, void and refund act on an earlier result's reference. */
  #follow(operation: 'capture' | 'void' | 'refund', request: BankRequest): BankResult {
    const orderId = request.orderId ?? '';
    const t = request.transactionRef !== undefined ? this.#transactions.get(request.transactionRef) : undefined;
    if (!t) return this.#declined(operation, orderId, 'invalid-request', 'resource_missing', 'No transaction with that reference.');
    const facts = { transactionRef: request.transactionRef!, brand: t.brand, last4: t.last4, currency: t.currency };
    if (operation === 'capture') {
      const amount = request.amount ?? t.amount;
      if (t.state !== 'authorized') return this.#declined(operation, orderId, 'invalid-request', 'transaction_state', `The transaction is ${t.state}, not authorized.`);
      if (amount <= 0 || amount > t.amount) return this.#declined(operation, orderId, 'invalid-request', 'amount_too_large', 'The capture is more than was authorized.');
      t.state = 'captured';
      t.captured = amount;
      return this.#approved(operation, orderId, { ...facts, amount }).result;
    }
    if (operation === 'void') {
      if (t.state !== 'authorized') return this.#declined(operation, orderId, 'invalid-request', 'transaction_state', `The transaction is ${t.state}; only an authorization can be voided.`);
      t.state = 'voided';
      return this.#approved(operation, orderId, { ...facts, amount: t.amount }).result;
    }
    const amount = request.amount ?? t.captured - t.refunded;
    if (t.state !== 'captured') return this.#declined(operation, orderId, 'invalid-request', 'transaction_state', `The transaction is ${t.state}; only a captured payment can be refunded.`);
    if (amount <= 0 || t.refunded + amount > t.captured) return this.#declined(operation, orderId, 'invalid-request', 'amount_too_large', 'The refund is more than was captured.');
    t.refunded += amount;
    if (t.refunded === t.captured) t.state = 'refunded';
    return this.#approved(operation, orderId, { ...facts, amount }).result;
  }

  #refusal(operation: GatewayOperation, orderId: string, card: CardFacts): SandboxAnswer | undefined {
    if (card.behaviour === 'slow') return undefined;
    if (card.expired) return { result: this.#declined(operation, orderId, 'expired-card', 'expired_card', DECLINES.expired_card.message, card), delayMs: 0 };
    if (card.behaviour === 'approve') return undefined;
    const d = DECLINES[card.behaviour];
    return { result: this.#declined(operation, orderId, d.reason, card.behaviour, d.message, card, d.error ? 'error' : 'declined'), delayMs: 0 };
  }

  #approved(operation: GatewayOperation, orderId: string, extra: Partial<BankResult>): SandboxAnswer {
    const approvalNumber = String(100000 + (++this.#approvals % 900000));
    return {
      result: { gateway: 'sandbox', operation, status: 'approved', resultCode: 'OK', detailCode: 'approved', message: 'Approved.', transactionId: orderId, approvalNumber, ...extra },
      delayMs: 0,
    };
  }

  #declined(operation: GatewayOperation, orderId: string, reason: DeclineReason, code: string, message: string, card?: CardFacts, status: 'declined' | 'error' = 'declined'): BankResult {
    return {
      gateway: 'sandbox',
      operation,
      status,
      reason,
      resultCode: status === 'error' ? 'ERROR' : 'NG',
      detailCode: code,
      message,
      transactionId: orderId,
      gatewayErrorCode: code,
      gatewayErrorMessage: message,
      ...(card ? { brand: card.brand, last4: card.last4 } : {}),
    };
  }
}

type BankResult = Omit<GatewayResult, 'requestedAt' | 'respondedAt'>;

/** A request as the bank sees it: card facts instead of card digits. */
interface BankRequest {
  readonly orderId?: string;
  readonly amount?: number;
  readonly currency?: string;
  readonly method?: PaymentMethod;
  readonly card?: CardFacts;
  readonly expiry?: { readonly month: number; readonly year: number };
  readonly memberId?: string;
  readonly token?: string;
  readonly transactionRef?: string;
}

/** The bank's answer for a slow card comes late; everything else at once. */
function delayFor(request: BankRequest, answer: SandboxAnswer): number {
  return request.card?.behaviour === 'slow' ? SLOW_CARD_DELAY_MS : answer.delayMs;
}

// ---------------------------------------------------------------------------------------------
// In-process
// ---------------------------------------------------------------------------------------------

export class SandboxGateway implements Gateway {
  readonly name = 'sandbox';
  readonly bank: SandboxBank;
  readonly #clock: Clock;
  #closed = false;

  constructor(options: { clock: Clock; bank?: SandboxBank }) {
    this.#clock = options.clock;
    this.bank = options.bank ?? new SandboxBank(options.clock);
  }

  authorize(request: ChargeRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('authorize', request.orderId, () => ({ orderId: request.orderId, amount: request.amount, currency: request.currency, ...(request.method ? { method: request.method } : {}), card: this.bank.facts(request.card) }), options);
  }

  sale(request: ChargeRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('sale', request.orderId, () => ({ orderId: request.orderId, amount: request.amount, currency: request.currency, ...(request.method ? { method: request.method } : {}), card: this.bank.facts(request.card) }), options);
  }

  verify(request: VerifyRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('verify', request.orderId, () => ({ orderId: request.orderId, card: this.bank.facts(request.card) }), options);
  }

  capture(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('capture', request.orderId, () => ({ ...request }), options);
  }

  void(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('void', request.orderId, () => ({ ...request }), options);
  }

  refund(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('refund', request.orderId, () => ({ ...request }), options);
  }

  storeCard(request: StoreCardRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('storeCard', '', () => ({ memberId: request.memberId, expiry: request.card.expiry, card: this.bank.facts(request.card) }), options);
  }

  chargeStored(request: ChargeStoredRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('chargeStored', request.orderId, () => ({ ...request }), options);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  async #call(operation: GatewayOperation, orderId: string, build: () => BankRequest, options: CallOptions): Promise<GatewayResult> {
    if (this.#closed) throw new InvalidStateError('the sandbox gateway is closed');
    const requestedAt = isoNow(this.#clock);
    const due = deadline(this.#clock, options);
    try {
      const request = build();
      const answer = this.bank.answer(operation, request, options.idempotencyKey);
      const delayMs = delayFor(request, answer);
      if (delayMs > 0) await pause(this.#clock, delayMs, due.signal);
      if (due.signal.aborted) return timeoutResult('sandbox', operation, orderId, requestedAt, isoNow(this.#clock), due.timedOut());
      return { ...answer.result, requestedAt, respondedAt: isoNow(this.#clock) };
    } finally {
      due.dispose();
    }
  }
}

/** The result of a call that ran out of time (or was aborted by its caller). */
export function timeoutResult(gateway: string, operation: GatewayOperation, orderId: string, requestedAt: string, respondedAt: string, timedOut: boolean): GatewayResult {
  return {
    gateway,
    operation,
    status: 'error',
    reason: 'timeout',
    resultCode: 'ERROR',
    detailCode: timedOut ? 'timeout' : 'aborted',
    message: timedOut ? 'The payment gateway did not answer in time. Check the order before trying again.' : 'The payment was stopped before the gateway answered. Check the order before trying again.',
    transactionId: orderId,
    requestedAt,
    respondedAt,
  };
}

// ---------------------------------------------------------------------------------------------
// Over HTTP: the standalone server and its client
// ---------------------------------------------------------------------------------------------

/** The JSON a client sends: the card as digits (this is the gateway's side of the boundary). */
interface WireRequest {
  orderId?: string;
  amount?: number;
  currency?: string;
  method?: PaymentMethod;
  memberId?: string;
  token?: string;
  transactionRef?: string;
  card?: { number: string; expMonth: number; expYear: number; securityCode?: string; brand: string };
}

const OPERATIONS: Readonly<Record<string, GatewayOperation>> = {
  authorize: 'authorize',
  capture: 'capture',
  sale: 'sale',
  verify: 'verify',
  'store-card': 'storeCard',
  'charge-stored': 'chargeStored',
  void: 'void',
  refund: 'refund',
};

export interface SandboxServer {
  readonly url: string;
  readonly bank: SandboxBank;
  close(): Promise<void>;
}

/**
 * The sandbox as an HTTP server: `POST /v1/{authorize|capture|sale|verify|store-card|
 * charge-stored|void|refund}` with a JSON body and an `Idempotency-Key` header, answering a
 * GatewayResult as JSON. It never logs a request body.
 */
export async function startSandboxServer(options: { host?: string; port?: number; clock: Clock }): Promise<SandboxServer> {
  const bank = new SandboxBank(options.clock);
  const timers = new Set<ReturnType<Clock['setTimeout']>>();
  const server: Server = createServer((req, res) => void handle(req, res));
  const reply = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, status: number, code: string, message: string): void => reply(res, status, { error: { code, message } });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const operation = req.method === 'POST' ? OPERATIONS[(req.url ?? '').replace(/^\/v1\//, '')] : undefined;
    if (!operation) return fail(res, 404, 'not_found', 'POST /v1/{authorize|capture|sale|verify|store-card|charge-stored|void|refund}');
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || key.length === 0 || key.length > 255) return fail(res, 400, 'idempotency_key_missing', 'An Idempotency-Key header (1–255 characters) is required.');
    let body: WireRequest;
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > 64 * 1024) return fail(res, 413, 'body_too_large', 'The request body is over 64 KiB.');
        chunks.push(chunk);
      }
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as WireRequest;
      if (typeof body !== 'object' || body === null) throw new Error('not an object');
    } catch {
      return fail(res, 400, 'invalid_json', 'The body is not a JSON object.');
    }
    let request: BankRequest;
    let pan: CardDigits | undefined;
    let code: CardDigits | undefined;
    try {
      if (body.card) {
        const c = body.card;
        if (typeof c.number !== 'string' || !/^\d{12,19}$/.test(c.number)) throw new Error('card.number must be 12–19 digits');
        if (!Number.isInteger(c.expMonth) || c.expMonth < 1 || c.expMonth > 12 || !Number.isInteger(c.expYear)) throw new Error('card.expMonth and card.expYear must be a month and a four-digit year');
        if (!(CARD_BRANDS as readonly string[]).includes(c.brand)) throw new Error('card.brand is not a known brand');
        pan = CardDigits.of(c.number);
        code = c.securityCode !== undefined ? CardDigits.of(String(c.securityCode)) : undefined;
      }
      const card: CardInput | undefined = pan ? { pan, ...(code ? { securityCode: code } : {}), expiry: { month: body.card!.expMonth, year: body.card!.expYear }, brand: body.card!.brand as CardBrand } : undefined;
      if ((operation === 'authorize' || operation === 'sale' || operation === 'verify' || operation === 'storeCard') && !card) throw new Error('card is required');
      if ((operation === 'authorize' || operation === 'sale' || operation === 'chargeStored') && (!Number.isInteger(body.amount) || body.amount! <= 0 || typeof body.currency !== 'string')) throw new Error('amount (a positive integer) and currency are required');
      if ((operation === 'capture' || operation === 'void' || operation === 'refund') && typeof body.transactionRef !== 'string') throw new Error('transactionRef is required');
      if (operation === 'storeCard' && typeof body.memberId !== 'string') throw new Error('memberId is required');
      request = {
        ...(body.orderId !== undefined ? { orderId: String(body.orderId) } : {}),
        ...(body.amount !== undefined ? { amount: body.amount } : {}),
        ...(body.currency !== undefined ? { currency: body.currency } : {}),
        ...(body.method !== undefined ? { method: body.method } : {}),
        ...(body.memberId !== undefined ? { memberId: body.memberId } : {}),
        ...(body.token !== undefined ? { token: body.token } : {}),
        ...(body.transactionRef !== undefined ? { transactionRef: body.transactionRef } : {}),
        ...(card ? { card: bank.facts(card), expiry: card.expiry } : {}),
      };
    } catch (err) {
      // the messages name fields, never their values
      return fail(res, 400, 'invalid_request', (err as Error).message);
    } finally {
      pan?.wipe();
      code?.wipe();
      if (body.card) body.card.number = '';
      if (body.card?.securityCode !== undefined) body.card.securityCode = '';
    }
    const requestedAt = isoNow(options.clock);
    const answer = bank.answer(operation, request, key);
    const send = (): void => reply(res, 200, { ...answer.result, requestedAt, respondedAt: isoNow(options.clock) });
    const delayMs = delayFor(request, answer);
    if (delayMs === 0) return send();
    const timer = options.clock.setTimeout(() => {
      timers.delete(timer);
      if (!res.destroyed) send();
    }, delayMs);
    timers.add(timer);
    res.on('close', () => {
      options.clock.clearTimeout(timer);
      timers.delete(timer);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    bank,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        for (const t of timers) options.clock.clearTimeout(t);
        timers.clear();
        server.closeAllConnections();
        server.close(() => resolve());
      })),
  };
}

/**
 * The sandbox over HTTP. The server honours the idempotency key, so a request that failed on
 * the network is sent again with the same key, within the deadline.
 */
export class SandboxHttpGateway implements Gateway {
  readonly name = 'sandbox';
  readonly #url: string;
  readonly #clock: Clock;
  readonly #retryDelayMs: number;
  #closed = false;

  constructor(options: { url: string; clock: Clock; retryDelayMs?: number }) {
    this.#url = options.url.replace(/\/$/, '');
    this.#clock = options.clock;
    this.#retryDelayMs = options.retryDelayMs ?? 500;
  }

  authorize(request: ChargeRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('authorize', request.orderId, { orderId: request.orderId, amount: request.amount, currency: request.currency, ...(request.method ? { method: request.method } : {}) }, request.card, options);
  }

  sale(request: ChargeRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('sale', request.orderId, { orderId: request.orderId, amount: request.amount, currency: request.currency, ...(request.method ? { method: request.method } : {}) }, request.card, options);
  }

  verify(request: VerifyRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('verify', request.orderId, { orderId: request.orderId }, request.card, options);
  }

  capture(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('capture', request.orderId, { ...request }, undefined, options);
  }

  void(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('void', request.orderId, { ...request }, undefined, options);
  }

  refund(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('refund', request.orderId, { ...request }, undefined, options);
  }

  storeCard(request: StoreCardRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('store-card', '', { memberId: request.memberId }, request.card, options);
  }

  chargeStored(request: ChargeStoredRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#call('charge-stored', request.orderId, { ...request }, undefined, options);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  async #call(path: string, orderId: string, fields: Omit<WireRequest, 'card'>, card: CardInput | undefined, options: CallOptions): Promise<GatewayResult> {
    if (this.#closed) throw new InvalidStateError('the sandbox gateway client is closed');
    const operation = OPERATIONS[path]!;
    const requestedAt = isoNow(this.#clock);
    const due = deadline(this.#clock, options);
    try {
      for (;;) {
        try {
          // the body holds the digits only for the length of this call
          const body = card
            ? card.pan.reveal((number) => JSON.stringify({ ...fields, card: { number, expMonth: card.expiry.month, expYear: card.expiry.year, brand: card.brand, ...(card.securityCode ? { securityCode: card.securityCode.reveal((c) => c) } : {}) } }))
            : JSON.stringify(fields);
          const response = await fetch(`${this.#url}/v1/${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': options.idempotencyKey }, body, signal: due.signal });
          const json = (await response.json()) as GatewayResult | { error: { code: string; message: string } };
          if ('error' in json) {
            return { gateway: 'sandbox', operation, status: 'error', reason: response.status >= 500 ? 'gateway-unavailable' : 'invalid-request', resultCode: 'ERROR', detailCode: json.error.code, message: json.error.message, transactionId: orderId, gatewayErrorCode: json.error.code, gatewayErrorMessage: json.error.message, requestedAt, respondedAt: isoNow(this.#clock) };
          }
          return { ...json, requestedAt };
        } catch (err) {
          if (due.signal.aborted) return timeoutResult('sandbox', operation, orderId, requestedAt, isoNow(this.#clock), due.timedOut());
          if (!(err instanceof TypeError) && !neverArrived(err)) {
            // an answer that is not the sandbox's JSON
            return { gateway: 'sandbox', operation, status: 'error', reason: 'gateway-unavailable', resultCode: 'ERROR', detailCode: 'bad_response', message: 'The payment gateway answered with something it should not have.', transactionId: orderId, requestedAt, respondedAt: isoNow(this.#clock) };
          }
          // a network failure: the idempotency key makes sending again safe
          await pause(this.#clock, this.#retryDelayMs, due.signal);
          if (due.signal.aborted) return { ...timeoutResult('sandbox', operation, orderId, requestedAt, isoNow(this.#clock), due.timedOut()), reason: 'gateway-unavailable', message: 'The payment gateway could not be reached.' };
        }
      }
    } finally {
      due.dispose();
    }
  }
}
