/**
 * Starts hushpay: the signaling port (embedded SIP core or drachtio), the B2BUA and its media,
 * from a validated config. `hushpay start` calls this; tests call it too, on ephemeral ports.
 */

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { B2bua } from './calls/b2bua.ts';
import { type Clock, systemClock } from './clock.ts';
import type { HushpayConfig } from './config.ts';
import { setListenerErrorHandler } from './events.ts';
import { type Logger, createLogger } from './log.ts';
import { CardTestingGuard } from './payments/guard.ts';
import { TenantPaymentsRegistry } from './payments/tenant.ts';
import { RtpPortRange } from './media/relay.ts';
import { EmbeddedSipPort } from './sip/embedded.ts';
import type { SignalingPort } from './sip/port.ts';

export interface Hushpay {
  readonly config: HushpayConfig;
  readonly port: SignalingPort;
  readonly b2bua: B2bua;
  readonly rtpPorts: RtpPortRange;
  readonly logger: Logger;
  /** Ends every call, closes every socket, once. */
  close(): Promise<void>;
}

export interface StartDeps {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** A signaling port made elsewhere (the drachtio adapter, or a test's). */
  readonly port?: SignalingPort;
}

export async function startHushpay(config: HushpayConfig, deps: StartDeps = {}): Promise<Hushpay> {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger();
  setListenerErrorHandler((error, event) => logger.error({ event, err: { name: (error as Error)?.name, message: (error as Error)?.message } }, 'listener failed'));
  await mkdir(join(config.dataDir, 'recordings'), { recursive: true });
  const port =
    deps.port ??
    (config.sip.engine === 'drachtio'
      ? await (await import('./sip/drachtio.ts')).DrachtioPort.connect(config, logger)
      : await EmbeddedSipPort.start({ host: config.sip.host, port: config.sip.port, udp: config.sip.udp, tcp: config.sip.tcp, advertise: config.sip.advertise, clock, timers: config.sip.timers }));
  const rtpPorts = new RtpPortRange(config.media.portMin, config.media.portMax);
  let tenants: TenantPaymentsRegistry;
  try {
    tenants = new TenantPaymentsRegistry(config.tenants, clock);
  } catch (err) {
    await port.close();
    throw err;
  }
  const b2bua = new B2bua({ port, rtpPorts, clock, config, payments: { tenants, guard: new CardTestingGuard(clock), logger } });
  b2bua.on('call', (call) => {
    logger.info({ callId: call.id, tenant: call.tenant.id, sipCallId: call.sipCallId }, 'call started');
    call.on('active', () => logger.info({ callId: call.id }, 'call connected'));
  });
  b2bua.on('ended', (call, end) => {
    const s = call.stats;
    logger.info({ callId: call.id, reason: end.reason, status: end.status, maskedTones: s.media?.maskedTones ?? 0, digitCounts: s.digits, dropped: s.media?.dropped, ...(s.recordingError ? { recordingError: s.recordingError } : {}) }, 'call ended');
  });
  let closing: Promise<void> | undefined;
  return {
    config,
    port,
    b2bua,
    rtpPorts,
    logger,
    close: () =>
      (closing ??= (async () => {
        await b2bua.close();
        await port.close();
        await tenants.close();
      })()),
  };
}
