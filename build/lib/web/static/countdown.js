// Progressive enhancement: keep deadline countdowns current without a reload.
(function () {
  function text(due) {
    var s = Math.round((due - Date.now()) / 1000), late = s < 0;
    s = Math.abs(s);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    var t = d ? d + "d " + h + "h" : h + "h " + m + "m";
    return late ? "overdue by " + t : t + " left";
  }
  function tick() {
    document.querySelectorAll(".countdown[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (!isNaN(due)) { el.textContent = text(due); el.classList.toggle("late", due < Date.now()); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 30000); });
})();
