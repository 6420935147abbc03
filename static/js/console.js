// Agent console: the queue, my conversations, one conversation with its whole story, the customer card.
// Reads and actions go over HTTP (JSON, CSRF header); live updates come over one WebSocket that replays what
// was missed after a reconnect (a `since` number per group, see routing/consumers.py). Every text that comes
// from a customer, an agent or the bot is put on the page with textContent, never as HTML.
(function () {
  "use strict";
  const root = document.getElementById("console");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const T = root.dataset;
  const PRIORITY_RANK = { urgent: 4, high: 3, normal: 2, low: 1 };
  const WITH_AGENT = ["assigned", "waiting_customer"];
  const HIDDEN_EVENTS = ["replied", "customer_replied", "position"];
  const QUIET_ACTIONS = ["replied", "customer_replied", "customer_message"];
  const SEEN_MAX = 5000;

  const state = {
    me: null,
    labels: {},
    groups: [],
    agents: new Map(),
    tickets: new Map(),
    since: {},
    seen: new Set(),
    unread: new Set(),
    open: null, // {id, ticketId, customerId, status}
    tab: "queue",
    stateLoaded: false,
  };
  let socket = null;
  let ready = false;
  let retry = 0;
  let userMode = "reply"; // what the agent picked in the composer; notes only while they may not reply
  const fetching = new Set();

  // --- helpers ---------------------------------------------------------------------------------------------

  function fmt(text, params) {
    return String(text).replace(/%\((\w+)\)s/g, (_m, key) => (params[key] === undefined ? "" : String(params[key])));
  }
  function label(kind, value) {
    const table = state.labels[kind] || {};
    return table[value] || value || "";
  }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function hhmm(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  function day(iso) {
    return iso ? new Date(iso).toLocaleDateString() : "";
  }
  function minutesSince(iso) {
    return iso ? Math.max(0, Math.floor((Date.now() - new Date(iso).getTime()) / 60000)) : 0;
  }
  function notice(text, kind) {
    const n = $("notice");
    n.textContent = text || "";
    n.className = "notice" + (kind ? " " + kind : "");
  }
  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  async function api(url, body) {
    const res = await fetch(url, {
      method: body === undefined ? "GET" : "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), Accept: "application/json" },
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = new Error((data.error && data.error.message) || T.tError);
      err.code = data.error && data.error.code;
      err.status = res.status;
      if (res.status === 401) location.reload(); // the session ended: the page redirects to the login
      throw err;
    }
    return data;
  }
  const urlFor = (template, id, action) => template.replace("{id}", id).replace("{action}", action || "");

  // --- tickets ---------------------------------------------------------------------------------------------

  function upsert(row) {
    const old = state.tickets.get(row.id);
    if (old && old.version > row.version) return old;
    const merged = Object.assign({}, old || {}, row);
    if (row.position === undefined && old) merged.position = old.position;
    state.tickets.set(row.id, merged);
    if (!merged.customer_name) fetchTicket(row.id);
    return merged;
  }
  async function fetchTicket(id) {
    if (fetching.has(id)) return;
    fetching.add(id);
    try {
      const data = await api(urlFor(T.ticketUrl, id));
      upsert(data.ticket);
      renderLists();
    } catch (e) {
      if (e.status === 404) { state.tickets.delete(id); renderLists(); }
    } finally {
      fetching.delete(id);
    }
  }
  function inMyGroups(t) {
    return state.me && (state.me.supervisor || state.me.group_ids.includes(t.group_id));
  }
  function byPriority(a, b) {
    return (PRIORITY_RANK[b.priority] || 0) - (PRIORITY_RANK[a.priority] || 0) ||
      String(a.queued_at || a.assigned_at).localeCompare(String(b.queued_at || b.assigned_at)) || a.id - b.id;
  }
  function lists() {
    const all = [...state.tickets.values()];
    const me = state.me ? state.me.id : null;
    return {
      queue: all.filter((t) => t.status === "queued" && inMyGroups(t)).sort(byPriority),
      mine: all.filter((t) => t.assignee_id === me && WITH_AGENT.includes(t.status)).sort(byPriority),
      open: state.me && state.me.supervisor ? all.filter((t) => WITH_AGENT.includes(t.status)).sort(byPriority) : [],
    };
  }

  function ticketItem(t, kind) {
    const li = el("li", `ticket prio-${t.priority}`);
    li.dataset.ticketId = t.id;
    li.dataset.conversationId = t.conversation_id;
    if (state.open && state.open.id === t.conversation_id) li.classList.add("active");
    if (state.unread.has(t.id)) li.classList.add("unread");
    const top = el("div", "row1");
    top.append(el("span", "name", t.customer_name || `#${t.customer_id}`));
    top.append(el("span", `badge prio prio-${t.priority}`, label("priority", t.priority)));
    if (t.tier) top.append(el("span", `badge tier tier-${t.tier}`, label("tier", t.tier)));
    if (state.unread.has(t.id)) top.append(el("span", "badge unread-badge", T.tNewMessage));
    const sub = el("div", "row2");
    const bits = [t.group_name, label("reason", t.reason)];
    if (kind === "queue") {
      if (t.position !== null && t.position !== undefined) bits.push(fmt(T.tPosition, { n: t.position + 1 }));
      bits.push(fmt(T.tWaiting, { n: minutesSince(t.queued_at) }));
      if (t.leave_message) bits.push(T.tLeaveMessage);
    } else {
      bits.push(label("status", t.status));
      if (kind === "open") bits.push(t.assignee_name || T.tUnassigned);
    }
    sub.textContent = bits.filter(Boolean).join(" · ");
    if (t.sla_breached) sub.append(el("span", "badge sla", T.tSlaBreached));
    li.append(top, sub);
    if (kind === "queue") {
      const claim = el("button", "claim", T.tClaim);
      claim.type = "button";
      claim.dataset.ticketId = t.id;
      li.append(claim);
    }
    return li;
  }
  function renderLists() {
    const groups = lists();
    for (const kind of ["queue", "mine", "open"]) {
      const list = $(`${kind}-list`);
      const items = groups[kind].map((t) => ticketItem(t, kind));
      if (!items.length) {
        const key = { queue: "tEmptyQueue", mine: "tEmptyMine", open: "tEmptyOpen" }[kind];
        items.push(el("li", "empty", T[key]));
      }
      list.replaceChildren(...items);
      $(`count-${kind}`).textContent = groups[kind].length;
    }
    if (state.open) renderHeader();
  }
  function showTab(tab) {
    state.tab = tab;
    for (const name of ["queue", "mine", "open"]) {
      $(`${name}-list`).hidden = name !== tab;
      $(`tab-${name}`).classList.toggle("active", name === tab);
    }
  }

  // --- state -----------------------------------------------------------------------------------------------

  async function loadState() {
    const data = await api(T.stateUrl);
    const firstLoad = !state.stateLoaded;
    state.me = data.me;
    state.labels = data.labels;
    state.groups = data.groups;
    state.agents = new Map(data.agents.map((a) => [a.user_id, a]));
    const fresh = new Map();
    for (const row of [...data.queue, ...data.mine, ...data.open]) {
      const old = state.tickets.get(row.id);
      const keep = old && old.version > row.version;
      fresh.set(row.id, keep ? old : Object.assign({}, fresh.get(row.id) || {}, row));
    }
    if (state.open && state.open.ticketId && !fresh.has(state.open.ticketId) && state.tickets.has(state.open.ticketId)) {
      fresh.set(state.open.ticketId, state.tickets.get(state.open.ticketId));
    }
    state.tickets = fresh;
    state.stateLoaded = true;
    $("me-name").textContent = state.me.name;
    const presence = $("presence");
    presence.disabled = !state.me.agent;
    if (state.me.presence === "online" || state.me.presence === "away") presence.value = state.me.presence;
    $("tab-open").hidden = !state.me.supervisor;
    fillTransferTargets();
    renderLists();
    if (firstLoad && state.me.agent && state.me.presence === "offline") {
      setPresence("online"); // opening the console means being at work; "away" is kept across reloads
    }
  }

  // --- socket ----------------------------------------------------------------------------------------------

  function setStatus(text, online) {
    $("ws-status").textContent = text;
    $("ws-status").className = "status" + (online ? " online" : "");
  }
  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}${T.wsUrl}`);
    socket = ws;
    ready = false;
    ws.onopen = () => {
      retry = 0;
      send({ type: "hello", since: state.since, conversation_id: state.open ? state.open.id : null });
    };
    ws.onmessage = (ev) => {
      let message;
      try { message = JSON.parse(ev.data); } catch (_e) { return; }
      receive(message);
    };
    ws.onclose = (ev) => {
      if (socket !== ws) return;
      ready = false;
      if (ev.code === 4401) { location.reload(); return; }
      if (ev.code === 4403) { setStatus(T.tError, false); return; }
      setStatus(T.tReconnecting, false);
      retry = Math.min(retry + 1, 6);
      setTimeout(() => { if (socket === ws) connect(); }, retry === 1 ? 200 : 500 * retry);
    };
  }
  function receive(message) {
    if (message.event) {
      const key = `${message.group}:${message.seq}`;
      if (state.seen.has(key)) return;
      state.seen.add(key);
      if (state.seen.size > SEEN_MAX) {
        let drop = state.seen.size - SEEN_MAX / 2;
        for (const k of state.seen) { if (drop-- <= 0) break; state.seen.delete(k); }
      }
      state.since[message.group] = Math.max(state.since[message.group] || 0, message.seq);
      dispatch(message.event, message.payload || {});
      return;
    }
    if (message.type === "ping") send({ type: "heartbeat" }); // the server keeps the beat (~15 s), see consumers.py
    else if (message.type === "ready") onReady(message);
    else if (message.type === "error" && message.code === "not_found" && state.open && message.conversation_id === state.open.id) {
      notice(T.tNotFound, "error");
      $("conversation-title").textContent = "";
    }
  }
  function onReady(message) {
    for (const [group, seq] of Object.entries(message.seq || {})) {
      state.since[group] = Math.max(state.since[group] || 0, seq);
    }
    const reload = message.reload || [];
    ready = true;
    setStatus(T.tOnline, true);
    const conversationGroup = state.open ? `conversation.${state.open.id}` : null;
    if (!state.stateLoaded || reload.some((g) => !g.startsWith("conversation."))) {
      loadState().catch((e) => notice(e.message, "error"));
    }
    if (state.open && message.conversation_id === state.open.id && (reload.includes(conversationGroup) || state.open.pending)) {
      state.open.pending = false;
      loadConversation().catch((e) => notice(e.message, "error"));
    }
  }
  function dispatch(event, payload) {
    switch (event) {
      case "ticket.queued":
      case "ticket.assigned":
      case "ticket.updated":
        onTicketEvent(payload);
        break;
      case "queue.position":
        for (const row of payload.queue || []) {
          const t = state.tickets.get(row.ticket_id);
          if (t) t.position = row.position;
          else fetchTicket(row.ticket_id);
        }
        renderLists();
        break;
      case "agent.presence": {
        const agent = state.agents.get(payload.user_id);
        if (agent) { agent.presence = payload.presence; fillTransferTargets(); }
        if (state.me && payload.user_id === state.me.id && ["online", "away"].includes(payload.presence)) {
          $("presence").value = payload.presence;
        }
        break;
      }
      case "message.created":
        if (state.open && payload.conversation_id === state.open.id) addMessage(payload);
        break;
      case "conversation.updated":
        if (state.open && payload.conversation_id === state.open.id) {
          if (payload.status) { state.open.status = payload.status; renderHeader(); }
          if (payload.message_id && payload.delivery) setDelivery(payload.message_id, payload.delivery, payload.reason_label);
        }
        break;
      case "channel.limit_warning": // supervisors: a sending account reached 80 % of its hourly limit
        if (payload.message) notice(payload.message, "error");
        break;
      default:
        break;
    }
  }
  function onTicketEvent(payload) {
    const t = payload.ticket;
    if (!t) return;
    const row = upsert(t);
    if (payload.action === "created" && typeof payload.position === "number") row.position = payload.position;
    const me = state.me ? state.me.id : null;
    const isOpen = state.open && t.conversation_id === state.open.id;
    if (!isOpen && t.assignee_id === me && (payload.action === "customer_message" || payload.action === "customer_replied" ||
        (payload.actor_id !== me && ["assigned", "transferred", "claimed"].includes(payload.action)))) {
      state.unread.add(t.id);
    }
    if (isOpen) {
      if (!state.open.ticketId || t.id >= state.open.ticketId) state.open.ticketId = t.id;
      if (!QUIET_ACTIONS.includes(payload.action)) scheduleTimeline(); // these add nothing the timeline shows
    }
    renderLists();
  }

  // --- one conversation ------------------------------------------------------------------------------------

  function openConversation(conversationId) {
    const sameConversation = state.open && state.open.id === conversationId;
    if (!sameConversation) userMode = "reply";
    state.open = { id: conversationId, ticketId: null, customerId: null, status: null, pending: true };
    for (const t of state.tickets.values()) if (t.conversation_id === conversationId) state.unread.delete(t.id);
    if (!sameConversation) {
      $("transcript").replaceChildren();
      $("composer").hidden = true;
      $("customer-card").hidden = true;
    }
    notice("");
    $("conversation-title").textContent = "…";
    renderLists();
    if (ready) {
      send({ type: "open", conversation_id: conversationId, since: null }); // its "ready" loads the conversation
    } else {
      state.open.pending = false;
      loadConversation().catch((e) => notice(e.message, "error"));
    }
  }
  async function loadConversation() {
    const open = state.open;
    if (!open) return;
    let data;
    try {
      data = await api(urlFor(T.conversationUrl, open.id));
    } catch (e) {
      if (state.open === open) {
        notice(e.message, "error");
        $("conversation-title").textContent = "";
      }
      return;
    }
    if (state.open !== open) return;
    open.customerId = data.conversation.customer_id;
    open.status = data.conversation.status;
    open.name = data.conversation.customer_name;
    open.channel = data.conversation.channel;
    if (data.ticket) {
      upsert(data.ticket);
      open.ticketId = data.ticket.id;
    }
    for (const m of data.messages) addMessage(m);
    renderTimeline(data.timeline);
    renderCard(data.card);
    renderLists();
    scrollDown();
  }
  let timelineTimer = null;
  function scheduleTimeline() {
    clearTimeout(timelineTimer);
    timelineTimer = setTimeout(async () => {
      const open = state.open;
      if (!open) return;
      try {
        const data = await api(urlFor(T.timelineUrl, open.id));
        if (state.open === open) renderTimeline(data.timeline);
      } catch (_e) { /* the next event or reconnect reloads it */ }
    }, 80);
  }

  function insertOrdered(li) {
    const list = $("transcript");
    if (list.querySelector(`[data-key="${li.dataset.key}"]`)) return; // a message both fetched and pushed
    const ts = Number(li.dataset.ts);
    let before = null;
    for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
      if (Number(node.dataset.ts) <= ts) break;
      before = node;
    }
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    list.insertBefore(li, before);
    if (atBottom) scrollDown();
  }
  function scrollDown() {
    const list = $("transcript");
    list.scrollTop = list.scrollHeight;
  }
  function traceSummary(trace) {
    const bits = [trace.kind, trace.stage];
    if (trace.intent) bits.push(typeof trace.intent === "object" ? trace.intent.name : trace.intent);
    const score = trace.score !== undefined ? trace.score : trace.confidence;
    if (typeof score === "number") bits.push(score.toFixed(2));
    const reason = trace.handoff || trace.handoff_reason || trace.reason;
    if (reason) bits.push(`→ ${label("reason", reason)}`);
    if (typeof trace.elapsed_ms === "number") bits.push(`${trace.elapsed_ms.toFixed(1)} ms`);
    return bits.filter(Boolean).join(" · ");
  }
  function showsTrace(m) {
    if (!m.trace || typeof m.trace !== "object") return false;
    if (m.sender === "bot") return true;
    // a customer message the bot did not answer: why (hand-off, CSAT answer, ignored event)
    return m.direction === "in" && (Boolean(m.trace.handoff) || ["handoff", "ignore", "csat"].includes(m.trace.kind));
  }
  function addMessage(m) {
    const li = el("li", `msg ${m.direction} ${m.sender}`);
    li.dataset.key = `m${m.id}`;
    li.dataset.messageId = m.id;
    li.dataset.sender = m.sender;
    li.dataset.ts = new Date(m.created_at).getTime() || Date.now();
    const head = el("span", "who", label("sender", m.sender) || m.sender);
    const when = el("time", "when", hhmm(m.created_at));
    head.append(" ", when);
    const bubble = el("span", "bubble", m.content); // always text, never HTML
    li.append(head, bubble);
    if (m.direction === "out") {
      const status = el("span", "delivery", label("message_status", m.status));
      status.dataset.status = m.status;
      const why = blockedReason(m); // a reply a sensitive word kept from the customer: say which words
      if (why) status.textContent = `${status.textContent} (${why})`;
      li.append(status);
    }
    if (showsTrace(m)) {
      const details = el("details", "trace");
      details.append(el("summary", null, `${T.tTrace}: ${traceSummary(m.trace)}`));
      details.append(el("pre", null, JSON.stringify(m.trace, null, 2)));
      li.append(details);
    }
    insertOrdered(li);
  }
  function blockedReason(m) {
    const s = m && m.status === "blocked" && m.trace && m.trace.sensitive;
    return s && s.reason_label ? s.reason_label : "";
  }
  function setDelivery(messageId, delivery, reasonLabel) {
    const li = $("transcript").querySelector(`[data-key="m${messageId}"]`);
    const status = li && li.querySelector(".delivery");
    if (!status) return;
    const known = (state.labels.message_status || {})[delivery];
    const text = known || (delivery === "held" ? T.tDeliveryHeld : delivery);
    status.textContent = reasonLabel ? `${text} (${reasonLabel})` : text;
    status.dataset.status = delivery;
  }
  function agentName(id) {
    const agent = state.agents.get(id);
    return agent ? agent.name : id ? `#${id}` : "";
  }
  function groupName(id) {
    const group = state.groups.find((g) => g.id === id);
    return group ? group.name : "";
  }
  function renderTimeline(items) {
    for (const node of $("transcript").querySelectorAll("li.event")) node.remove();
    for (const e of items) {
      if (HIDDEN_EVENTS.includes(e.kind)) continue;
      const isNote = e.kind === "note" || (e.text && ["transferred", "returned_to_bot"].includes(e.kind));
      const li = el("li", `event ${e.kind}` + (isNote ? " note" : ""));
      li.dataset.key = `e${e.id}`;
      li.dataset.kind = e.kind;
      li.dataset.ts = new Date(e.created_at).getTime();
      const bits = [e.kind === "note" ? T.tNote : label("event", e.kind)];
      if (e.actor) bits.push(fmt(T.tBy, { name: agentName(e.actor_id) || e.actor }));
      if (["assigned", "transferred"].includes(e.kind) && e.assignee_id) bits.push(fmt(T.tTo, { name: agentName(e.assignee_id) }));
      else if (["transferred", "requeued", "created"].includes(e.kind) && e.group_id) bits.push(fmt(T.tTo, { name: groupName(e.group_id) }));
      if (e.kind === "created" && e.data && e.data.reason) bits.push(label("reason", e.data.reason));
      if (e.kind === "resolved" && e.data && e.data.category) bits.push(label("category", e.data.category));
      if (e.kind === "csat" && e.data && e.data.score) bits.push(fmt(T.tCsat, { n: e.data.score }));
      const head = el("span", "who", bits.filter(Boolean).join(" · "));
      head.append(" ", el("time", "when", hhmm(e.created_at)));
      li.append(head);
      if (e.text) li.append(el("span", "bubble", e.text));
      insertOrdered(li);
    }
  }

  function currentTicket() {
    return state.open && state.open.ticketId ? state.tickets.get(state.open.ticketId) : null;
  }
  function renderHeader() {
    const open = state.open;
    if (!open) return;
    const t = currentTicket();
    if (open.name !== undefined) {
      $("conversation-title").textContent = `${open.name}` + (open.channel ? ` · ${open.channel}` : "");
    }
    const badges = [];
    if (t) {
      badges.push(el("span", `badge status status-${t.status}`, label("status", t.status)));
      badges.push(el("span", `badge prio prio-${t.priority}`, label("priority", t.priority)));
      if (t.tier) badges.push(el("span", `badge tier tier-${t.tier}`, label("tier", t.tier)));
      if (t.group_name) badges.push(el("span", "badge group", t.group_name));
      if (t.assignee_name) badges.push(el("span", "badge assignee", t.assignee_name));
      badges.push(el("span", "badge reason", label("reason", t.reason)));
      if (t.sla_breached) badges.push(el("span", "badge sla", T.tSlaBreached));
      if (t.csat_score) badges.push(el("span", "badge csat", fmt(T.tCsat, { n: t.csat_score })));
    } else if (open.status) {
      badges.push(el("span", "badge status", label("conversation", open.status)));
    }
    $("ticket-badges").replaceChildren(...badges);
    const me = state.me || {};
    const isOpenTicket = t && (t.status === "queued" || WITH_AGENT.includes(t.status));
    const handler = t && (t.assignee_id === me.id || me.supervisor);
    const queued = t && t.status === "queued";
    $("conv-actions").hidden = !isOpenTicket;
    $("claim-button").hidden = !(queued && (me.supervisor || (me.agent && inMyGroups(t))));
    $("transfer-button").hidden = !(isOpenTicket && (queued || handler));
    $("return-button").hidden = !(isOpenTicket && (queued || handler));
    $("resolve-button").hidden = !(t && WITH_AGENT.includes(t.status) && handler);
    const canReply = t && WITH_AGENT.includes(t.status) && handler;
    $("composer").hidden = !isOpenTicket;
    $("mode-reply").disabled = !canReply;
    const wanted = canReply ? userMode : "note";
    if (mode() !== wanted) { $(`mode-${wanted}`).checked = true; setMode(); }
    $("conv-hint").textContent = !t || !isOpenTicket ? T.tEnded : queued ? T.tReadOnly : !handler ? T.tNotYours : "";
  }

  function renderCard(card) {
    $("customer-card").hidden = false;
    $("card-name").textContent = card.name || card.nickname || `#${card.customer_id}`;
    const tier = $("card-tier");
    tier.textContent = label("tier", card.tier);
    tier.className = card.tier ? `tier tier-${card.tier}` : "";
    $("card-segment").textContent = card.segment_label || "—";
    $("card-score").textContent = card.rfm_score !== null && card.rfm_score !== undefined
      ? `${card.rfm_score}` + (card.rfm ? ` (R${card.rfm.r} F${card.rfm.f} M${card.rfm.m})` : "") : "—";
    $("card-orders-count").textContent = card.orders_count;
    $("card-ltv").textContent = `¥${card.lifetime_value}`;
    $("card-accounts").textContent = card.accounts.map((a) => `${a.channel}/${a.nickname || a.customer_id}`).join(", ");
    const pii = card.pii || {}; // personal data: showing it is recorded in the audit log (pii_view)
    $("card-real-name").textContent = pii.real_name || "—";
    $("card-phone").textContent = pii.phone || "—";
    $("card-address").textContent = pii.address || "—";
    const sub = $("card-subscription");
    sub.textContent = card.unsubscribed ? sub.dataset.off : sub.dataset.on;
    const tags = card.tags.map((name) => el("li", "tag", name));
    $("card-tags").replaceChildren(...(tags.length ? tags : [el("li", "empty", T.tNoTags)]));
    const orders = card.recent_orders.map((o) => {
      const li = el("li");
      li.append(el("span", "number", o.number), el("span", "amount", `¥${o.amount}`), el("span", "state", o.status_label));
      if (o.paid_at) li.append(el("time", null, day(o.paid_at)));
      return li;
    });
    $("card-orders").replaceChildren(...(orders.length ? orders : [el("li", "empty", T.tNoOrders)]));
    const convs = card.conversations.map((c) => {
      const li = el("li");
      const current = state.open && c.id === state.open.id;
      const text = `#${c.id} · ` + fmt(T.tConversationLine, { date: day(c.created_at), status: label("conversation", c.status), n: c.messages });
      const button = el("button", "link", text);
      button.type = "button";
      button.dataset.conversationId = c.id;
      button.disabled = current;
      li.append(button);
      if (current) li.append(el("span", "status", ` (${T.tThisConversation})`));
      return li;
    });
    $("card-conversations").replaceChildren(...convs);
  }

  // --- composer: replies, notes, canned replies ------------------------------------------------------------

  const input = $("reply-input");
  const menu = $("canned-menu");
  let cannedItems = [];
  let cannedIndex = 0;
  let cannedTimer = null;
  function mode() {
    return $("mode-note").checked ? "note" : "reply";
  }
  function setMode() {
    const note = mode() === "note";
    $("composer").classList.toggle("note-mode", note);
    input.placeholder = note ? input.dataset.placeholderNote : input.dataset.placeholderReply;
  }
  function hideMenu() {
    menu.hidden = true;
    cannedItems = [];
  }
  function renderMenu() {
    if (!cannedItems.length) {
      menu.replaceChildren(el("li", "empty", T.tNoCanned));
      menu.hidden = false;
      return;
    }
    menu.replaceChildren(...cannedItems.map((c, i) => {
      const li = el("li", i === cannedIndex ? "active" : "");
      li.setAttribute("role", "option");
      li.dataset.index = i;
      li.append(el("b", null, `/${c.shortcut}`), el("span", "title", c.title), el("span", "text", c.text));
      return li;
    }));
    menu.hidden = false;
  }
  async function searchCanned(query) {
    try {
      const data = await api(`${T.cannedUrl}?q=${encodeURIComponent(query)}`);
      if (!input.value.startsWith("/")) return;
      cannedItems = data.replies;
      cannedIndex = 0;
      renderMenu();
    } catch (_e) { hideMenu(); }
  }
  function pickCanned(index) {
    const c = cannedItems[index];
    if (!c) return;
    const me = state.me || {};
    input.value = c.text.replace(/\{agent\}/g, me.name || "");
    hideMenu();
    input.focus();
  }
  input.addEventListener("input", () => {
    const value = input.value;
    if (value.startsWith("/") && !value.includes("\n") && value.length <= 41) {
      clearTimeout(cannedTimer);
      cannedTimer = setTimeout(() => searchCanned(value.slice(1)), 100);
    } else {
      hideMenu();
    }
  });
  input.addEventListener("keydown", (ev) => {
    if (!menu.hidden && cannedItems.length) {
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        cannedIndex = (cannedIndex + (ev.key === "ArrowDown" ? 1 : cannedItems.length - 1)) % cannedItems.length;
        renderMenu();
        return;
      }
      if (ev.key === "Enter" || ev.key === "Tab") { ev.preventDefault(); pickCanned(cannedIndex); return; }
    }
    if (ev.key === "Escape") { hideMenu(); return; }
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $("composer").requestSubmit();
    }
  });
  menu.addEventListener("mousedown", (ev) => {
    const li = ev.target.closest("li[data-index]");
    if (li) { ev.preventDefault(); pickCanned(Number(li.dataset.index)); }
  });
  for (const radio of [$("mode-reply"), $("mode-note")]) {
    radio.addEventListener("change", () => { userMode = mode(); setMode(); });
  }

  $("composer").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = currentTicket();
    const text = input.value.trim();
    if (!t || !text) return;
    const note = mode() === "note";
    $("send-button").disabled = true;
    try {
      const data = await api(urlFor(T.actionUrl, t.id, note ? "note" : "reply"), { text });
      input.value = "";
      hideMenu();
      if (data.message && state.open && data.message.conversation_id === state.open.id) addMessage(data.message);
      if (note) scheduleTimeline();
      const blocked = !note && blockedReason(data.message);
      notice(blocked ? `${T.tNotSent} ${blocked}` : note ? T.tNoteSaved : T.tSent, blocked ? "error" : "ok");
    } catch (e) {
      notice(e.message, "error");
    } finally {
      $("send-button").disabled = false;
      input.focus();
    }
  });

  // --- actions ---------------------------------------------------------------------------------------------

  async function act(ticketId, action, body, okText) {
    try {
      const data = await api(urlFor(T.actionUrl, ticketId, action), body || {});
      if (data.ticket) upsert(data.ticket);
      renderLists();
      notice(okText, "ok");
      return data;
    } catch (e) {
      notice(e.message, "error");
      fetchTicket(ticketId);
      return null;
    }
  }
  async function claim(ticketId) {
    const data = await act(ticketId, "claim", {}, T.tClaimed);
    if (data && data.ticket) {
      showTab("mine");
      if (!state.open || state.open.id !== data.ticket.conversation_id) openConversation(data.ticket.conversation_id);
      userMode = "reply";
      renderHeader();
    }
  }
  for (const kind of ["queue", "mine", "open"]) {
    $(`${kind}-list`).addEventListener("click", (ev) => {
      const button = ev.target.closest("button.claim");
      if (button) {
        const t = state.tickets.get(Number(button.dataset.ticketId));
        if (t && (!state.open || state.open.id !== t.conversation_id)) openConversation(t.conversation_id);
        claim(Number(button.dataset.ticketId));
        return;
      }
      const li = ev.target.closest("li[data-ticket-id]");
      if (li) openConversation(Number(li.dataset.conversationId));
    });
  }
  for (const tab of ["queue", "mine", "open"]) $(`tab-${tab}`).addEventListener("click", () => showTab(tab));
  $("card-conversations").addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-conversation-id]");
    if (button) openConversation(Number(button.dataset.conversationId));
  });
  $("claim-button").addEventListener("click", () => { const t = currentTicket(); if (t) claim(t.id); });

  function fillTransferTargets() {
    const me = state.me || {};
    const agents = $("transfer-agent");
    const keep = agents.value;
    const options = [new Option("—", "")];
    for (const a of state.agents.values()) {
      if (a.user_id === me.id) continue;
      options.push(new Option(`${a.name} · ${label("presence", a.presence)} · ${a.load}/${a.capacity}`, a.user_id));
    }
    agents.replaceChildren(...options);
    agents.value = keep;
    const groups = $("transfer-group");
    const keepGroup = groups.value;
    groups.replaceChildren(new Option("—", ""), ...state.groups.map((g) => new Option(g.name, g.id)));
    groups.value = keepGroup;
  }
  function dialog(id) {
    return $(id);
  }
  $("transfer-button").addEventListener("click", () => {
    $("transfer-error").textContent = "";
    $("transfer-note").value = "";
    $("transfer-agent").value = "";
    $("transfer-group").value = "";
    dialog("transfer-dialog").showModal();
  });
  $("transfer-cancel").addEventListener("click", () => dialog("transfer-dialog").close());
  $("transfer-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = currentTicket();
    if (!t) return;
    const body = { agent_id: $("transfer-agent").value || null, group_id: $("transfer-group").value || null, note: $("transfer-note").value };
    try {
      const data = await api(urlFor(T.actionUrl, t.id, "transfer"), body);
      upsert(data.ticket);
      dialog("transfer-dialog").close();
      renderLists();
      notice(T.tTransferred, "ok");
    } catch (e) {
      $("transfer-error").textContent = e.message;
    }
  });
  $("resolve-button").addEventListener("click", () => dialog("resolve-dialog").showModal());
  $("resolve-cancel").addEventListener("click", () => dialog("resolve-dialog").close());
  $("resolve-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = currentTicket();
    dialog("resolve-dialog").close();
    if (t) await act(t.id, "resolve", { category: $("resolve-category").value }, T.tResolved);
  });
  $("return-button").addEventListener("click", () => { $("return-note").value = ""; dialog("return-dialog").showModal(); });
  $("return-cancel").addEventListener("click", () => dialog("return-dialog").close());
  $("return-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = currentTicket();
    dialog("return-dialog").close();
    if (t) await act(t.id, "return", { note: $("return-note").value }, T.tReturned);
  });
  async function setPresence(wanted) {
    const select = $("presence");
    try {
      const data = await api(T.presenceUrl, { status: wanted });
      select.value = data.presence;
      if (state.me) state.me.presence = data.presence;
    } catch (e) {
      notice(e.message, "error");
      if (state.me && ["online", "away"].includes(state.me.presence)) select.value = state.me.presence;
    }
  }
  $("presence").addEventListener("change", (ev) => setPresence(ev.target.value));

  setInterval(() => { if (state.stateLoaded) renderLists(); }, 30000); // "waiting N min"
  setStatus(T.tConnecting, false);
  connect();
})();
