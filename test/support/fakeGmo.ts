/**
 * A fake GMO Payment Gateway on 127.0.0.1, speaking GMO-PG's protocol type as the public
 * clients and their recordings show it (interfaces.md §3.3; t-k/gmo-payment-ruby cassettes):
 * form-encoded POSTs to `/payment/{Api}.idPass`, answered HTTP 200 with
 * `Content-Type: text/plain;charset=Windows-31J`, `Connection: close` and `key=value&…` in
 * Windows-31J; errors as `ErrCode=E01|E01&ErrInfo=E01040001|E01060001`.
 *
 * APIs: EntryTran, ExecTran (card fields or SiteID/SitePass/MemberID/CardSeq), AlterTran
 * (SALES, VOID, RETURN), SaveMember, SaveCard. Transactions live in memory: AccessID and
 * AccessPass issued by EntryTran, OrderID used once (E01040010), status UNPROCESSED → AUTH |
 * CAPTURE | CHECK → SALES | VOID | RETURN.
 *
 * Outcomes by test card (Stripe's numbers, interfaces.md §3.1, given GMO's ErrInfo codes):
 *
 * | card | ErrInfo |
 * |---|---|
 * | 4000000000009995 | 42G020000 insufficient balance |
 * | 4000000000000002 | 42G550000 over limit |
 * | 4000000000000069 | 42G830000 expiry |
 * | 4000000000000127 | 42G440000 security code |
 * | 4000000000009987 | 42G120000 card cannot be used (lost) |
 * | 4000000000000119 | 42C010000 processing failed |
 * | 4000000000000036 | E92000001 GMO-PG busy |
 * | a number failing Luhn | 42G650000 card number |
 * | an Expire already past (by `wallMs`) | 42G830000, before any of the above |
 * | 4000056655665556 (debit) | approved; SaveCard answers a Japanese DebitPrepaidIssuerName |
 * | any other card | approved, with a 7-digit Approve |
 *
 * Card data: the record of requests (`requests`) holds a marker in place of every CardNo and
 * SecurityCode (`[card number: 16 digits]`); stored cards keep their test behaviour and last
 * four, never their digits. The digits exist only while a request is decided.
 *
 * Faults for tests: `holdNext(api)` keeps the next answer back (a slow gateway; the returned
 * promise resolves once that request has arrived), `dropNext(api)` cuts the connection half way
 * through the answer, `stop()` closes the port (connections are refused) and `start()` opens the
 * same port again, `stopAfter(api)` closes it right after answering that API.
 */

import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type GmoApi = 'EntryTran' | 'ExecTran' | 'AlterTran' | 'SaveMember' | 'SaveCard';

export interface RecordedRequest {
  readonly api: string;
  /** The form fields as sent, with CardNo and SecurityCode replaced by markers. */
  readonly params: Readonly<Record<string, string>>;
}

export interface FakeTransaction {
  readonly orderId: string;
  readonly accessId: string;
  readonly accessPass: string;
  readonly jobCd: string;
  readonly amount: number | undefined;
  status: string;
  method?: string;
  payTimes?: string;
  memberId?: string;
  /** The last approval number answered for it. */
  approve?: string;
}

type Behaviour = { errInfo: string[] } | 'approve' | 'debit';

const TEST_CARDS: Readonly<Record<string, string>> = {
  '4000000000009995': '42G020000',
  '4000000000000002': '42G550000',
  '4000000000000069': '42G830000',
  '4000000000000127': '42G440000',
  '4000000000009987': '42G120000',
  '4000000000000119': '42C010000',
  '4000000000000036': 'E92000001',
};
const DEBIT_CARD = '4000056655665556';
/** 発行会社名 of the debit test card: kana, kanji, a full-width letter and a half-width kana. */
export const DEBIT_ISSUER_NAME = 'ＧＭＯテスト銀行ソ－ｶ';
/** Declines SaveCard's validity check reports (a card that cannot be used at all). */
const CARD_LEVEL = new Set(['42G650000', '42G830000', '42G120000', '42C010000', 'E92000001']);

interface StoredCard {
  readonly seq: number;
  readonly behaviour: Behaviour;
  readonly last4: string;
  readonly expire: string;
}

type Params = Map<string, string>;
type Answer = ReadonlyArray<readonly [string, string]>;

