// Speech and music sources for tests and the benchmark, all as 8 kHz mono Int16Array:
// natural recorded IVR prompts (Asterisk core sounds, five languages), synthetic speech
// (espeak-ng, flite) band-limited to 300–3400 Hz as a telephone carries it, and music on hold.
// Plus the level tools the scenes need: ITU-T P.56 active speech level (method B), scaling to an
// active level, mixing with clipping, and a seeded PRNG.
//
// Level convention: dBm0 = 20·log10(rms / 16174) (0 dBm0 sine = rms 16,174, peak 22,873).
// Generated audio is cached in node_modules/.cache/hushpay-corpus/, keyed by its parameters.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SAMPLE_RATE = 8000;
/** rms of a 0 dBm0 signal in 16-bit linear units */
export const DBM0_RMS = 16174;

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CORPUS_CACHE_DIR = join(REPO_ROOT, 'node_modules', '.cache', 'hushpay-corpus');
/** Bump when the way audio is generated changes, so stale cache entries are not reused. */
const CACHE_VERSION = 1;

/** Where Debian's asterisk-core-sounds-*-wav packages put the prompts. */
export const ASTERISK_SOUNDS_DIR = process.env['HUSHPAY_ASTERISK_SOUNDS'] ?? '/usr/share/asterisk/sounds';
/** Where asterisk-moh-opsound-wav puts music on hold. */
export const ASTERISK_MOH_DIR = process.env['HUSHPAY_ASTERISK_MOH'] ?? '/usr/share/asterisk/moh';

// ---------------------------------------------------------------------------------------------
// reading audio

const RAW_OUT = ['-t', 'raw', '-e', 'signed-integer', '-b', '16', '-L', '-r', String(SAMPLE_RATE), '-c', '1', '-'];

function int16FromLe(buf: Buffer): Int16Array {
  const n = Math.floor(buf.length / 2);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = buf.readInt16LE(2 * i);
  return out;
}

function sox(args: string[], input?: Buffer): Buffer {
  try {
    return execFileSync('sox', ['-D', '-R', '-V1', ...args], {
      maxBuffer: 1 << 30,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(input === undefined ? {} : { input }),
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`sox failed (apt-get install sox libsox-fmt-all): ${msg}`);
  }
}

/** Samples of a plain 16-bit PCM, 8 kHz, mono WAV, or undefined if the file is anything else. */
function parsePcm16Mono8k(buf: Buffer): Int16Array | undefined {
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WAVE') return undefined;
  let pos = 12;
  let fmtOk = false;
  while (pos + 8 <= buf.length) {
    const id = buf.toString('latin1', pos, pos + 4);
    const size = buf.readUInt32LE(pos + 4);
    const body = pos + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > buf.length) return undefined;
      let format = buf.readUInt16LE(body);
      const channels = buf.readUInt16LE(body + 2);
      const rate = buf.readUInt32LE(body + 4);
      const bits = buf.readUInt16LE(body + 14);
      if (format === 0xfffe && size >= 40 && body + 26 <= buf.length) format = buf.readUInt16LE(body + 24);
      fmtOk = format === 1 && channels === 1 && rate === SAMPLE_RATE && bits === 16;
      if (!fmtOk) return undefined;
    } else if (id === 'data') {
      if (!fmtOk) return undefined;
      const end = Math.min(buf.length, body + size);
      return int16FromLe(buf.subarray(body, end));
    }
    pos = body + size + (size & 1);
  }
  return undefined;
}

/**
 * Reads any sox-readable audio file as 8 kHz mono 16-bit samples. Plain 16-bit 8 kHz mono WAV
 * (all Asterisk prompts and MOH files) is parsed directly; anything else goes through sox.
 */
export function readPcm16Wav(file: string): Int16Array {
  const direct = parsePcm16Mono8k(readFileSync(file));
  if (direct) return direct;
  return int16FromLe(sox([file, ...RAW_OUT]));
}

/** Concatenates arrays of samples. */
export function concatPcm(parts: readonly Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// natural speech and music on hold

export interface SpeechSet {
  /** two-letter language code: en, es, fr, it, ru */
  language: string;
  /** the Asterisk sound-set directory, e.g. en_US_f_Allison (one speaker each) */
  speaker: string;
  /** absolute paths of its WAV files, sorted by relative path (byte order) */
  files: string[];
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function listWavs(dir: string, root: string, out: string[]): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isSymbolicLink()) continue;
    if (st.isDirectory()) {
      // digital silence, not speech
      if (name === 'silence' && dir === root) continue;
      listWavs(path, root, out);
    } else if (st.isFile() && name.toLowerCase().endsWith('.wav')) {
      out.push(path);
    }
  }
}

