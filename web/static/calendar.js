// The machine page: next free slots, the FullCalendar calendar and the
// plain booking form, all booking through the JSON API.
//
// Times: the calendar runs in UTC and is fed the lab's wall-clock times as
// "floating" times (a Date whose UTC fields read the lab's clock), so it
// shows the lab's hours whatever the browser's zone. Instants from the API
// are turned into lab wall times with FabGate.dateToLab, and selections back
// into instants with FabGate.labToISO.
(function () {
  'use strict';
  var FG = window.FabGate;
  var root = document.querySelector('[data-machine-page]');
  if (!root || !FG) { return; }
  var machineID = root.dataset.machine;
  var me = document.body.dataset.me || '';
  var calEl = document.querySelector('[data-calendar]');
  var D = calEl ? calEl.dataset : {};
  var alertEl = document.querySelector('[data-cal-alert]');
  var statusEl = document.querySelector('[data-cal-status]');
  var dialog = document.querySelector('[data-cal-dialog]');
  var locale = FG.lang === 'fr' ? 'fr-FR' : 'en-GB';
  var cal = null;

  // ---- time helpers ----

  function floatOf(wall) { return new Date(wall.slice(0, 16) + ':00Z'); }
  function wallOf(floating) { return floating.toISOString().slice(0, 19); }
  function floatOfInstant(iso) { return floatOf(FG.dateToLab(new Date(iso))); }
  function instantOf(floating) { return FG.labToISO(wallOf(floating)); }
  function fmt(d, opts) { return new Intl.DateTimeFormat(locale, Object.assign({timeZone: 'UTC'}, opts)).format(d); }
  // describe says a floating range for people: "Wednesday 2 December, 10:00–11:00".
  function describe(start, end) {
    var hm = {hour: '2-digit', minute: '2-digit', hourCycle: 'h23'};
    return fmt(start, {weekday: 'long', day: 'numeric', month: 'long'}) + ', ' + fmt(start, hm) + '–' + fmt(end, hm);
  }
  function q(v) { return encodeURIComponent(v); }

  // Intervals are [startMs, endMs] pairs of floating times, sorted.
  function subtract(a, b) {
    var out = [];
    a.forEach(function (iv) {
      var s = iv[0], e = iv[1];
      b.forEach(function (cut) {
        if (cut[1] <= s || cut[0] >= e) { return; }
        if (cut[0] > s) { out.push([s, cut[0]]); }
        s = Math.max(s, cut[1]);
      });
      if (s < e) { out.push([s, e]); }
    });
    return out;
  }
  function span(iv) { return [floatOfInstant(iv.start).getTime(), floatOfInstant(iv.end).getTime()]; }
  function byStart(a, b) { return a[0] - b[0]; }

  // ---- messages ----

  function say(text) {
    if (alertEl) { alertEl.textContent = ''; }
    if (statusEl) { statusEl.textContent = text; }
  }
  function refuse(problem, fallback) {
    if (statusEl) { statusEl.textContent = ''; }
    var text = (problem && (problem.detail || problem.title)) || fallback || document.body.dataset.msgNetwork;
    if (alertEl) {
      alertEl.textContent = text;
      if (!alertEl.hasAttribute('tabindex')) { alertEl.setAttribute('tabindex', '-1'); }
    }
  }

  // ---- the confirm dialog ----

  var pending = null; // what the dialog's OK does
  function ask(title, text, okLabel, action) {
    if (!dialog || typeof dialog.showModal !== 'function') {
      if (window.confirm(title + '\n' + text)) { action(); }
      return;
    }
    dialog.querySelector('[data-dialog-title]').textContent = title;
    dialog.querySelector('[data-dialog-text]').textContent = text;
    dialog.querySelector('[data-dialog-error]').textContent = '';
    var ok = dialog.querySelector('[data-dialog-ok]');
    ok.textContent = okLabel;
    ok.disabled = false;
    pending = action;
    dialog.showModal();
    ok.focus();
  }
  if (dialog) {
    dialog.querySelector('[data-dialog-ok]').addEventListener('click', function (ev) {
      ev.preventDefault();
      var act = pending;
      pending = null;
      if (!act) { return; }
      ev.target.disabled = true;
      act();
    });
    dialog.addEventListener('close', function () {
      pending = null;
      if (cal) { cal.unselect(); }
    });
  }
  function closeDialog() { if (dialog && dialog.open) { dialog.close(); } }

  // ---- booking and cancelling ----

  function book(startISO, endISO, when, done) {
    FG.api('POST', '/api/v1/bookings', {machine_id: machineID, start: startISO, end: endISO}).then(function (res) {
      closeDialog();
      if (res.ok) {
        say(D.msgBooked.replace('{when}', when));
        refresh();
      } else {
        refuse(res.data);
        if (alertEl) { alertEl.focus(); }
      }
      if (done) { done(res); }
    });
  }

  function askBook(start, end) {
    var dd = dialog ? dialog.dataset : {};
    var when = describe(start, end);
    ask(dd.msgBookTitle, when, dd.msgBookOk, function () { book(instantOf(start), instantOf(end), when); });
  }

  function askCancel(b) {
    var dd = dialog ? dialog.dataset : {};
    var when = describe(floatOfInstant(b.start), floatOfInstant(b.end));
    ask(dd.msgCancelTitle, when, dd.msgCancelOk, function () {
      FG.api('DELETE', '/api/v1/bookings/' + q(b.id)).then(function (res) {
        closeDialog();
        if (res.ok) {
          say(D.msgCancelled.replace('{when}', when));
          refresh();
        } else {
          refuse(res.data);
          if (alertEl) { alertEl.focus(); }
        }
      });
    });
  }

  // refresh reloads what changed after a booking: the calendar's events and the next slots.
  function refresh() {
    if (cal) { cal.refetchEvents(); }
    loadNext();
  }

  // ---- the calendar ----

  function loadEvents(info, success, failure) {
    var from = instantOf(info.start), to = instantOf(info.end);
    var maint = [];
    try { maint = JSON.parse(D.maintenance || '[]'); } catch (e) { maint = []; }
    Promise.all([
      FG.api('GET', '/api/v1/machines/' + q(machineID) + '/availability?from=' + q(from) + '&to=' + q(to)),
      FG.api('GET', '/api/v1/bookings?machine_id=' + q(machineID) + '&member_id=' + q(me) + '&from=' + q(from) + '&to=' + q(to))
    ]).then(function (r) {
      if (!r[0].ok || !r[1].ok) {
        refuse(r[0].ok ? r[1].data : r[0].data, D.msgFailed);
        failure(new Error('calendar data'));
        return;
      }
      var free = r[0].data.free.map(span).sort(byStart);
      var busy = r[0].data.busy.map(span).sort(byStart);
      var mine = r[1].data.filter(function (b) { return b.state === 'confirmed' || b.state === 'completed'; });
      var mineIv = mine.map(span).sort(byStart);
      var maintIv = maint.map(function (m) { return [floatOf(m.start).getTime(), floatOf(m.end).getTime()]; }).sort(byStart);
      var evs = [];
      var nowMs = floatOf(D.now).getTime();
      if (info.start.getTime() < nowMs) { // the past cannot be booked: shade it
        evs.push({start: info.start.getTime(), end: Math.min(nowMs, info.end.getTime()), display: 'background', classNames: ['fg-past']});
      }
      subtract(subtract([[info.start.getTime(), info.end.getTime()]], free), busy).forEach(function (iv) {
        evs.push({start: iv[0], end: iv[1], display: 'background', classNames: ['fg-closed'], title: D.msgClosed});
      });
      maintIv.forEach(function (iv) {
        evs.push({start: iv[0], end: iv[1], display: 'background', classNames: ['fg-maintenance'], title: D.msgMaintenance});
      });
      subtract(subtract(busy, mineIv), maintIv).forEach(function (iv) {
        evs.push({start: iv[0], end: iv[1], title: D.msgBusy, classNames: ['fg-busy'], extendedProps: {kind: 'busy'}});
      });
      mine.forEach(function (b) {
        var iv = span(b);
        evs.push({id: 'booking-' + b.id, start: iv[0], end: iv[1], title: D.msgMine, classNames: ['fg-mine'],
          extendedProps: {kind: 'mine', booking: b}});
      });
      success(evs);
    });
  }

  function duration(minutes) {
    var h = Math.floor(minutes / 60), m = minutes % 60;
    return (h < 10 ? '0' : '') + h + ':' + (m < 10 ? '0' : '') + m + ':00';
  }

  if (calEl && window.FullCalendar) {
    var slot = parseInt(D.slot, 10) || 30;
    var phone = window.matchMedia('(max-width: 40rem)').matches;
    var business = [];
    try { business = JSON.parse(D.business || '[]'); } catch (e) { business = []; }
    var now = floatOf(D.now);
    var hm = {hour: '2-digit', minute: '2-digit', hour12: false};
    cal = new window.FullCalendar.Calendar(calEl, {
      timeZone: 'UTC',
      locale: FG.lang,
      now: now,
      initialDate: now,
      initialView: phone ? 'timeGridDay' : 'timeGridWeek',
      headerToolbar: {left: 'prev,next today', center: 'title', right: 'timeGridWeek,timeGridDay'},
      // Words, not the icon font: the page's policy allows no font from a data: URL.
      buttonIcons: false,
      buttonText: {week: D.msgWeek, day: D.msgDay, today: D.msgToday, prev: '‹', next: '›'},
      buttonHints: {prev: D.msgPrev, next: D.msgNext},
      views: {timeGridDay: {titleFormat: {weekday: 'long', day: 'numeric', month: 'long'}}},
      firstDay: 1,
      allDaySlot: false,
      nowIndicator: true,
      stickyHeaderDates: false,
      height: 'auto',
      slotDuration: duration(slot),
      snapDuration: duration(slot),
      slotLabelInterval: duration(Math.max(slot, 60)),
      slotMinTime: D.minTime || '08:00:00',
      slotMaxTime: D.maxTime || '20:00:00',
      slotLabelFormat: hm,
      eventTimeFormat: hm,
      businessHours: business,
      selectable: true,
      selectMirror: true,
      unselectAuto: false,
      selectLongPressDelay: 150,
      eventLongPressDelay: 150,
      events: loadEvents,
      select: function (info) { askBook(info.start, info.end); },
      eventClick: function (info) {
        var p = info.event.extendedProps;
        if (p.kind === 'mine' && p.booking && p.booking.state === 'confirmed') { askCancel(p.booking); }
      },
      eventDidMount: function (info) {
        // My bookings open the cancel dialog: say so to keyboards and screen readers.
        if (info.event.extendedProps.kind === 'mine') {
          info.el.setAttribute('tabindex', '0');
          info.el.setAttribute('role', 'button');
          info.el.addEventListener('keydown', function (ev) {
            if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); askCancel(info.event.extendedProps.booking); }
          });
        }
      }
    });
    cal.render();
    FG.calendar = cal; // for the browser tests and the console
  }

  // ---- next free slots ----

  var next = document.querySelector('[data-next-slots]');
  var nextList = next && next.querySelector('[data-next-list]');
  var nextMinutes = next && next.querySelector('[data-next-minutes]');

  function loadNext() {
    if (!next) { return; }
    var minutes = parseInt(nextMinutes.value, 10);
    FG.api('GET', '/api/v1/slots?machine_id=' + q(machineID) + '&minutes=' + minutes + '&limit=5').then(function (res) {
      nextList.textContent = '';
      if (res.status === 404 && res.data && res.data.code === 'not_found') {
        next.hidden = true; // a server without the free-slot search
        return;
      }
      if (!res.ok) {
        var li = document.createElement('li');
        li.className = 'warn';
        li.textContent = (res.data && res.data.detail) || next.dataset.msgFailed;
        nextList.appendChild(li);
        return;
      }
      if (!res.data.length) {
        var none = document.createElement('li');
        none.textContent = next.dataset.msgNone;
        nextList.appendChild(none);
        return;
      }
      res.data.forEach(function (s) {
        var start = floatOfInstant(s.start);
        var end = new Date(start.getTime() + minutes * 60000);
        var li = document.createElement('li');
        li.className = 'slot';
        var text = document.createElement('span');
        text.textContent = describe(start, end);
        var btn = document.createElement('button');
        btn.type = 'button';
        btn.className = 'primary';
        btn.textContent = next.dataset.msgBook;
        btn.setAttribute('aria-label', next.dataset.msgBook + ' ' + describe(start, end));
        btn.addEventListener('click', function () { askBook(start, end); });
        li.appendChild(text);
        li.appendChild(btn);
        nextList.appendChild(li);
      });
    });
  }
  if (next) {
    nextMinutes.addEventListener('change', loadNext);
    loadNext();
  }

  // ---- the plain form ----

  var form = document.querySelector('form[data-book-form]');
  if (form) {
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      form.querySelectorAll('[data-error-for], [data-form-error], [data-form-status]').forEach(function (e) { e.textContent = ''; });
      form.querySelectorAll('[aria-invalid]').forEach(function (e) { e.removeAttribute('aria-invalid'); });
      var date = form.elements.date.value, s = form.elements.start.value, e = form.elements.end.value;
      if (!date || !s || !e) {
        var missing = !s ? 'start' : 'end';
        FG.showProblem(form, {detail: form.dataset.msgMissing || form.elements[missing].validationMessage, field: date ? missing : undefined});
        return;
      }
      say('');
      var start = floatOf(date + 'T' + s), end = floatOf(date + 'T' + e);
      var submit = form.querySelector('[type=submit]');
      submit.disabled = true;
      var when = describe(start, end);
      FG.api('POST', '/api/v1/bookings', {machine_id: machineID, start: instantOf(start), end: instantOf(end)}).then(function (res) {
        submit.disabled = false;
        if (!res.ok) { FG.showProblem(form, res.data); return; }
        form.querySelector('[data-form-status]').textContent = D.msgBooked.replace('{when}', when);
        say(D.msgBooked.replace('{when}', when));
        refresh();
      });
    });
  }
})();