export class FakeGmo {
  readonly shopId = 'tshop00000001';
  readonly shopPass = 'shoppass1';
  readonly siteId = 'tsite00000001';
  readonly sitePass = 'sitepass1';
  readonly requests: RecordedRequest[] = [];
  readonly transactions = new Map<string, FakeTransaction>();
  readonly #byAccess = new Map<string, FakeTransaction>();
  readonly #members = new Map<string, StoredCard[]>();
  readonly #wallMs: () => number;
  readonly #sockets = new Set<Socket>();
  readonly #held = new Set<ServerResponse>();
  readonly #holds = new Map<string, () => void>();
  readonly #drops = new Set<string>();
  readonly #stopAfter = new Set<string>();
  #server: Server | undefined;
  #port = 0;
  #approvals = 0;

  /** `wallMs`: calendar time for the expiry check (a FakeClock's). */
  constructor(options: { wallMs?: () => number } = {}) {
    this.#wallMs = options.wallMs ?? Date.now;
  }

  /** Listens on 127.0.0.1 (the same port again after `stop()`). */
  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer((req, res) => void this.#handle(req, res));
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** The base URL, as GMO's: `http://127.0.0.1:PORT/payment/`. */
  get url(): string {
    if (this.#port === 0) throw new Error('the fake GMO has not started');
    return `http://127.0.0.1:${this.#port}/payment/`;
  }

  /** Stops listening: connections to the port are refused until `start()`. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    for (const res of this.#held) res.destroy();
    this.#held.clear();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async close(): Promise<void> {
    this.#holds.clear();
    await this.stop();
  }

  /** The next request to `api` gets no answer (until close); resolves when it has arrived. */
  holdNext(api: GmoApi): Promise<void> {
    return new Promise((resolve) => this.#holds.set(api, resolve));
  }

  /** The next answer to `api` is cut off half way, connection and all. */
  dropNext(api: GmoApi): void {
    this.#drops.add(api);
  }

  /** Closes the port right after answering the next request to `api`. */
  stopAfter(api: GmoApi): void {
    this.#stopAfter.add(api);
  }

  count(api: GmoApi): number {
    return this.requests.filter((r) => r.api === api).length;
  }

  last(api: GmoApi): RecordedRequest | undefined {
    return this.requests.filter((r) => r.api === api).at(-1);
  }

  // -------------------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
    const api = /^\/payment\/([A-Za-z]+)\.idPass$/.exec(req.url ?? '')?.[1] ?? '';
    if (req.method !== 'POST') return this.#send(res, api, error(['E00000001']));
    if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return this.#send(res, api, error(['E00000003']));
    const params = parseForm(Buffer.concat(chunks));
    this.requests.push({ api, params: masked(params) });
    const hold = this.#holds.get(api);
    if (hold) {
      this.#holds.delete(api);
      this.#held.add(res);
      res.on('close', () => this.#held.delete(res));
      hold();
      return;
    }
    let answer: Answer;
    switch (api) {
      case 'EntryTran':
        answer = this.#entryTran(params);
        break;
      case 'ExecTran':
        answer = this.#execTran(params);
        break;
      case 'AlterTran':
        answer = this.#alterTran(params);
        break;
      case 'SaveMember':
        answer = this.#saveMember(params);
        break;
      case 'SaveCard':
        answer = this.#saveCard(params);
        break;
      default:
        answer = error(['E91099997']);
    }
    // the digits go with the request: nothing here keeps them
    params.delete('CardNo');
    params.delete('SecurityCode');
    this.#send(res, api, answer);
  }

  #send(res: ServerResponse, api: string, answer: Answer): void {
    const body = encodeAnswer(answer);
    res.writeHead(200, { 'content-type': 'text/plain;charset=Windows-31J', 'content-length': body.length, connection: 'close' });
    if (this.#drops.delete(api)) {
      res.write(body.subarray(0, Math.max(1, body.length >> 1)));
      res.socket?.destroy();
      return;
    }
    res.end(body);
    if (this.#stopAfter.delete(api)) res.on('finish', () => void this.stop());
  }

  #shop(p: Params, codes: string[]): void {
    if (!p.get('ShopID')) codes.push('E01010001');
    if (!p.get('ShopPass')) codes.push('E01020001');
    if (p.get('ShopID') && p.get('ShopPass') && (p.get('ShopID') !== this.shopId || p.get('ShopPass') !== this.shopPass)) codes.push('E01030002');
  }

  #site(p: Params, codes: string[]): void {
    if (!p.get('SiteID')) codes.push('E01190001');
    if (!p.get('SitePass')) codes.push('E01200001');
    if (p.get('SiteID') && p.get('SitePass') && (p.get('SiteID') !== this.siteId || p.get('SitePass') !== this.sitePass)) codes.push('E01210002');
  }

  #entryTran(p: Params): Answer {
    const codes: string[] = [];
    this.#shop(p, codes);
    const orderId = p.get('OrderID') ?? '';
    if (!orderId) codes.push('E01040001');
    else if (orderId.length > 27) codes.push('E01040003');
    else if (!/^[A-Za-z0-9-]+$/.test(orderId)) codes.push('E01040013');
    const jobCd = p.get('JobCd') ?? '';
    if (!jobCd) codes.push('E01050001');
    else if (!['CHECK', 'CAPTURE', 'AUTH', 'SAUTH'].includes(jobCd)) codes.push('E01050002');
    const amount = p.get('Amount');
    if (jobCd !== 'CHECK') {
      if (!amount) codes.push('E01060001');
      else if (!/^\d+$/.test(amount)) codes.push('E01060006');
      else if (amount.length > 7) codes.push('E01060005');
    }
    if (codes.length === 0 && this.transactions.has(orderId)) codes.push('E01040010');
    if (codes.length > 0) return error(codes);
    const t: FakeTransaction = { orderId, accessId: hex(), accessPass: hex(), jobCd, amount: amount === undefined ? undefined : Number(amount), status: 'UNPROCESSED' };
    this.transactions.set(orderId, t);
    this.#byAccess.set(t.accessId, t);
    return [['AccessID', t.accessId], ['AccessPass', t.accessPass]];
  }

