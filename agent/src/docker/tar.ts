/**
 * The smallest tar writer the agent needs: regular files with a mode and an owner, in memory,
 * for Engine API `PUT /containers/{id}/archive` (secrets). POSIX ustar, no dependencies.
 */
export interface TarFile {
  /** A plain file name: no `/`, no `..` (secret names are checked before they get here). */
  name: string;
  data: Buffer;
  mode: number;
  uid: number;
  gid: number;
}

const BLOCK = 512;

function octal(buf: Buffer, offset: number, width: number, value: number): void {
  buf.write(value.toString(8).padStart(width - 1, '0'), offset, width - 1, 'ascii');
  buf[offset + width - 1] = 0;
}

function header(f: TarFile, mtime: number): Buffer {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,98}$/.test(f.name) || f.name.includes('..')) throw new Error('tar: invalid file name');
  const h = Buffer.alloc(BLOCK);
  h.write(f.name, 0, 100, 'utf8');
  octal(h, 100, 8, f.mode);
  octal(h, 108, 8, f.uid);
  octal(h, 116, 8, f.gid);
  octal(h, 124, 12, f.data.length);
  octal(h, 136, 12, mtime);
  h.fill(' ', 148, 156); // checksum is computed with its own field as spaces
  h.write('0', 156, 1, 'ascii'); // regular file
  h.write('ustar\u000000', 257, 8, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii');
  return h;
}

export function tarFiles(files: readonly TarFile[], mtime = Math.floor(Date.now() / 1000)): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(header(f, mtime), f.data);
    const pad = (BLOCK - (f.data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}
