// Loaded last by tests/reports/html_render_test.sh into a copy of a report. On screen it writes
// what it finds into <pre id="render-check"> for `chromium --dump-dom` ("ok tables=N figures=M"
// when clean). Printed (`chromium --print-to-pdf`), the same check runs on the print layout when
// the print media query starts to match, and its result becomes the document title, which
// Chromium writes into the PDF's /Title ("render-check: ok width=W tables=N figures=M").
(function () {
  // The problems of the current layout: script errors, tables and charts wider than their
  // container, a page wider than its viewport of `pageWidth` px (on screen; in print the test
  // compares the layout's width with the paper's instead).
  function problems(pageWidth) {
    var found = (window.__errors || []).map(function (m) { return "error: " + m; });
    document.querySelectorAll("table").forEach(function (t, i) {
      var box = t.parentElement;
      var name = t.id || "table " + i;
      if (t.getBoundingClientRect().width > box.clientWidth + 1 || box.scrollWidth > box.clientWidth + 1)
        found.push("overflow: " + name + " " + Math.round(t.getBoundingClientRect().width) + " px in " + box.clientWidth + " px");
    });
    document.querySelectorAll("svg").forEach(function (s, i) {
      if (s.getBoundingClientRect().width > s.parentElement.clientWidth + 1)
        found.push("overflow: svg " + i);
    });
    if (pageWidth && document.documentElement.scrollWidth > pageWidth + 1)
      found.push("overflow: page " + document.documentElement.scrollWidth + " px in a " + pageWidth + " px page");
    return found;
  }
  function counts() {
    return "tables=" + document.querySelectorAll("table").length + " figures=" + document.querySelectorAll("svg").length;
  }
  var onScreen = problems(window.innerWidth);
  var pre = document.createElement("pre");
  pre.id = "render-check";
  pre.textContent = onScreen.length ? onScreen.join("; ") : "ok " + counts();
  document.body.appendChild(pre);
  // The print layout's width is the page's printable width unless Chromium had to lay the page
  // out wider to shrink it onto the paper (it does so for content wider than the page): the test
  // compares the width with the paper's.
  window.matchMedia("print").addListener(function (m) {
    if (!m.matches) return;
    var width = document.documentElement.clientWidth;
    var found = problems(null);
    document.title = "render-check: " + (found.length ? found.join("; ") : "ok width=" + width + " " + counts());
  });
})();
