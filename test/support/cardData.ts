/**
 * Every byte spelling of a card's data the card-data scans look for (the store's files, and every
 * file, answer, event and webhook of the end-to-end test): one list, so each scan looks for all.
 */

function utf16be(text: string): Buffer {
  const le = Buffer.from(text, 'utf16le');
  for (let i = 0; i + 1 < le.length; i += 2) [le[i], le[i + 1]] = [le[i + 1]!, le[i]!];
  return le;
}

function int64be(value: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(value);
  return b;
}

function float64be(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(value);
  return b;
}

/** The card number's spellings, by name (each name starts "PAN"). */
export function panSpellings(pan: string): Map<string, Buffer> {
  const groups = pan.match(/.{4}/g)!;
  return new Map<string, Buffer>([
    ['PAN plain', Buffer.from(pan)],
    ['PAN spaced', Buffer.from(groups.join(' '))],
    ['PAN dashed', Buffer.from(groups.join('-'))],
    ['PAN UTF-16LE', Buffer.from(pan, 'utf16le')],
    ['PAN UTF-16BE', utf16be(pan)],
    ['PAN spaced UTF-16LE', Buffer.from(groups.join(' '), 'utf16le')],
    ['PAN as a 64-bit integer', int64be(BigInt(pan))],
    ['PAN as a double', float64be(Number(pan))],
    ['PAN base64', Buffer.from(Buffer.from(pan).toString('base64'))],
    ['PAN hex', Buffer.from(Buffer.from(pan).toString('hex'))],
    ['PAN packed BCD', Buffer.from(pan, 'hex')],
    ['PAN first twelve digits', Buffer.from(pan.slice(0, 12))],
    ['PAN middle digits (BIN excluded)', Buffer.from(pan.slice(6, 12))],
  ]);
}

/**
 * The security code's spellings where it would be a value (quoted, after `:` or `=`): three
 * digits alone would also match inside times and ids. For files whose every byte is hushpay's
 * own (the store on a fake clock); where a log's measured durations could hold the same
 * digits after a colon, look for them with a value-context pattern instead.
 */
export function securityCodeSpellings(code: string): Map<string, Buffer> {
  return new Map<string, Buffer>([
    ['security code quoted', Buffer.from(`"${code}"`)],
    ['security code as a JSON value', Buffer.from(`:${code}`)],
    ['security code as a form value', Buffer.from(`=${code}`)],
    ['security code quoted UTF-16LE', Buffer.from(`"${code}"`, 'utf16le')],
  ]);
}
