"""The rendered docs site, offline, in a real browser (Chromium driven by Playwright).

Every page of `_docs/` (built by `python tools/build_docs.py`) is served from 127.0.0.1 and opened
headless: no console error, no failed request, no request to another host (they are blocked and
reported), every image decodes, no element is wider than the text column (code and outputs wrap or
scroll inside their own block); each page is screenshotted into docs_screenshots/; every
`.mask-explorer` has each of its sliders and toggles moved, by script and by keyboard, and its frame
must change, with the count readout equal to the counts of the frame on screen. The masking chapters
must show the code they build (`def random_masking`, `def amt_masking`, `def semantic_masking`), the
explorers open on the papers' settings, and figures are drawn at 110 dpi or more.
A small fixture book (tests/fixtures/, two notebooks) is built into a temporary folder and goes
through the same checks, so the renderer and the explorer checks are tested even before the real
chapters have an explorer.

Without a built `_docs/`, Playwright or Chromium the browser tests skip, except where they are
required (CI=true, or SEMMAE_DOCS_REQUIRED=1; SEMMAE_DOCS_REQUIRED=0 turns the requirement off):
there they fail. `tools/ci_docs.sh` installs Chromium, builds the site and runs this file.
"""
import json, os, re, subprocess, sys, threading
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT/'_docs'
NBS = ROOT/'nbs'
FIXTURES = ROOT/'tests'/'fixtures'
SHOTS = ROOT/'docs_screenshots'
CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync',
                 '--disable-default-apps', '--disable-extensions', '--no-default-browser-check']
LOCAL_HOSTS = {'127.0.0.1', 'localhost'}
MAX_MB = 30

sys.path.insert(0, str(ROOT/'tools'))
from build_docs import external_refs, add_result_figure, SWEEP_FIGURE  # noqa: E402


def _required():
    v = os.environ.get('SEMMAE_DOCS_REQUIRED')
    if v is not None: return v.strip() == '1'
    return os.environ.get('CI', '').strip().lower() == 'true'

def _unavailable(reason):
    "Skip, or fail where the docs test is required."
    if _required(): pytest.fail(f'{reason} (required here: CI=true or SEMMAE_DOCS_REQUIRED=1)', pytrace=False)
    pytest.skip(reason)

def _site_pages(site): return sorted(p.name for p in site.glob('*.html'))

# ---------------------------------------------------------------------------------------------
# The two sites: the fixture book (always built here) and the real one (built by the user / CI)

@pytest.fixture(scope='session')
def fixture_site(tmp_path_factory):
    "tests/fixtures/*.ipynb rendered by tools/build_docs.py into a temporary folder."
    tmp = tmp_path_factory.mktemp('fixture_site')
    out = tmp/'site'
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py'), '--nbs', str(FIXTURES),
                        '--out', str(out), '--proc', str(tmp/'proc')], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return out

@pytest.fixture(scope='session')
def docs_site():
    if not (SITE/'index.html').exists(): _unavailable(f'{SITE} is not built: run `python tools/build_docs.py`')
    return SITE

# ---------------------------------------------------------------------------------------------
# Static checks (no browser)

class _Refs(HTMLParser):
    "ids, local links and resources of one page."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links, self.text = set(), [], []
        self._skip = 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        for k in ('href', 'src'):
            v = a.get(k)
            if v and not re.match(r'^(?:[a-z][\w+.-]*:|//)', v, re.I): self.links.append(v)
        if tag in ('script', 'style'): self._skip += 1
    def handle_endtag(self, tag):
        if tag in ('script', 'style'): self._skip = max(0, self._skip-1)
    def handle_data(self, d):
        if not self._skip: self.text.append(d)

def _parse(path):
    p = _Refs(); p.feed(path.read_text(encoding='utf-8')); p.close()
    return p

def check_static(site):
    "Local links and anchors resolve, nothing loads from another host, the site is small."
    parsed = {name: _parse(site/name) for name in _site_pages(site)}
    problems = []
    for name, p in parsed.items():
        problems += [f'{name}: {b}' for b in external_refs((site/name).read_text(encoding='utf-8'))]
        for link in p.links:
            path, _, frag = link.partition('#')
            target = name if not path else unquote(path)
            if not (site/target).exists(): problems.append(f'{name}: {link} does not exist'); continue
            if frag and target.endswith('.html') and frag not in parsed[target].ids:
                problems.append(f'{name}: {link} has no anchor #{frag}')
        text = ''.join(p.text)
        problems += [f'{name}: shows a directive line "{l.strip()}"' for l in text.splitlines() if l.strip().startswith('#|')]
    mb = sum(f.stat().st_size for f in site.rglob('*') if f.is_file()) / 2**20
    assert mb < MAX_MB, f'site is {mb:.1f} MB (limit {MAX_MB} MB)'
    assert not problems, '\n'.join(problems)
    return parsed

