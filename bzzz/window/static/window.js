// Live updates: the server sends the page's sections, rendered, when they change; the
// page works without this script (reload to update).
(function () {
  var live = document.getElementById("live");
  var task = document.body.getAttribute("data-task");
  var query = new URLSearchParams(window.location.search);
  if (task) { query.set("task", task); query.delete("id"); }
  var source = new EventSource("events?" + query.toString());
  source.onmessage = function (event) {
    var sections = JSON.parse(event.data);
    Object.keys(sections).forEach(function (id) {
      var element = document.getElementById(id);
      if (element) { element.innerHTML = sections[id]; }
    });
    live.textContent = "live, updated " + new Date().toLocaleTimeString();
  };
  source.onerror = function () { live.textContent = "reconnecting…"; };
})();
