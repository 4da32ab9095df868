/** The closed set of error codes; HTTP statuses are assigned in http/errorHandler.ts only. */
export const ERROR_CODES = [
  'invalid_argument',
  'unauthenticated',
  'forbidden',
  'not_found',
  'conflict',
  'payload_too_large',
  'rate_limited',
  'unavailable',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The one error type services throw. Messages never echo user input. */
export class MacheteError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'MacheteError';
  }
}

export const invalid = (field: string, message: string) =>
  new MacheteError('invalid_argument', `${field}: ${message}`, { field });
export const notFound = (what: string) => new MacheteError('not_found', `${what} not found`);
