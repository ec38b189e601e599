/**
 * What a person does in the Temporal Web UI, in headless Chromium, against a stack started exactly
 * like `npm start` (its own ports and data folder): find the migration waiting for approval, read
 * its gate on the page, approve it with "Send a Signal", pause and resume the backfill, watch it
 * complete, then start a downgrade from the "Start Workflow" form. Each step saves a screenshot to
 * test-artifacts/browser/ and prints its duration.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { chromiumVersion, launchChromium } from '../support/chromium';
import { repoRoot, startStack, type Stack } from './stack';

/** 60,000 rows at the demo's 2,000 rows/s: ~30 s of backfill, time to pause and resume it. */
const ROWS = 60_000;
const GATE = 'deploy:accounts.org_id';
const PROMPT = 'Deploy the app version that writes accounts.org_id';
const artifacts = path.join(repoRoot, 'test-artifacts', 'browser');

const say = (line: string) => process.stdout.write(`[browser] ${line}\n`);

let stack: Stack | undefined;
let browser: Browser | undefined;
let page: Page;
let shots = 0;
const suiteStarted = Date.now();

async function shot(name: string): Promise<void> {
  shots += 1;
  const file = path.join(artifacts, `${String(shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  say(`  screenshot ${path.relative(repoRoot, file)}`);
}

/** Runs one step of the walk-through and prints how long it took. */
async function step(name: string, fn: () => Promise<void>): Promise<void> {
  const started = Date.now();
  say(`${name}…`);
  try {
    await fn();
  } catch (err) {
    // The page as it was when the step failed, for whoever reads the failure.
    if (page) await page.screenshot({ path: path.join(artifacts, `failed-${name.replace(/\W+/g, '-')}.png`) }).catch(() => undefined);
    say(`${name}: FAILED after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    throw err;
  }
  say(`${name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * Calls `attempt` until it returns a value other than undefined. Between attempts it waits
 * `intervalMs` (polling is the only waiting here). On time-out the error names `what` and the last
 * thing seen.
 */
async function poll<T>(what: string | (() => string), attempt: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${typeof what === 'string' ? what : what()}${last ? `; last: ${(last as Error).message ?? String(last)}` : ''}`);
    }
    await page.waitForTimeout(intervalMs);
  }
}

/** Replaces the text of one of the UI's JSON editors (CodeMirror) the way typing would. */
async function typeJson(editor: Locator, json: string): Promise<void> {
  await editor.click();
  await page.keyboard.press('ControlOrMeta+A');
  // insertText, not type(): the editor's auto-closing brackets and quotes would double them up.
  await page.keyboard.insertText(json);
  // Leave the editor before clicking on: it reformats the JSON on blur, which moves the buttons
  // below it (a click whose mousedown blurs it would land where the button was).
  await editor.blur();
}

