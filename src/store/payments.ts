/**
 * Payment records: what was asked (operation, amount, method, the order it is for), how the
 * capture went (status, per-field counts, brand, last four) and the gateway's public result —
 * the trail an order system reconciles against, and the CSV it imports.
 *
 * Card data: there is no column for a card number, an expiry or a security code, and none can
 * ride in a JSON column: `result` is a PublicResult (hushpay never had card data to give it) and
 * refuses card-data field names (json.ts); `progress` holds small counts only; `brand` is letters.
 *
 * Idempotency: (tenant, idempotency key) is unique. A second `create` with a key the tenant has
 * used returns the payment that key created — whatever else it asks — so a retried API request
 * cannot start a second payment. Compare the returned `id` with the one asked to tell.
 */

import type { DatabaseSync } from 'node:sqlite';
import type { Clock } from '../clock.ts';
import type { PaymentMethod } from '../payments/gateway.ts';
import type { PaymentOperation, PublicResult } from '../payments/session.ts';
import { checkCallbackUrl } from './webhooks.ts';
import { StoreConflictError, StoreInputError, StoreNotFoundError } from './errors.ts';
import { isFieldCount, toJsonObject } from './json.ts';
import { type Row, SQLITE_CONSTRAINT_PRIMARYKEY, checkLimit, checkOffset, intOrNull, isSqliteError, isoFromMs, normalizeIso, text, textOrNull } from './sql.ts';

export const PAYMENT_STATUSES = ['capturing', 'ready', 'authorizing', 'approved', 'declined', 'error', 'failed', 'cancelled', 'refused'] as const;
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number];

const OPERATIONS: readonly PaymentOperation[] = ['sale', 'authorize', 'verify', 'store'];
const METHOD_KINDS: readonly PaymentMethod['kind'][] = ['lump', 'installments', 'bonus-lump', 'revolving'];

export interface Amount {
  /** In the currency's minor unit (JPY: yen; USD: cents). */
  readonly value: number;
  /** ISO 4217. */
  readonly currency: string;
}

export interface NewPayment {
  readonly id: string;
  readonly tenantId: string;
  readonly callId: string;
  readonly agentUserId: string | null;
  readonly operation: PaymentOperation;
  readonly amount?: Amount;
  readonly method?: PaymentMethod;
  /** The merchant's order ID (the transaction ID in results); the payment id if not given. */
  readonly orderId?: string;
  readonly idempotencyKey: string;
  /** The capture fields asked for (`payment-card-number`, `expiration-date`, …). */
  readonly fields: readonly string[];
  /** Default `capturing`; `refused` records a payment the call refused to start. */
  readonly status?: PaymentStatus;
  /** Where this payment's events are also POSTed (http or https). */
  readonly statusCallback?: string;
}

/** How far the caller got in one capture field: digit counts, never digits. */
export interface FieldProgress {
  readonly entered: number;
  readonly expected: number;
  readonly valid?: boolean;
}

/** Fields to change; `null` clears one. */
export interface PaymentUpdate {
  readonly status?: PaymentStatus;
  readonly brand?: string | null;
  readonly last4?: string | null;
  /**
   * Per-field counts, e.g. `{ "payment-card-number": { "entered": 16, "expected": 16, "valid": true } }`:
   * each value a FieldProgress with counts of at most 19. Replaces the whole object; `null` empties it.
   */
  readonly progress?: object | null;
  readonly result?: PublicResult | null;
  readonly failure?: string | null;
  readonly error?: string | null;
}

