/**
 * The agent page in headless Chromium, on a hushpay with real SIP calls from sip-sim: an agent
 * logs in through the form, takes a call by its id, starts a payment, watches the caller key
 * the card (counts, brand, last four and ticks), completes it and reads the approval number; a
 * reload in the middle of the card resumes where it was; the page works in a CRM's frame,
 * talking only to the allowed origin; and at every step nothing the page showed, stored or
 * received holds a card digit beyond the last four, and the browser reports no CSP violation.
 */

import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Call } from '../../src/calls/call.ts';
import { systemClock } from '../../src/clock.ts';
import { buildApp } from '../../src/desktop/app.ts';
import { type CallSummary, SimCaller } from '../../sip-sim/index.ts';
import { CHROMIUM, PageWatch, cardDataIn, isShown, poll, waitText } from './page-support.ts';
import { type DeskWorld, PASSWORD, startDeskWorld } from './support.ts';

const APPROVED = { number: '4111111111111111', expiry: '1230', code: '123' };
/** The sandbox declines this card (card_declined). */
const DECLINED = { number: '4000000000000002', expiry: '1230', code: '123' };
const HAVE_CHROMIUM = existsSync(CHROMIUM);

describe('the card-data search the page tests rely on', () => {
  it('finds each form of card data, and not ids, times or amounts that merely contain the digits', () => {
    for (const [text, what] of [
      ['card 4111111111111111', 'card number'],
      ['<b>411111111111</b>', 'first twelve digits'],
      ['bin 411111', 'first six digits'],
      ['{"expiry":"1230"}', 'expiry'],
      ['expires 12/30', 'expiry'],
      ['{"security-code":"123"}', 'security code'],
      ['code: 123', 'security code'],
    ] as const) {
      expect(cardDataIn(text, APPROVED), text).toContain(what);
    }
    expect(cardDataIn('pay_0a1230bc123de hp_x123y "at":"2026-01-02T03:04:05.123Z" ¥1,200 12:30 •••• 1111', APPROVED)).toEqual([]);
  });
});

