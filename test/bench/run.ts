/**
 * `npm run bench`: the figures the issues name, each measured in this one run and printed as
 * a table beside its target and its anchor (the anchors that can run here are measured here
 * too, on the same audio).
 */

import { cpus } from 'node:os';
import { ALL_DIGITS, type DtmfDigit } from '../../src/media/dtmf/frequencies.ts';
import { ComfortNoise, addDtmfTone, toInt16 } from '../../src/media/dtmf/tones.ts';
import { encode } from '../../src/media/g711.ts';
import { concatPcm, musicOnHold } from '../support/corpus.ts';
import type { LoadRun } from './calls.ts';
import {
  KEYPAD_KEYS_WIDE,
  LEAK_KEYS,
  detectionFigures,
  falseMaskingFigures,
  maskUlaw,
  matrixFigures,
  measuredDelayMs,
  naturalSpeech,
  q24Figures,
  quantile,
  referees,
  sceneFigures,
  toneEdges,
} from './media.ts';

interface Row {
  readonly figure: string;
  readonly value: string;
  readonly target: string;
  readonly anchor: string;
}

const rows: Row[] = [];
const notes: string[] = [];
const row = (figure: string, value: string, target: string, anchor = ''): void => {
  rows.push({ figure, value, target, anchor });
};
const pct = (v: number, digits = 2): string => `${v.toFixed(digits)} %`;
const ms = (v: number): string => `${Number.isFinite(v) ? v.toFixed(1) : '–'} ms`;
const step = (what: string): void => {
  process.stderr.write(`[bench] ${what}\n`);
};

