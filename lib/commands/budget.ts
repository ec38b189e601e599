/**
 * `phasegate budget <server> [--rows-per-second N] [--max-concurrent N]`: shows a server's shared
 * throttle budget (query `budgetStatus` on `phasegate-budget-<server>`), or changes it live with
 * the `setBudget` Update (its validator refuses a bad value with the reason; nothing changes).
 */
import type { Client } from '@temporalio/client';
import type { BudgetStatus } from '../../workflows/budget-messages';
import { PhasegateError } from '../errors';
import { clientFor, executeOrRefuse } from './control';
import type { ProjectOptions } from './project';

export interface BudgetOptions extends ProjectOptions {
  server: string;
  rowsPerSecond?: number;
  maxConcurrent?: number;
  by?: string;
  client?: Client;
}

export interface BudgetResult {
  workflowId: string;
  changed: boolean;
  status: BudgetStatus;
}

export async function budget(options: BudgetOptions): Promise<BudgetResult> {
  const { client, close } = await clientFor(options);
  const workflowId = `phasegate-budget-${options.server}`;
  try {
    const handle = client.workflow.getHandle(workflowId);
    const change = {
      ...(options.rowsPerSecond !== undefined ? { maxRowsPerSecond: options.rowsPerSecond } : {}),
      ...(options.maxConcurrent !== undefined ? { maxConcurrentBackfills: options.maxConcurrent } : {}),
    };
    const changed = Object.keys(change).length > 0;
    if (changed) {
      await executeOrRefuse(handle, 'setBudget', { ...change, by: options.by ?? process.env.USER ?? 'phasegate' }, (reason) => new PhasegateError('BudgetRefused', reason));
    }
    return { workflowId, changed, status: await handle.query<BudgetStatus>('budgetStatus') };
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') {
      throw new PhasegateError('BudgetNotFound', `no budget workflow ${workflowId}: it starts with the first backfill on a database with server "${options.server}"`);
    }
    throw err;
  } finally {
    await close();
  }
}
