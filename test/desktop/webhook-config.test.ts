/**
 * A tenant's webhook secret is checked at start by the signer's own rule: a missing or unusable
 * secret stops hushpay with the config field named, never the secret.
 */

import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { startTestHushpay } from '../support/hushpay.ts';

const tenants = [{ id: 'shop', numbers: ['*'], pbx: 'sip:agents@127.0.0.1:5070', webhooks: { url: 'https://orders.example.com/hooks', secretEnv: 'SHOP_SECRET' } }];

describe('webhook secrets at start', () => {
  it.each([
    ['missing', {}, /SHOP_SECRET, which is not set/],
    ['without the whsec_ prefix', { SHOP_SECRET: Buffer.alloc(32, 1).toString('base64') }, /does not start with whsec_/],
    ['not base64', { SHOP_SECRET: 'whsec_not base64!' }, /not whsec_ followed by base64/],
    ['too short a key', { SHOP_SECRET: `whsec_${Buffer.alloc(8, 1).toString('base64')}` }, /decodes to 8 bytes, needs 24 to 64/],
  ])('%s: refused, naming tenants[0].webhooks.secretEnv', async (_what, env, problem) => {
    const start = startTestHushpay({ pbx: 'sip:agents@127.0.0.1:5070', env, raw: { tenants } });
    await expect(start).rejects.toThrow(ConfigError);
    await expect(start).rejects.toThrow(/^tenants\[0\]\.webhooks\.secretEnv: /);
    await expect(start).rejects.toThrow(problem);
    const message = await start.catch((err: Error) => err.message);
    for (const value of Object.values(env)) expect(message).not.toContain(value);
  });
});
