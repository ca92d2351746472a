/**
 * A progress display for folder jobs, written through an injected sink (the CLI passes
 * stderr), with an injected clock so tests need no real time.
 *
 * On a terminal it is one line redrawn in place (`\r`, then erase to end of line):
 *
 *   scrub [########················]  12/40  30%  calls/2024-05/a.wav
 *
 * Anywhere else (a log file, a CI job) it writes plain lines: the first state, each time the
 * percentage enters a new tenth, at most every `intervalMs` in between, and the last state.
 */

export interface ProgressState {
  readonly done: number;
  readonly total: number;
  /** What is being worked on now (a file name). */
  readonly current: string;
}

export interface ProgressOptions {
  readonly label: string;
  readonly write: (text: string) => void;
  /** Redraw one line in place (a TTY) or write plain lines. */
  readonly isTTY: boolean;
  /** Terminal width; the line is cut to fit (default 80). */
  readonly columns?: number;
  /** Clock for the plain lines' interval, ms (default Date.now). */
  readonly now?: () => number;
  /** Longest silence between plain lines while work goes on, ms (default 5000). */
  readonly intervalMs?: number;
}

const BAR_CELLS = 24;
const DEFAULT_COLUMNS = 80;
const DEFAULT_INTERVAL_MS = 5000;
const ERASE_TO_END_OF_LINE = '\x1b[K';

function percentOf(state: ProgressState): number {
  return state.total === 0 ? 100 : Math.floor((state.done * 100) / state.total);
}

/** Cuts `text` to `width` characters, keeping its end (the file name) behind an ellipsis. */
export function fitLeft(text: string, width: number): string {
  if (width <= 0) return '';
  const chars = [...text];
  if (chars.length <= width) return text;
  return `…${chars.slice(chars.length - width + 1).join('')}`;
}

/** The single-line (TTY) rendering of a state, at most `columns - 1` characters wide. */
export function renderProgressBar(label: string, state: ProgressState, columns: number): string {
  const percent = percentOf(state);
  const filled = Math.round((percent * BAR_CELLS) / 100);
  const width = String(state.total).length;
  const head = `${label} [${'#'.repeat(filled)}${'·'.repeat(BAR_CELLS - filled)}] ${String(state.done).padStart(width)}/${state.total} ${String(percent).padStart(3)}%`;
  const room = columns - 1 - head.length - 2;
  return room > 0 ? `${head}  ${fitLeft(state.current, room)}` : fitLeft(head, columns - 1);
}

/** The plain-line rendering of a state. */
export function renderProgressLine(label: string, state: ProgressState): string {
  return `${label}: ${state.done}/${state.total} files (${percentOf(state)}%) ${state.current}`;
}

export class ProgressReporter {
  readonly #options: ProgressOptions;
  readonly #now: () => number;
  #last: ProgressState | undefined;
  #lastPlainTenth = -1;
  #lastPlainAt = 0;
  #lastPlainState: ProgressState | undefined;
  #finished = false;

  constructor(options: ProgressOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  update(state: ProgressState): void {
    if (this.#finished) return;
    this.#last = state;
    if (this.#options.isTTY) {
      this.#draw(state);
      return;
    }
    const tenth = Math.floor(percentOf(state) / 10);
    const now = this.#now();
    const interval = this.#options.intervalMs ?? DEFAULT_INTERVAL_MS;
    if (tenth !== this.#lastPlainTenth || now - this.#lastPlainAt >= interval) this.#plain(state, tenth, now);
  }

  /** A line of its own (a failure report) that must not be overdrawn by the bar. */
  message(text: string): void {
    if (this.#options.isTTY && this.#last !== undefined && !this.#finished) {
      this.#options.write(`\r${ERASE_TO_END_OF_LINE}${text}\n`);
      this.#draw(this.#last);
    } else {
      this.#options.write(`${text}\n`);
    }
  }

  /** Leaves the last state on screen (or writes it, if the plain lines skipped it). Idempotent. */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    const last = this.#last;
    if (last === undefined) return;
    if (this.#options.isTTY) this.#options.write('\n');
    else if (this.#lastPlainState !== last) this.#plain(last, Math.floor(percentOf(last) / 10), this.#now());
  }

  #draw(state: ProgressState): void {
    const columns = this.#options.columns ?? DEFAULT_COLUMNS;
    this.#options.write(`\r${renderProgressBar(this.#options.label, state, columns)}${ERASE_TO_END_OF_LINE}`);
  }

  #plain(state: ProgressState, tenth: number, now: number): void {
    this.#options.write(`${renderProgressLine(this.#options.label, state)}\n`);
    this.#lastPlainTenth = tenth;
    this.#lastPlainAt = now;
    this.#lastPlainState = state;
  }
}
