import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.ts';

describe('the log', () => {
  it('censors a card-data or credential field at any depth and in any case, and keeps the rest', () => {
    const lines: string[] = [];
    const logger = createLogger({ destination: new Writable({ write: (c: Buffer, _e, done) => (lines.push(String(c)), done()) }) });
    logger.info({ c: { d: { e: { f: { cvv: '737' } } } }, headers: { Authorization: 'Bearer hpk_x' }, list: [{ PAN: '4111111111111111' }], Password: 'pw', digitCounts: { inband: 3 } }, 'x');
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({ c: { d: { e: { f: { cvv: '[redacted]' } } } }, headers: { Authorization: '[redacted]' }, list: [{ PAN: '[redacted]' }], Password: '[redacted]', digitCounts: { inband: 3 } });
    for (const secret of ['737', 'hpk_x', '4111111111111111', '"pw"']) expect(lines[0]).not.toContain(secret);
  });
});
