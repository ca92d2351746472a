/**
 * SIPp (Debian sip-tester) as a real peer on both sides of hushpay.
 */

import dgram from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRtp } from '../../src/media/rtp.ts';
import { type TestHushpay, freePort, run, startTestHushpay } from '../support/hushpay.ts';

const SCENARIOS = new URL('../fixtures/sipp/', import.meta.url).pathname;
const SIPP_COMMON = ['-i', '127.0.0.1', '-nostdin', '-timeout', '25s', '-timeout_error', '-max_recv_loops', '1000'];

let hushpay: TestHushpay | undefined;
afterEach(async () => {
  await hushpay?.close();
  hushpay = undefined;
});

describe('SIPp through hushpay', () => {
  it('carries SIPp uac calls to a SIPp uas and back (5 calls)', async () => {
    const pbxPort = await freePort();
    hushpay = await startTestHushpay({ pbx: `sip:agents@127.0.0.1:${pbxPort}` });
    const uas = run('sipp', ['-sn', 'uas', '-p', String(pbxPort), '-m', '5', ...SIPP_COMMON], { timeoutMs: 40_000 });
    await new Promise((r) => setTimeout(r, 300));
    const uac = await run('sipp', [`127.0.0.1:${hushpay.sipPort}`, '-sn', 'uac', '-s', '100', '-m', '5', '-r', '5', '-p', String(await freePort()), ...SIPP_COMMON], { timeoutMs: 40_000 });
    const server = await uas;
    expect(uac.code, uac.stdout.slice(-1500)).toBe(0);
    expect(server.code).toBe(0);
    expect(hushpay.b2bua.calls.size).toBe(0);
  }, 60_000);

  it('carries a SIPp uac call over TCP to a SIPp uas over UDP', async () => {
    const pbxPort = await freePort();
    hushpay = await startTestHushpay({ pbx: `sip:agents@127.0.0.1:${pbxPort}` });
    const uas = run('sipp', ['-sn', 'uas', '-p', String(pbxPort), '-m', '2', ...SIPP_COMMON], { timeoutMs: 40_000 });
    await new Promise((r) => setTimeout(r, 300));
    const uac = await run('sipp', [`127.0.0.1:${hushpay.sipPort}`, '-sn', 'uac', '-t', 't1', '-s', '100', '-m', '2', '-r', '2', '-p', String(await freePort()), ...SIPP_COMMON], { timeoutMs: 40_000 });
    const server = await uas;
    expect(uac.code, uac.stdout.slice(-1500)).toBe(0);
    expect(server.code).toBe(0);
  }, 60_000);

  it('never forwards the RFC 4733 events a SIPp caller plays, though the PBX side accepts telephone-event', async () => {
    const pbxPort = await freePort();
    const sink = dgram.createSocket('udp4');
    const mediaPort = await new Promise<number>((resolve) => sink.bind(0, '127.0.0.1', () => resolve(sink.address().port)));
    const byType = new Map<number, number>();
    sink.on('message', (m) => {
      try {
        const p = parseRtp(m);
        byType.set(p.payloadType, (byType.get(p.payloadType) ?? 0) + 1);
      } catch {
        byType.set(-1, (byType.get(-1) ?? 0) + 1);
      }
    });
    const dir = mkdtempSync(join(tmpdir(), 'sipp-'));
    writeFileSync(join(dir, 'media.csv'), `SEQUENTIAL\n${mediaPort};\n`);
    hushpay = await startTestHushpay({ pbx: `sip:agents@127.0.0.1:${pbxPort}` });
    const digits: string[] = [];
    hushpay.b2bua.on('call', (call) => call.on('digit', (d) => digits.push(`${d.digit}:${d.source}`)));
    const uas = run('sipp', ['-sf', join(SCENARIOS, 'pbx-answers-with-events.xml'), '-inf', join(dir, 'media.csv'), '-p', String(pbxPort), '-m', '1', ...SIPP_COMMON], { timeoutMs: 40_000 });
    await new Promise((r) => setTimeout(r, 300));
    const uac = await run('sipp', [`127.0.0.1:${hushpay.sipPort}`, '-sf', join(SCENARIOS, 'caller-rfc4733.xml'), '-s', '100', '-m', '1', '-p', String(await freePort()), '-mp', String(await freePort()), ...SIPP_COMMON], { timeoutMs: 40_000 });
    const server = await uas;
    sink.close();
    expect(uac.code, uac.stdout.slice(-1500)).toBe(0);
    expect(server.code).toBe(0);
    // the PBX got the caller's audio (SIPp plays 2 s of speech before its first key stops it),
    // and not one telephone-event
    expect(byType.get(8) ?? 0).toBeGreaterThanOrEqual(100);
    expect(byType.get(101) ?? 0).toBe(0);
    expect([...byType.keys()]).toEqual([8]);
    // hushpay heard the keys itself
    expect(digits).toEqual(['1:rfc4733', '4:rfc4733', '*:rfc4733', '#:rfc4733']);
  }, 60_000);
});