async function media(): Promise<void> {
  step('tone matrix: building, masking at 20 / 15 / 10 ms, decoding');
  const matrix = await matrixFigures([20, 15, 10]);
  const main = matrix.byDelay[0]!;
  row(
    `digits recovered from masked output, tone matrix (${matrix.tones.toLocaleString('en')} tones; ${matrix.input.multimon} / ${matrix.input.spandsp} decodable unmasked), multimon-ng / spandsp / spandsp wide`,
    matrix.byDelay.map((d) => `${d.output.multimon} / ${d.output.spandsp} / ${d.output.wide} at ${d.delayMs} ms`).join('; '),
    '0 and 0',
    'rtpengine with a 40 ms buffer still leaks 25–30 ms tones',
  );
  row('added latency on a masked output (measured lag of unmasked audio)', `${measuredDelayMs(naturalSpeech()[0]!.samples, 20)} ms (default); 15 and 10 ms selectable`, '≤ 20 ms; 15 or less better', 'rtpengine needs 40 ms for zero leak');
  row(
    'audio masked after a tone ends, tone matrix: p99 / max',
    matrix.byDelay.map((d) => `${ms(d.afterEndP99)} / ${ms(d.afterEndMax)} at ${d.delayMs} ms`).join('; '),
    '≤ 20 ms',
    'rtpengine 60–80 ms; prototype ≤ 17.4 ms',
  );
  row(
    'tone sent before its mask began, tone matrix: p99 / max (tones never masked: none decodable)',
    matrix.byDelay.map((d) => `${ms(d.startLeakP99)} / ${ms(d.startLeakMax)} (${d.unmasked} unmasked) at ${d.delayMs} ms`).join('; '),
    'report',
    'prototype at 20 ms: 0 / 25 ms',
  );

  step('speech corpora: false masking, talk-off, cost');
  const speech = naturalSpeech();
  const fm = await falseMaskingFigures(speech);
  row(
    `natural recorded speech altered when no key is pressed (${fm.naturalMinutes.toFixed(0)} min, 5 languages)`,
    `${pct(fm.naturalPct)} of 20 ms frames (${fm.natural.map((n) => `${n.language} ${n.pct.toFixed(2)}`).join(', ')})`,
    '≤ 0.5 %',
    'prototype 0.21 %',
  );
  row('digits named in that speech (talk-off)', `${fm.naturalDigits}`, 'report (Q.24: NTT ≤ 6 per 46 h)', 'multimon-ng 1, spandsp 0 on the same speech (measured while tuning)');
  row(
    'synthetic speech (espeak-ng, 10 voices × 4 pitches) altered',
    `${pct(fm.espeakPct)} (pitch ${fm.espeak.map((e) => `${e.pitch}: ${e.pct.toFixed(2)}`).join(', ')}); digits named: ${fm.espeakDigits}`,
    'report; lower is better',
    'prototype 1.5 %',
  );
  row('synthetic speech (flite, 5 voices) altered', fm.flitePct === undefined ? 'flite not installed' : pct(fm.flitePct), 'report', '');
  row(`music on hold altered (${fm.musicMinutes.toFixed(0)} min)`, pct(fm.musicPct), 'report; lower is better', 'prototype 1.8 %');
  row(
    'detector + masker cost per 20 ms frame over natural speech (two listeners), best of 3',
    `${fm.costUs.toFixed(2)} µs (${Math.floor(20_000 / fm.costUs).toLocaleString('en')} call directions per core)`,
    '≤ 10 µs (≥ 2,000 per core)',
    `spandsp dtmf_rx on the same audio: ${fm.spandspCostUs.toFixed(2)} µs (detection only)`,
  );

  step('Q.24 accept and reject sets');
  const q = q24Figures();
  row(
    'Q.24 accept set detected / reject set falsely detected (AT&T and NTT, sox-made audio)',
    `${q.acceptDetected} of ${q.accept} (${pct((100 * q.acceptDetected) / q.accept, 1)}) / ${q.rejectFalse} of ${q.reject}`,
    '100 % / 0',
    'spandsp passes Q.24',
  );
  for (const f of q.failures) notes.push(`Q.24 failure: ${f}`);

  step('speech over digits: leaks and detection');
  const allSpeech = concatPcm(speech.map((s) => s.samples));
  const leak = await sceneFigures(allSpeech, LEAK_KEYS, 100_000, 11);
  row(
    `digits recovered from masked output, speech over digits (${leak.keys.toLocaleString('en')} keys −3…−30 dBm0, ±8 dB twist, ±3 %, 20–200 ms, under −14 dBm0 speech; ${leak.input.multimon} / ${leak.input.spandsp} decodable unmasked)`,
    `${leak.output.multimon} / ${leak.output.spandsp} / ${leak.output.wide}`,
    '0 and 0',
    '',
  );
  const detect = await detectionFigures(allSpeech, 160, 21);
  row(
    'digits found with speech at −14 dBm0 over them (160 keyed, −8…−12 dBm0, ±0.5 %, 60–120 ms)',
    `${detect.hushpay} of ${detect.keys} (${detect.hushpayInvented} invented)`,
    '≥ 156',
    `multimon-ng ${detect.multimon}, spandsp ${detect.spandsp} on the same keys (issue's anchor: 156 and 110)`,
  );
  const detectMore = await detectionFigures(allSpeech, 1000, 22);
  row('  … the same, 1,000 keyed (steadier figure)', `${detectMore.hushpay} of ${detectMore.keys} (${detectMore.hushpayInvented} invented)`, '≥ 97.5 %', `multimon-ng ${detectMore.multimon}, spandsp ${detectMore.spandsp}`);
  const detectWide = await detectionFigures(allSpeech, 1000, 23, KEYPAD_KEYS_WIDE);
  row('  … keys ±1 % off nominal (a worn sender)', `${detectWide.hushpay} of ${detectWide.keys}`, 'report', `multimon-ng ${detectWide.multimon}, spandsp ${detectWide.spandsp}`);
}

/**
 * The audio rtpengine is measured on: the card number 4111222233334444 at −10 dBm0 per tone,
 * 80 ms on / 80 ms off, then 25–40 ms tones, over a bed — music on hold (as dtmf.md §2.2 did;
 * its first seconds hold a sustained 770 + 1633 Hz chord, which both maskers treat as a tone)
 * or quiet line noise at −55 dBm0 (where "masked after the tone" means only the tone's mask).
 */
