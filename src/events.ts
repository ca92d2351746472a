/**
 * A small typed event emitter (mediasoup's EnhancedEventEmitter idea): events and their
 * argument lists are a type, and a listener that throws cannot break the emitter's caller —
 * its error goes to `onListenerError` (the process's logger), and the next listener runs.
 */

export type EventMap = Record<string, unknown[]>;

type Listener<Args extends unknown[]> = (...args: Args) => void;
/** Listeners are stored type-erased; `on` and `emit` keep the types at the edges. */
type AnyListener = (...args: unknown[]) => void;

export let onListenerError: (error: unknown, event: string) => void = () => {};

/** Where listener errors go (set once by the process that owns the logger). */
export function setListenerErrorHandler(handler: (error: unknown, event: string) => void): void {
  onListenerError = handler;
}

export class TypedEmitter<Events extends EventMap> {
  readonly #listeners = new Map<keyof Events, AnyListener[]>();

  on<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    const list = this.#listeners.get(event) ?? [];
    list.push(listener as unknown as AnyListener);
    this.#listeners.set(event, list);
    return this;
  }

  once<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    const wrapped: Listener<Events[E]> = (...args) => {
      this.off(event, wrapped);
      listener(...args);
    };
    return this.on(event, wrapped);
  }

  off<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    const list = this.#listeners.get(event);
    if (list) {
      const i = list.indexOf(listener as unknown as AnyListener);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  }

  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  removeAllListeners(): void {
    this.#listeners.clear();
  }

  /** Calls every listener; returns whether there was any. A throwing listener is reported, not rethrown. */
  protected emit<E extends keyof Events>(event: E, ...args: Events[E]): boolean {
    const list = this.#listeners.get(event);
    if (!list || list.length === 0) return false;
    for (const listener of [...list]) {
      try {
        listener(...(args as unknown[]));
      } catch (error) {
        onListenerError(error, String(event));
      }
    }
    return true;
  }
}
