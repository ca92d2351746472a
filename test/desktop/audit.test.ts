/**
 * Configuration changes reach the audit log (PCI DSS 10.2.2): each start records the config's
 * hash and whether it changed since the last start; `hushpay audit verify` then checks the chain
 * that the running hushpay wrote.
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { startHushpay } from '../../src/server.ts';
import { freePort, rtpRange, run } from '../support/hushpay.ts';

const HUSHPAY = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const quiet = (): ReturnType<typeof createLogger> => createLogger({ destination: new Writable({ write: (_c, _e, done) => done() }) });

async function startOnce(dataDir: string, ports: { sip: number; rtp: { portMin: number; portMax: number } }, masking: 'flat' | 'noise'): Promise<{ sha256: string; changed: boolean }> {
  const config = validateConfig(
    {
      sip: { host: '127.0.0.1', port: ports.sip },
      media: { host: '127.0.0.1', ...ports.rtp },
      http: { host: '127.0.0.1', port: 0 },
      dataDir,
      tenants: [{ id: 'shop', pbx: 'sip:agents@127.0.0.1:5070', masking: { agent: masking } }],
    },
    {},
  );
  const hushpay = await startHushpay(config, { logger: quiet() });
  try {
    const entry = hushpay.store.audit.list({ action: 'config.load', limit: 1 })[0]!;
    expect(entry).toMatchObject({ actorType: 'system', resource: 'config', outcome: 'success', origin: 'start' });
    return { sha256: String(entry.details['sha256']), changed: entry.details['changed'] === true };
  } finally {
    await hushpay.close();
  }
}

describe('configuration changes in the audit log', () => {
  it('records each start’s config, says when it changed, and the chain verifies', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hushpay-audit-'));
    const ports = { sip: await freePort(), rtp: rtpRange(8) };
    const first = await startOnce(dataDir, ports, 'flat');
    const same = await startOnce(dataDir, ports, 'flat');
    const other = await startOnce(dataDir, ports, 'noise');
    expect(first.changed).toBe(false);
    expect(same).toEqual({ sha256: first.sha256, changed: false });
    expect(other.changed).toBe(true);
    expect(other.sha256).not.toBe(first.sha256);

    const verified = await run(process.execPath, [HUSHPAY, 'audit', 'verify', '--data', dataDir], { timeoutMs: 20_000 });
    expect([verified.code, verified.stdout.trim()]).toEqual([0, 'audit chain ok: 3 entries']);
  }, 30_000);
});
