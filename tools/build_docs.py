"""Build the docs site offline: nbs/*.ipynb -> _docs/ (static HTML; no Quarto, no network).

    python tools/build_docs.py                          # nbs/ -> _proc/ -> _docs/
    python tools/build_docs.py --nbs tests/fixtures --out /tmp/site --proc /tmp/site_proc
    python tools/build_docs.py --no-execute             # stored outputs only (seconds instead of minutes)

Step 0 re-executes every notebook's fast cells (as `nbdev_test` does: `#| slow`, `#| gpu` and
`#| eval: false` cells are skipped and keep their stored outputs), one notebook per process, so every
figure and explorer on the site comes from the current code (`--no-execute` uses the stored outputs).
Step 1 processes every notebook as `nbdev_proc_nbs` does, with nbdev's own worker
(`nbdev.serve_drv.main` with `FilterDefaults`: frontmatter, `#| hide` cells dropped, `show_doc`
cells added and run, doc links added). Exported cells are shown where the chapter builds them
(treated as nbdev's `#| exports`), and `show_doc` draws a card with a parameter table (name, type,
default, meaning from the docments), each name once per page. It runs the notebooks' export and
import cells in this process, so `semmae_edu` must be importable (`export PYTHONPATH=$PWD` in a worktree).
We do not call the `nbdev_proc_nbs` command: without Quarto it runs nbdev's Quarto installer,
which downloads from GitHub and then runs `pip install -e ".[dev]"` with whatever `pip` is first on
PATH; it also rewrites nbs/nbdev.yml and nbs/sidebar.yml.
Step 2 renders each processed notebook into one HTML page: markdown (tables, code fences, TeX math
as MathML) with mistune, code with Pygments, stored outputs (text, PNG/JPEG/SVG figures, HTML such
as the mask explorers inserted raw so their inline JS runs, `show_doc` markdown). Pages get a
sidebar in the order of nbs/sidebar.yml, prev/next links, an "on this page" list and a search box.
CSS, JS, favicon and nbs/images are copied into the site: no page loads anything from another host
(the build fails if one would) and it fails if the site grows past 30 MB. Once the sweep has
written `nbs/images/sweep.png`, the index page shows it as the main result.
"""
import argparse, base64, html, json, os, re, shutil, sys, time, warnings
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent/'docs_site'
MAX_MB = 30

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
# Step 1: nbdev processing (what `nbdev_proc_nbs` does for each notebook)

_MIXED = 'Found cells containing imports and other code'

_re_skip_flag = re.compile(r'^\s*#\|\s*(slow|gpu)\s*$|^\s*#\|\s*eval\s*:\s*false\s*$', re.M | re.I)

def _execute_one(args):
    "Run the fast cells of one notebook (in a fresh process); write it to `dst`. Returns (name, seconds, error)."
    src, dst = map(Path, args)
    t0 = time.perf_counter()
    os.environ.setdefault('MPLBACKEND', 'Agg')
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    nb = read_nb(src)
    def skip(cell):
        if cell.cell_type != 'code': return True
        return bool(_re_skip_flag.search(cell.source)) or 'nbdev_export()' in cell.source or 'nbdev.nbdev_export' in cell.source
    cwd = os.getcwd()
    os.chdir(src.parent)
    try:
        k = CaptureShell()
        k.run_all(nb, exc_stop=True, preproc=skip)
    except Exception as e:
        return src.name, time.perf_counter()-t0, f'{type(e).__name__}: {e}'
    finally: os.chdir(cwd)
    write_nb(nb, dst)
    return src.name, time.perf_counter()-t0, None

def execute(nbs_files, out:Path, workers:int=None):
    "Re-execute the fast cells of `nbs_files` into `out` (one fresh Python process per notebook); returns the new paths."
    import concurrent.futures as cf, subprocess
    out.mkdir(parents=True, exist_ok=True)
    def run(f):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, str(Path(__file__).resolve()), '--execute-one', str(f), str(out/f.name)],
                           capture_output=True, text=True, cwd=ROOT)
        err = None if r.returncode == 0 else (r.stdout + r.stderr).strip()[-3000:]
        return f.name, time.perf_counter()-t0, err
    workers = workers or max(1, min(len(nbs_files), os.cpu_count() or 1))
    with cf.ThreadPoolExecutor(workers) as ex: res = list(ex.map(run, nbs_files))
    errors = [f'{n}: {e}' for n, _, e in res if e]
    if errors: raise SystemExit('executing the fast cells failed (the site shows what the current code draws):\n  ' + '\n  '.join(errors))
    print('executed fast cells: ' + ', '.join(f'{n} {t:.0f} s' for n, t, _ in sorted(res, key=lambda r: -r[1])))
    return [out/f.name for f in nbs_files]

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

