#!/usr/bin/env bash
# The docs in CI: Chromium (only if missing), the offline site (_docs/), its test in the browser.
# The build re-runs every notebook's fast cells in a pool of processes, one BLAS/OpenMP thread each
# (`#| slow`/`#| gpu` cells keep their stored outputs), so the figures and explorers on the site come
# from the current code; it fails on maths that does not become MathML. The test then reads the build's
# report (_proc/report.json) and the pages, at 1280/1024/800/390 px (tools/docs_site/expect.yml lists
# what the site must have and the known gaps allowed today).
# Run from anywhere with the project's venv active (it needs the dev requirements: nbdev, playwright, latex2mathml).
#   bash tools/ci_docs.sh                  # full build (re-executes), then the tests
#   DOCS_NO_EXECUTE=1 bash tools/ci_docs.sh   # from the notebooks' stored outputs (seconds), then the tests
# Set CHROMIUM=/path/to/chrome to use another Chromium/Chrome (e.g. google-chrome on GitHub runners).
set -euo pipefail
cd "$(dirname "$0")/.."
# one BLAS/OpenMP thread per process: the build runs notebooks in parallel, and oversubscribed torch
# threads on 2 cores make each of them several times slower
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export SEMMAE_DOCS_REQUIRED=1   # here a missing site, Playwright or Chromium is a failure, not a skip
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$CHROMIUM" ]; then
  echo "no Chromium at $CHROMIUM: installing Debian's chromium with apt"
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium fonts-liberation fonts-dejavu-core >/dev/null
  export CHROMIUM=/usr/bin/chromium
fi
python -c "import playwright, latex2mathml" 2>/dev/null \
  || { echo "Playwright and latex2mathml are dev requirements (pip install -e '.[dev]')"; exit 1; }

t0=$(date +%s.%N)
if [ "${DOCS_NO_EXECUTE:-0}" = "1" ]; then python tools/build_docs.py --no-execute; else python tools/build_docs.py; fi
t1=$(date +%s.%N)
python -m pytest -q -s -rs tests/test_docs_site.py   # -s: the per-page counts (blank meanings, figures, layout, colours) show in the log
t2=$(date +%s.%N)
python - "$t0" "$t1" "$t2" <<'PY'
import sys, os
from pathlib import Path
t0, t1, t2 = map(float, sys.argv[1:])
site = Path('_docs')
mb = sum(f.stat().st_size for f in site.rglob('*') if f.is_file()) / 2**20
pages = len(list(site.glob('*.html')))
load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
print(f'docs: build {t1-t0:.1f} s, browser test {t2-t1:.1f} s, {pages} pages, site size {mb:.2f} MB (load {load:.1f} on {os.cpu_count()} CPUs)')
PY
