// The staff dashboard: follows the live event stream (machines turning in
// use and back, sessions, devices going offline, refused taps, unknown
// badges), enrols an unknown badge to a member and, in the demo, taps a
// badge on a machine. Every change goes through the JSON API.
(function () {
  'use strict';
  var FG = window.FabGate;
  if (!FG) { return; }
  var machines = document.querySelector('[data-live-machines]');
  var names = {}; // member id -> name (from the API, once)

  function memberName(id) {
    if (!id) { return Promise.resolve(''); }
    if (names[id] !== undefined) { return Promise.resolve(names[id]); }
    return FG.api('GET', '/api/v1/members/' + encodeURIComponent(id)).then(function (res) {
      var n = res.ok && res.data ? res.data.name : '';
      names[id] = n;
      return n;
    });
  }

  function card(machineID) {
    return machines ? machines.querySelector('[data-machine="' + machineID + '"]') : null;
  }

  function labelFor(state) {
    var k = {available: 'labelAvailable', in_use: 'labelInUse', maintenance: 'labelMaintenance', offline: 'labelOffline'}[state];
    return (k && machines.dataset[k]) || state;
  }

  function setState(el, state, who) {
    if (!el) { return; }
    el.dataset.state = state;
    var badge = el.querySelector('[data-state-label]');
    badge.className = 'badge state-' + state;
    badge.textContent = labelFor(state);
    var user = el.querySelector('[data-user]');
    user.textContent = who ? machines.dataset.msgBy + ' ' + who : '';
  }

  function timeText(iso) {
    return FG.formatLab(new Date(iso), {hour: '2-digit', minute: '2-digit'});
  }

  function setTime(el, iso) {
    el.setAttribute('datetime', iso);
    el.textContent = timeText(iso);
  }

  function toggleEmpty(sel, list) {
    var empty = document.querySelector(sel);
    if (empty) { empty.hidden = list.children.length > 0; }
  }

  // ---- sessions ----

  var sessionRows = document.querySelector('[data-sessions] tbody');

  function sessionOpened(s) {
    var el = card(s.machine_id);
    memberName(s.member_id).then(function (who) {
      setState(el, 'in_use', who);
      if (!sessionRows || sessionRows.querySelector('[data-session="' + s.id + '"]')) { return; }
      var row = document.getElementById('tpl-session').content.firstElementChild.cloneNode(true);
      row.dataset.session = s.id;
      row.dataset.machine = s.machine_id;
      row.querySelector('[data-f="machine"]').textContent = el ? el.dataset.machineName : s.device_id;
      var a = row.querySelector('[data-f="member"]');
      a.textContent = who;
      a.href = '/staff/members/' + encodeURIComponent(s.member_id);
      setTime(row.querySelector('[data-f="started"]'), s.started);
      setTime(row.querySelector('[data-f="until"]'), s.until);
      row.querySelector('[data-end-session]').dataset.api = 'POST /api/v1/sessions/' + encodeURIComponent(s.id) + '/end';
      sessionRows.appendChild(row);
      toggleEmpty('[data-empty-sessions]', sessionRows);
    });
  }

  function sessionEnded(s) {
    var el = card(s.machine_id);
    if (el && (el.dataset.state === 'in_use')) {
      setState(el, el.dataset.baseState || 'available', '');
    }
    if (sessionRows) {
      var row = sessionRows.querySelector('[data-session="' + s.id + '"]');
      if (row) { row.remove(); }
      toggleEmpty('[data-empty-sessions]', sessionRows);
    }
  }

  function session(s) {
    if (!s || !s.id) { return; }
    if (s.ended) { sessionEnded(s); } else { sessionOpened(s); }
  }

  // An ended session answers the End button: the page changes at once,
  // whether or not the event stream brings the news too.
  document.addEventListener('fabgate:done', function (ev) {
    if (ev.target.matches && ev.target.matches('[data-end-session]')) { session(ev.detail); }
  });

  // ---- devices ----

  function device(d) {
    if (!d || !d.device_id || d.online === undefined || !machines) { return; }
    machines.querySelectorAll('[data-device="' + d.device_id + '"]').forEach(function (el) {
      if (el.dataset.baseState === 'maintenance') { return; }
      el.dataset.baseState = d.online ? 'available' : 'offline';
      if (el.dataset.state !== 'in_use') { setState(el, el.dataset.baseState, ''); }
    });
    var list = document.querySelector('[data-offline]');
    if (!list) { return; }
    var li = list.querySelector('[data-offline-device="' + d.device_id + '"]');
    if (d.online && li) { li.remove(); }
    if (!d.online && !li) {
      li = document.createElement('li');
      li.dataset.offlineDevice = d.device_id;
      var b = document.createElement('strong');
      b.textContent = d.device_id;
      li.appendChild(b);
      list.appendChild(li);
    }
    toggleEmpty('[data-empty-offline]', list);
  }

  // ---- refused taps and unknown badges ----

  function reasonText(code) {
    var t = document.getElementById('tpl-reasons');
    var s = t && t.content.querySelector('[data-code="' + code + '"]');
    return s ? s.textContent : code;
  }

  var denied = document.querySelector('[data-denied] tbody');

  function tap(ev) {
    if (!ev || ev.action !== 'denied' || !denied) { return; }
    var row = document.getElementById('tpl-denied').content.firstElementChild.cloneNode(true);
    setTime(row.querySelector('[data-f="at"]'), ev.at);
    var el = card(ev.machine_id);
    row.querySelector('[data-f="machine"]').textContent = el ? el.dataset.machineName : (ev.device_id || '');
    row.querySelector('[data-f="reason"]').textContent = reasonText(ev.reason);
    memberName(ev.member_id).then(function (who) {
      row.querySelector('[data-f="member"]').textContent = who || reasonText('unknown-member');
    });
    denied.insertBefore(row, denied.firstChild);
    while (denied.children.length > 20) { denied.lastElementChild.remove(); }
    toggleEmpty('[data-empty-denied]', denied);
    if (ev.reason === 'unknown_badge' && ev.detail && ev.detail.badge) {
      unknownBadge(ev.detail.badge, ev.at, el ? el.dataset.machineName : ev.device_id);
    }
  }

  var unknownList = document.querySelector('[data-unknown]');
  var fresh = 0;

  function unknownBadge(hash, at, where) {
    if (!unknownList) { return; }
    var old = unknownList.querySelector('[data-unknown-hash="' + hash + '"]');
    if (old) { old.remove(); }
    var li = document.getElementById('tpl-unknown').content.firstElementChild.cloneNode(true);
    fresh++;
    li.dataset.unknownHash = hash;
    li.querySelector('[data-enrol]').dataset.hash = hash;
    li.querySelector('[data-f="where"]').textContent = where || '';
    setTime(li.querySelector('[data-f="at"]'), at);
    // Unique ids for the labels of the new form.
    li.querySelectorAll('[id]').forEach(function (e) {
      var lab = li.querySelector('label[for="' + e.id + '"]');
      e.id = e.id.replace('NEW', 'n' + fresh);
      if (lab) { lab.htmlFor = e.id; }
    });
    unknownList.insertBefore(li, unknownList.firstChild);
    toggleEmpty('[data-empty-unknown]', unknownList);
  }

  // A search fills the member list of its form from GET /api/v1/members?q=.
  var searchTimer = null;
  document.addEventListener('input', function (ev) {
    var input = ev.target;
    if (!input.matches('[data-member-search]')) { return; }
    var select = input.form.querySelector('[data-member-select]');
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      FG.api('GET', '/api/v1/members?limit=50&q=' + encodeURIComponent(input.value)).then(function (res) {
        if (!res.ok || !res.data) { return; }
        var first = select.options[0];
        select.textContent = '';
        select.appendChild(first);
        res.data.items.forEach(function (m) {
          var o = document.createElement('option');
          o.value = m.id;
          o.textContent = m.name + ' (' + m.email + ')';
          select.appendChild(o);
        });
        if (res.data.items.length === 1) { select.value = res.data.items[0].id; }
      });
    }, 200);
  });

  function clear(form) {
    form.querySelectorAll('[data-error-for], [data-form-error], [data-form-status]').forEach(function (e) { e.textContent = ''; });
  }

  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (form.matches('[data-enrol]')) {
      ev.preventDefault();
      clear(form);
      var member = form.querySelector('[data-member-select]').value;
      if (!member) {
        FG.showProblem(form, {field: 'member_id', detail: form.querySelector('[data-member-select]').options[0].textContent});
        return;
      }
      var btn = form.querySelector('[type=submit]');
      btn.disabled = true;
      FG.api('POST', '/api/v1/members/' + encodeURIComponent(member) + '/badges', {hash: form.dataset.hash}).then(function (res) {
        btn.disabled = false;
        if (!res.ok) { FG.showProblem(form, res.data); return; }
        var li = form.closest('[data-unknown-hash]');
        var status = document.querySelector('[data-page-status]');
        if (status) { status.textContent = form.dataset.done; }
        if (li) { li.remove(); }
        toggleEmpty('[data-empty-unknown]', unknownList);
      });
      return;
    }
    if (form.matches('[data-demo-tap]')) {
      ev.preventDefault();
      clear(form);
      var uid = form.elements.uid.value, dev = form.elements.device.value;
      var submit = form.querySelector('[type=submit]');
      submit.disabled = true;
      FG.api('POST', '/api/v1/devices/' + encodeURIComponent(dev) + '/tap', {uid: uid}).then(function (res) {
        submit.disabled = false;
        if (!res.ok) { FG.showProblem(form, res.data); return; }
        var r = res.data, key = {grant: 'msgGrant', deny: 'msgDeny', tap_out: 'msgTapOut', force_close: 'msgForceClose'}[r.decision];
        var text = (key && form.dataset[key]) || r.decision;
        if (r.decision === 'deny') { text += ' ' + reasonText(r.reason); }
        form.querySelector('[data-form-status]').textContent = text;
      });
    }
  });

  // ---- the stream ----

  var liveStatus = document.querySelector('[data-live-status]');
  // Without a live stream on the server, the page shows the moment it was loaded.
  var es = liveStatus && liveStatus.hasAttribute('data-live') && FG.live(function (type, data) {
    var d = data && data.data !== undefined ? data.data : data;
    if (type === 'session') { session(d); }
    if (type === 'device') { device(d); }
    if (type === 'tap') { tap(d); }
  });
  if (es && liveStatus) {
    es.addEventListener('open', function () {
      liveStatus.textContent = liveStatus.dataset.msgLive;
      document.body.dataset.live = 'on';
    });
    es.addEventListener('error', function () {
      liveStatus.textContent = liveStatus.dataset.msgLost;
      document.body.dataset.live = 'off';
    });
  }
})();
