/**
 * Starts hushpay from a validated config: the store (one SQLite file under the data directory),
 * the signaling port (embedded SIP core or drachtio), the B2BUA and its media, the desk that
 * follows calls and payments, the webhook dispatcher, and the HTTP side (API, event stream,
 * agent page, metrics). `hushpay start` calls this; tests call it too, on ephemeral ports.
 *
 * Each part is closed once, by `close()`, in the order that loses nothing: the HTTP side stops
 * taking requests; the calls end (their last events reach the store and the outbox); the desk
 * and the dispatcher stop; the sockets close; the store closes last.
 */

import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { B2bua } from './calls/b2bua.ts';
import { type Clock, type TimerHandle, systemClock } from './clock.ts';
import type { HushpayConfig, TenantConfig } from './config.ts';
import { buildApp } from './desktop/app.ts';
import { Desk } from './desktop/desk.ts';
import { Metrics } from './desktop/metrics.ts';
import { ConfigError } from './errors.ts';
import { setListenerErrorHandler } from './events.ts';
import { type Logger, createLogger } from './log.ts';
import { CardTestingGuard } from './payments/guard.ts';
import { TenantPaymentsRegistry } from './payments/tenant.ts';
import { RtpPortRange } from './media/relay.ts';
import { EmbeddedSipPort } from './sip/embedded.ts';
import type { SignalingPort } from './sip/port.ts';
import { Store } from './store/index.ts';
import { readTlsFiles } from './tls.ts';
import { WebhookDispatcher } from './webhooks/dispatcher.ts';
import { WebhookSecretError } from './webhooks/errors.ts';
import { parseSecret } from './webhooks/signature.ts';

/** How long desktop events are kept for a reconnecting page (and how often old ones go). */
const EVENT_RETENTION_MS = 7 * 24 * 3_600_000;
const HOUSEKEEPING_MS = 3_600_000;

export interface Hushpay {
  readonly config: HushpayConfig;
  readonly port: SignalingPort;
  readonly b2bua: B2bua;
  readonly rtpPorts: RtpPortRange;
  readonly logger: Logger;
  readonly store: Store;
  readonly desk: Desk;
  readonly metrics: Metrics;
  readonly app: FastifyInstance;
  /** Where the API and agent page listen, e.g. `http://127.0.0.1:8080`. */
  readonly httpUrl: string;
  /** Ends every call, closes every socket, once. */
  close(): Promise<void>;
}

