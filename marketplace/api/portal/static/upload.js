// Upload with a progress bar: the same form, sent with XMLHttpRequest so upload.onprogress can show how much
// has gone. Without JavaScript the form posts normally. The server answers a finished upload with a redirect
// to the new submission (followed here too) and a refused one with the dashboard and its error, whose main
// part replaces this page's.
"use strict";
(function () {
  function wire(form) {
    form.addEventListener("submit", function (event) {
      if (!window.XMLHttpRequest || !window.FormData) { return; }
      event.preventDefault();
      var bar = document.getElementById("upload-progress");
      var status = document.getElementById("upload-status");
      var button = form.querySelector("button[type=submit]");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.responseType = "document";
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) {
          bar.value = Math.round(100 * e.loaded / e.total);
          status.textContent = bar.value + "% sent";
        }
      };
      xhr.upload.onload = function () { status.textContent = "sent; checking the records..."; };
      xhr.onload = function () {
        if (xhr.status < 400 && xhr.responseURL) {
          window.location.assign(xhr.responseURL);
          return;
        }
        var fresh = xhr.response && xhr.response.querySelector("main");
        if (fresh) {
          document.querySelector("main").replaceWith(document.adoptNode(fresh));
          var again = document.getElementById("upload-form");
          if (again) { wire(again); }
        } else {
          status.textContent = "the upload failed (HTTP " + xhr.status + ")";
          button.disabled = false;
        }
      };
      xhr.onerror = function () {
        status.textContent = "the connection was lost; send the file again";
        button.disabled = false;
      };
      bar.hidden = false;
      bar.value = 0;
      button.disabled = true;
      status.textContent = "sending...";
      xhr.send(new FormData(form));
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("upload-form");
    if (form) { wire(form); }
  });
}());
