import { describe, expect, it } from 'vitest';
import { parseImagePatterns, ServerFrameSchema, ToolSpecSchema } from '../../../protocol/src/index.ts';
import type { DesiredInstance, ToolSpecInput } from '../../../protocol/src/index.ts';
import { parseAllowedMounts } from '../policy/mounts.ts';
import { PolicyRefusal, buildCreatePayload, specHash } from './payload.ts';

const ctx = {
  hostId: 'host-1',
  allowedMounts: parseAllowedMounts('/srv/data:ro,/srv/out:rw'),
  engineEndpoint: '/var/run/docker.sock',
};

function instance(spec: ToolSpecInput, over: Partial<DesiredInstance> = {}): DesiredInstance {
  return { id: 'inst-1', tool: 'echoer', version: 4, kind: 'replica', revision: 17, desired: 'running', spec: ToolSpecSchema.parse(spec), ...over };
}

const minimal = () => buildCreatePayload(instance({ image: 'machete/busybox:test' }), ctx);
const hostConfig = (p = minimal()) => p.body.HostConfig;

/** Every key anywhere in a JSON-like value. */
function allKeys(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) for (const x of v) allKeys(x, out);
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.push(k);
      allKeys(x, out);
    }
  }
  return out;
}

describe('buildCreatePayload', () => {
  it('names the container machete-<tool>-<instance>-v<version>', () => {
    expect(minimal().name).toBe('machete-echoer-inst-1-v4');
  });

  it('labels the container with every machete label', () => {
    const inst = instance({ image: 'machete/busybox:test' });
    expect(buildCreatePayload(inst, ctx).body.Labels).toEqual({
      'machete.managed': 'true',
      'machete.tool': 'echoer',
      'machete.instance': 'inst-1',
      'machete.host': 'host-1',
      'machete.revision': '17',
      'machete.kind': 'replica',
      'machete.version': '4',
      'machete.spec-hash': specHash(inst.spec),
    });
  });

  it('drops every capability and forbids privilege escalation', () => {
    expect(hostConfig()).toMatchObject({ CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges:true'], Privileged: false });
    expect(hostConfig()).not.toHaveProperty('CapAdd');
  });

  it('makes the root filesystem read-only with a size-capped, noexec /tmp', () => {
    expect(hostConfig()).toMatchObject({ ReadonlyRootfs: true, Tmpfs: { '/tmp': 'rw,noexec,nosuid,nodev,size=64m' } });
  });

  it('always sets memory (without swap), CPU and pids limits from the spec defaults', () => {
    expect(hostConfig()).toMatchObject({ Memory: 256 * 1024 * 1024, MemorySwap: 256 * 1024 * 1024, NanoCpus: 500_000_000, PidsLimit: 128 });
  });

  it('takes limits from the spec, rounding CPUs to whole nanoCPUs', () => {
    const p = buildCreatePayload(instance({ image: 'machete/busybox:test', resources: { cpus: 1 / 3, memoryMb: 64, pids: 7 } }), ctx);
    expect(hostConfig(p)).toMatchObject({ Memory: 64 * 1024 * 1024, MemorySwap: 64 * 1024 * 1024, NanoCpus: 333_333_333, PidsLimit: 7 });
  });

  it('uses no network unless the spec asks for the tool\'s isolated network', () => {
    expect(hostConfig().NetworkMode).toBe('none');
    const p = buildCreatePayload(instance({ image: 'machete/busybox:test', network: 'isolated' }), ctx);
    expect(hostConfig(p).NetworkMode).toBe('machete-net-echoer');
  });

  it('rotates logs, leaves restarts to the agent and keeps the container after exit', () => {
    expect(hostConfig()).toMatchObject({
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
    });
  });

  it('runs an init, private IPC, no shared PID namespace, and a 10 s stop timeout', () => {
    expect(hostConfig()).toMatchObject({ Init: true, IpcMode: 'private', PidMode: '' });
    expect(minimal().body.StopTimeout).toBe(10);
  });

  it('runs as the spec user, non-root by default', () => {
    expect(minimal().body.User).toBe('65534:65534');
    expect(buildCreatePayload(instance({ image: 'machete/busybox:test', user: '1000' }), ctx).body.User).toBe('1000');
  });

  it('publishes no ports', () => {
    expect(hostConfig().PublishAllPorts).toBe(false);
    expect(hostConfig()).not.toHaveProperty('PortBindings');
  });

  it('passes image, command, sorted env and working dir through', () => {
    const p = buildCreatePayload(
      instance({ image: 'machete/busybox:test', command: ['sh', '-c', 'echo "$B"'], env: { B: 'x=y', A: '' }, workingDir: '/work' }),
      { ...ctx, extraArgs: ['--flag', 'v'] },
    );
    expect(p.body).toMatchObject({ Image: 'machete/busybox:test', Cmd: ['sh', '-c', 'echo "$B"', '--flag', 'v'], Env: ['A=', 'B=x=y'], WorkingDir: '/work' });
  });

  it('leaves Cmd and WorkingDir to the image when the spec has none', () => {
    expect(minimal().body).not.toHaveProperty('Cmd');
    expect(minimal().body).not.toHaveProperty('WorkingDir');
    expect(minimal().body.Env).toEqual([]);
  });

  it('gives args without a command as the whole Cmd', () => {
    expect(buildCreatePayload(instance({ image: 'machete/busybox:test' }), { ...ctx, extraArgs: ['a'] }).body.Cmd).toEqual(['a']);
  });

  it('turns allowed mounts into structured, rprivate bind Mounts and never uses Binds', () => {
    const p = buildCreatePayload(
      instance({
        image: 'machete/busybox:test',
        mounts: [
          { source: '/srv/data/in/', target: '/in' },
          { source: '/srv/out', target: '/out', readOnly: false },
        ],
      }),
      ctx,
    );
    expect(hostConfig(p).Mounts).toEqual([
      { Type: 'bind', Source: '/srv/data/in', Target: '/in', ReadOnly: true, BindOptions: { Propagation: 'rprivate' } },
      { Type: 'bind', Source: '/srv/out', Target: '/out', ReadOnly: false, BindOptions: { Propagation: 'rprivate' } },
    ]);
    expect(allKeys(p)).not.toContain('Binds');
    expect(allKeys(minimal())).not.toContain('Binds');
    expect(hostConfig().Mounts).toEqual([]);
  });

  it.each([
    [{ source: '/etc', target: '/etc' }, 'sensitive'],
    [{ source: '/srv/other', target: '/x' }, 'not in the host allowlist'],
    [{ source: '/srv/data', target: '/x', readOnly: false }, 'read-only'],
    [{ source: '/var/run/docker.sock', target: '/var/run/docker.sock' }, 'sensitive'],
    [{ source: '/srv/data/../../etc', target: '/x' }, '".."'],
  ])('refuses mount %j with a PolicyRefusal (%s)', (m, why) => {
    const build = () => buildCreatePayload(instance({ image: 'machete/busybox:test', mounts: [m] }), ctx);
    expect(build).toThrow(PolicyRefusal);
    try {
      build();
    } catch (err) {
      expect((err as PolicyRefusal).reason).toContain(why);
      expect((err as PolicyRefusal).reason).toMatch(/^mounts\[0\]: /);
    }
  });

  it('refuses a mount of the engine socket directory even when allowlisted', () => {
    const c = { ...ctx, allowedMounts: parseAllowedMounts('/srv/engine:rw'), engineEndpoint: '/srv/engine/api.socket' };
    expect(() => buildCreatePayload(instance({ image: 'machete/busybox:test', mounts: [{ source: '/srv/engine', target: '/e' }] }), c)).toThrow(
      PolicyRefusal,
    );
  });

  it('re-validates the spec instead of trusting the control plane', () => {
    const rootUser = instance({ image: 'machete/busybox:test' });
    rootUser.spec.user = '0:0';
    expect(() => buildCreatePayload(rootUser, ctx)).toThrow(PolicyRefusal);
    const privileged = instance({ image: 'machete/busybox:test' });
    (privileged.spec as Record<string, unknown>).privileged = true;
    expect(() => buildCreatePayload(privileged, ctx)).toThrow(PolicyRefusal);
    expect(() => buildCreatePayload(instance({ image: 'machete/busybox:test' }, { tool: 'Bad Name' }), ctx)).toThrow(PolicyRefusal);
  });

  it.each(['/proc', '/proc/self', '/proc/1/root', '//proc/./x', '/sys/kernel', '/dev', '/work/../proc'])(
    'refuses working directory %j with a PolicyRefusal, even when the control plane sent it (case 12)',
    (workingDir) => {
      const inst = instance({ image: 'machete/busybox:test' });
      // Forged after parsing, as a compromised control plane would send it.
      inst.spec.workingDir = workingDir;
      expect(() => buildCreatePayload(inst, ctx)).toThrow(PolicyRefusal);
      try {
        buildCreatePayload(inst, ctx);
      } catch (err) {
        expect((err as PolicyRefusal).reason).toMatch(/^working directory /);
        expect((err as PolicyRefusal).reason).not.toContain(workingDir);
      }
    },
  );

  it('keeps an ordinary working directory', () => {
    expect(buildCreatePayload(instance({ image: 'machete/busybox:test', workingDir: '/procfs' }), ctx).body.WorkingDir).toBe('/procfs');
  });

  describe('a forged instance asking for a bind through a volume or for another container\'s volumes (case 11)', () => {
    const bindVolume = { type: 'volume', source: 'v', target: '/x', readOnly: false, driverOpts: { type: 'none', o: 'bind', device: '/' } };
    const forged: Array<[string, (i: Record<string, any>) => void]> = [
      ['a volume mount with bind driver options', (i) => (i.spec.mounts = [bindVolume])],
      ['driver options on an allowed bind', (i) => (i.spec.mounts = [{ source: '/srv/data', target: '/x', readOnly: true, driverOpts: { o: 'bind', device: '/' } }])],
      ['a mount of type volume', (i) => (i.spec.mounts = [{ source: '/srv/data', target: '/x', readOnly: true, type: 'volume' }])],
      ['VolumeOptions on a mount', (i) => (i.spec.mounts = [{ source: '/srv/data', target: '/x', readOnly: true, VolumeOptions: { DriverConfig: { Options: { device: '/' } } } }])],
      ...['VolumesFrom', 'volumesFrom', 'volumes_from', 'VOLUMESFROM', 'volumesfrom'].flatMap((k): Array<[string, (i: Record<string, any>) => void]> => [
        [`${k} in the spec`, (i) => (i.spec[k] = ['victim'])],
        [`${k} on the instance`, (i) => (i[k] = ['victim'])],
        [`${k} in spec.resources`, (i) => (i.spec.resources[k] = ['victim'])],
        [`${k} in spec.placement`, (i) => (i.spec.placement[k] = ['victim'])],
      ]),
      ['Binds in the spec', (i) => (i.spec.Binds = ['/:/host'])],
      ['HostConfig in the spec', (i) => (i.spec.HostConfig = { VolumesFrom: ['victim'] })],
    ];
    it.each(forged)('refuses %s with a PolicyRefusal and builds nothing', (_what, forge) => {
      const inst = instance({ image: 'machete/busybox:test' }) as unknown as Record<string, any>;
      forge(inst);
      expect(() => buildCreatePayload(inst as unknown as DesiredInstance, ctx)).toThrow(PolicyRefusal);
    });

    it('refuses the same instances when they arrive in a snapshot frame (the agent parser)', () => {
      for (const [, forge] of forged) {
        const inst = instance({ image: 'machete/busybox:test' }) as unknown as Record<string, any>;
        forge(inst);
        expect(ServerFrameSchema.safeParse({ type: 'snapshot', revision: 17, instances: [inst] }).success).toBe(false);
      }
      expect(ServerFrameSchema.safeParse({ type: 'snapshot', revision: 17, instances: [instance({ image: 'machete/busybox:test' })] }).success).toBe(true);
    });
  });

  it('refuses arguments containing NUL', () => {
    expect(() => buildCreatePayload(instance({ image: 'machete/busybox:test' }), { ...ctx, extraArgs: ['a\0b'] })).toThrow(PolicyRefusal);
  });

  describe('for an invocation', () => {
    const invocation = (spec: ToolSpecInput, args?: readonly string[]) =>
      buildCreatePayload(instance(spec, { id: 'inv-1', kind: 'invocation', revision: 0 }), { ...ctx, ...(args ? { extraArgs: args } : {}) });

    it('opens stdin once, attaches every stream and allocates no TTY', () => {
      expect(invocation({ image: 'machete/busybox:test' }).body).toMatchObject({
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        OpenStdin: true,
        StdinOnce: true,
        Tty: false,
      });
    });

    it('gives replicas no stdin at all', () => {
      expect(minimal().body).toMatchObject({ AttachStdin: false, OpenStdin: false, StdinOnce: false, Tty: false });
    });

    it('labels it machete.kind=invocation', () => {
      expect(invocation({ image: 'machete/busybox:test' }).body.Labels).toMatchObject({ 'machete.kind': 'invocation', 'machete.instance': 'inv-1' });
    });

    it('keeps every secure default of a replica', () => {
      const inv = invocation({ image: 'machete/busybox:test' });
      expect({ ...inv.body.HostConfig, LogConfig: null }).toEqual({ ...hostConfig(), LogConfig: null });
      expect(inv.body.User).toBe('65534:65534');
    });

    it('keeps no engine log: the agent captures the output from the attach stream', () => {
      expect(invocation({ image: 'machete/busybox:test' }).body.HostConfig.LogConfig).toEqual({ Type: 'none', Config: {} });
    });

    it('appends args to the command as separate argv entries, verbatim', () => {
      const args = ['a b', `"q" 'q'`, '$HOME', '; rm -rf /', 'line1\nline2', ''];
      expect(invocation({ image: 'machete/busybox:test', command: ['printf', '%s|'] }, args).body.Cmd).toEqual(['printf', '%s|', ...args]);
    });

    it('makes args the whole Cmd when the spec has no command', () => {
      expect(invocation({ image: 'machete/busybox:test' }, ['echo', 'hi']).body.Cmd).toEqual(['echo', 'hi']);
    });

    it('refuses too many or oversized args', () => {
      expect(() => invocation({ image: 'machete/busybox:test' }, Array.from({ length: 257 }, () => 'x'))).toThrow(PolicyRefusal);
      expect(() => invocation({ image: 'machete/busybox:test' }, ['x'.repeat(32_769)])).toThrow(PolicyRefusal);
    });

    it('refuses a mount outside the allowlist like any other spec', () => {
      expect(() => invocation({ image: 'machete/busybox:test', mounts: [{ source: '/srv/other', target: '/x' }] })).toThrow(PolicyRefusal);
    });
  });

  it('hashes equal specs equally regardless of key order', () => {
    const a = ToolSpecSchema.parse({ image: 'machete/busybox:test', env: { A: '1', B: '2' } });
    const b = ToolSpecSchema.parse({ env: { B: '2', A: '1' }, image: 'machete/busybox:test' });
    expect(specHash(a)).toBe(specHash(b));
    expect(specHash(a)).not.toBe(specHash({ ...a, warm: 1 }));
  });
});

describe('buildCreatePayload: the agent image allowlist and secrets (case 16)', () => {
  const allowedImages = parseImagePatterns('machete/*');
  it('refuses an image outside the agent allowlist even when the control plane sent it', () => {
    expect(() => buildCreatePayload(instance({ image: 'evil.example.com/x:1' }), { ...ctx, allowedImages })).toThrow(PolicyRefusal);
    expect(() => buildCreatePayload(instance({ image: 'evil.example.com/x:1' }), { ...ctx, allowedImages })).toThrow('image is not allowed on this host');
    expect(buildCreatePayload(instance({ image: 'machete/busybox:test' }), { ...ctx, allowedImages }).body.Image).toBe('machete/busybox:test');
  });

  it('mounts only the named secrets, read-only at /run/secrets, with a digest label that moves with versions only', () => {
    const secrets = [{ name: 'a', value: 'VALUE-A', version: 1 }, { name: 'b', value: 'VALUE-B', version: 1 }];
    const p = buildCreatePayload(instance({ image: 'machete/busybox:test', secrets: ['a'], user: '1000' }, { secrets }), ctx);
    expect(JSON.stringify(p.body)).not.toContain('VALUE-');
    expect(p.secrets).toEqual({ volume: `${p.name}-secrets`, uid: 1000, gid: 1000, files: [{ name: 'a', value: 'VALUE-A' }] });
    expect((p.body.HostConfig.Mounts as unknown[]).at(-1)).toMatchObject({ Type: 'volume', Source: `${p.name}-secrets`, Target: '/run/secrets', ReadOnly: true, VolumeOptions: { NoCopy: true } });
    const label = p.body.Labels['machete.secrets'];
    const sameVersion = buildCreatePayload(instance({ image: 'machete/busybox:test', secrets: ['a'], user: '1000' }, { secrets: [{ name: 'a', value: 'OTHER', version: 1 }] }), ctx);
    const rotated = buildCreatePayload(instance({ image: 'machete/busybox:test', secrets: ['a'], user: '1000' }, { secrets: [{ name: 'a', value: 'OTHER', version: 2 }] }), ctx);
    expect(sameVersion.body.Labels['machete.secrets']).toBe(label);
    expect(rotated.body.Labels['machete.secrets']).not.toBe(label);
    expect(minimal().body.Labels['machete.secrets']).toBeUndefined();
    expect(minimal().secrets).toBeUndefined();
  });
});
