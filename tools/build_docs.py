"""Build the docs site offline: nbs/*.ipynb -> _proc/ -> _docs/ (static HTML; no Quarto, no network).

    python tools/build_docs.py                          # re-run fast cells, process, render (nbs/ -> _proc/ -> _docs/)
    python tools/build_docs.py --no-execute             # the notebooks' stored outputs only (about a minute)
    python tools/build_docs.py --no-execute --strict    # ... and fail if a page lacks an output its notebook does not store
    python tools/build_docs.py --store nbs/04_amt.ipynb [--slow]   # refresh a notebook's stored outputs (figures measured)
    python tools/build_docs.py --nbs tests/fixtures --out /tmp/site --proc /tmp/site_proc

Step 0 (not with --no-execute) re-executes each notebook's fast cells, as `nbdev_test` does (`#| slow`,
`#| gpu` and `#| eval: false` cells are skipped and keep their stored outputs), so the figures and
explorers on the site come from the current code. Each notebook runs in a worker process of its own,
`--workers` at a time (default: one per CPU; the longest of the last build first), with one
BLAS/OpenMP thread per process. A worker notes which outputs its committed notebook does not store
(what a --no-execute build would lack), and every PNG that matplotlib writes carries the figure's
smallest text size and its legends (`semmae:figure`, a PNG text chunk) for the browser test.
Step 1 processes every notebook in this process as `nbdev_proc_nbs` does, with nbdev's own worker
(`nbdev.serve_drv.main` with `FilterDefaults`: frontmatter, `#| hide` cells dropped, `show_doc` cells
added and run, doc links). It runs the notebooks' export and import cells, so `semmae_edu` must be
importable (`export PYTHONPATH=$PWD` in a worktree). We do not call the `nbdev_proc_nbs` command:
without Quarto it runs nbdev's Quarto installer (a download, then `pip install -e ".[dev]"`) and
rewrites nbs/nbdev.yml and nbs/sidebar.yml.
Step 2 renders each page: markdown (tables, code, TeX maths as MathML) with mistune, code with
Pygments, stored outputs (text without progress bars, figures, HTML such as the mask explorers with
their inline JS, `show_doc` cards). An exported function is shown once: its card (name, docstring, a
parameter table whose meanings come from the docments, its source). Tables and block maths scroll
inside their own box; numbers in a table cell never break. Pages get a sidebar in the order of
nbs/sidebar.yml, prev/next links, an "on this page" list (beside the text when wide, above it when
narrow), a link to their notebook (copied into the site) and a search box over text, headings and
maths (λ is found as λ and as "lambda").
The build fails if a `$...$` or `$$...$$` does not become MathML, naming the page and the TeX (known
gaps: tools/docs_site/expect.yml), if a page would load anything from another host, or if the site
grows past 30 MB. It writes `_proc/report.json` (explorers shown and stored, outputs not stored, maths
errors, the slowest cells), which tests/test_docs_site.py reads.

Links: the site names the GitHub repository the clone came from (`git remote get-url origin`, or
SEMMAE_DOCS_REPO=https://github.com/owner/repo; SEMMAE_DOCS_REPO=none for none): "Source on GitHub",
source links, Colab badges and the Colab install line point there. Without one, every link is
relative: each page links its own notebook, no Colab badge is drawn and no GitHub link is made.
Once the sweep has written `nbs/images/sweep.png`, the index page shows it as the main result.
"""
import argparse, ast, base64, html, json, os, re, shutil, subprocess, sys, time, warnings
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent/'docs_site'
EXPECT = ASSETS/'expect.yml'
MAX_MB = 30
ONE_THREAD = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1', NUMEXPR_NUM_THREADS='1',
                  VECLIB_MAXIMUM_THREADS='1', MPLBACKEND='Agg', PYTHONUNBUFFERED='1')

def load_expect(path=EXPECT):
    "tools/docs_site/expect.yml: what the docs must have, and the known gaps (allowances) to drive to zero."
    import yaml
    d = yaml.safe_load(Path(path).read_text(encoding='utf-8')) if Path(path).exists() else {}
    d = d or {}
    d.setdefault('explorers', {}); d.setdefault('allow', {})
    return d

# ---------------------------------------------------------------------------------------------
# Which notebooks, in which order

def _sidebar_entries(contents):
    "Flatten Quarto sidebar `contents` (strings, `{href: ...}`, `{section: ..., contents: [...]}`)."
    for o in contents or []:
        if isinstance(o, str): yield o
        elif isinstance(o, dict):
            if 'href' in o: yield o['href']
            yield from _sidebar_entries(o.get('contents'))

def notebook_order(nbs:Path):
    "Notebooks of `nbs` in sidebar.yml order (unlisted ones after, sorted); index first without a sidebar."
    found = sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    order = []
    side = nbs/'sidebar.yml'
    if side.exists():
        import yaml
        d = yaml.safe_load(side.read_text(encoding='utf-8')) or {}
        for e in _sidebar_entries(((d.get('website') or {}).get('sidebar') or {}).get('contents')):
            p = nbs/e
            if p.suffix == '.ipynb' and p.exists() and p not in order: order.append(p)
            elif p.suffix == '.ipynb' and not p.exists(): print(f'note: sidebar.yml lists {e}, which does not exist (skipped)')
    rest = [p for p in found if p not in order]
    if side.exists() and rest: print('note: not in sidebar.yml, appended:', ', '.join(p.name for p in rest))
    if not side.exists(): rest.sort(key=lambda p: (p.stem != 'index', p.name))
    return order + rest

# ---------------------------------------------------------------------------------------------
# Cells: directives and what kind of output they have

_re_directive = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')
_re_skip_flag = re.compile(r'^\s*#\|\s*(slow|gpu)\s*$|^\s*#\|\s*eval\s*:\s*false\s*$', re.M | re.I)
_re_skip_gpu = re.compile(r'^\s*#\|\s*gpu\s*$|^\s*#\|\s*eval\s*:\s*false\s*$', re.M | re.I)   # --store --slow: slow cells run too
_re_show_doc = re.compile(r'^\s*show_doc\([^\n]*\)\s*$')
INSTALL_CELL = "'google.colab' in sys.modules"

def _src(x): return ''.join(x) if isinstance(x, list) else (x or '')

def split_directives(source:str):
    "(directives dict, code without `#|` lines) of a code cell's source."
    dirs, keep = {}, []
    for line in source.splitlines():
        m = _re_directive.match(line)
        if m: dirs[m.group(1).lower()] = m.group(2).strip().strip('"\'')
        else: keep.append(line)
    return dirs, '\n'.join(keep).strip('\n')

def _false(v): return str(v).strip().lower() in ('false', 'no', '0')

def shown_outputs(source:str):
    "Whether a code cell's outputs reach the page (not `#| hide`, `include: false` or `output: false`)."
    dirs, _ = split_directives(source)
    return not ('hide' in dirs or _false(dirs.get('include', 'true')) or _false(dirs.get('output', 'true')))

def output_kinds(outputs):
    "What a cell's outputs show: explorer, image, html, markdown, text, stream, error (progress bars do not count)."
    kinds = set()
    for o in outputs or []:
        t = o.get('output_type')
        if t == 'stream':
            if clean_stream(_src(o.get('text'))).strip(): kinds.add('stream')
        elif t == 'error': kinds.add('error')
        else:
            data = o.get('data', {})
            if 'text/html' in data: kinds.add('explorer' if 'mask-explorer' in _src(data['text/html']) else 'html')
            elif any(m in data for m in ('image/png', 'image/jpeg', 'image/gif', 'image/svg+xml')): kinds.add('image')
            elif 'text/markdown' in data: kinds.add('markdown')
            elif 'application/vnd.jupyter.widget-view+json' in data: kinds.add('widget')
            elif _src(data.get('text/plain')).strip(): kinds.add('text')
    return kinds

def count_explorers(nb:dict):
    "StaticExplorer players (`<div class=\"mask-explorer\"`) in the stored outputs of the cells a page shows."
    n = 0
    for c in nb.get('cells', []):
        if c.get('cell_type') != 'code' or not shown_outputs(_src(c.get('source'))): continue
        for o in c.get('outputs', []):
            n += _src((o.get('data') or {}).get('text/html')).count('<div class="mask-explorer"')
    return n

# ---------------------------------------------------------------------------------------------
# Figures: the text size and legends of every PNG matplotlib writes while a notebook runs

FIGURE_KEY = 'semmae:figure'

def _hex(c):
    from matplotlib.colors import to_hex
    try: return to_hex(c, keep_alpha=False)
    except Exception: return None

