// Loaded last by tests/reports/html_render_test.sh into a copy of a report: writes what it finds
// into <pre id="render-check"> for `chromium --dump-dom` ("ok tables=N figures=M" when clean).
(function () {
  var problems = (window.__errors || []).map(function (m) { return "error: " + m; });
  var tables = document.querySelectorAll("table");
  tables.forEach(function (t, i) {
    var box = t.parentElement;
    var name = t.id || "table " + i;
    if (t.getBoundingClientRect().width > box.clientWidth + 1 || box.scrollWidth > box.clientWidth + 1)
      problems.push("overflow: " + name + " " + Math.round(t.getBoundingClientRect().width) + " px in " + box.clientWidth + " px");
  });
  var figures = document.querySelectorAll("svg");
  figures.forEach(function (s, i) {
    if (s.getBoundingClientRect().width > s.parentElement.clientWidth + 1)
      problems.push("overflow: svg " + i);
  });
  if (document.documentElement.scrollWidth > window.innerWidth + 1)
    problems.push("overflow: page " + document.documentElement.scrollWidth + " px in a " + window.innerWidth + " px window");
  var pre = document.createElement("pre");
  pre.id = "render-check";
  pre.textContent = problems.length ? problems.join("; ") : "ok tables=" + tables.length + " figures=" + figures.length;
  document.body.appendChild(pre);
})();
