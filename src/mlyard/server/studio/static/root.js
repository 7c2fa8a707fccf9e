// MLflow's UI links are fragments (/#/experiments/1/runs/abc): the server never sees them, so map them here.
(function () {
  "use strict";
  var hash = window.location.hash.replace(/^#\/?/, "");
  var parts = hash.split("?")[0].split("/").filter(function (p) { return p.length; }).map(decodeURIComponent);
  var enc = encodeURIComponent;
  var target = "/studio/";
  if (parts[0] === "experiments" && parts[2] === "runs" && parts[3]) {
    target = "/studio/runs/" + enc(parts[3]);
  } else if (parts[0] === "experiments" && parts[1]) {
    target = "/studio/experiments/" + enc(parts[1]);
  } else if (parts[0] === "models" && parts[1] && parts[2] === "versions" && parts[3]) {
    target = "/studio/models/" + enc(parts[1]) + "/versions/" + enc(parts[3]);
  } else if (parts[0] === "models" && parts[1]) {
    target = "/studio/models/" + enc(parts[1]);
  } else if (parts[0] === "models") {
    target = "/studio/models";
  }
  window.location.replace(target);
})();
