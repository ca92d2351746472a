/**
 * The web side over TLS from configured certificate files: the API answers over HTTPS with the
 * configured certificate, the session cookie is marked Secure, and a wrong key stops the start
 * with the config field named.
 */

import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimAgent } from '../../sip-sim/index.ts';
import { ConfigError } from '../../src/errors.ts';
import { hasOpenssl, makeTestCerts, type TestCerts } from '../sip/certs.ts';
import { startTestHushpay } from '../support/hushpay.ts';

function get(url: string, ca: Buffer, body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: body ? 'POST' : 'GET', ca, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.once('error', reject);
    req.end(body);
  });
}

describe.skipIf(!hasOpenssl)('HTTPS for the API and the agent page (openssl makes the test certificate)', () => {
  let certs: TestCerts;
  let agent: SimAgent;
  beforeAll(async () => {
    certs = makeTestCerts();
    agent = await SimAgent.listen();
  });
  afterAll(async () => {
    await agent?.close();
    certs?.remove();
  });

  it('serves over TLS with the configured certificate, and marks the session cookie Secure', async () => {
    const hushpay = await startTestHushpay({ pbx: agent.uri('agents'), raw: { http: { tls: { certFile: certs.certFile, keyFile: certs.keyFile } } } });
    try {
      expect(hushpay.httpUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const health = await get(`${hushpay.httpUrl}/healthz`, certs.cert);
      expect([health.status, JSON.parse(health.text)]).toEqual([200, { ok: true }]);
      await hushpay.store.users.create({ tenantId: null, username: 'sam', role: 'supervisor', password: 'correct horse battery staple' });
      const login = await get(`${hushpay.httpUrl}/v1/auth/login`, certs.cert, JSON.stringify({ username: 'sam', password: 'correct horse battery staple' }));
      expect(login.status).toBe(200);
      expect(String(login.headers['set-cookie'])).toMatch(/; Secure$/);
      // a client that does not trust the certificate is refused by its own TLS, as it should be
      await expect(get(`${hushpay.httpUrl}/healthz`, Buffer.from(''))).rejects.toThrow();
    } finally {
      await hushpay.close();
    }
  });

  it('a key that is not the certificate’s stops the start, naming the field', async () => {
    const start = startTestHushpay({ pbx: agent.uri('agents'), raw: { http: { tls: { certFile: certs.certFile, keyFile: certs.otherKeyFile } } } });
    await expect(start).rejects.toThrow(ConfigError);
    await expect(start).rejects.toThrow(/http\.tls\.keyFile/);
  });
});
