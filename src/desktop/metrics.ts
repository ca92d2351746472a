/**
 * `/metrics` in the Prometheus text format (exposition format 0.0.4): live calls, payments by
 * result, digits by channel, masked tones, webhook deliveries. Counts only — no label ever
 * carries a digit, a number or an id.
 */

export class Counter {
  readonly #values = new Map<string, number>();
  readonly name: string;
  readonly help: string;
  readonly labelName: string | undefined;

  constructor(name: string, help: string, labelName?: string) {
    this.name = name;
    this.help = help;
    this.labelName = labelName;
  }

  inc(label = '', by = 1): void {
    this.#values.set(label, (this.#values.get(label) ?? 0) + by);
  }

  get(label = ''): number {
    return this.#values.get(label) ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.#values.size === 0 && !this.labelName) lines.push(`${this.name} 0`);
    for (const [label, value] of [...this.#values].sort()) {
      lines.push(this.labelName ? `${this.name}{${this.labelName}="${label.replace(/["\\\n]/g, '_')}"} ${value}` : `${this.name} ${value}`);
    }
    return lines.join('\n');
  }
}

export class Metrics {
  readonly payments = new Counter('hushpay_payments_total', 'Payments ended, by result.', 'result');
  readonly digits = new Counter('hushpay_digits_total', 'Digits heard from callers, by channel.', 'channel');
  readonly maskedTones = new Counter('hushpay_masked_tones_total', 'DTMF-like tones masked on calls that have ended.');
  readonly webhookDeliveries = new Counter('hushpay_webhook_deliveries_total', 'Webhook delivery attempts, by outcome.', 'outcome');
  readonly calls = new Counter('hushpay_calls_total', 'Calls that have ended, by reason.', 'reason');
  readonly #gauges: { name: string; help: string; read: () => number }[] = [];

  /** A value read when scraped (live calls, outbox backlog). */
  gauge(name: string, help: string, read: () => number): void {
    this.#gauges.push({ name, help, read });
  }

  render(): string {
    const parts = this.#gauges.map((g) => `# HELP ${g.name} ${g.help}\n# TYPE ${g.name} gauge\n${g.name} ${g.read()}`);
    for (const c of [this.calls, this.payments, this.digits, this.maskedTones, this.webhookDeliveries]) parts.push(c.render());
    return parts.join('\n') + '\n';
  }
}
