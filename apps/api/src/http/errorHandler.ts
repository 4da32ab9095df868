import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { MacheteError, type ErrorCode } from '../errors.ts';
import type { Logger } from '../logger.ts';

/** The one place error codes become HTTP statuses. */
export const STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  invalid_argument: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

export function errorBody(code: ErrorCode, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

export function createErrorHandler(log: Logger) {
  return (err: Error, c: Context) => {
    if (err instanceof MacheteError) {
      if (err.code === 'rate_limited') c.header('Retry-After', String(retryAfter(err.details)));
      return c.json(errorBody(err.code, err.message, err.details), STATUS[err.code]);
    }
    if (err instanceof HTTPException) {
      const status = err.status;
      const code: ErrorCode = status === 413 ? 'payload_too_large' : status === 401 ? 'unauthenticated' : status === 404 ? 'not_found' : status < 500 ? 'invalid_argument' : 'internal';
      return c.json(errorBody(code, code === 'payload_too_large' ? 'request body too large' : err.message || 'bad request'), STATUS[code]);
    }
    log.error({ err, reqId: c.get('requestId'), method: c.req.method, path: c.req.path }, 'unhandled error');
    return c.json(errorBody('internal', 'internal error'), 500);
  };
}

/** Seconds a 429 asks the client to wait: from the error's details when given, else 1. */
function retryAfter(details: unknown): number {
  const v = (details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
  return typeof v === 'number' && Number.isFinite(v) && v >= 1 ? Math.ceil(v) : 1;
}
