/**
 * The GMO Payment Gateway adapter (`gmo-pg`): PG マルチペイメントサービス, protocol type.
 *
 * Wire format (interfaces.md §3.3; t-k/gmo-payment-ruby `lib/gmo/*.rb` and its VCR cassettes):
 * an `application/x-www-form-urlencoded` POST to `{baseUrl}{Api}.idPass`, answered HTTP 200
 * with `Content-Type: text/plain;charset=Windows-31J` and a body of `key=value&key=value`. An
 * error is an answer too: `ErrCode=E01|E01&ErrInfo=E01090008|E01100008` (pipe-separated when
 * there are several). Values come back as raw Windows-31J bytes (the cassette of a Japanese
 * `ClientField1`) or percent-encoded; `parseGmoResponse` splits and percent-decodes the bytes
 * first and only then decodes them as Shift_JIS (WHATWG's Shift_JIS is Windows-31J). Splitting
 * the bytes is safe: a Shift_JIS trail byte is 0x40 or above, never `&`, `=`, `%` or `+`.
 *
 * | operation | calls |
 * |---|---|
 * | authorize | EntryTran JobCd=AUTH (仮売上), then ExecTran |
 * | sale | EntryTran JobCd=CAPTURE (即時売上), then ExecTran |
 * | verify | EntryTran JobCd=CHECK (有効性チェック, no Amount), then ExecTran (no Method) |
 * | capture | AlterTran JobCd=SALES with the authorized Amount |
 * | void | AlterTran JobCd=VOID |
 * | refund | AlterTran JobCd=RETURN: the whole amount only (see below) |
 * | storeCard | SaveMember (E01390010, "already exists", counts as done), then SaveCard |
 * | chargeStored | EntryTran JobCd=CAPTURE, then ExecTran with SiteID/SitePass/MemberID/CardSeq |
 *
 * Method (支払方法): lump 1 (一括), installments 2 (分割) with PayTimes, bonus-lump 3 (ボーナス
 * 一括), revolving 5 (リボ), as GMO's own PHP sample lists them (minpaku/gmo
 * `sample/display/ExecTran.php`: 4 is ボーナス分割). Beware: the pepabo/gmopg client's enum
 * says Revolving = '4'; we follow GMO's sample.
 *
 * References hushpay hands back (opaque to callers; documented here for operators):
 * - `transactionRef` = `AccessID:AccessPass:Amount` — the transaction ID and password EntryTran
 *   issued (what AlterTran needs) and the yen amount authorized (AlterTran SALES must send it:
 *   GMO answers E01060010 when the capture amount differs from the authorization). AccessPass
 *   is a per-transaction secret of the merchant's, not card data; keep the ref as you keep the
 *   order.
 * - `token` (storeCard) = `MemberID:CardSeq` — the member and GMO's card registration number
 *   (登録カード連番, logical mode). Split at the last `:`.
 *
 * Retry rule. GMO has no idempotency key; its one guard against a double charge is that an
 * OrderID registers once (a second EntryTran answers E01040010). So:
 * - EntryTran, SaveMember and SaveCard move no money and are sent again, after `retryDelayMs`
 *   on the injected clock, only when the connection was refused (`neverArrived`: the request
 *   cannot have reached GMO), at most GMO_MAX_ATTEMPTS times, within the call's deadline.
 * - ExecTran and AlterTran move money and are never sent twice, not even after a refused
 *   connection. A timeout, a reset or a garbled answer there is `status: 'error'` (reason
 *   `timeout`, or `gateway-unavailable`) with a message telling the operator to reconcile the
 *   order by its OrderID (GMO's console or SearchTrade) before anything is tried again.
 * - A deadline expiry anywhere is reason `timeout`. The caller's idempotency key goes to GMO as
 *   ExecTran `ClientField1` (when it is plain `[A-Za-z0-9._-]{1,100}`), so the operator can
 *   find the transaction by it; GMO does not deduplicate on it. E01040010 maps to
 *   `invalid-request` with a message saying the order ID is already registered.
 *
 * Not implemented: partial capture (GMO needs ChangeTran to lower an authorization first) and
 * partial refund (ChangeTran to the remaining amount); both answer `invalid-request` without
 * calling GMO. chargeStored needs the storeCard token: GMO charges a stored card by MemberID
 * and CardSeq, and a member ID alone answers `invalid-request`.
 *
 * Not verified against GMO's own specification (which is not public): whether ExecTran for
 * JobCd=CHECK wants Method (we omit it), whether SaveCard takes SecurityCode (neither public
 * client sends it, so we do not; verify a card first if its security code must be checked),
 * and which fields besides ClientField1–3 carry Japanese text (e.g. SaveCard's
 * DebitPrepaidIssuerName in pepabo/gmopg's types). Currency: the card API charges yen only.
 * GMO's code table (gmo-payment-ruby `const.rb`) says E01170011 "card number not 10–16
 * digits": 17–19-digit PANs may be refused by GMO itself; the adapter sends them and keeps
 * whatever GMO answers. "Member already exists" is E01390010 there; E01390002 is the opposite
 * ("site ID and member ID do not exist"), so only E01390010 is treated as done.
 *
 * Card digits: the PAN and security code leave CardDigits only inside `reveal()` while a form
 * body is built; no message, result or error carries them. GMO's own answers echo a masked
 * CardNo at most, which this adapter never copies.
 */

