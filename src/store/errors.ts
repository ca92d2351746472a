/**
 * The store's coded errors. They extend HushpayError like every code in src/errors.ts and are
 * documented in README "Error codes" (test/errors.test.ts checks this file's codes as it does
 * src/errors.ts's). They live beside the store so the persistence layer is one folder.
 *
 * Messages name tables, columns, fields and record ids: never a password, a token, a key, a TOTP
 * secret or anything a caller keyed.
 */

import { HushpayError } from '../errors.ts';

/**
 * The database file cannot be used as this hushpay's store: it was migrated by a newer hushpay,
 * a migration failed (and was rolled back), or a column holds a value of the wrong type.
 */
export class StoreSchemaError extends HushpayError {
  readonly code = 'HP_ERR_STORE_SCHEMA';
}

/** A store opened read-only (or `hushpay audit verify`) where no database file is. */
export class StoreMissingError extends HushpayError {
  readonly code = 'HP_ERR_STORE_MISSING';
  readonly path: string;
  constructor(path: string) {
    super(`no hushpay database at ${path}`);
    this.path = path;
  }
}

/** A value that must be unique is taken (a username, a payment id). */
export class StoreConflictError extends HushpayError {
  readonly code = 'HP_ERR_STORE_CONFLICT';
  readonly field: string;
  constructor(field: string, problem: string) {
    super(`${field}: ${problem}`);
    this.field = field;
  }
}

/** A change names a record that does not exist; `resource` is e.g. `payment:pay_x`. */
export class StoreNotFoundError extends HushpayError {
  readonly code = 'HP_ERR_STORE_NOT_FOUND';
  readonly resource: string;
  constructor(resource: string) {
    super(`${resource} does not exist`);
    this.resource = resource;
  }
}

/**
 * An argument the store will not take: a date that is not ISO 8601, a limit out of range, a
 * status it does not know, or a details/payload object with a card-data or credential field.
 */
export class StoreInputError extends HushpayError {
  readonly code = 'HP_ERR_STORE_INPUT';
  readonly field: string;
  constructor(field: string, problem: string) {
    super(`${field}: ${problem}`);
    this.field = field;
  }
}
