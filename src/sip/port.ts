/**
 * The signaling port: the one interface hushpay's calls use for SIP, shaped like drachtio-srf
 * (`on('invite')`, `createUAS`, `createUAC`, and a Dialog with `modify`, `request`, `destroy`
 * and the events `destroy`, `modify`, `info`). Two adapters implement it:
 * - embedded (the default): hushpay's own SIP core in this process (embedded.ts);
 * - drachtio: drachtio-srf talking to a drachtio-server in front (drachtio.ts).
 *
 * Calls never see a socket or a SIP transaction — only these.
 */

import type { TypedEmitter } from '../events.ts';
import type { SipHeaders, SipResponse } from './message.ts';

/** Who sent an INVITE, as the transport saw it (for tenant routing by source address). */
export interface PortSource {
  readonly transport: 'udp' | 'tcp' | 'tls';
  readonly host: string;
  readonly port: number;
}

/** An incoming INVITE (drachtio-srf's `req`). Emits 'cancel' if the caller gives up. */
export interface PortInvite extends Pick<TypedEmitter<{ cancel: [] }>, 'on' | 'off' | 'once'> {
  readonly callId: string;
  readonly uri: string;
  readonly headers: SipHeaders;
  readonly sdp: string;
  readonly source: PortSource;
  readonly cancelled: boolean;
}

/** Sends provisional and failure responses to a PortInvite (drachtio-srf's `res`). */
export interface PortResponder {
  readonly answered: boolean;
  send(status: number, options?: { reason?: string; headers?: Iterable<readonly [string, string]> }): void;
}

export interface PortDialogEnd {
  readonly by: 'local' | 'remote' | 'timeout' | 'error';
  readonly status?: number;
}

export interface PortModify {
  readonly method: 'INVITE' | 'UPDATE';
  readonly sdp: string;
  readonly headers: SipHeaders;
  respond(status: number, options?: { sdp?: string; reason?: string }): void;
}

export interface PortInfo {
  readonly headers: SipHeaders;
  readonly contentType: string;
  readonly body: string;
  respond(status: number): void;
}

export interface PortDialogEvents extends Record<string, unknown[]> {
  destroy: [PortDialogEnd];
  modify: [PortModify];
  info: [PortInfo];
}

export interface PortDialog extends Pick<TypedEmitter<PortDialogEvents>, 'on' | 'off' | 'once'> {
  readonly callId: string;
  readonly localSdp: string;
  readonly remoteSdp: string;
  readonly destroyed: boolean;
  /** Sends a re-INVITE; resolves with the peer's SDP. */
  modify(sdp: string): Promise<string>;
  request(method: string, options?: { headers?: Iterable<readonly [string, string]>; body?: string; contentType?: string }): Promise<SipResponse>;
  /** Ends the dialog with a BYE; idempotent. */
  destroy(): Promise<void>;
}

export interface PortUacOptions {
  readonly localSdp: string;
  readonly headers?: Iterable<readonly [string, string]>;
  readonly fromUser?: string;
  readonly fromDisplayName?: string;
  readonly credentials?: { readonly username: string; readonly password: string };
}

export interface PortUacCallbacks {
  readonly onProvisional?: (response: SipResponse) => void;
  /** Aborting cancels the INVITE (CANCEL after the first provisional response). */
  readonly signal?: AbortSignal;
}

export interface SignalingPortEvents extends Record<string, unknown[]> {
  invite: [PortInvite, PortResponder];
}

export interface SignalingPort extends Pick<TypedEmitter<SignalingPortEvents>, 'on' | 'off'> {
  /** Where the port listens, for logs and the start banner. */
  readonly listening: readonly string[];
  createUAS(invite: PortInvite, res: PortResponder, options: { localSdp: string; headers?: Iterable<readonly [string, string]> }): Promise<PortDialog>;
  createUAC(uri: string, options: PortUacOptions, callbacks?: PortUacCallbacks): Promise<PortDialog>;
  /** Live dialogs and transactions, for metrics and leak checks. */
  readonly counts: { readonly dialogs: number; readonly transactions: number };
  close(): Promise<void>;
}