import type { Clock } from '../clock.ts';
import { ConfigError, InvalidStateError } from '../errors.ts';
import { type Deadline, deadline, isoNow, neverArrived, pause } from './call.ts';
import {
  type CallOptions,
  type CardInput,
  type ChargeRequest,
  type ChargeStoredRequest,
  type DeclineReason,
  type Gateway,
  type GatewayOperation,
  type GatewayResult,
  LUMP,
  type PaymentMethod,
  type ReferenceRequest,
  type StoreCardRequest,
  type VerifyRequest,
} from './gateway.ts';

export interface GmoPgOptions {
  /** Up to and including `/payment/`, e.g. https://pt01.mul-pay.jp/payment/ (test), https://p01.mul-pay.jp/payment/ (live). */
  readonly baseUrl: string;
  readonly shopId: string;
  readonly shopPass: string;
  /** For the member (card-on-file) APIs: storeCard and chargeStored. */
  readonly siteId?: string;
  readonly sitePass?: string;
  readonly clock: Clock;
  /** Pause before sending a refused EntryTran/SaveMember/SaveCard again; default 500 ms. */
  readonly retryDelayMs?: number;
}

/** At most this many attempts of an API that may be sent again (refused connections only). */
export const GMO_MAX_ATTEMPTS = 3;
export const GMO_DEFAULT_RETRY_DELAY_MS = 500;

type Api = 'EntryTran' | 'ExecTran' | 'AlterTran' | 'SaveMember' | 'SaveCard';

/** Whether an API moves money: those are sent once, whatever happens. */
const MOVES_MONEY: Readonly<Record<Api, boolean>> = { EntryTran: false, SaveMember: false, SaveCard: false, ExecTran: true, AlterTran: true };

/** GMO's OrderID: up to 27 of a-z, A-Z, 0-9 and `-` (E01040003, E01040013). */
const ORDER_ID = /^[A-Za-z0-9-]{1,27}$/;
/** GMO issues 32 hex characters; accept any short alphanumeric run. */
const ACCESS_PART = /^[A-Za-z0-9]{1,64}$/;
/** MemberID: at most 60 printable ASCII characters [not verified: GMO's exact character set]. */
const MEMBER_ID = /^[\x21-\x7e]{1,60}$/;
const CLIENT_FIELD = /^[A-Za-z0-9._-]{1,100}$/;

type Params = ReadonlyArray<readonly [string, string]>;

/** How an exchange with GMO ended, when it did not end in an answer. */
type Failure =
  | { readonly kind: 'timeout' }
  | { readonly kind: 'aborted' }
  | { readonly kind: 'closed' }
  | { readonly kind: 'refused'; readonly attempts: number }
  | { readonly kind: 'lost' }
  | { readonly kind: 'http'; readonly status: number }
  | { readonly kind: 'bad-response' };

type Exchange = { readonly fields: ReadonlyMap<string, string> } | { readonly failure: Failure };

/** One call in progress: what every result of it shares. */
interface Call {
  readonly operation: GatewayOperation;
  readonly orderId: string;
  readonly requestedAt: string;
  readonly due: Deadline;
  readonly idempotencyKey: string;
  readonly card?: { readonly brand: CardInput['brand']; readonly last4: string };
}

type Extra = Partial<Pick<GatewayResult, 'transactionRef' | 'approvalNumber' | 'token' | 'amount' | 'currency' | 'brand' | 'last4'>>;

