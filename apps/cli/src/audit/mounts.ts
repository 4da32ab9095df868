import type { ComposeFile } from './load.ts';

export { normalizeHostPath, socketReason } from '../../../../protocol/src/sockets.ts';

/**
 * Which host paths a service's volumes bring in, in every syntax compose accepts
 * (short `src:dst[:mode]`, long `{type: bind, source}`, named volumes that are really
 * binds through `driver_opts`), and whether one of them reaches an engine socket.
 */
export interface HostMount {
  source: string;
  target: string;
  /** How it was declared, for the message. */
  via: 'bind' | 'volume' | 'npipe';
}

const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** A named volume that the local driver turns into a bind of a host directory (`o: bind`, `device: /x`). */
function namedVolumeDevice(file: ComposeFile, name: string): string | null {
  const def = file.volumes[name];
  if (!isMap(def) || !isMap(def.driver_opts)) return null;
  const { device, o, type } = def.driver_opts as Record<string, unknown>;
  if (typeof device !== 'string') return null;
  const opts = `${typeof o === 'string' ? o : ''},${typeof type === 'string' ? type : ''}`;
  return /(^|,)\s*(r?bind|none)\s*(,|$)/.test(opts) || device.startsWith('/') ? device : null;
}

const isHostPath = (s: string) => s.startsWith('/') || s.startsWith('.') || s.startsWith('~') || s.startsWith('\\\\') || /^[A-Za-z]:[\\/]/.test(s);

function fromShort(file: ComposeFile, spec: string): HostMount | null {
  if (spec.startsWith('//./pipe/') || spec.startsWith('\\\\.\\pipe\\')) {
    const i = spec.indexOf(':', 9);
    return { source: i < 0 ? spec : spec.slice(0, i), target: i < 0 ? '' : spec.slice(i + 1), via: 'npipe' };
  }
  const parts = spec.split(':');
  if (parts.length < 2) return null; // an anonymous volume: a container path only
  const [source, target] = [parts[0]!, parts[1]!];
  if (isHostPath(source)) return { source, target, via: 'bind' };
  const device = namedVolumeDevice(file, source);
  return device ? { source: device, target, via: 'volume' } : null;
}

function fromLong(file: ComposeFile, v: Record<string, unknown>): HostMount | null {
  const source = typeof v.source === 'string' ? v.source : typeof v.src === 'string' ? v.src : '';
  const target = typeof v.target === 'string' ? v.target : typeof v.destination === 'string' ? v.destination : '';
  if (!source) return null;
  if (v.type === 'npipe') return { source, target, via: 'npipe' };
  if (v.type === 'bind' || (v.type === undefined && isHostPath(source))) return { source, target, via: 'bind' };
  if (v.type === 'volume' || v.type === undefined) {
    const device = namedVolumeDevice(file, source);
    return device ? { source: device, target, via: 'volume' } : null;
  }
  return null;
}

/** Every host path a service mounts. */
export function hostMounts(file: ComposeFile, svc: Record<string, unknown>): HostMount[] {
  const vols = Array.isArray(svc.volumes) ? svc.volumes : [];
  const out: HostMount[] = [];
  for (const v of vols) {
    const m = typeof v === 'string' ? fromShort(file, v) : isMap(v) ? fromLong(file, v) : null;
    if (m) out.push(m);
  }
  return out;
}
