/**
 * The simulated agent phone (or PBX): answers every INVITE — after ringing, or with a failure
 * status if told to — records what it hears, plays a file back (or silence), and counts what
 * must not reach an agent behind hushpay: telephone-event packets and SIP INFO. Any number of
 * calls at once, each with its own RTP socket.
 */

import { randomInt } from 'node:crypto';
import { basename, dirname, extname, join } from 'node:path';
import { ConfigError, InvalidStateError, SdpError, SipRequestFailedError } from '../src/errors.ts';
import { describeFailure } from '../src/tools/failure.ts';
import { formatNameAddr, type SipHeaders } from '../src/sip/message.ts';
import type { IncomingInvite, InviteResponder } from '../src/sip/ua.ts';
import type { CallMediaOptions, SimCall } from './call.ts';
import { type OpenedSip, SimPhone, type SimPhoneOptions } from './phone.ts';
import { answer } from './sdp.ts';

/** Calls kept for nextCall() when nobody asks for them (an agent left running); older ones are forgotten. */
export const MAX_UNCLAIMED_CALLS = 1024;

export interface SimAgentOptions extends SimPhoneOptions, Omit<CallMediaOptions, 'record'> {
  /**
   * Record each call: a path (call n is written to `name-<n>.wav`), or a function naming the
   * file of call n (undefined: not recorded).
   */
  readonly record?: string | ((call: number) => string | undefined);
  /** Send 180 Ringing and wait this long before answering (or rejecting). */
  readonly ringMs?: number;
  /** Answer every INVITE with this failure status (e.g. 486) instead of 200. */
  readonly reject?: number;
}

/** `dir/name.wav` → `dir/name-<n>.wav`. */
export function numberedPath(path: string, call: number): string {
  const ext = extname(path);
  return join(dirname(path), `${basename(path, ext)}-${call}${ext}`);
}

/** Every header of a request by the name it arrived with, repeated ones joined by ', '. */
export function headerRecord(headers: SipHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { name, value } of headers.entries()) out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  return out;
}

export class SimAgent extends SimPhone {
  readonly #options: SimAgentOptions;
  /** Calls that arrived and were not yet taken by nextCall(). */
  readonly #arrived: SimCall[] = [];
  readonly #waiting: { resolve: (call: SimCall) => void; reject: (error: Error) => void }[] = [];

  /** Starts an agent answering on its own SIP socket (`port` 0: a free one; see `sip`). */
  static async listen(options: SimAgentOptions = {}): Promise<SimAgent> {
    const { reject } = options;
    if (reject !== undefined && !(Number.isInteger(reject) && reject >= 300 && reject <= 699)) throw new ConfigError('reject', `${reject} is not a failure status (300–699)`);
    return new SimAgent(options, await SimPhone.openSip(options, 'agent'));
  }

  private constructor(options: SimAgentOptions, opened: OpenedSip) {
    super('agent', options, opened);
    this.#options = options;
    this.ua.on('invite', (invite, res) => {
      void this.track(this.#answer(invite, res)).catch((error: unknown) => this.#reportError(undefined, error));
    });
  }

  /** The next call to arrive (or the oldest one that arrived and was not taken yet). */
  nextCall(): Promise<SimCall> {
    const call = this.#arrived.shift();
    if (call) return Promise.resolve(call);
    if (this.closed) return Promise.reject(new InvalidStateError('the agent is closed'));
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  override close(): Promise<void> {
    for (const waiter of this.#waiting.splice(0)) waiter.reject(new InvalidStateError('the agent closed before a call arrived'));
    return super.close();
  }

  /** What call n sends and records: the agent's options, with its recording's own path. */
  #mediaOptions(call: number): CallMediaOptions {
    const { record, ...rest } = this.#options;
    const path = typeof record === 'function' ? record(call) : record === undefined ? undefined : numberedPath(record, call);
    return path === undefined ? rest : { ...rest, record: path };
  }

  async #answer(invite: IncomingInvite, res: InviteResponder): Promise<void> {
    let call: SimCall;
    try {
      call = await this.newCall((n) => this.#mediaOptions(n));
    } catch (error) {
      res.send(500);
      throw error;
    }
    call.callId = invite.callId;
    call.inviteHeaders = invite.headers;
    this.report({
      event: 'invite-received',
      call: call.index,
      callId: call.callId,
      from: formatNameAddr(invite.from),
      to: formatNameAddr(invite.to),
      headers: headerRecord(invite.headers),
    });
    this.#deliver(call);
    invite.on('cancel', () => void call.end('cancelled', 487));
    call.onAbort = () => {
      if (!res.answered && !invite.cancelled) res.send(480);
      return 480;
    };
    const { ringMs, reject } = this.#options;
    if (ringMs !== undefined) {
      res.send(180);
      call.ringing(180);
      if (!(await call.ring(ringMs))) return;
    }
    if (call.over) return;
    if (reject !== undefined) {
      res.send(reject);
      await call.end('rejected', reject);
      return;
    }
    if (!(await this.openRtp(call))) return;
    let answered;
    try {
      answered = answer(invite.sdp, this.sdpAddress, call.localRtp!.port, String(randomInt(1, 2 ** 31)));
    } catch (error) {
      if (!(error instanceof SdpError)) throw error;
      res.send(488);
      this.#reportError(call, error);
      await call.end('failed', 488);
      return;
    }
    if (call.over || invite.cancelled) return;
    let dialog;
    try {
      dialog = await this.untilClosed(this.ua.createUAS(invite, res, { localSdp: answered.sdp }));
    } catch (error) {
      // the 200 went out (the INVITE's status), but no ACK came within 64·T1 (RFC 3261
      // §13.3.1.4), or the dialog ended before it did (a CANCEL or a BYE crossing the 200)
      const noAck = error instanceof SipRequestFailedError && error.status === 408;
      await call.end(noAck ? 'timeout' : invite.cancelled ? 'cancelled' : 'failed', 200);
      return;
    }
    if (dialog === undefined) return; // the agent closed; close() ended the call
    call.answered(dialog, answered.media, answered.media.telephoneEvent);
  }

  #deliver(call: SimCall): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter.resolve(call);
    else if (this.#arrived.push(call) > MAX_UNCLAIMED_CALLS) this.#arrived.shift();
  }

  #reportError(call: SimCall | undefined, error: unknown): void {
    this.report({ event: 'error', ...(call ? { call: call.index } : {}), ...describeFailure(error) });
  }
}
