// hushpay agent page: log in, take a call, start a payment, watch the caller key it — counts,
// brand, ticks and the last four only. Plain JavaScript, no framework, nothing from elsewhere
// (the page runs under script-src 'self' / style-src 'self': no inline script or style).
//
// In a CRM's frame: `/?call=<id>` takes that call on load; `&parentOrigin=<origin>` (or the
// browser's ancestorOrigins) names the parent, used only if GET /v1/page-config lists it. The
// page then posts { type: 'hushpay.ready' } and { type: 'hushpay.payment', paymentId, callId,
// status, brand, last4, approvalNumber } to exactly that origin, and takes
// { type: 'hushpay.claim', callId } from the parent window of that origin only.
//
// Card data: the server sends counts, the brand and a masked number; this page keeps and shows
// only the last four digits of that (and of the result), never the masked string itself, and
// stores nothing but ids and the language (sessionStorage: the last event id, the call and
// payment shown; localStorage: the language).
'use strict';

const TEXT = {
  en: {
    lang: '日本語', logout: 'Log out', offline: 'Reconnecting…',
    'login.title': 'Log in', 'login.username': 'Username', 'login.password': 'Password', 'login.totp': 'Authenticator code', 'login.submit': 'Log in',
    'login.bad_credentials': 'Wrong username or password', 'login.totp_required': 'Enter the code from your authenticator app', 'login.bad_totp': 'That code is not right', 'login.locked': 'Too many failed logins; try again later', 'login.totp_not_enrolled': 'An admin needs a second factor; enrol one first',
    'calls.title': 'Your calls', 'calls.none': 'No calls on your desk. Enter the call ID your phone shows.', 'calls.claim': 'Take call', 'calls.open': 'Open', 'calls.id': 'Call ID',
    'claim.call_not_found': 'No live call with that ID', 'claim.call_taken': 'Another agent has this call', 'claim.invalid': 'That is not a call ID',
    'payment.title': 'Payment', 'start.amount': 'Amount', 'start.currency': 'Currency', 'start.operation': 'Operation', 'start.method': 'Payment method', 'start.count': 'Instalments', 'start.member': 'Member ID', 'start.submit': 'Start payment',
    'start.amount-invalid': 'Enter an amount above zero', 'start.count-invalid': 'Choose 2 to 99 instalments', 'start.call_not_active': 'The call is not connected', 'start.installments_count_required': 'Choose 2 to 99 instalments',
    'op.sale': 'Sale', 'op.authorize': 'Authorize only', 'op.verify': 'Check card', 'op.store': 'Keep card on file',
    'method.tenant': 'As the tenant sets', 'method.lump': 'Single payment', 'method.installments': 'Instalments', 'method.bonus': 'Bonus payment', 'method.revolving': 'Revolving',
    'field.card': 'Card number', 'field.expiry': 'Expiry', 'field.code': 'Security code', 'field.payment-method': 'Payment method', 'field.installments': 'Instalments', 'field.amount-confirmation': 'Amount confirmed',
    recapture: 'Ask again', complete: 'Complete payment', cancel: 'Cancel', valid: 'valid',
    'status.capturing': 'The caller is keying…', 'status.ready': 'Ready: complete the payment', 'status.authorizing': 'Sending to the card company…', 'status.approved': 'Approved', 'status.declined': 'Declined', 'status.failed': 'Not completed', 'status.cancelled': 'Cancelled', 'status.error': 'Not completed', 'status.refused': 'Not started',
    approval: 'Approval number', 'err.invalid-card-number': 'The card number is not valid', 'err.invalid-card-type': 'That card is not accepted', 'err.invalid-date': 'The expiry is not valid', 'err.invalid-security-code': 'The security code is not valid', 'err.timeout': 'The caller did not key in time', 'err.invalid-selection': 'Not one of the choices', 'err.invalid-installments': 'That number of instalments is not offered',
    'why.insufficient-funds': 'Not enough funds on the card', 'why.expired-card': 'The card has expired', 'why.incorrect-security-code': 'Wrong security code', 'why.incorrect-number': 'Wrong card number', 'why.lost-or-stolen': 'The card was declined', 'why.card-declined': 'The card was declined', 'why.processing-error': 'The card company had a problem; try again', 'why.timeout': 'No answer from the card company in time; check before trying again', 'why.invalid-request': 'The payment could not be sent as asked', 'why.gateway-unavailable': 'The card company could not be reached', 'why.too-many-failed-attempts': 'Too many attempts', 'why.amount-not-confirmed': 'The caller did not confirm the amount', 'why.payment-connector-error': 'The card company could not be reached', 'why.declined': 'The card was declined', 'why.error': 'The card company could not complete it', 'why.unknown': 'The payment did not go through',
    'refused.payment-in-progress': 'A payment is already running on this call', 'refused.card-testing-limit-call': 'Too many failed cards on this call', 'refused.card-testing-limit-caller': 'Too many failed cards from this caller', 'refused.invalid-request': 'The payment could not be started as asked',
    'action.payment_not_active': 'The payment can no longer be changed', 'action.payment_not_ready': 'The caller has not finished keying',
    attempts: 'attempts left', ended: 'The call has ended', failed: 'Something went wrong; try again',
  },
  ja: {
    lang: 'English', logout: 'ログアウト', offline: '再接続中…',
    'login.title': 'ログイン', 'login.username': 'ユーザー名', 'login.password': 'パスワード', 'login.totp': '認証コード', 'login.submit': 'ログイン',
    'login.bad_credentials': 'ユーザー名またはパスワードが違います', 'login.totp_required': '認証アプリのコードを入力してください', 'login.bad_totp': '認証コードが違います', 'login.locked': 'ログインの失敗が多すぎます。しばらくしてからお試しください', 'login.totp_not_enrolled': '管理者には二要素認証の登録が必要です',
    'calls.title': '担当の通話', 'calls.none': '担当の通話はありません。電話機に表示された通話IDを入力してください。', 'calls.claim': '通話を担当', 'calls.open': '開く', 'calls.id': '通話ID',
    'claim.call_not_found': 'そのIDの通話はありません', 'claim.call_taken': '他のオペレーターが担当しています', 'claim.invalid': '通話IDの形式ではありません',
    'payment.title': '決済', 'start.amount': '金額', 'start.currency': '通貨', 'start.operation': '処理', 'start.method': '支払方法', 'start.count': '分割回数', 'start.member': '会員ID', 'start.submit': '決済を開始',
    'start.amount-invalid': '0より大きい金額を入力してください', 'start.count-invalid': '分割回数は2〜99回です', 'start.call_not_active': '通話が接続されていません', 'start.installments_count_required': '分割回数は2〜99回です',
    'op.sale': '売上', 'op.authorize': '仮売上', 'op.verify': '有効性チェック', 'op.store': 'カード登録',
    'method.tenant': 'テナント設定どおり', 'method.lump': '一括払い', 'method.installments': '分割払い', 'method.bonus': 'ボーナス一括払い', 'method.revolving': 'リボ払い',
    'field.card': 'カード番号', 'field.expiry': '有効期限', 'field.code': 'セキュリティコード', 'field.payment-method': '支払方法', 'field.installments': '分割回数', 'field.amount-confirmation': '金額確認',
    recapture: '再入力', complete: '決済を確定', cancel: '取消', valid: '有効',
    'status.capturing': 'お客様が入力中…', 'status.ready': '入力完了：決済を確定してください', 'status.authorizing': 'カード会社に照会中…', 'status.approved': '承認されました', 'status.declined': '承認されませんでした', 'status.failed': '完了しませんでした', 'status.cancelled': '取り消しました', 'status.error': '完了しませんでした', 'status.refused': '開始できませんでした',
    approval: '承認番号', 'err.invalid-card-number': 'カード番号が正しくありません', 'err.invalid-card-type': 'ご利用いただけないカードです', 'err.invalid-date': '有効期限が正しくありません', 'err.invalid-security-code': 'セキュリティコードが正しくありません', 'err.timeout': '入力がありませんでした', 'err.invalid-selection': '選択肢にない番号です', 'err.invalid-installments': 'ご利用いただけない分割回数です',
    'why.insufficient-funds': 'ご利用可能額が不足しています', 'why.expired-card': 'カードの有効期限が切れています', 'why.incorrect-security-code': 'セキュリティコードが違います', 'why.incorrect-number': 'カード番号が違います', 'why.lost-or-stolen': 'カードがご利用いただけませんでした', 'why.card-declined': 'カードがご利用いただけませんでした', 'why.processing-error': 'カード会社で処理できませんでした。再度お試しください', 'why.timeout': 'カード会社から応答がありません。再試行の前に確認してください', 'why.invalid-request': '決済を送信できませんでした', 'why.gateway-unavailable': 'カード会社に接続できませんでした', 'why.too-many-failed-attempts': '入力の回数を超えました', 'why.amount-not-confirmed': 'お客様が金額を確認されませんでした', 'why.payment-connector-error': 'カード会社に接続できませんでした', 'why.declined': 'カードがご利用いただけませんでした', 'why.error': 'カード会社で処理を完了できませんでした', 'why.unknown': '決済は完了しませんでした',
    'refused.payment-in-progress': 'この通話では決済が進行中です', 'refused.card-testing-limit-call': 'この通話で失敗したカードが多すぎます', 'refused.card-testing-limit-caller': 'この発信者の失敗したカードが多すぎます', 'refused.invalid-request': '指定の内容では決済を開始できません',
    'action.payment_not_active': 'この決済はもう変更できません', 'action.payment_not_ready': 'お客様の入力が終わっていません',
    attempts: '残り回数', ended: '通話が終了しました', failed: 'うまくいきませんでした。もう一度お試しください',
  },
};