def doc_card_markdown(r):
    "The markdown of a `show_doc` card: source link, heading, one-line signature, docstring, parameter table."
    import inspect
    from fastcore.docments import docments
    from nbdev.showdoc import _ext_link
    from nbdev.doclinks import NbdevLookup
    sym, nm = r.sym, r.nm
    is_cls = inspect.isclass(sym)
    try: dm = docments(sym, full=True, returns=True)
    except Exception: dm = {}
    params = {k: v for k, v in dm.items() if k not in ('self', 'cls', 'return')}
    if is_cls and not params and r.sig is not None:
        params = {k: dict(anno=p.annotation, default=p.default, docment=None, kind=p.kind) for k, p in r.sig.parameters.items()}
    ret = dm.get('return') or {}
    def one(k, v):
        star = {inspect.Parameter.VAR_POSITIONAL: '*', inspect.Parameter.VAR_KEYWORD: '**'}.get(v.get('kind'), '')
        d = _fmt_default(v.get('default', inspect.Parameter.empty))
        return f'{star}{k}' + (f'={d}' if d else '')
    args = ', '.join(one(k, v) for k, v in params.items())
    short = nm.rsplit('.', 1)[-1] if '.' in nm else nm
    sig = f'class {nm}({args})' if is_cls else f'{nm}({args})'
    ra = _fmt_anno(ret.get('anno', inspect.Parameter.empty))
    if ra and not is_cls: sig += f' -> {ra}'
    doc = '---\n\n'
    src = NbdevLookup().code(r.fn)
    if src: doc += _ext_link(src, 'source', 'class="source-link"') + '\n\n'
    doc += f'{"#" * r.title_level} {nm}\n\n'
    doc += f'```python\n{sig}\n```\n\n'
    if r.docs: doc += r.docs.strip() + '\n\n'
    rows = [(k, _fmt_anno(v.get('anno', inspect.Parameter.empty)), _fmt_default(v.get('default', inspect.Parameter.empty)), v.get('docment') or '')
            for k, v in params.items()]
    if rows:
        doc += '| Parameter | Type | Default | Meaning |\n|---|---|---|---|\n'
        doc += ''.join(f'| `{k}` | {f"`{_cell_text(t)}`" if t else ""} | {f"`{_cell_text(d)}`" if d else ""} | {_cell_text(m)} |\n' for k, t, d, m in rows)
        doc += '\n'
    if ra and not is_cls: doc += f'**Returns** `{_cell_text(ra)}`' + (f': {_cell_text(ret.get("docment"))}' if ret.get('docment') else '') + '\n'
    return doc

def _use_cards():
    "Make nbdev's show_doc draw our cards (in this process: nbdev runs the show_doc cells here)."
    import nbdev.showdoc as sd
    sd.BasicMarkdownRenderer._repr_markdown_ = doc_card_markdown

def process(nbs_files, proc:Path):
    "Process `nbs_files` with nbdev's docs processors into `proc` (in this process); returns the processed paths."
    from nbdev.processors import FilterDefaults
    import nbdev.serve_drv
    _use_cards()
    proc.mkdir(parents=True, exist_ok=True)
    res = []
    for nb_file in nbs_files:
        dst = proc/nb_file.name
        src = show_exported(nb_file, proc/'_shown'/nb_file.name)
        caught = []
        with warnings.catch_warnings():
            warnings.filterwarnings('always', message=_MIXED)
            # collect by hand: code that the notebooks run may replace warnings.showwarning (record=True then misses)
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: \
                caught.append(warnings.WarningMessage(message, category, filename, lineno))
            try: nbdev.serve_drv.main((src, dst, FilterDefaults))
            except Exception as e:
                cause = f'\n{type(e.__cause__).__name__}: {e.__cause__}' if e.__cause__ else ''
                raise SystemExit(f'nbdev could not process {src.name} (the docs run its import and export cells):\n{e}{cause}') from e
            finally: _report_mixed(src, caught)
        res.append(dst)
    return res

