// Four projects: `unit` needs nothing running; `services` (workflow + integration tests) shares one
// Temporal dev server and one real PostgreSQL started by test/global-setup.ts; `browser` drives the
// Temporal Web UI in headless Chromium against its own `npm start` stack (no global set-up).
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
    {
      // The packed tarball installed into an empty project, with its own `phasegate dev` stack.
      displayName: 'package',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/package/**/*.test.ts'],
    },
    {
      displayName: 'browser',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/browser/**/*.test.ts'],
    },
  ],
  // dist/ (npm run build) holds compiled copies of the sources; Jest must not see them as modules.
  modulePathIgnorePatterns: ['<rootDir>/dist/'],
  // A global option (Jest ignores it inside a project): workflow tests wait on real servers.
  testTimeout: 120000,
};
