// FabGate admin and machine-settings pages: forms whose JSON body has
// nested objects and lists (booking rules, prices per tariff group, opening
// hours, closures, maintenance blocks, tariff groups), and the device
// registration whose secret is shown once.
//
//   <form data-admin-api="PATCH /api/v1/machines/3" data-reload>
//     name="rules.slot_minutes" data-type="int"  → {"rules": {"slot_minutes": 30}}
//     <div data-list="closures"> rows [data-row] with controls named by
//       data-field="from" → {"closures": [{"from": …}, …]} (a row whose
//       controls are all empty is left out; an empty list is sent as [])
//       <template data-row-template> is the row [data-add-row] adds;
//       [data-remove-row] removes its row.
//     name="required_trainings" type=checkbox data-type="set" → always a list
//     data-if-empty='{"unbind":true}' on a control: sent instead of it when empty
//     data-keep-empty on a control: an empty value is sent as ""
//     <fieldset data-object="prices">: sent as {} even when all its controls are empty
//
// Every change still goes through the JSON API with the session cookie and
// the CSRF header (FabGate.api), and a refusal is shown next to the field the
// problem names (FabGate.showProblem): no rule lives here.
(function () {
  'use strict';
  var FG = window.FabGate;
  if (!FG) { return; }

  function convert(el) {
    var type = el.dataset.type || '';
    if (type === 'bool') { return el.checked; }
    var v = el.value.trim();
    if (v === '') { return el.hasAttribute('data-keep-empty') ? '' : undefined; }
    switch (type) {
      case 'int': return parseInt(v, 10);
      case 'float': return parseFloat(v.replace(',', '.'));
      case 'cents': return Math.round(parseFloat(v.replace(',', '.')) * 100);
      case 'percent-bp': return Math.round(parseFloat(v.replace(',', '.')) * 100);
      case 'lab-time': return FG.labToISO(v);
    }
    return v;
  }

  function put(obj, path, value) {
    var keys = path.split('.');
    for (var i = 0; i < keys.length - 1; i++) {
      if (typeof obj[keys[i]] !== 'object' || obj[keys[i]] === null) { obj[keys[i]] = {}; }
      obj = obj[keys[i]];
    }
    obj[keys[keys.length - 1]] = value;
  }

  function rowValue(row) {
    var out = {}, any = false;
    row.querySelectorAll('[data-field]').forEach(function (el) {
      if (el.matches(':disabled')) { return; }
      var v = convert(el);
      if (v !== undefined && !(el.dataset.type === 'bool' && v === false)) { any = true; }
      if (v !== undefined) { out[el.dataset.field] = v; }
    });
    return any ? out : null;
  }

  // collect builds the request body of form.
  FG.collectNested = function (form) {
    var out = {};
    // An object whose every control is empty is still sent (as {}): no
    // price for any tariff group is a choice too.
    form.querySelectorAll('[data-object]').forEach(function (el) {
      if (!el.matches(':disabled')) { put(out, el.dataset.object, {}); }
    });
    Array.prototype.forEach.call(form.elements, function (el) {
      // :disabled also covers the controls of a disabled fieldset (fields
      // shown read-only to staff), which el.disabled does not.
      if (!el.name || el.matches(':disabled') || el.type === 'submit' || el.type === 'button') { return; }
      if (el.closest('[data-row]')) { return; }
      if (el.type === 'checkbox' && el.dataset.type === 'set') {
        var list = out[el.name] || (out[el.name] = []);
        if (el.checked) { list.push(el.value); }
        return;
      }
      if (el.type === 'radio' && !el.checked) { return; }
      var v = convert(el);
      if (v === undefined && el.dataset.ifEmpty) {
        var extra = JSON.parse(el.dataset.ifEmpty);
        Object.keys(extra).forEach(function (k) { put(out, k, extra[k]); });
        return;
      }
      if (v !== undefined) { put(out, el.name, v); }
    });
    form.querySelectorAll('[data-list]').forEach(function (list) {
      if (list.hasAttribute('data-disabled')) { return; }
      var rows = [];
      list.querySelectorAll('[data-row]').forEach(function (row) {
        if (row.closest('[data-list]') !== list) { return; }
        var v = rowValue(row);
        if (v) { rows.push(v); }
      });
      put(out, list.dataset.list, rows);
    });
    return out;
  };

  function setStatus(form, text) {
    var s = form.querySelector('[data-form-status]') || document.querySelector('[data-page-status]');
    if (s) { s.textContent = text; }
  }

  function clear(form) {
    form.querySelectorAll('[data-error-for], [data-form-error]').forEach(function (e) { e.textContent = ''; });
    form.querySelectorAll('[aria-invalid]').forEach(function (e) { e.removeAttribute('aria-invalid'); });
  }

  function fill(template, data) {
    return template.replace(/\{(\w+)\}/g, function (_, k) { return data && data[k] !== undefined ? encodeURIComponent(data[k]) : ''; });
  }

  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (!form.matches('form[data-admin-api]')) { return; }
    ev.preventDefault();
    var spec = form.dataset.adminApi, i = spec.indexOf(' ');
    var method = spec.slice(0, i), url = spec.slice(i + 1);
    var payload = FG.collectNested(form);
    clear(form);
    setStatus(form, '');
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { return; }
    var submit = form.querySelector('[type=submit]');
    if (submit) { submit.disabled = true; }
    FG.api(method, fill(url, payload), payload).then(function (res) {
      if (submit) { submit.disabled = false; }
      if (!res.ok) { FG.showProblem(form, res.data); return; }
      form.dispatchEvent(new CustomEvent('fabgate:saved', {bubbles: true, detail: res.data}));
      if (form.dataset.next) {
        window.location.assign(fill(form.dataset.next, res.data));
      } else if (form.hasAttribute('data-reload')) {
        window.location.reload();
      } else {
        setStatus(form, form.dataset.done || document.body.dataset.msgSaved);
      }
    });
  });

  document.addEventListener('click', function (ev) {
    var add = ev.target.closest('[data-add-row]');
    if (add) {
      ev.preventDefault();
      var list = document.getElementById(add.dataset.addRow);
      var tpl = list && list.querySelector('template[data-row-template]');
      if (!tpl) { return; }
      var row = tpl.content.firstElementChild.cloneNode(true);
      var into = list.querySelector('[data-rows]') || list;
      into.appendChild(row);
      var first = row.querySelector('input, select, textarea');
      if (first) { first.focus(); }
      return;
    }
    var remove = ev.target.closest('[data-remove-row]');
    if (remove) {
      ev.preventDefault();
      var r = remove.closest('[data-row]');
      var focusTo = r.closest('[data-list]');
      r.remove();
      var addBtn = focusTo && document.querySelector('[data-add-row="' + focusTo.id + '"]');
      if (addBtn) { addBtn.focus(); }
      return;
    }
    if (ev.target.closest('[data-print]')) {
      ev.preventDefault();
      window.print();
      return;
    }
    var copy = ev.target.closest('[data-copy]');
    if (copy) {
      ev.preventDefault();
      var src = document.getElementById(copy.dataset.copy);
      if (!src) { return; }
      var text = src.textContent;
      var done = function () { copy.textContent = copy.dataset.copied || copy.textContent; };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () { selectText(src); });
      } else {
        selectText(src);
      }
    }
  });

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // ---- devices: live connection and relay state ----

  var devices = document.querySelector('[data-live-devices]');
  if (devices && FG.live) {
    var dm = devices.dataset;
    // The stream sends {type, at, data}; data holds the device's news.
    FG.adminLive = FG.live(function (type, ev) {
      var data = ev && ev.data && typeof ev.data === 'object' ? ev.data : ev;
      if (type !== 'device' || !data || !data.device_id) { return; }
      var row = devices.querySelector('tr[data-device="' + CSS.escape(data.device_id) + '"]');
      if (!row) { return; }
      if (typeof data.online === 'boolean') {
        var badge = row.querySelector('[data-online]');
        badge.textContent = data.online ? dm.msgOnline : dm.msgOffline;
        badge.className = 'badge ' + (data.online ? 'state-available' : 'state-offline');
        badge.dataset.online = String(data.online);
        if (data.online) {
          var seen = row.querySelector('[data-last-seen]');
          var now = ev.at ? new Date(ev.at) : new Date();
          seen.textContent = '';
          var time = document.createElement('time');
          time.setAttribute('datetime', now.toISOString());
          time.textContent = FG.formatLab(now);
          seen.appendChild(time);
        }
      }
      if (data.relay) {
        row.querySelector('[data-relay]').textContent = data.relay === 'on' ? dm.msgRelayOn : data.relay === 'off' ? dm.msgRelayOff : data.relay;
      }
    });
  }

  // ---- device credentials, shown once ----

  // bridgeConfig is the bridge configuration file of one device
  // (docs/hardware.md), with its secret and keys inline. An ssl:// broker
  // names the lab's CA where docs/deploy.md has it copied to each bridge.
  function bridgeConfig(panel, d) {
    var broker = {url: panel.dataset.broker};
    if (/^ssl:\/\//.test(broker.url)) {
      broker.ca_file = '/etc/fabgate-bridge/ca.pem';
    }
    var cfg = {
      broker: broker,
      badge_key: d.badge_key,
      devices: [{
        id: d.id,
        secret: d.mqtt_secret,
        allowlist_key: d.allowlist_key,
        allowlist_key_id: d.allowlist_key_id,
        reader: {kind: 'evdev', path: '/dev/input/by-id/…'},
        relay: {kind: 'gpio', chip: 'gpiochip0', line: 17}
      }]
    };
    if (panel.dataset.prefix && panel.dataset.prefix !== 'fabgate/v1') {
      cfg = Object.assign({prefix: panel.dataset.prefix}, cfg);
    }
    return JSON.stringify(cfg, null, 2);
  }

  document.addEventListener('fabgate:saved', function (ev) {
    var form = ev.target;
    if (!form.hasAttribute('data-shows-secret')) { return; }
    var d = ev.detail || {};
    var panel = document.getElementById('secret-panel');
    if (!panel || !d.mqtt_secret) { return; }
    panel.querySelector('[data-v="id"]').textContent = d.id;
    panel.querySelector('[data-v="username"]').textContent = d.mqtt_username;
    panel.querySelector('[data-v="secret"]').textContent = d.mqtt_secret;
    panel.querySelector('[data-v="badge_key"]').textContent = d.badge_key;
    panel.querySelector('[data-v="allowlist_key"]').textContent = d.allowlist_key + ' (' + d.allowlist_key_id + ')';
    panel.querySelector('[data-v="config"]').textContent = bridgeConfig(panel, d);
    panel.hidden = false;
    var h = panel.querySelector('h2');
    if (h) { h.setAttribute('tabindex', '-1'); h.focus(); }
  });
})();