async function openWorkflow(workflowId: string): Promise<void> {
  await page.goto(`${stack!.uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
  await page.getByRole('heading', { name: workflowId, level: 1 }).waitFor();
}

/** "More Actions" → "Send a Signal": choose the signal by name, type its input, submit. */
async function sendSignal(name: string, input: unknown): Promise<void> {
  await page.getByRole('button', { name: 'More Actions' }).click();
  await page.getByRole('menuitem', { name: 'Send a Signal' }).click();
  const dialog = page.getByRole('dialog', { name: 'Send a Signal' });
  await dialog.getByRole('button', { name: 'Select a signal' }).click();
  // The list comes from the workflow's metadata: each signal with its description.
  await dialog.getByRole('option', { name: new RegExp(`^${name}\\b`) }).click();
  await dialog.getByRole('button', { name, exact: true }).waitFor();
  await typeJson(dialog.locator('[contenteditable="true"][role="textbox"]'), JSON.stringify(input));
  await dismissToasts();
  await dialog.getByRole('button', { name: 'Submit' }).click();
  await page.getByRole('log').getByText('Workflow signaled.').waitFor();
  await dialog.waitFor({ state: 'hidden' });
}

/** Closes the notifications in the corner, so the next one is known to be new. */
async function dismissToasts(): Promise<void> {
  const close = page.getByRole('log').getByRole('button', { name: 'Close' });
  for (let i = 0; i < 10 && (await close.count()) > 0; i++) await close.first().click({ timeout: 5000 }).catch(() => undefined);
}

/** The `status` query, run from the Queries tab; returns its top-level "state" as the page shows it. */
async function queryState(): Promise<string | undefined> {
  const tab = page.getByRole('tab', { name: 'Queries' });
  if ((await tab.getAttribute('aria-selected')) !== 'true') await tab.click();
  // `status` is the first query the workflow's metadata lists, so the form opens with it chosen.
  await page.getByRole('button', { name: 'status', exact: true }).waitFor();
  await page.getByRole('button', { name: /^(Run Query|Refresh Query)$/ }).click();
  const result = page.getByTestId('query-result').locator('.cm-content');
  const text = await result.innerText({ timeout: 10_000 });
  // Formatted JSON: the migration's own state is the one indented by two spaces.
  return /^ {2}"state": "([a-z-]+)"/m.exec(text)?.[1];
}

async function waitForState(wanted: string[], timeoutMs = 60_000): Promise<string> {
  let seen: string | undefined;
  return poll(
    () => `the status query to show state ${wanted.join(' or ')} (last seen: ${seen ?? 'nothing'})`,
    async () => {
      seen = await queryState();
      return seen && wanted.includes(seen) ? seen : undefined;
    },
    timeoutMs,
  );
}

/** The status badge in the workflow page's header (Running, Completed, Failed, …). */
function statusBadge(status: string): Locator {
  return page.locator('main header').first().getByText(status, { exact: true });
}

async function waitForWorkflowStatus(status: string, timeoutMs = 90_000): Promise<void> {
  await poll(
    `the workflow page to show ${status}`,
    async () => {
      if (await statusBadge(status).isVisible()) return true;
      // The page follows a running workflow by itself; a reload is the fallback if it did not.
      await statusBadge(status).waitFor({ timeout: 5000 }).catch(() => undefined);
      if (await statusBadge(status).isVisible()) return true;
      await page.reload();
      await statusBadge(status).waitFor({ timeout: 10_000 }).catch(() => undefined);
      return (await statusBadge(status).isVisible()) ? true : undefined;
    },
    timeoutMs,
    2000,
  );
}

/**
 * The User Metadata tab renders each Markdown text in its own frame: Summary, Details, then
 * Current Details (the workflow's live text) last.
 */
function metadataFrame(which: 'summary' | 'details' | 'current'): Locator {
  const frames = page.locator('main iframe[title="output"]');
  const frame = which === 'summary' ? frames.first() : which === 'details' ? frames.nth(1) : frames.last();
  return frame.contentFrame().locator('body');
}

async function openUserMetadata(): Promise<void> {
  const tab = page.getByRole('tab', { name: 'User Metadata' });
  if ((await tab.getAttribute('aria-selected')) !== 'true') await tab.click();
  await page.getByRole('heading', { name: 'Current Details' }).waitFor();
}

/** Polls Current Details (pressing R, "for freshness") until it contains every one of `texts`. */
async function waitForCurrentDetails(texts: string[], timeoutMs = 60_000): Promise<string> {
  await openUserMetadata();
  let seen = '';
  return poll(
    () => `Current Details to show ${texts.map((t) => JSON.stringify(t)).join(', ')} (last seen: ${JSON.stringify(seen.slice(0, 300))})`,
    async () => {
      seen = await metadataFrame('current').innerText({ timeout: 5000 });
      if (texts.every((t) => seen.includes(t))) return seen;
      await page.keyboard.press('r');
      return undefined;
    },
    timeoutMs,
  );
}

/** The Result box of the History tab (filled once the workflow completes). */
function resultBox(): Locator {
  return page.locator('main div:has(> h2:text-is("Result")) [role="textbox"]');
}

beforeAll(async () => {
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  browser = await launchChromium(say);
  say(`chromium: ${chromiumVersion()}`);
  const started = Date.now();
  stack = await startStack({ rows: ROWS, log: say, logsTo: path.join(artifacts, 'logs') });
  say(`stack up in ${((Date.now() - started) / 1000).toFixed(1)} s: UI ${stack.uiUrl}, Temporal ${stack.temporalAddress}, data ${stack.dataDir}`);
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(30_000);
  page.setDefaultNavigationTimeout(60_000);
}, 20 * 60_000); // the first run on a machine may install Chromium with apt-get

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await stack?.stop();
  say(`whole file: ${((Date.now() - suiteStarted) / 1000).toFixed(1)} s`);
}, 120_000);

describe('the Temporal Web UI, as a person uses it', () => {
  test('a. the workflows list, filtered by PhasegateState="awaiting-approval", lists migrate-demo', async () => {
    await step('a. filter the list', async () => {
      await page.goto(`${stack!.uiUrl}/namespaces/default/workflows`);
      await page.getByRole('heading', { name: /Workflows?$/, level: 1 }).waitFor();
      const version = await page.getByText(/^Version \d+\.\d+\.\d+$/).first().textContent();
      say(`  Temporal UI: ${version}`);
      // The raw query box sits behind the filter bar's "View raw query" toggle.
      await page.getByTestId('toggle-manual-query').click();
      const box = page.getByRole('searchbox', { name: 'Enter a query' });
      await box.fill('PhasegateState="awaiting-approval"');
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      await page.waitForURL(/query=PhasegateState/);
      // The search attribute is set once the plan is made, and visibility lags a little: search again.
      const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'migrate-demo', exact: true }) });
      await poll('migrate-demo in the filtered list', async () => {
        if (await row.isVisible()) return true;
        await page.getByRole('button', { name: 'Search', exact: true }).click();
        await row.waitFor({ timeout: 10_000 }).catch(() => undefined);
        return (await row.isVisible()) ? true : undefined;
      });
      await expectVisible(page.getByRole('button', { name: 'PhasegateState = "awaiting-approval"' }));
      await expectVisible(row.getByRole('cell', { name: 'Running', exact: true }));
      await shot('list-awaiting-approval');
    });
  }, 120_000);

  test('b. the workflow page shows the gate, its prompt and how to approve', async () => {
    await step('b. read the gate', async () => {
      await page.getByRole('link', { name: 'migrate-demo', exact: true }).first().click();
      await page.getByRole('heading', { name: 'migrate-demo', level: 1 }).waitFor();
      // Set by whoever started it (scripts/start.ts): the one-line summary and the static details.
      await openUserMetadata();
      expect(await metadataFrame('summary').innerText()).toContain('upgrade demo to head');
      expect(await metadataFrame('details').innerText()).toContain('accounts.org_id NOT NULL');
      // Set by the workflow: where it stands, the gate, its prompt and how to approve.
      const details = await waitForCurrentDetails([GATE, PROMPT]);
      expect(details).toContain('awaiting-approval');
      expect(details).toContain('Send a Signal');
      expect(details).toContain(`temporal workflow signal --workflow-id migrate-demo --name approve --input '{"by":"<you>"}'`);
      await expectVisible(metadataFrame('current').getByText(GATE, { exact: true }));
      await expectVisible(metadataFrame('current').getByText(PROMPT));
      await shot('gate-current-details');
    });
  }, 120_000);

  test('c. approve through "Send a Signal"; the backfill starts', async () => {
    await step('c. approve', async () => {
      await openWorkflow('migrate-demo');
      await sendSignal('approve', { by: 'browser-test' });
      await shot('approve-signaled');
      expect(await waitForState(['backfilling'])).toBe('backfilling');
      await shot('status-backfilling');
    });
  }, 120_000);

  test('d. pause, resume, and the migration completes', async () => {
    await step('d1. pause', async () => {
      await sendSignal('pause', {});
      expect(await waitForState(['paused'])).toBe('paused');
      await shot('status-paused');
      const details = await waitForCurrentDetails(['Backfill paused']);
      expect(details).toContain('resume');
      await shot('details-paused');
    });
    await step('d2. resume', async () => {
      await sendSignal('resume', {});
      expect(await waitForState(['backfilling', 'checking', 'applying', 'done'])).not.toBe('paused');
      await shot('status-resumed');
    });
    await step('d3. unthrottle and complete', async () => {
      // The rest at full speed: no need to wait out the demo's pacing.
      await sendSignal('throttle', { maxRowsPerSecond: 0 });
      await waitForWorkflowStatus('Completed');
      await page.getByRole('tab', { name: /^History/ }).click();
      await poll('the result on the page', async () => ((await resultBox().innerText()).includes('"outcome": "done"') ? true : undefined));
      expect(await waitForCurrentDetails(['Done'])).toMatch(/Done: demo is at/);
      await page.getByRole('tab', { name: /^History/ }).click();
      await shot('migrate-demo-completed');
    });
  }, 300_000);

  test('e. a downgrade started from the "Start Workflow" form runs to completion', async () => {
    await step('e. start a downgrade', async () => {
      await page.goto(`${stack!.uiUrl}/namespaces/default/workflows`);
      await page.getByRole('button', { name: 'Start Workflow' }).click();
      await page.getByRole('heading', { name: 'Start a Workflow' }).waitFor();
      await page.getByRole('button', { name: 'Random UUID' }).click();
      const idBox = page.getByRole('textbox', { name: 'Workflow ID' });
      const workflowId = await poll('a random workflow id', async () => (await idBox.inputValue()) || undefined);
      await page.getByRole('textbox', { name: 'Task Queue' }).fill('phasegate');
      await page.getByRole('textbox', { name: 'Workflow Type' }).fill('migrate');
      await page.getByText('Task Queue is Active').waitFor();
      const data = page.locator('main [contenteditable="true"][role="textbox"]');
      await typeJson(data, JSON.stringify({ database: 'demo', target: 'base', direction: 'downgrade' }));
      await expectVisible(page.getByText('"direction": "downgrade"'));
      await shot('start-workflow-form');
      await dismissToasts();
      await page.locator('main').getByRole('button', { name: 'Start Workflow' }).click();
      await page.getByRole('link', { name: 'Workflow started successfully' }).click();
      await page.getByRole('heading', { name: workflowId, level: 1 }).waitFor();
      await waitForWorkflowStatus('Completed');
      await poll('the downgrade result', async () => {
        const text = await resultBox().innerText();
        return text.includes('"direction": "downgrade"') && text.includes('"outcome": "done"') ? true : undefined;
      });
      await shot('downgrade-completed');
      // And the list shows it with the demo migration.
      await page.goto(`${stack!.uiUrl}/namespaces/default/workflows`);
      const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: workflowId, exact: true }) });
      await poll('the downgrade in the workflows list', async () => {
        if (await row.isVisible()) return true;
        // The list loads after the page does: give each reload time to fill it.
        await page.reload();
        await row.waitFor({ timeout: 10_000 }).catch(() => undefined);
        return (await row.isVisible()) ? true : undefined;
      });
      await expectVisible(row.getByRole('cell', { name: 'Completed', exact: true }));
      await shot('list-with-downgrade');
    });
  }, 180_000);
});

async function expectVisible(locator: Locator): Promise<void> {
  await locator.first().waitFor({ state: 'visible' });
  expect(await locator.first().isVisible()).toBe(true);
}