export interface StartDeps {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** A signaling port made elsewhere (the drachtio adapter, or a test's). */
  readonly port?: SignalingPort;
  /** Where webhook secrets are read (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /** The webhook dispatcher's HTTP client (default global fetch). */
  readonly fetch?: typeof fetch;
}

/**
 * A configuration change is audited (PCI DSS 10.2.2): each start records the config's SHA-256
 * (the config holds no secret, only the names of the variables that do) and whether it differs
 * from the one the last start recorded.
 */
function auditConfig(store: Store, config: HushpayConfig): void {
  const sha256 = createHash('sha256').update(JSON.stringify(config)).digest('hex');
  const previous = store.audit.list({ action: 'config.load', limit: 1 })[0];
  const changed = previous !== undefined && previous.details['sha256'] !== sha256;
  store.audit.append({ actorType: 'system', actorId: null, tenantId: null, action: 'config.load', resource: 'config', outcome: 'success', origin: 'start', details: { sha256, changed, tenants: config.tenants.map((t) => t.id) } });
}

/** Each tenant's webhook endpoint, its secret read from the environment now, so a missing one fails the start. */
function webhookEndpoints(tenants: readonly TenantConfig[], env: NodeJS.ProcessEnv): Map<string, { url: string; secrets: string[]; events: readonly string[] | undefined }> {
  const out = new Map<string, { url: string; secrets: string[]; events: readonly string[] | undefined }>();
  for (const [i, t] of tenants.entries()) {
    if (!t.webhooks) continue;
    const secret = env[t.webhooks.secretEnv];
    if (!secret) throw new ConfigError(`tenants[${i}].webhooks.secretEnv`, `names the environment variable ${t.webhooks.secretEnv}, which is not set`);
    try {
      parseSecret(secret);
    } catch (err) {
      // the signer's own check, so a secret it would refuse stops the start instead of every delivery
      if (!(err instanceof WebhookSecretError)) throw err;
      throw new ConfigError(`tenants[${i}].webhooks.secretEnv`, `${t.webhooks.secretEnv} must hold a whsec_ secret: it ${err.reason}`);
    }
    out.set(t.id, { url: t.webhooks.url, secrets: [secret], events: t.webhooks.events });
  }
  return out;
}

export async function startHushpay(config: HushpayConfig, deps: StartDeps = {}): Promise<Hushpay> {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger();
  setListenerErrorHandler((error, event) => logger.error({ event, err: { name: (error as Error)?.name, message: (error as Error)?.message } }, 'listener failed'));
  // the data directory holds the store and the recordings: hushpay's user only
  await mkdir(join(config.dataDir, 'recordings'), { recursive: true, mode: 0o700 });
  const endpoints = webhookEndpoints(config.tenants, deps.env ?? process.env);
  // the web side's certificate is read and checked before anything listens
  const https = config.http.tls ? await readTlsFiles(config.http.tls, 'http.tls') : undefined;
  const tenants = new TenantPaymentsRegistry(config.tenants, clock, deps.env ?? process.env);
  let store: Store;
  try {
    store = Store.open(join(config.dataDir, Store.DEFAULT_FILE), { clock });
  } catch (err) {
    await tenants.close();
    throw err;
  }
  try {
    auditConfig(store, config);
  } catch (err) {
    store.close();
    await tenants.close();
    throw err;
  }
  // if a later part fails to start, the parts made so far are closed, newest first
  const undo: (() => Promise<void> | void)[] = [() => store.close(), () => tenants.close()];
  const unwind = async (): Promise<void> => {
    for (const step of undo.reverse()) await step();
  };
  try {
    const port =
      deps.port ??
      (config.sip.engine === 'drachtio'
        ? await (await import('./sip/drachtio.ts')).DrachtioPort.connect(config, logger)
        : await EmbeddedSipPort.start({ host: config.sip.host, port: config.sip.port, udp: config.sip.udp, tcp: config.sip.tcp, advertise: config.sip.advertise, clock, timers: config.sip.timers, tls: config.sip.tls }));
    undo.push(() => port.close());
    const rtpPorts = new RtpPortRange(config.media.portMin, config.media.portMax);
    const b2bua = new B2bua({ port, rtpPorts, clock, config, payments: { tenants, guard: new CardTestingGuard(clock), logger } });
    undo.push(() => b2bua.close());
    const metrics = new Metrics();
    metrics.gauge('hushpay_live_calls', 'Calls in progress.', () => b2bua.calls.size);
    metrics.gauge('hushpay_webhook_outbox_pending', 'Webhook messages waiting to be delivered.', () => store.webhooks.counts().pending);
    b2bua.on('call', (call) => {
      logger.info({ callId: call.id, tenant: call.tenant.id, sipCallId: call.sipCallId }, 'call started');
      call.on('active', () => logger.info({ callId: call.id }, 'call connected'));
      call.on('digit', (d) => metrics.digits.inc(d.source));
      call.on('payment', (e) => {
        if (e.type === 'payment.completed') metrics.payments.inc('approved');
        else if (e.type === 'payment.failed') metrics.payments.inc(e.result?.status === 'declined' ? 'declined' : 'failed');
        else if (e.type === 'payment.cancelled') metrics.payments.inc('cancelled');
      });
    });
    b2bua.on('ended', (call, end) => {
      const s = call.stats;
      metrics.calls.inc(end.reason);
      metrics.maskedTones.inc('', s.media?.maskedTones ?? 0);
      logger.info({ callId: call.id, reason: end.reason, status: end.status, maskedTones: s.media?.maskedTones ?? 0, digitCounts: s.digits, dropped: s.media?.dropped, ...(s.recordingError ? { recordingError: s.recordingError } : {}) }, 'call ended');
    });

    const wantsWebhook = (tenantId: string, type: string): boolean => {
      const e = endpoints.get(tenantId);
      // per-digit progress is for the desktop; a tenant's webhooks get it only when they ask
      return e !== undefined && (e.events ? e.events.includes(type) : type !== 'capture.progress');
    };
    const desk = new Desk({ b2bua, store, clock, logger, webhooks: wantsWebhook, callbackOrigin: (tenantId) => {
        const e = endpoints.get(tenantId);
        return e ? new URL(e.url).origin : undefined;
      } });
    undo.push(() => desk.close());
    const dispatcher = new WebhookDispatcher({
      outbox: store.webhooks,
      endpoint: (tenantId) => endpoints.get(tenantId),
      clock,
      logger,
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
      onAttempt: (outcome) => metrics.webhookDeliveries.inc(outcome),
    });
    undo.push(() => dispatcher.close());
    desk.on('queued', () => dispatcher.kick());
    dispatcher.start();

    const app = await buildApp({ desk, auth: store, metrics, clock, logger, frameAncestors: config.http.frameAncestors, ...(https ? { https: { cert: https.cert, key: https.key } } : {}) });
    undo.push(() => app.close());
    const httpUrl = await app.listen({ host: config.http.host, port: config.http.port });

    // housekeeping: old desktop events and expired sessions go once an hour
    let housekeeping: TimerHandle | undefined;
    const keepHouse = (): void => {
      housekeeping = clock.setTimeout(() => {
        try {
          store.events.prune(EVENT_RETENTION_MS);
          store.sessions.prune();
        } catch (err) {
          logger.error({ err: { name: (err as Error).name } }, 'housekeeping failed');
        }
        keepHouse();
      }, HOUSEKEEPING_MS);
    };
    keepHouse();

    let closing: Promise<void> | undefined;
    return {
      config,
      port,
      b2bua,
      rtpPorts,
      logger,
      store,
      desk,
      metrics,
      app,
      httpUrl,
      // HTTP first, then the calls (their last events are stored), the desk, the dispatcher,
      // the sockets, and the store last
      close: () =>
        (closing ??= (async () => {
          if (housekeeping !== undefined) clock.clearTimeout(housekeeping);
          housekeeping = undefined;
          // each step runs even if one before it fails: the store closes last, always
          const steps: [string, () => Promise<void> | void][] = [
            ['http', () => app.close()],
            ['calls', () => b2bua.close()],
            ['desk', () => desk.close()],
            ['webhooks', () => dispatcher.close()],
            ['sip', () => port.close()],
            ['gateways', () => tenants.close()],
            ['store', () => store.close()],
          ];
          for (const [part, step] of steps) {
            try {
              await step();
            } catch (err) {
              logger.error({ part, err: { name: (err as Error).name } }, 'closing failed');
            }
          }
        })()),
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}
