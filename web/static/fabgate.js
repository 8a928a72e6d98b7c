// FabGate pages: forms and buttons that call the JSON API, lab-time helpers
// and the live event stream. Pages hold no inline script; everything a page
// needs is declared with data- attributes.
//
//   <form data-api="POST /api/v1/bookings" data-next="/bookings" data-done="Saved">
//     controls with name= become JSON fields; data-type on a control:
//     int, cents (a euro amount → integer cents), bool (checkbox), list
//     (comma-separated), lab-time (a datetime-local in the lab's zone → RFC
//     3339), date-end (a date whose end of day in the lab's zone), json;
//     empty controls are left out unless data-keep-empty.
//   <button data-api="POST /api/v1/sessions/42/end" data-body='{"x":1}'
//     data-confirm="End this session?" data-next="/staff">
//
// An error answer (application/problem+json) is shown next to the field it
// names (problem.field → [data-error-for=field]) or at the form's
// [data-form-error]; what the user typed stays.
(function () {
  'use strict';
  var body = document.body;
  var FG = window.FabGate = {};

  FG.lang = body.dataset.lang || 'en';
  FG.tz = body.dataset.tz || 'UTC';
  FG.csrf = function () {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : '';
  };

  // api sends one request to the JSON API and resolves to
  // {ok, status, data} where data is the decoded answer (a problem on error).
  FG.api = function (method, url, payload) {
    var init = {method: method, credentials: 'same-origin', headers: {'Accept': 'application/json'}};
    if (method !== 'GET' && method !== 'HEAD') {
      init.headers['X-CSRF-Token'] = FG.csrf();
    }
    if (payload !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(payload);
    }
    return fetch(url, init).then(function (res) {
      var type = res.headers.get('Content-Type') || '';
      if (res.status === 204 || type.indexOf('json') < 0) {
        return {ok: res.ok, status: res.status, data: null};
      }
      return res.json().then(function (data) {
        return {ok: res.ok, status: res.status, data: data};
      });
    }, function () {
      return {ok: false, status: 0, data: {detail: body.dataset.msgNetwork, code: 'network'}};
    });
  };

  // ---- lab time ----

  // zoneOffset is the offset (ms) of the lab's zone from UTC at instant ms.
  function zoneOffset(ms, tz) {
    var parts = {};
    new Intl.DateTimeFormat('en-US', {
      timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit'
    }).formatToParts(new Date(ms)).forEach(function (p) { parts[p.type] = p.value; });
    var wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute, +parts.second);
    return wall - Math.floor(ms / 1000) * 1000;
  }

  // labToDate reads a wall-clock time of the lab ("2026-12-02T14:30" or
  // with seconds) as an instant.
  FG.labToDate = function (wall, tz) {
    tz = tz || FG.tz;
    var m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?/.exec(wall);
    if (!m) { return null; }
    var guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
    var t = guess - zoneOffset(guess, tz);
    // Once more, for a time near a change of offset.
    t = guess - zoneOffset(t, tz);
    return new Date(t);
  };

  // labToISO is labToDate as RFC 3339 (UTC).
  FG.labToISO = function (wall, tz) {
    var d = FG.labToDate(wall, tz);
    return d ? d.toISOString().replace('.000Z', 'Z') : '';
  };

  // dateToLab writes an instant as the lab's wall-clock time "YYYY-MM-DDTHH:MM:SS".
  FG.dateToLab = function (date, tz) {
    var ms = date.getTime();
    var wall = new Date(ms + zoneOffset(ms, tz || FG.tz));
    return wall.toISOString().slice(0, 19);
  };

  // formatLab writes an instant for people, in the page's language and the lab's zone.
  FG.formatLab = function (date, opts) {
    var o = Object.assign({timeZone: FG.tz}, opts || {weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit'});
    return new Intl.DateTimeFormat(FG.lang === 'fr' ? 'fr-FR' : 'en-GB', o).format(date);
  };

  // ---- forms and buttons ----

  function fieldValue(el) {
    var type = el.dataset.type || '';
    if (type === 'bool') { return el.checked; }
    var v = el.value;
    if (v === '' && !el.hasAttribute('data-keep-empty')) { return undefined; }
    switch (type) {
      case 'int': return v === '' ? null : parseInt(v, 10);
      case 'cents': return v === '' ? null : Math.round(parseFloat(v.replace(',', '.')) * 100);
      case 'list': return v.split(',').map(function (s) { return s.trim(); }).filter(Boolean);
      case 'lab-time': return FG.labToISO(v);
      case 'date-end': return FG.labToISO(v + 'T23:59:59');
      case 'json': try { return JSON.parse(v); } catch (e) { return v; }
    }
    return v;
  }

  function collect(form) {
    var out = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled || el.type === 'submit' || el.type === 'button') { return; }
      if (el.type === 'radio' && !el.checked) { return; }
      if (el.type === 'checkbox' && el.dataset.type !== 'bool') {
        if (!el.checked) { return; }
        (out[el.name] = out[el.name] || []).push(el.value);
        return;
      }
      var v = fieldValue(el);
      if (v !== undefined) { out[el.name] = v; }
    });
    return out;
  }

  function clearErrors(scope) {
    scope.querySelectorAll('[data-error-for], [data-form-error]').forEach(function (e) { e.textContent = ''; });
    scope.querySelectorAll('[aria-invalid]').forEach(function (e) { e.removeAttribute('aria-invalid'); });
  }

  // showProblem puts a problem's words next to its field, or at the form's top.
  FG.showProblem = function (scope, problem) {
    var detail = (problem && (problem.detail || problem.title)) || body.dataset.msgNetwork;
    var field = problem && problem.field;
    var slot = field && scope.querySelector('[data-error-for="' + field + '"]');
    if (slot) {
      slot.textContent = detail;
      var input = scope.querySelector('[name="' + field + '"]');
      if (input) {
        input.setAttribute('aria-invalid', 'true');
        if (slot.id) { input.setAttribute('aria-describedby', slot.id); }
        input.focus();
      }
      return;
    }
    slot = scope.querySelector('[data-form-error]') || document.querySelector('[data-page-error]');
    if (slot) {
      slot.textContent = detail;
      if (!slot.hasAttribute('tabindex')) { slot.setAttribute('tabindex', '-1'); }
      slot.focus();
    } else {
      window.alert(detail);
    }
  };

  function status(scope, text) {
    var s = scope.querySelector('[data-form-status]') || document.querySelector('[data-page-status]');
    if (s) { s.textContent = text; }
  }

  function fill(template, data) {
    return template.replace(/\{(\w+)\}/g, function (_, k) { return data && data[k] !== undefined ? encodeURIComponent(data[k]) : ''; });
  }

  // after follows a successful answer: next page, reload, or a message.
  function after(el, res) {
    var done = el.dataset.done;
    if (el.dataset.next) {
      window.location.assign(fill(el.dataset.next, res.data));
    } else if (el.hasAttribute('data-reload')) {
      window.location.reload();
    } else {
      status(el.closest('form') || el.parentNode, done || body.dataset.msgSaved);
    }
    el.dispatchEvent(new CustomEvent('fabgate:done', {bubbles: true, detail: res.data}));
  }

  function split(spec) {
    var i = spec.indexOf(' ');
    return [spec.slice(0, i), spec.slice(i + 1)];
  }

  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (!form.matches('form[data-api]')) { return; }
    ev.preventDefault();
    var ms = split(form.dataset.api), method = ms[0], url = ms[1];
    var payload = collect(form);
    var submit = form.querySelector('[type=submit]');
    clearErrors(form);
    status(form, '');
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { return; }
    if (submit) { submit.disabled = true; }
    FG.api(method, fill(url, payload), method === 'GET' || method === 'DELETE' ? undefined : payload).then(function (res) {
      if (submit) { submit.disabled = false; }
      if (!res.ok) { FG.showProblem(form, res.data); return; }
      if (method === 'POST' && url === '/api/v1/auth/login' && res.data && res.data.csrf_token) {
        var meta = document.querySelector('meta[name="csrf-token"]');
        if (meta) { meta.content = res.data.csrf_token; }
      }
      after(form, res);
    });
  });

  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest('button[data-api]');
    if (btn) {
      ev.preventDefault();
      if (btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) { return; }
      var ms = split(btn.dataset.api);
      var payload = btn.dataset.body ? JSON.parse(btn.dataset.body) : undefined;
      var scope = btn.closest('[data-api-scope]') || btn.closest('form') || document;
      btn.disabled = true;
      FG.api(ms[0], ms[1], payload).then(function (res) {
        btn.disabled = false;
        if (!res.ok) { FG.showProblem(scope, res.data); return; }
        after(btn, res);
      });
      return;
    }
    if (ev.target.closest('[data-logout]')) {
      FG.api('POST', '/api/v1/auth/logout').then(function () { window.location.assign('/login'); });
    }
  });

  // ---- live events ----

  // live subscribes to the server's event stream (/api/v1/events) and calls
  // handler(type, data) for each event; it reconnects by itself.
  FG.live = function (handler) {
    if (!window.EventSource) { return null; }
    var es = new EventSource('/api/v1/events');
    ['machine', 'session', 'tap', 'device', 'ack', 'alert', 'booking'].forEach(function (type) {
      es.addEventListener(type, function (e) {
        var data = null;
        try { data = JSON.parse(e.data); } catch (err) { return; }
        handler(type, data);
      });
    });
    return es;
  };
})();