const BRANDS = { visa: 'Visa', mastercard: 'Mastercard', amex: 'American Express', jcb: 'JCB', diners: 'Diners Club', discover: 'Discover', unionpay: 'UnionPay' };
const FIELD_TEXT = { 'payment-card-number': 'field.card', 'expiration-date': 'field.expiry', 'security-code': 'field.code', 'payment-method': 'field.payment-method', installments: 'field.installments', 'amount-confirmation': 'field.amount-confirmation' };
const RUNNING = ['capturing', 'ready', 'authorizing'];
/** A payment's end is final: a later event cannot change it (nor can an older one replayed). */
const FINAL = ['approved', 'declined', 'error', 'failed', 'cancelled', 'refused'];
const KEY = { lang: 'hp_lang', lastEvent: 'hp_last_event', call: 'hp_call', payment: 'hp_payment' };
const CALL_ID = /^[A-Za-z0-9_-]{1,64}$/;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 10_000;

const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.search);
const store = {
  get: (area, key) => {
    try {
      return area.getItem(key);
    } catch {
      return null; // storage off (a sandboxed iframe): the page still works, it just forgets
    }
  },
  set: (area, key, value) => {
    try {
      if (value === null || value === undefined) area.removeItem(key);
      else area.setItem(key, String(value));
    } catch {
      // as above
    }
  },
};

