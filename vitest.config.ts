import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{protocol,db,apps,agent,test}/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'bench/**'],
    globalSetup: ['test/globalSetup.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    pool: 'forks',
    // Two cores: more workers only contend with the daemons the tests drive.
    maxWorkers: 2,
  },
});
