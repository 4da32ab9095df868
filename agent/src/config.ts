import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { LabelMapSchema, parseImagePatterns, type ImagePattern } from '../../protocol/src/index.ts';
import { parseAllowedMounts, type AllowedMount } from './policy/mounts.ts';

/** Environment variables the agent reads (README "Configuration"). */
const EnvSchema = z.object({
  /** Control plane base URL, e.g. http://10.0.0.1:8090 or https://machete.example. */
  MACHETE_SERVER: z.string().url().optional(),
  /** One-time join token (only needed until the host has a credential in the state dir). */
  MACHETE_JOIN_TOKEN: z.string().min(1).optional(),
  MACHETE_JOIN_TOKEN_FILE: z.string().min(1).optional(),
  /** Docker endpoint: unix:///path or tcp://host:port. Default /var/run/docker.sock. */
  DOCKER_HOST: z.string().min(1).optional(),
  DOCKER_TLS_VERIFY: z.enum(['', '0', '1', 'true', 'false']).optional(),
  /** Directory with ca.pem, cert.pem, key.pem for TLS engines. */
  DOCKER_CERT_PATH: z.string().min(1).optional(),
  /** `path:ro,path:rw,…`; empty: no host path may be mounted. */
  MACHETE_ALLOWED_MOUNTS: z.string().default(''),
  /** Comma-separated image patterns (`registry.example.com/*`, `team/*:*`); empty: any image. Checked again here, whatever the control plane allowed. */
  MACHETE_ALLOWED_IMAGES: z.string().default(''),
  MACHETE_HOST_NAME: z.string().min(1).max(253).regex(/^[A-Za-z0-9._-]+$/).optional(),
  /** `k=v,k=v` */
  MACHETE_HOST_LABELS: z.string().default(''),
  /** What the scheduler may reserve on this host; default: what the engine reports (NCPU, MemTotal). */
  MACHETE_CAPACITY_CPUS: z.coerce.number().gt(0).max(4096).optional(),
  MACHETE_CAPACITY_MEMORY_MB: z.coerce.number().int().min(1).max(1 << 30).optional(),
  /** Where the host credential is kept (0600). */
  MACHETE_STATE_DIR: z.string().min(1).default('./.machete/agent'),
  MACHETE_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export interface AgentConfig {
  readonly server: string | null;
  readonly joinToken: string | null;
  readonly docker: { readonly dockerHost: string; readonly tlsVerify: boolean; readonly certPath: string | null };
  readonly allowedMounts: readonly AllowedMount[];
  /** null: any image. */
  readonly allowedImages: readonly ImagePattern[] | null;
  readonly hostName: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Overrides of the capacity the engine reports (either may be set alone). */
  readonly capacity: { readonly cpus: number | null; readonly memoryMb: number | null };
  readonly stateDir: string;
  readonly logLevel: string;
}

export function parseLabels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`MACHETE_HOST_LABELS: "${part.slice(0, 40)}" is not k=v`);
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  const r = LabelMapSchema.safeParse(out);
  if (!r.success) throw new Error(`MACHETE_HOST_LABELS: ${r.error.issues[0]?.message}`);
  return r.data;
}

/** Reads the environment once; `overrides` lets an in-process launcher hand over a join token. */
export function loadAgentConfig(env: Record<string, string | undefined>, overrides: Partial<Pick<AgentConfig, 'server' | 'joinToken' | 'stateDir'>> = {}): AgentConfig {
  const r = EnvSchema.safeParse(env);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`configuration: ${String(i?.path[0])} ${i?.message ?? 'is invalid'}`);
  }
  const e = r.data;
  const joinToken = overrides.joinToken ?? (e.MACHETE_JOIN_TOKEN_FILE ? readFileSync(e.MACHETE_JOIN_TOKEN_FILE, 'utf8').trim() : e.MACHETE_JOIN_TOKEN ?? null);
  return Object.freeze({
    server: (overrides.server ?? e.MACHETE_SERVER ?? null)?.replace(/\/+$/, '') ?? null,
    joinToken,
    docker: {
      dockerHost: e.DOCKER_HOST ?? 'unix:///var/run/docker.sock',
      tlsVerify: e.DOCKER_TLS_VERIFY === '1' || e.DOCKER_TLS_VERIFY === 'true',
      certPath: e.DOCKER_CERT_PATH ?? null,
    },
    allowedMounts: parseAllowedMounts(e.MACHETE_ALLOWED_MOUNTS),
    allowedImages: parseImagePatterns(e.MACHETE_ALLOWED_IMAGES),
    hostName: e.MACHETE_HOST_NAME ?? os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 253),
    labels: parseLabels(e.MACHETE_HOST_LABELS),
    capacity: { cpus: e.MACHETE_CAPACITY_CPUS ?? null, memoryMb: e.MACHETE_CAPACITY_MEMORY_MB ?? null },
    stateDir: path.resolve(overrides.stateDir ?? e.MACHETE_STATE_DIR),
    logLevel: e.MACHETE_LOG_LEVEL,
  });
}