def _report_mixed(src, caught):
    "nbdev runs every cell that imports something, all of it: say which cells also hold other code."
    seen = set()
    for w in caught:
        msg = str(w.message)
        if not msg.startswith(_MIXED):
            line = f'warning: {src.name}: {w.category.__name__}: {msg.splitlines()[0][:160] if msg else ""}'
            if line not in seen: print(line); seen.add(line)
            continue
        body = [l for l in msg.split('---')[1].strip().splitlines() if l.strip()] if '---' in msg else []
        if body and body[0].startswith('# On Colab only'): continue  # the Colab install cell: on purpose
        print(f'note: {src.name}: a cell mixes imports with other code, so building the docs runs all of it '
              f'(put the imports in a cell of their own): "{body[0][:70] if body else ""}"')

# ---------------------------------------------------------------------------------------------
# Step 2: rendering

_re_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')
_re_directive = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

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

def slugify(text:str):
    "Pandoc's identifier rule (so nbdev doc links `page.html#name` land on the heading)."
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
            if level in (2, 3): self.toc.append((level, hid, re.sub(r'<[^>]+>', '', text)))
            return f'<h{level} id="{hid}"><a class="anchor" href="#{hid}" aria-hidden="true">#</a>{text}</h{level}>\n'
        def block_code(self, code, info=None):
            return f'<div class="code-block">{highlight(code, info or "text")}</div>\n'
    return mistune, Renderer

# TeX math becomes MathML at build time (browsers draw MathML natively: no MathJax, no network).
# Without the `latex2mathml` package the TeX source is shown as code.
_re_code_span = re.compile(r'(^```.*?^```[ \t]*$|^~~~.*?^~~~[ \t]*$|`[^`\n]*`)', re.S | re.M)
_re_math = re.compile(r'(?<![\\$])\$\$(.+?)\$\$|(?<![\\$\w])\$(?![\s$])([^$\n]+?)(?<![\s\\])\$(?!\d)', re.S)
# Quarto/pandoc link attributes, as in nbdev's show_doc "source" link: [text](url){key="v" .class}
_re_link_attrs = re.compile(r'\[([^\]\n]+)\]\(([^)\s]+)\)\{([^}\n]*)\}')
_math_warned = []

def tex_to_html(tex:str, display:bool):
    "MathML for a TeX formula (the TeX as code if it cannot be converted)."
    try:
        from latex2mathml.converter import convert
        return convert(tex.strip(), display='block' if display else 'inline')
    except Exception as e:
        if not _math_warned:
            _math_warned.append(1)
            print(f'warning: TeX math shown as source ({type(e).__name__}: {e}); `pip install latex2mathml` to typeset it')
        return f'<code class="math{" display" if display else ""}">{html.escape(tex)}</code>'

def _link_with_attrs(m):
    text, url, attrs = m.groups()
    out = [f'href="{html.escape(url, quote=True)}"']
    classes = re.findall(r'(?:^|\s)\.([\w-]+)', attrs)
    if classes: out.append(f'class="{" ".join(classes)}"')
    for k, v1, v2 in re.findall(r'([\w-]+)=(?:"([^"]*)"|(\S+))', attrs): out.append(f'{k}="{html.escape(v1 or v2, quote=True)}"')
    return f'<a {" ".join(out)}>{html.escape(text)}</a>'

def protect_math(text:str):
    "(markdown with math and pandoc link attributes replaced by placeholders, their HTML) — code is left alone."
    saved = []
    def keep(h):
        saved.append(h); return f'MDPH{len(saved)-1}PHMD'
    def prose(seg):
        seg = _re_link_attrs.sub(lambda m: keep(_link_with_attrs(m)), seg)
        return _re_math.sub(lambda m: keep(tex_to_html(m.group(1), True) if m.group(1) is not None
                                           else tex_to_html(m.group(2), False)), seg)
    parts = _re_code_span.split(text)
    return ''.join(p if i % 2 else prose(p) for i, p in enumerate(parts)), saved

def restore(html_text:str, saved:list):
    return re.sub(r'MDPH(\d+)PHMD', lambda m: saved[int(m.group(1))], html_text) if saved else html_text

class MarkdownRenderer:
    "Markdown → HTML for one page; remembers the page's headings for its contents list."
    def __init__(self):
        mistune, R = _markdown_class()
        self.r = R()
        self.md = mistune.create_markdown(renderer=self.r, plugins=['table', 'strikethrough', 'url', 'footnotes', 'task_lists'])
    def __call__(self, text:str):
        text, saved = protect_math(text)
        n = len(self.r.toc)
        out = restore(self.md(text), saved)
        self.r.toc[n:] = [(lv, hid, re.sub(r'<[^>]+>', '', restore(t, saved))) for lv, hid, t in self.r.toc[n:]]
        return out
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

