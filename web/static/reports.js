// The reports page: draws the utilisation and revenue charts with Chart.js
// from the figures the page carries as JSON (#report-charts); the tables
// beside them show the same figures without script.
(function () {
  'use strict';
  var data = document.getElementById('report-charts');
  if (!data || !window.Chart) { return; }
  var charts = JSON.parse(data.textContent);
  var locale = charts.lang === 'fr' ? 'fr-FR' : 'en-GB';
  var hours = new Intl.NumberFormat(locale, {maximumFractionDigits: 1});
  var money = new Intl.NumberFormat(locale, {style: 'currency', currency: charts.currency || 'EUR'});
  // Colours that keep 3:1 against white and apart from each other.
  var palette = ['#08519c', '#d95f02', '#1b7837', '#7570b3', '#a6761d', '#e7298a', '#4a4a4a', '#1f78b4'];
  var use = {booked: '#6baed6', used: '#08519c', open: '#969696'};

  function draw(id, config) {
    var canvas = document.querySelector('canvas[data-chart="' + id + '"]');
    if (!canvas) { return; }
    config.options = Object.assign({
      animation: false, // drawn at once: nothing moves for people who get motion sick
      responsive: true,
      maintainAspectRatio: false,
      locale: locale
    }, config.options);
    new window.Chart(canvas, config);
    canvas.dataset.drawn = 'true';
  }

  // bars draws a bar chart of the series of chart c in the given colours.
  function bars(id, c, colors, options) {
    draw(id, {
      type: 'bar',
      data: {
        labels: c.labels,
        datasets: c.datasets.map(function (s, i) {
          return {label: s.label, data: s.data, backgroundColor: colors[i % colors.length]};
        })
      },
      options: options
    });
  }

  function tooltip(format) {
    return {callbacks: {label: function (ctx) { return ctx.dataset.label + ': ' + format(ctx.parsed.y); }}};
  }

  bars('utilisation', charts.utilisation, [use.booked, use.used, use.open], {
    scales: {y: {beginAtZero: true, title: {display: true, text: charts.hours_title}}},
    plugins: {tooltip: tooltip(function (v) { return hours.format(v) + ' h'; })}
  });

  bars('revenue', charts.revenue, palette, {
    scales: {
      x: {stacked: true},
      y: {stacked: true, title: {display: true, text: charts.amount_title},
        ticks: {callback: function (v) { return money.format(v); }}}
    },
    plugins: {tooltip: tooltip(function (v) { return money.format(v); })}
  });
}());
