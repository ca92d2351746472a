/**
 * `npm run demo` as the README shows it: the whole call by itself, ending approved, with no
 * digit in what the agent heard or in the recording, and no card digit in what it printed.
 */

import { describe, expect, it } from 'vitest';
import { demoKeys, runDemo } from '../../src/tools/demo.ts';

describe('hushpay demo', () => {
  it('places a whole payment call by itself and tells the story without a card digit', async () => {
    const lines: string[] = [];
    const report = await runDemo({ say: (line) => lines.push(line), dtmf: 'rfc4733' });
    expect(report.result).toMatchObject({ status: 'approved', brand: 'visa', last4: '1111', token: expect.stringMatching(/^sbx_tok_/) });
    expect([report.agentHeardDigits, report.recordingDigits]).toEqual([0, 0]);
    const story = lines.join('\n');
    expect(story).toMatch(/APPROVED: approval number \d{6}/);
    expect(story).toContain('the caller pressed * to take back a wrong key');
    expect(story).toContain('card number: 16 of 16 ✓');
    // the keys it pressed hold the card; the story holds none of it
    const card = demoKeys().replace(/9\*/, '').slice(0, 16);
    for (const secret of [card, card.slice(0, 6), card.slice(0, 12)]) expect(story).not.toContain(secret);
  }, 60_000);
});
