/**
 * Bounds how many refusal events a flood can write. Within one window, the
 * first refusal of each key (actor + action + status) is recorded; repeats, and
 * anything past `maxPerWindow` distinct keys, are only counted. At the end of
 * the window the counts become summary events (at most `maxPerWindow`, the rest
 * folded into one). So the events table grows by at most ~2·maxPerWindow+1 rows
 * per window whatever the request rate, and no refusal goes uncounted.
 */
export interface CoalesceOptions {
  /** Distinct keys recorded per window; also the cap on summaries per window. */
  maxPerWindow: number;
  /** Keys tracked per window (memory bound); beyond it refusals are counted in one overflow bucket. */
  maxKeys: number;
}

export interface Summary<T> {
  sample: T;
  count: number;
}

export class Coalescer<T> {
  private seen = new Map<string, { sample: T; suppressed: number }>();
  private admitted = 0;
  private overflow = 0;

  constructor(private readonly opts: CoalesceOptions) {}

  /** True: record this one now. False: it was counted into the window's summary. */
  admit(key: string, sample: T): boolean {
    const cur = this.seen.get(key);
    if (cur) {
      cur.suppressed++;
      return false;
    }
    if (this.seen.size >= this.opts.maxKeys) {
      this.overflow++;
      return false;
    }
    if (this.admitted >= this.opts.maxPerWindow) {
      this.seen.set(key, { sample, suppressed: 1 });
      return false;
    }
    this.seen.set(key, { sample, suppressed: 0 });
    this.admitted++;
    return true;
  }

  /** Ends the window and returns what was suppressed in it. */
  rollover(): { summaries: Summary<T>[]; overflow: number } {
    const pending = [...this.seen.values()].filter((e) => e.suppressed > 0);
    let overflow = this.overflow;
    const summaries = pending.slice(0, this.opts.maxPerWindow).map((e) => ({ sample: e.sample, count: e.suppressed }));
    for (const e of pending.slice(this.opts.maxPerWindow)) overflow += e.suppressed;
    this.seen = new Map();
    this.admitted = 0;
    this.overflow = 0;
    return { summaries, overflow };
  }
}
