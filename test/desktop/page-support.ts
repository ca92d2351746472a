/**
 * Test support for the agent page in a real browser: what a page showed, stored and received
 * (for the card-data checks), what the browser complained of (CSP, uncaught errors), and small
 * waits on the page's text. The tsconfig has no DOM library, so code that runs in the page is
 * written as strings.
 */

import type { Page } from 'playwright-core';

/** Where Debian's chromium lives; the page tests skip without it. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Runs in the page before its own script: records every text and markup the page ever showed
 * (so a digit shown for one frame and gone the next is still caught) and every CSP violation.
 * It is added through the DevTools protocol, so the page's CSP does not apply to it.
 */
const RECORDER = `(() => {
  const seen = new Set();
  const violations = [];
  Object.defineProperty(window, '__hpTest', { value: { seen, violations } });
  const take = () => {
    const root = document.documentElement;
    if (!root) return;
    seen.add(root.outerHTML);
    if (document.body) seen.add(document.body.innerText);
    for (const el of document.querySelectorAll('input, select, textarea')) if (el.value) seen.add('value=' + el.value);
  };
  new MutationObserver(take).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  document.addEventListener('securitypolicyviolation', (e) => violations.push(e.violatedDirective + ' ' + e.blockedURI));
})()`;

/** Everything a page said, stored and received, gathered as the test goes. */
export class PageWatch {
  readonly page: Page;
  /** The raw text of every WebSocket frame the page received, by socket URL. */
  readonly frames: { url: string; payload: string }[] = [];
  readonly sockets: string[] = [];
  /** Bodies of the API answers the page received. */
  readonly responses: string[] = [];
  /** Console errors and uncaught exceptions. */
  readonly errors: string[] = [];
  /** Texts gathered from the recorder and storage at each `collect()`. */
  readonly shown: string[] = [];
  readonly violations: string[] = [];
  readonly #pending: Promise<void>[] = [];

  private constructor(page: Page) {
    this.page = page;
    page.on('websocket', (ws) => {
      this.sockets.push(ws.url());
      ws.on('framereceived', (f) => this.frames.push({ url: ws.url(), payload: typeof f.payload === 'string' ? f.payload : f.payload.toString('utf8') }));
    });
    page.on('console', (m) => {
      if (m.type() === 'error') this.errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => this.errors.push(`pageerror: ${e.message}`));
    page.on('response', (r) => {
      if (!new URL(r.url()).pathname.startsWith('/v1/')) return;
      this.#pending.push(
        r.text().then(
          (text) => void this.responses.push(text),
          () => undefined,
        ),
      );
    });
  }

  static async attach(page: Page): Promise<PageWatch> {
    await page.addInitScript(RECORDER);
    return new PageWatch(page);
  }

  /** Takes in what the page showed since the last call, and its storage now. */
  async collect(): Promise<void> {
    const got = (await this.page.evaluate(`(() => {
      const t = window.__hpTest;
      const out = { seen: t ? [...t.seen] : [], violations: t ? [...t.violations] : [], local: JSON.stringify({ ...localStorage }), session: JSON.stringify({ ...sessionStorage }),
        html: document.documentElement.outerHTML, text: document.body ? document.body.innerText : '' };
      if (t) t.seen.clear();
      return out;
    })()`)) as { seen: string[]; violations: string[]; local: string; session: string; html: string; text: string };
    this.shown.push(...got.seen, got.local, got.session, got.html, got.text);
    this.violations.push(...got.violations);
    await Promise.all(this.#pending.splice(0));
  }

  /** Console errors other than the expected 401 of the login check before anyone logged in. */
  unexpectedErrors(): string[] {
    return this.errors.filter((e) => !/Failed to load resource: the server responded with a status of 401/.test(e));
  }

  /** Errors the browser logged about the Content Security Policy. */
  cspErrors(): string[] {
    return [...this.errors.filter((e) => /Content Security Policy|Refused to (execute|load|apply|connect)/i.test(e)), ...this.violations];
  }

  /** The payload of each event frame, parsed. */
  events(url?: string): { id: number; type: string; callId: string; paymentId: string | null; data: Record<string, unknown> }[] {
    return this.frames.filter((f) => url === undefined || f.url === url).map((f) => JSON.parse(f.payload) as { id: number; type: string; callId: string; paymentId: string | null; data: Record<string, unknown> });
  }
}

/** ISO timestamps (their milliseconds could read as a code) taken out before a search. */
const stripTimes = (s: string): string => s.replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, '<time>');

/**
 * Which card data a text holds: the number, its first six or twelve digits, the expiry (MMYY or
 * MM/YY) or the security code, each as it would appear (the code as a number of its own, not
 * inside an id). Returns the names of what was found.
 */
export function cardDataIn(text: string, card: { number: string; expiry: string; code: string }): string[] {
  const t = stripTimes(text);
  const found: string[] = [];
  if (t.includes(card.number)) found.push('card number');
  if (t.includes(card.number.slice(0, 12))) found.push('first twelve digits');
  if (t.includes(card.number.slice(0, 6))) found.push('first six digits');
  if (t.includes(card.number.slice(6, 12))) found.push('middle six digits');
  const mm = card.expiry.slice(0, 2);
  const yy = card.expiry.slice(2);
  if (new RegExp(`(?<![\\w])(?:${card.expiry}|${mm}\\s*/\\s*${yy})(?![\\w])`).test(t)) found.push('expiry');
  if (new RegExp(`(?<![\\w])${card.code}(?![\\w])`).test(t)) found.push('security code');
  return found;
}

/**
 * Polls `expression` in the page until it returns something truthy, and returns that. Each poll
 * is one evaluation over the DevTools protocol: Playwright's own waitForFunction compiles its
 * predicate in the page with `new Function`, which the page's CSP (no 'unsafe-eval') refuses.
 */
export async function poll<T>(page: Page, expression: string, timeoutMs = 10_000, intervalMs = 40): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = (await page.evaluate(expression)) as T;
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

const textOf = (selector: string): string => `(() => { const el = document.querySelector(${JSON.stringify(selector)}); return el ? el.textContent : null; })()`;

/** Waits until the element's text matches; fails with what it did show. */
export async function waitText(page: Page, selector: string, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  let text: string | null = null;
  for (;;) {
    text = (await page.evaluate(textOf(selector))) as string | null;
    if (text !== null && pattern.test(text)) return text;
    if (performance.now() > deadline) throw new Error(`${selector} did not come to match ${pattern} within ${timeoutMs} ms; it shows ${JSON.stringify(text)}`);
    await new Promise((resolve) => setTimeout(resolve, 40));
  }
}

/** Whether an element is shown (present, not hidden by itself or an ancestor). */
export async function isShown(page: Page, selector: string): Promise<boolean> {
  return (await page.evaluate(`(() => { const el = document.querySelector(${JSON.stringify(selector)}); return Boolean(el && el.checkVisibility()); })()`)) as boolean;
}
