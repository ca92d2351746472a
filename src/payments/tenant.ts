/**
 * From a tenant's configuration to what its payments run on: the gateway (secrets read from the
 * environment at start, so a missing one stops hushpay with the variable's name), the payment
 * settings of the flows, and the prompt library.
 */

import type { Clock } from '../clock.ts';
import type { GatewayConfig, TenantConfig } from '../config.ts';
import { ConfigError } from '../errors.ts';
import type { Gateway } from './gateway.ts';
import { GmoPgGateway } from './gmo.ts';
import { PromptLibrary } from './prompts.ts';
import { SandboxGateway, SandboxHttpGateway } from './sandbox.ts';
import type { PaymentSettings } from './session.ts';
import { StripeGateway } from './stripe.ts';

function secret(env: NodeJS.ProcessEnv, name: string, field: string): string {
  const value = env[name];
  if (!value) throw new ConfigError(field, `names the environment variable ${name}, which is not set`);
  return value;
}

export function createGateway(config: GatewayConfig, clock: Clock, field: string, env: NodeJS.ProcessEnv = process.env): Gateway {
  switch (config.type) {
    case 'sandbox':
      return config.url ? new SandboxHttpGateway({ url: config.url, clock }) : new SandboxGateway({ clock });
    case 'gmo-pg':
      return new GmoPgGateway({
        baseUrl: config.baseUrl,
        shopId: config.shopId,
        shopPass: secret(env, config.shopPassEnv, `${field}.shopPassEnv`),
        ...(config.siteId ? { siteId: config.siteId } : {}),
        ...(config.sitePassEnv ? { sitePass: secret(env, config.sitePassEnv, `${field}.sitePassEnv`) } : {}),
        clock,
      });
    case 'stripe':
      return new StripeGateway({
        apiKey: secret(env, config.apiKeyEnv, `${field}.apiKeyEnv`),
        ...(config.host ? { host: config.host } : {}),
        ...(config.port ? { port: config.port } : {}),
        protocol: config.protocol,
        clock,
      });
  }
}

export function paymentSettings(tenant: TenantConfig): PaymentSettings {
  const p = tenant.payments;
  return {
    tenantId: tenant.id,
    policy: tenant.maskPolicy,
    fields: p.fields,
    acceptedBrands: p.acceptedBrands,
    maxAttempts: p.maxAttempts,
    delays: { firstDigitMs: p.firstDigitMs, betweenDigitsMs: p.betweenDigitsMs, wholeFieldMs: p.wholeFieldMs },
    methodChooser: p.methodChooser,
    allowedMethods: p.allowedMethods,
    installmentCounts: p.installmentCounts,
    confirmAmount: p.confirmAmount,
    autoSubmit: p.autoSubmit,
    resultHoldMs: p.resultHoldMs,
    gatewayTimeoutMs: p.gatewayTimeoutMs,
    cardTesting: p.cardTesting,
  };
}

/** Each tenant's gateway and prompts, made once at start and closed once at the end. */
export class TenantPaymentsRegistry {
  readonly #gateways = new Map<string, Gateway>();
  readonly #prompts = new Map<string, PromptLibrary>();

  constructor(tenants: readonly TenantConfig[], clock: Clock, env: NodeJS.ProcessEnv = process.env) {
    tenants.forEach((t, i) => {
      this.#gateways.set(t.id, createGateway(t.payments.gateway, clock, `tenants[${i}].payments.gateway`, env));
      this.#prompts.set(t.id, PromptLibrary.load({ language: t.payments.language, mode: t.payments.prompts, ...(t.payments.promptDir ? { customDir: t.payments.promptDir } : {}) }));
    });
  }

  gateway(tenantId: string): Gateway {
    const g = this.#gateways.get(tenantId);
    if (!g) throw new ConfigError('tenants', `no tenant ${tenantId}`);
    return g;
  }

  prompts(tenantId: string): PromptLibrary {
    const p = this.#prompts.get(tenantId);
    if (!p) throw new ConfigError('tenants', `no tenant ${tenantId}`);
    return p;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#gateways.values()].map((g) => g.close()));
  }
}