export interface PaymentRecord {
  readonly id: string;
  readonly tenantId: string;
  readonly callId: string;
  readonly agentUserId: string | null;
  readonly operation: PaymentOperation;
  readonly amount: Amount | null;
  readonly method: PaymentMethod | null;
  readonly orderId: string;
  readonly idempotencyKey: string;
  readonly fields: readonly string[];
  readonly status: PaymentStatus;
  readonly brand: string | null;
  readonly last4: string | null;
  /** Per capture field; `{}` before the first digit. */
  readonly progress: Readonly<Record<string, FieldProgress>>;
  readonly result: PublicResult | null;
  readonly failure: string | null;
  readonly error: string | null;
  readonly statusCallback: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface PaymentQuery {
  readonly tenantId?: string;
  readonly agentUserId?: string;
  /** Created at or after (ISO 8601). */
  readonly from?: string;
  /** Created before (ISO 8601). */
  readonly to?: string;
  /** One of PAYMENT_STATUSES (text from a query string is checked here: StoreInputError). */
  readonly status?: string;
  /** Default 100, at most 10,000. */
  readonly limit?: number;
  readonly offset?: number;
}

export const PAYMENT_LIST_DEFAULT_LIMIT = 100;
export const PAYMENT_LIST_MAX_LIMIT = 10_000;

function toPayment(row: Row): PaymentRecord {
  const amountValue = intOrNull(row, 'amount_value');
  const currency = textOrNull(row, 'currency');
  const kind = textOrNull(row, 'method_kind') as PaymentMethod['kind'] | null;
  const count = intOrNull(row, 'method_count');
  const progress = textOrNull(row, 'progress');
  const result = textOrNull(row, 'result');
  return {
    id: text(row, 'id'),
    tenantId: text(row, 'tenant_id'),
    callId: text(row, 'call_id'),
    agentUserId: textOrNull(row, 'agent_user_id'),
    operation: text(row, 'operation') as PaymentOperation,
    amount: amountValue !== null && currency !== null ? { value: amountValue, currency } : null,
    method: kind === null ? null : kind === 'installments' ? { kind, count: count ?? 0 } : { kind },
    orderId: text(row, 'order_id'),
    idempotencyKey: text(row, 'idempotency_key'),
    fields: JSON.parse(text(row, 'fields')) as string[],
    status: text(row, 'status') as PaymentStatus,
    brand: textOrNull(row, 'brand'),
    last4: textOrNull(row, 'last4'),
    progress: progress === null ? {} : (JSON.parse(progress) as Record<string, FieldProgress>),
    result: result === null ? null : (JSON.parse(result) as PublicResult),
    failure: textOrNull(row, 'failure'),
    error: textOrNull(row, 'error'),
    statusCallback: textOrNull(row, 'status_callback'),
    createdAt: text(row, 'created_at'),
    updatedAt: text(row, 'updated_at'),
  };
}

function checkStatus(status: string): PaymentStatus {
  const known = PAYMENT_STATUSES.find((s) => s === status);
  if (!known) throw new StoreInputError('status', `must be one of ${PAYMENT_STATUSES.join(', ')}`);
  return known;
}

const BRAND_PATTERN = /^[A-Za-z][A-Za-z ._-]{0,31}$/;
const FIELD_NAME_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;

/**
 * Progress holds counts: `{ field: { entered, expected, valid? } }`, counts of at most 19 — so
 * neither a digit string nor a number a caller keyed (a security code, a PAN) fits in it.
 */
function checkProgress(progress: object): string {
  const object = toJsonObject('progress', progress);
  for (const [field, value] of Object.entries(object)) {
    if (!FIELD_NAME_PATTERN.test(field)) throw new StoreInputError('progress', 'field names are capture fields such as payment-card-number');
    if (!isFieldCount(value)) throw new StoreInputError(`progress.${field}`, 'must be { entered, expected, valid? }: counts of at most 19 and a boolean');
  }
  return JSON.stringify(object);
}

export class PaymentRepository {
  readonly #db: DatabaseSync;
  readonly #clock: Clock;

  constructor(db: DatabaseSync, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
  }