def test_fixture_site_renders_every_kind_of_cell(fixture_site):
    parsed = check_static(fixture_site)
    assert set(parsed) == {'docs_fixture.html', 'other.html'}
    page = (fixture_site/'docs_fixture.html').read_text(encoding='utf-8')
    text = ''.join(parsed['docs_fixture.html'].text)
    assert 'HIDDEN-CELL-MARKER' not in page and 'google.colab' not in page       # #| hide cells are gone
    assert 'ECHO-FALSE-OUTPUT' in text and "print('ECHO-FALSE" not in page      # echo: false keeps the output only
    assert '<table>' in page and '<th style="text-align:right">keeps</th>' in page  # markdown table
    assert 'class="code-block"' in page and "'fenced'" in page                   # code fence, highlighted
    assert '<h3 id="add">' in page and '<th>Parameter</th>' in page and 'first number' in text   # show_doc: a parameter table
    assert '<td><code>b</code></td>' in page and 'their sum' in text                  # one row per parameter; the return
    assert 'def add(a:int' in text                                               # an exported cell shows its code
    assert '<details class="code-fold" open><summary>Exported source</summary>' in page  # #| exports
    assert 'stdout line' in text and '<pre class="output output-text">3</pre>' in page
    assert re.search(r'<img class="output-image" src="figures/docs_fixture-\d+-0\.png"', page)  # PNG output as a file
    assert page.count('<div class="mask-explorer"') == 1 and '<script>' in page         # raw HTML output, inline JS kept
    assert 'font-awesome' not in page                                          # to_jshtml's CDN link dropped
    math = '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">' in page and 'display="block"' in page
    assert math or '<code class="math">' in page                                # TeX: MathML (or its source without latex2mathml)
    assert 'costs $5 and $6 stay text' in text
    assert 'Interactive widget' in page                                        # ipywidgets: a note, not a blank
    assert 'href="other.html"' in page and 'href="docs_fixture.html#markdown"' in (fixture_site/'other.html').read_text()
    assert (fixture_site/'images'/'colab-badge.svg').exists() and (fixture_site/'site.css').exists()

def test_index_shows_the_sweep_figure_once_committed(docs_site):
    "The sweep's figure (nbs/images/sweep.png, once committed) goes on the index, after the first section."
    body = '<div class="cell md-cell">\n<h2 id="a">A</h2><p>x</p></div><div class="cell md-cell">\n<h2 id="b">B</h2></div>'
    out = add_result_figure(body, 'images/sweep.png')
    assert out.index('result-figure') > out.index('id="a"') and out.index('result-figure') < out.index('id="b"')
    page = (docs_site/'index.html').read_text(encoding='utf-8')
    assert ('images/' + SWEEP_FIGURE in page) == (NBS/'images'/SWEEP_FIGURE).exists()
    for nb in sorted(NBS.glob('[0-9]*.ipynb')):                  # the index links every chapter
        assert f'href="{re.sub(r"^[0-9]+_", "", nb.stem)}.html"' in page.split('<main', 1)[1], nb.name

def test_offline_check_flags_remote_resources():
    bad = ['<script src="https://cdn.example.org/x.js"></script>', '<link rel="stylesheet" href="//cdn.example.org/a.css">',
           '<img src="http://example.org/a.png">', '<div style="background: url(https://example.org/b.png)"></div>',
           '<style>@import "https://example.org/c.css";</style>', '<iframe src="https://example.org"></iframe>']
    ok = ['<a href="https://colab.research.google.com/x">Colab</a>', '<img src="images/colab-badge.svg">',
          '<img src="data:image/png;base64,AAAA">', '<math xmlns="http://www.w3.org/1998/Math/MathML"></math>',
          '<script src="http://127.0.0.1:8000/site.js"></script>', '<script>var u = "https://example.org";</script>']
    for h in bad: assert external_refs(h), h
    for h in ok: assert not external_refs(h), h

