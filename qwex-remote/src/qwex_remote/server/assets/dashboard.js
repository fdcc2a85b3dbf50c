// The qwex dashboard's one script (served by `qwex serve`, no other script is allowed by the
// page's Content-Security-Policy). It only ever sets text (textContent), never HTML:
// whatever a job printed or named stays text.
"use strict";

(function () {
  var POLL_MS = 1000;

  // -- statuses: the runs of a page (or the one run) change without a reload ------------

  function setStatus(el, status) {
    el.textContent = status;
    el.className = "status status-" + status;
  }

  function pollStatuses() {
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr.run-row[data-final='false']"));
    var one = document.getElementById("run-status");
    var ids = rows.map(function (r) { return r.dataset.id; });
    if (one && one.dataset.final === "false") ids.push(one.dataset.id);
    if (!ids.length) return;
    var query = ids.map(function (id) { return "id=" + encodeURIComponent(id); }).join("&");
    fetch("/runs.json?" + query, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (answer.status === 401) return signedOut();
        return answer.ok ? answer.json() : null;
      })
      .then(function (found) {
        if (found === undefined) return; // signed out: nothing more to ask
        if (found) update(rows, one, found);
        window.setTimeout(pollStatuses, POLL_MS);
      })
      .catch(function () { window.setTimeout(pollStatuses, POLL_MS * 3); });
  }

  // The session ended (signed out elsewhere, expired, its token revoked): say so, stop asking.
  function signedOut() {
    var note = document.getElementById("signed-out");
    if (note) note.hidden = false;
    return undefined;
  }

  function update(rows, one, found) {
    rows.forEach(function (row) {
      var now = found[row.dataset.id];
      if (!now) return;
      row.querySelectorAll("[data-field]").forEach(function (cell) {
        var key = cell.dataset.field;
        if (key === "status") setStatus(cell, now.status);
        else if (key in now) cell.textContent = now[key];
      });
      if (now.final) row.dataset.final = "true";
    });
    if (one && found[one.dataset.id]) {
      var run = found[one.dataset.id];
      if (run.status !== one.textContent) refreshTimeline();
      setStatus(one, run.status);
      document.getElementById("run-reason").textContent = run.reason;
      var asked = document.getElementById("run-cancel-requested");
      if (asked) asked.hidden = !(run.cancel_requested && !run.final);
      if (run.final) {
        one.dataset.final = "true";
        var form = document.getElementById("cancel-form");
        if (form) form.hidden = true;
      }
    }
  }

  // The run's history, drawn again from the server's when its status changed.
  function refreshTimeline() {
    var list = document.getElementById("timeline");
    if (!list || !list.dataset.source) return;
    fetch(list.dataset.source, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (steps) {
        if (!steps) return;
        var items = steps.map(function (step) {
          var li = document.createElement("li");
          var badge = document.createElement("span");
          setStatus(badge, step.status);
          var at = document.createElement("time");
          at.textContent = step.at;
          li.append(badge, " ", at);
          if (step.reason) {
            var why = document.createElement("span");
            why.className = "reason";
            why.textContent = step.reason;
            li.append(" ", why);
          }
          return li;
        });
        list.replaceChildren.apply(list, items);
      })
      .catch(function () {});
  }

  // -- the log: both streams, in the order the job wrote them -----------------------------
  //
  // The follow stream sends the run's write-order index (24-byte records: time, offset,
  // length, stream) beside the bytes of stdout and stderr. A piece is shown once its bytes
  // and its index record are both here, in the index's order. Bytes no record names after
  // HOLD_MS (a run without an index) are shown as they came.

  var HOLD_MS = 250;
  var NAMES = { 1: "stdout", 2: "stderr" };

  var MAX_CHARS = 2000000; // on the page at most: older output leaves it (the downloads keep it)

  function Log(pre, from) {
    this.pre = pre;
    this.chars = 0;
    this.index = new Uint8Array(0);
    this.records = [];
    this.streams = {};
    ["stdout", "stderr"].forEach(function (name) {
      this.streams[name] = {
        shown: from[name], // bytes of the stream on the page (or skipped)
        start: from[name], // offset of bytes[0]
        bytes: new Uint8Array(0), // received, not shown yet
        since: 0, // when the oldest of them came
        decoder: new TextDecoder("utf-8"),
      };
    }, this);
  }

  function concat(a, b) {
    var out = new Uint8Array(a.length + b.length);
    out.set(a, 0);
    out.set(b, a.length);
    return out;
  }

  function decode64(text) {
    var raw = atob(text);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  Log.prototype.received = function (chunk) {
    var data = decode64(chunk.data_b64);
    if (chunk.stream === "index") {
      this.index = concat(this.index, data);
      var whole = this.index.length - (this.index.length % 24);
      var view = new DataView(this.index.buffer, 0, whole);
      for (var at = 0; at < whole; at += 24) {
        this.records.push({
          offset: Number(view.getBigUint64(at + 8, true)),
          length: view.getUint32(at + 16, true),
          stream: NAMES[view.getUint32(at + 20, true)],
        });
      }
      this.index = this.index.slice(whole);
    } else {
      var s = this.streams[chunk.stream];
      if (!s) return;
      var end = s.start + s.bytes.length;
      if (chunk.offset > end || chunk.next_offset <= end) return; // a gap or bytes seen before
      if (!s.bytes.length) s.since = Date.now();
      s.bytes = concat(s.bytes, data.slice(end - chunk.offset));
    }
    this.drain(false);
  };

  Log.prototype.show = function (name, upTo) {
    var s = this.streams[name];
    var count = Math.min(upTo, s.start + s.bytes.length) - s.shown;
    if (count <= 0) return;
    var skip = s.shown - s.start;
    var text = s.decoder.decode(s.bytes.slice(skip, skip + count), { stream: true });
    s.shown += count;
    s.bytes = s.bytes.slice(skip + count);
    s.start = s.shown;
    s.since = Date.now();
    if (!text) return;
    var stick = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
    var last = this.pre.lastChild;
    if (last && last.className === name) last.appendChild(document.createTextNode(text));
    else {
      var span = document.createElement("span");
      span.className = name;
      span.textContent = text;
      this.pre.appendChild(span);
    }
    this.chars += text.length;
    while (this.chars > MAX_CHARS && this.pre.firstChild !== this.pre.lastChild) {
      this.chars -= this.pre.firstChild.textContent.length;
      this.pre.removeChild(this.pre.firstChild);
    }
    if (stick) this.pre.scrollTop = this.pre.scrollHeight;
  };

  Log.prototype.drain = function (all) {
    while (this.records.length) {
      var r = this.records[0];
      var s = this.streams[r.stream];
      if (s && s.start + s.bytes.length < r.offset + r.length) break; // its bytes are to come
      this.records.shift();
      if (s) this.show(r.stream, r.offset + r.length);
    }
    var now = Date.now();
    for (var name in this.streams) {
      var held = this.streams[name];
      if (held.bytes.length && (all || now - held.since >= HOLD_MS)) {
        this.show(name, held.start + held.bytes.length);
      }
    }
  };

  function followLog(pre) {
    var from = {
      stdout: Number(pre.dataset.stdoutFrom || 0),
      stderr: Number(pre.dataset.stderrFrom || 0),
    };
    var log = new Log(pre, from);
    var state = document.getElementById("log-state");
    var query = "?index_offset=0&stdout_offset=" + from.stdout + "&stderr_offset=" + from.stderr;
    var source = new EventSource(pre.dataset.follow + query);
    var timer = window.setInterval(function () { log.drain(false); }, HOLD_MS);
    source.addEventListener("log", function (event) { log.received(JSON.parse(event.data)); });
    source.addEventListener("end", function (event) {
      source.close();
      window.clearInterval(timer);
      log.drain(true);
      var end = JSON.parse(event.data);
      var one = document.getElementById("run-status");
      if (one) {
        if (end.status !== one.textContent) refreshTimeline();
        setStatus(one, end.status);
        one.dataset.final = "true";
        document.getElementById("run-reason").textContent = end.reason || "";
        var form = document.getElementById("cancel-form");
        if (form) form.hidden = true;
      }
      if (state) state.textContent = "The run ended: " + end.status + (end.reason ? " (" + end.reason + ")" : "") + ".";
    });
    source.addEventListener("shutdown", function () {
      source.close();
      if (state) state.textContent = "The server is restarting: reload the page to follow on.";
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED && state) {
        state.textContent = "The log stream closed: reload the page to follow on.";
      }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    window.setTimeout(pollStatuses, POLL_MS);
    var pre = document.getElementById("log");
    if (pre && pre.dataset.follow) followLog(pre);
  });
})();