def _legend_entries(leg):
    "(label, colour) of each entry of a matplotlib legend."
    hs = getattr(leg, 'legend_handles', None) or getattr(leg, 'legendHandles', None) or []
    out = []
    for h, t in zip(hs, leg.get_texts()):
        col = None
        for get in ('get_facecolor', 'get_color', 'get_edgecolor'):
            f = getattr(h, get, None)
            if f is None: continue
            try:
                v = f()
                import numpy as np
                v = np.asarray(v, dtype=float)
                if v.ndim == 2: v = v[0] if len(v) else None
                if v is not None and (len(v) < 4 or v[3] > 0): col = _hex(v); break
            except Exception: continue
        if col and t.get_text().strip(): out.append([t.get_text().strip(), col])
    return out

def install_figure_hook():
    "Make every PNG written by matplotlib carry its smallest drawn text (pt) and its legends as a PNG text chunk."
    import matplotlib, matplotlib.text as mtext
    from matplotlib.backend_bases import FigureCanvasBase
    if getattr(FigureCanvasBase, '_semmae_hooked', False): return
    drawn = []
    orig_draw = mtext.Text.draw
    def text_draw(self, renderer, *a, **k):
        if drawn and self.get_visible() and self.get_text().strip(): drawn[-1].append((float(self.get_fontsize()), self.get_text().strip()[:40]))
        return orig_draw(self, renderer, *a, **k)
    mtext.Text.draw = text_draw
    orig_print = FigureCanvasBase.print_figure
    def print_figure(self, filename, *args, **kw):
        fmt = kw.get('format')
        if fmt is None and isinstance(filename, (str, os.PathLike)): fmt = os.path.splitext(str(filename))[1][1:]
        fmt = (fmt or matplotlib.rcParams['savefig.format'] or '').lower()
        if fmt == 'png':
            try:
                drawn.append([])
                try: self.figure.draw_without_rendering()
                finally: texts = drawn.pop()
                legends = [l for l in [*self.figure.legends, *(ax.get_legend() for ax in self.figure.axes)] if l is not None]
                facts = dict(min_font_pt=min((s for s, _ in texts), default=None),
                             smallest=min(texts, default=(None, ''))[1],
                             legends=[e for e in (_legend_entries(l) for l in legends) if e])
                kw['metadata'] = {**(kw.get('metadata') or {}), FIGURE_KEY: json.dumps(facts)}
            except Exception: pass
        return orig_print(self, filename, *args, **kw)
    FigureCanvasBase.print_figure = print_figure
    FigureCanvasBase._semmae_hooked = True

# ---------------------------------------------------------------------------------------------
# Step 1, in a worker process per notebook: run its fast cells, then nbdev's processing

_MIXED = 'Found cells containing imports and other code'

def needs_storing(source:str):
    "Whether a cell's stored output is what a --no-execute page shows (not the Colab setup line, not a show_doc card: nbdev re-runs those)."
    _, code = split_directives(source)
    return shown_outputs(source) and INSTALL_CELL not in code and not _re_show_doc.match(code)

def execute_one(src:Path, dst:Path, slow:bool=False):
    "Run the fast cells of `src` (and the slow ones with `slow`), write the notebook to `dst`. Returns facts: seconds, slowest cells, outputs not stored."
    import copy
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    t0 = time.perf_counter()
    nb = read_nb(src)
    stored = [copy.deepcopy(c.get('outputs', [])) for c in nb.cells]
    def skip(cell):
        if cell.cell_type != 'code': return True
        s = cell.source
        if (_re_skip_gpu if slow else _re_skip_flag).search(s) or 'nbdev_export()' in s or 'nbdev.nbdev_export' in s: return True
        clock[0] = time.perf_counter(); return False
    times, clock = [], [0.0]
    def done(cell): times.append((time.perf_counter() - clock[0], cell.idx_, cell.source))
    cwd = os.getcwd()
    os.chdir(src.parent)
    try:
        install_figure_hook()
        k = CaptureShell()
        k.run_all(nb, exc_stop=True, preproc=skip, postproc=done)
    finally: os.chdir(cwd)
    write_nb(nb, dst)
    missing = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'code' or not needs_storing(c.source): continue
        lack = output_kinds(c.get('outputs')) - output_kinds(stored[i])
        if lack: missing.append(dict(cell=i, kinds=sorted(lack), source=_first_line(c.source)))
    slow = [dict(cell=i, seconds=round(t, 1), source=_first_line(s)) for t, i, s in sorted(times, reverse=True)[:3]]
    return dict(execute_seconds=time.perf_counter() - t0, slowest=slow, not_stored=missing)

def _first_line(s):
    _, code = split_directives(s)
    return next((l.strip() for l in code.splitlines() if l.strip() and not l.strip().startswith('#')), '')[:80]

_re_export_dir = re.compile(r'^(\s*#\|\s*)(export|exporti)(\s*$|\s+\S)', re.M)

def show_exported(src:Path, dst:Path):
    "A copy of a notebook whose exported cells are shown (nbdev's `#| exports`) unless they are `#| hide`."
    nb = json.loads(src.read_text(encoding='utf-8'))
    for c in nb.get('cells', []):
        if c.get('cell_type') != 'code': continue
        s = _src(c.get('source'))
        if re.search(r'^\s*#\|\s*hide\s*$', s, re.M): continue
        new = _re_export_dir.sub(lambda m: m.group(1) + 'exports' + m.group(3), s)
        if new != s: c['source'] = new
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    return dst

def _fmt_anno(a):
    import inspect
    if a is inspect.Parameter.empty or a is None or a is type(None): return ''
    if isinstance(a, str): return a
    return getattr(a, '__qualname__', None) or str(a).replace('typing.', '')

def _fmt_default(d):
    import inspect
    if d is inspect.Parameter.empty: return ''
    r = repr(d)
    return r if len(r) <= 40 else r[:37] + '...'

def _cell_text(t): return (t or '').replace('|', '\\|').replace('\n', ' ')

def module_twin(sym):
    "The object of the exported module with the same name as `sym` (a notebook-defined class has no source; its twin has)."
    import importlib
    try:
        from nbdev.config import get_config
        lib = get_config().lib_name
        idx = importlib.import_module(f'{lib}._modidx').d['syms']
    except Exception: return None
    qn = getattr(sym, '__qualname__', None)
    if not qn: return None
    for mod, names in idx.items():
        if f'{mod}.{qn}' in names:
            try:
                o = importlib.import_module(mod)
                for part in qn.split('.'): o = getattr(o, part)
                return o
            except Exception: return None
    return None

def _inherited_init(sym) -> bool:
    "A class whose constructor is not written in Python (an exception keeping `BaseException`'s `*args`, a NamedTuple)."
    import inspect
    return inspect.isclass(sym) and not inspect.isfunction(getattr(sym, '__init__', None))