describe.skipIf(!HAVE_CHROMIUM)(HAVE_CHROMIUM ? 'the agent page in Chromium' : `the agent page in Chromium — SKIPPED: no browser at ${CHROMIUM} (apt-get install chromium)`, () => {
  let world: DeskWorld;
  let caller: SimCaller;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const calls: Promise<CallSummary>[] = [];

  beforeAll(async () => {
    [world, caller, browser] = await Promise.all([startDeskWorld(), SimCaller.start(), chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })]);
  }, 30_000);
  afterEach(async () => {
    for (const c of contexts.splice(0)) await c.close();
    // a test that failed half way leaves no call behind on the desks of the next
    await Promise.all([...world.hushpay.b2bua.calls.values()].map((c) => c.close({ reason: 'agent' })));
  });
  afterAll(async () => {
    await browser?.close();
    await caller?.close();
    await Promise.allSettled(calls);
    await world?.close();
  });

  async function openPage(url = `${world.base}/`): Promise<{ page: Page; watch: PageWatch }> {
    const context = await browser.newContext({ locale: 'en-US', timezoneId: 'Asia/Tokyo' });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    const watch = await PageWatch.attach(page);
    await page.goto(url);
    return { page, watch };
  }

  async function logIn(page: Page, username: string): Promise<void> {
    await page.locator('#login input[name=username]').fill(username);
    await page.locator('#login input[name=password]').fill(PASSWORD);
    await page.locator('#login button[type=submit]').click();
    await page.locator('#desk').waitFor({ state: 'visible' });
  }

  /** Places a call to 100 that keys `digits` after `afterMs`; resolves with hushpay's call once connected. */
  async function placeCall(digits: string, options: { afterMs: number; gapMs: number }): Promise<Call> {
    const arrived = new Promise<Call>((resolve) => {
      const on = (call: Call): void => {
        if (call.calledNumber !== '100') return;
        world.hushpay.b2bua.off('call', on);
        call.on('active', () => resolve(call));
      };
      world.hushpay.b2bua.on('call', on);
    });
    calls.push(caller.placeCall({ to: `sip:100@127.0.0.1:${world.hushpay.sipPort}`, fromUser: '0312345678', digits, dtmf: 'rfc4733', afterMs: options.afterMs, toneMs: 80, gapMs: options.gapMs, hangupAfterMs: 30_000 }));
    return arrived;
  }

  async function claimAndStart(page: Page, callId: string, amount: string): Promise<void> {
    await page.locator('#claim input[name=callId]').fill(callId);
    await page.locator('#claim button[type=submit]').click();
    await waitText(page, '#payment-call', new RegExp(`^${callId}$`));
    await page.locator('#start input[name=amount]').fill(amount);
    await page.locator('#start-submit').click();
    await waitText(page, '#status', /^The caller is keying/);
  }

  /** Everything the page showed, stored and received so far: no card data, no CSP complaint, no error. */
  async function expectClean(watch: PageWatch, card: typeof APPROVED): Promise<void> {
    await watch.collect();
    expect(watch.shown.length).toBeGreaterThan(0);
    for (const text of watch.shown) expect(cardDataIn(text, card), `shown: ${text.slice(0, 200)}`).toEqual([]);
    // a frame's id is a counter, not card data: search the rest
    for (const e of watch.events()) expect(cardDataIn(JSON.stringify({ ...e, id: 0 }), card), `event ${e.type}`).toEqual([]);
    for (const body of watch.responses) expect(cardDataIn(body, card), `response: ${body.slice(0, 200)}`).toEqual([]);
    expect(watch.cspErrors()).toEqual([]);
    expect(watch.unexpectedErrors()).toEqual([]);
  }

  const field = (name: string, part: string): string => `.field[data-field="${name}"] ${part}`;

  it('an agent logs in, takes a call by its id, watches the card keyed — counts, brand, last four, ticks — and completes it approved; in English and Japanese', async () => {
    const { page, watch } = await openPage();
    await waitText(page, '#login h1', /^Log in$/);
    await logIn(page, 'aiko');
    await waitText(page, '#who', /^aiko \(agent\)$/);

    const call = await placeCall(APPROVED.number + APPROVED.expiry + APPROVED.code, { afterMs: 3_000, gapMs: 80 });
    await claimAndStart(page, call.id, '1200');
    await waitText(page, '#calls li code', new RegExp(`^${call.id}$`));
    await waitText(page, '#amount', /^¥1,200$/);
    await page.locator(field('payment-card-number', '.count')).waitFor({ state: 'visible' });
    // nothing valid yet: no ticks, no last four
    expect(await isShown(page, field('expiration-date', '.tick'))).toBe(false);

    // the count rises key by key
    await waitText(page, field('payment-card-number', '.count'), /^([1-9]|1[0-5]) \/ 16$/);
    // while the number is incomplete there is no last four (count and last four read at one instant)
    const partial = JSON.parse((await page.evaluate(`JSON.stringify([...document.querySelectorAll('${field('payment-card-number', '.count, ')}${field('payment-card-number', '.last4')}')].map((el) => el.textContent))`)) as string) as string[];
    expect(partial).toHaveLength(2);
    if (partial[0] !== '16 / 16') expect(partial[1]).toBe('');
    await expectClean(watch, APPROVED);
    await waitText(page, field('payment-card-number', '.count'), /^16 \/ 16$/);
    await waitText(page, field('payment-card-number', '.brand-name'), /^Visa$/);
    await waitText(page, field('payment-card-number', '.last4'), /^•••• 1111$/);
    expect(await isShown(page, field('payment-card-number', '.tick'))).toBe(true);
    await waitText(page, field('expiration-date', '.count'), /^4 \/ 4$/);
    await waitText(page, field('security-code', '.count'), /^3 \/ 3$/);
    await waitText(page, '#status', /^Ready: complete the payment$/);
    expect(await isShown(page, field('expiration-date', '.tick'))).toBe(true);
    expect(await isShown(page, field('security-code', '.tick'))).toBe(true);
    expect(await page.locator('#complete').isEnabled()).toBe(true);
    await expectClean(watch, APPROVED);

    await page.locator('#complete').click();
    const shown = await waitText(page, '#result', /^Approved — Approval number \d{6} · Visa •••• 1111$/);
    expect(await isShown(page, '#actions')).toBe(false);
    const paymentId = watch.events().find((e) => e.type === 'payment.started' && e.callId === call.id)?.paymentId;
    expect(paymentId).toMatch(/^pay_/);
    const record = world.hushpay.store.payments.get(paymentId!);
    expect(record).toMatchObject({ status: 'approved', agentUserId: world.users.agentA, amount: { value: 1200, currency: 'JPY' } });
    expect(shown).toContain(`Approval number ${record!.result!.approvalNumber}`);

    // Japanese, and back
    await page.locator('#lang').click();
    await waitText(page, '#result', /^承認されました — 承認番号 \d{6} · Visa •••• 1111$/);
    await waitText(page, field('payment-card-number', '.name'), /^カード番号$/);
    await waitText(page, '#calls-card h2', /^担当の通話$/);
    await waitText(page, '#lang', /^English$/);
    expect(await page.evaluate('document.documentElement.lang')).toBe('ja');

    // the caller hangs up: the result stays, with a note; and survives a refresh, still in Japanese
    await call.close({ reason: 'agent' });
    await waitText(page, '#call-ended', /^通話が終了しました$/);
    await waitText(page, '#result', /^承認されました/);
    await expectClean(watch, APPROVED);
    await page.reload();
    await waitText(page, '#result', /^承認されました — 承認番号 \d{6} · Visa •••• 1111$/);
    await waitText(page, '#call-ended', /^通話が終了しました$/);
    await page.locator('#lang').click();
    await waitText(page, '#result', /^Approved — Approval number/);
    await waitText(page, field('expiration-date', '.name'), /^Expiry$/);

    // what the page keeps: the language, and ids — nothing else
    const stored = (await page.evaluate('JSON.stringify({ local: Object.keys(localStorage).sort(), session: { ...sessionStorage } })')) as string;
    const { local, session } = JSON.parse(stored) as { local: string[]; session: Record<string, string> };
    expect(local).toEqual(['hp_lang']);
    expect(Object.keys(session).sort()).toEqual(['hp_call', 'hp_last_event', 'hp_payment']);
    expect(session).toMatchObject({ hp_call: call.id, hp_payment: paymentId, hp_last_event: expect.stringMatching(/^\d+$/) });
    await expectClean(watch, APPROVED);
    // the call's end did not turn the charged card into "cancelled", not even for a moment
    expect(watch.shown.filter((text) => /Cancelled|取り消しました/.test(text))).toEqual([]);
  }, 30_000);

  it('a reload in the middle of the card resumes: the count so far at once, then the later keys; the code asked for again; then a decline in plain words', async () => {
    const { page, watch } = await openPage();
    await logIn(page, 'aiko');
    // after the code, keys that are no payment keys (A: ignored) give the agent time to ask for the code again
    const call = await placeCall(`${DECLINED.number}${DECLINED.expiry}${DECLINED.code}${'A'.repeat(12)}${DECLINED.code}`, { afterMs: 3_000, gapMs: 160 });
    await claimAndStart(page, call.id, '3000');

    const before = await waitText(page, field('payment-card-number', '.count'), /^([4-9]|1[0-2]) \/ 16$/);
    const countBefore = Number(before.split(' ')[0]);
    const lastSeen = Number(await page.evaluate("sessionStorage.getItem('hp_last_event')"));
    expect(lastSeen).toBeGreaterThan(0);
    await expectClean(watch, DECLINED);
    await page.reload();

    // at once, from the record: the count it had (or more), not zero
    const after = await waitText(page, field('payment-card-number', '.count'), /^\d+ \/ 16$/);
    expect(Number(after.split(' ')[0])).toBeGreaterThanOrEqual(countBefore);
    // the stream came back after the last event the page had, and the later keys arrive
    expect(watch.sockets).toHaveLength(2);
    const resumedAfter = Number(/\?after=(\d+)$/.exec(watch.sockets[1]!)?.[1]);
    expect(resumedAfter).toBeGreaterThanOrEqual(lastSeen);
    await waitText(page, field('payment-card-number', '.count'), /^16 \/ 16$/);
    await waitText(page, field('payment-card-number', '.last4'), /^•••• 0002$/);
    await waitText(page, '#status', /^Ready: complete the payment$/);
    expect(await isShown(page, field('expiration-date', '.tick'))).toBe(true);
    expect(await isShown(page, field('security-code', '.tick'))).toBe(true);

    // nothing missed: every event of this call after the resume point came on the new stream, none twice
    const resumed = watch.events(watch.sockets[1]);
    const stored = world.hushpay.store.events.after(resumedAfter, { agentUserId: world.users.agentA, limit: 1000 }).filter((e) => e.callId === call.id && e.id <= resumed.at(-1)!.id);
    expect(stored.length).toBeGreaterThan(0);
    expect(resumed.filter((e) => e.callId === call.id).map((e) => e.id)).toEqual(stored.map((e) => e.id));
    expect(resumed.every((e) => e.id > resumedAfter)).toBe(true);

    // ask the caller for the code again: it empties, loses its tick, and fills again
    await page.locator(field('security-code', '.recapture')).click();
    await waitText(page, field('security-code', '.count'), /^0 \/ 3$/);
    await waitText(page, '#status', /^The caller is keying/);
    expect(await isShown(page, field('security-code', '.tick'))).toBe(false);
    expect(await page.locator('#complete').isEnabled()).toBe(false);
    // a refresh now still shows a payment waiting for the code, not one ready to complete
    await page.reload();
    const [codeCount, status, completeDisabled] = await poll<[string, string, boolean]>(
      page,
      `(() => { const c = document.querySelector('${field('security-code', '.count')}').textContent; const s = document.querySelector('#status').textContent; return c && s ? [c, s, document.querySelector('#complete').disabled] : null; })()`,
    );
    if (codeCount !== '3 / 3') expect([status, completeDisabled]).toEqual(['The caller is keying…', true]);
    await waitText(page, field('security-code', '.count'), /^3 \/ 3$/);
    await waitText(page, '#status', /^Ready: complete the payment$/);
    expect(await isShown(page, field('security-code', '.tick'))).toBe(true);

    await page.locator('#complete').click();
    await waitText(page, '#result', /^Declined — The card was declined$/);
    await page.locator('#start-submit').waitFor({ state: 'visible' });
    await call.close({ reason: 'agent' });
    await waitText(page, '#call-ended', /^The call has ended$/);
    await expectClean(watch, DECLINED);
  }, 30_000);

  it('in a CRM’s frame it talks to the allowed parent origin only, and takes a call the parent names', async () => {
    // a parent page on another origin (another port), a sibling frame of a third, and a second
    // listener of the same hushpay that allows the parent
    const listen = async (html: () => string): Promise<{ server: Server; origin: string }> => {
      const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html()));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    };
    const other = await listen(() => `<script>window.onload = () => parent.frames[0].postMessage({ type: 'hushpay.claim', callId: location.hash.slice(1) }, '*');</script>`);
    let framed = '';
    const parent = await listen(
      () => `<!doctype html><body><iframe id="hp" src="${framed}" width="900" height="700"></iframe><iframe id="other"></iframe>
<script>window.got = []; window.addEventListener('message', (e) => window.got.push({ origin: e.origin, data: e.data }));</script></body>`,
    );
    const hp = world.hushpay;
    const app = await buildApp({ desk: hp.desk, auth: hp.store, metrics: hp.metrics, clock: systemClock, logger: hp.logger, frameAncestors: [parent.origin] });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      framed = `${base}/?parentOrigin=${encodeURIComponent(parent.origin)}`;
      const { page, watch } = await openPage(`${parent.origin}/`);
      const frame = page.frameLocator('#hp');
      await frame.locator('#login input[name=username]').fill('ben');
      await frame.locator('#login input[name=password]').fill(PASSWORD);
      await frame.locator('#login button[type=submit]').click();
      await frame.locator('#desk').waitFor({ state: 'visible' });

      const call = await placeCall('', { afterMs: 500, gapMs: 80 });
      // a sibling frame of another origin names the call: ignored
      const loaded = page.waitForEvent('framenavigated', { predicate: (f) => f.url().startsWith(other.origin) });
      await page.evaluate(`document.getElementById('other').src = ${JSON.stringify(`${other.origin}/#${call.id}`)}`);
      await (await loaded).waitForLoadState('load');
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await frame.locator('#payment').isVisible()).toBe(false);
      expect(hp.store.audit.list({}).filter((e) => e.action === 'call.assign' && e.resource === `call:${call.id}`)).toEqual([]);
      // the parent names it: taken
      await page.evaluate(`document.getElementById('hp').contentWindow.postMessage({ type: 'hushpay.claim', callId: ${JSON.stringify(call.id)} }, ${JSON.stringify(base)})`);
      await frame.locator('#payment-call').filter({ hasText: call.id }).waitFor();
      await frame.locator('#start input[name=amount]').fill('500');
      await frame.locator('#start-submit').click();
      await frame.locator('#status').filter({ hasText: 'The caller is keying' }).waitFor();
      await frame.locator('#cancel').click();
      await frame.locator('#result').filter({ hasText: /^Cancelled$/ }).waitFor();

      const got = JSON.parse((await page.evaluate('JSON.stringify(window.got)')) as string) as { origin: string; data: Record<string, unknown> }[];
      expect(got.length).toBeGreaterThan(0);
      // every message came from hushpay's frame; the sibling's message did not reach the parent
      expect(new Set(got.map((m) => m.origin))).toEqual(new Set([base]));
      expect(got.map((m) => m.data['type'])).toContain('hushpay.ready');
      const statuses = got.filter((m) => m.data['type'] === 'hushpay.payment').map((m) => m.data['status']);
      expect(statuses).toContain('capturing');
      expect(statuses.at(-1)).toBe('cancelled');
      expect(got.find((m) => m.data['status'] === 'cancelled')!.data).toMatchObject({ callId: call.id, paymentId: expect.stringMatching(/^pay_/) });
      await call.close({ reason: 'agent' });
      // and it never posts to any origin but the one it checked ('*' would reach whoever framed it)
      const source = readFileSync(new URL('../../src/desktop/page/app.js', import.meta.url), 'utf8');
      const posts = source.match(/\.postMessage\([^;]*\);/g) ?? [];
      expect(posts.length).toBeGreaterThan(0);
      for (const post of posts) expect(post).toMatch(/, parentOrigin\);$/);
      expect(watch.cspErrors()).toEqual([]);
      expect(watch.unexpectedErrors()).toEqual([]);
    } finally {
      await app.close();
      parent.server.close();
      other.server.close();
    }
  }, 20_000);

  it('holds its Content Security Policy: the page needs nothing inline, and an injected inline script is refused', async () => {
    const { page, watch } = await openPage();
    await logIn(page, 'ben');
    await waitText(page, '#calls-card h2', /^Your calls$/);
    await watch.collect();
    expect(watch.cspErrors()).toEqual([]);
    expect(watch.unexpectedErrors()).toEqual([]);
    // the policy is live: an inline script (as an injection would be) does not run, and is reported
    await page.evaluate(`(() => { const s = document.createElement('script'); s.textContent = 'window.__inlineRan = true'; document.head.append(s); })()`);
    await poll(page, 'window.__hpTest.violations.length > 0', 5_000);
    expect(await page.evaluate('window.__inlineRan === true')).toBe(false);
    await watch.collect();
    expect(watch.cspErrors().join('\n')).toMatch(/script-src/);
  }, 15_000);
});
