import { describe, expect, it } from 'vitest';
import { StoreConflictError, StoreInputError, StoreNotFoundError } from '../../src/store/errors.ts';
import { passwordPolicyProblem } from '../../src/store/password.ts';
import { TOTP_STEP_MS, generateTotpSecret, totpCode } from '../../src/store/totp.ts';
import { openTempStore } from './support.ts';

const PASSWORD = 'kanji-and-7-digits';

describe('UserRepository', () => {
  it('creates a user and finds it by id and by username, without case', async () => {
    const { store } = openTempStore();

    const user = await store.users.create({ tenantId: 'shop', username: 'Hanako', role: 'agent', password: PASSWORD });

    expect(user).toMatchObject({ tenantId: 'shop', username: 'Hanako', role: 'agent', totpEnabled: false, disabled: false, createdAt: '2026-11-21T00:00:00.000Z' });
    expect(user.id).toMatch(/^usr_[A-Za-z0-9_-]{22}$/);
    expect(store.users.get(user.id)).toEqual(user);
    expect(store.users.byUsername('HANAKO')).toEqual(user);
    expect(store.users.byUsername('nobody')).toBeUndefined();
  });

  it('refuses a username taken in another case, and in another tenant', async () => {
    const { store } = openTempStore();
    await store.users.create({ tenantId: 'shop', username: 'taro', role: 'agent', password: PASSWORD });

    await expect(store.users.create({ tenantId: 'other', username: 'TARO', role: 'agent', password: PASSWORD })).rejects.toBeInstanceOf(StoreConflictError);
  });

  it('refuses a bad role, an empty username and an empty password', async () => {
    const { store } = openTempStore();

    await expect(store.users.create({ tenantId: null, username: 'x', role: 'root' as 'admin', password: PASSWORD })).rejects.toThrow(StoreInputError);
    await expect(store.users.create({ tenantId: null, username: '  ', role: 'agent', password: PASSWORD })).rejects.toThrow(StoreInputError);
    await expect(store.users.create({ tenantId: null, username: 'x', role: 'agent', password: '' })).rejects.toThrow(StoreInputError);
  });

  it('verifies the right password (username in any case) and refuses a wrong one or an unknown user', async () => {
    const { store } = openTempStore();
    const user = await store.users.create({ tenantId: 'shop', username: 'jiro', role: 'supervisor', password: PASSWORD });

    expect(await store.users.verifyPassword('JIRO', PASSWORD)).toEqual(user);
    expect(await store.users.verifyPassword('jiro', `${PASSWORD}x`)).toBeUndefined();
    expect(await store.users.verifyPassword('jiro', PASSWORD.toUpperCase())).toBeUndefined();
    expect(await store.users.verifyPassword('saburo', PASSWORD)).toBeUndefined();
  });

  it('keeps only a scrypt hash of the password', async () => {
    const { store, path } = openTempStore();
    await store.users.create({ tenantId: null, username: 'admin', role: 'admin', password: PASSWORD });
    store.close();

    const { readFileSync, existsSync } = await import('node:fs');
    const bytes = Buffer.concat([readFileSync(path), existsSync(`${path}-wal`) ? readFileSync(`${path}-wal`) : Buffer.alloc(0)]);
    expect(bytes.includes(PASSWORD)).toBe(false);
    expect(bytes.includes('scrypt$16384$8$1$')).toBe(true);
  });

  it('sets a new password: the old one stops working', async () => {
    const { store } = openTempStore();
    const user = await store.users.create({ tenantId: 'shop', username: 'jiro', role: 'agent', password: PASSWORD });

    await store.users.setPassword(user.id, 'another-password-99');

    expect(await store.users.verifyPassword('jiro', PASSWORD)).toBeUndefined();
    expect(await store.users.verifyPassword('jiro', 'another-password-99')).toBeDefined();
    await expect(store.users.setPassword('usr_nope', 'another-password-99')).rejects.toBeInstanceOf(StoreNotFoundError);
  });

  it('disables a user: no login, sessions ended, idempotent', async () => {
    const { store, clock } = openTempStore();
    const user = await store.users.create({ tenantId: 'shop', username: 'jiro', role: 'agent', password: PASSWORD });
    const session = store.sessions.create(user.id, { ttlMs: 60_000, mfaPassed: false });

    const disabled = store.users.disable(user.id);
    clock.advance(1000);
    const again = store.users.disable(user.id);

    expect(disabled.disabled).toBe(true);
    expect(again).toEqual(disabled);
    expect(await store.users.verifyPassword('jiro', PASSWORD)).toBeUndefined();
    expect(store.sessions.get(session.token)).toBeUndefined();
    expect(() => store.users.disable('usr_nope')).toThrow(StoreNotFoundError);
  });

  it('lists users of a tenant, of no tenant, or all, by username', async () => {
    const { store } = openTempStore();
    await store.users.create({ tenantId: 'shop', username: 'b', role: 'agent', password: PASSWORD });
    await store.users.create({ tenantId: 'shop', username: 'a', role: 'agent', password: PASSWORD });
    await store.users.create({ tenantId: null, username: 'root', role: 'admin', password: PASSWORD });

    expect(store.users.list('shop').map((u) => u.username)).toEqual(['a', 'b']);
    expect(store.users.list(null).map((u) => u.username)).toEqual(['root']);
    expect(store.users.list().map((u) => u.username)).toEqual(['a', 'b', 'root']);
  });
});