def external_refs(page_html:str):
    p = OfflineCheck(); p.feed(page_html); p.close()
    return p.bad

# matplotlib's to_jshtml() player links Font Awesome from a CDN for its button icons; the site's
# CSS draws those icons itself, so the link is dropped.
_re_fontawesome = re.compile(r'<link\b[^>]*font-awesome[^>]*>', re.I)

class Site:
    "Everything a page needs to know about the others: file names, titles, link rewriting."
    def __init__(self, out:Path, html_names:dict, title:str, doc_url:str, repo_url:str):
        self.out, self.html_names, self.title, self.doc_url, self.repo_url = out, html_names, title, doc_url.rstrip('/')+'/', repo_url
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

    def fix_links(self, body:str, page:str):
        def sub(m):
            return f'{m.group(1)}="{html.escape(self.fix_url(html.unescape(m.group(2)), page), quote=True)}"'
        return re.sub(r'\b(href)="([^"]*)"', sub, body)

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
        text = _re_ansi.sub('', _src(o.get('text')))
        text = '\n'.join(l.rstrip('\r').split('\r')[-1] for l in text.split('\n'))  # progress bars: last state
        text = _re_tmp.sub('<temporary folder>', text)
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

def render_cells(nb:dict, md:MarkdownRenderer, fig_dir:Path, stem:str, lang:str='python'):
    "The HTML of a processed notebook's cells."
    out, documented = [], set()
    for i, cell in enumerate(nb.get('cells', [])):
        src = _src(cell.get('source'))
        if cell.get('cell_type') == 'markdown':
            if src.strip() and not re.fullmatch(r'\s*<!--.*?-->\s*', src, re.S):
                out.append(f'<div class="cell md-cell">\n{md(_attachments(src, cell))}</div>')
            continue
        if cell.get('cell_type') != 'code': continue
        dirs, code = split_directives(src)
        if 'hide' in dirs or _false(dirs.get('include', 'true')): continue
        if dirs.get('output') == 'asis':  # a show_doc card: each name once per page
            md_out = ''.join(_src(o.get('data', {}).get('text/markdown')) for o in cell.get('outputs', []))
            m = re.search(r'^#{1,6} (\S+)\s*$', md_out, re.M)
            if m and m.group(1) in documented: continue
            if m: documented.add(m.group(1))
        parts = []
        if code.strip() and not _false(dirs.get('echo', 'true')):
            block = f'<div class="cell-input">{highlight(code, (cell.get("metadata") or {}).get("language") or lang)}</div>'
            if 'code-fold' in dirs and not _false(dirs['code-fold']):
                summary = html.escape(dirs.get('code-summary') or 'Code')
                block = f'<details class="code-fold"{" open" if dirs["code-fold"] == "show" else ""}><summary>{summary}</summary>{block}</details>'
            parts.append(block)
        if not _false(dirs.get('output', 'true')):
            outs = [render_output(o, md, fig_dir, f'{stem}-{i}-{k}') for k, o in enumerate(merge_streams(cell.get('outputs', [])))]
            outs = [o for o in outs if o]
            if outs: parts.append('<div class="cell-outputs">' + '\n'.join(outs) + '</div>')
        if parts: out.append(f'<div class="cell code-cell{" doc-cell" if dirs.get("output") == "asis" else ""}">' + '\n'.join(parts) + '</div>')
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
    m = re.match(r'^(\d+)_', src_name)
    return m.group(1) if m else ''

