// My bookings: the personal calendar feed section. GET /api/v1/me/calendar-feed
// says whether a feed exists (never its address); POST creates one, or
// replaces it (the old address stops working), and its answer is the only
// time the address is shown; DELETE revokes it.
(function () {
  'use strict';
  var FG = window.FabGate;
  var box = document.querySelector('[data-feed]');
  if (!FG || !box) { return; }
  var stateEl = box.querySelector('[data-feed-state]');
  var errEl = box.querySelector('[data-feed-error]');
  var urlBox = box.querySelector('[data-feed-url-box]');
  var urlEl = box.querySelector('[data-feed-url]');
  var createBtn = box.querySelector('[data-feed-create]');
  var rotateBtn = box.querySelector('[data-feed-rotate]');
  var revokeBtn = box.querySelector('[data-feed-revoke]');
  var B = box.dataset;
  var api = '/api/v1/me/calendar-feed';

  function shown(active) {
    createBtn.hidden = active;
    rotateBtn.hidden = !active;
    revokeBtn.hidden = !active;
    stateEl.textContent = active ? B.msgActive : B.msgInactive;
  }
  function fail(res) {
    errEl.textContent = (res.data && (res.data.detail || res.data.title)) || document.body.dataset.msgNetwork;
  }

  FG.api('GET', api).then(function (res) {
    if (res.status === 404 && res.data && res.data.code === 'not_found') {
      box.hidden = true; // a server without calendar feeds
      return;
    }
    if (!res.ok) { fail(res); return; }
    shown(!!res.data.active);
  });

  function create() {
    errEl.textContent = '';
    FG.api('POST', api).then(function (res) {
      if (!res.ok) { fail(res); return; }
      urlEl.value = res.data.url;
      urlBox.hidden = false;
      shown(true);
      urlEl.focus();
      urlEl.select();
    });
  }
  createBtn.addEventListener('click', create);
  rotateBtn.addEventListener('click', create);
  revokeBtn.addEventListener('click', function () {
    if (revokeBtn.dataset.confirm && !window.confirm(revokeBtn.dataset.confirm)) { return; }
    errEl.textContent = '';
    FG.api('DELETE', api).then(function (res) {
      if (!res.ok) { fail(res); return; }
      urlEl.value = '';
      urlBox.hidden = true;
      shown(false);
      stateEl.textContent = B.msgRevoked;
    });
  });
})();
