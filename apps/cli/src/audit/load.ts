import YAML from 'yaml';

/**
 * Reading a compose file the way docker-compose does before it checks anything:
 * YAML with merge keys (`<<: *anchor`), then `${VAR}` interpolation. The audit must
 * judge the values the engine would get, so `${SOCK:-/var/run/docker.sock}` is read
 * as the socket it defaults to, and a secret merged in from an `x-` anchor is still seen.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export interface ComposeFile {
  services: Record<string, Record<string, unknown>>;
  networks: Record<string, Record<string, unknown> | null>;
  volumes: Record<string, Record<string, unknown> | null>;
}

export class ComposeLoadError extends Error {
  override name = 'ComposeLoadError';
}

const VAR = /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/** One string, compose's rules: `$$` is a literal `$`; `:-`/`-` defaults, `:+`/`+` alternates, `:?`/`?` must be set. */
export function interpolate(s: string, env: Env): string {
  return s.replace(VAR, (whole, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
    if (whole === '$$') return '$';
    const name = braced ?? bare!;
    const v = env[name];
    const set = v !== undefined;
    const nonEmpty = set && v !== '';
    switch (op) {
      case ':-':
        return nonEmpty ? v! : interpolate(arg ?? '', env);
      case '-':
        return set ? v! : interpolate(arg ?? '', env);
      case ':+':
        return nonEmpty ? interpolate(arg ?? '', env) : '';
      case '+':
        return set ? interpolate(arg ?? '', env) : '';
      case ':?':
      case '?':
        // Unset required variables are docker-compose's error to report; the audit reads them as empty.
        return v ?? '';
      default:
        return v ?? '';
    }
  });
}

function interpolateDeep(value: unknown, env: Env): unknown {
  if (typeof value === 'string') return interpolate(value, env);
  if (Array.isArray(value)) return value.map((v) => interpolateDeep(v, env));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateDeep(v, env)]));
  }
  return value;
}

const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Parses and interpolates; throws ComposeLoadError for anything that is not a compose file with services. */
export function loadCompose(text: string, env: Env = {}): ComposeFile {
  let doc: unknown;
  try {
    doc = YAML.parse(text, { merge: true, maxAliasCount: 1000 });
  } catch (err) {
    throw new ComposeLoadError(`not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!isMap(doc)) throw new ComposeLoadError('not a compose file (the top level is not a mapping)');
  const resolved = interpolateDeep(doc, env) as Record<string, unknown>;
  if (!isMap(resolved.services) || Object.keys(resolved.services).length === 0) throw new ComposeLoadError('no services in the compose file');
  const services: ComposeFile['services'] = {};
  for (const [name, svc] of Object.entries(resolved.services)) {
    services[name] = isMap(svc) ? svc : {};
  }
  const section = (v: unknown) => (isMap(v) ? (v as Record<string, Record<string, unknown> | null>) : {});
  return { services, networks: section(resolved.networks), volumes: section(resolved.volumes) };
}