describe('TOTP (PCI DSS 8.4, 8.5.1)', () => {
  it('accepts a code once: the same code, or one of an earlier step, is refused after', async () => {
    const { store, clock } = openTempStore();
    const user = await store.users.create({ tenantId: null, username: 'admin', role: 'admin', password: PASSWORD });
    const secret = generateTotpSecret();
    expect(store.users.setTotpSecret(user.id, secret).totpEnabled).toBe(true);
    const t0 = clock.wallMs();
    const earlier = totpCode(secret, t0 - TOTP_STEP_MS);
    const now = totpCode(secret, t0);

    expect(store.users.acceptTotp(user.id, now, t0)).toBe(true);
    expect(store.users.acceptTotp(user.id, now, t0)).toBe(false); // replay
    expect(store.users.acceptTotp(user.id, earlier, t0)).toBe(false); // an older step
    expect(store.users.acceptTotp(user.id, totpCode(secret, t0 + TOTP_STEP_MS), t0 + TOTP_STEP_MS)).toBe(true);
  });

  it('refuses a wrong code, a code outside ±1 step, and a user without a secret or disabled', async () => {
    const { store, clock } = openTempStore();
    const user = await store.users.create({ tenantId: null, username: 'admin', role: 'admin', password: PASSWORD });
    const plain = await store.users.create({ tenantId: null, username: 'plain', role: 'agent', password: PASSWORD });
    const secret = generateTotpSecret();
    store.users.setTotpSecret(user.id, secret);
    const t0 = clock.wallMs();
    const right = totpCode(secret, t0);
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');

    expect(store.users.acceptTotp(user.id, wrong, t0)).toBe(false);
    expect(store.users.acceptTotp(user.id, totpCode(secret, t0 - 2 * TOTP_STEP_MS), t0)).toBe(false);
    expect(store.users.acceptTotp(plain.id, right, t0)).toBe(false);
    store.users.disable(user.id);
    expect(store.users.acceptTotp(user.id, right, t0)).toBe(false);
  });

  it('keeps the secret out of User, gives it to totpSecret, and clears it', async () => {
    const { store } = openTempStore();
    const user = await store.users.create({ tenantId: null, username: 'admin', role: 'admin', password: PASSWORD });
    const secret = generateTotpSecret();

    const withSecret = store.users.setTotpSecret(user.id, secret.toLowerCase());

    expect(JSON.stringify(withSecret)).not.toContain(secret);
    expect(store.users.totpSecret(user.id)).toBe(secret);
    expect(store.users.setTotpSecret(user.id, null).totpEnabled).toBe(false);
    expect(store.users.totpSecret(user.id)).toBeUndefined();
    expect(() => store.users.setTotpSecret(user.id, 'AAAA')).toThrow(StoreInputError); // 20 bits
  });
});

describe('passwordPolicyProblem (PCI DSS 8.3.6)', () => {
  it.each([
    { password: 'short1', problem: 'must be at least 12 characters' },
    { password: 'onlylettersherex', problem: 'must contain both letters and digits' },
    { password: '123456789012345', problem: 'must contain both letters and digits' },
    { password: 'パスワードは十二文字以上1', problem: undefined },
    { password: 'letters-and-42', problem: undefined },
  ])('$password: $problem', ({ password, problem }) => {
    expect(passwordPolicyProblem(password)).toBe(problem);
  });
});