def _field_docments(cls) -> dict:
    "A NamedTuple's fields with the comment after each (fastcore's docments reads field comments of dataclasses only)."
    import inspect, io, textwrap, tokenize
    try: src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError): return {}
    notes = {t.start[0]: t.string.lstrip('#').strip() for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.COMMENT}
    hints, defaults = getattr(cls, '__annotations__', {}), getattr(cls, '_field_defaults', {})
    return {n.target.id: dict(anno=hints.get(n.target.id, inspect.Parameter.empty), docment=notes.get(n.lineno),
                              default=defaults.get(n.target.id, inspect.Parameter.empty), kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for n in ast.parse(src).body[0].body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}

def _docments(sym):
    from fastcore.docments import docments
    if _inherited_init(sym):   # a NamedTuple: its fields; an exception without its own __init__: no parameters to explain
        return _field_docments(sym) if hasattr(sym, '_fields') else {}
    try: dm = docments(sym, full=True, returns=True, args_kwargs=True)
    except Exception: dm = {}
    if not any((v or {}).get('docment') for v in dm.values()):  # defined in a notebook cell: read the module's twin
        twin = module_twin(sym)
        if twin is not None and twin is not sym:
            try:
                dm2 = docments(twin, full=True, returns=True, args_kwargs=True)
                if any((v or {}).get('docment') for v in dm2.values()): dm = dm2
            except Exception: pass
    return dm

SIG_INFO = 'python signature'      # the card's one-line signature (dropped where the page shows the source)
CARD_SOURCE = '<!-- card-source -->'   # where a card takes its function's source

def doc_card_markdown(r):
    "The markdown of a `show_doc` card: source link, heading, docstring, parameter table, the place for the source."
    import inspect
    from nbdev.showdoc import _ext_link
    from nbdev.doclinks import NbdevLookup
    sym, nm = r.sym, r.nm
    is_cls = inspect.isclass(sym)
    dm = _docments(sym)
    params = {k: v for k, v in dm.items() if k not in ('self', 'cls', 'return')}
    if is_cls and not params and r.sig is not None and not _inherited_init(sym):
        params = {k: dict(anno=p.annotation, default=p.default, docment=None, kind=p.kind) for k, p in r.sig.parameters.items()}
    ret = dm.get('return') or {}
    def one(k, v):
        star = {inspect.Parameter.VAR_POSITIONAL: '*', inspect.Parameter.VAR_KEYWORD: '**'}.get(v.get('kind'), '')
        d = _fmt_default(v.get('default', inspect.Parameter.empty))
        return f'{star}{k}' + (f'={d}' if d else '')
    args = ', '.join(one(k, v) for k, v in params.items())
    sig = f'class {nm}({args})' if is_cls else f'{nm}({args})'
    ra = _fmt_anno(ret.get('anno', inspect.Parameter.empty))
    if ra and not is_cls: sig += f' -> {ra}'
    doc = '---\n\n'
    try: src = NbdevLookup().code(r.fn)
    except Exception: src = None
    if src: doc += _ext_link(src, 'source', 'class="source-link"') + '\n\n'
    doc += f'{"#" * r.title_level} {nm}\n\n'
    doc += f'```{SIG_INFO}\n{sig}\n```\n\n'
    if r.docs: doc += r.docs.strip() + '\n\n'
    rows = [(k, _fmt_anno(v.get('anno', inspect.Parameter.empty)), _fmt_default(v.get('default', inspect.Parameter.empty)), v.get('docment') or '')
            for k, v in params.items()]
    if rows:
        doc += '| Parameter | Type | Default | Meaning |\n|---|---|---|---|\n'
        doc += ''.join(f'| `{k}` | {f"`{_cell_text(t)}`" if t else ""} | {f"`{_cell_text(d)}`" if d else ""} | {_cell_text(m)} |\n' for k, t, d, m in rows)
        doc += '\n'
    if ra and not is_cls: doc += f'**Returns** `{_cell_text(ra)}`' + (f': {_cell_text(ret.get("docment"))}' if ret.get('docment') else '') + '\n\n'
    doc += CARD_SOURCE + '\n'
    return doc

def _use_cards():
    "Make nbdev's show_doc draw our cards (nbdev runs the show_doc cells in this process)."
    import nbdev.showdoc as sd
    sd.BasicMarkdownRenderer._repr_markdown_ = doc_card_markdown

def process_one(src:Path, dst:Path, proc:Path):
    "Process one notebook with nbdev's docs processors into `dst`; returns the notes about cells mixing imports and code."
    from nbdev.processors import FilterDefaults
    import nbdev.serve_drv
    _use_cards()
    shown = show_exported(src, proc/'_shown'/src.name)
    caught = []
    with warnings.catch_warnings():
        warnings.filterwarnings('always', message=_MIXED)
        # collect by hand: code that the notebooks run may replace warnings.showwarning (record=True then misses)
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: \
            caught.append(warnings.WarningMessage(message, category, filename, lineno))
        try: nbdev.serve_drv.main((shown, dst, FilterDefaults))
        except Exception as e:
            cause = f'\n{type(e.__cause__).__name__}: {e.__cause__}' if e.__cause__ else ''
            raise SystemExit(f'nbdev could not process {src.name} (the docs run its import and export cells):\n{e}{cause}') from e
    return _mixed_notes(src, caught)

def _mixed_notes(src, caught):
    "nbdev runs every cell that imports something, all of it: say which cells also hold other code."
    seen = []
    for w in caught:
        msg = str(w.message)
        if not msg.startswith(_MIXED):
            line = f'warning: {src.name}: {w.category.__name__}: {msg.splitlines()[0][:160] if msg else ""}'
        else:
            body = [l for l in msg.split('---')[1].strip().splitlines() if l.strip()] if '---' in msg else []
            if body and (body[0].startswith(('# On Colab only', '# Run this chapter on Colab'))): continue  # the Colab install cell: on purpose
            line = (f'note: {src.name}: a cell mixes imports with other code, so building the docs runs all of it '
                    f'(put the imports in a cell of their own): "{body[0][:70] if body else ""}"')
        if line not in seen: seen.append(line)
    return seen

def store(src:Path, slow:bool=False):
    "Run a notebook's cells in this process (one thread; `slow`: `#| slow` cells too, never `#| gpu`) and write their outputs back into it."
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        facts = execute_one(src, Path(tmp)/src.name, slow=slow)
        ran = json.loads((Path(tmp)/src.name).read_text(encoding='utf-8'))
    nb = json.loads(src.read_text(encoding='utf-8'))
    assert len(ran['cells']) == len(nb['cells']), 'the notebook changed while it ran'
    for c, r in zip(nb['cells'], ran['cells']):
        if c.get('cell_type') != 'code': continue
        c['outputs'] = [dict(o, execution_count=None) if 'execution_count' in o else o for o in r.get('outputs', [])]
        c['execution_count'] = None
    src.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    print(f'stored the outputs of {src} ({facts["execute_seconds"]:.0f} s{", slow cells included" if slow else ""}); '
          + ('; '.join(f'{c["seconds"]:.0f} s "{c["source"][:40]}"' for c in facts['slowest'])))

def work(src:Path, dst:Path):
    "One worker process: run the fast cells of `src` into `dst`, leave `<dst>.facts.json` for the parent."
    os.environ.update(ONE_THREAD)
    os.chdir(ROOT)
    facts = execute_one(src, dst)
    Path(str(dst) + '.facts.json').write_text(json.dumps(facts), encoding='utf-8')

def execute(files, proc:Path, workers:int=None):
    "Run every notebook's fast cells in a pool of worker processes (longest first, one thread each) into proc/_executed."
    import concurrent.futures as cf
    times_file = proc/'times.json'
    try: last = json.loads(times_file.read_text())
    except Exception: last = {}
    if proc.exists(): shutil.rmtree(proc)
    (proc/'_executed').mkdir(parents=True)
    env = {**os.environ, **ONE_THREAD}
    env['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    order = sorted(files, key=lambda f: -(last.get(f.name) or f.stat().st_size / 1e5))
    def run(f):
        t0 = time.perf_counter()
        dst = proc/'_executed'/f.name
        r = subprocess.run([sys.executable, str(Path(__file__).resolve()), '--execute-one', str(f), str(dst)],
                           capture_output=True, text=True, cwd=ROOT, env=env)
        err = None if r.returncode == 0 else (r.stdout + r.stderr).strip()[-3000:]
        return f.name, time.perf_counter() - t0, err
    workers = workers or max(1, min(len(files), os.cpu_count() or 1))
    with cf.ThreadPoolExecutor(workers) as ex: res = list(ex.map(run, order))
    errors = [f'{n}: {e}' for n, _, e in res if e]
    if errors: raise SystemExit('executing the fast cells failed (the site shows what the current code draws):\n  ' + '\n  '.join(errors))
    facts = {}
    for n, t, _ in res:
        facts[n] = json.loads(Path(str(proc/'_executed'/n) + '.facts.json').read_text(encoding='utf-8'))
        facts[n]['seconds'] = t
    times_file.write_text(json.dumps({n: round(f['seconds'], 1) for n, f in facts.items()}, indent=1))
    print(f'executed fast cells ({workers} processes, one thread each): '
          + ', '.join(f'{n} {f["seconds"]:.0f} s' for n, f in sorted(facts.items(), key=lambda kv: -kv[1]['seconds'])))
    return facts

def process(files, proc:Path) -> list:
    "nbdev's processing of every notebook, in this process (one interpreter: the imports are paid once); returns its notes."
    proc.mkdir(parents=True, exist_ok=True)
    notes = []
    for f in files:
        for line in process_one(f, proc/f.name, proc): print(line); notes.append(line)
    return notes

# ---------------------------------------------------------------------------------------------
# Step 2: rendering

_re_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')

def slugify(text:str):
    "Pandoc's identifier rule (so nbdev doc links `page.html#name` land on the heading)."
    text = re.sub(r'<annotation\b.*?</annotation>', '', text, flags=re.S)
    text = re.sub(r'<[^>]+>', '', html.unescape(text)).lower()
    text = re.sub(r'[^\w\s.-]', '', text, flags=re.UNICODE)
    text = re.sub(r'\s+', '-', text.strip())
    text = re.sub(r'^[^a-z]+', '', text)
    return text or 'section'

def highlight(code:str, lang:str='python'):
    from pygments import highlight as _hl
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name, TextLexer
    try: lexer = get_lexer_by_name((lang or 'text').strip().split()[0])
    except Exception: lexer = TextLexer()
    return _hl(code, lexer, HtmlFormatter(cssclass='highlight'))

def _strip_tags(h): return re.sub(r'<[^>]+>', '', re.sub(r'<annotation\b.*?</annotation>', '', h, flags=re.S))

def _markdown_class():
    import mistune
    class Renderer(mistune.HTMLRenderer):
        "mistune's HTML renderer + heading ids (collected for the page's contents) + Pygments."
        def __init__(self):
            super().__init__(escape=False)
            self.toc, self.ids = [], set()
        def heading(self, text, level, **attrs):
            base = slugify(text); hid, i = base, 1
            while hid in self.ids: hid, i = f'{base}-{i}', i+1
            self.ids.add(hid)
            if level in (2, 3): self.toc.append((level, hid, text))
            if len(text) > 20 and not re.search(r'\s|<', text): text = re.sub(r'([._])(?=\w)', r'\1<wbr>', text)  # a long API name breaks at . and _
            return f'<h{level} id="{hid}"><a class="anchor" href="#{hid}" aria-hidden="true">#</a>{text}</h{level}>\n'
        def block_code(self, code, info=None):
            sig = ' signature' if (info or '').strip() == SIG_INFO else ''
            return f'<div class="code-block{sig}">{highlight(code, info or "text")}</div>\n'
        def codespan(self, text):
            t = html.escape(text, quote=False)
            if len(text) <= 20: return f'<code>{t}</code>'   # short code stays on one line (site.css)
            if re.search(r'[A-Za-z_]{3}', text): t = re.sub(r'([_./,(])(?=[^\s\d])', r'\1<wbr>', t)   # a long name breaks after _ . / , ( (numbers never)
            return f'<code class="long">{t}</code>'
    return mistune, Renderer

# TeX maths becomes MathML at build time (browsers draw MathML natively: no MathJax, no network).
_re_code_span = re.compile(r'(^```.*?^```[ \t]*$|^~~~.*?^~~~[ \t]*$|`[^`\n]*`)', re.S | re.M)
# inline maths may wrap onto the next line (as in pandoc), never across a blank line
_re_math = re.compile(r'(?<![\\$])\$\$(.+?)\$\$|(?<![\\$\w])\$(?![\s$])((?:[^$\n]|\n(?![ \t]*\n))+?)(?<![\s\\])\$(?!\d)', re.S)
# Quarto/pandoc link attributes, as in nbdev's show_doc "source" link: [text](url){key="v" .class}
_re_link_attrs = re.compile(r'\[([^\]\n]+)\]\(([^)\s]+)\)\{([^}\n]*)\}')
_re_mathml_text = re.compile(r'(<(mi|mo|mn|mtext|ms)\b[^>]*>)([^<]*)(</\2>)')
_re_tex_cmd = re.compile(r'\\[A-Za-z]+')

class MathError(ValueError): pass

def _fix_mathml(mathml:str):
    "latex2mathml leaves some commands as text (`\\Bigl\\langle` gives <mo>\\langle</mo>): map them to their symbols."
    from latex2mathml.symbols_parser import convert_symbol
    def fix(m):
        def sym(c):
            u = convert_symbol(c.group(0))
            return f'&#x{u};' if u else c.group(0)
        return m.group(1) + _re_tex_cmd.sub(sym, m.group(3)) + m.group(4)
    return _re_mathml_text.sub(fix, mathml)

def tex_to_html(tex:str, display:bool):
    "MathML for a TeX formula, with its TeX as an annotation (for search); MathError if it does not convert whole."
    try: from latex2mathml.converter import convert
    except ImportError as e: raise MathError('latex2mathml is not installed (a dev requirement: pip install latex2mathml)') from e
    try: out = convert(tex.strip(), display='block' if display else 'inline')
    except Exception as e: raise MathError(f'latex2mathml: {type(e).__name__}: {e}') from e
    out = _fix_mathml(out)
    left = [m.group(3) for m in _re_mathml_text.finditer(out) if _re_tex_cmd.search(html.unescape(m.group(3)))]
    if left: raise MathError(f'left as text: {", ".join(sorted(set(left)))}')
    out = re.sub(r'^(<math\b[^>]*>)(.*)</math>$', lambda m: f'{m.group(1)}<semantics>{m.group(2)}<annotation encoding="application/x-tex">'
                 f'{html.escape(tex.strip())}</annotation></semantics></math>', out, flags=re.S)
    if display: return f'<span class="math-block">{out}</span>'
    return f'<span class="math-inline">{out}</span>' if len(tex.strip()) > 30 else out   # a long formula scrolls, not the page

def _link_with_attrs(m):
    text, url, attrs = m.groups()
    out = [f'href="{html.escape(url, quote=True)}"']
    classes = re.findall(r'(?:^|\s)\.([\w-]+)', attrs)
    if classes: out.append(f'class="{" ".join(classes)}"')
    for k, v1, v2 in re.findall(r'([\w-]+)=(?:"([^"]*)"|(\S+))', attrs): out.append(f'{k}="{html.escape(v1 or v2, quote=True)}"')
    return f'<a {" ".join(out)}>{html.escape(text)}</a>'

# a `$` left in prose (not `$5`, not `\$`) or a TeX command outside maths is TeX that did not render
_re_raw_dollar = re.compile(r'(?<!\\)\$(?!\d)')
_re_raw_cmd = re.compile(r'(?<![\\\w])\\(?:[A-Za-z]{2,})\b')

def protect_math(text:str, errors:list=None):
    "(markdown with maths and pandoc link attributes replaced by placeholders, their HTML) — code is left alone."
    saved = []
    def keep(h):
        saved.append(h); return f'MDPH{len(saved)-1}PHMD'
    def math(m):
        tex, display = (m.group(1), True) if m.group(1) is not None else (m.group(2), False)
        try: return keep(tex_to_html(tex, display))
        except MathError as e:
            if errors is not None: errors.append(dict(tex=tex.strip(), error=str(e)))
            return keep(f'<code class="math{" display" if display else ""}">{html.escape(tex)}</code>')
    def prose(seg):
        seg = _re_link_attrs.sub(lambda m: keep(_link_with_attrs(m)), seg)
        seg = _re_math.sub(math, seg)
        if errors is not None:
            plain = re.sub(r'<[^>]*>', '', seg)   # raw HTML (attributes, inline styles) is not prose
            for line in plain.splitlines():       # one error per line, from its first stray `$` or TeX command
                hits = [m.start() for r in (_re_raw_dollar, _re_raw_cmd) for m in r.finditer(line)]
                if hits: errors.append(dict(tex=line[min(hits):min(hits)+40].strip(), error='not typeset (raw TeX in the text)'))
        return seg
    parts = _re_code_span.split(text)
    return ''.join(p if i % 2 else prose(p) for i, p in enumerate(parts)), saved

def restore(html_text:str, saved:list):
    return re.sub(r'MDPH(\d+)PHMD', lambda m: saved[int(m.group(1))], html_text) if saved else html_text

# numbers in a table cell stay on one line: such cells get class="num"
_re_td = re.compile(r'<td(\s[^>]*)?>(.*?)</td>', re.S)
_re_numeric = re.compile(r'^[\s\d.,:;/%±×x+\-−–—()\[\]~≈<>=≤≥·eE*]*\d[\s\d.,:;/%±×x+\-−–—()\[\]~≈<>=≤≥·eE*]*$')

def mark_numeric_cells(h:str):
    def sub(m):
        attrs, body = m.group(1) or '', m.group(2)
        text = html.unescape(_strip_tags(body)).strip()
        if not text or len(text) > 40 or not _re_numeric.match(text): return m.group(0)
        if 'class="' in attrs: attrs = attrs.replace('class="', 'class="num ', 1)
        else: attrs += ' class="num"'
        return f'<td{attrs}>{body}</td>'
    return _re_td.sub(sub, h)

def wrap_tables(h:str):
    "Tables scroll inside a box of their own (the page never gets wider than its column)."
    h = re.sub(r'<table(\s[^>]*)?>', lambda m: f'<div class="table-wrap"><table{m.group(1) or ""}>', h)
    return h.replace('</table>', '</table></div>')

class MarkdownRenderer:
    "Markdown → HTML for one page; remembers the page's headings for its contents list, and maths that failed."
    def __init__(self):
        mistune, R = _markdown_class()
        self.r = R()
        self.md = mistune.create_markdown(renderer=self.r, plugins=['table', 'strikethrough', 'url', 'footnotes', 'task_lists'])
        self.math_errors = []
    def __call__(self, text:str):
        text, saved = protect_math(text, self.math_errors)
        n = len(self.r.toc)
        out = restore(self.md(text), saved)
        self.r.toc[n:] = [(lv, hid, _strip_tags(restore(t, saved))) for lv, hid, t in self.r.toc[n:]]
        return mark_numeric_cells(wrap_tables(out))
    @property
    def toc(self): return self.r.toc

class OfflineCheck(HTMLParser):
    "Collect references that would make a browser load something from another host."
    _res_attrs = {'src', 'srcset', 'poster', 'data', 'background'}
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.bad, self._in_style = [], False
    @staticmethod
    def external(url): return bool(re.match(r'\s*(?:[a-z][\w+.-]*:)?//', url or '', re.I)) and not re.match(r'\s*(?:https?:)?//(127\.0\.0\.1|localhost)[:/]', url, re.I)
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if v is None: continue
            if (k in self._res_attrs or (tag == 'link' and k == 'href')) and any(self.external(u.split()[0] if u.split() else '') for u in v.split(',')):
                self.bad.append(f'<{tag} {k}="{v[:120]}">')
            if k == 'style': self._css(v)
        self._in_style = tag == 'style'
    def handle_endtag(self, tag): self._in_style = False
    def handle_data(self, data):
        if self._in_style: self._css(data)
    def _css(self, css):
        for u in re.findall(r'''(?:url\(\s*|@import\s+)['"]?([^'")\s]+)''', css):
            if self.external(u): self.bad.append(f'css {u[:120]}')

_re_data_uri = re.compile(r'data:[\w/+.-]+;base64,[A-Za-z0-9+/=]{200,}')

def lighter(h:str):
    "The HTML with long base64 data URIs cut short (the explorers' frames): parsing it is then quick."
    return _re_data_uri.sub('data:,', h)

def external_refs(page_html:str):
    p = OfflineCheck(); p.feed(lighter(page_html)); p.close()
    return p.bad

# matplotlib's to_jshtml() player links Font Awesome from a CDN for its button icons; the site's
# CSS draws those icons itself, so the link is dropped.
_re_fontawesome = re.compile(r'<link\b[^>]*font-awesome[^>]*>', re.I)

# ---------------------------------------------------------------------------------------------
# The repository the site links to

def repo_home(env=None):
    "https://github.com/owner/repo of this clone (SEMMAE_DOCS_REPO, else the `origin` remote on GitHub), or None."
    env = os.environ if env is None else env
    url = (env.get('SEMMAE_DOCS_REPO') or '').strip()
    if url.lower() == 'none': return None
    if not url:
        try: url = subprocess.run(['git', 'remote', 'get-url', 'origin'], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception: url = ''
    m = re.match(r'^(?:https?://(?:[^@/]+@)?|ssh://git@|git@)github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$', url)
    return f'https://github.com/{m.group(1)}/{m.group(2)}' if m else None

_re_colab = re.compile(r'https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/((?:nbs/)?[\w.-]+\.ipynb)')

class Site:
    "Everything a page needs to know about the others: file names, titles, link rewriting."
    def __init__(self, out:Path, html_names:dict, title:str, doc_url:str, settings_repo:str, repo:str=None, branch:str='main'):
        self.out, self.html_names, self.title, self.doc_url = out, html_names, title, doc_url.rstrip('/')+'/'
        self.settings_repo, self.repo, self.branch = (settings_repo or '').rstrip('/'), repo, branch
        self.repo_url = repo
        self.missing = []

    def fix_url(self, url:str, page:str):
        "Notebook links → page links; links into the published site → relative links."
        if url.startswith(self.doc_url): url = url[len(self.doc_url):] or 'index.html'
        m = re.match(r'^(?:\./)?(?:nbs/)?([^/:#?]+\.ipynb)(#.*)?$', url)  # nbs/x.ipynb: a README-friendly link
        if m:
            name = self.html_names.get(m.group(1))
            if name is None: self.missing.append((page, url)); return url
            return name + (m.group(2) or '')
        m = re.match(r'^([^/:#?]+\.html)(#.*)?$', url)
        if m and m.group(1) not in self.html_names.values(): self.missing.append((page, url))
        return url

    def fix_repo(self, body:str, src_name:str):
        "Colab badges, source links and the install line name this clone's repository; without one, no dead links."
        repo, sr = self.repo, self.settings_repo
        if repo:
            owner_repo = repo.split('github.com/', 1)[1]
            body = _re_colab.sub(lambda m: f'https://colab.research.google.com/github/{owner_repo}/blob/{self.branch}/{_nb_path(m.group(1))}', body)
            if sr and sr != repo: body = body.replace(sr + '/', repo + '/').replace(sr + "'", repo + "'").replace(sr + '"', repo + '"').replace(sr + '<', repo + '<')
            return body
        # no repository: the badge becomes a link to the chapter's notebook (shipped in the site), source links go
        badge = re.compile(r'<a\b[^>]*href="' + _re_colab.pattern + r'"[^>]*>\s*<img\b[^>]*colab-badge[^>]*>\s*</a>')
        body = badge.sub(lambda m: f'<a class="nb-link" href="{_nb_path(m.group(1))}" download>Download this chapter\'s notebook</a>', body)
        body = _re_colab.sub(lambda m: _nb_path(m.group(1)), body)
        if sr:
            body = re.sub(r'<a\b[^>]*class="source-link"[^>]*>source</a>', '', body)
            body = re.sub(r'<a\b[^>]*href="' + re.escape(sr) + r'[^"]*"[^>]*>(.*?)</a>', r'\1', body, flags=re.S)
        return body

    def fix_links(self, body:str, page:str):
        def sub(m):
            return f'{m.group(1)}="{html.escape(self.fix_url(html.unescape(m.group(2)), page), quote=True)}"'
        return re.sub(r'\b(href)="([^"]*)"', sub, body)

def _nb_path(p): return p if p.startswith('nbs/') else f'nbs/{p}'

# ---------------------------------------------------------------------------------------------
# Outputs

def _img(data:str, mime:str, meta:dict, fig_dir:Path, stem:str):
    "Write a base64 image output next to the pages; return its <img>."
    ext = {'image/png': 'png', 'image/jpeg': 'jpg', 'image/gif': 'gif'}[mime]
    fig_dir.mkdir(parents=True, exist_ok=True)
    path = fig_dir/f'{stem}.{ext}'
    path.write_bytes(base64.b64decode(''.join(data) if isinstance(data, list) else data))
    size = ''.join(f' {k}="{int(meta[k])}"' for k in ('width', 'height') if isinstance(meta.get(k), (int, float)))
    return f'<img class="output-image" src="figures/{path.name}" alt="figure"{size}>'

def merge_streams(outputs):
    "Join consecutive outputs of the same stream (a print loop gives one block, not many)."
    res = []
    for o in outputs:
        if res and o.get('output_type') == 'stream' == res[-1].get('output_type') and o.get('name') == res[-1].get('name'):
            res[-1] = dict(res[-1], text=_src(res[-1].get('text')) + _src(o.get('text')))
        else: res.append(o)
    return res

# a temporary folder in an output (a run written to tempfile.mkdtemp()) says nothing to a reader
_re_tmp = re.compile(r'(?<![\w.])/tmp/(?:tmp|pytest-)[\w.-]*')
_re_md_table = re.compile(r'((?:^\|.*\|[ \t]*\n){1}^\|(?:[ \t]*:?-+:?[ \t]*\|)+[ \t]*\n(?:^\|.*\|[ \t]*(?:\n|$))*)', re.M)
# tqdm progress bars ("40%|####  | 16/40 [00:03<00:05, 4.5it/s]", "120it [00:02, 50.1it/s]"): a moment of one run, not a result
_re_progress = re.compile(r'^.{0,120}?(?:\d{1,3}%\|.*\|\s*[\d.]+[kMG]?/[\d.?]+[kMG]?\s*\[[^\]]*\]|[\d.]+[kMG]?it \[[\d:]+(?:<[\d:?]+)?,\s*[^\]]*(?:it/s|s/it)[^\]]*\])\s*$')

def clean_stream(text:str):
    "A stream's text as a reader should see it: no ANSI codes, progress bars dropped, only the last state of a \\r line."
    text = _re_ansi.sub('', text)
    lines = [l.rstrip('\r').split('\r')[-1] for l in text.split('\n')]
    return '\n'.join(l for l in lines if not _re_progress.match(l))

def _stream_html(text:str, name:str, md):
    "A stream's text; a markdown table printed into it is drawn as a table."
    out, pos = [], 0
    for m in _re_md_table.finditer(text):
        before = text[pos:m.start()].strip('\n')
        if before.strip(): out.append(f'<pre class="output output-stream {name}">{html.escape(before.rstrip())}</pre>')
        out.append(f'<div class="output output-markdown">{md(m.group(1))}</div>')
        pos = m.end()
    rest = text[pos:].strip('\n')
    if rest.strip(): out.append(f'<pre class="output output-stream {name}">{html.escape(rest.rstrip())}</pre>')
    return '\n'.join(out)

def render_output(o:dict, md:MarkdownRenderer, fig_dir:Path, stem:str):
    t = o.get('output_type')
    if t == 'stream':
        text = _re_tmp.sub('<temporary folder>', clean_stream(_src(o.get('text'))))
        if not text.strip(): return ''
        return _stream_html(text, o.get("name", "stdout"), md)
    if t == 'error':
        tb = _re_ansi.sub('', '\n'.join(o.get('traceback') or [f"{o.get('ename')}: {o.get('evalue')}"]))
        return f'<pre class="output output-error">{html.escape(tb)}</pre>'
    data, meta = o.get('data', {}), o.get('metadata', {})
    if 'application/vnd.jupyter.widget-view+json' in data:
        return ('<div class="output output-widget">Interactive widget: it needs a running notebook '
                '(open the chapter in Jupyter or Colab to use it).</div>')
    if 'text/html' in data:
        raw = _re_fontawesome.sub('', _src(data['text/html']))
        return f'<div class="output output-html">{raw}</div>'
    if 'image/svg+xml' in data: return f'<div class="output output-svg">{_src(data["image/svg+xml"])}</div>'
    for mime in ('image/png', 'image/jpeg', 'image/gif'):
        if mime in data: return f'<div class="output output-image">{_img(data[mime], mime, meta.get(mime, {}), fig_dir, stem)}</div>'
    if 'text/markdown' in data: return f'<div class="output output-markdown">{md(_src(data["text/markdown"]))}</div>'
    if 'text/latex' in data: return f'<pre class="output output-latex">{html.escape(_src(data["text/latex"]))}</pre>'
    if 'text/plain' in data:
        text = _re_ansi.sub('', _src(data['text/plain']))
        return f'<pre class="output output-text">{html.escape(text)}</pre>' if text.strip() else ''
    return ''

def _attachments(source:str, cell:dict):
    "Inline a markdown cell's `attachment:` images as data URIs."
    for name, d in (cell.get('attachments') or {}).items():
        for mime, b64 in d.items():
            source = source.replace(f'attachment:{name}', f'data:{mime};base64,{_src(b64)}')
    return source

# ---------------------------------------------------------------------------------------------
# Cells → HTML; an exported function's source goes into its card

def split_defs(code:str):
    "[(name or None, source)] of a cell: each top-level def/class (with its decorators and the comments just above) apart."
    try: tree = ast.parse(code)
    except SyntaxError: return [(None, code)]
    lines = code.splitlines(keepends=True)
    out, pos = [], 0
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): continue
        start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
        while start > pos and lines[start-1].lstrip().startswith('#'): start -= 1
        gap = ''.join(lines[pos:start])
        if gap.strip(): out.append((None, gap))
        elif gap and out: out[-1] = (out[-1][0], out[-1][1] + gap)    # blank lines stay with the chunk before
        out.append((node.name, ''.join(lines[start:node.end_lineno])))
        pos = node.end_lineno
    rest = ''.join(lines[pos:])
    if rest.strip(): out.append((None, rest))
    elif rest and out: out[-1] = (out[-1][0], out[-1][1] + rest)
    return out

def _imports_only(code:str):
    try: tree = ast.parse(code)
    except SyntaxError: return False
    return bool(tree.body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body)

def _fold(inner:str, summary:str, open_:bool, cls:str='code-fold'):
    return f'<details class="{cls}"{" open" if open_ else ""}><summary>{html.escape(summary)}</summary>{inner}</details>'

def render_cells(nb:dict, md:MarkdownRenderer, fig_dir:Path, stem:str, lang:str='python'):
    "The HTML of a processed notebook's cells."
    blocks, documented = [], set()
    for i, cell in enumerate(nb.get('cells', [])):
        src = _src(cell.get('source'))
        if cell.get('cell_type') == 'markdown':
            if src.strip() and not re.fullmatch(r'\s*<!--.*?-->\s*', src, re.S): blocks.append(dict(kind='md', md=_attachments(src, cell)))
            continue
        if cell.get('cell_type') != 'code': continue
        dirs, code = split_directives(src)
        if 'hide' in dirs or _false(dirs.get('include', 'true')): continue
        cell_lang = (cell.get('metadata') or {}).get('language') or lang
        if dirs.get('output') == 'asis':  # a show_doc card: each name once per page
            card = ''.join(_src(o.get('data', {}).get('text/markdown')) for o in cell.get('outputs', []))
            m = re.search(r'^#{1,6} (\S+)\s*$', card, re.M)
            if m and m.group(1) in documented: continue
            if m: documented.add(m.group(1))
            if card.strip(): blocks.append(dict(kind='card', name=m.group(1) if m else '', md=card, code=None, lang=cell_lang))
            continue
        outs = [] if _false(dirs.get('output', 'true')) else [(f'{stem}-{i}-{k}', o) for k, o in enumerate(merge_streams(cell.get('outputs', [])))]
        show_code = code.strip() and not _false(dirs.get('echo', 'true'))
        exported = dirs.get('code-summary') == 'Exported source'
        blocks.append(dict(kind='src' if exported and show_code else 'code', code=code if show_code else '', dirs=dirs,
                           lang=cell_lang, outs=outs, chunks=split_defs(code) if exported and show_code else None, used=set()))
    # each card takes the source of its function from an exported cell right next to it (cards between count as next to it)
    for i, b in enumerate(blocks):
        if b['kind'] != 'src': continue
        near = []
        for step in (1, -1):
            j = i + step
            while 0 <= j < len(blocks) and blocks[j]['kind'] == 'card': near.append(blocks[j]); j += step
        by_name = {c['name']: c for c in near if c['code'] is None}
        for k, (name, chunk) in enumerate(b['chunks']):
            if name and name in by_name:
                by_name.pop(name)['code'] = chunk
                b['used'].add(k)
    page_defs = set()   # names whose def/class the page shows
    for b in blocks:
        if b['kind'] in ('src', 'code') and b['code']:
            page_defs |= set(re.findall(r'^\s*(?:async\s+)?(?:def|class)\s+(\w+)', b['code'], re.M))
    out = []
    for b in blocks:   # in page order, so the contents list is too
        if b['kind'] == 'md': out.append(f'<div class="cell md-cell">\n{md(b["md"])}</div>'); continue
        if b['kind'] == 'card':
            card = b['md']
            if b['code'] is not None or b['name'].rsplit('.', 1)[-1] in page_defs:   # the source is on the page: no signature
                card = re.sub(r'^```' + re.escape(SIG_INFO) + r'\n.*?^```\n', '', card, flags=re.S | re.M)
            h = md(card)
            src_html = f'<div class="card-source">{highlight(b["code"].strip(chr(10)), b["lang"])}</div>' if b['code'] is not None else ''
            h = h.replace(CARD_SOURCE, src_html) if CARD_SOURCE in h else h + src_html
            out.append(f'<div class="cell code-cell doc-cell{" with-source" if src_html else ""}"><div class="cell-outputs">'
                       f'<div class="output output-markdown">{h}</div></div></div>')
            continue
        parts, dirs = [], b['dirs']
        code = b['code']
        if b['kind'] == 'src':
            code = ''.join(c for k, (_, c) in enumerate(b['chunks']) if k not in b['used']).strip('\n')
        if code.strip():
            block = f'<div class="cell-input">{highlight(code, b["lang"])}</div>'
            if INSTALL_CELL in code:
                block = _fold(block, 'Setup: install on Colab, choose the device', False, 'code-fold setup')
            elif b['kind'] == 'src' and _imports_only(code):
                block = _fold(block, 'Imports (exported)', False)
            elif 'code-fold' in dirs and not _false(dirs['code-fold']):
                block = _fold(block, dirs.get('code-summary') or 'Code', dirs['code-fold'] == 'show')
            parts.append(block)
        outs = [h for h in (render_output(o, md, fig_dir, name) for name, o in b['outs']) if h]
        if outs: parts.append('<div class="cell-outputs">' + '\n'.join(outs) + '</div>')
        if parts: out.append('<div class="cell code-cell">' + '\n'.join(parts) + '</div>')
    return '\n'.join(out)

def frontmatter(nb:dict):
    "The YAML frontmatter nbdev put in the first raw cell (removed from `nb`)."
    import yaml
    for k, c in enumerate(nb.get('cells', [])):
        s = _src(c.get('source')).strip()
        if c.get('cell_type') == 'raw' and s.startswith('---'):
            del nb['cells'][k]
            return yaml.safe_load(s.strip('-\n')) or {}
    return {}

# ---------------------------------------------------------------------------------------------
# Page template

def _num(src_name:str):
    m = re.match(r'^(\d+[a-zA-Z0-9]*)_', src_name)
    return m.group(1) if m else ''

def page_html(site:Site, pages:list, i:int):
    p, esc = pages[i], html.escape
    side = []
    for j, q in enumerate(pages):
        num = f'<span class="num">{_num(q["src"])}</span> ' if _num(q['src']) else ''
        cur = ' class="active" aria-current="page"' if j == i else ''
        side.append(f'<li{cur}><a href="{q["html"]}">{num}{esc(q["title"])}</a></li>')
    toc_items = ''.join(f'<li class="toc-h{lv}"><a href="#{hid}">{esc(t)}</a></li>' for lv, hid, t in p['toc'])
    toc = f'<h2>On this page</h2><ul>{toc_items}</ul>' if toc_items else ''
    toc_inline = (f'<nav class="toc-inline" aria-label="On this page"><details open><summary>On this page</summary>'
                  f'<ul>{toc_items}</ul></details></nav>') if toc_items else ''
    prev = f'<a class="prev" href="{pages[i-1]["html"]}"><span>Previous</span>{esc(pages[i-1]["title"])}</a>' if i > 0 else '<span></span>'
    nxt = f'<a class="next" href="{pages[i+1]["html"]}"><span>Next</span>{esc(pages[i+1]["title"])}</a>' if i+1 < len(pages) else '<span></span>'
    desc = f'<p class="description">{p["description_html"]}</p>' if p['description'] else ''
    head_title = esc(p['title']) if p['html'] == 'index.html' else f'{esc(p["title"])} – {esc(site.title)}'
    repo = f'<a class="repo" href="{esc(site.repo_url)}">Source on GitHub</a>' if site.repo_url else ''
    nb_link = f'<p class="nb-source">This page is <a href="nbs/{esc(p["src"])}" download><code>nbs/{esc(p["src"])}</code></a>.</p>'
    return f'''<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{head_title}</title>
<meta name="description" content="{esc(_strip_tags(p['description_html']))}">
<link rel="icon" href="favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="site.css">
</head>
<body>
<header class="topbar"><label class="nav-toggle" for="nav-check" aria-label="Chapters">&#9776;</label>
<a class="brand" href="{pages[0]['html']}">{esc(site.title)}</a>
<div class="search"><input type="search" id="search-box" placeholder="Search" aria-label="Search the docs" autocomplete="off"><ul id="search-results" hidden></ul></div>
{repo}</header>
<input type="checkbox" id="nav-check" class="nav-check">
<div class="layout">
<nav class="sidebar" aria-label="Chapters"><ul>
{chr(10).join(side)}
</ul></nav>
<main class="content">
<h1 class="title">{esc(p['title'])}</h1>
{desc}
{toc_inline}
{p['body']}
{nb_link}
<nav class="pager" aria-label="Previous and next chapter">{prev}{nxt}</nav>
</main>
<aside class="toc" aria-label="On this page">{toc}</aside>
</div>
<script src="search-index.js"></script>
<script src="site.js"></script>
</body>
</html>
'''

class _SectionText(HTMLParser):
    "The prose of a page cut at its h2/h3/h4 headings: [(id, heading, text)] (code, scripts and styles left out; maths in)."
    def __init__(self, title):
        super().__init__(convert_charrefs=True)
        self.sections, self._skip, self._head = [['', title, []]], 0, None
    def handle_starttag(self, tag, attrs):
        if tag in ('script', 'style', 'pre', 'svg'): self._skip += 1
        elif tag in ('h2', 'h3', 'h4') and dict(attrs).get('id'):
            self.sections.append([dict(attrs)['id'], '', []]); self._head = tag
        elif tag == 'annotation': self._add(' ')
    def handle_endtag(self, tag):
        if tag in ('script', 'style', 'pre', 'svg'): self._skip = max(0, self._skip-1)
        elif tag == self._head: self._head = None
        elif tag == 'math': self._add(' ')
    def _add(self, d):
        if self._head: self.sections[-1][1] += d
        else: self.sections[-1][2].append(d)
    def handle_data(self, d):
        if self._skip: return
        if self.lasttag == 'annotation':   # TeX names (\lambda is found as "lambda"), in the text, never in a heading
            self.sections[-1][2].append(d.replace('\\', ' ')); return
        self._add(d)

def search_index(pages):
    "One entry per section of every page: url, page title, heading, text (maths as symbols and as TeX names)."
    entries = []
    for p in pages:
        sp = _SectionText(p['title']); sp.feed(lighter(p['body'])); sp.close()
        sp.sections[0][2].insert(0, p['description'])
        for hid, head, text in sp.sections:
            text = re.sub(r'\s+', ' ', ' '.join(text)).strip()
            head = re.sub(r'\s+', ' ', head.replace('#', '', 1)).strip()
            if hid or text:
                entries.append(dict(u=p['html'] + (f'#{hid}' if hid else ''), p=p['title'], h=head or p['title'], t=text[:1500]))
    return entries

def write_assets(out:Path, nbs:Path, pages:list, files:list):
    from pygments.formatters import HtmlFormatter
    css = (ASSETS/'site.css').read_text(encoding='utf-8')
    css += '\n/* Pygments (style: default) */\n' + HtmlFormatter(style='default').get_style_defs('.highlight')
    (out/'site.css').write_text(css, encoding='utf-8')
    shutil.copy2(ASSETS/'favicon.svg', out/'favicon.svg')
    shutil.copy2(ASSETS/'site.js', out/'site.js')
    (out/'search-index.js').write_text('window.SEARCH_INDEX = ' + json.dumps(search_index(pages), ensure_ascii=False) + ';\n', encoding='utf-8')
    for d in dict.fromkeys([ROOT/'nbs'/'images', nbs/'images']):  # the project's images (the Colab badge), then the book's
        if d.is_dir(): shutil.copytree(d, out/'images', dirs_exist_ok=True)
    (out/'nbs').mkdir(exist_ok=True)
    for f in files: shutil.copy2(f, out/'nbs'/f.name)   # each page links its notebook (works in a clone and when published)
    (out/'.nojekyll').touch()

SWEEP_FIGURE = 'sweep.png'   # written by the sweep (`semmae-edu sweep`), committed as nbs/images/sweep.png
SWEEP_CAPTION = ('The main result: every masking strategy under one budget, over several seeds '
                 '(the sweep, <code>bench/sweep.json</code>; chapter 10 reads it).')

def add_result_figure(body:str, src:str):
    "Put the sweep's figure on the index page, before its second section (or at the end)."
    fig = (f'<figure class="result-figure"><img class="output-image" src="{src}" alt="the sweep: every strategy, several seeds">'
           f'<figcaption>{SWEEP_CAPTION}</figcaption></figure>')
    heads = [m.start() for m in re.finditer(r'<div class="cell md-cell">\s*<h2 ', body)]
    at = heads[1] if len(heads) > 1 else len(body)
    return body[:at] + fig + '\n' + body[at:]

def drop_dead_anchors(pages:list):
    "A link to an anchor its page does not have (prose naming a private helper, which gets no card) points at the page itself."
    ids = {p['html']: set(re.findall(r'\bid="([^"]+)"', p['body'])) for p in pages}
    def fix(m):
        page, frag = m.group(1), m.group(2)
        return m.group(0) if page not in ids or frag in ids[page] else f'href="{page}"'
    for p in pages: p['body'] = re.sub(r'href="([\w.-]+\.html)#([^"]+)"', fix, p['body'])

def dir_size(path:Path): return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())

# ---------------------------------------------------------------------------------------------

def build(nbs=ROOT/'nbs', out=ROOT/'_docs', proc=ROOT/'_proc', max_mb:float=MAX_MB, quiet=False, execute_cells=True,
          workers=None, strict=False, expect=None):
    "Process and render every notebook of `nbs` into the static site `out`; returns build stats."
    t0 = time.perf_counter()
    nbs, out, proc = Path(nbs).resolve(), Path(out).resolve(), Path(proc).resolve()
    os.chdir(ROOT)  # nbdev finds settings.ini from the working directory
    from nbdev.config import get_config
    cfg = get_config()
    if expect is None: expect = load_expect() if nbs == (ROOT/'nbs').resolve() else dict(explorers={}, allow={})
    files = notebook_order(nbs)
    if not files: raise SystemExit(f'no notebooks in {nbs}')
    if execute_cells:
        facts = execute(files, proc, workers)
        to_process = [proc/'_executed'/f.name for f in files]
    else:
        times = (proc/'times.json').read_bytes() if (proc/'times.json').exists() else None
        if proc.exists(): shutil.rmtree(proc)
        proc.mkdir(parents=True)
        if times: (proc/'times.json').write_bytes(times)   # the full build's order, kept for the next one
        facts, to_process = {f.name: dict(seconds=0.0, not_stored=None, slowest=[]) for f in files}, files
    t_exec = time.perf_counter()
    notes = process(to_process, proc)
    t1 = time.perf_counter()

    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    nbmeta = []
    for src in files:
        nb = json.loads((proc/src.name).read_text(encoding='utf-8'))
        fm = frontmatter(nb)
        name = fm.get('output-file') or (src.stem + '.html')
        nbmeta.append((src, nb, fm, name))
    site = Site(out, {src.name: name for src, _, _, name in nbmeta}, cfg.get('title', cfg.lib_name),
                cfg.doc_host + cfg.doc_baseurl, cfg.get('git_url', ''), repo_home(), cfg.get('branch', 'main'))
    pages, report = [], dict(mode='full' if execute_cells else 'no-execute', repo=site.repo, pages={}, notes=notes)
    for src, nb, fm, name in nbmeta:
        md = MarkdownRenderer()
        lang = ((nb.get('metadata') or {}).get('kernelspec') or {}).get('language') or 'python'
        body = render_cells(nb, md, out/'figures', Path(name).stem, lang)
        desc = str(fm.get('description') or '')
        desc_html = re.sub(r'^<p>|</p>\s*$', '', md(desc).strip()) if desc else ''
        body = site.fix_repo(site.fix_links(body, name), src.name)
        pages.append(dict(src=src.name, html=name, title=str(fm.get('title') or src.stem), description=desc,
                          description_html=site.fix_links(desc_html, name), body=body, toc=md.toc))
        f = facts[src.name]
        stored = json.loads(src.read_text(encoding='utf-8'))
        report['pages'][name] = dict(src=src.name, explorers=body.count('<div class="mask-explorer"'), explorers_stored=count_explorers(stored),
                                     not_stored=f.get('not_stored'), math_errors=[dict(e) for e in md.math_errors],
                                     seconds=round(f['seconds'], 1), slowest=f.get('slowest', []))
    drop_dead_anchors(pages)
    sweep = nbs/'images'/SWEEP_FIGURE
    if sweep.exists():  # the main result, once the sweep has produced its figure: on the index page
        for p in pages:
            if p['html'] == 'index.html': p['body'] = add_result_figure(p['body'], f'images/{SWEEP_FIGURE}')
    bad = []
    for i, p in enumerate(pages):
        text = page_html(site, pages, i)
        bad += [f'{p["html"]}: {b}' for b in external_refs(text)]
        (out/p['html']).write_text(text, encoding='utf-8')
    write_assets(out, nbs, pages, files)
    (proc/'report.json').write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding='utf-8')
    if bad: raise SystemExit('pages would load from other hosts (the site must work offline):\n  ' + '\n  '.join(bad))
    for page, url in site.missing: print(f'warning: {page} links to {url}, which is not a page of the site')
    check_maths(report, expect)
    check_stored(report, expect, strict)
    mb = dir_size(out) / 2**20
    stats = dict(pages=len(pages), seconds=time.perf_counter()-t0, execute_seconds=t_exec-t0, process_seconds=t1-t_exec,
                 mb=mb, out=str(out), report=str(proc/'report.json'))
    if not quiet:
        print(f'built {len(pages)} pages into {out} in {stats["seconds"]:.1f} s (executing fast cells {stats["execute_seconds"]:.1f} s, '
              f'nbdev processing {stats["process_seconds"]:.1f} s); site size {mb:.2f} MB; report {proc/"report.json"}')
        if execute_cells:
            slow = sorted(((c['seconds'], p['src'], c['source']) for p in report['pages'].values() for c in p['slowest']), reverse=True)[:5]
            print('slowest fast cells: ' + '; '.join(f'{s:.0f} s {nb} "{c[:50]}"' for s, nb, c in slow))
    if mb > max_mb: raise SystemExit(f'site is {mb:.1f} MB, over the {max_mb} MB limit: keep figures small')
    return stats