def page_html(site:Site, pages:list, i:int):
    p, esc = pages[i], html.escape
    side = []
    for j, q in enumerate(pages):
        num = f'<span class="num">{_num(q["src"])}</span> ' if _num(q['src']) else ''
        cur = ' class="active" aria-current="page"' if j == i else ''
        side.append(f'<li{cur}><a href="{q["html"]}">{num}{esc(q["title"])}</a></li>')
    toc = ''.join(f'<li class="toc-h{lv}"><a href="#{hid}">{t}</a></li>' for lv, hid, t in p['toc'])
    prev = f'<a class="prev" href="{pages[i-1]["html"]}"><span>Previous</span>{esc(pages[i-1]["title"])}</a>' if i > 0 else '<span></span>'
    nxt = f'<a class="next" href="{pages[i+1]["html"]}"><span>Next</span>{esc(pages[i+1]["title"])}</a>' if i+1 < len(pages) else '<span></span>'
    desc = f'<p class="description">{p["description_html"]}</p>' if p['description'] else ''
    head_title = esc(p['title']) if p['html'] == 'index.html' else f'{esc(p["title"])} – {esc(site.title)}'
    repo = f'<a class="repo" href="{esc(site.repo_url)}">Source on GitHub</a>' if site.repo_url else ''
    return f'''<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{head_title}</title>
<meta name="description" content="{esc(re.sub(r'<[^>]+>', '', p['description_html']))}">
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
{p['body']}
<nav class="pager" aria-label="Previous and next chapter">{prev}{nxt}</nav>
</main>
<aside class="toc">{'<h2>On this page</h2><ul>' + toc + '</ul>' if toc else ''}</aside>
</div>
<script src="search-index.js"></script>
<script src="site.js"></script>
</body>
</html>
'''

class _SectionText(HTMLParser):
    "The prose of a page cut at its h2/h3 headings: [(id, heading, text)] (code, scripts and styles left out)."
    def __init__(self, title):
        super().__init__(convert_charrefs=True)
        self.sections, self._skip, self._head = [['', title, []]], 0, None
    def handle_starttag(self, tag, attrs):
        if tag in ('script', 'style', 'pre', 'math', 'svg'): self._skip += 1
        elif tag in ('h2', 'h3') and dict(attrs).get('id'):
            self.sections.append([dict(attrs)['id'], '', []]); self._head = tag
    def handle_endtag(self, tag):
        if tag in ('script', 'style', 'pre', 'math', 'svg'): self._skip = max(0, self._skip-1)
        elif tag == self._head: self._head = None
    def handle_data(self, d):
        if self._skip: return
        if self._head: self.sections[-1][1] += d
        else: self.sections[-1][2].append(d)

def search_index(pages):
    "One entry per section of every page: url, page title, heading, text."
    entries = []
    for p in pages:
        sp = _SectionText(p['title']); sp.feed(p['body']); sp.close()
        sp.sections[0][2].insert(0, p['description'])
        for hid, head, text in sp.sections:
            text = re.sub(r'\s+', ' ', ' '.join(text)).strip()
            head = re.sub(r'\s+', ' ', head.replace('#', '', 1)).strip()
            if hid or text:
                entries.append(dict(u=p['html'] + (f'#{hid}' if hid else ''), p=p['title'], h=head or p['title'], t=text[:1500]))
    return entries

def write_assets(out:Path, nbs:Path, pages:list):
    from pygments.formatters import HtmlFormatter
    css = (ASSETS/'site.css').read_text(encoding='utf-8')
    css += '\n/* Pygments (style: default) */\n' + HtmlFormatter(style='default').get_style_defs('.highlight')
    (out/'site.css').write_text(css, encoding='utf-8')
    shutil.copy2(ASSETS/'favicon.svg', out/'favicon.svg')
    shutil.copy2(ASSETS/'site.js', out/'site.js')
    (out/'search-index.js').write_text('window.SEARCH_INDEX = ' + json.dumps(search_index(pages), ensure_ascii=False) + ';\n', encoding='utf-8')
    for d in dict.fromkeys([ROOT/'nbs'/'images', nbs/'images']):  # the project's images (the Colab badge), then the book's
        if d.is_dir(): shutil.copytree(d, out/'images', dirs_exist_ok=True)
    (out/'.nojekyll').touch()

SWEEP_FIGURE = 'sweep.png'   # written by the sweep (`semmae-edu sweep`), committed as nbs/images/sweep.png
SWEEP_CAPTION = ('The main result: every masking strategy under one budget, over several seeds '
                 '(the sweep, <code>bench/sweep.json</code>; chapter 09 reads it).')

def add_result_figure(body:str, src:str):
    "Put the sweep's figure on the index page, before its second section (or at the end)."
    fig = (f'<figure class="result-figure"><img class="output-image" src="{src}" alt="the sweep: every strategy, several seeds">'
           f'<figcaption>{SWEEP_CAPTION}</figcaption></figure>')
    heads = [m.start() for m in re.finditer(r'<div class="cell md-cell">\s*<h2 ', body)]
    at = heads[1] if len(heads) > 1 else len(body)
    return body[:at] + fig + '\n' + body[at:]

def dir_size(path:Path): return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())

# ---------------------------------------------------------------------------------------------