let lang = store.get(localStorage, KEY.lang) || ((navigator.language || '').startsWith('ja') ? 'ja' : 'en');
if (!TEXT[lang]) lang = 'en';
let csrf = null;
let me = null;
/** The live calls on this agent's desk (GET /v1/calls). */
let calls = [];
/** The call shown, and its last known view (kept after it ends, so the result stays on screen). */
let selectedCall = params.get('call') || store.get(sessionStorage, KEY.call);
let selectedView = null;
let selectedEnded = false;
/**
 * The payment shown, kept from its record and its events:
 * { id, callId, status, amount, fieldNames, fields: { step: { entered, expected, valid } }, brand, last4, result, reason, error }.
 * `last4` is the only part of the card number it ever holds.
 */
let payment = null;
let toldParent = '';
let busy = false;

let socket = null;
let retryMs = RETRY_MIN_MS;
let retryTimer = null;
/** While a snapshot loads, payment events wait here and are applied on top of it, in order. */
let holds = 0;
const held = [];

let parentOrigin = null;

const t = (key) => (TEXT[lang] && TEXT[lang][key]) || TEXT.en[key] || key;
const known = (key) => Boolean(TEXT.en[key]);
/** An API error in the user's words: by its code, else a general message (never a raw server string for a field). */
const say = (prefix, e) => (e && e.code && known(`${prefix}.${e.code}`) ? t(`${prefix}.${e.code}`) : (e && e.message) || t('failed'));
const lastFour = (s) => {
  const m = /(\d{4})$/.exec(typeof s === 'string' ? s : '');
  return m ? m[1] : null;
};

function translate() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  for (const el of document.querySelectorAll('[data-t-label]')) el.setAttribute('aria-label', t(el.dataset.tLabel));
  for (const el of document.querySelectorAll('.tick')) el.title = t('valid');
  $('#lang').textContent = t('lang');
  $('#lang').lang = lang === 'ja' ? 'en' : 'ja';
  updateAmountInput();
  render();
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}), ...(csrf && method !== 'GET' ? { 'x-csrf-token': csrf } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const json = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401 && path !== '/v1/auth/login' && me) showLogin();
  if (!res.ok) throw Object.assign(new Error((json && json.error && json.error.message) || res.statusText), { code: json && json.error && json.error.code, status: res.status });
  return json;
}

