/**
 * `npm run prompts`: makes hushpay's default prompt clips again, from the texts in
 * src/payments/prompts.ts, with Debian's espeak-ng (English and Japanese voices) and sox (to
 * 8 kHz μ-law, silence trimmed, peaks at −6 dBFS). Writes src/payments/prompts/{en,ja}/*.wav,
 * replacing what is there. Run it after changing a text; commit the clips it makes.
 *
 *     node src/tools/make-prompts.ts [--out DIR]
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PROMPT_DIR, numberClipTexts, PROMPT_TEXTS, type PromptLanguage } from '../payments/prompts.ts';

const VOICES: Readonly<Record<PromptLanguage, { voice: string; speed: number }>> = {
  en: { voice: 'en-us', speed: 160 },
  ja: { voice: 'ja', speed: 150 },
};

function run(command: string, args: readonly string[]): void {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${command} is needed (apt-get install espeak-ng sox): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr}`);
}

export function makePrompts(outDir = DEFAULT_PROMPT_DIR): { language: PromptLanguage; clips: number }[] {
  const scratch = mkdtempSync(join(tmpdir(), 'hushpay-prompts-'));
  const made: { language: PromptLanguage; clips: number }[] = [];
  try {
    for (const language of ['en', 'ja'] as const) {
      const dir = join(outDir, language);
      mkdirSync(dir, { recursive: true });
      for (const file of readdirSync(dir)) if (file.endsWith('.wav')) rmSync(join(dir, file));
      const texts = { ...PROMPT_TEXTS[language], ...numberClipTexts(language) };
      const { voice, speed } = VOICES[language];
      for (const [id, text] of Object.entries(texts)) {
        const raw = join(scratch, `${language}-${id}.wav`);
        run('espeak-ng', ['-v', voice, '-s', String(speed), '-w', raw, text]);
        // trim the silence espeak leaves at both ends, then 8 kHz μ-law mono at a steady level
        run('sox', [raw, '-r', '8000', '-c', '1', '-e', 'mu-law', join(dir, `${id}.wav`), 'silence', '1', '0.01', '0.3%', 'reverse', 'silence', '1', '0.01', '0.3%', 'reverse', 'norm', '-6']);
      }
      made.push({ language, clips: Object.keys(texts).length });
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return made;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const outAt = process.argv.indexOf('--out');
  const out = outAt > 0 ? process.argv[outAt + 1] : undefined;
  for (const { language, clips } of makePrompts(out)) process.stdout.write(`${language}: ${clips} clips\n`);
}
