// The outbox page: the mail the server kept instead of sending it
// (smtp_url outbox:), read from GET /api/v1/outbox, newest first.
(function () {
  'use strict';
  var FG = window.FabGate;
  var box = document.querySelector('[data-outbox]');
  if (!FG || !box) { return; }
  var msg = box.dataset;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function show(list) {
    box.textContent = '';
    box.appendChild(el('p', 'muted', msg.msgCount.replace('{n}', list.length)));
    if (!list.length) {
      box.appendChild(el('p', '', msg.msgEmpty));
      return;
    }
    var ul = el('ul', 'plain');
    list.forEach(function (m, i) {
      var li = el('li', 'mail');
      var art = el('article');
      art.setAttribute('aria-labelledby', 'mail-' + i);
      var h = el('h2', '', m.subject);
      h.id = 'mail-' + i;
      art.appendChild(h);
      var dl = el('dl');
      dl.appendChild(el('dt', '', msg.msgTo));
      dl.appendChild(el('dd', '', m.to_name ? m.to_name + ' <' + m.to + '>' : m.to));
      dl.appendChild(el('dt', '', msg.msgDate));
      var dd = el('dd');
      var time = el('time', '', FG.formatLab(new Date(m.date)));
      time.setAttribute('datetime', m.date);
      dd.appendChild(time);
      dl.appendChild(dd);
      if (m.attachments && m.attachments.length) {
        dl.appendChild(el('dt', '', msg.msgAttachments));
        dl.appendChild(el('dd', '', m.attachments.join(', ')));
      }
      art.appendChild(dl);
      art.appendChild(el('pre', '', m.text));
      li.appendChild(art);
      ul.appendChild(li);
    });
    box.appendChild(ul);
  }

  function load() {
    box.setAttribute('aria-busy', 'true');
    FG.api('GET', '/api/v1/outbox').then(function (res) {
      box.setAttribute('aria-busy', 'false');
      if (res.ok) { show(res.data || []); return; }
      box.textContent = '';
      box.appendChild(el('p', 'notice-bad', res.status === 404 ? msg.msgNone : (res.data && res.data.detail) || ''));
    });
  }

  document.addEventListener('click', function (ev) {
    if (ev.target.closest('[data-outbox-refresh]')) { load(); }
  });
  load();
})();
