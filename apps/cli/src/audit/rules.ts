import { DANGEROUS_CAPS, normalizeCap } from '../../../../protocol/src/containerAudit.ts';
import { loadCompose, type ComposeFile, type Env } from './load.ts';
import { hostMounts, socketReason } from './mounts.ts';

/**
 * The static half of `machete audit`: pure checks of a compose file, no I/O.
 * Each rule looks at one service (or, for segmentation, the whole file) and says
 * what is wrong in one sentence; an empty list means the file passes.
 */
export type Severity = 'high' | 'medium' | 'low';

export interface Finding {
  rule: RuleId;
  severity: Severity;
  /** The service it is about; '*' for file-wide findings. */
  service: string;
  message: string;
}

export type RuleId =
  | 'docker-socket'
  | 'privileged'
  | 'inline-secret'
  | 'memory-limit'
  | 'cpu-limit'
  | 'no-new-privileges'
  | 'host-namespace'
  | 'network-segmentation'
  | 'dangerous-capability'
  | 'unconfined-profile';

type Svc = Record<string, unknown>;
const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : []);
const truthy = (v: unknown) => v === true || (typeof v === 'string' && /^(true|yes|on|1)$/i.test(v.trim()));

/** The official DinD engine image (any tag containing `dind`, any registry mirror of docker.io/library/docker). */
export function isDindImage(image: unknown): boolean {
  if (typeof image !== 'string') return false;
  const m = /^(?:(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)\/)?(?:library\/)?docker:([^@\s]*)(@sha256:[0-9a-f]{64})?$/i.exec(image.trim());
  return !!m && /dind/i.test(m[1]!);
}

function dockerSocket(name: string, svc: Svc, file: ComposeFile): Finding[] {
  return hostMounts(file, svc).flatMap((m) => {
    const why = socketReason(m.source);
    return why ? [{ rule: 'docker-socket' as const, severity: 'high' as const, service: name, message: `mounts ${m.source} (${why}) at ${m.target || '?'}: full control of the engine, i.e. root on the host` }] : [];
  });
}

function privileged(name: string, svc: Svc): Finding[] {
  if (!truthy(svc.privileged) || isDindImage(svc.image)) return [];
  return [{ rule: 'privileged', severity: 'high', service: name, message: `privileged: true on ${typeof svc.image === 'string' ? svc.image : 'a built image'}; only a docker:*dind* engine may be privileged` }];
}

/** Last word of an env name (SNAKE_CASE or camelCase) decides: POSTGRES_PASSWORD yes, POSTGRES_PASSWORD_FILE and TOKEN_TTL no. */
const SECRET_WORDS = new Set(['PASSWORD', 'PASSWD', 'PASS', 'PASSPHRASE', 'SECRET', 'TOKEN', 'KEY', 'APIKEY', 'SECRETKEY', 'ACCESSKEY', 'PRIVATEKEY', 'CREDENTIAL', 'CREDENTIALS', 'CREDS']);
export function isSecretName(envName: string): boolean {
  const words = envName
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()
    .split(/[^A-Z0-9]+/)
    .filter(Boolean);
  const last = words.at(-1);
  return !!last && SECRET_WORDS.has(last);
}
const URL_WITH_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:[^/\s@]+@/i;

function envEntries(env: unknown): [string, string | null][] {
  if (Array.isArray(env)) {
    return env.filter((e): e is string => typeof e === 'string').map((e) => {
      const i = e.indexOf('=');
      return i < 0 ? [e, null] : [e.slice(0, i), e.slice(i + 1)];
    });
  }
  if (isMap(env)) return Object.entries(env).map(([k, v]) => [k, v === null || v === undefined ? null : String(v)]);
  return [];
}

function inlineSecrets(name: string, svc: Svc): Finding[] {
  const out: Finding[] = [];
  for (const [key, value] of envEntries(svc.environment)) {
    if (value === null || value.trim() === '') continue; // passed through or empty: nothing inline
    const why = isSecretName(key) ? 'looks like a secret' : URL_WITH_PASSWORD.test(value.trim()) ? 'is a URL with a password in it' : null;
    if (why) out.push({ rule: 'inline-secret', severity: 'high', service: name, message: `environment ${key} ${why} and is set inline (visible in docker inspect); pass it as a file (${key}_FILE and secrets:)` });
  }
  return out;
}

const positive = (v: unknown): boolean => {
  if (typeof v === 'number') return v > 0;
  if (typeof v !== 'string') return false;
  const m = /^\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*$/i.exec(v);
  return !!m && Number(m[1]) > 0;
};

