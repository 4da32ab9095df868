// The import rules of .dependency-cruiser.cjs bite: a throwaway tree with the repository's
// layout, holding one forbidden import per rule next to the allowed ones, is cruised with
// the real configuration. The tree lives in the OS temp dir, so a concurrent lint of the
// repository never sees it.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseOptions, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const FIXTURE: Record<string, string> = {
  'protocol/src/index.ts': `import { z } from 'zod';\nexport const Name = z.string();\nexport type Spec = { image: string };\n`,
  'protocol/src/bad.ts': `import { rows } from '../../db/src/index.ts';\nexport const x = rows;\n`,
  'db/src/index.ts': `import type { Spec } from '../../protocol/src/index.ts';\nexport type Row = Spec;\nexport const rows: Row[] = [];\n`,
  'db/src/bad.ts': `import { Name } from '../../protocol/src/index.ts';\nexport const x = Name;\n`,
  'db/src/driver.ts': `import postgres from 'postgres';\nimport { pino } from 'pino';\nexport const x = [postgres, pino];\n`,
  'protocol/src/log.ts': `import { pino } from 'pino';\nexport const log = pino;\n`,
  'protocol/src/fs.ts': `import { readFileSync } from 'node:fs';\nexport const read = readFileSync;\n`,
  'agent/src/good.ts': `import { Name } from '../../protocol/src/index.ts';\nexport const x = Name;\n`,
  'agent/src/bad.ts': `import type { Row } from '../../db/src/index.ts';\nexport type X = Row;\n`,
  'apps/api/src/app.ts': `import { rows } from '../../../db/src/index.ts';\nexport const app = { rows };\nexport type AppType = typeof app;\n`,
  'apps/api/src/bad.ts': `import { x } from '../../../agent/src/good.ts';\nexport const y = x;\n`,
  'apps/api/src/services/bad.ts': `import { Hono } from 'hono';\nexport const h = new Hono();\n`,
  'apps/cli/src/good.ts': `import type { AppType } from '../../api/src/app.ts';\nexport type A = AppType;\n`,
  'apps/cli/src/bad.ts': `import { app } from '../../api/src/app.ts';\nexport const a = app;\n`,
};

/** Every violation in the fixture: rule, from, to. Nothing else may be reported. */
const EXPECTED = [
  'agent-not-db-or-apps agent/src/bad.ts -> db/src/index.ts',
  'api-not-agent-or-clients apps/api/src/bad.ts -> agent/src/good.ts',
  'clients-api-types-only apps/cli/src/bad.ts -> apps/api/src/app.ts',
  'db-only-its-drivers db/src/driver.ts -> node_modules/pino',
  'db-protocol-types-only db/src/bad.ts -> protocol/src/index.ts',
  'protocol-only-zod protocol/src/bad.ts -> db/src/index.ts',
  'protocol-only-zod protocol/src/fs.ts -> fs',
  'protocol-only-zod protocol/src/log.ts -> node_modules/pino',
  'services-not-hono apps/api/src/services/bad.ts -> node_modules/hono',
];

async function cruiseWithRepoConfig(baseDir: string, dirs: string[]): Promise<ICruiseResult> {
  const options: ICruiseOptions = {
    ...(await extractDepcruiseOptions(path.join(ROOT, '.dependency-cruiser.cjs'))),
    baseDir,
    tsConfig: { fileName: path.join(baseDir, 'tsconfig.json') },
    // The fixture's node_modules is a link to the repository's; keep its paths under the fixture.
    preserveSymlinks: true,
  };
  const res = await cruise(dirs, options, undefined, { tsConfig: extractTSConfig(path.join(baseDir, 'tsconfig.json')) });
  return res.output as ICruiseResult;
}

const errors = (r: ICruiseResult) =>
  r.summary.violations
    .filter((v) => v.rule.severity === 'error')
    // A package is named by its folder: which of its files resolution picks is not the point.
    .map((v) => `${v.rule.name} ${v.from} -> ${v.to.replace(/^(node_modules\/(?:@[^/]+\/)?[^/]+)\/.*$/, '$1')}`)
    .sort();

describe('import rules (.dependency-cruiser.cjs)', () => {
  let fixture: string;
  beforeAll(() => {
    fixture = mkdtempSync(path.join(tmpdir(), 'machete-depcruise-'));
    for (const [file, text] of Object.entries(FIXTURE)) {
      mkdirSync(path.dirname(path.join(fixture, file)), { recursive: true });
      writeFileSync(path.join(fixture, file), text);
    }
    writeFileSync(path.join(fixture, 'tsconfig.json'), JSON.stringify({ extends: path.join(ROOT, 'tsconfig.json'), include: ['**/*.ts'] }));
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(fixture, 'node_modules'), 'dir');
  });
  afterAll(() => {
    if (fixture) rmSync(fixture, { recursive: true, force: true });
  });

  it('reports each forbidden import and none of the allowed ones', async () => {
    const result = await cruiseWithRepoConfig(fixture, ['protocol', 'db', 'apps', 'agent']);
    expect(result.modules.filter((m) => m.couldNotResolve).map((m) => m.source)).toEqual([]);
    expect(errors(result)).toEqual(EXPECTED);
  });

  it('finds no forbidden import in the repository itself', async () => {
    const result = await cruiseWithRepoConfig(ROOT, ['protocol', 'db', 'apps', 'agent']);
    expect(result.summary.totalCruised).toBeGreaterThan(50);
    expect(errors(result)).toEqual([]);
  });
});