/** A random idempotency key (crypto.randomUUID needs a secure context; this does not). */
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `pg_${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

// ---- login ---------------------------------------------------------------------------------

function showLogin() {
  me = null;
  csrf = null;
  calls = [];
  payment = null;
  selectedView = null;
  disconnect();
  $('#login').hidden = false;
  $('#desk').hidden = true;
  $('#logout').hidden = true;
  $('#offline').hidden = true;
  $('#who').textContent = '';
}

async function showDesk(user, token) {
  me = user;
  csrf = token;
  $('#login').hidden = true;
  $('#desk').hidden = false;
  $('#logout').hidden = false;
  $('#who').textContent = `${user.username} (${user.role})`;
  // a link (a CRM's screen pop) only fills in the call: taking it is the agent's click, so a
  // link cannot make anyone take a call from its agent
  const asked = params.get('call');
  if (asked) $('#claim').elements.namedItem('callId').value = asked;
  connect();
  await requestSync();
}

$('#login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const f = form.elements;
  const body = { username: f.namedItem('username').value, password: f.namedItem('password').value };
  const totp = f.namedItem('totp').value.trim();
  if (totp) body.totp = totp;
  try {
    const r = await api('POST', '/v1/auth/login', body);
    form.reset();
    $('#totp-row').hidden = true;
    $('#login-error').textContent = '';
    // another user may have used this tab: start their stream afresh
    for (const k of [KEY.lastEvent, KEY.call, KEY.payment]) store.set(sessionStorage, k, null);
    selectedCall = params.get('call');
    await showDesk(r.user, r.csrfToken);
  } catch (e) {
    if (e.code === 'totp_required') $('#totp-row').hidden = false;
    f.namedItem('password').value = '';
    $('#login-error').textContent = say('login', e);
  }
});

$('#logout').addEventListener('click', async () => {
  await api('POST', '/v1/auth/logout').catch(() => undefined);
  for (const k of [KEY.lastEvent, KEY.call, KEY.payment]) store.set(sessionStorage, k, null);
  selectedCall = null;
  showLogin();
});

$('#lang').addEventListener('click', () => {
  lang = lang === 'ja' ? 'en' : 'ja';
  store.set(localStorage, KEY.lang, lang);
  translate();
});

// ---- calls and the payment shown -----------------------------------------------------------

function select(callId) {
  if (callId !== selectedCall) {
    payment = null;
    toldParent = '';
    store.set(sessionStorage, KEY.payment, null);
  }
  selectedCall = callId;
  selectedEnded = false;
  store.set(sessionStorage, KEY.call, callId);
}

/**
 * Loads the calls and the shown payment's record. Events that arrive meanwhile are held and
 * applied on top, in order: every event sets absolute values, so the last one wins, and the
 * record is never older than an event already seen (the server stores before it sends).
 */
async function sync() {
  await holding(async () => {
    const r = await api('GET', '/v1/calls');
    calls = r.calls;
    const live = calls.find((c) => c.id === selectedCall);
    if (live) {
      selectedView = live;
      selectedEnded = false;
    } else if (selectedCall && selectedView && selectedView.id === selectedCall) {
      selectedEnded = true;
    } else if (calls.length > 0 && (!selectedCall || !payment)) {
      select(calls[0].id);
      selectedView = calls[0];
    }
    const view = calls.find((c) => c.id === selectedCall);
    const paymentId = (view && view.paymentId) || (payment && payment.id) || store.get(sessionStorage, KEY.payment);
    if (paymentId) await loadPayment(paymentId).catch((e) => {
      if (e.status === 404 && (!payment || payment.id === paymentId)) {
        payment = null;
        store.set(sessionStorage, KEY.payment, null);
      }
    });
    if (selectedCall && !selectedView && payment && payment.callId === selectedCall) {
      // a refresh after the call ended: show the payment with what we know of its call
      selectedView = { id: selectedCall, caller: null, called: null, startedAt: null };
      selectedEnded = true;
    }
  });
}

let syncing = null;
let syncAgain = false;

/** A sync soon: one at a time, and one more after it if asked meanwhile (a replay of many call events costs two). */
function requestSync() {
  if (syncing) {
    syncAgain = true;
    return syncing;
  }
  syncing = (async () => {
    try {
      do {
        syncAgain = false;
        await sync();
      } while (syncAgain && me);
    } finally {
      syncing = null;
    }
  })();
  return syncing;
}

/** Runs `load` with payment events held, then applies them on top of what it loaded. */
async function holding(load) {
  holds++;
  try {
    await load();
  } finally {
    if (--holds === 0) for (const e of held.splice(0)) applyPayment(e);
    render();
  }
}

async function claim(input) {
  const callId = String(input).trim();
  if (!CALL_ID.test(callId)) throw Object.assign(new Error('not a call id'), { code: 'invalid' });
  const view = await api('POST', `/v1/calls/${encodeURIComponent(callId)}/claim`);
  select(callId);
  selectedView = view;
}

async function loadPayment(id) {
  const p = await api('GET', `/v1/payments/${encodeURIComponent(id)}`);
  if (p.callId !== selectedCall) return;
  const fields = {};
  for (const [step, f] of Object.entries(p.progress || {})) fields[step] = { entered: f.entered, expected: f.expected, valid: f.valid };
  const result = p.result || null;
  // a field asked for again leaves the record saying "ready" while the caller keys it: not ready
  const unfinished = (p.fields || []).some((step) => !(fields[step] && fields[step].valid === true));
  payment = {
    id: p.id,
    callId: p.callId,
    status: p.status === 'ready' && unfinished ? 'capturing' : statusOf(p.status, result),
    amount: p.amount || null,
    fieldNames: p.fields || null,
    fields,
    brand: p.brand || null,
    last4: lastFour(p.last4),
    result,
    reason: (result && result.reason) || p.failure || null,
    error: payment && payment.id === p.id ? payment.error : null,
  };
  store.set(sessionStorage, KEY.payment, p.id);
}

/**
 * A payment with a gateway result ended as the result says: whatever else its record says, the
 * agent must not read "cancelled" for a card that was charged.
 */
function statusOf(status, result) {
  if (!result) return status;
  return result.status === 'approved' ? 'approved' : result.status === 'declined' ? 'declined' : 'error';
}

$('#claim').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  try {
    await claim(form.elements.namedItem('callId').value);
    form.reset();
    $('#claim-error').textContent = '';
    await requestSync();
  } catch (e) {
    $('#claim-error').textContent = say('claim', e);
  }
});

// ---- starting and steering a payment -------------------------------------------------------

/** Digits after the point in a currency's amounts (JPY 0, USD 2): the API takes minor units. */
function fractionDigits(currency) {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 0;
  }
}

function formatAmount(amount) {
  if (!amount) return '';
  try {
    const digits = fractionDigits(amount.currency);
    return new Intl.NumberFormat(lang, { style: 'currency', currency: amount.currency }).format(amount.value / 10 ** digits);
  } catch {
    return `${amount.value} ${amount.currency}`;
  }
}

function updateAmountInput() {
  const f = $('#start').elements;
  const digits = fractionDigits(f.namedItem('currency').value);
  const step = digits === 0 ? '1' : (1 / 10 ** digits).toFixed(digits);
  f.namedItem('amount').step = step;
  f.namedItem('amount').min = step;
}

$('#start').addEventListener('change', (ev) => {
  const f = ev.currentTarget.elements;
  const op = f.namedItem('operation').value;
  const installments = f.namedItem('method').value === 'installments';
  $('#count-row').hidden = !installments;
  f.namedItem('count').required = installments;
  $('#member-row').hidden = op !== 'store';
  f.namedItem('memberId').required = op === 'store';
  f.namedItem('amount').required = op === 'sale' || op === 'authorize';
  updateAmountInput();
});

/** Kept across a retry after a network failure, so the retry answers the same payment. */
let startKey = null;

$('#start').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (busy || !selectedCall) return;
  const f = ev.currentTarget.elements;
  const op = f.namedItem('operation').value;
  const body = { idempotencyKey: startKey || newKey(), operation: op };
  if (op === 'sale' || op === 'authorize') {
    const currency = f.namedItem('currency').value;
    const value = Math.round(Number(f.namedItem('amount').value) * 10 ** fractionDigits(currency));
    if (!Number.isSafeInteger(value) || value < 1) return void ($('#start-error').textContent = t('start.amount-invalid'));
    Object.assign(body, { amount: value, currency });
  }
  const kind = f.namedItem('method').value;
  if (kind === 'installments') {
    const count = Number(f.namedItem('count').value);
    if (!Number.isInteger(count) || count < 2 || count > 99) return void ($('#start-error').textContent = t('start.count-invalid'));
    body.method = { kind, count };
  } else if (kind) body.method = { kind };
  const member = f.namedItem('memberId').value.trim();
  if (op === 'store' && member) body.memberId = member;
  busy = true;
  startKey = body.idempotencyKey;
  $('#start-submit').disabled = true;
  try {
    const p = await api('POST', `/v1/calls/${encodeURIComponent(selectedCall)}/payments`, body);
    startKey = null;
    $('#start-error').textContent = '';
    // the stream may have told us of it already: keep what it said
    if (!payment || payment.id !== p.id) {
      payment = { id: p.id, callId: p.callId, status: p.status, amount: p.amount || null, fieldNames: p.fields || null, fields: {}, brand: null, last4: null, result: null, reason: null, error: null };
      for (const [step, x] of Object.entries(p.progress || {})) payment.fields[step] = { entered: x.entered, expected: x.expected, valid: x.valid };
    } else {
      payment.fieldNames = p.fields || payment.fieldNames;
      payment.amount = p.amount || payment.amount;
    }
    toldParent = '';
    store.set(sessionStorage, KEY.payment, p.id);
  } catch (e) {
    if (e.status !== undefined) startKey = null; // the server answered: that key is spent
    $('#start-error').textContent = e.code && known(`refused.${e.code.replace(/_/g, '-')}`) ? t(`refused.${e.code.replace(/_/g, '-')}`) : say('start', e);
  } finally {
    busy = false;
    $('#start-submit').disabled = false;
    render();
  }
});

for (const button of document.querySelectorAll('.recapture')) {
  button.addEventListener('click', () => update({ capture: button.closest('.field').dataset.field }, button));
}
$('#complete').addEventListener('click', (ev) => update({ status: 'complete' }, ev.currentTarget));
$('#cancel').addEventListener('click', (ev) => update({ status: 'cancel' }, ev.currentTarget));

async function update(body, button) {
  if (!payment || busy) return;
  busy = true;
  button.disabled = true;
  $('#action-error').textContent = '';
  try {
    await api('POST', `/v1/payments/${encodeURIComponent(payment.id)}`, body);
  } catch (e) {
    $('#action-error').textContent = say('action', e);
  } finally {
    busy = false;
    button.disabled = false;
    render();
  }
}

// ---- the event stream ----------------------------------------------------------------------

/** Opens the stream, resuming after the last event seen (a refresh or a drop misses nothing). */
function connect() {
  if (!me || (socket && socket.readyState <= WebSocket.OPEN)) return;
  clearTimeout(retryTimer);
  retryTimer = null;
  const last = store.get(sessionStorage, KEY.lastEvent);
  const after = /^\d+$/.test(last || '') ? `?after=${last}` : '';
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/events${after}`);
  socket = ws;
  ws.addEventListener('open', () => {
    retryMs = RETRY_MIN_MS;
    $('#offline').hidden = true;
    // a first stream carries only what happens from now on: load what happened before it
    requestSync().catch(() => undefined);
  });
  ws.addEventListener('message', (m) => {
    let e;
    try {
      e = JSON.parse(m.data);
    } catch {
      return;
    }
    if (!e || typeof e.id !== 'number' || typeof e.type !== 'string') return;
    store.set(sessionStorage, KEY.lastEvent, e.id);
    onEvent(e);
  });
  ws.addEventListener('close', () => {
    if (socket !== ws) return;
    socket = null;
    if (!me) return;
    $('#offline').hidden = false;
    retryTimer = setTimeout(reconnect, retryMs);
    retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
  });
}