function rtpengineScene(bed: 'music' | 'quiet'): { ulaw: Uint8Array; tones: { startSample: number; endSample: number }[] } {
  const length = 8000 * 8;
  const signal = new Float64Array(length);
  if (bed === 'music') {
    const music = musicOnHold().find((m) => m.name.includes('cold_day'))?.samples ?? new Int16Array(8000 * 40);
    for (let i = 0; i < length; i++) signal[i] = (music[(i + 8000 * 30) % music.length] ?? 0) * 10 ** (-12 / 20);
  } else {
    const noise = new ComfortNoise(7, -55);
    for (let i = 0; i < length; i++) signal[i] = noise.next();
  }
  const tones: { startSample: number; endSample: number }[] = [];
  let at = 4000;
  for (const digit of '4111222233334444') {
    addDtmfTone(signal, at, 640, digit as DtmfDigit, { levelDbm0: -10 });
    tones.push({ startSample: at, endSample: at + 640 });
    at += 1280;
  }
  for (const durationMs of [25, 30, 35, 40, 25, 30, 35, 40]) {
    const digit = ALL_DIGITS[tones.length % 16]!;
    addDtmfTone(signal, at, durationMs * 8, digit, { levelDbm0: -10 });
    tones.push({ startSample: at, endSample: at + durationMs * 8 });
    at += durationMs * 8 + 960;
  }
  return { ulaw: encode('pcmu', toInt16(signal.subarray(0, at + 4000))), tones };
}

async function rtpengine(): Promise<void> {
  let module: typeof import('./rtpengine.ts');
  try {
    module = await import('./rtpengine.ts');
  } catch {
    notes.push('rtpengine: no harness in this checkout');
    return;
  }
  const available = module.rtpengineAvailable();
  if (!available.ok) {
    notes.push(`rtpengine: not measured (${available.why})`);
    return;
  }
  step('rtpengine side by side (real time)');
  for (const bed of ['music', 'quiet'] as const) {
    const scene = rtpengineScene(bed);
    const input = await referees(scene.ulaw);
    const ours = maskUlaw(scene.ulaw);
    const ourOut = await referees(ours.output);
    const afterEnd = (spans: [number, number][]): string => {
      const edges = toneEdges(scene.tones, spans, 960);
      return bed === 'quiet' ? `; masked after tone end p99 ${ms(quantile(edges.afterEndMs, 0.99))}, max ${ms(Math.max(...edges.afterEndMs))}` : '';
    };
    row(
      `card number + 25–40 ms tones over ${bed === 'music' ? 'music on hold' : 'quiet line noise'} (${scene.tones.length} tones; ${input.multimon} / ${input.spandsp} decodable): hushpay at 20 ms`,
      `decoded ${ourOut.multimon} / ${ourOut.spandsp}${afterEnd(ours.spans)}; added latency 20 ms`,
      '0 and 0',
      '',
    );
    for (const delayBufferMs of [20, 40]) {
      const run = await module.runRtpengine(scene.ulaw, { delayBufferMs, security: 'silence' });
      const decoded = await referees(run.output);
      row(
        `  … rtpengine 10.5 (block DTMF, silence, delay-buffer ${delayBufferMs} ms), same audio`,
        `decoded ${decoded.multimon} / ${decoded.spandsp}${afterEnd(module.maskedSpansOf(scene.ulaw, run.output))}; added latency ${run.addedLatencyMs.toFixed(1)} ms`,
        '',
        'anchor, measured here',
      );
    }
  }
}

/** A load run passes when every call came up, nothing was lost and p99 added jitter ≤ 5 ms. */
function passes(r: LoadRun): boolean {
  const worst = Math.max(r.callerToAgent.addedJitterP99Ms ?? Number.POSITIVE_INFINITY, r.agentToCaller.addedJitterP99Ms ?? Number.POSITIVE_INFINITY);
  return r.callsUp === r.calls && r.callerToAgent.lost === 0 && r.agentToCaller.lost === 0 && worst <= 5;
}