  /**
   * Records a new payment, or returns the one this tenant's idempotency key already created
   * (unchanged). An id already used under another key: StoreConflictError.
   */
  create(input: NewPayment): PaymentRecord {
    if (!OPERATIONS.includes(input.operation)) throw new StoreInputError('operation', `must be one of ${OPERATIONS.join(', ')}`);
    if (input.amount && (!Number.isSafeInteger(input.amount.value) || input.amount.value < 0 || !/^[A-Z]{3}$/.test(input.amount.currency))) {
      throw new StoreInputError('amount', 'must be a whole number of minor units and an ISO 4217 currency');
    }
    if (input.method && !METHOD_KINDS.includes(input.method.kind)) throw new StoreInputError('method.kind', `must be one of ${METHOD_KINDS.join(', ')}`);
    if (input.idempotencyKey.length === 0) throw new StoreInputError('idempotencyKey', 'must not be empty');
    const status = checkStatus(input.status ?? 'capturing');
    const now = isoFromMs(this.#clock.wallMs());
    try {
      this.#db
        .prepare(
          `INSERT INTO payments (id, tenant_id, call_id, agent_user_id, operation, amount_value, currency, method_kind, method_count,
             order_id, idempotency_key, fields, status, created_at, updated_at, status_callback)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (tenant_id, idempotency_key) DO NOTHING`,
        )
        .run(
          input.id,
          input.tenantId,
          input.callId,
          input.agentUserId,
          input.operation,
          input.amount?.value ?? null,
          input.amount?.currency ?? null,
          input.method?.kind ?? null,
          input.method?.kind === 'installments' ? input.method.count : null,
          input.orderId ?? input.id,
          input.idempotencyKey,
          JSON.stringify([...input.fields]),
          status,
          now,
          now,
          input.statusCallback === undefined ? null : checkCallbackUrl(input.statusCallback),
        );
    } catch (err) {
      if (isSqliteError(err, SQLITE_CONSTRAINT_PRIMARYKEY)) throw new StoreConflictError('id', `payment ${input.id} already exists`);
      throw err;
    }
    return this.byIdempotencyKey(input.tenantId, input.idempotencyKey)!;
  }

  get(id: string): PaymentRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM payments WHERE id = ?').get(id) as Row | undefined;
    return row ? toPayment(row) : undefined;
  }

  byIdempotencyKey(tenantId: string, key: string): PaymentRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM payments WHERE tenant_id = ? AND idempotency_key = ?').get(tenantId, key) as Row | undefined;
    return row ? toPayment(row) : undefined;
  }

