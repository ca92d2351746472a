/**
 * `hushpay start` as a user runs it: a child process on its embedded defaults (with --pbx and
 * free ports), a call placed through it with the sip-sim CLI, and a clean stop on SIGTERM.
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SimAgent } from '../../sip-sim/index.ts';
import { freePort, run } from '../support/hushpay.ts';

const HUSHPAY = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const SIP_SIM = fileURLToPath(new URL('../../sip-sim/cli.ts', import.meta.url));

describe('hushpay start', () => {
  it('runs on its embedded defaults, carries a call, and stops cleanly on SIGTERM', async () => {
    const agent = await SimAgent.listen({});
    const sipPort = await freePort();
    const httpPort = await freePort();
    const data = mkdtempSync(join(tmpdir(), 'hushpay-start-'));
    const child = spawn(process.execPath, [HUSHPAY, 'start', '--sip', `127.0.0.1:${sipPort}`, '--http', `127.0.0.1:${httpPort}`, '--pbx', agent.uri('agents'), '--data', data], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    try {
      for (let i = 0; i < 100 && !stdout.includes('Ctrl-C stops'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(stdout).toContain('hushpay is running');
      expect(stdout).toContain(`udp:127.0.0.1:${sipPort}`);
      expect(stdout).toContain(`tcp:127.0.0.1:${sipPort}`);
      // the embedded defaults are the demo: the banner's agent login works on the agent page's API
      const login = new RegExp(`Demo agent: log in at http://127\\.0\\.0\\.1:${httpPort} as (\\S+) / (\\S+)`).exec(stdout);
      expect(login, stdout).not.toBeNull();
      const answer = await fetch(`http://127.0.0.1:${httpPort}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: login![1], password: login![2] }) });
      expect(answer.status).toBe(200);
      expect(((await answer.json()) as { user: { tenantId: string } }).user.tenantId).toBe('demo');
      const call = await run(process.execPath, [SIP_SIM, 'caller', '--to', `sip:100@127.0.0.1:${sipPort}`, '--digits', '1234', '--dtmf', 'rfc4733', '--hangup-after-ms', '1500'], { timeoutMs: 20_000 });
      expect(call.code, call.stdout + call.stderr).toBe(0);
      const records = call.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; status?: number });
      expect(records.find((r) => r.event === 'ended')).toMatchObject({ status: 200 });
      // the agent never saw the keys
      const agentSummary = await (await agent.nextCall()).ended;
      expect(agentSummary.digitsReceived).toEqual([]);
    } finally {
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      await agent.close();
    }
  }, 30_000);

  it('refuses a bad config, naming the field, and does not start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hushpay-cfg-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ tenants: [{ id: 'shop', pbx: 'sip:pbx@10.0.0.5', masking: { agent: 'beep' } }] }));
    const result = await run(process.execPath, [HUSHPAY, 'start', '--config', join(dir, 'config.json')], { timeoutMs: 10_000 });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('HP_ERR_CONFIG');
    expect(result.stderr).toContain('tenants[0].masking.agent: must be one of flat, silence, noise');
    const badPbx = await run(process.execPath, [HUSHPAY, 'start', '--sip', `127.0.0.1:${await freePort()}`, '--pbx', 'agents at the PBX'], { timeoutMs: 10_000 });
    expect(badPbx.code).toBe(1);
    expect(badPbx.stderr).toContain('HP_ERR_CONFIG: --pbx');
  });
});