/** After a drop: still logged in? (a 401 shows the login) then the stream again. */
function reconnect() {
  retryTimer = null;
  api('GET', '/v1/auth/me')
    .then(() => connect())
    .catch((e) => {
      if (me && e.status !== 401) {
        retryTimer = setTimeout(reconnect, retryMs);
        retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
      }
    });
}

function disconnect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  const ws = socket;
  socket = null;
  if (ws) ws.close();
  held.length = 0;
}

function onEvent(e) {
  if (e.type === 'call.assigned' || e.type === 'call.started' || e.type === 'call.ended') {
    if (e.type === 'call.ended' && e.callId === selectedCall) selectedEnded = true;
    if (e.type === 'call.assigned' && (!selectedCall || (selectedEnded && !(payment && RUNNING.includes(payment.status))))) select(e.callId);
    requestSync().catch(() => undefined);
    return;
  }
  if (!e.paymentId) return;
  if (holds > 0) held.push(e);
  else applyPayment(e);
  render();
}

/** Folds one payment event into the payment shown. */
function applyPayment(e) {
  const d = e.data || {};
  if (e.type === 'payment.started' && e.callId === selectedCall && (!payment || payment.id !== e.paymentId)) {
    payment = { id: e.paymentId, callId: e.callId, status: 'capturing', amount: d.amount || null, fieldNames: null, fields: {}, brand: null, last4: null, result: null, reason: null, error: null };
    toldParent = '';
    store.set(sessionStorage, KEY.payment, e.paymentId);
    // someone else started it: its record says which fields it captures
    holding(() => loadPayment(e.paymentId)).catch(() => undefined);
  }
  if (!payment || payment.id !== e.paymentId || FINAL.includes(payment.status)) return;
  switch (e.type) {
    case 'capture.progress':
      payment.fields[d.field] = { entered: d.entered, expected: d.expected, valid: d.valid };
      if (d.field === 'payment-card-number') {
        if (d.entered === 0) payment.last4 = null;
        if (d.brand) payment.brand = d.brand;
        const four = lastFour(d.masked);
        if (four && d.valid) payment.last4 = four;
      }
      // the caller is keying the field again: the error was heard
      if (payment.error && payment.error.field === d.field && (d.entered > 0 || d.valid)) payment.error = null;
      if (payment.status === 'ready') payment.status = 'capturing';
      break;
    case 'capture.error':
      payment.error = { field: d.field, error: d.error, attemptsLeft: d.attemptsLeft };
      break;
    case 'payment.ready':
      payment.status = 'ready';
      payment.error = null;
      break;
    case 'payment.authorizing':
      payment.status = 'authorizing';
      break;
    case 'payment.completed':
      payment.status = statusOf('approved', d.result);
      payment.result = d.result || null;
      if (d.result && d.result.brand) payment.brand = d.result.brand;
      if (d.result && lastFour(d.result.last4)) payment.last4 = lastFour(d.result.last4);
      break;
    case 'payment.failed':
      payment.status = d.result ? (d.result.status === 'declined' ? 'declined' : 'error') : 'failed';
      payment.result = d.result || null;
      payment.reason = (d.result && d.result.reason) || d.reason || null;
      break;
    case 'payment.cancelled':
      payment.status = 'cancelled';
      break;
    case 'payment.refused':
      payment.status = 'refused';
      payment.reason = d.reason || null;
      break;
  }
}