function limits(name: string, svc: Svc): Finding[] {
  const deploy = isMap(svc.deploy) ? svc.deploy : {};
  const resources = isMap(deploy.resources) ? deploy.resources : {};
  const lim = isMap(resources.limits) ? resources.limits : {};
  const out: Finding[] = [];
  if (!positive(lim.memory) && !positive(svc.mem_limit)) {
    out.push({ rule: 'memory-limit', severity: 'medium', service: name, message: 'no memory limit (deploy.resources.limits.memory or mem_limit)' });
  }
  if (!positive(lim.cpus) && !positive(svc.cpus) && !positive(svc.cpu_quota)) {
    out.push({ rule: 'cpu-limit', severity: 'medium', service: name, message: 'no CPU limit (deploy.resources.limits.cpus or cpus)' });
  }
  return out;
}

function noNewPrivileges(name: string, svc: Svc): Finding[] {
  // Docker accepts `no-new-privileges`, `no-new-privileges:true` and `=true`; the last one given wins.
  let on = false;
  for (const o of strings(svc.security_opt)) {
    const m = /^\s*no-new-privileges\s*(?:[:=]\s*(\S*))?\s*$/i.exec(o);
    if (m) on = m[1] === undefined || m[1] === '' || /^(true|1)$/i.test(m[1]);
  }
  return on ? [] : [{ rule: 'no-new-privileges', severity: 'medium', service: name, message: 'security_opt lacks no-new-privileges:true (setuid binaries could regain privileges)' }];
}

function hostNamespaces(name: string, svc: Svc): Finding[] {
  const keys = ['network_mode', 'pid', 'ipc', 'uts', 'userns_mode', 'cgroup'] as const;
  return keys
    .filter((k) => typeof svc[k] === 'string' && (svc[k] as string).trim().toLowerCase() === 'host')
    .map((k) => ({ rule: 'host-namespace' as const, severity: 'high' as const, service: name, message: `${k}: host shares the host's ${k === 'network_mode' ? 'network' : k} namespace` }));
}

function dangerousCaps(name: string, svc: Svc): Finding[] {
  return strings(svc.cap_add)
    .map(normalizeCap)
    .filter((c) => DANGEROUS_CAPS.has(c))
    .map((c) => ({ rule: 'dangerous-capability' as const, severity: 'high' as const, service: name, message: `cap_add: ${c}` }));
}

function unconfined(name: string, svc: Svc): Finding[] {
  return strings(svc.security_opt)
    .filter((o) => /^\s*(seccomp|apparmor)\s*[:=]\s*unconfined\s*$/i.test(o) || /^\s*label\s*[:=]\s*disable\s*$/i.test(o))
    .map((o) => ({ rule: 'unconfined-profile' as const, severity: 'high' as const, service: name, message: `security_opt ${o.trim()} turns a kernel confinement off` }));
}

/** Networks a service is attached to; null when it does not use compose networks at all (network_mode). */
function networksOf(svc: Svc): string[] | null {
  if (typeof svc.network_mode === 'string' && svc.network_mode.trim() !== '') return null;
  if (Array.isArray(svc.networks)) return svc.networks.filter((n): n is string => typeof n === 'string');
  if (isMap(svc.networks)) return Object.keys(svc.networks);
  return ['default'];
}

function segmentation(file: ComposeFile): Finding[] {
  const out: Finding[] = [];
  const attached = Object.entries(file.services).map(([name, svc]) => [name, networksOf(svc)] as const);
  for (const [name, nets] of attached) {
    if (nets?.includes('default')) out.push({ rule: 'network-segmentation', severity: 'medium', service: name, message: 'on the default network, which every other service without networks: shares; give it its own segment' });
  }
  // Named networks that still put everything on one segment are no better than the default one.
  const withNets = attached.filter(([, n]) => n && n.length > 0) as [string, string[]][];
  if (withNets.length >= 3 && out.length === 0) {
    const shared = withNets[0]![1].filter((n) => withNets.every(([, ns]) => ns.includes(n)));
    if (shared.length > 0) out.push({ rule: 'network-segmentation', severity: 'medium', service: '*', message: `every service is on network ${shared[0]}: no segmentation between them` });
  }
  return out;
}

const SERVICE_RULES = [dockerSocket, privileged, inlineSecrets, limits, noNewPrivileges, hostNamespaces, dangerousCaps, unconfined];

/** All findings for a parsed compose file, in service order. */
export function auditComposeFile(file: ComposeFile): Finding[] {
  const out: Finding[] = [];
  for (const [name, svc] of Object.entries(file.services)) {
    for (const rule of SERVICE_RULES) out.push(...rule(name, svc, file));
  }
  return [...out, ...segmentation(file)];
}

/** Text in, findings out (throws ComposeLoadError for a file that cannot be read as compose). */
export function auditCompose(text: string, env: Env = {}): Finding[] {
  return auditComposeFile(loadCompose(text, env));
}