  #access(p: Params, codes: string[]): FakeTransaction | undefined {
    const id = p.get('AccessID');
    const pass = p.get('AccessPass');
    if (!id) codes.push('E01090001');
    if (!pass) codes.push('E01100001');
    if (!id || !pass) return undefined;
    const t = this.#byAccess.get(id);
    if (!t || t.accessPass !== pass) {
      codes.push('E01110002');
      return undefined;
    }
    return t;
  }

  #execTran(p: Params): Answer {
    const codes: string[] = [];
    const t = this.#access(p, codes);
    const orderId = p.get('OrderID');
    if (!orderId) codes.push('E01040001');
    else if (t && t.orderId !== orderId) codes.push('E01110002');
    const method = p.get('Method');
    if (t && t.jobCd !== 'CHECK') {
      if (!method) codes.push('E01260001');
      else if (!['1', '2', '3', '4', '5'].includes(method)) codes.push('E01260002');
      else if (method === '2' || method === '4') {
        const times = p.get('PayTimes');
        if (!times) codes.push('E01270001');
        else if (!/^\d{1,3}$/.test(times)) codes.push('E01270006');
      }
    }
    let behaviour: Behaviour | undefined;
    let expireValue: string | undefined;
    if (p.has('MemberID')) {
      this.#site(p, codes);
      const seq = p.get('CardSeq');
      if (!seq) codes.push('E01230001');
      else if (!/^\d+$/.test(seq)) codes.push('E01230006');
      const cards = this.#members.get(p.get('MemberID')!);
      if (!cards) codes.push('E01390002');
      const card = cards?.find((c) => String(c.seq) === seq);
      if (cards && seq && !card) codes.push('E01240002');
      behaviour = card?.behaviour;
      expireValue = card?.expire;
    } else {
      const card = checkCard(p, codes);
      behaviour = card?.behaviour;
      expireValue = p.get('Expire');
      const code = p.get('SecurityCode');
      if (code !== undefined && !/^\d{3,4}$/.test(code)) codes.push('E01460008');
    }
    if (codes.length > 0) return error(codes);
    if (t!.status !== 'UNPROCESSED') return error(['E11010001']);
    const declined = this.#decide(behaviour!, expireValue!);
    if (declined) return error(declined);
    t!.status = t!.jobCd === 'AUTH' ? 'AUTH' : t!.jobCd === 'CHECK' ? 'CHECK' : 'CAPTURE';
    if (method !== undefined) t!.method = method;
    const times = p.get('PayTimes');
    if (times !== undefined) t!.payTimes = times;
    const member = p.get('MemberID');
    if (member !== undefined) t!.memberId = member;
    const echo = p.get('ClientFieldFlag') === '1';
    t!.approve = this.#approve();
    return [
      ['ACS', '0'],
      ['OrderID', t!.orderId],
      ['Forward', '2a99662'],
      ['Method', method ?? ''],
      ['PayTimes', times ?? ''],
      ['Approve', t!.approve],
      ['TranID', tranId()],
      ['TranDate', tranDate(this.#wallMs())],
      ['CheckString', createHash('md5').update(t!.accessId).digest('hex')],
      ['ClientField1', echo ? (p.get('ClientField1') ?? '') : ''],
      ['ClientField2', echo ? (p.get('ClientField2') ?? '') : ''],
      ['ClientField3', echo ? (p.get('ClientField3') ?? '') : ''],
    ];
  }

  /** The issuer's answer: every problem found, the expiry first. */
  #decide(behaviour: Behaviour, expire: string): string[] | undefined {
    const problems: string[] = [];
    if (expired(expire, this.#wallMs())) problems.push('42G830000');
    if (typeof behaviour === 'object') problems.push(...behaviour.errInfo.filter((e) => !problems.includes(e)));
    return problems.length > 0 ? problems : undefined;
  }

  #alterTran(p: Params): Answer {
    const codes: string[] = [];
    this.#shop(p, codes);
    const t = this.#access(p, codes);
    const jobCd = p.get('JobCd') ?? '';
    if (!jobCd) codes.push('E01050001');
    else if (!['SALES', 'VOID', 'RETURN', 'RETURNX'].includes(jobCd)) codes.push('E01050002');
    const amount = p.get('Amount');
    if (jobCd === 'SALES') {
      if (!amount) codes.push('E01060001');
      else if (!/^\d+$/.test(amount)) codes.push('E01060006');
    }
    if (codes.length > 0) return error(codes);
    const tx = t!;
    const allowed: Record<string, string[]> = { SALES: ['AUTH'], VOID: ['AUTH', 'CAPTURE', 'SALES'], RETURN: ['CAPTURE', 'SALES'], RETURNX: ['CAPTURE', 'SALES'] };
    if (tx.status === 'UNPROCESSED') return error(['E11010002']);
    if (!allowed[jobCd]!.includes(tx.status)) return error(['E11010003']);
    if (jobCd === 'SALES' && Number(amount) !== tx.amount) return error(['E01060010']);
    tx.status = jobCd;
    tx.approve = this.#approve();
    return [
      ['AccessID', tx.accessId],
      ['AccessPass', tx.accessPass],
      ['Forward', '2a99662'],
      ['Approve', tx.approve],
      ['TranID', tranId()],
      ['TranDate', tranDate(this.#wallMs())],
    ];
  }

  #saveMember(p: Params): Answer {
    const codes: string[] = [];
    this.#site(p, codes);
    const member = p.get('MemberID') ?? '';
    if (!member) codes.push('E01220001');
    else if (member.length > 60) codes.push('E01220005');
    if (codes.length === 0 && this.#members.has(member)) codes.push('E01390010');
    if (codes.length > 0) return error(codes);
    this.#members.set(member, []);
    return [['MemberID', member]];
  }

  #saveCard(p: Params): Answer {
    const codes: string[] = [];
    this.#site(p, codes);
    const member = p.get('MemberID') ?? '';
    if (!member) codes.push('E01220001');
    const card = checkCard(p, codes);
    const cards = this.#members.get(member);
    if (member && !cards) codes.push('E01390002');
    if (codes.length > 0) return error(codes);
    // SaveCard checks the card with the card company (GMO's 2.7.2.1): only card-level faults fail
    const declined = this.#decide(card!.behaviour, p.get('Expire')!)?.filter((e) => CARD_LEVEL.has(e));
    if (declined && declined.length > 0) return error(declined);
    const seq = cards!.length;
    cards!.push({ seq, behaviour: card!.behaviour, last4: card!.last4, expire: p.get('Expire')! });
    const answer: [string, string][] = [
      ['CardSeq', String(seq)],
      ['CardNo', `${'*'.repeat(card!.length - 4)}${card!.last4}`],
      ['Forward', '2a99662'],
    ];
    if (card!.behaviour === 'debit') answer.push(['DebitPrepaidFlag', '1'], ['DebitPrepaidIssuerName', DEBIT_ISSUER_NAME]);
    answer.push(['ForwardFinal', '2a99662']);
    return answer;
  }

  #approve(): string {
    this.#approvals++;
    return String(1_000_000 + ((this.#approvals * 7_919_113) % 9_000_000));
  }
}

// ---------------------------------------------------------------------------------------------

/** Validates CardNo and Expire, and reads what the fake may know of the card. */
function checkCard(p: Params, codes: string[]): { behaviour: Behaviour; last4: string; length: number } | undefined {
  const pan = p.get('CardNo');
  const exp = p.get('Expire');
  const before = codes.length;
  if (!pan) codes.push('E01170001');
  else if (!/^\d+$/.test(pan)) codes.push('E01170006');
  else if (pan.length < 10 || pan.length > 16) codes.push('E01170011');
  if (!exp) codes.push('E01180001');
  else if (!/^\d+$/.test(exp)) codes.push('E01180006');
  else if (exp.length !== 4) codes.push('E01180003');
  else if (Number(exp.slice(2)) < 1 || Number(exp.slice(2)) > 12) codes.push('E01180008');
  if (codes.length > before || !pan) return undefined;
  const listed = TEST_CARDS[pan];
  const behaviour: Behaviour = listed ? { errInfo: [listed] } : !luhn(pan) ? { errInfo: ['42G650000'] } : pan === DEBIT_CARD ? 'debit' : 'approve';
  return { behaviour, last4: pan.slice(-4), length: pan.length };
}

function luhn(pan: string): boolean {
  let sum = 0;
  for (let i = 0; i < pan.length; i++) {
    let d = Number(pan[pan.length - 1 - i]);
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

/** YYMM before this month (Japan time). */
function expired(yymm: string, wallMs: number): boolean {
  const now = new Date(wallMs + 9 * 3_600_000);
  const year = 2000 + Number(yymm.slice(0, 2));
  const month = Number(yymm.slice(2));
  return year * 12 + month < now.getUTCFullYear() * 12 + now.getUTCMonth() + 1;
}

/** GMO's error answer: one ErrCode (the ErrInfo's first three characters) per ErrInfo. */
function error(errInfo: readonly string[]): Answer {
  return [
    ['ErrCode', errInfo.map((e) => e.slice(0, 3)).join('|')],
    ['ErrInfo', errInfo.join('|')],
  ];
}

function masked(params: Params): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of params) {
    out[k] = k === 'CardNo' ? `[card number: ${v.length} digits]` : k === 'SecurityCode' ? `[security code: ${v.length} digits]` : v;
  }
  return out;
}

const hex = (): string => randomBytes(16).toString('hex');
const tranId = (): string => Array.from(randomBytes(28), (b) => String(b % 10)).join('');

function tranDate(wallMs: number): string {
  const d = new Date(wallMs + 9 * 3_600_000);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

// ---------------------------------------------------------------------------------------------
// Windows-31J, both ways: the WHATWG Shift_JIS decoder, and an encoder built from it
// ---------------------------------------------------------------------------------------------

const SJIS = new TextDecoder('shift_jis');
let encoderTable: Map<string, readonly number[]> | undefined;

/** Every character the decoder makes, back to its bytes (the first pair wins, as WHATWG's encoder's index). */
function sjisTable(): Map<string, readonly number[]> {
  if (encoderTable) return encoderTable;
  const table = new Map<string, readonly number[]>();
  for (let b = 0; b < 0x80; b++) table.set(String.fromCharCode(b), [b]);
  for (let b = 0xa1; b <= 0xdf; b++) table.set(SJIS.decode(Uint8Array.of(b)), [b]);
  const leads = [...range(0x81, 0x9f), ...range(0xe0, 0xfc)];
  const trails = [...range(0x40, 0x7e), ...range(0x80, 0xfc)];
  for (const lead of leads) {
    for (const trail of trails) {
      const c = SJIS.decode(Uint8Array.of(lead, trail));
      if (c.length === 1 && c !== '\ufffd' && !table.has(c)) table.set(c, [lead, trail]);
    }
  }
  encoderTable = table;
  return table;
}

function* range(from: number, to: number): Generator<number> {
  for (let i = from; i <= to; i++) yield i;
}

export function encodeWindows31J(text: string): Buffer {
  const table = sjisTable();
  const bytes: number[] = [];
  for (const c of text) {
    const b = table.get(c);
    if (!b) throw new RangeError(`U+${c.codePointAt(0)!.toString(16)} has no Windows-31J form`);
    bytes.push(...b);
  }
  return Buffer.from(bytes);
}

/** GMO writes values as raw Windows-31J bytes (the cassettes show Japanese unescaped). */
function encodeAnswer(answer: Answer): Buffer {
  const parts: Buffer[] = [];
  answer.forEach(([k, v], i) => {
    if (i > 0) parts.push(Buffer.from('&'));
    parts.push(Buffer.from(`${k}=`), encodeWindows31J(v));
  });
  return Buffer.concat(parts);
}

/** A form body whose percent-escapes are Windows-31J bytes (what GMO expects of Japanese values). */
function parseForm(body: Buffer): Params {
  const out: Params = new Map();
  for (const part of body.toString('latin1').split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = eq === -1 ? part : part.slice(0, eq);
    const raw = eq === -1 ? '' : part.slice(eq + 1);
    const bytes = Buffer.from(raw.replace(/\+/g, ' ').replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    if (!out.has(key)) out.set(key, SJIS.decode(bytes));
  }
  return out;
}
