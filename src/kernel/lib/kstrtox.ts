/**
 * lib/kstrtox.c's parsers, as the kernel's writable files use them on what userspace wrote
 * (fail-nth, module parameters): a failure throws the errno the kernel returns, with a reason
 * naming `what`.
 */

import { Errno, fail } from '../../errno.js';

/** kstrtouint(s, 0): decimal, 0x hex or 0 octal, an optional '+' and one trailing newline; ERANGE above 32 bits. */
export function kstrtouint(s: string, what: string): number {
  const v = s.endsWith('\n') ? s.slice(0, -1) : s;
  const m = /^\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(v);
  if (!m) fail(Errno.EINVAL, `${what} takes an unsigned number, got ${JSON.stringify(s)}`);
  const t = m[1]!;
  const n = /^0[xX]/.test(t) ? BigInt(t) : t.length > 1 && t.startsWith('0') ? BigInt(`0o${t.slice(1)}`) : BigInt(t);
  if (n > 0xffffffffn) fail(Errno.ERANGE, `${what}: ${t} does not fit in 32 bits`);
  return Number(n);
}

/** kstrtobool: decided by the first character (y/t/1, n/f/0), or the second after o/O (on/off). */
export function kstrtobool(s: string, what: string): boolean {
  const c = s[0] ?? '';
  if (c && 'yYtT1'.includes(c)) return true;
  if (c && 'nNfF0'.includes(c)) return false;
  if ((c === 'o' || c === 'O') && s[1] && 'nN'.includes(s[1])) return true;
  if ((c === 'o' || c === 'O') && s[1] && 'fF'.includes(s[1])) return false;
  return fail(Errno.EINVAL, `${what} takes a boolean (kstrtobool: y/t/1, n/f/0, on/off), got ${JSON.stringify(s)}`);
}