  /** Changes the fields given; returns the record as it now is. */
  update(id: string, changes: PaymentUpdate): PaymentRecord {
    const sets: string[] = [];
    const params: (string | null)[] = [];
    const set = (column: string, value: string | null): void => {
      sets.push(`${column} = ?`);
      params.push(value);
    };
    if (changes.status !== undefined) set('status', checkStatus(changes.status));
    if (changes.brand !== undefined) {
      if (changes.brand !== null && !BRAND_PATTERN.test(changes.brand)) throw new StoreInputError('brand', 'must be a card brand name (letters)');
      set('brand', changes.brand);
    }
    if (changes.last4 !== undefined) {
      if (changes.last4 !== null && !/^\d{4}$/.test(changes.last4)) throw new StoreInputError('last4', 'must be 4 digits');
      set('last4', changes.last4);
    }
    if (changes.progress !== undefined) set('progress', changes.progress === null ? null : checkProgress(changes.progress));
    if (changes.result !== undefined) set('result', changes.result === null ? null : JSON.stringify(toJsonObject('result', changes.result)));
    if (changes.failure !== undefined) set('failure', changes.failure);
    if (changes.error !== undefined) set('error', changes.error);
    set('updated_at', isoFromMs(this.#clock.wallMs()));
    const { changes: count } = this.#db.prepare(`UPDATE payments SET ${sets.join(', ')} WHERE id = ?`).run(...params, id);
    if (Number(count) === 0) throw new StoreNotFoundError(`payment:${id}`);
    return this.get(id)!;
  }

  /** Payments matching every filter given, newest first. */
  list(query: PaymentQuery = {}): PaymentRecord[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const filter = (clause: string, value: string): void => {
      where.push(clause);
      params.push(value);
    };
    if (query.tenantId !== undefined) filter('tenant_id = ?', query.tenantId);
    if (query.agentUserId !== undefined) filter('agent_user_id = ?', query.agentUserId);
    if (query.from !== undefined) filter('created_at >= ?', normalizeIso('from', query.from));
    if (query.to !== undefined) filter('created_at < ?', normalizeIso('to', query.to));
    if (query.status !== undefined) filter('status = ?', checkStatus(query.status));
    params.push(checkLimit('limit', query.limit, PAYMENT_LIST_DEFAULT_LIMIT, PAYMENT_LIST_MAX_LIMIT), checkOffset(query.offset));
    const sql = `SELECT * FROM payments ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`;
    return this.#db.prepare(sql).all(...params).map(toPayment);
  }

  /** The records as CSV for an order system (see `paymentsCsv`). */
  csv(rows: readonly PaymentRecord[], options: PaymentsCsvOptions = {}): string {
    return paymentsCsv(rows, options);
  }
}

// ---------------------------------------------------------------------------------------------
// CSV for Japanese order systems
// ---------------------------------------------------------------------------------------------

export interface PaymentsCsvOptions {
  /** Header row language: `en` (snake_case names, the default) or `ja` (受注システム向け). */
  readonly header?: 'en' | 'ja';
}

interface CsvColumn {
  readonly en: string;
  readonly ja: string;
  readonly value: (p: PaymentRecord) => string | number | null | undefined;
}

/** The fields Japanese order systems reconcile on: the gateway's codes beside hushpay's status. */
export const PAYMENT_CSV_COLUMNS: readonly CsvColumn[] = [
  { en: 'payment_id', ja: '決済ID', value: (p) => p.id },
  { en: 'order_id', ja: 'オーダーID（取引ID）', value: (p) => p.orderId },
  { en: 'status', ja: 'ステータス', value: (p) => p.status },
  { en: 'result_code', ja: '結果コード', value: (p) => p.result?.resultCode },
  { en: 'detail_code', ja: '詳細コード', value: (p) => p.result?.detailCode },
  { en: 'message', ja: 'メッセージ', value: (p) => p.result?.message },
  { en: 'approval_number', ja: '承認番号', value: (p) => p.result?.approvalNumber },
  { en: 'gateway', ja: '決済代行会社', value: (p) => p.result?.gateway },
  { en: 'gateway_error_code', ja: 'ゲートウェイエラーコード', value: (p) => p.result?.gatewayErrorCode },
  { en: 'gateway_error_message', ja: 'ゲートウェイエラーメッセージ', value: (p) => p.result?.gatewayErrorMessage },
  { en: 'amount', ja: '金額', value: (p) => p.result?.amount ?? p.amount?.value },
  { en: 'currency', ja: '通貨', value: (p) => p.result?.currency ?? p.amount?.currency },
  { en: 'brand', ja: 'カードブランド', value: (p) => p.brand ?? p.result?.brand },
  { en: 'last4', ja: 'カード番号下4桁', value: (p) => p.last4 ?? p.result?.last4 },
  { en: 'token', ja: 'トークン', value: (p) => p.result?.token },
  { en: 'requested_at', ja: '要求日時', value: (p) => p.result?.requestedAt },
  { en: 'responded_at', ja: '応答日時', value: (p) => p.result?.respondedAt },
  { en: 'created_at', ja: '作成日時', value: (p) => p.createdAt },
];

/** RFC 4180 §2: a field with a comma, a quote or a line break is quoted, its quotes doubled. */
export function csvField(value: string | number | null | undefined): string {
  let s = value === null || value === undefined ? '' : String(value);
  // a text cell a spreadsheet would run as a formula (OWASP "CSV injection") gets a leading '
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A header row and one row per payment, CRLF after each (RFC 4180). Amounts are in minor units. */
export function paymentsCsv(rows: readonly PaymentRecord[], options: PaymentsCsvOptions = {}): string {
  const language = options.header ?? 'en';
  const lines = [PAYMENT_CSV_COLUMNS.map((c) => csvField(c[language]))];
  for (const row of rows) lines.push(PAYMENT_CSV_COLUMNS.map((c) => csvField(c.value(row))));
  return lines.map((cells) => `${cells.join(',')}\r\n`).join('');
}
