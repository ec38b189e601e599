// Two projects: `unit` needs nothing running; `services` (workflow + integration tests) shares one
// Temporal dev server and one real PostgreSQL started by test/global-setup.ts.
const transform = { '^.+\\.ts$': 'ts-jest' };

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/unit/**/*.test.ts'],
    },
    {
      displayName: 'services',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/{workflow,integration,faults}/**/*.test.ts'],
      globalSetup: '<rootDir>/test/global-setup.ts',
      globalTeardown: '<rootDir>/test/global-teardown.ts',
    },
  ],
  // A global option (Jest ignores it inside a project): workflow tests wait on real servers.
  testTimeout: 120000,
};