export class GmoPgGateway implements Gateway {
  readonly name = 'gmo-pg';
  readonly #base: string;
  readonly #shopId: string;
  readonly #shopPass: string;
  readonly #siteId: string | undefined;
  readonly #sitePass: string | undefined;
  readonly #clock: Clock;
  readonly #retryDelayMs: number;
  /** Aborts every call in flight when the gateway closes. */
  readonly #closer = new AbortController();
  #closed = false;

  constructor(options: GmoPgOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new ConfigError('gmo-pg.baseUrl', 'is not a URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError('gmo-pg.baseUrl', 'must be an http(s) URL');
    if (!options.shopId) throw new ConfigError('gmo-pg.shopId', 'is required');
    if (!options.shopPass) throw new ConfigError('gmo-pg.shopPass', 'is required');
    if ((options.siteId === undefined) !== (options.sitePass === undefined)) throw new ConfigError('gmo-pg.siteId', 'siteId and sitePass go together');
    this.#base = url.href.endsWith('/') ? url.href : `${url.href}/`;
    this.#shopId = options.shopId;
    this.#shopPass = options.shopPass;
    this.#siteId = options.siteId;
    this.#sitePass = options.sitePass;
    this.#clock = options.clock;
    this.#retryDelayMs = options.retryDelayMs ?? GMO_DEFAULT_RETRY_DELAY_MS;
  }

  authorize(request: ChargeRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#charge('authorize', 'AUTH', request, options);
  }

  sale(request: ChargeRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#charge('sale', 'CAPTURE', request, options);
  }

  verify(request: VerifyRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#run('verify', request.orderId, options, request.card, async (call) => {
      if (!ORDER_ID.test(request.orderId)) return this.#notSent(call, 'invalid-order-id', 'The order ID must be 1–27 of A–Z, a–z, 0–9 and hyphen for GMO-PG.');
      const entry = await this.#entry(call, [['OrderID', request.orderId], ['JobCd', 'CHECK']]);
      if ('result' in entry) return entry.result;
      const exec = await this.#post(call, 'ExecTran', cardParams(request.card, [...entry.access, ['OrderID', request.orderId], ...clientField(call)]));
      return this.#execResult(call, exec);
    });
  }

  capture(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#alter('capture', 'SALES', request, options);
  }

  void(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#alter('void', 'VOID', request, options);
  }

  refund(request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#alter('refund', 'RETURN', request, options);
  }

  storeCard(request: StoreCardRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#run('storeCard', '', options, request.card, async (call) => {
      const site = this.#site(call);
      if ('result' in site) return site.result;
      if (!MEMBER_ID.test(request.memberId)) return this.#notSent(call, 'invalid-member-id', 'The member ID must be 1–60 printable ASCII characters for GMO-PG.');
      const member = await this.#post(call, 'SaveMember', [...site.params, ['MemberID', request.memberId]]);
      if ('failure' in member) return this.#failed(call, 'SaveMember', member.failure);
      const memberError = member.fields.get('ErrInfo');
      // E01390010: the site already has this member; filing another card under it is the point
      if (memberError !== undefined && memberError !== 'E01390010') return this.#answered(call, member.fields);
      const saved = await this.#post(call, 'SaveCard', [
        ...site.params,
        ['MemberID', request.memberId],
        ['SeqMode', '0'],
        ...request.card.pan.reveal((pan): Params => [['CardNo', pan]]),
        ['Expire', expire(request.card)],
      ]);
      if ('failure' in saved) return this.#failed(call, 'SaveCard', saved.failure);
      if (saved.fields.has('ErrCode') || saved.fields.has('ErrInfo')) return this.#answered(call, saved.fields);
      const seq = saved.fields.get('CardSeq');
      if (seq === undefined || !/^\d+$/.test(seq)) return this.#failed(call, 'SaveCard', { kind: 'bad-response' });
      return this.#approved(call, { token: `${request.memberId}:${seq}` });
    });
  }

  chargeStored(request: ChargeStoredRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#run('chargeStored', request.orderId, options, undefined, async (call) => {
      const site = this.#site(call);
      if ('result' in site) return site.result;
      const stored = parseToken(request.token);
      if (!stored) {
        return this.#notSent(
          call,
          'token-required',
          request.token === undefined ? 'GMO-PG charges a stored card by member and card number: pass the token storeCard returned.' : 'The token is not one this GMO-PG adapter issued.',
        );
      }
      if (request.memberId !== undefined && request.memberId !== stored.memberId) return this.#notSent(call, 'member-mismatch', 'The token belongs to a different member.');
      const checked = checkCharge(request.orderId, request.amount, request.currency, request.method);
      if (checked.error) return this.#notSent(call, checked.error.code, checked.error.message);
      const entry = await this.#entry(call, [['OrderID', request.orderId], ['JobCd', 'CAPTURE'], ['Amount', String(request.amount)]]);
      if ('result' in entry) return entry.result;
      const exec = await this.#post(call, 'ExecTran', [
        ...entry.access,
        ['OrderID', request.orderId],
        ...checked.method,
        ...site.params,
        ['MemberID', stored.memberId],
        ['SeqMode', '0'],
        ['CardSeq', stored.cardSeq],
        ...clientField(call),
      ]);
      return this.#execResult(call, exec, { transactionRef: `${entry.accessId}:${entry.accessPass}:${request.amount}`, token: request.token!, amount: request.amount, currency: 'JPY' });
    });
  }

  /** Idempotent; calls in flight end as errors (an ExecTran or AlterTran one asks for reconciliation). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closer.abort(new InvalidStateError('the gmo-pg gateway was closed'));
  }

  // -------------------------------------------------------------------------------------------

  #charge(operation: 'authorize' | 'sale', jobCd: 'AUTH' | 'CAPTURE', request: ChargeRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#run(operation, request.orderId, options, request.card, async (call) => {
      const checked = checkCharge(request.orderId, request.amount, request.currency, request.method);
      if (checked.error) return this.#notSent(call, checked.error.code, checked.error.message);
      const entry = await this.#entry(call, [['OrderID', request.orderId], ['JobCd', jobCd], ['Amount', String(request.amount)]]);
      if ('result' in entry) return entry.result;
      const exec = await this.#post(call, 'ExecTran', cardParams(request.card, [...entry.access, ['OrderID', request.orderId], ...checked.method, ...clientField(call)]));
      return this.#execResult(call, exec, { transactionRef: `${entry.accessId}:${entry.accessPass}:${request.amount}`, amount: request.amount, currency: 'JPY' });
    });
  }

  #alter(operation: 'capture' | 'void' | 'refund', jobCd: 'SALES' | 'VOID' | 'RETURN', request: ReferenceRequest, options: CallOptions): Promise<GatewayResult> {
    return this.#run(operation, request.orderId, options, undefined, async (call) => {
      const ref = parseRef(request.transactionRef);
      if (!ref) return this.#notSent(call, 'invalid-reference', 'The transaction reference is not one this GMO-PG adapter issued.');
      const whole = ref.amount;
      if (request.amount !== undefined && request.amount !== whole) {
        const what = operation === 'capture' ? 'capture' : operation === 'refund' ? 'refund' : 'void';
        return this.#notSent(
          call,
          `partial-${what}-unsupported`,
          `GMO-PG ${what}s here are for the whole amount (${whole} yen); a different amount needs GMO-PG ChangeTran, which this adapter does not do.`,
        );
      }
      const params: [string, string][] = [['ShopID', this.#shopId], ['ShopPass', this.#shopPass], ['AccessID', ref.accessId], ['AccessPass', ref.accessPass], ['JobCd', jobCd]];
      if (jobCd === 'SALES') params.push(['Amount', String(whole)]);
      const answer = await this.#post(call, 'AlterTran', params);
      if ('failure' in answer) return this.#failed(call, 'AlterTran', answer.failure);
      if (answer.fields.has('ErrCode') || answer.fields.has('ErrInfo')) return this.#answered(call, answer.fields);
      const approve = answer.fields.get('Approve');
      return this.#approved(call, { transactionRef: request.transactionRef, amount: whole, currency: 'JPY', ...(approve ? { approvalNumber: approve } : {}) });
    });
  }

  /** EntryTran: the AccessID and AccessPass ExecTran needs, or the result that ends the call. */
  async #entry(call: Call, params: Params): Promise<{ access: Params; accessId: string; accessPass: string } | { result: GatewayResult }> {
    const answer = await this.#post(call, 'EntryTran', [['ShopID', this.#shopId], ['ShopPass', this.#shopPass], ...params]);
    if ('failure' in answer) return { result: this.#failed(call, 'EntryTran', answer.failure) };
    if (answer.fields.has('ErrCode') || answer.fields.has('ErrInfo')) return { result: this.#answered(call, answer.fields) };
    const accessId = answer.fields.get('AccessID');
    const accessPass = answer.fields.get('AccessPass');
    if (accessId === undefined || accessPass === undefined || !ACCESS_PART.test(accessId) || !ACCESS_PART.test(accessPass)) {
      return { result: this.#failed(call, 'EntryTran', { kind: 'bad-response' }) };
    }
    return { access: [['AccessID', accessId], ['AccessPass', accessPass]], accessId, accessPass };
  }

  #execResult(call: Call, exec: Exchange, approvedExtra: Extra = {}): GatewayResult {
    if ('failure' in exec) return this.#failed(call, 'ExecTran', exec.failure);
    if (exec.fields.has('ErrCode') || exec.fields.has('ErrInfo')) return this.#answered(call, exec.fields);
    const approve = exec.fields.get('Approve');
    return this.#approved(call, { ...approvedExtra, ...(approve ? { approvalNumber: approve } : {}) });
  }

  #site(call: Call): { params: Params } | { result: GatewayResult } {
    if (this.#siteId === undefined || this.#sitePass === undefined) {
      return { result: this.#notSent(call, 'site-not-configured', 'Stored cards need a GMO-PG site ID and site password in the gateway configuration.') };
    }
    return { params: [['SiteID', this.#siteId], ['SitePass', this.#sitePass]] };
  }

  /** One call: its deadline (the caller's signal and close() folded in), timestamps and cleanup. */
  async #run(operation: GatewayOperation, orderId: string, options: CallOptions, card: CardInput | undefined, body: (call: Call) => Promise<GatewayResult>): Promise<GatewayResult> {
    if (this.#closed) throw new InvalidStateError('the gmo-pg gateway is closed');
    // a wiped card is a programming mistake: throw before anything reaches GMO
    if (card?.securityCode?.wiped) throw new InvalidStateError(`card digits used after wipe (${card.securityCode.length} digits)`);
    const facts = card ? { brand: card.brand, last4: card.pan.lastFour() } : undefined;
    const signal = options.signal ? AbortSignal.any([options.signal, this.#closer.signal]) : this.#closer.signal;
    const due = deadline(this.#clock, { ...options, signal });
    try {
      return await body({ operation, orderId, requestedAt: isoNow(this.#clock), due, idempotencyKey: options.idempotencyKey, ...(facts ? { card: facts } : {}) });
    } finally {
      due.dispose();
    }
  }

  /** One API call, sent again only where the retry rule (file header) allows. */
  async #post(call: Call, api: Api, params: Params): Promise<Exchange> {
    const body = encodeForm(params);
    const url = `${this.#base}${api}.idPass`;
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/plain' },
          body,
          signal: call.due.signal,
        });
        const bytes = new Uint8Array(await response.arrayBuffer());
        if (response.status !== 200) return { failure: { kind: 'http', status: response.status } };
        const fields = parseGmoResponse(bytes);
        if (fields.size === 0) return { failure: { kind: 'bad-response' } };
        return { fields };
      } catch (err) {
        const stopped = this.#stopped(call);
        if (stopped) return { failure: stopped };
        if (!neverArrived(err)) return { failure: { kind: 'lost' } };
        if (MOVES_MONEY[api] || attempt >= GMO_MAX_ATTEMPTS) return { failure: { kind: 'refused', attempts: attempt } };
        await pause(this.#clock, this.#retryDelayMs, call.due.signal);
        const late = this.#stopped(call);
        if (late) return { failure: late };
      }
    }
  }

  #stopped(call: Call): Failure | undefined {
    if (call.due.timedOut()) return { kind: 'timeout' };
    if (this.#closer.signal.aborted) return { kind: 'closed' };
    if (call.due.signal.aborted) return { kind: 'aborted' };
    return undefined;
  }

  #common(call: Call): Pick<GatewayResult, 'gateway' | 'operation' | 'transactionId' | 'requestedAt' | 'respondedAt'> & Extra {
    return {
      gateway: this.name,
      operation: call.operation,
      transactionId: call.orderId,
      requestedAt: call.requestedAt,
      respondedAt: isoNow(this.#clock),
      ...(call.card ? { brand: call.card.brand, last4: call.card.last4 } : {}),
    };
  }

  #approved(call: Call, extra: Extra): GatewayResult {
    return { ...this.#common(call), status: 'approved', resultCode: 'OK', detailCode: '', message: 'Approved.', ...extra };
  }

  /** GMO answered with ErrCode/ErrInfo: a decline or a refusal, kept whole beside hushpay's reason. */
  #answered(call: Call, fields: ReadonlyMap<string, string>): GatewayResult {
    const errCode = fields.get('ErrCode') ?? '';
    const errInfo = fields.get('ErrInfo') ?? '';
    const first = errInfo.split('|')[0] ?? '';
    const c = classifyGmoError(first, call.orderId);
    return {
      ...this.#common(call),
      status: c.status,
      reason: c.reason,
      resultCode: errCode,
      detailCode: errInfo,
      message: c.message,
      gatewayErrorCode: errInfo,
      ...(c.gatewayMessage ? { gatewayErrorMessage: c.gatewayMessage } : {}),
    };
  }

  /** Refused before anything was sent. */
  #notSent(call: Call, code: string, message: string): GatewayResult {
    return { ...this.#common(call), status: 'error', reason: 'invalid-request', resultCode: 'NOT_SENT', detailCode: code, message };
  }

  /** The exchange did not end in an answer: say what that means for the money. */
  #failed(call: Call, api: Api, failure: Failure): GatewayResult {
    const orderId = call.orderId;
    const reason: DeclineReason = failure.kind === 'timeout' || failure.kind === 'aborted' ? 'timeout' : 'gateway-unavailable';
    const what =
      failure.kind === 'timeout'
        ? `GMO-PG did not answer ${api} in time`
        : failure.kind === 'aborted'
          ? `The ${api} call was stopped by its caller before GMO-PG answered`
          : failure.kind === 'closed'
            ? `The gateway was closed before GMO-PG answered ${api}`
            : failure.kind === 'refused'
              ? `GMO-PG could not be reached for ${api} (connection refused, ${failure.attempts} attempt${failure.attempts === 1 ? '' : 's'})`
              : failure.kind === 'lost'
                ? `The connection to GMO-PG failed during ${api}`
                : failure.kind === 'http'
                  ? `GMO-PG answered ${api} with HTTP ${failure.status}`
                  : `GMO-PG's answer to ${api} could not be read`;
    let consequence: string;
    if (failure.kind === 'refused') {
      consequence =
        api === 'ExecTran'
          ? `, so it was not sent and no money moved (it is never sent again automatically). Order ID ${orderId} is registered at GMO-PG: try again with a new one.`
          : api === 'AlterTran'
            ? `, so it was not sent and no money moved (it is never sent again automatically). It is safe to try the ${call.operation} again.`
            : api === 'EntryTran'
              ? '. No charge was made.'
              : '. No charge was made and the card was not stored.';
    } else if (MOVES_MONEY[api]) {
      const verb = api === 'ExecTran' ? 'the payment' : `the ${call.operation}`;
      consequence = `: ${verb} may or may not have gone through. Do not try again until order ${orderId} has been reconciled in GMO-PG (console or SearchTrade).`;
    } else if (api === 'EntryTran') {
      consequence = `. No charge was made; the order ID ${orderId} may now be registered at GMO-PG, so try again with a new one.`;
    } else if (api === 'SaveMember') {
      consequence = '. No charge was made and the card was not stored.';
    } else {
      consequence = '. No charge was made; the card may or may not have been stored.';
    }
    const detail = failure.kind === 'http' ? `http-${failure.status}` : failure.kind === 'refused' ? 'connection-refused' : failure.kind === 'lost' ? 'connection-lost' : failure.kind;
    return { ...this.#common(call), status: 'error', reason, resultCode: 'ERROR', detailCode: `${api}:${detail}`, message: `${what}${consequence}` };
  }
}

// ---------------------------------------------------------------------------------------------
// Request building
// ---------------------------------------------------------------------------------------------

/**
 * A form body. Every value this adapter sends is ASCII (checked or generated), so
 * percent-encoding its bytes is the same in UTF-8 and Windows-31J.
 */
function encodeForm(params: Params): string {
  return params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
}

/** The card fields of ExecTran, built while the digits are revealed. */
function cardParams(card: CardInput, before: Params): Params {
  return card.pan.reveal((pan): Params => [
    ...before,
    ['CardNo', pan],
    ['Expire', expire(card)],
    ...(card.securityCode ? card.securityCode.reveal((code): Params => [['SecurityCode', code]]) : []),
  ]);
}

/** YYMM. */
function expire(card: CardInput): string {
  return `${String(card.expiry.year % 100).padStart(2, '0')}${String(card.expiry.month).padStart(2, '0')}`;
}

/** The idempotency key, for the operator to find the transaction by in GMO's console. */
function clientField(call: Call): Params {
  return CLIENT_FIELD.test(call.idempotencyKey) ? [['ClientField1', call.idempotencyKey], ['ClientFieldFlag', '1']] : [];
}

/** GMO's Method and PayTimes for hushpay's payment method; undefined for an impossible one. */
export function gmoMethod(method: PaymentMethod = LUMP): Params | undefined {
  switch (method.kind) {
    case 'lump':
      return [['Method', '1']];
    case 'installments':
      // PayTimes is at most 3 characters (interfaces.md §3.3)
      return Number.isInteger(method.count) && method.count >= 2 && method.count <= 999 ? [['Method', '2'], ['PayTimes', String(method.count)]] : undefined;
    case 'bonus-lump':
      return [['Method', '3']];
    case 'revolving':
      return [['Method', '5']];
  }
}

function checkCharge(orderId: string, amount: number, currency: string, method: PaymentMethod | undefined): { error: { code: string; message: string }; method?: undefined } | { error?: undefined; method: Params } {
  if (!ORDER_ID.test(orderId)) return { error: { code: 'invalid-order-id', message: 'The order ID must be 1–27 of A–Z, a–z, 0–9 and hyphen for GMO-PG.' } };
  if (currency.toUpperCase() !== 'JPY') return { error: { code: 'unsupported-currency', message: 'GMO-PG card payments are in Japanese yen (JPY) only.' } };
  if (!Number.isInteger(amount) || amount <= 0) return { error: { code: 'invalid-amount', message: 'The amount must be a whole number of yen above zero.' } };
  const params = gmoMethod(method);
  if (!params) return { error: { code: 'invalid-method', message: 'Installments need a whole number of payments from 2 to 999.' } };
  return { method: params };
}

function parseRef(ref: string): { accessId: string; accessPass: string; amount: number } | undefined {
  const parts = ref.split(':');
  if (parts.length !== 3) return undefined;
  const [accessId, accessPass, amount] = parts as [string, string, string];
  if (!ACCESS_PART.test(accessId) || !ACCESS_PART.test(accessPass) || !/^[1-9]\d{0,9}$/.test(amount)) return undefined;
  return { accessId, accessPass, amount: Number(amount) };
}

function parseToken(token: string | undefined): { memberId: string; cardSeq: string } | undefined {
  if (token === undefined) return undefined;
  const at = token.lastIndexOf(':');
  if (at <= 0) return undefined;
  const memberId = token.slice(0, at);
  const cardSeq = token.slice(at + 1);
  return MEMBER_ID.test(memberId) && /^\d{1,4}$/.test(cardSeq) ? { memberId, cardSeq } : undefined;
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

const SHIFT_JIS = new TextDecoder('shift_jis');

/**
 * A GMO answer body: `key=value&…` in Windows-31J. The WHATWG urlencoded parser with Shift_JIS
 * in place of UTF-8: split the bytes on `&` and the first `=`, turn `+` into a space and `%XX`
 * into its byte, then decode the bytes. (Decoding first and percent-decoding after would read a
 * percent-encoded Shift_JIS value as UTF-8.) The first of a repeated key wins.
 */
export function parseGmoResponse(body: Uint8Array): Map<string, string> {
  const fields = new Map<string, string>();
  let end = body.length;
  while (end > 0 && (body[end - 1] === 0x0a || body[end - 1] === 0x0d)) end--;
  let start = 0;
  while (start <= end) {
    let amp = body.indexOf(0x26, start);
    if (amp === -1 || amp > end) amp = end;
    if (amp > start) {
      const part = body.subarray(start, amp);
      const eq = part.indexOf(0x3d);
      const name = SHIFT_JIS.decode(percentDecode(eq === -1 ? part : part.subarray(0, eq)));
      const value = eq === -1 ? '' : SHIFT_JIS.decode(percentDecode(part.subarray(eq + 1)));
      if (name !== '' && !fields.has(name)) fields.set(name, value);
    }
    start = amp + 1;
  }
  return fields;
}

function percentDecode(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x2b) {
      out[n++] = 0x20;
    } else if (b === 0x25 && i + 2 < bytes.length && isHex(bytes[i + 1]!) && isHex(bytes[i + 2]!)) {
      out[n++] = (hexValue(bytes[i + 1]!) << 4) | hexValue(bytes[i + 2]!);
      i += 2;
    } else {
      out[n++] = b;
    }
  }
  return out.subarray(0, n);
}

const isHex = (b: number): boolean => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
const hexValue = (b: number): number => (b <= 0x39 ? b - 0x30 : (b | 0x20) - 0x61 + 10);

/** ErrInfo codes hushpay names, with GMO's meaning in plain English. */
const KNOWN: Readonly<Record<string, { reason: DeclineReason; gatewayMessage: string }>> = {
  '42G020000': { reason: 'insufficient-funds', gatewayMessage: 'Card balance is insufficient.' },
  '42G040000': { reason: 'insufficient-funds', gatewayMessage: 'Card balance is insufficient.' },
  '42G030000': { reason: 'card-declined', gatewayMessage: 'Card limit exceeded.' },
  '42G050000': { reason: 'card-declined', gatewayMessage: 'Card limit exceeded.' },
  '42G550000': { reason: 'card-declined', gatewayMessage: 'Card limit exceeded.' },
  '42G650000': { reason: 'incorrect-number', gatewayMessage: 'Card number is incorrect.' },
  '42G830000': { reason: 'expired-card', gatewayMessage: 'Expiry date is incorrect.' },
  '42G440000': { reason: 'incorrect-security-code', gatewayMessage: 'Security code is incorrect.' },
  '42G450000': { reason: 'incorrect-security-code', gatewayMessage: 'Security code was not given.' },
  '42G120000': { reason: 'card-declined', gatewayMessage: 'Card cannot be used.' },
  '42G220000': { reason: 'card-declined', gatewayMessage: 'Card cannot be used.' },
  '42G540000': { reason: 'card-declined', gatewayMessage: 'Card cannot be used.' },
  '42G600000': { reason: 'card-declined', gatewayMessage: 'Card cannot be used.' },
  '42G610000': { reason: 'card-declined', gatewayMessage: 'Card cannot be used.' },
  E01040010: { reason: 'invalid-request', gatewayMessage: 'Order ID already used.' },
};

const REASON_MESSAGES: Readonly<Record<DeclineReason, string>> = {
  'insufficient-funds': 'The card was declined: insufficient funds.',
  'expired-card': 'The card was declined: the expiry date is wrong or the card has expired.',
  'incorrect-security-code': 'The card was declined: the security code is wrong or missing.',
  'incorrect-number': 'The card was declined: the card number is wrong.',
  'lost-or-stolen': 'The card was declined.',
  'card-declined': 'The card was declined by the card company.',
  'processing-error': 'The card company could not process the payment. Try again later.',
  timeout: 'GMO-PG did not answer in time.',
  'invalid-request': 'GMO-PG refused the request as invalid.',
  'gateway-unavailable': 'GMO-PG is unavailable or busy. Try again later.',
};

/**
 * hushpay's reason for GMO's first ErrInfo (interfaces.md §3.3): 42G… the issuer declined
 * (unlisted ones are card-declined); 42C… the card company's processing failed (an error, not
 * a decline: try again later); E61…, E9… GMO-PG's own systems; other E… the request.
 */
export function classifyGmoError(errInfo: string, orderId = ''): { status: 'declined' | 'error'; reason: DeclineReason; message: string; gatewayMessage?: string } {
  const known = KNOWN[errInfo];
  if (errInfo === 'E01040010') {
    return {
      status: 'error',
      reason: 'invalid-request',
      message: `GMO-PG already has a transaction with order ID ${orderId} (E01040010). GMO-PG's only guard against a double charge is that an order ID is used once: if this repeats a call whose answer was lost, look the order up instead of charging again; otherwise use a new order ID.`,
      gatewayMessage: known!.gatewayMessage,
    };
  }
  if (known) return { status: 'declined', reason: known.reason, message: REASON_MESSAGES[known.reason], gatewayMessage: known.gatewayMessage };
  if (errInfo.startsWith('42G')) return { status: 'declined', reason: 'card-declined', message: REASON_MESSAGES['card-declined'] };
  if (errInfo.startsWith('42C')) return { status: 'error', reason: 'processing-error', message: REASON_MESSAGES['processing-error'] };
  if (/^E(6|9)/.test(errInfo)) return { status: 'error', reason: 'gateway-unavailable', message: REASON_MESSAGES['gateway-unavailable'] };
  if (errInfo.startsWith('E')) return { status: 'error', reason: 'invalid-request', message: `${REASON_MESSAGES['invalid-request']} (${errInfo})` };
  return { status: 'error', reason: 'processing-error', message: `GMO-PG could not complete the request (${errInfo || 'no error code'}).` };
}