def test_docs_site_static(docs_site):
    parsed = check_static(docs_site)
    assert 'index.html' in parsed
    for nb in sorted(NBS.glob('*.ipynb')):
        if nb.name.startswith(('_', '.')): continue
        name = 'index.html' if nb.stem == 'index' else re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb.stem) + '.html'
        assert name in parsed, f'{nb.name} has no page in {docs_site}: rebuild with `python tools/build_docs.py`'

KEY_CODE = {'masking.html': ['class MaskPlan', 'def random_masking', 'def plan_from_order'],
            'amt.html': ['def amt_masking', 'def amt_counts', 'class AttentionBank'],
            'semmae.html': ['def semantic_masking', 'def lam_schedule'],
            'mae.html': ['def forward_loss'], 'vit.html': ['class Attention', 'def cls_attention_maps']}

def test_docs_site_shows_the_code(docs_site):
    "Each chapter shows the code it builds, where it builds it (not only a signature card)."
    for name, needles in KEY_CODE.items():
        text = ''.join(_parse(docs_site/name).text)
        missing = [n for n in needles if n not in text]
        assert not missing, f'{name} does not show {missing}'

def test_docs_site_has_no_build_paths_or_raw_markdown(docs_site):
    for name in _site_pages(docs_site):
        text = ''.join(_parse(docs_site/name).text)
        assert not re.search(r'/tmp/(?:tmp|pytest-)', text), f'{name} shows the temporary folder of a run'
        assert not re.search(r'^\s*\|[-: |]+\|\s*$', text, re.M), f'{name} shows a raw markdown table'
        assert 'NoneType' not in text, f'{name} shows NoneType in an API card'

def _png_dpi(path):
    from PIL import Image
    with Image.open(path) as im: return im.info.get('dpi', (None, None))[0]

# pages whose figures come from files written elsewhere (the demo's report figures in 09)
DPI_EXEMPT = ('demo',)

def test_docs_figures_are_readable(docs_site):
    "Every matplotlib figure of the book is drawn at >= 110 dpi (the book's figure style)."
    low = []
    for f in sorted((docs_site/'figures').glob('*.png')):
        if f.name.startswith(DPI_EXEMPT): continue
        dpi = _png_dpi(f)
        if dpi is not None and round(dpi) < 110: low.append(f'{f.name}: {dpi:.0f} dpi')
    assert not low, 'figures below 110 dpi:\n' + '\n'.join(low)

# ---------------------------------------------------------------------------------------------
# Chapters are Colab-ready (a static check of the notebooks themselves)

INSTALL_CELL = "if 'google.colab' in sys.modules:"

@pytest.mark.parametrize('nb', [p.name for p in sorted(NBS.glob('[0-9]*.ipynb'))] or ['<no chapter yet>'])
def test_chapter_opens_in_colab(nb):
    if nb.startswith('<'): pytest.skip('no numbered chapter in nbs/ yet')
    cells = json.loads((NBS/nb).read_text(encoding='utf-8'))['cells']
    src = [''.join(c['source']) for c in cells]
    badge = f'[![Open In Colab](images/colab-badge.svg)](https://colab.research.google.com/github/semmae-edu/semmae_edu/blob/main/nbs/{nb})'
    head = src[:4]
    assert any(badge in s for s, c in zip(head, cells) if c['cell_type'] == 'markdown'), f'{nb}: no local Colab badge linking to nbs/{nb} near the top'
    assert any(INSTALL_CELL in s for s in src[:5]), f'{nb}: no Colab install cell near the top'

# ---------------------------------------------------------------------------------------------
# In the browser

class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

