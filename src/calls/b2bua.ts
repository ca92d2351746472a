/**
 * The B2BUA: every INVITE from the trunk becomes a Call to the tenant's PBX. It enforces the
 * call limit (503 beyond it), routes by tenant (404 when none takes the call), and keeps the
 * live calls until they end.
 */

import type { HushpayConfig } from '../config.ts';
import { routeTenant } from '../config.ts';
import { TypedEmitter } from '../events.ts';
import { parseUri } from '../sip/message.ts';
import type { PortInvite, PortResponder } from '../sip/port.ts';
import { Call, type CallDeps, type CallEnd } from './call.ts';

interface B2buaEvents extends Record<string, unknown[]> {
  call: [Call];
  ended: [Call, CallEnd];
}

export class B2bua extends TypedEmitter<B2buaEvents> {
  readonly #deps: CallDeps;
  readonly #calls = new Map<string, Call>();
  readonly #onInvite = (invite: PortInvite, res: PortResponder): void => this.#invite(invite, res);
  #closing: Promise<void> | undefined;
  #rejected = { limit: 0, noRoute: 0 };

  constructor(deps: CallDeps) {
    super();
    this.#deps = deps;
    deps.port.on('invite', this.#onInvite);
  }

  get config(): HushpayConfig {
    return this.#deps.config;
  }

  get calls(): ReadonlyMap<string, Call> {
    return this.#calls;
  }

  get rejected(): { readonly limit: number; readonly noRoute: number } {
    return { ...this.#rejected };
  }

  #invite(invite: PortInvite, res: PortResponder): void {
    if (this.#closing) {
      res.send(503);
      return;
    }
    const config = this.#deps.config;
    if (this.#calls.size >= config.calls.max) {
      this.#rejected.limit++;
      res.send(503, { headers: [['Retry-After', '5']] });
      return;
    }
    let called: string | undefined;
    try {
      called = parseUri(invite.uri).user;
    } catch {
      called = undefined;
    }
    const tenant = routeTenant(config.tenants, called, invite.source.host);
    if (!tenant) {
      this.#rejected.noRoute++;
      res.send(404);
      return;
    }
    const call = new Call(this.#deps, tenant, invite, res);
    this.#calls.set(call.id, call);
    call.on('ended', (end) => {
      this.#calls.delete(call.id);
      this.emit('ended', call, end);
    });
    this.emit('call', call);
    void call.start().catch(() => call.close({ reason: 'error', status: 500 }));
  }

  /** Ends every call and stops taking new ones, once. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#deps.port.off('invite', this.#onInvite);
      await Promise.allSettled([...this.#calls.values()].map((c) => c.close({ reason: 'shutdown' })));
      this.removeAllListeners();
    })();
    return this.#closing;
  }
}
