// Chat simulator: plays a web-channel customer. Messages go out over HTTP, replies arrive over a WebSocket.
(function () {
  "use strict";
  const root = document.getElementById("simulator");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const labels = { customer: root.dataset.labelYou, bot: root.dataset.labelBot, agent: root.dataset.labelAgent, system: root.dataset.labelSystem };
  const seen = new Set();
  let customerId = null;
  let socket = null;
  let lastSeq = 0;
  let retry = 0;

  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  async function api(url, body) {
    const res = await fetch(url, {
      method: body === undefined ? "GET" : "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), "Accept": "application/json" },
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText);
    return data;
  }
  function render(msg) {
    if (seen.has(msg.id)) return;
    seen.add(msg.id);
    const li = document.createElement("li");
    li.className = msg.direction;
    li.dataset.messageId = msg.id;
    li.dataset.sender = msg.sender;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = labels[msg.sender] || msg.sender;
    const bubble = document.createElement("span");
    bubble.className = "bubble";
    bubble.textContent = msg.content;  // always text, never HTML
    li.append(who, bubble);
    $("transcript").append(li);
    $("transcript").scrollTop = $("transcript").scrollHeight;
  }
  function connect() {
    if (socket) socket.close();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const path = root.dataset.wsUrl.replace("{id}", customerId);
    const ws = new WebSocket(`${scheme}://${location.host}${path}?since=${lastSeq}`);
    socket = ws;
    ws.onopen = () => { retry = 0; $("ws-status").textContent = "●"; $("ws-status").className = "status online"; };
    ws.onmessage = (ev) => {
      const env = JSON.parse(ev.data);
      if (env.seq) lastSeq = Math.max(lastSeq, env.seq);
      if (env.event === "message.created") render(env.payload);
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      $("ws-status").textContent = root.dataset.labelOffline; $("ws-status").className = "status";
      retry = Math.min(retry + 1, 5);
      setTimeout(() => { if (socket === ws) connect(); }, 500 * retry);
    };
  }
  async function open(id, title) {
    customerId = id; lastSeq = 0; seen.clear();
    $("transcript").innerHTML = "";
    $("chat-title").textContent = title;
    $("message-input").disabled = false; $("send-button").disabled = false;
    connect();
    const data = await api(root.dataset.messagesUrl.replace("{id}", id));
    data.messages.forEach(render);
    $("message-input").focus();
  }
  $("customer-select").addEventListener("change", (ev) => {
    const opt = ev.target.selectedOptions[0];
    if (opt) open(opt.value, opt.textContent).catch((e) => { $("error").textContent = e.message; });
  });
  $("new-customer").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const c = await api(root.dataset.createUrl, { nickname: $("new-nickname").value });
      const opt = new Option(`${c.nickname} (#${c.id})`, c.id);
      $("customer-select").prepend(opt);
      opt.selected = true;
      $("new-nickname").value = "";
      await open(c.id, opt.textContent);
    } catch (e) { $("error").textContent = e.message; }
  });
  $("composer").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("message-input").value;
    if (!text.trim() || !customerId) return;
    $("error").textContent = "";
    try {
      const clientId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/-/g, "");
      const res = await api(root.dataset.sendUrl.replace("{id}", customerId), { text: text, client_msg_id: clientId });
      $("message-input").value = "";
      render({ id: res.id, direction: "in", sender: "customer", content: text });
    } catch (e) { $("error").textContent = e.message; }
  });
})();
