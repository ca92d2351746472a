/**
 * The code and message the tools report for a failure: a HushpayError's stable `code`, a Node
 * system error's errno code (ENOENT, EACCES, …), or HP_ERR_INTERNAL for anything else (a bug).
 */

import { HushpayError } from '../errors.ts';

export const INTERNAL_ERROR_CODE = 'HP_ERR_INTERNAL';

export interface Failure {
  readonly code: string;
  readonly message: string;
}

export function describeFailure(err: unknown): Failure {
  if (err instanceof HushpayError) return { code: err.code, message: err.message };
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code !== '') {
      // Node's system errors already start with their code ("ENOENT: no such file …").
      const message = err.message.startsWith(`${code}: `) ? err.message.slice(code.length + 2) : err.message;
      return { code, message };
    }
    return { code: INTERNAL_ERROR_CODE, message: err.message };
  }
  return { code: INTERNAL_ERROR_CODE, message: String(err) };
}

/** `CODE: message`, the form every tool failure is printed in. */
export function formatFailure(failure: Failure): string {
  return `${failure.code}: ${failure.message}`;
}