// ---- the CRM around us ---------------------------------------------------------------------

/** Tells the page's parent (a CRM) how the payment stands — only to an origin hushpay allows. */
function tellParent() {
  if (!parentOrigin || !payment) return;
  const r = payment.result || {};
  const message = { type: 'hushpay.payment', paymentId: payment.id, callId: payment.callId, status: payment.status, brand: payment.brand, last4: payment.last4, approvalNumber: r.approvalNumber || null };
  const said = JSON.stringify(message);
  if (said === toldParent) return;
  toldParent = said;
  window.parent.postMessage(message, parentOrigin);
}

/** In a frame: the parent's origin (asked for, or as the browser reports it) if it is one allowed. */
async function setupParent() {
  if (window.parent === window) return;
  const ancestors = location.ancestorOrigins;
  const wanted = params.get('parentOrigin') || (ancestors && ancestors.length > 0 ? ancestors[0] : null);
  if (!wanted) return;
  const config = await fetch('/v1/page-config', { credentials: 'same-origin' })
    .then((r) => (r.ok ? r.json() : null))
    .catch(() => null);
  const allowed = config && Array.isArray(config.frameAncestors) ? config.frameAncestors : [];
  if (!allowed.includes(wanted)) return;
  parentOrigin = wanted;
  window.addEventListener('message', (ev) => {
    if (ev.origin !== parentOrigin || ev.source !== window.parent) return;
    const m = ev.data;
    if (!m || typeof m !== 'object' || m.type !== 'hushpay.claim' || typeof m.callId !== 'string' || !me) return;
    claim(m.callId)
      .then(() => {
        $('#claim-error').textContent = '';
        return requestSync();
      })
      .catch((e) => ($('#claim-error').textContent = say('claim', e)));
  });
  window.parent.postMessage({ type: 'hushpay.ready' }, parentOrigin);
  tellParent();
}