async function calls(): Promise<void> {
  const module = await import('./calls.ts');
  step('concurrent calls: hushpay on core 0 (masking and recording on), load from core 1');
  const runs: LoadRun[] = [];
  let best: LoadRun | undefined;
  for (const n of [100, 200, 300, 350, 400, 450, 500, 600]) {
    let r = await module.loadRun(n);
    if (!passes(r)) {
      step(`  ${n} calls failed once; again (the machine is shared)`);
      r = await module.loadRun(n);
    }
    runs.push(r);
    if (!passes(r)) break; // twice: this is the limit
    best = r;
  }
  const jitter = (r: LoadRun): string => `${(r.callerToAgent.addedJitterP99Ms ?? Number.NaN).toFixed(1)} / ${(r.agentToCaller.addedJitterP99Ms ?? Number.NaN).toFixed(1)} ms`;
  row(
    'concurrent calls one core relays, masking and recording on, no packet lost, p99 added jitter ≤ 5 ms',
    best ? `${best.calls} (hushpay CPU ${best.hushpayCpuPct.toFixed(0)} %, p99 added jitter caller→agent / agent→caller ${jitter(best)})` : 'fewer than 100',
    '≥ 500',
    'rtpengine in userspace, one core: 800 plain, 400 with DTMF blocking on the caller leg (300 in every run), 200 on both legs',
  );
  for (const r of runs) {
    const lost = r.callerToAgent.lost + r.agentToCaller.lost;
    row(
      `  … ${r.calls} calls (${(r.callerToAgent.sent + r.agentToCaller.sent).toLocaleString('en')} packets in 10 s)`,
      `${passes(r) ? 'pass' : 'fail'}: CPU ${r.hushpayCpuPct.toFixed(0)} %, lost ${lost}, p99 added jitter ${jitter(r)}, calls up ${r.callsUp}`,
      '',
      `generator CPU ${r.generatorCpuPct.toFixed(0)} %, late sends ${r.lateSends}`,
    );
  }
  if (best) {
    const perCall = (best.rssKiBLoaded - best.rssKiBIdle) / best.calls;
    row(
      `memory per active call ((resident memory with ${best.calls} calls − idle) / ${best.calls})`,
      `${perCall.toFixed(0)} KiB (${(best.rssKiBIdle / 1024).toFixed(0)} MiB idle, ${(best.rssKiBLoaded / 1024).toFixed(0)} MiB loaded)`,
      '≤ 256 KiB',
      '',
    );
  }

  step('call setup rate: SIPp uac → hushpay → SIPp uas, 5 s at each rate');
  const rates = await module.setupRate([100, 200, 400, 800]);
  const ok = rates.filter((r) => r.failed === 0 && r.calls === r.rate * 5);
  // SIPp reports whole milliseconds
  const rtt = (v: number | undefined): string => (v === undefined ? '–' : v === 0 ? '< 1 ms' : `${v} ms`);
  const top = ok.at(-1);
  row(
    'call setup rate (SIPp, INVITE to 200 OK through hushpay, recording on), all calls completing',
    top ? `${top.rate} calls/s (INVITE → 200 OK p50 ${rtt(top.p50ResponseMs)}, p99 ${rtt(top.p99ResponseMs)})` : 'under 100 calls/s',
    '≥ 100 calls/s',
    '',
  );
  for (const r of rates) row(`  … ${r.rate} calls/s`, `${r.calls} completed, ${r.failed} failed; INVITE → 200 OK p50 ${rtt(r.p50ResponseMs)}, p99 ${rtt(r.p99ResponseMs)}`, '', '');
}

async function desk(): Promise<void> {
  const module = await import('./desk.ts');
  for (const dtmf of ['rfc4733', 'inband'] as const) {
    step(`keypress to capture.progress on the agent's WebSocket: 10 callers keying ${dtmf}`);
    const r = await module.keypressToProgress(dtmf, 10);
    const sorted = [...r.latenciesMs].sort((a, b) => a - b);
    row(
      `keypress (end of the key as the caller sent it) to capture.progress on a connected WebSocket, ${dtmf}, ${r.calls} concurrent calls: p50 / p99 / max`,
      `${ms(quantile(sorted, 0.5))} / ${ms(quantile(sorted, 0.99))} / ${ms(sorted.at(-1) ?? Number.NaN)} (${r.matched} of ${r.keys} keys)`,
      'p99 ≤ 100 ms',
      '',
    );
  }
}

function print(): void {
  const date = new Date().toISOString().slice(0, 10);
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  process.stdout.write(`\nhushpay bench — ${date}, Node ${process.version}, ${cpus().length} × ${cpu}\n\n`);
  process.stdout.write('| figure | hushpay | target | anchor |\n|---|---|---|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.figure} | ${r.value} | ${r.target} | ${r.anchor} |\n`);
  if (notes.length > 0) process.stdout.write(`\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
}

const only = process.argv[2];
if (!only || only === 'media') await media();
if (!only || only === 'rtpengine') await rtpengine();
if (!only || only === 'calls') await calls();
if (!only || only === 'desk') await desk();
print();
