import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, routeTenant, validateConfig } from '../src/config.ts';
import { ConfigError } from '../src/errors.ts';
import { FakeClock } from '../src/clock.ts';
import { TenantPaymentsRegistry } from '../src/payments/tenant.ts';

describe('config', () => {
  it('runs on embedded defaults with only --pbx', () => {
    const config = validateConfig({}, { pbx: 'sip:agents@127.0.0.1:5070' });
    expect(config.sip).toMatchObject({ engine: 'embedded', host: '127.0.0.1', port: 5060, udp: true, tcp: true });
    expect(config.tenants).toEqual([expect.objectContaining({ id: 'default', pbx: 'sip:agents@127.0.0.1:5070', recording: true, maskPolicy: 'always', masking: { agent: 'flat', recording: 'silence' } })]);
    expect(config.media.maskDelayMs).toBe(20);
  });

  it.each([
    [{}, {}, '--pbx'],
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
