import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.ts';
import { NoRtpWatch } from '../../src/calls/noRtp.ts';

function setup(timeoutMs = 1000) {
  const clock = new FakeClock();
  let packets = 0;
  const silentAt: number[] = [];
  const watch = new NoRtpWatch({ clock, timeoutMs, count: () => packets, onSilent: () => silentAt.push(clock.now()) });
  const sendEvery20msUntil = (end: number): void => {
    while (clock.now() < end) {
      packets++;
      clock.advance(20);
    }
  };
  return { clock, watch, silentAt, sendEvery20msUntil };
}

describe('NoRtpWatch', () => {
  it('never fires while packets flow', () => {
    const { watch, silentAt, sendEvery20msUntil } = setup();
    watch.start();
    sendEvery20msUntil(60_000);
    expect(silentAt).toEqual([]);
  });

  it('fires once, between 1 and 1¼ timeouts after the last packet, wherever the last packet falls', () => {
    for (const stopAt of [1000, 1130, 1250, 1370, 1490]) {
      const { clock, watch, silentAt, sendEvery20msUntil } = setup();
      watch.start();
      sendEvery20msUntil(stopAt);
      const last = clock.now() - 20;
      clock.advance(10_000);
      expect(silentAt).toHaveLength(1);
      expect(silentAt[0]! - last).toBeGreaterThanOrEqual(1000);
      expect(silentAt[0]! - last).toBeLessThanOrEqual(1250);
      expect(clock.pending).toBe(0);
    }
  });

  it('counts from start(): silence before a restart (a resume from hold) does not count', () => {
    const { clock, watch, silentAt } = setup();
    watch.start();
    clock.advance(900); // 900 ms of silence, then on hold: the watch stops
    watch.stop();
    clock.advance(5000);
    watch.start(); // resumed at 5900: silence is counted from here
    clock.advance(999);
    expect(silentAt).toEqual([]);
    clock.advance(1);
    expect(silentAt).toEqual([6900]);
    expect(clock.pending).toBe(0); // fired once, nothing left scheduled
  });

  it('stop() leaves no timer behind', () => {
    const { clock, watch, silentAt } = setup();
    watch.start();
    watch.stop();
    expect(clock.pending).toBe(0);
    clock.advance(10_000);
    expect(silentAt).toEqual([]);
  });
});
