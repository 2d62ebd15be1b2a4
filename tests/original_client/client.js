// What the original app's page (Erlemar/digit-draw-recognize, static/draw.js) does with the service, written
// afresh on the same code path: a 200x200 white canvas with 8 px black strokes, its toDataURL("image/jpg")
// (a PNG: browsers have no "image/jpg"), posted form-encoded by $.ajax with no dataType, and the /hook2
// answer handed to JSON.parse, or compared with the empty-canvas sentence first.
var server = document.documentElement.getAttribute("data-server"); // "" when served by the app itself
var canvas = document.getElementById("the_stage");
var context = canvas.getContext("2d");
var drawing = false;

function blank() {
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, 200, 200);
}

canvas.onmousedown = function (event) {
  drawing = true;
  context.lineWidth = 8.0;
  context.strokeStyle = "#000000";
  context.beginPath();
  context.moveTo(event.offsetX, event.offsetY);
};
canvas.onmousemove = function (event) {
  if (!drawing) return;
  context.lineTo(event.offsetX, event.offsetY);
  context.stroke();
};
canvas.onmouseup = function () {
  drawing = false;
};

function show(id, text) {
  document.getElementById(id).innerHTML = text;
}

function predict() {
  show("rec_result", "");
  $.ajax({
    type: "POST",
    url: server + "/hook2",
    data: { imageBase64: canvas.toDataURL("image/jpg") },
  }).done(function (response) {
    if (response == "Can't predict, when nothing is drawn") {
      show("rec_result", response);
      return;
    }
    var prediction = JSON.parse(response);
    show("rec_result", prediction["answer"]);
    var keys = ["fnn", "fnn_t", "cnn", "cnn_t"];
    for (var k = 0; k < keys.length; k++) {
      for (var i = 0; i < 3; i++) show(keys[k] + (i + 1), prediction[keys[k]][i]);
    }
  });
}

function post(url, digit) {
  var dataURL = canvas.toDataURL("image/jpg");
  $.ajax({ type: "POST", url: server + url, data: { digit: digit, imageBase64: dataURL } }).done(function (response) {
    show("rec_result", response);
  });
}

document.getElementById("clear").onclick = blank;
document.getElementById("predict").onclick = predict;
document.getElementById("yes").onclick = function () {
  post("/hook3", document.getElementById("rec_result").innerHTML);
};
document.getElementById("save").onclick = function () {
  post("/hook", "1");
};
blank();
