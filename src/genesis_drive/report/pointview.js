// genesis-drive point-cloud view: a canvas-2D point renderer with a z-buffer (no WebGL, no network).
// Each <div class="gd-pointview"> holds a <script type="application/json"> with
//   {"clouds": [{"name", "color": [r, g, b], "xyz": base64 little-endian float32 x y z ...}],
//    "zrange": [zlo, zhi], "center": [x, y, z], "radius": r}
// Mouse: drag = orbit, shift+drag or right-drag = pan, wheel = zoom. Coordinates: metres, z up.
(function () {
  "use strict";
  var BG = [16, 20, 24];
  var VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

  function decode(b64) {
    var bin = atob(b64), n = bin.length, u = new Uint8Array(n);
    for (var i = 0; i < n; i++) u[i] = bin.charCodeAt(i);
    return new Float32Array(u.buffer);
  }

  function viridis(t) {
    t = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
    var i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  }

  function PointView(root, data) {
    this.root = root;
    this.canvas = root.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.clouds = data.clouds.map(function (c) { return { name: c.name, color: c.color, xyz: decode(c.xyz), on: true }; });
    this.zrange = data.zrange;
    this.center = data.center.slice();
    this.home = { center: data.center.slice(), dist: 2.2 * data.radius, yaw: -2.4, pitch: 0.6 };
    this.mode = "height";
    this.reset();
    this.controls();
    this.mouse();
    this.draw();
  }

  PointView.prototype.reset = function () {
    this.center = this.home.center.slice();
    this.dist = this.home.dist; this.yaw = this.home.yaw; this.pitch = this.home.pitch;
  };

  PointView.prototype.controls = function () {
    var self = this, bar = this.root.querySelector(".gd-pv-controls");
    this.clouds.forEach(function (c, i) {
      var label = document.createElement("label"), box = document.createElement("input"), sw = document.createElement("span");
      box.type = "checkbox"; box.checked = true; box.dataset.cloud = String(i);
      box.addEventListener("change", function () { c.on = box.checked; self.draw(); });
      sw.className = "gd-swatch"; sw.style.background = "rgb(" + c.color.join(",") + ")";
      label.appendChild(box); label.appendChild(sw);
      label.appendChild(document.createTextNode(c.name + " (" + (c.xyz.length / 3) + " points)"));
      bar.appendChild(label);
    });
    var sel = document.createElement("select");
    [["height", "colour: height"], ["source", "colour: source"]].forEach(function (o) {
      var opt = document.createElement("option"); opt.value = o[0]; opt.textContent = o[1]; sel.appendChild(opt);
    });
    sel.addEventListener("change", function () { self.mode = sel.value; self.draw(); });
    var btn = document.createElement("button");
    btn.textContent = "reset view";
    btn.addEventListener("click", function () { self.reset(); self.draw(); });
    bar.appendChild(sel); bar.appendChild(btn);
  };

  PointView.prototype.mouse = function () {
    var self = this, c = this.canvas, last = null, pan = false;
    c.addEventListener("contextmenu", function (e) { e.preventDefault(); });
    c.addEventListener("mousedown", function (e) { last = [e.clientX, e.clientY]; pan = e.shiftKey || e.button === 2; e.preventDefault(); });
    window.addEventListener("mouseup", function () { last = null; });
    window.addEventListener("mousemove", function (e) {
      if (!last) return;
      var dx = e.clientX - last[0], dy = e.clientY - last[1];
      last = [e.clientX, e.clientY];
      if (pan) {
        var b = self.basis(), s = self.dist / self.focal();
        for (var k = 0; k < 3; k++) self.center[k] -= s * (dx * b.r[k] - dy * b.u[k]);
      } else {
        self.yaw -= dx * 0.01;
        self.pitch = Math.max(-1.55, Math.min(1.55, self.pitch + dy * 0.01));
      }
      self.draw();
    });
    c.addEventListener("wheel", function (e) {
      e.preventDefault();
      self.dist = Math.max(0.5, self.dist * Math.exp(e.deltaY * 0.001));
      self.draw();
    }, { passive: false });
  };

  PointView.prototype.focal = function () { return this.canvas.height / (2 * Math.tan(0.5 * 0.9)); };

  PointView.prototype.basis = function () {
    var cp = Math.cos(this.pitch), f = [-cp * Math.cos(this.yaw), -cp * Math.sin(this.yaw), -Math.sin(this.pitch)];
    var r = [f[1], -f[0], 0], rn = Math.hypot(r[0], r[1]) || 1;
    r = [r[0] / rn, r[1] / rn, 0];
    var u = [r[1] * f[2] - r[2] * f[1], r[2] * f[0] - r[0] * f[2], r[0] * f[1] - r[1] * f[0]];
    var eye = [this.center[0] - this.dist * f[0], this.center[1] - this.dist * f[1], this.center[2] - this.dist * f[2]];
    return { f: f, r: r, u: u, eye: eye };
  };

  PointView.prototype.draw = function () {
    var w = this.canvas.width, h = this.canvas.height, img = this.ctx.createImageData(w, h), px = img.data;
    var zbuf = new Float32Array(w * h).fill(Infinity), b = this.basis(), fo = this.focal(), drawn = 0;
    for (var i = 0; i < w * h; i++) { px[4 * i] = BG[0]; px[4 * i + 1] = BG[1]; px[4 * i + 2] = BG[2]; px[4 * i + 3] = 255; }
    var zlo = this.zrange[0], zspan = Math.max(1e-6, this.zrange[1] - this.zrange[0]);
    for (var ci = 0; ci < this.clouds.length; ci++) {
      var c = this.clouds[ci];
      if (!c.on) continue;
      var p = c.xyz, n = p.length / 3;
      for (var j = 0; j < n; j++) {
        var dx = p[3 * j] - b.eye[0], dy = p[3 * j + 1] - b.eye[1], dz = p[3 * j + 2] - b.eye[2];
        var zc = dx * b.f[0] + dy * b.f[1] + dz * b.f[2];
        if (zc < 0.1) continue;
        var sx = Math.floor(w / 2 + fo * (dx * b.r[0] + dy * b.r[1] + dz * b.r[2]) / zc);
        var sy = Math.floor(h / 2 - fo * (dx * b.u[0] + dy * b.u[1] + dz * b.u[2]) / zc);
        if (sx < 0 || sy < 0 || sx >= w - 1 || sy >= h - 1) continue;
        var col = this.mode === "height" ? viridis((p[3 * j + 2] - zlo) / zspan) : c.color;
        drawn++;
        for (var oy = 0; oy < 2; oy++) for (var ox = 0; ox < 2; ox++) {
          var k = (sy + oy) * w + sx + ox;
          if (zc < zbuf[k]) { zbuf[k] = zc; px[4 * k] = col[0]; px[4 * k + 1] = col[1]; px[4 * k + 2] = col[2]; }
        }
      }
    }
    this.ctx.putImageData(img, 0, 0);
    this.canvas.dataset.drawn = String(drawn);
  };

  function start() {
    var views = document.querySelectorAll(".gd-pointview");
    for (var i = 0; i < views.length; i++) {
      var el = views[i];
      el.pointView = new PointView(el, JSON.parse(el.querySelector("script[type='application/json']").textContent));
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
