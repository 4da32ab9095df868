import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { MacheteError } from '../../errors.ts';
import { bearer } from './auth.ts';

/** Peer address of the TCP connection (node server); `unknown` under app.request() in tests. */
export function remoteAddress(c: Context): string {
  const env = c.env as { incoming?: IncomingMessage } | undefined;
  return env?.incoming?.socket?.remoteAddress ?? 'unknown';
}

export interface RateLimitOptions {
  /** Sustained requests per second per key; 0 disables the limit. */
  perSecond: number;
  /** Bucket size: requests allowed at once. */
  burst: number;
  /** Buckets kept at most (memory bound); idle full buckets are dropped first. */
  maxKeys?: number;
}

/** In-memory token buckets. `take` answers 0 when allowed, else the ms until a token is available. */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private lastSweep = 0;
  constructor(private readonly opts: Required<RateLimitOptions>) {}

  take(key: string, now: number): number {
    const { perSecond, burst } = this.opts;
    this.sweep(now);
    const b = this.buckets.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    this.buckets.delete(key); // re-insert: Map order becomes least-recently-used first
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / perSecond) * 1000);
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    if (this.buckets.size <= this.opts.maxKeys && now - this.lastSweep < 10_000) return;
    this.lastSweep = now;
    const { perSecond, burst } = this.opts;
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * perSecond >= burst) this.buckets.delete(k);
    }
    for (const k of this.buckets.keys()) {
      if (this.buckets.size <= this.opts.maxKeys) break;
      this.buckets.delete(k);
    }
  }
}

/**
 * Per-token rate limit (per source address for requests without a token), before
 * authentication so a flood costs neither a signature check nor a database read.
 * The token is keyed by a hash, so no credential is kept as a map key.
 */
export function rateLimit(opts: RateLimitOptions) {
  const buckets = new TokenBuckets({ maxKeys: 100_000, ...opts });
  return createMiddleware(async (c, next) => {
    if (opts.perSecond <= 0) return next();
    const raw = bearer(c.req.header('authorization'));
    const key = raw ? `t:${createHash('sha256').update(raw).digest('base64url')}` : `ip:${remoteAddress(c)}`;
    const waitMs = buckets.take(key, Date.now());
    if (waitMs > 0) throw new MacheteError('rate_limited', 'too many requests; retry later', { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) });
    return next();
  });
}

/** Deepest nesting of objects/arrays in a JSON text, stopping early past `limit`. Linear, no recursion. */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x7b || ch === 0x5b) {
      depth++;
      if (depth > max) max = depth;
      if (max > limit) return max;
    } else if (ch === 0x7d || ch === 0x5d) depth--;
  }
  return max;
}

/**
 * Refuses JSON bodies nested deeper than `maxDepth` with 400 before any parser or
 * schema walks them. Runs after the body limit, so the text is at most that size.
 */
export function jsonDepthLimit(opts: { maxDepth: number }) {
  return createMiddleware(async (c, next) => {
    const type = c.req.header('content-type') ?? '';
    if (!c.req.raw.body || !/json/i.test(type)) return next();
    if (jsonDepth(await c.req.text(), opts.maxDepth) > opts.maxDepth) {
      throw new MacheteError('invalid_argument', `body: JSON nested deeper than ${opts.maxDepth} levels`, { field: 'body' });
    }
    return next();
  });
}
