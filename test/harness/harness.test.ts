import Docker from 'dockerode';
import postgres from 'postgres';
import { describe, expect, inject, it } from 'vitest';

/** Non-TTY container logs are multiplexed: 8-byte header (stream, 0, 0, 0, size BE) per frame. */
function demux(buf: Buffer): { stdout: string; stderr: string } {
  const out = { stdout: '', stderr: '' };
  let off = 0;
  while (off + 8 <= buf.length) {
    const stream = buf[off];
    const size = buf.readUInt32BE(off + 4);
    const chunk = buf.subarray(off + 8, off + 8 + size).toString('utf8');
    if (stream === 2) out.stderr += chunk;
    else out.stdout += chunk;
    off += 8 + size;
  }
  return out;
}

describe('test harness', () => {
  it('runs a container from the offline test image as nobody without network and reports its exit code and output', async () => {
    const docker = new Docker({ socketPath: inject('dockerSocket') });
    const container = await docker.createContainer({
      Image: inject('testImage'),
      Cmd: ['sh', '-c', 'echo hello; exit 3'],
      User: '65534:65534',
      HostConfig: { NetworkMode: 'none' },
    });
    try {
      await container.start();
      const result = (await container.wait()) as { StatusCode: number };
      const logs = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
      expect(result.StatusCode).toBe(3);
      expect(demux(logs).stdout).toBe('hello\n');
    } finally {
      await container.remove({ force: true });
    }
  });

  it('connects to the throwaway PostgreSQL cluster', async () => {
    const sql = postgres(inject('pgUrl'), { max: 1, onnotice: () => {} });
    try {
      const rows = await sql<{ one: number }[]>`select 1 as one`;
      expect(rows[0]?.one).toBe(1);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });
});
