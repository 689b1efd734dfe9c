// The playground: sends the conversation to each side (fine-tuned, and base when compared)
// and shows the answers as they stream in (OpenAI's server-sent events).
(function () {
  "use strict";
  const form = document.getElementById("playground");
  if (!form) return;
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const columns = Array.from(document.querySelectorAll("#playground-columns .chat"));
  const history = {};
  columns.forEach((col) => { history[col.dataset.side] = []; });

  function bubble(col, role, text) {
    const li = document.createElement("li");
    li.className = "msg msg-" + role;
    li.textContent = text;
    col.querySelector('[data-role="transcript"]').appendChild(li);
    return li;
  }

  async function ask(col, prompt) {
    const side = col.dataset.side;
    history[side].push({ role: "user", content: prompt });
    bubble(col, "user", prompt);
    const answer = bubble(col, "assistant", "");
    answer.classList.add("streaming");
    const response = await fetch(form.dataset.chatUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({
        side: side,
        messages: history[side],
        max_tokens: Number(form.max_tokens.value),
        temperature: Number(form.temperature.value),
      }),
    });
    if (!response.ok) {
      let message = "The model did not answer (" + response.status + ").";
      try { message = (await response.json()).error.message; } catch (err) { /* keep the default */ }
      answer.textContent = message;
      answer.className = "msg msg-error";
      history[side].pop();
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
        const chunk = JSON.parse(event.slice(6));
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          text += delta.content;
          answer.textContent = text;
        }
      }
    }
    answer.classList.remove("streaming");
    answer.dataset.done = "1";
    history[side].push({ role: "assistant", content: text });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const prompt = form.prompt.value.trim();
    if (!prompt) return;
    form.prompt.value = "";
    const compare = !form.compare || form.compare.checked;
    const targets = columns.filter((col) => col.dataset.side === "tuned" || compare);
    Promise.all(targets.map((col) => ask(col, prompt)));
  });
  document.getElementById("playground-clear").addEventListener("click", () => {
    columns.forEach((col) => {
      history[col.dataset.side] = [];
      col.querySelector('[data-role="transcript"]').innerHTML = "";
    });
  });
  // Send stays off until the page can stream answers: an early click would reload the page
  // and drop the message.
  form.querySelector("button[type=submit]").disabled = false;
})();
