import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** JSON logs; anything that looks like a credential is redacted by path. */
export function createLogger(level: string, name = 'machete', destination?: DestinationStream): Logger {
  const options = {
    name,
    level,
    redact: {
      paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'value', '*.value', 'secret', '*.secret', 'secrets', '*.secrets', '*.*.secrets', 'invocation.secrets', 'frame.instances[*].secrets', 'frame.upserts[*].secrets'],
      censor: '[redacted]',
    },
  } satisfies LoggerOptions;
  // A destination lets tests read what would be logged (e.g. that no secret value ever is).
  return destination ? pino(options, destination) : pino(options);
}