def build(nbs=ROOT/'nbs', out=ROOT/'_docs', proc=ROOT/'_proc', max_mb:float=MAX_MB, quiet=False, execute_cells=True, workers=None):
    "Process and render every notebook of `nbs` into the static site `out`; returns build stats."
    t0 = time.perf_counter()
    nbs, out, proc = Path(nbs).resolve(), Path(out).resolve(), Path(proc).resolve()
    os.chdir(ROOT)  # nbdev finds settings.ini from the working directory
    from nbdev.config import get_config
    cfg = get_config()
    files = notebook_order(nbs)
    if not files: raise SystemExit(f'no notebooks in {nbs}')
    if execute_cells:
        if proc.exists(): shutil.rmtree(proc)
        to_process = execute(files, proc/'_executed', workers)
    else: to_process = files
    t_exec = time.perf_counter()
    processed = process(to_process, proc)
    t1 = time.perf_counter()

    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    nbmeta = []
    for src, pth in zip(files, processed):
        nb = json.loads(pth.read_text(encoding='utf-8'))
        fm = frontmatter(nb)
        name = fm.get('output-file') or (src.stem + '.html')
        nbmeta.append((src, nb, fm, name))
    site = Site(out, {src.name: name for src, _, _, name in nbmeta}, cfg.get('title', cfg.lib_name),
                cfg.doc_host + cfg.doc_baseurl, cfg.get('git_url', ''))
    pages = []
    for src, nb, fm, name in nbmeta:
        md = MarkdownRenderer()
        lang = ((nb.get('metadata') or {}).get('kernelspec') or {}).get('language') or 'python'
        body = render_cells(nb, md, out/'figures', Path(name).stem, lang)
        desc = str(fm.get('description') or '')
        desc_html = re.sub(r'^<p>|</p>\s*$', '', MarkdownRenderer()(desc).strip()) if desc else ''
        pages.append(dict(src=src.name, html=name, title=str(fm.get('title') or src.stem), description=desc,
                          description_html=site.fix_links(desc_html, name), body=site.fix_links(body, name), toc=md.toc))
    sweep = nbs/'images'/SWEEP_FIGURE
    if sweep.exists():  # the main result, once the sweep has produced its figure: on the index page
        for p in pages:
            if p['html'] == 'index.html': p['body'] = add_result_figure(p['body'], f'images/{SWEEP_FIGURE}')
    bad = []
    for i, p in enumerate(pages):
        text = page_html(site, pages, i)
        bad += [f'{p["html"]}: {b}' for b in external_refs(text)]
        (out/p['html']).write_text(text, encoding='utf-8')
    write_assets(out, nbs, pages)
    if bad: raise SystemExit('pages would load from other hosts (the site must work offline):\n  ' + '\n  '.join(bad))
    for page, url in site.missing: print(f'warning: {page} links to {url}, which is not a page of the site')
    mb = dir_size(out) / 2**20
    stats = dict(pages=len(pages), seconds=time.perf_counter()-t0, execute_seconds=t_exec-t0, process_seconds=t1-t_exec, mb=mb, out=str(out))
    if not quiet:
        print(f'built {len(pages)} pages into {out} in {stats["seconds"]:.1f} s (executing fast cells '
              f'{stats["execute_seconds"]:.1f} s, nbdev processing {stats["process_seconds"]:.1f} s); site size {mb:.2f} MB')
    if mb > max_mb: raise SystemExit(f'site is {mb:.1f} MB, over the {max_mb} MB limit: keep figures small')
    return stats

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--execute-one']:  # a worker of `execute`
        name, secs, err = _execute_one(argv[1:3])
        if err: raise SystemExit(err)
        return
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nbs', default=str(ROOT/'nbs'), help='folder of notebooks (default: nbs/)')
    ap.add_argument('--out', default=str(ROOT/'_docs'), help='site folder, replaced (default: _docs/)')
    ap.add_argument('--proc', default=str(ROOT/'_proc'), help="nbdev's processed notebooks (default: _proc/)")
    ap.add_argument('--max-mb', type=float, default=MAX_MB, help='fail if the site is larger (MB)')
    ap.add_argument('--no-execute', action='store_true', help="use the notebooks' stored outputs (do not re-run their fast cells)")
    ap.add_argument('--workers', type=int, default=None, help='notebooks executed in parallel (default: one per CPU)')
    a = ap.parse_args(argv)
    build(a.nbs, a.out, a.proc, a.max_mb, execute_cells=not a.no_execute, workers=a.workers)

if __name__ == '__main__': main()