/**
 * The Asterisk prompt WAVs, one entry per sound-set directory (language_COUNTRY_sex_Speaker),
 * sorted by directory name, files sorted by path. Symlinked directories (e.g. `en` → en_US_f_Allison)
 * are skipped so nothing is listed twice, and so is each set's `silence/` directory.
 */
export function naturalSpeechFiles(root: string = ASTERISK_SOUNDS_DIR): SpeechSet[] {
  if (!existsSync(root)) return [];
  const sets: SpeechSet[] = [];
  for (const name of readdirSync(root).sort(byteOrder)) {
    const m = /^([a-z]{2})_[A-Z]{2}_[fm]_/.exec(name);
    const dir = join(root, name);
    if (!m?.[1] || lstatSync(dir).isSymbolicLink() || !lstatSync(dir).isDirectory()) continue;
    const files: string[] = [];
    listWavs(dir, dir, files);
    files.sort((a, b) => byteOrder(relative(dir, a), relative(dir, b)));
    if (files.length > 0) sets.push({ language: m[1], speaker: name, files });
  }
  return sets;
}

/** The music-on-hold WAVs, sorted, as 8 kHz mono. */
export function musicOnHold(dir: string = ASTERISK_MOH_DIR): { name: string; samples: Int16Array }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.toLowerCase().endsWith('.wav'))
    .sort(byteOrder)
    .map((f) => ({ name: basename(f, '.wav'), samples: readPcm16Wav(join(dir, f)) }));
}

// ---------------------------------------------------------------------------------------------
// synthetic speech

function cachePath(kind: string, params: unknown): string {
  const key = createHash('sha256')
    .update(JSON.stringify({ v: CACHE_VERSION, kind, params }))
    .digest('hex')
    .slice(0, 24);
  return join(CORPUS_CACHE_DIR, `${kind}-${key}.s16`);
}

function cached(kind: string, params: unknown, make: () => Int16Array): Int16Array {
  const path = cachePath(kind, params);
  if (existsSync(path)) return int16FromLe(readFileSync(path));
  const samples = make();
  mkdirSync(CORPUS_CACHE_DIR, { recursive: true });
  const bytes = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) bytes.writeInt16LE(samples[i] ?? 0, 2 * i);
  // write-then-rename, so concurrent test workers never read half a file
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
  return samples;
}

/** sox effects that make a telephone-band (300–3400 Hz) 8 kHz signal; -G guards against clipping. */
const TELEPHONE_BAND = ['sinc', '300-3400'];

function toTelephone(wav: Buffer): Int16Array {
  return int16FromLe(sox(['-G', '-t', 'wav', '-', ...RAW_OUT, ...TELEPHONE_BAND], wav));
}

export interface EspeakOptions {
  text: string;
  /** espeak-ng voice, optionally with a variant: "en-us", "de+f3", "ja" … */
  voice: string;
  /** 0–99, espeak's default 50 */
  pitch?: number;
  /** words per minute, espeak's default 175 */
  speed?: number;
}

