#!/usr/bin/env python3
"""
Records Alembic's answers to the questions in test/alembic-parity/graphs.json, into
test/alembic-parity/alembic-answers.json, for the conformance test to compare phasegate with.

For each graph it writes an Alembic project (one revision file per revision, empty upgrade and
downgrade bodies, down_revision / branch_labels / depends_on), then asks Alembic itself:
`heads`, `history -r <range>`, and for each scenario the commands in order, from an empty SQLite
database: an online command (upgrade, downgrade, stamp) runs against it; an offline (`--sql`) command's script is executed
in it with sqlite3. Each answer is the revisions the command ran (in order) and the version rows
it left, or the first line of Alembic's error.

Usage: npm run record:alembic   (creates a venv under $TMPDIR with `pip install alembic`)
"""
import io
import json
import logging
import os
import re
import sqlite3
import sys
import tempfile

from alembic import command
from alembic.config import Config
import alembic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRAPHS = os.path.join(ROOT, 'test', 'alembic-parity', 'graphs.json')
ANSWERS = os.path.join(ROOT, 'test', 'alembic-parity', 'alembic-answers.json')

ENV_PY = '''
from alembic import context
from sqlalchemy import create_engine
url = context.config.get_main_option("sqlalchemy.url")
if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
'''


def write_project(folder, revisions):
    versions = os.path.join(folder, 'versions')
    os.makedirs(versions)
    with open(os.path.join(folder, 'env.py'), 'w') as f:
        f.write(ENV_PY)
    with open(os.path.join(folder, 'script.py.mako'), 'w') as f:
        f.write('')
    for r in revisions:
        parents = r.get('parents', [])
        down = None if not parents else (parents[0] if len(parents) == 1 else tuple(parents))
        labels = tuple(r.get('branchLabels', [])) or None
        depends = tuple(r.get('dependsOn', [])) or None
        with open(os.path.join(versions, '%s.py' % r['id']), 'w') as f:
            f.write('revision = %r\ndown_revision = %r\nbranch_labels = %r\ndepends_on = %r\n'
                    'def upgrade():\n    pass\ndef downgrade():\n    pass\n' % (r['id'], down, labels, depends))


class Ran(logging.Handler):
    """Collects Alembic's `Running upgrade a -> b` log lines (online mode)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


RUNNING = re.compile(r'Running (upgrade|downgrade) (.*?) -> ([^,]*)')


def steps(lines):
    """`Running upgrade a -> b, msg` → ['upgrade b']; a downgrade names what it un-applies (left side)."""
    found = []
    for line in lines:
        m = RUNNING.search(line)
        if not m:
            continue
        direction, left, right = m.group(1), m.group(2).strip(), m.group(3).strip()
        found.append('%s %s' % (direction, right if direction == 'upgrade' else left))
    return found


def rows(db):
    con = sqlite3.connect(db)
    try:
        return sorted(r[0] for r in con.execute('SELECT version_num FROM alembic_version'))
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def config(folder, db, buffer):
    cfg = Config(output_buffer=buffer, stdout=buffer)
    cfg.set_main_option('script_location', folder)
    cfg.set_main_option('sqlalchemy.url', 'sqlite:///%s' % db)
    return cfg


def first_line(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def answer_graph(name, graph, work):
    folder = os.path.join(work, name)
    write_project(folder, graph['revisions'])
    out = {'heads': None, 'history': {}, 'scenarios': {}}
    buf = io.StringIO()
    command.heads(config(folder, os.path.join(work, 'none.db'), buf))
    out['heads'] = sorted(line.split(' ')[0] for line in buf.getvalue().splitlines() if line.strip())
    for rng in graph['history']:
        buf = io.StringIO()
        try:
            command.history(config(folder, os.path.join(work, 'none.db'), buf), rev_range=rng)
            ids = [re.search(r'-> ([^\s,]+)', line).group(1) for line in buf.getvalue().splitlines() if '->' in line]
            out['history'][rng] = ids
        except Exception as err:  # noqa: BLE001 - an error is an answer
            out['history'][rng] = {'error': first_line(err)}
    log = logging.getLogger('alembic.runtime.migration')
    log.setLevel(logging.INFO)
    for scenario, commands in graph['scenarios'].items():
        db = os.path.join(work, '%s-%s.db' % (name, scenario))
        answers = []
        for text in commands:
            verb, target = text.split(' ')[0], text.split(' ')[1]
            offline = text.endswith('--sql')
            buf = io.StringIO()
            handler = Ran()
            log.addHandler(handler)
            try:
                if verb == 'stamp':
                    command.stamp(config(folder, db, buf), target)
                else:
                    (command.upgrade if verb == 'upgrade' else command.downgrade)(config(folder, db, buf), target, sql=offline)
                if offline:
                    script = buf.getvalue()
                    con = sqlite3.connect(db)
                    con.executescript(script)
                    con.close()
                    ran = steps([line for line in script.splitlines() if line.startswith('-- Running')])
                else:
                    ran = steps(handler.lines)
                answers.append({'command': text, 'ran': ran, 'rows': rows(db)})
            except Exception as err:  # noqa: BLE001 - an error is an answer
                answers.append({'command': text, 'error': first_line(err), 'rows': rows(db)})
            finally:
                log.removeHandler(handler)
        out['scenarios'][scenario] = answers
    return out


def main():
    with open(GRAPHS) as f:
        graphs = json.load(f)
    work = tempfile.mkdtemp(prefix='phasegate-alembic-')
    recorded = {'alembic': alembic.__version__, 'graphs': {}}
    for name, graph in graphs.items():
        recorded['graphs'][name] = answer_graph(name, graph, work)
    with open(ANSWERS, 'w') as f:
        json.dump(recorded, f, indent=2)
        f.write('\n')
    print('recorded %d graph(s) with Alembic %s into %s' % (len(graphs), alembic.__version__, ANSWERS))


if __name__ == '__main__':
    sys.exit(main())