// ---- drawing -------------------------------------------------------------------------------

function time(iso) {
  const d = iso ? new Date(iso) : null;
  return d && !Number.isNaN(d.getTime()) ? d.toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' }) : '';
}

function renderCalls() {
  const list = $('#calls');
  list.replaceChildren();
  for (const c of calls) {
    const li = document.createElement('li');
    li.className = c.id === selectedCall ? 'selected' : '';
    const id = document.createElement('code');
    id.textContent = c.id;
    const label = document.createElement('span');
    label.textContent = `${c.caller || '—'} → ${c.called || '—'}  ${time(c.startedAt)}`;
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'link';
    open.textContent = t('calls.open');
    open.disabled = c.id === selectedCall;
    open.addEventListener('click', () => {
      select(c.id);
      selectedView = c;
      render();
      requestSync().catch(() => undefined);
    });
    li.append(id, label, open);
    list.append(li);
  }
  $('#no-calls').hidden = calls.length > 0;
}

function renderField(row, running) {
  const step = row.dataset.field;
  const f = payment.fields[step];
  row.hidden = !f && !(payment.fieldNames && payment.fieldNames.includes(step));
  const entered = f ? f.entered : 0;
  const expected = f ? f.expected : 0;
  const meter = row.querySelector('progress');
  meter.max = Math.max(1, expected);
  meter.value = Math.min(entered, meter.max);
  row.querySelector('.count').textContent = f ? `${entered} / ${expected}` : '';
  const valid = Boolean(f && f.valid === true);
  row.classList.toggle('valid', valid);
  row.querySelector('.tick').hidden = !valid;
  if (step === 'payment-card-number') {
    row.querySelector('.brand-name').textContent = payment.brand ? BRANDS[payment.brand] || payment.brand : '';
    row.querySelector('.last4').textContent = payment.last4 ? `•••• ${payment.last4}` : '';
  }
  const again = row.querySelector('.recapture');
  if (again) {
    again.hidden = !running || payment.status === 'authorizing' || selectedEnded;
    again.disabled = busy;
  }
}

