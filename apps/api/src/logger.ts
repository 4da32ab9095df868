import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON logs; anything that looks like a credential is redacted by path. */
export function createLogger(level: string, name = 'machete'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'value', '*.value', 'secret', '*.secret'],
      censor: '[redacted]',
    },
  });
}
