// Attaching a file to a message, with JavaScript: drop a file on the conversation, paste an
// image, see what will be sent before sending, watch the upload, record a voice note. Without
// JavaScript the composer's file fields do all of this but the extras, and the server decides
// what a file is either way.
(function () {
  "use strict";

  function composer() {
    return document.getElementById("composer");
  }

  function fileInputs(form) {
    return Array.prototype.slice.call(form.querySelectorAll('input[type="file"]'));
  }

  function formatSize(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return Math.round(bytes / 1024) + " KB";
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  // One file per message: choosing one in any field empties the others.
  function useFile(form, file, input) {
    var inputs = fileInputs(form);
    input = input || inputs[0];
    if (!input) return;
    if (file) {
      var transfer = new DataTransfer();
      transfer.items.add(file);
      input.files = transfer.files;
    }
    inputs.forEach(function (other) {
      if (other !== input) other.value = "";
    });
    showPreview(form, input.files && input.files[0]);
  }

  function clearFiles(form) {
    fileInputs(form).forEach(function (input) { input.value = ""; });
    showPreview(form, null);
  }

  var previewUrl = null;

  function showPreview(form, file) {
    var box = form.querySelector(".attach-preview");
    if (previewUrl) {
      URL.revokeObjectURL(previewUrl);
      previewUrl = null;
    }
    if (!file) {
      if (box) box.remove();
      return;
    }
    if (!box) {
      box = document.createElement("div");
      box.className = "attach-preview";
      box.setAttribute("role", "status");
      form.insertBefore(box, form.firstChild.nextSibling);
    }
    box.textContent = "";
    previewUrl = URL.createObjectURL(file);
    var media = null;
    if (/^image\//.test(file.type)) {
      media = document.createElement("img");
      media.alt = "";
    } else if (/^audio\//.test(file.type)) {
      media = document.createElement("audio");
      media.controls = true;
    } else if (/^video\//.test(file.type)) {
      media = document.createElement("video");
      media.controls = true;
      media.muted = true;
    }
    if (media) {
      media.src = previewUrl;
      box.appendChild(media);
    }
    var label = document.createElement("span");
    label.className = "attach-name";
    label.textContent = file.name + " (" + formatSize(file.size) + ")";
    box.appendChild(label);
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "attach-remove icon-button";
    var icon = form.querySelector("template.remove-icon");
    if (icon) remove.appendChild(icon.content.cloneNode(true));
    else remove.textContent = "Remove";
    remove.setAttribute("aria-label", "Remove " + file.name);
    remove.title = "Remove";
    remove.addEventListener("click", function () { clearFiles(form); });
    box.appendChild(remove);
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches('#composer input[type="file"]')) return;
    useFile(input.form, null, input);
  });

  // Drop a file anywhere on the conversation page.
  function droppedFile(event) {
    var transfer = event.dataTransfer;
    return transfer && transfer.files && transfer.files.length ? transfer.files[0] : null;
  }

  document.addEventListener("dragover", function (event) {
    if (!composer() || !event.dataTransfer) return;
    if (Array.prototype.indexOf.call(event.dataTransfer.types, "Files") < 0) return;
    event.preventDefault();
    document.body.classList.add("dropping");
  });
  document.addEventListener("dragleave", function (event) {
    if (event.relatedTarget === null) document.body.classList.remove("dropping");
  });
  document.addEventListener("drop", function (event) {
    document.body.classList.remove("dropping");
    var form = composer();
    var file = droppedFile(event);
    if (!form || !file) return;
    event.preventDefault();
    useFile(form, file);
  });

  // Paste a picture (a screenshot, say) into the message box.
  document.addEventListener("paste", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("#composer textarea")) return;
    var files = event.clipboardData && event.clipboardData.files;
    if (!files || !files.length) return;
    event.preventDefault();
    useFile(box.form, files[0]);
  });

  // Upload progress, from htmx's XMLHttpRequest.
  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = event.target;
    if (!form || form.id !== "composer" || !event.detail.lengthComputable) return;
    if (!fileInputs(form).some(function (input) { return input.files && input.files.length; })) return;
    var bar = form.querySelector("progress.upload");
    if (!bar) {
      bar = document.createElement("progress");
      bar.className = "upload";
      bar.max = 100;
      bar.setAttribute("aria-label", "Upload");
      form.appendChild(bar);
    }
    bar.value = Math.round((100 * event.detail.loaded) / event.detail.total);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target;
    if (!form || form.id !== "composer") return;
    var bar = form.querySelector("progress.upload");
    if (bar) bar.remove();
  });

  // Voice notes, where the browser can record.
  var recording = null;

  function recorderType() {
    var types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"];
    for (var i = 0; i < types.length; i++) {
      if (MediaRecorder.isTypeSupported(types[i])) return types[i];
    }
    return "";
  }

  function addRecordButton(form) {
    if (!window.MediaRecorder || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;
    var attach = form.querySelector(".attach");
    if (!attach || attach.querySelector(".record")) return;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "record icon-button";
    button.title = "Record a voice note";
    var icon = attach.querySelector("template.record-icon");
    if (icon) button.appendChild(icon.content.cloneNode(true));
    var label = document.createElement("span");
    label.className = "button-label";
    label.textContent = "Record";
    button.appendChild(label);
    button.setAttribute("aria-pressed", "false");
    attach.appendChild(button);
  }

  function say(button, text) {
    button.querySelector(".button-label").textContent = text;
  }

  function stopRecording() {
    if (recording && recording.recorder.state !== "inactive") recording.recorder.stop();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#composer .record");
    if (!button) return;
    if (recording) {
      stopRecording();
      return;
    }
    var form = button.form;
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      var type = recorderType();
      var recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
      var chunks = [];
      var started = Date.now();
      recording = { recorder: recorder };
      recorder.addEventListener("dataavailable", function (e) { if (e.data.size) chunks.push(e.data); });
      recorder.addEventListener("stop", function () {
        clearInterval(recording.timer);
        recording = null;
        stream.getTracks().forEach(function (track) { track.stop(); });
        say(button, "Record");
        button.setAttribute("aria-pressed", "false");
        var mime = (recorder.mimeType || type || "audio/webm").split(";")[0];
        var extension = { "audio/ogg": "ogg", "audio/mp4": "m4a" }[mime] || "webm";
        var file = new File(chunks, "voice-note." + extension, { type: mime });
        if (file.size) useFile(form, file);
      });
      recording.timer = setInterval(function () {
        var seconds = Math.floor((Date.now() - started) / 1000);
        say(button, "Stop " + Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0"));
      }, 250);
      say(button, "Stop 0:00");
      button.setAttribute("aria-pressed", "true");
      recorder.start();
    }).catch(function () {
      say(button, "No microphone");
      button.disabled = true;
    });
  });

  // The composer is swapped in anew after every send.
  document.addEventListener("htmx:load", function (event) {
    var form = event.detail.elt.id === "composer" ? event.detail.elt : composer();
    if (form) addRecordButton(form);
  });
  document.addEventListener("DOMContentLoaded", function () {
    var form = composer();
    if (form) addRecordButton(form);
  });
})();