def math_key(page, e): return f'{page}: {e["tex"]}'

def check_maths(report, expect):
    "Every $...$ and $$...$$ became MathML, apart from the known gaps in expect.yml (allow: raw_tex)."
    allowed = set(expect.get('allow', {}).get('raw_tex') or [])
    errors = [(math_key(page, e), e['error']) for page, r in report['pages'].items() for e in r['math_errors']]
    known = [k for k, _ in errors if k in allowed]
    if known: print(f'note: {len(known)} known maths gap(s) (tools/docs_site/expect.yml, allow: raw_tex): ' + '; '.join(known))
    new = [f'{k}   ({why})' for k, why in errors if k not in allowed]
    if new: raise SystemExit('maths that does not render (page: TeX):\n  ' + '\n  '.join(new))

def check_stored(report, expect, strict):
    "The committed notebooks store what their pages show: explorers (expect.yml: explorers) and every output."
    lines = []
    for page, n in (expect.get('explorers') or {}).items():
        r = report['pages'].get(page)
        if r is None: lines.append(f'{page}: no such page (expect.yml lists {n} explorer(s) for it)'); continue
        if r['explorers_stored'] < n: lines.append(f'{page}: {r["explorers_stored"]} of {n} explorer(s) stored in {r["src"]}')
        if r['explorers'] < n: lines.append(f'{page}: shows {r["explorers"]} of {n} explorer(s)')
    for page, r in report['pages'].items():
        for c in r['not_stored'] or []:
            lines.append(f'{page}: cell {c["cell"]} ("{c["source"][:50]}") shows {"/".join(c["kinds"])} that {r["src"]} does not store')
    if lines:
        msg = 'a --no-execute build would lack:\n  ' + '\n  '.join(lines)
        if strict: raise SystemExit(msg)
        print('note: ' + msg if len(lines) < 12 else f'note: a --no-execute build would lack {len(lines)} outputs (see {ROOT/"_proc"/"report.json"})')

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--execute-one']:  # a worker of `execute`
        work(Path(argv[1]), Path(argv[2]))
        return
    if argv[:1] == ['--store']:   # refresh a notebook's stored outputs (what --no-execute shows), figures measured
        os.environ.update(ONE_THREAD)
        rest = [a for a in argv[1:] if a != '--slow']
        if not rest: raise SystemExit('usage: build_docs.py --store NOTEBOOK... [--slow]')
        for nb in rest: store(Path(nb).resolve(), slow='--slow' in argv)
        return
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nbs', default=str(ROOT/'nbs'), help='folder of notebooks (default: nbs/)')
    ap.add_argument('--out', default=str(ROOT/'_docs'), help='site folder, replaced (default: _docs/)')
    ap.add_argument('--proc', default=str(ROOT/'_proc'), help="nbdev's processed notebooks and report.json (default: _proc/)")
    ap.add_argument('--max-mb', type=float, default=MAX_MB, help='fail if the site is larger (MB)')
    ap.add_argument('--no-execute', action='store_true', help="use the notebooks' stored outputs (do not re-run their fast cells)")
    ap.add_argument('--strict', action='store_true', help='fail if a page lacks an explorer (expect.yml) or output that its notebook does not store')
    ap.add_argument('--workers', type=int, default=None, help='notebooks in parallel, one process each (default: one per CPU)')
    a = ap.parse_args(argv)
    if a.workers is not None and a.workers < 1: ap.error('--workers must be 1 or more')
    build(a.nbs, a.out, a.proc, a.max_mb, execute_cells=not a.no_execute, workers=a.workers, strict=a.strict)

if __name__ == '__main__': main()
