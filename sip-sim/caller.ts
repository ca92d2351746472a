/**
 * The simulated caller (or trunk): places calls with an INVITE, sends paced audio and keyed
 * digits once answered, records what it hears, and hangs up after a while or when told to.
 */

import { randomInt } from 'node:crypto';
import { ConfigError, InvalidStateError, SipRequestFailedError } from '../src/errors.ts';
import { describeFailure } from '../src/tools/failure.ts';
import type { SipCredentials, SipDialog } from '../src/sip/ua.ts';
import type { SipAddress } from '../src/sip/transport.ts';
import type { CallMediaOptions, CallSummary, SimCall } from './call.ts';
import { type OpenedSip, SimPhone, type SimPhoneOptions } from './phone.ts';
import type { EndReason } from './records.ts';
import { negotiate, offer, TELEPHONE_EVENT_PAYLOAD_TYPE } from './sdp.ts';

export interface PlaceCallOptions extends CallMediaOptions {
  /** The Request-URI and To: `sip:user@host[:port]`. */
  readonly to: string;
  /** Where to send the INVITE, if not the URI's host and port: `host:port` or an address. */
  readonly target?: string | { readonly host: string; readonly port: number };
  /** Extra headers for the INVITE, e.g. [['X-Customer-Id', '42']]. */
  readonly headers?: Iterable<readonly [string, string]>;
  /** The From user part; default 'caller'. */
  readonly fromUser?: string;
  readonly fromDisplayName?: string;
  /** Answers a 401/407 digest challenge once. */
  readonly credentials?: SipCredentials;
}

/** `host:port` or `[v6]:port` as an address; undefined if it is not one. */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (host === undefined || !(port >= 0 && port <= 65535)) return undefined;
  return { host, port };
}

function reasonOf(status: number): EndReason {
  if (status === 487) return 'cancelled';
  if (status === 408) return 'timeout';
  return 'rejected';
}

export class SimCaller extends SimPhone {
  /** Starts a caller with its own SIP socket. */
  static async start(options: SimPhoneOptions = {}): Promise<SimCaller> {
    return new SimCaller(options, await SimPhone.openSip(options, 'caller'));
  }

  private constructor(options: SimPhoneOptions, opened: OpenedSip) {
    super('caller', options, opened);
  }

  /**
   * Places one call and resolves with its summary when it is over (answered or not: a rejected
   * call resolves with its status). Rejects only for options it cannot honour (a bad digit
   * string, an unreadable file, a bad target), before any SIP is sent.
   */
  placeCall(options: PlaceCallOptions): Promise<CallSummary> {
    if (this.closed) return Promise.reject(new InvalidStateError('the caller is closed'));
    return this.track(this.#place(options));
  }

  async #place(options: PlaceCallOptions): Promise<CallSummary> {
    const explicit = typeof options.target === 'string' ? parseHostPort(options.target) : options.target;
    if (options.target !== undefined && explicit === undefined) throw new ConfigError('target', 'must be host:port');
    const call = await this.newCall(options);
    if (!(await this.openRtp(call))) return call.ended;
    const target: SipAddress = explicit ? { transport: 'udp', host: explicit.host, port: explicit.port } : await this.ua.targetOf(options.to);
    const abort = new AbortController();
    call.onAbort = () => {
      abort.abort(); // a CANCEL, once there has been a provisional response (RFC 3261 §9.1)
      return 487;
    };
    const localSdp = offer(this.sdpAddress, call.localRtp!.port, String(randomInt(1, 2 ** 31)));
    const { result: invite, request } = this.capturingRequest(() =>
      this.ua.createUAC(
        options.to,
        {
          localSdp,
          target,
          fromUser: options.fromUser ?? 'caller',
          ...(options.fromDisplayName !== undefined ? { fromDisplayName: options.fromDisplayName } : {}),
          ...(options.headers !== undefined ? { headers: options.headers } : {}),
          ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
        },
        {
          signal: abort.signal,
          onProvisional: (response) => {
            call.callId = response.headers.get('Call-ID') ?? '';
            if (response.status >= 180) call.ringing(response.status);
          },
        },
      ),
    );
    call.callId = request?.headers.get('Call-ID') ?? '';
    this.report({ event: 'invite-sent', call: call.index, callId: call.callId, to: options.to, target: `${target.transport}:${target.host}:${target.port}` });
    return this.#await(call, invite);
  }

  async #await(call: SimCall, invite: Promise<SipDialog>): Promise<CallSummary> {
    let dialog;
    try {
      dialog = await this.untilClosed(invite);
    } catch (error) {
      if (error instanceof SipRequestFailedError) await call.end(reasonOf(error.status), error.status);
      else {
        this.#reportError(call, error);
        await call.end('failed', 0);
      }
      return call.ended;
    }
    if (dialog === undefined) {
      await call.end('closed', 0); // the caller closed with the INVITE in flight
      return call.ended;
    }
    call.callId = dialog.callId; // if the INVITE was not seen going out
    try {
      call.answered(dialog, negotiate(dialog.remoteSdp), TELEPHONE_EVENT_PAYLOAD_TYPE);
    } catch (error) {
      this.#reportError(call, error); // an answer without PCMU or PCMA
      void dialog.destroy();
      await call.end('failed', 200);
    }
    return call.ended;
  }

  #reportError(call: SimCall, error: unknown): void {
    this.report({ event: 'error', call: call.index, ...describeFailure(error) });
  }
}
