import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, routeTenant, validateConfig } from '../src/config.ts';
import { ConfigError } from '../src/errors.ts';
import { FakeClock } from '../src/clock.ts';
import { TenantPaymentsRegistry } from '../src/payments/tenant.ts';
import { readTlsFiles, type TlsFiles } from '../src/tls.ts';
import { hasOpenssl, makeTestCerts, type TestCerts } from './sip/certs.ts';

describe('config', () => {
  it('runs on embedded defaults with only --pbx', () => {
    const config = validateConfig({}, { pbx: 'sip:agents@127.0.0.1:5070' });
    expect(config.sip).toMatchObject({ engine: 'embedded', host: '127.0.0.1', port: 5060, udp: true, tcp: true });
    expect(config.tenants).toEqual([expect.objectContaining({ id: 'demo', pbx: 'sip:agents@127.0.0.1:5070', recording: true, maskPolicy: 'always', masking: { agent: 'flat', recording: 'silence' } })]);
    expect(config.media.maskDelayMs).toBe(20);
  });

  it('the README’s hushpay.example.json is a valid config, with every section', async () => {
    const { loadConfig } = await import('../src/config.ts');
    const config = await loadConfig(new URL('../hushpay.example.json', import.meta.url).pathname);
    expect(config.tenants.map((t) => [t.id, t.payments.gateway.type])).toEqual([['shop', 'gmo-pg'], ['books', 'stripe']]);
    expect(config.sip.tls?.port).toBe(5061);
    expect(config.http.tls).toBeDefined();
    expect(config.tenants[0]!.webhooks?.secretEnv).toBe('SHOP_WEBHOOK_SECRET');
  });

  it('takes the CRM origins that may frame the agent page, exactly, and refuses anything else', () => {
    expect(validateConfig({ http: { frameAncestors: ['https://crm.example.com', 'http://127.0.0.1:3000'] } }, {}).http.frameAncestors).toEqual(['https://crm.example.com', 'http://127.0.0.1:3000']);
    expect(validateConfig({}, {}).http.frameAncestors).toEqual([]);
    for (const bad of ['https://crm.example.com/', 'https://crm.example.com/app', '*', 'crm.example.com', 'javascript:alert(1)']) {
      expect(() => validateConfig({ http: { frameAncestors: [bad] } }, {}), bad).toThrow(/http\.frameAncestors\[0\]: must be an origin/);
    }
  });

  it('runs on embedded defaults with nothing at all: the demo tenant, its calls to a sip-sim agent on 5070, the page on 8080', () => {
    const config = validateConfig({}, {});
    expect(config.tenants.map((t) => [t.id, t.pbx, t.numbers])).toEqual([['demo', 'sip:agents@127.0.0.1:5070', ['*']]]);
    expect(config.http).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(config.tenants[0]!.payments.gateway).toEqual({ type: 'sandbox', url: undefined });
  });

  it.each([
    [{}, { pbx: 'agents at the PBX' }, '--pbx'],
    [{ sip: { port: 70000 } }, { pbx: 'sip:a@b' }, 'sip.port'],
    [{ sip: { engine: 'asterisk' } }, { pbx: 'sip:a@b' }, 'sip.engine'],
    [{ sip: { engine: 'drachtio' } }, { pbx: 'sip:a@b' }, 'sip.drachtio.host'],
    [{ media: { portMin: 30000, portMax: 30001 } }, { pbx: 'sip:a@b' }, 'media.portMax'],
    [{ media: { maskDelayMs: 40 } }, { pbx: 'sip:a@b' }, 'media.maskDelayMs'],
    [{ tenants: [{ id: 'Shop 1', pbx: 'sip:a@b' }] }, {}, 'tenants[0].id'],
    [{ tenants: [{ id: 'shop', pbx: 'http://x' }] }, {}, 'tenants[0].pbx'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', masking: { agent: 'beep' } }] }, {}, 'tenants[0].masking.agent'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', sources: ['10.0.0.0/33'] }] }, {}, 'tenants[0].sources[0]'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b' }, { id: 'shop', pbx: 'sip:c@d' }] }, {}, 'tenants[1].id'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', recordings: true }] }, {}, 'tenants[0].recordings'],
    [{ sipp: {} }, { pbx: 'sip:a@b' }, 'sipp'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', payments: { acceptedBrands: ['visa', 'maestro'] } }] }, {}, 'tenants[0].payments.acceptedBrands[1]'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', payments: { fields: ['security-code'] } }] }, {}, 'tenants[0].payments.fields'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', payments: { fields: ['payment-card-number', 'expiration-date', 'expiration-date'] } }] }, {}, 'tenants[0].payments.fields'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', payments: { language: 'fr' } }] }, {}, 'tenants[0].payments.language'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', payments: { gateway: { type: 'paypal' } } }] }, {}, 'tenants[0].payments.gateway.type'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', payments: { gateway: { type: 'gmo-pg', baseUrl: 'ftp://x', shopId: 's', shopPassEnv: 'P' } } }] }, {}, 'tenants[0].payments.gateway.baseUrl'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', payments: { gateway: { type: 'stripe' } } }] }, {}, 'tenants[0].payments.gateway.apiKeyEnv'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', payments: { installmentCounts: [1] } }] }, {}, 'tenants[0].payments.installmentCounts[0]'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', payments: { cardTesting: { perCall: 0 } } }] }, {}, 'tenants[0].payments.cardTesting.perCall'],
    [{ tenants: [{ id: 'shop', pbx: 'sip:a@b', payments: { autosubmit: true } }] }, {}, 'tenants[0].payments.autosubmit'],
    [{}, { pbx: 'sip:a@b', sip: 'localhost' }, '--sip'],
    [{ sip: { tls: { keyFile: 'k.pem' } } }, { pbx: 'sip:a@b' }, 'sip.tls.certFile'],
    [{ sip: { tls: { certFile: 'c.pem' } } }, { pbx: 'sip:a@b' }, 'sip.tls.keyFile'],
    [{ sip: { tls: { certFile: 'c.pem', keyFile: 'k.pem', caFile: '' } } }, { pbx: 'sip:a@b' }, 'sip.tls.caFile'],
    [{ sip: { tls: { certFile: 'c.pem', keyFile: 'k.pem', port: 70000 } } }, { pbx: 'sip:a@b' }, 'sip.tls.port'],
    [{ sip: { port: 5061, tls: { certFile: 'c.pem', keyFile: 'k.pem' } } }, { pbx: 'sip:a@b' }, 'sip.tls.port'],
    [{ sip: { tls: { certFile: 'c.pem', keyFile: 'k.pem', ciphers: 'ALL' } } }, { pbx: 'sip:a@b' }, 'sip.tls.ciphers'],
    [{ sip: { tls: 'on' } }, { pbx: 'sip:a@b' }, 'sip.tls'],
    [{ sip: { engine: 'drachtio', drachtio: { host: 'h' }, tls: { certFile: 'c.pem', keyFile: 'k.pem' } } }, { pbx: 'sip:a@b' }, 'sip.tls'],
    [{ http: { tls: { certFile: 'c.pem' } } }, { pbx: 'sip:a@b' }, 'http.tls.keyFile'],
    [{ http: { tls: { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem' } } }, { pbx: 'sip:a@b' }, 'http.tls.caFile'],
  ] as const)('names the field of a mistake: %j %j → %s', (raw, options, field) => {
    const err = (() => {
      try {
        validateConfig(raw as never, options);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
    expect((err as ConfigError).message.startsWith(`${field}: `)).toBe(true);
  });

  it('reads a JSON file, and says which file is not JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'good.json'), JSON.stringify({ sip: { port: 5080 }, tenants: [{ id: 'shop', pbx: 'sip:pbx@10.0.0.5' }] }));
    writeFileSync(join(dir, 'bad.json'), '{ sip: ');
    expect((await loadConfig(join(dir, 'good.json'))).sip.port).toBe(5080);
    await expect(loadConfig(join(dir, 'bad.json'))).rejects.toThrow(/bad\.json is not JSON/);
    await expect(loadConfig(join(dir, 'missing.json'))).rejects.toThrow(/cannot read .*missing\.json: ENOENT/);
  });

  it('routes by called number (exact, then longest prefix), then by source address, then the catch-all', () => {
    const config = validateConfig({
      tenants: [
        { id: 'a', pbx: 'sip:a@10.0.0.1', numbers: ['0312345678', '0120*'] },
        { id: 'b', pbx: 'sip:b@10.0.0.2', numbers: ['01203*'] },
        { id: 'c', pbx: 'sip:c@10.0.0.3', sources: ['192.0.2.0/24'] },
        { id: 'd', pbx: 'sip:d@10.0.0.4', numbers: ['*'] },
      ],
    });
    const route = (n: string | undefined, src: string): string | undefined => routeTenant(config.tenants, n, src)?.id;
    expect(route('0312345678', '10.9.9.9')).toBe('a');
    expect(route('0120999', '10.9.9.9')).toBe('a');
    expect(route('0120399', '10.9.9.9')).toBe('b');
    expect(route('999', '192.0.2.77')).toBe('c');
    expect(route('999', '198.51.100.1')).toBe('d');
    expect(routeTenant(config.tenants.slice(0, 3), '999', '198.51.100.1')).toBeUndefined();
  });
});

describe('TLS settings', () => {
  it('has no TLS unless asked; sip.tls defaults to port 5061 and keeps the paths as given', () => {
    const plain = validateConfig({}, { pbx: 'sip:a@b' });
    expect(plain.sip.tls).toBeUndefined();
    expect(plain.http.tls).toBeUndefined();
    const config = validateConfig({ sip: { tls: { certFile: '/etc/hushpay/sip.crt', keyFile: '/etc/hushpay/sip.key' } }, http: { tls: { certFile: 'web.crt', keyFile: 'web.key' } } }, { pbx: 'sip:a@b' });
    expect(config.sip.tls).toEqual({ port: 5061, certFile: '/etc/hushpay/sip.crt', keyFile: '/etc/hushpay/sip.key', caFile: undefined });
    expect(config.http.tls).toEqual({ certFile: 'web.crt', keyFile: 'web.key' });
    // with TCP off, sip.port is free for TLS
    expect(validateConfig({ sip: { port: 5061, tcp: false, tls: { certFile: 'c', keyFile: 'k', caFile: 'ca' } } }, { pbx: 'sip:a@b' }).sip.tls).toEqual({ port: 5061, certFile: 'c', keyFile: 'k', caFile: 'ca' });
  });
});

describe.skipIf(!hasOpenssl)('readTlsFiles (certificates made with openssl at test time)', () => {
  let certs: TestCerts;
  beforeAll(() => {
    certs = makeTestCerts();
  });
  afterAll(() => certs.remove());

  const failure = async (files: TlsFiles, now?: Date): Promise<ConfigError> => {
    try {
      await readTlsFiles(files, 'sip.tls', now);
    } catch (e) {
      if (e instanceof ConfigError) return e;
      throw e;
    }
    throw new Error('readTlsFiles accepted the files');
  };

  it('reads a matching certificate and key (and a CA file) and says when the certificate expires', async () => {
    const material = await readTlsFiles({ certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.certFile }, 'sip.tls');
    expect(material.cert.equals(certs.cert)).toBe(true);
    expect(material.key.equals(certs.key)).toBe(true);
    expect(material.ca?.equals(certs.cert)).toBe(true);
    expect(material.notAfter.getTime()).toBeGreaterThan(Date.now());
  });

  it.each([
    ['a missing certificate file', (c: TestCerts): TlsFiles => ({ certFile: join(c.dir, 'nope.pem'), keyFile: c.keyFile }), 'sip.tls.certFile', /cannot read .*nope\.pem: ENOENT/],
    ['a missing key file', (c: TestCerts): TlsFiles => ({ certFile: c.certFile, keyFile: join(c.dir, 'nope.pem') }), 'sip.tls.keyFile', /cannot read .*nope\.pem: ENOENT/],
    ['a missing CA file', (c: TestCerts): TlsFiles => ({ certFile: c.certFile, keyFile: c.keyFile, caFile: join(c.dir, 'nope.pem') }), 'sip.tls.caFile', /cannot read .*nope\.pem: ENOENT/],
    ['a folder as the certificate', (c: TestCerts): TlsFiles => ({ certFile: c.dir, keyFile: c.keyFile }), 'sip.tls.certFile', /cannot read .*: EISDIR/],
    ['an empty certificate file', (c: TestCerts): TlsFiles => ({ certFile: c.emptyFile, keyFile: c.keyFile }), 'sip.tls.certFile', /is empty/],
    ['a certificate file with no PEM in it', (c: TestCerts): TlsFiles => ({ certFile: c.garbageFile, keyFile: c.keyFile }), 'sip.tls.certFile', /holds no PEM certificate/],
    ['the key given as the certificate', (c: TestCerts): TlsFiles => ({ certFile: c.keyFile, keyFile: c.keyFile }), 'sip.tls.certFile', /holds no PEM certificate/],
    ['the certificate given as the key', (c: TestCerts): TlsFiles => ({ certFile: c.certFile, keyFile: c.certFile }), 'sip.tls.keyFile', /holds no PEM private key/],
    ['a key file with no PEM in it', (c: TestCerts): TlsFiles => ({ certFile: c.certFile, keyFile: c.garbageFile }), 'sip.tls.keyFile', /holds no PEM private key/],
    ['a key that is not the certificate’s', (c: TestCerts): TlsFiles => ({ certFile: c.certFile, keyFile: c.otherKeyFile }), 'sip.tls.keyFile', /does not match the certificate in .*server-cert\.pem \(sip\.tls\.certFile\)/],
    ['an encrypted key', (c: TestCerts): TlsFiles => ({ certFile: c.certFile, keyFile: c.encryptedKeyFile }), 'sip.tls.keyFile', /is encrypted; give an unencrypted key/],
    ['a CA file with no PEM certificate in it', (c: TestCerts): TlsFiles => ({ certFile: c.certFile, keyFile: c.keyFile, caFile: c.garbageFile }), 'sip.tls.caFile', /holds no PEM certificate/],
  ])('names the field for %s', async (_name, files, field, message) => {
    const err = await failure(files(certs));
    expect(err.field).toBe(field);
    expect(err.message.startsWith(`${field}: `)).toBe(true);
    expect(err.message).toMatch(message);
  });

  it('refuses a certificate that has expired or is not valid yet', async () => {
    const files = { certFile: certs.certFile, keyFile: certs.keyFile };
    const later = await failure(files, new Date(Date.now() + 30 * 86_400_000));
    expect(later.field).toBe('sip.tls.certFile');
    expect(later.message).toMatch(/expired on \d{4}-/);
    const earlier = await failure(files, new Date(Date.now() - 30 * 86_400_000));
    expect(earlier.message).toMatch(/is not valid until \d{4}-/);
  });

  it('never puts key material in a message', async () => {
    const keyLines = certs.key.toString('latin1').split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'));
    expect(keyLines.length).toBeGreaterThan(0);
    const errors = await Promise.all([
      failure({ certFile: certs.keyFile, keyFile: certs.keyFile }),
      failure({ certFile: certs.certFile, keyFile: certs.otherKeyFile }),
      failure({ certFile: certs.certFile, keyFile: certs.encryptedKeyFile }),
      failure({ certFile: certs.certFile, keyFile: certs.certFile }),
    ]);
    for (const e of errors) {
      expect(e.message).not.toMatch(/PRIVATE KEY/);
      for (const line of keyLines) expect(e.message).not.toContain(line);
    }
  });

  it('names the http.tls fields the same way', async () => {
    const err = await (async () => {
      try {
        await readTlsFiles({ certFile: certs.certFile, keyFile: certs.otherKeyFile }, 'http.tls');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe('http.tls.keyFile');
  });
});

describe('tenant payments', () => {
  it('default to the sandbox gateway, every brand, the three card fields and Japanese prompts', () => {
    const config = validateConfig({}, { pbx: 'sip:agents@127.0.0.1:5070' });
    expect(config.tenants[0]!.payments).toMatchObject({ gateway: { type: 'sandbox' }, fields: ['payment-card-number', 'expiration-date', 'security-code'], language: 'ja', prompts: 'speech', autoSubmit: false });
    expect(config.tenants[0]!.payments.acceptedBrands).toHaveLength(7);
  });

  it('reads gateway secrets from the environment at start, and names the variable that is missing', () => {
    const config = validateConfig({ tenants: [{ id: 'shop', pbx: 'sip:a@b', payments: { gateway: { type: 'stripe', apiKeyEnv: 'SHOP_STRIPE_KEY', host: '127.0.0.1', port: 12111, protocol: 'http' } } }] }, {});
    expect(() => new TenantPaymentsRegistry(config.tenants, new FakeClock(), {})).toThrow(/tenants\[0\]\.payments\.gateway\.apiKeyEnv: names the environment variable SHOP_STRIPE_KEY, which is not set/);
    const registry = new TenantPaymentsRegistry(config.tenants, new FakeClock(), { SHOP_STRIPE_KEY: 'sk_test_x' });
    expect(registry.gateway('shop').name).toBe('stripe');
    expect(registry.prompts('shop').language).toBe('ja');
  });
});
