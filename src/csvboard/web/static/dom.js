// The pages' shared DOM helpers (window.csvboardDom), loaded before every page's script
// (templates/base.html, templates/signage.html):
//   el(tag, attrs, ...children) builds an element; an attribute that is null, undefined or
//   false is left out, true is set empty; a child that is not a node is set as text (never
//   parsed as HTML), null and undefined are skipped.
//   cookie(name) reads one cookie (the CSRF token's, for writes).
"use strict";

window.csvboardDom = (function () {
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [k, ...v] = part.trim().split("=");
      if (k === name) return decodeURIComponent(v.join("="));
    }
    return "";
  }

  return { el, cookie };
})();
