// The event live page: poll live.json and update the figures and participation rows in
// place. The page is complete without this script; it only keeps it fresh.
(function () {
  "use strict";
  var root = document.getElementById("live-event");
  if (!root || root.dataset.final === "true") { return; }
  var url = root.dataset.liveUrl;
  var every = (parseInt(root.dataset.pollSeconds, 10) || 5) * 1000;
  var table = document.querySelector("#live-participations tbody");
  var BADGES = {
    ok: ["scheduled", "acknowledged", "delivered", "sent"],
    warn: ["active", "draft", "pending", "unavailable", "queued", "sending"],
    bad: ["cancelled", "opted_out", "no_response", "failed"]
  };

  function badge(status, label) {
    var span = document.createElement("span");
    span.className = "badge";
    Object.keys(BADGES).forEach(function (tone) {
      if (BADGES[tone].indexOf(status) >= 0) { span.className += " " + tone; }
    });
    span.textContent = label;
    return span;
  }

  function setText(key, value) {
    document.querySelectorAll('[data-live="' + key + '"]').forEach(function (node) {
      if (node.textContent !== String(value)) { node.textContent = value; }
    });
  }

  function list(items, render, empty) {
    var ul = document.createElement("ul");
    if (!items.length) {
      var li = document.createElement("li");
      li.className = "muted";
      li.textContent = empty;
      ul.appendChild(li);
    }
    items.forEach(function (item) { ul.appendChild(render(item)); });
    return ul;
  }

  function methodItem(method) {
    var li = document.createElement("li");
    li.appendChild(document.createTextNode(method.method + " " + method.address + ": " + method.kind_label + " "));
    li.appendChild(badge(method.status, method.status_label));
    if (method.error) {
      var error = document.createElement("span");
      error.className = "muted";
      error.textContent = " " + method.error;
      li.appendChild(error);
    }
    return li;
  }

  function stepItem(step) {
    var li = document.createElement("li");
    li.textContent = "Level " + step.level + ": " + step.target + " (" + step.reason + ")" + (step.user ? " · " + step.user : "");
    return li;
  }

  function fill(cell, child) {
    cell.replaceChildren(child);
  }

  function newRow(row) {
    var tr = document.createElement("tr");
    tr.dataset.participation = row.id;
    var site = document.createElement("td");
    site.textContent = row.site;
    var organization = document.createElement("div");
    organization.className = "muted";
    organization.textContent = row.organization;
    site.appendChild(organization);
    var kw = document.createElement("td");
    kw.className = "num";
    kw.textContent = row.committed_kw;
    tr.appendChild(site);
    tr.appendChild(kw);
    ["answer", "methods", "escalations"].forEach(function (name) {
      var td = document.createElement("td");
      td.dataset.cell = name;
      tr.appendChild(td);
    });
    return tr;
  }

  function updateRow(tr, row) {
    var answer = document.createDocumentFragment();
    answer.appendChild(badge(row.status, row.status_label));
    if (row.answered_via) {
      var via = document.createElement("div");
      via.className = "muted";
      via.textContent = "via " + row.answered_via;
      answer.appendChild(via);
    }
    fill(tr.querySelector('[data-cell="answer"]'), answer);
    fill(tr.querySelector('[data-cell="methods"]'), list(row.methods, methodItem, "No message yet"));
    fill(tr.querySelector('[data-cell="escalations"]'), list(row.escalations, stepItem, "None"));
  }

  function apply(data) {
    var status = document.querySelector('[data-live="event-status"]');
    if (status) {
      var fresh = badge(data.event.status, data.event.status_label);
      fresh.dataset.live = "event-status";
      status.replaceWith(fresh);
    }
    setText("modification_number", data.event.modification_number);
    Object.keys(data.totals).forEach(function (key) { setText(key, data.totals[key]); });
    Object.keys(data.participation_counts).forEach(function (key) { setText("p-" + key, data.participation_counts[key]); });
    Object.keys(data.notification_counts).forEach(function (key) { setText("n-" + key, data.notification_counts[key]); });
    var seen = {};
    data.participations.forEach(function (row) {
      seen[row.id] = true;
      var tr = table.querySelector('tr[data-participation="' + row.id + '"]');
      if (!tr) { tr = table.appendChild(newRow(row)); }
      updateRow(tr, row);
    });
    table.querySelectorAll("tr").forEach(function (tr) {
      if (tr.hasAttribute("data-empty") ? data.participations.length : !seen[tr.dataset.participation]) { tr.remove(); }
    });
    var stamp = document.getElementById("live-updated");
    if (stamp) { stamp.textContent = "· updated " + new Date().toLocaleTimeString([], {timeZone: root.dataset.timeZone}); }
    return data.event.final;
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) { if (!apply(data)) { window.setTimeout(poll, every); } })
      .catch(function () { window.setTimeout(poll, every * 3); });
  }

  window.setTimeout(poll, every);
})();
