import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as errors from '../src/errors.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const sources = ['../src/errors.ts', '../src/tools/failure.ts', '../src/store/errors.ts', '../src/webhooks/errors.ts'].map((p) => readFileSync(new URL(p, import.meta.url), 'utf8'));

describe('error codes', () => {
  const codes = [...new Set(sources.flatMap((s) => [...s.matchAll(/'(HP_ERR_[A-Z0-9_]+)'/g)].map((m) => m[1]!)))];

  it('are found in the sources', () => {
    expect(codes.length).toBeGreaterThanOrEqual(10);
  });

  it.each(codes)('%s is documented in README.md', (code) => {
    expect(readme).toContain(code);
  });

  it('are unique to their class and carry no payload in their messages', () => {
    const seen = new Map<string, string>();
    for (const [name, value] of Object.entries(errors)) {
      if (typeof value !== 'function' || !(value.prototype instanceof errors.HushpayError)) continue;
      const code = /code = ["'](HP_ERR_[A-Z_]+)["']/.exec(value.toString())?.[1];
      if (!code) continue; // abstract bases
      expect(seen.get(code), `${code} used by ${seen.get(code)} and ${name}`).toBeUndefined();
      seen.set(code, name);
    }
    expect(seen.size).toBeGreaterThanOrEqual(10);
    // messages carry numbers, not bytes: a parse error quotes lengths only
    const err = new errors.RtpHeaderTooShortError(7);
    expect(err.message).toBe('RTP packet has 7 bytes, fewer than the 12-byte fixed header');
    expect(err.code).toBe('HP_ERR_RTP_HEADER_TOO_SHORT');
  });
});