function renderResult() {
  const result = $('#result');
  const r = payment.result || {};
  result.className = payment.status === 'approved' ? 'ok' : 'bad';
  if (payment.status === 'approved') {
    const card = [payment.brand ? BRANDS[payment.brand] || payment.brand : '', payment.last4 ? `•••• ${payment.last4}` : ''].filter(Boolean).join(' ');
    result.textContent = `${t('status.approved')} — ${t('approval')} ${r.approvalNumber || '—'}${card ? ` · ${card}` : ''}`;
  } else if (payment.status === 'cancelled') {
    result.textContent = t('status.cancelled');
  } else if (payment.status === 'refused') {
    const key = `refused.${payment.reason}`;
    result.textContent = `${t('status.refused')} — ${known(key) ? t(key) : t('why.unknown')}`;
  } else {
    const key = `why.${payment.reason}`;
    result.textContent = `${t(`status.${payment.status}`)} — ${known(key) ? t(key) : t('why.unknown')}`;
  }
}

function render() {
  if (!me) return;
  renderCalls();
  const view = calls.find((c) => c.id === selectedCall) || (selectedView && selectedView.id === selectedCall ? selectedView : null);
  $('#payment').hidden = !view;
  if (!view) return;
  $('#payment-call').textContent = view.id;
  $('#call-ended').hidden = !selectedEnded;
  const running = Boolean(payment && RUNNING.includes(payment.status));
  $('#start').hidden = running || selectedEnded;
  $('#start-submit').disabled = busy;
  $('#progress').hidden = !payment;
  if (!payment) return;
  $('#status').textContent = t(`status.${payment.status}`);
  $('#amount').textContent = formatAmount(payment.amount);
  for (const row of document.querySelectorAll('.field')) renderField(row, running);
  const err = payment.error;
  $('#capture-error').textContent = err && running ? `${t(FIELD_TEXT[err.field] || err.field)}: ${known(`err.${err.error}`) ? t(`err.${err.error}`) : t('failed')} (${t('attempts')} ${err.attemptsLeft})` : '';
  $('#actions').hidden = !running || selectedEnded;
  $('#complete').disabled = busy || payment.status !== 'ready';
  $('#cancel').hidden = payment.status === 'authorizing';
  $('#cancel').disabled = busy;
  $('#result').hidden = running;
  if (!running) renderResult();
  tellParent();
}

// ---- start ---------------------------------------------------------------------------------

translate();
setupParent().catch(() => undefined);
fetch('/v1/auth/me', { credentials: 'same-origin', cache: 'no-store' })
  .then((res) => (res.ok ? res.json() : null))
  .then((r) => (r && r.user ? showDesk(r.user, r.csrfToken) : showLogin()))
  .catch(() => showLogin());