@pytest.fixture(scope='session')
def serve():
    "serve(folder) -> base URL of a local HTTP server for `folder` (stopped at the end)."
    servers = []
    def _serve(folder):
        srv = ThreadingHTTPServer(('127.0.0.1', 0), partial(_Quiet, directory=str(folder)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f'http://127.0.0.1:{srv.server_address[1]}/'
    yield _serve
    for s in servers: s.shutdown(); s.server_close()

@pytest.fixture(scope='session')
def browser():
    try: from playwright.sync_api import sync_playwright
    except ImportError: _unavailable('playwright is not installed (pip install playwright; its browser is not needed)')
    if not Path(CHROMIUM).exists(): _unavailable(f'no Chromium at {CHROMIUM} (apt-get install chromium)')
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()

def open_page(browser, url):
    "Open `url`; returns (context, page, problems) where problems lists errors, failures, remote requests."
    ctx = browser.new_context(viewport={'width': 1280, 'height': 900}, device_scale_factor=1)
    problems = []
    def route(r):
        u = urlparse(r.request.url)
        if u.scheme in ('http', 'https', 'ws', 'wss') and u.hostname not in LOCAL_HOSTS:
            problems.append(f'request to another host (blocked): {r.request.url}')
            return r.abort()
        return r.continue_()
    ctx.route('**/*', route)
    page = ctx.new_page()
    page.on('console', lambda m: m.type == 'error' and problems.append(f'console error: {m.text}'))
    page.on('pageerror', lambda e: problems.append(f'page error: {e}'))
    page.on('requestfailed', lambda r: problems.append(f'request failed: {r.url} ({r.failure})'))
    page.on('response', lambda r: r.status >= 400 and problems.append(f'HTTP {r.status}: {r.url}'))
    page.goto(url, wait_until='load')
    page.wait_for_load_state('networkidle')
    broken = page.evaluate('''() => Array.from(document.images)
        .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))''')
    problems += [f'image does not decode: {s}' for s in broken]
    return ctx, page, problems

def _move(slider, frame, to=None):
    "Set a range slider (to its other end by default) the way a user's drag ends; return the new frame src."
    slider.evaluate('''(el, to) => {
        const lo = Number(el.min || 0), hi = Number(el.max || 100);
        el.value = (to !== null) ? to : (Number(el.value) === hi ? lo : hi);
        el.dispatchEvent(new Event('input', {bubbles: true}));
        el.dispatchEvent(new Event('change', {bubbles: true}));
    }''', to)
    return frame.get_attribute('src')

def _readout(ex):
    "(readout text, the frame's counts) of one explorer ('' when it has no readout)."
    out = ex.locator('.mx-counts')
    return (out.first.inner_text().strip() if out.count() else ''), (ex.locator('img.mask-explorer-frame').get_attribute('data-counts') or '')

def _check_readout(ex, e, what):
    shown, frame = _readout(ex)
    assert shown == frame, f'mask explorer {e} after {what}: the readout says {shown!r} but the frame has {frame!r}'

def check_explorers(page):
    "Move every slider and toggle of every .mask-explorer (script, then keyboard): the frame must change. Returns how many."
    explorers = page.locator('.mask-explorer')
    for e in range(explorers.count()):
        ex = explorers.nth(e)
        sliders, frame = ex.locator('input[type=range]'), ex.locator('img.mask-explorer-frame')
        assert sliders.count() >= 1, f'mask explorer {e} has no <input type="range">'
        assert frame.count() == 1, f'mask explorer {e} needs exactly one <img class="mask-explorer-frame">'
        _check_readout(ex, e, 'opening')
        opening = [sliders.nth(s).input_value() for s in range(sliders.count())]
        for s in range(sliders.count()):
            before = frame.get_attribute('src')
            after = _move(sliders.nth(s), frame)
            assert after and after != before, f'mask explorer {e}: moving slider {s} did not change the frame'
            assert page.evaluate('(img) => img.complete && img.naturalWidth > 0', frame.element_handle()), \
                f'mask explorer {e}: the frame after slider {s} does not decode'
            _check_readout(ex, e, f'slider {s}')
        radios = ex.locator('input[type=radio]')
        if radios.count():  # back to the opening setting, where every toggle matters (e.g. AMT's throw mode needs a throw ratio > 0)
            for s in range(sliders.count()): _move(sliders.nth(s), frame, to=opening[s])
        for r in range(radios.count()):
            if radios.nth(r).is_checked(): continue
            before = frame.get_attribute('src')
            radios.nth(r).check()
            assert frame.get_attribute('src') != before, f'mask explorer {e}: choosing toggle {r} did not change the frame'
            _check_readout(ex, e, f'toggle {r}')
        # the keyboard: arrow keys on a focused slider (and on a toggle) move it
        s0 = sliders.first
        s0.focus()
        key = 'ArrowLeft' if s0.input_value() == s0.get_attribute('max') else 'ArrowRight'
        before = frame.get_attribute('src')
        page.keyboard.press(key)
        assert frame.get_attribute('src') != before, f'mask explorer {e}: {key} on a focused slider did not change the frame'
        _check_readout(ex, e, key)
        if radios.count():
            ex.locator('input[type=radio]:checked').focus()
            before = frame.get_attribute('src')
            page.keyboard.press('ArrowRight')
            assert frame.get_attribute('src') != before, f'mask explorer {e}: ArrowRight on a toggle did not change the frame'
            _check_readout(ex, e, 'ArrowRight on a toggle')
    return explorers.count()

def check_width(page):
    "No element of the content sticks out of the text column (a block that scrolls inside itself is fine)."
    bad = page.evaluate('''() => {
        const main = document.querySelector('main.content');
        if (!main) return [];
        const cs = getComputedStyle(main), box = main.getBoundingClientRect();
        const right = box.right - parseFloat(cs.paddingRight) + 1;
        const clips = el => { for (let a = el.parentElement; a && a !== main; a = a.parentElement) {
            const o = getComputedStyle(a).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; } return false; };
        const out = [];
        for (const el of main.querySelectorAll('*')) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 || r.right <= right || clips(el)) continue;
            out.push(`${el.tagName.toLowerCase()}.${el.className}: ${Math.round(r.right - right)} px too wide: ${(el.textContent || el.getAttribute('src') || '').slice(0, 60)}`);
        }
        return out.slice(0, 10);
    }''')
    return bad

def drag_screenshots(page, prefix):
    "Drag the first explorer's first slider with the mouse; screenshot the explorer before and after."
    ex = page.locator('.mask-explorer').first
    slider, frame = ex.locator('input[type=range]').first, ex.locator('img.mask-explorer-frame')
    _move(slider, frame, to=slider.get_attribute('min') or '0')
    ex.scroll_into_view_if_needed()
    SHOTS.mkdir(exist_ok=True)
    ex.screenshot(path=str(SHOTS/f'{prefix}explorer-before.png'))
    before = frame.get_attribute('src')
    box = slider.bounding_box()
    page.mouse.move(box['x'] + 4, box['y'] + box['height']/2)
    page.mouse.down()
    page.mouse.move(box['x'] + box['width'] - 2, box['y'] + box['height']/2, steps=12)
    page.mouse.up()
    assert frame.get_attribute('src') != before, 'a mouse drag on the slider did not change the frame'
    ex.screenshot(path=str(SHOTS/f'{prefix}explorer-after.png'))

def check_search(page, query, first_href, shot):
    "Type in the search box: results appear, the first is `first_href`, following it scrolls there."
    page.fill('#search-box', query)
    results = page.locator('#search-results a')
    assert results.count() >= 1, f'searching {query!r} found nothing'
    assert results.first.get_attribute('href') == first_href
    page.screenshot(path=str(SHOTS/shot))
    results.first.click()
    page.wait_for_url('**/' + first_href)

def check_page(browser, base, name, shot):
    ctx, page, problems = open_page(browser, base + name)
    try:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        wide = check_width(page)
        assert not wide, f'{name}: elements wider than the text column:\n' + '\n'.join(wide)
        if not name.startswith(DPI_EXEMPT):   # figures are shown at their own size, so 9 pt text stays 9 pt
            shrunk = page.evaluate('''() => Array.from(document.querySelectorAll('img.output-image'))
                .map(i => [i, Number(i.getAttribute('width')) || i.naturalWidth])   // a retina PNG carries its display width
                .filter(([i, w]) => w > 0 && i.clientWidth < 0.97 * w)
                .map(([i, w]) => `${i.getAttribute('src')}: drawn for ${w} px, shown at ${i.clientWidth} px`)''')
            assert not shrunk, f'{name}: figures scaled down below their drawn size (text under 9 pt):\n' + '\n'.join(shrunk)
        n = check_explorers(page)
        assert not problems, f'{name}:\n' + '\n'.join(problems)
        return page, ctx, n, problems
    except BaseException:
        ctx.close(); raise

def test_fixture_site_in_browser(browser, serve, fixture_site):
    base = serve(fixture_site)
    for name in _site_pages(fixture_site):
        page, ctx, n, problems = check_page(browser, base, name, SHOTS/f'fixture-{Path(name).stem}.png')
        try:
            if name == 'docs_fixture.html':
                assert n == 1, 'the fixture page has one mask explorer'
                drag_screenshots(page, 'fixture-')
                # the sidebar and prev/next link every page
                assert page.locator('.sidebar li').count() == 2 and page.locator('.pager a').count() == 1
                check_search(page, 'explorer', 'docs_fixture.html#a-mask-explorer', 'fixture-search.png')
            assert not problems, f'{name}, after interaction:\n' + '\n'.join(problems)
        finally: ctx.close()

def test_fixture_site_from_files(browser, fixture_site):
    "Opened straight from the disk (file://, no server), a page still works: styles, search, explorer."
    ctx, page, problems = open_page(browser, (fixture_site/'docs_fixture.html').as_uri())
    try:
        assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).position") == 'sticky'  # site.css loaded
        assert check_explorers(page) == 1
        page.fill('#search-box', 'widget')
        assert page.locator('#search-results a').count() >= 1
        assert not problems, '\n'.join(problems)
    finally: ctx.close()

_shot_taken = []

@pytest.mark.parametrize('name', _site_pages(SITE) or ['<not built>'])
def test_docs_page_in_browser(browser, serve, docs_site, name):
    if name.startswith('<'): _unavailable(f'{SITE} has no pages')
    page, ctx, n, problems = check_page(browser, serve(docs_site), name, SHOTS/f'{Path(name).stem}.png')
    try:
        assert page.locator('.sidebar li').count() == len(_site_pages(docs_site))
        if n and not _shot_taken:
            drag_screenshots(page, f'{Path(name).stem}-'); _shot_taken.append(name)
        assert not problems, f'{name}, after interaction:\n' + '\n'.join(problems)
    finally: ctx.close()


def _explorer(page, title):
    ex = page.locator('.mask-explorer', has_text=title)
    assert ex.count() == 1, f'no explorer titled {title!r}'
    return ex.first

def test_explorers_explain(browser, serve, docs_site):
    "The explorers open on the papers' settings, are big enough, have a legend and count what they show."
    base = serve(docs_site)
    ctx, page, problems = open_page(browser, base + 'amt.html')
    try:
        ex = _explorer(page, 'AMT masking and throwing')
        vals = ex.locator('.mx-val').all_inner_texts()
        assert vals[:2] == ['0.45', '0.4'] and ex.locator('input[type=radio]:checked').input_value() == '0', vals  # the paper's 0.45 / 0.40, 'low'
        assert ex.locator('input[type=radio]').count() == 2 and 'middle' in ex.inner_text()
        assert _readout(ex)[0] == 'visible 10 · masked 28 · thrown 26'                     # L = 64
        frame = ex.locator('img.mask-explorer-frame')
        assert page.evaluate('(img) => img.naturalHeight', frame.element_handle()) >= 256
        assert page.evaluate('(img) => img.naturalWidth', frame.element_handle()) >= 2 * 256  # the map beside the plan
        legend = ex.locator('.mx-legend').inner_text()
        assert all(w in legend for w in ('visible', 'masked', 'thrown', 'map'))
        SHOTS.mkdir(exist_ok=True); ex.screenshot(path=str(SHOTS/'amt-explorer.png'))
        assert not problems, '\n'.join(problems)
    finally: ctx.close()
    ctx, page, problems = open_page(browser, base + 'semmae.html')
    try:
        ex = _explorer(page, 'SemMAE masking')
        labels = ex.locator('.mx-control').all_inner_texts()
        assert any(l.strip().startswith('λ') for l in labels) and not any(l.strip().startswith('lam') for l in labels), labels
        assert _readout(ex)[0].startswith('visible 64 · masked 192'), _readout(ex)                 # r = 0.75 of L = 256
        frame = ex.locator('img.mask-explorer-frame')
        assert page.evaluate('(img) => img.naturalHeight', frame.element_handle()) >= 256
        assert 'parts' in ex.locator('.mx-legend').inner_text()
        ex.screenshot(path=str(SHOTS/'semmae-explorer.png'))
        assert not problems, '\n'.join(problems)
    finally: ctx.close()
    ctx, page, problems = open_page(browser, base + 'masking.html')
    try:
        ex = _explorer(page, 'MAE random masking')
        assert _readout(ex)[0] == 'visible 16 · masked 48 · thrown 0'                      # MAE's 0.75 of L = 64
        assert page.evaluate('(img) => img.naturalHeight', ex.locator('img.mask-explorer-frame').element_handle()) >= 256
    finally: ctx.close()
