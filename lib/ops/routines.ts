/** Functions and triggers: what keeps old and new columns in sync during an expand/contract change. */
import { quoteIdent } from '../sql';
import { dollarQuote, requireExpression, requireName, requireOneOf, requireSqlFragment, tableRef } from './render';
import { InvalidOpError, type RecordedOp } from './types';

export interface CreateFunctionOptions {
  /** Return type: `trigger`, `void`, `integer`, `setof text`, … */
  returns: string;
  /** `plpgsql`, `sql`, … */
  language: string;
  /** The function body, written into a dollar-quoted string as is. */
  body: string;
  /** Arguments as SQL, one per entry: `'amount numeric'`, `'integer'`. */
  args?: string[];
}

export type TriggerEvent = 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE' | `UPDATE OF ${string}`;

export interface CreateTriggerOptions {
  timing: 'BEFORE' | 'AFTER';
  /** `['INSERT', 'UPDATE OF name, email']`: UPDATE OF lists column names, comma-separated. */
  events: TriggerEvent[];
  forEach: 'ROW' | 'STATEMENT';
  /** The trigger function, optionally schema-qualified; it takes no arguments and returns `trigger`. */
  function: string;
  /** WHEN condition, e.g. `NEW.name IS DISTINCT FROM OLD.name`. */
  when?: string;
}

export function createFunction(name: string, options: CreateFunctionOptions): RecordedOp {
  const fn = tableRef('createFunction', 'function name', name);
  if (options === null || typeof options !== 'object') throw new InvalidOpError('createFunction', 'options must be an object { returns, language, body, args? }');
  const args = (options.args ?? []).map((a, i) => requireSqlFragment('createFunction', `args[${i}]`, a));
  const returns = requireSqlFragment('createFunction', 'returns', options.returns);
  const language = quoteIdent(requireName('createFunction', 'language', options.language));
  if (typeof options.body !== 'string' || options.body.trim() === '') throw new InvalidOpError('createFunction', 'body must be a non-empty string');
  return {
    kind: 'createFunction',
    description: `create or replace function ${fn.text}(${args.join(', ')})`,
    statements: [
      { sql: `CREATE OR REPLACE FUNCTION ${fn.sql}(${args.join(', ')}) RETURNS ${returns} LANGUAGE ${language} AS ${dollarQuote(options.body)}` },
    ],
  };
}

export function dropFunction(name: string, argTypes: string[]): RecordedOp {
  const fn = tableRef('dropFunction', 'function name', name);
  if (!Array.isArray(argTypes)) {
    throw new InvalidOpError('dropFunction', 'argTypes must be an array of the argument types ([] for none): they pick which overload to drop');
  }
  const types = argTypes.map((a, i) => requireSqlFragment('dropFunction', `argTypes[${i}]`, a));
  return {
    kind: 'dropFunction',
    description: `drop function ${fn.text}(${types.join(', ')})`,
    statements: [{ sql: `DROP FUNCTION IF EXISTS ${fn.sql}(${types.join(', ')})` }],
  };
}

function renderEvent(event: unknown, index: number): string {
  if (typeof event === 'string') {
    const updateOf = /^UPDATE OF\s+(.*)$/i.exec(event);
    if (updateOf) {
      const columns = updateOf[1].split(',').map((c, i) => requireName('createTrigger', `events[${index}] column ${i + 1}`, c.trim()));
      return `UPDATE OF ${columns.map(quoteIdent).join(', ')}`;
    }
  }
  return requireOneOf('createTrigger', `events[${index}]`, event, ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] as const);
}

export function createTrigger(name: string, table: string, options: CreateTriggerOptions): RecordedOp {
  const trigger = requireName('createTrigger', 'trigger name', name, { unqualified: true });
  const t = tableRef('createTrigger', 'table', table);
  if (options === null || typeof options !== 'object') throw new InvalidOpError('createTrigger', 'options must be an object { timing, events, forEach, function, when? }');
  const timing = requireOneOf('createTrigger', 'timing', options.timing, ['BEFORE', 'AFTER'] as const);
  if (!Array.isArray(options.events) || options.events.length === 0) throw new InvalidOpError('createTrigger', 'events must list at least one of INSERT, UPDATE, UPDATE OF …, DELETE, TRUNCATE');
  const events = options.events.map(renderEvent);
  const forEach = requireOneOf('createTrigger', 'forEach', options.forEach, ['ROW', 'STATEMENT'] as const);
  const fn = tableRef('createTrigger', 'function', options.function);
  const when = options.when === undefined ? '' : ` WHEN (${requireExpression('createTrigger', 'when', options.when)})`;
  return {
    kind: 'createTrigger',
    description: `create or replace trigger ${trigger} on ${t.text} (${timing} ${options.events.join(' OR ')} FOR EACH ${forEach} → ${fn.text})`,
    statements: [
      {
        sql: `CREATE OR REPLACE TRIGGER ${quoteIdent(trigger)} ${timing} ${events.join(' OR ')} ON ${t.sql} FOR EACH ${forEach}${when} EXECUTE FUNCTION ${fn.sql}()`,
      },
    ],
  };
}

export function dropTrigger(name: string, table: string): RecordedOp {
  const trigger = requireName('dropTrigger', 'trigger name', name, { unqualified: true });
  const t = tableRef('dropTrigger', 'table', table);
  return {
    kind: 'dropTrigger',
    description: `drop trigger ${trigger} on ${t.text}`,
    statements: [{ sql: `DROP TRIGGER IF EXISTS ${quoteIdent(trigger)} ON ${t.sql}` }],
  };
}
