// semmae_edu docs: search over the site's sections, headings and maths (the index is search-index.js, made by tools/build_docs.py).
(function () {
  var box = document.getElementById('search-box'), list = document.getElementById('search-results');
  if (!box || !list || !window.SEARCH_INDEX) return;
  var index = window.SEARCH_INDEX.map(function (s) { return [s, (s.h + ' ' + s.t).toLowerCase(), s.h.toLowerCase()]; });
  function esc(s) {
    return s.replace(/[&<>"]/g, function (c) { return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]; });
  }
  function snippet(text, word) {
    var i = text.toLowerCase().indexOf(word);
    if (i < 0) return esc(text.slice(0, 110));
    var a = Math.max(0, i - 40), b = Math.min(text.length, i + word.length + 70);
    return (a ? '…' : '') + esc(text.slice(a, i)) + '<mark>' + esc(text.slice(i, i + word.length)) + '</mark>' +
           esc(text.slice(i + word.length, b)) + (b < text.length ? '…' : '');
  }
  function search() {
    var q = box.value.trim().toLowerCase();
    list.innerHTML = '';
    // two letters at least, or one symbol (λ, σ, √)
    if (q.length < 2 && !/[^\x00-\x7f]/.test(q)) { list.hidden = true; return; }
    var words = q.split(/\s+/), hits = [];
    index.forEach(function (e) {
      if (words.every(function (w) { return e[1].indexOf(w) >= 0; }))
        hits.push([e[2].indexOf(words[0]) >= 0 ? 0 : 1, e[0]]);
    });
    hits.sort(function (x, y) { return x[0] - y[0]; });
    hits.slice(0, 25).forEach(function (h) {
      var s = h[1], li = document.createElement('li');
      li.innerHTML = '<a href="' + esc(s.u) + '"><span class="page">' + esc(s.p) + '</span>' +
        '<span class="head">' + esc(s.h) + '</span><span class="snip">' + snippet(s.t, words[0]) + '</span></a>';
      list.appendChild(li);
    });
    if (!hits.length) list.innerHTML = '<li class="none">No match</li>';
    list.hidden = false;
  }
  box.addEventListener('input', search);
  box.addEventListener('keydown', function (e) {
    if (e.key === 'Enter') { var a = list.querySelector('a'); if (a) window.location.href = a.href; }
    if (e.key === 'Escape') { box.value = ''; search(); }
  });
  document.addEventListener('click', function (e) {
    if (!list.contains(e.target) && e.target !== box) list.hidden = true;
  });
})();
