/**
 * The tracer: every syscall (and every user-memory access a test or client makes) as one event
 * with its arguments, result, errno and reason. Events are plain JSON (bigints as hex strings), so
 * a session records to JSONL and `replay()` re-runs it on a fresh machine, comparing results.
 */

import { errnoName } from '../errno.js';

/** A JSON-safe argument value: bigints travel as `0x…` strings tagged by the call's own schema. */
export type TraceValue = string | number | boolean | null | TraceValue[] | { [k: string]: TraceValue };

export interface TraceEvent {
  seq: number;
  pid: number;
  call: string;
  args: Record<string, TraceValue>;
  ret: string | number;
  errno: number;
  reason?: string;
  /** Output bytes (hex) where the call hands some back, e.g. an ioctl's struct after the call. */
  out?: string;
  /** Human hint, e.g. the ioctl's name. */
  what?: string;
}

export type TraceListener = (e: TraceEvent) => void;

export class Tracer {
  #seq = 0;
  #listeners = new Set<TraceListener>();

  /** Subscribe; returns the unsubscribe function. */
  subscribe(fn: TraceListener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Record into an array until `stop()` is called. */
  record(): { events: TraceEvent[]; stop: () => void } {
    const events: TraceEvent[] = [];
    const stop = this.subscribe((e) => events.push(e));
    return { events, stop };
  }

  get active(): boolean {
    return this.#listeners.size > 0;
  }

  emit(e: Omit<TraceEvent, 'seq'>): void {
    const ev: TraceEvent = { seq: ++this.#seq, ...e };
    for (const fn of this.#listeners) fn(ev);
  }
}

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
export const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
export const big = (v: bigint): string => `0x${v.toString(16)}`;

export function toJsonl(events: readonly TraceEvent[]): string {
  return events.map((e) => JSON.stringify(e)).join('\n') + (events.length ? '\n' : '');
}

export function fromJsonl(text: string): TraceEvent[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as TraceEvent);
}

/** One line for people: `ioctl(3, IOMMU_IOAS_MAP) = -1 EINVAL (iommu_ioas_map.length …)`. */
export function formatEvent(e: TraceEvent): string {
  const args = Object.entries(e.args)
    .filter(([k]) => k !== 'in' && !(k === 'cmd' && e.what))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
  const head = `[${e.pid}] ${e.call}(${e.what ? `${e.what}${args ? ', ' : ''}` : ''}${args})`;
  if (e.errno) return `${head} = -1 ${errnoName(e.errno)} (${e.reason ?? ''})`;
  return `${head} = ${e.ret}`;
}
