/**
 * The DTMF keypad (ITU-T Q.23) and the level convention every DTMF stage shares.
 *
 *            1209 Hz  1336 Hz  1477 Hz  1633 Hz
 *   697 Hz     1        2        3        A
 *   770 Hz     4        5        6        B
 *   852 Hz     7        8        9        C
 *   941 Hz     *        0        #        D
 */

export const SAMPLE_RATE_HZ = 8000;

export const LOW_GROUP_HZ = [697, 770, 852, 941] as const;
export const HIGH_GROUP_HZ = [1209, 1336, 1477, 1633] as const;

export type DtmfDigit =
  | '0' | '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9' | '*' | '#' | 'A' | 'B' | 'C' | 'D';

/** KEYPAD[row][column], rows in LOW_GROUP_HZ order, columns in HIGH_GROUP_HZ order. */
export const KEYPAD: readonly (readonly DtmfDigit[])[] = [
  ['1', '2', '3', 'A'],
  ['4', '5', '6', 'B'],
  ['7', '8', '9', 'C'],
  ['*', '0', '#', 'D'],
];

export const ALL_DIGITS: readonly DtmfDigit[] = ['1', '2', '3', 'A', '4', '5', '6', 'B', '7', '8', '9', 'C', '*', '0', '#', 'D'];

export function isDtmfDigit(value: string): value is DtmfDigit {
  return (ALL_DIGITS as readonly string[]).includes(value);
}

/** Row (low group) and column (high group) of a digit. */
export function digitPosition(digit: DtmfDigit): { row: number; column: number } {
  for (let row = 0; row < 4; row++) {
    const column = KEYPAD[row]!.indexOf(digit);
    if (column >= 0) return { row, column };
  }
  throw new RangeError('not a DTMF digit');
}

export function digitFrequencies(digit: DtmfDigit): { lowHz: number; highHz: number } {
  const { row, column } = digitPosition(digit);
  return { lowHz: LOW_GROUP_HZ[row]!, highHz: HIGH_GROUP_HZ[column]! };
}

/**
 * Level convention (ITU-T G.711 / spandsp): a 0 dBm0 sine peaks 3.14 dB below the 16-bit full
 * scale, i.e. peak 22,873 and rms 16,174 in 16-bit linear samples.
 */
export const DBM0_REFERENCE_RMS = 16174;

export function dbm0ToRms(levelDbm0: number): number {
  return DBM0_REFERENCE_RMS * 10 ** (levelDbm0 / 20);
}

/** Peak amplitude of a sine at the given level. */
export function dbm0ToSineAmplitude(levelDbm0: number): number {
  return dbm0ToRms(levelDbm0) * Math.SQRT2;
}

/** Mean power (mean square, in 16-bit units squared) of a signal at the given level. */
export function dbm0ToPower(levelDbm0: number): number {
  const rms = dbm0ToRms(levelDbm0);
  return rms * rms;
}

export function powerToDbm0(power: number): number {
  return 10 * Math.log10(power / (DBM0_REFERENCE_RMS * DBM0_REFERENCE_RMS));
}
