import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HushpayError } from '../../src/errors.ts';
import { WebhookHeaderError, WebhookSecretError, WebhookSignatureError, WebhookTimestampError, WebhookVerificationError } from '../../src/webhooks/errors.ts';
import { DEFAULT_TOLERANCE_MS, parseSecret, sign, verify, webhookHeaders, type HeaderSource } from '../../src/webhooks/signature.ts';

// The published vector: standard-webhooks/standard-webhooks libraries/javascript/src/webhook.test.ts
// "sign function works" (the spec's own header example carries no secret to check against).
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  msgId: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestampSeconds: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
} as const;
const VECTOR_NOW_MS = VECTOR.timestampSeconds * 1000;

const OTHER_SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

function vectorHeaders(overrides: Record<string, string> = {}): Record<string, string> {
  return { 'webhook-id': VECTOR.msgId, 'webhook-timestamp': String(VECTOR.timestampSeconds), 'webhook-signature': VECTOR.signature, ...overrides };
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('Standard Webhooks signing', () => {
  it('reproduces the published test vector', () => {
    expect(sign(VECTOR.msgId, VECTOR.timestampSeconds, VECTOR.body, VECTOR.secret)).toBe(VECTOR.signature);
  });

  it('signs a Uint8Array body exactly as the same string', () => {
    expect(sign(VECTOR.msgId, VECTOR.timestampSeconds, new TextEncoder().encode(VECTOR.body), [VECTOR.secret])).toBe(VECTOR.signature);
  });

  it('signs with every secret, in order, space separated, for rotation', () => {
    const header = sign(VECTOR.msgId, VECTOR.timestampSeconds, VECTOR.body, [OTHER_SECRET, VECTOR.secret]);
    const parts = header.split(' ');
    expect(parts).toHaveLength(2);
    expect(parts[1]).toBe(VECTOR.signature);
    const independent = createHmac('sha256', Buffer.alloc(32, 7)).update(`${VECTOR.msgId}.${VECTOR.timestampSeconds}.${VECTOR.body}`).digest('base64');
    expect(parts[0]).toBe(`v1,${independent}`);
  });

  it('builds the three headers with the timestamp in whole seconds, rounded down', () => {
    expect(webhookHeaders(VECTOR.msgId, VECTOR_NOW_MS + 999, VECTOR.body, VECTOR.secret)).toEqual(vectorHeaders());
  });

  it('refuses a message id with a "." (the signed content\'s delimiter) or nothing in it', () => {
    expect(() => sign('msg_a.1', 1, '{}', VECTOR.secret)).toThrow(WebhookHeaderError);
    expect(() => sign('', 1, '{}', VECTOR.secret)).toThrow(WebhookHeaderError);
    expect(() => sign('msg a', 1, '{}', VECTOR.secret)).toThrow(WebhookHeaderError);
  });

  it('refuses a timestamp that is not a non-negative integer', () => {
    expect(() => sign(VECTOR.msgId, 1.5, '{}', VECTOR.secret)).toThrow(WebhookHeaderError);
    expect(() => sign(VECTOR.msgId, -1, '{}', VECTOR.secret)).toThrow(WebhookHeaderError);
  });
});

describe('Standard Webhooks verification', () => {
  it('accepts the published vector and says what it verified', () => {
    expect(verify(vectorHeaders(), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS)).toEqual({ msgId: VECTOR.msgId, timestampSeconds: VECTOR.timestampSeconds, secretIndex: 0 });
  });

  it('accepts header names in any case, fetch Headers and node:http one-element arrays', () => {
    const mixed = { 'Webhook-Id': VECTOR.msgId, 'WEBHOOK-TIMESTAMP': String(VECTOR.timestampSeconds), 'webhook-Signature': VECTOR.signature };
    expect(verify(mixed, VECTOR.body, VECTOR.secret, VECTOR_NOW_MS).msgId).toBe(VECTOR.msgId);
    expect(verify(new Headers(vectorHeaders()), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS).msgId).toBe(VECTOR.msgId);
    const arrays: HeaderSource = { 'webhook-id': [VECTOR.msgId], 'webhook-timestamp': String(VECTOR.timestampSeconds), 'webhook-signature': [VECTOR.signature] };
    expect(verify(arrays, VECTOR.body, VECTOR.secret, VECTOR_NOW_MS).msgId).toBe(VECTOR.msgId);
  });

  it.each([
    ['body', { body: '{"test": 2432232315}' }],
    ['body by one trailing space', { body: `${VECTOR.body} ` }],
    ['id', { headers: { 'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJel' } }],
    ['timestamp (one second later, inside the tolerance)', { headers: { 'webhook-timestamp': String(VECTOR.timestampSeconds + 1) } }],
    ['signature (one character)', { headers: { 'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=' } }],
  ] as const)('rejects a tampered %s', (_what, tamper) => {
    const headers = vectorHeaders('headers' in tamper ? tamper.headers : {});
    const body = 'body' in tamper ? tamper.body : VECTOR.body;
    const error = caught(() => verify(headers, body, VECTOR.secret, VECTOR_NOW_MS));
    expect(error).toBeInstanceOf(WebhookSignatureError);
    expect(error).toMatchObject({ code: 'HP_ERR_WEBHOOK_SIGNATURE', v1Count: 1, secretCount: 1 });
  });

  it('rejects the right signature under the wrong secret', () => {
    expect(() => verify(vectorHeaders(), VECTOR.body, OTHER_SECRET, VECTOR_NOW_MS)).toThrow(WebhookSignatureError);
  });

  it('accepts a timestamp exactly at the tolerance, either side, and rejects one a second past it', () => {
    expect(verify(vectorHeaders(), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS + DEFAULT_TOLERANCE_MS).secretIndex).toBe(0);
    expect(verify(vectorHeaders(), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS - DEFAULT_TOLERANCE_MS).secretIndex).toBe(0);

    const old = caught(() => verify(vectorHeaders(), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS + DEFAULT_TOLERANCE_MS + 1000));
    expect(old).toBeInstanceOf(WebhookTimestampError);
    expect(old).toMatchObject({ code: 'HP_ERR_WEBHOOK_TIMESTAMP', ageSeconds: 301, toleranceSeconds: 300 });
    expect((old as Error).message).toBe('webhook-timestamp is 301 s old, tolerance 300 s');

    const future = caught(() => verify(vectorHeaders(), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS - DEFAULT_TOLERANCE_MS - 1000));
    expect(future).toMatchObject({ code: 'HP_ERR_WEBHOOK_TIMESTAMP', ageSeconds: -301 });
    expect((future as Error).message).toBe('webhook-timestamp is 301 s in the future, tolerance 300 s');
  });

  it('checks the timestamp against the tolerance it is given', () => {
    expect(verify(vectorHeaders(), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS + 10_000, 10_000).secretIndex).toBe(0);
    expect(() => verify(vectorHeaders(), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS + 11_000, 10_000)).toThrow(WebhookTimestampError);
  });

  it('finds the valid one among several signatures and ignores other versions (the reference library\'s multi-signature case)', () => {
    const signature = ['v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=', 'v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=', VECTOR.signature, 'v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=='].join(' ');
    expect(verify(vectorHeaders({ 'webhook-signature': signature }), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS).secretIndex).toBe(0);
    const without = caught(() => verify(vectorHeaders({ 'webhook-signature': signature.replace(VECTOR.signature, 'v1,x') }), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS));
    expect(without).toMatchObject({ code: 'HP_ERR_WEBHOOK_SIGNATURE', v1Count: 2 });
  });

  it('verifies during a rotation: a header signed with new and old secrets passes under either, and says which', () => {
    const headers = webhookHeaders(VECTOR.msgId, VECTOR_NOW_MS, VECTOR.body, [OTHER_SECRET, VECTOR.secret]);
    expect(verify(headers, VECTOR.body, [VECTOR.secret], VECTOR_NOW_MS).secretIndex).toBe(0);
    expect(verify(headers, VECTOR.body, [OTHER_SECRET], VECTOR_NOW_MS).secretIndex).toBe(0);
    // a receiver holding both finds the first of its own list that matches
    expect(verify(vectorHeaders(), VECTOR.body, [OTHER_SECRET, VECTOR.secret], VECTOR_NOW_MS).secretIndex).toBe(1);
  });

  it.each([
    ['only another version', 'v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==', 0],
    ['no version', 'g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=', 0],
    ['an empty v1', 'v1,', 1],
    ['a truncated v1', VECTOR.signature.slice(0, 8), 1],
    ['a v1 of too few bytes', 'v1,dawfeoifkpqwoekfpqoekf', 1],
    ['the right bytes in non-canonical base64 (no padding)', VECTOR.signature.replace(/=$/, ''), 1],
  ] as const)('rejects a signature header with %s', (_what, signature, v1Count) => {
    const error = caught(() => verify(vectorHeaders({ 'webhook-signature': signature }), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS));
    expect(error).toBeInstanceOf(WebhookSignatureError);
    expect(error).toMatchObject({ v1Count });
  });

  it.each(['webhook-id', 'webhook-timestamp', 'webhook-signature'])('rejects a request without %s', (name) => {
    const headers = vectorHeaders();
    delete headers[name];
    const error = caught(() => verify(headers, VECTOR.body, VECTOR.secret, VECTOR_NOW_MS));
    expect(error).toBeInstanceOf(WebhookHeaderError);
    expect(error).toBeInstanceOf(WebhookVerificationError);
    expect(error).toMatchObject({ code: 'HP_ERR_WEBHOOK_HEADER', header: name, reason: 'is missing' });
  });

  it.each([
    ['webhook-timestamp', 'hello'],
    ['webhook-timestamp', '1614265330abc'],
    ['webhook-timestamp', '-1614265330'],
    ['webhook-timestamp', '1.6e9'],
    ['webhook-id', 'msg_a.1614265330'],
    ['webhook-id', 'x'.repeat(257)],
  ])('rejects %s %j as malformed', (name, value) => {
    expect(caught(() => verify(vectorHeaders({ [name]: value }), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS))).toMatchObject({ code: 'HP_ERR_WEBHOOK_HEADER', header: name });
  });

  it('rejects a header given twice', () => {
    const twice: HeaderSource = { ...vectorHeaders(), 'webhook-id': [VECTOR.msgId, 'msg_other'] };
    expect(caught(() => verify(twice, VECTOR.body, VECTOR.secret, VECTOR_NOW_MS))).toMatchObject({ header: 'webhook-id', reason: 'is present more than once' });
    const twoCases = { ...vectorHeaders(), 'Webhook-Id': VECTOR.msgId };
    expect(caught(() => verify(twoCases, VECTOR.body, VECTOR.secret, VECTOR_NOW_MS))).toMatchObject({ header: 'webhook-id', reason: 'is present more than once' });
  });
});

describe('Standard Webhooks secrets', () => {
  it('decodes whsec_ base64 to the key bytes (24 bytes in the vector)', () => {
    expect(parseSecret(VECTOR.secret)).toEqual(Buffer.from('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'base64'));
    expect(parseSecret(`whsec_${Buffer.alloc(64, 1).toString('base64')}`)).toHaveLength(64);
    // unpadded base64 is accepted: 25 bytes → 34 characters, no '=='
    expect(parseSecret(`whsec_${Buffer.alloc(25, 1).toString('base64').replace(/=+$/, '')}`)).toHaveLength(25);
  });

  it.each([
    ['without the whsec_ prefix (the reference library takes it; hushpay does not)', 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'does not start with whsec_'],
    ['with another scheme\'s prefix', 'whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'does not start with whsec_'],
    ['empty after the prefix', 'whsec_', 'is not whsec_ followed by base64'],
    ['not base64', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!', 'is not whsec_ followed by base64'],
    ['base64url, not base64', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-_', 'is not whsec_ followed by base64'],
    ['badly padded', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=', 'is not whsec_ followed by base64'],
    ['too short (16 bytes)', `whsec_${Buffer.alloc(16, 9).toString('base64')}`, 'decodes to 16 bytes, needs 24 to 64'],
    ['too long (65 bytes)', `whsec_${Buffer.alloc(65, 9).toString('base64')}`, 'decodes to 65 bytes, needs 24 to 64'],
  ])('refuses a secret %s, without saying it', (_what, secret, reason) => {
    for (const attempt of [() => parseSecret(secret), () => sign(VECTOR.msgId, 1, VECTOR.body, secret), () => verify(vectorHeaders(), VECTOR.body, [VECTOR.secret, secret], VECTOR_NOW_MS)]) {
      const error = caught(attempt);
      expect(error).toBeInstanceOf(WebhookSecretError);
      expect(error).toBeInstanceOf(HushpayError);
      expect(error).toMatchObject({ code: 'HP_ERR_WEBHOOK_SECRET', reason });
      const message = (error as Error).message;
      if (secret.length > 6) expect(message).not.toContain(secret.slice(6));
    }
  });

  it('refuses an empty list of secrets', () => {
    expect(caught(() => sign(VECTOR.msgId, 1, VECTOR.body, []))).toMatchObject({ code: 'HP_ERR_WEBHOOK_SECRET', reason: 'no secrets given' });
    expect(caught(() => verify(vectorHeaders(), VECTOR.body, [], VECTOR_NOW_MS))).toMatchObject({ code: 'HP_ERR_WEBHOOK_SECRET' });
  });
});

describe('webhook errors', () => {
  it('have distinct codes and carry neither the secret, the body nor a signature in their messages', () => {
    const secretText = VECTOR.secret.slice('whsec_'.length);
    const signatureText = VECTOR.signature.slice(3);
    const errors = [
      caught(() => verify(vectorHeaders(), `${VECTOR.body}x`, VECTOR.secret, VECTOR_NOW_MS)),
      caught(() => verify(vectorHeaders(), VECTOR.body, VECTOR.secret, 0)),
      caught(() => verify(vectorHeaders({ 'webhook-id': 'a.b' }), VECTOR.body, VECTOR.secret, VECTOR_NOW_MS)),
      caught(() => parseSecret(`whsec_${secretText.slice(0, 8)}`)),
    ] as HushpayError[];
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['HP_ERR_WEBHOOK_SIGNATURE', 'HP_ERR_WEBHOOK_TIMESTAMP', 'HP_ERR_WEBHOOK_HEADER', 'HP_ERR_WEBHOOK_SECRET']));
    for (const e of errors) {
      expect(e.message).not.toContain(secretText.slice(0, 8));
      expect(e.message).not.toContain('2432232314');
      expect(e.message).not.toContain(signatureText.slice(0, 8));
      expect(e.name).toBe(e.constructor.name);
    }
  });
});
