// Find a slot: the form asks GET /api/v1/slots for the next free ranges of
// a kind of machine, for a length, within today, this week or next week
// (the ranges are computed by the server, in the lab's zone, with its
// clock), and lists them with a Book button each (POST /api/v1/bookings).
(function () {
  'use strict';
  var FG = window.FabGate;
  var form = document.querySelector('form[data-find-form]');
  var results = document.querySelector('[data-find-results]');
  if (!FG || !form || !results) { return; }
  var list = results.querySelector('[data-find-list]');
  var alertEl = results.querySelector('[data-page-error]');
  var statusEl = results.querySelector('[data-page-status]');
  var R = results.dataset;
  var searches = 0;

  function when(start, end) {
    var day = FG.formatLab(start, {weekday: 'long', day: 'numeric', month: 'long'});
    var hm = {hour: '2-digit', minute: '2-digit', hourCycle: 'h23'};
    return day + ', ' + FG.formatLab(start, hm) + '–' + FG.formatLab(end, hm);
  }
  function q(v) { return encodeURIComponent(v); }

  function search(focusResults) {
    var kind = form.elements.kind.value;
    var minutes = parseInt(form.elements.minutes.value, 10);
    var choice = form.querySelector('input[name="when"]:checked');
    alertEl.textContent = '';
    list.textContent = '';
    statusEl.textContent = R.msgSearching;
    if (!kind || !choice) { return; }
    var mine = ++searches; // an earlier search answering late is ignored
    var url = '/api/v1/slots?kind=' + q(kind) + '&minutes=' + minutes + '&from=' + q(choice.dataset.from) + '&to=' + q(choice.dataset.to) + '&limit=20';
    // Keep the search in the address, so that it can be shared or reloaded.
    if (window.history.replaceState) {
      window.history.replaceState(null, '', '/find?kind=' + q(kind) + '&minutes=' + minutes + '&when=' + q(choice.value));
    }
    FG.api('GET', url).then(function (res) {
      if (mine !== searches) { return; }
      list.textContent = '';
      statusEl.textContent = '';
      if (!res.ok) {
        alertEl.textContent = (res.data && res.data.detail) || document.body.dataset.msgNetwork;
        return;
      }
      if (!res.data.length) {
        statusEl.textContent = R.msgNone;
        return;
      }
      statusEl.textContent = R.msgCount.replace('{count}', res.data.length);
      res.data.forEach(function (s) { list.appendChild(item(s, minutes)); });
      if (focusResults) { list.querySelector('button, li').focus(); }
    });
  }

  function item(s, minutes) {
    var start = new Date(s.start), end = new Date(start.getTime() + minutes * 60000);
    var li = document.createElement('li');
    li.className = 'slot card';
    li.setAttribute('data-api-scope', '');
    var h = document.createElement('h3');
    var a = document.createElement('a');
    a.href = '/machines/' + s.machine_id;
    a.textContent = s.machine_name;
    h.appendChild(a);
    var p = document.createElement('p');
    p.textContent = when(start, end);
    li.appendChild(h);
    li.appendChild(p);
    if (s.training_required && s.training_required.length) {
      var w = document.createElement('p');
      w.className = 'warn';
      w.textContent = R.msgTraining;
      li.appendChild(w);
    }
    var btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'primary';
    btn.textContent = R.msgBook;
    btn.setAttribute('aria-label', R.msgBook + ': ' + s.machine_name + ', ' + when(start, end));
    var err = document.createElement('p');
    err.className = 'error';
    err.setAttribute('role', 'alert');
    var ok = document.createElement('p');
    ok.className = 'status';
    ok.setAttribute('role', 'status');
    btn.addEventListener('click', function () {
      btn.disabled = true;
      err.textContent = '';
      FG.api('POST', '/api/v1/bookings', {machine_id: s.machine_id, start: start.toISOString().replace('.000Z', 'Z'), end: end.toISOString().replace('.000Z', 'Z')}).then(function (res) {
        btn.disabled = false;
        if (!res.ok) {
          err.textContent = (res.data && (res.data.detail || res.data.title)) || document.body.dataset.msgNetwork;
          return;
        }
        btn.hidden = true;
        var link = document.createElement('a');
        link.href = '/bookings';
        link.textContent = R.msgBooked.replace('{machine}', s.machine_name).replace('{when}', when(start, end));
        ok.appendChild(link);
        link.focus();
      });
    });
    li.appendChild(btn);
    li.appendChild(err);
    li.appendChild(ok);
    return li;
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    search(true);
  });
  search(false);
})();
