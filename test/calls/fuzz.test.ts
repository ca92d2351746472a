/**
 * Ten thousand malformed or mutated SIP messages at hushpay's UDP and TCP ports while a call
 * is up: hushpay never crashes, answers 400 where a response can be sent, answers OPTIONS
 * afterwards, and the call carries on to a clean BYE.
 */

import { describe, expect, it } from 'vitest';
import { assertSurvivesFuzz, fuzzMessages } from '../support/sipFuzz.ts';
import { freePort, run, startTestHushpay } from '../support/hushpay.ts';

const SIPP_COMMON = ['-i', '127.0.0.1', '-nostdin', '-timeout', '60s', '-timeout_error', '-max_recv_loops', '1000'];

describe('hushpay under malformed SIP', () => {
  it('survives 10,000 malformed messages on UDP and on TCP while a call is up', async () => {
    const pbxPort = await freePort();
    const hushpay = await startTestHushpay({ pbx: `sip:agents@127.0.0.1:${pbxPort}`, raw: { calls: { max: 50 }, media: { noRtpTimeoutMs: 120_000 } } }); // SIPp's uac sends no RTP
    try {
      const uas = run('sipp', ['-sn', 'uas', '-p', String(pbxPort), '-m', '1', ...SIPP_COMMON], { timeoutMs: 90_000 });
      await new Promise((r) => setTimeout(r, 300));
      // a call held for 25 s: it must end cleanly after the storm
      const uac = run('sipp', [`127.0.0.1:${hushpay.sipPort}`, '-sn', 'uac', '-s', '100', '-m', '1', '-d', '25000', '-p', String(await freePort()), ...SIPP_COMMON], { timeoutMs: 90_000 });
      for (let i = 0; i < 50 && hushpay.b2bua.calls.size === 0; i++) await new Promise((r) => setTimeout(r, 100));
      const [call] = [...hushpay.b2bua.calls.values()];
      expect(call?.state).toBe('active');

      const messages = fuzzMessages(10_000, 7);
      const udp = await assertSurvivesFuzz({ transport: 'udp', host: '127.0.0.1', port: hushpay.sipPort }, { messages });
      const tcp = await assertSurvivesFuzz({ transport: 'tcp', host: '127.0.0.1', port: hushpay.sipPort }, { messages });
      expect(udp.sent + udp.skipped).toBe(10_000);
      expect(tcp.sent).toBe(10_000);
      expect(udp.badRequests).toBeGreaterThan(1000);
      expect(tcp.badRequests).toBeGreaterThan(1000);
      expect([udp.probeStatus, tcp.probeStatus]).toEqual([200, 200]);
      expect(call?.state).toBe('active');

      const [caller, pbx] = await Promise.all([uac, uas]);
      expect(caller.code, caller.stdout.slice(-1200)).toBe(0);
      expect(pbx.code).toBe(0);
    } finally {
      await hushpay.close();
    }
  }, 120_000);
});