/** espeak-ng speech, resampled to 8 kHz and band-limited to 300–3400 Hz. Cached. */
export function espeakSpeech(opts: EspeakOptions): Int16Array {
  const pitch = opts.pitch ?? 50;
  const speed = opts.speed ?? 175;
  const params = { text: opts.text, voice: opts.voice, pitch, speed, band: TELEPHONE_BAND };
  return cached('espeak', params, () => {
    let wav: Buffer;
    try {
      wav = execFileSync('espeak-ng', ['-b', '1', '-v', opts.voice, '-p', String(pitch), '-s', String(speed), '--stdout', '--stdin'], {
        input: opts.text,
        maxBuffer: 1 << 28,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new Error(`espeak-ng failed (apt-get install espeak-ng): ${msg}`);
    }
    return toTelephone(wav);
  });
}

/** flite voices known to exist in Debian's flite (see `flite -lv`); awb_time only speaks times. */
export const FLITE_VOICES = ['slt', 'kal', 'kal16', 'awb', 'rms'] as const;

/** flite speech, resampled to 8 kHz and band-limited to 300–3400 Hz. Cached. Needs the flite package. */
export function fliteSpeech(text: string, voice: string = 'slt'): Int16Array {
  return cached('flite', { text, voice, band: TELEPHONE_BAND }, () => {
    // flite cannot write to Node's stdout (a socket), so it writes a temporary file
    mkdirSync(CORPUS_CACHE_DIR, { recursive: true });
    const tmp = join(CORPUS_CACHE_DIR, `flite-${process.pid}-${Date.now()}.wav`);
    try {
      execFileSync('flite', ['-voice', voice, '-t', text, '-o', tmp], { stdio: ['ignore', 'ignore', 'pipe'] });
      return toTelephone(readFileSync(tmp));
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new Error(`flite failed (apt-get install flite; voices: flite -lv): ${msg}`);
    } finally {
      rmSync(tmp, { force: true });
    }
  });
}

/** Fixed sentences per language (Japanese in kana: espeak-ng reads kanji as "Chinese letter"). */
export const SENTENCES: Readonly<Record<string, readonly string[]>> = {
  en: [
    'Thank you for calling. Your call may be recorded for quality and training purposes.',
    'Please have your card ready, and enter the sixteen digit number followed by the hash key.',
    'I am sorry, I did not catch that. Could you say it again a little more slowly?',
    'The weather in the north will turn cold tonight, with heavy rain spreading from the west.',
    'She bought three loaves of bread, a bottle of milk and some apples at the corner shop.',
    'Our offices are open Monday to Friday, from nine in the morning until half past five.',
    'Would you like to hear about our new savings account with a higher rate of interest?',
    'The quick brown fox jumps over the lazy dog while the farmer watches from the gate.',
    'If you know the extension of the person you wish to speak to, you may dial it at any time.',
    'Your payment of forty two pounds and seventeen pence has been received. Thank you.',
  ],
  ja: [
    'おでんわ ありがとう ございます。 ただいま たいへん こみあって おります。',
    'カードばんごうを にゅうりょく して、 さいごに シャープを おして ください。',
    'きょうは とても いい てんき ですね。 あしたは あめが ふる そうです。',
    'すみません、 もういちど ゆっくり おねがい できますか。',
    'えきの まえに あたらしい パンやさんが できました。',
  ],
  es: [
    'Gracias por llamar. Su llamada puede ser grabada para mejorar la calidad del servicio.',
    'Por favor, introduzca el número de su tarjeta seguido de la tecla almohadilla.',
    'Lo siento, no le he entendido. ¿Puede repetirlo un poco más despacio?',
    'Mañana por la mañana hará sol en el sur y lloverá en la costa del norte.',
    'Nuestras oficinas abren de lunes a viernes, de nueve de la mañana a seis de la tarde.',
    'Compré dos kilos de naranjas, una barra de pan y un poco de queso en el mercado.',
  ],
  fr: [
    'Merci de votre appel. Votre conversation peut être enregistrée pour des raisons de qualité.',
    'Veuillez saisir le numéro de votre carte, puis appuyez sur la touche dièse.',
    'Je suis désolé, je n’ai pas compris. Pouvez-vous répéter plus lentement ?',
    'Demain, le ciel sera nuageux sur la Bretagne avec quelques averses en soirée.',
    'Nos conseillers sont disponibles du lundi au vendredi, de huit heures à dix-neuf heures.',
    'Elle a acheté une baguette, un fromage de chèvre et une bouteille de vin rouge.',
  ],
  de: [
    'Vielen Dank für Ihren Anruf. Das Gespräch kann zu Schulungszwecken aufgezeichnet werden.',
    'Bitte geben Sie jetzt Ihre Kartennummer ein und drücken Sie anschließend die Rautetaste.',
    'Entschuldigung, das habe ich nicht verstanden. Können Sie das bitte wiederholen?',
    'Am Wochenende wird es im Süden sonnig und warm, im Norden gibt es Gewitter.',
    'Der Zug nach München hat heute leider etwa zwanzig Minuten Verspätung.',
  ],
  it: [
    'Grazie per aver chiamato. La chiamata potrebbe essere registrata per motivi di qualità.',
    'Per favore, digiti il numero della sua carta seguito dal tasto cancelletto.',
    'Mi scusi, non ho capito bene. Può ripetere più lentamente, per favore?',
    'Domani il tempo sarà sereno al centro, con qualche nuvola sulle Alpi.',
    'Ho comprato pane, pomodori e un po’ di formaggio al mercato sotto casa.',
  ],
  ru: [
    'Спасибо за ваш звонок. Разговор может быть записан для контроля качества.',
    'Пожалуйста, введите номер карты и нажмите клавишу решётка.',
    'Извините, я вас не понял. Повторите, пожалуйста, помедленнее.',
    'Завтра в Москве ожидается облачная погода и небольшой снег.',
    'Наш офис работает с понедельника по пятницу с девяти до шести.',
  ],
};

/** The ten espeak-ng voices of the synthetic corpus, with the language of their sentences. */
export const ESPEAK_VOICES: readonly { voice: string; language: string }[] = [
  { voice: 'en-us', language: 'en' },
  { voice: 'en-gb+f3', language: 'en' },
  { voice: 'en-us+m3', language: 'en' },
  { voice: 'ja', language: 'ja' },
  { voice: 'es', language: 'es' },
  { voice: 'es-419+f2', language: 'es' },
  { voice: 'fr-fr', language: 'fr' },
  { voice: 'de+f4', language: 'de' },
  { voice: 'it', language: 'it' },
  { voice: 'ru', language: 'ru' },
];
export const ESPEAK_PITCHES: readonly number[] = [30, 50, 80, 99];
/** words per minute for the corpus: a little slower than espeak's 175, as IVR callers speak */
export const ESPEAK_CORPUS_SPEED = 150;

/** Text of the corpus clip for the v-th voice at the k-th pitch (deterministic). */
function clipText(language: string, voiceIndex: number, pitchIndex: number): string {
  const list = SENTENCES[language] ?? [];
  if (list.length === 0) throw new Error(`no sentences for ${language}`);
  const i = (pitchIndex + 3 * voiceIndex) % list.length;
  return list[i] ?? '';
}

/**
 * The espeak-ng corpus: 10 voices × pitch {30, 50, 80, 99}, one sentence each at 150 words/min, telephone band,
 * about 3–4 minutes in total (as the prototype's, masking-notes.md §2). Deterministic and cached.
 */
export function espeakCorpus(): { voice: string; language: string; pitch: number; text: string; samples: Int16Array }[] {
  const out: { voice: string; language: string; pitch: number; text: string; samples: Int16Array }[] = [];
  ESPEAK_VOICES.forEach(({ voice, language }, v) => {
    ESPEAK_PITCHES.forEach((pitch, k) => {
      const text = clipText(language, v, k);
      out.push({ voice, language, pitch, text, samples: espeakSpeech({ text, voice, pitch, speed: ESPEAK_CORPUS_SPEED }) });
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// levels

/** Plain rms level in dBm0 (−Infinity for silence). */
export function rmsLevelDbm0(samples: Int16Array): number {
  let sq = 0;
  for (const x of samples) sq += x * x;
  return samples.length === 0 ? -Infinity : 10 * Math.log10(sq / samples.length) - 20 * Math.log10(DBM0_RMS);
}

export interface ActiveLevel {
  /** active speech level, dBm0 (−Infinity for silence) */
  activeDbm0: number;
  /** long-term rms level, dBm0 */
  rmsDbm0: number;
  /** fraction of the samples that counted as active, 0–1 */
  activity: number;
  /** the activity threshold that lies 15.9 dB below the active level, dBm0 */
  thresholdDbm0: number;
}

/**
 * ITU-T P.56 method B. The rectified signal is smoothed twice with a first-order filter of time
 * constant 0.03 s (the envelope). For each of 15 thresholds c_j = 2^j (j = 0..14, in 16-bit units,
 * 6 dB apart) a sample counts as active while the envelope is at or above c_j, or for up to
 * 0.2 s (hangover) after it fell below. With a_j active samples and sq the total energy, the
 * candidate active level is A_j = 10·log10(sq / a_j); the active level is where A − C = 15.9 dB
 * (C_j = 20·log10 c_j), found by linear interpolation between the two thresholds that bracket it.
 */
export function activeSpeechLevel(samples: Int16Array, sampleRate: number = SAMPLE_RATE): ActiveLevel {
  const M = 15.9;
  const NT = 15;
  const g = Math.exp(-1 / (sampleRate * 0.03));
  const hangMax = Math.ceil(0.2 * sampleRate);
  const c = Array.from({ length: NT }, (_, j) => 2 ** j);
  const active = new Float64Array(NT);
  const hang = new Float64Array(NT).fill(hangMax);
  const dbm0Ref = 20 * Math.log10(DBM0_RMS);
  let p = 0;
  let q = 0;
  let sq = 0;
  for (let i = 0; i < samples.length; i++) {
    const x = samples[i] ?? 0;
    sq += x * x;
    p = g * p + (1 - g) * Math.abs(x);
    q = g * q + (1 - g) * p;
    for (let j = 0; j < NT; j++) {
      if (q >= (c[j] ?? Infinity)) {
        active[j] = (active[j] ?? 0) + 1;
        hang[j] = 0;
      } else if ((hang[j] ?? 0) < hangMax) {
        active[j] = (active[j] ?? 0) + 1;
        hang[j] = (hang[j] ?? 0) + 1;
      } else {
        break; // higher thresholds are below the envelope for at least as long
      }
    }
  }
  const n = samples.length;
  const rmsDbm0 = n > 0 && sq > 0 ? 10 * Math.log10(sq / n) - dbm0Ref : -Infinity;
  const a0 = active[0] ?? 0;
  if (sq === 0 || a0 === 0) return { activeDbm0: -Infinity, rmsDbm0, activity: 0, thresholdDbm0: -Infinity };
  const A = (j: number): number => 10 * Math.log10(sq / (active[j] ?? 0));
  const C = (j: number): number => 20 * Math.log10(c[j] ?? 1);
  let level = A(0);
  let thr = C(0);
  if (A(0) - C(0) > M) {
    for (let j = 1; j < NT; j++) {
      if ((active[j] ?? 0) === 0) {
        // the envelope never reached c_j: the crossing is just above c_{j-1}
        level = A(j - 1);
        thr = C(j - 1);
        break;
      }
      const dPrev = A(j - 1) - C(j - 1);
      const d = A(j) - C(j);
      if (d <= M) {
        const t = (dPrev - M) / (dPrev - d);
        level = A(j - 1) + t * (A(j) - A(j - 1));
        thr = C(j - 1) + t * (C(j) - C(j - 1));
        break;
      }
    }
  }
  const activeMs = 10 ** (level / 10);
  return {
    activeDbm0: level - dbm0Ref,
    rmsDbm0,
    activity: Math.min(1, sq / n / activeMs),
    thresholdDbm0: thr - dbm0Ref,
  };
}

/** ITU-T P.56 method B active speech level in dBm0 (see activeSpeechLevel). */
export function activeSpeechLevelDbm0(samples: Int16Array): number {
  return activeSpeechLevel(samples).activeDbm0;
}

function clip16(v: number): number {
  const r = Math.round(v);
  return r > 32767 ? 32767 : r < -32768 ? -32768 : r;
}

/** Multiplies by a linear gain, rounding and clipping to int16. */
export function applyGain(samples: Int16Array, gain: number): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = clip16((samples[i] ?? 0) * gain);
  return out;
}

/** A copy scaled so that its P.56 active level is `targetDbm0` (clipped to int16). */
export function scaleToActiveLevel(samples: Int16Array, targetDbm0: number): Int16Array {
  const now = activeSpeechLevelDbm0(samples);
  if (!Number.isFinite(now)) throw new RangeError('scaleToActiveLevel: the signal is silent');
  return applyGain(samples, 10 ** ((targetDbm0 - now) / 20));
}

/**
 * a + b (b starting at sample `offset` of a), clipped to int16. The result is as long as needed
 * to hold both.
 */
export function mix(a: Int16Array, b: Int16Array, offset = 0): Int16Array {
  if (!Number.isInteger(offset) || offset < 0) throw new RangeError('mix: offset must be a whole number >= 0');
  const out = new Int16Array(Math.max(a.length, offset + b.length));
  out.set(a);
  for (let i = 0; i < b.length; i++) {
    const k = offset + i;
    out[k] = clip16((out[k] ?? 0) + (b[i] ?? 0));
  }
  return out;
}

/** mulberry32: a small seeded PRNG; returns a function giving uniform numbers in [0, 1). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
