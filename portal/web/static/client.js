// Hearth web client. Speaks Evennia's wire format (["cmdname", [args], {kwargs}]) over a
// websocket, or over ajax long polls when no websocket can be opened (or with ?ajax in
// the page address). Reconnects by itself with back-off; a refreshed page sends the same
// secret page id (kept per tab in sessionStorage), so the portal gives it its session
// back, logged in. The secret never goes into a URL (proxies log those): the websocket
// offers it as a `hearth.secret.<id>` subprotocol (a header) beside v1.evennia.com, ajax
// posts it as the form's csessid. cuid is new at every page load: a duplicated tab (which
// copies sessionStorage) gets a session of its own instead of taking over the original's.
// Output HTML comes from the portal, which escapes everything players typed; this file
// never builds HTML from text (the side panel is filled with textContent only).
// On connect it asks for GMCP's Room, Char and Char.Items packages (Core.Supports.Set),
// and shows the room, its exits as buttons, what is here and what is carried from them.
"use strict";

(function () {
  const SCROLLBACK = 2000;              // lines kept in the page
  const DELAYS = [1, 2, 3, 5, 8, 13, 20, 30]; // reconnect back-off, seconds
  const HISTORY = 200;

  const output = document.getElementById("output");
  const input = document.getElementById("input");
  const form = document.getElementById("line");
  const promptLabel = document.getElementById("prompt");
  const statusLine = document.getElementById("status");
  const panel = document.getElementById("panel");
  const roomName = document.getElementById("room-name");
  const roomArea = document.getElementById("room-area");
  const exitsBox = document.getElementById("exits");
  const lists = { room: document.getElementById("room-items"),
                  inv: document.getElementById("inventory") };
  const vitalsLine = document.getElementById("vitals");
  const SUPPORTS = ["Room 1", "Char 1", "Char.Items 1"];
  const COMPASS = ["n", "ne", "e", "se", "s", "sw", "w", "nw", "u", "d", "in", "out"];
  const query = new URLSearchParams(location.search);

  function randomId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function pageId(name) {
    let id = sessionStorage.getItem(name);
    if (!id) {
      id = randomId();
      sessionStorage.setItem(name, id);
    }
    return id;
  }

  const csessid = pageId("hearth.secret"); // never in a URL: see the top of this file
  const cuid = randomId();
  const browser = (navigator.userAgentData && navigator.userAgentData.brands.length)
    ? navigator.userAgentData.brands[navigator.userAgentData.brands.length - 1].brand
    : (navigator.userAgent.match(/(firefox|chrome|safari|edg)/i) || ["other"])[0];

  // ------------------------------------------------------------------ output

  function atBottom() {
    return output.scrollHeight - output.scrollTop - output.clientHeight < 40;
  }

  // The output follows new lines while the player has not scrolled up, also when it gets
  // smaller (the side panel grows under it on a phone).
  // Only a scroll the player made decides it (not the page's own, whose event may come
  // after more lines were added).
  let stick = true;
  let ownScroll = false;
  function toBottom() {
    if (output.scrollTop + output.clientHeight >= output.scrollHeight) return;
    ownScroll = true;
    output.scrollTop = output.scrollHeight;
  }
  output.addEventListener("scroll", () => {
    if (ownScroll) { ownScroll = false; return; }
    stick = atBottom();
  });
  if (window.ResizeObserver) {
    new ResizeObserver(() => { if (stick) toBottom(); }).observe(output);
  }

  function append(html, cls) {
    const follow = stick || atBottom();
    const line = document.createElement("div");
    if (cls) line.className = cls;
    line.innerHTML = html; // portal-rendered, escaped HTML
    output.appendChild(line);
    while (output.childElementCount > SCROLLBACK) output.firstElementChild.remove();
    if (follow) toBottom();
  }

  function note(text, cls) {
    const follow = stick || atBottom();
    const line = document.createElement("div");
    line.className = cls || "note";
    line.textContent = text;
    output.appendChild(line);
    if (follow) toBottom();
  }

  function setStatus(text, cls) {
    statusLine.textContent = text;
    statusLine.className = cls || "";
  }

  function setPrompt(html) {
    promptLabel.innerHTML = html || "&gt;";
  }

  function setHidden(hidden) {
    input.type = hidden ? "password" : "text";
    input.setAttribute("aria-label", hidden ? "Password (hidden)" : "Command");
    if (!hidden) setPrompt(""); // the question ("Password:") was answered
  }

  // After a hidden line the game sends an empty line (a telnet client showed no Enter);
  // the page already noted "(hidden)", so that one empty line is not shown.
  let skipBlank = false;

  function showText(args) {
    const text = args[0] === undefined || args[0] === null ? "" : String(args[0]);
    if (skipBlank && text === "") { skipBlank = false; return; }
    skipBlank = false;
    append(text);
  }

  // ------------------------------------------------------------------ the side panel

  const items = { room: new Map(), inv: new Map() };

  function sendLine(line) {
    note(line, "echo");
    link.send(["text", [line], {}]);
  }

  function showPanel() {
    if (!panel.hidden) return;
    const follow = atBottom(); // the output gets smaller: keep its last line in view
    panel.hidden = false;
    if (follow) toBottom();
  }

  function showRoom(info) {
    showPanel();
    roomName.textContent = String(info.name || "");
    roomArea.textContent = [info.area, info.environment].filter(Boolean).join(" · ");
    const exits = (info.exits && typeof info.exits === "object") ? Object.keys(info.exits) : [];
    const rank = (dir) => { const i = COMPASS.indexOf(dir); return i < 0 ? COMPASS.length : i; };
    exits.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    exitsBox.replaceChildren(...exits.map((dir) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = dir;
      button.dataset.exit = dir;
      button.title = `go ${dir}`;
      button.addEventListener("click", () => { sendLine(dir); input.focus(); });
      return button;
    }));
    exitsBox.classList.remove("wrong");
  }

  function showItems(where) {
    const list = lists[where];
    if (!list) return;
    const entries = Array.from(items[where].values());
    if (!entries.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = where === "inv" ? "nothing" : "nothing special";
      list.replaceChildren(empty);
      return;
    }
    list.replaceChildren(...entries.map((item) => {
      const li = document.createElement("li");
      li.textContent = String(item.name || "");
      li.dataset.id = String(item.id);
      return li;
    }));
  }

  function itemsEvent(kind) {
    return (args, kwargs) => {
      const where = kwargs.location;
      if (!items[where]) return;
      if (kind === "list") {
        items[where] = new Map((Array.isArray(kwargs.items) ? kwargs.items : [])
          .filter((item) => item && item.id !== undefined).map((item) => [String(item.id), item]));
      } else if (kwargs.item && kwargs.item.id !== undefined) {
        const id = String(kwargs.item.id);
        if (kind === "remove") items[where].delete(id);
        else items[where].set(id, kwargs.item);
      }
      showPanel();
      showItems(where);
    };
  }

  function showVitals(args, kwargs) {
    if (kwargs.hp !== undefined) vitalsLine.textContent = `HP ${kwargs.hp}/${kwargs.maxhp || "?"}` +
      (kwargs.mp !== undefined ? `  MP ${kwargs.mp}/${kwargs.maxmp || "?"}` : "");
  }

  function wrongWay() {
    exitsBox.classList.add("wrong");
    setTimeout(() => exitsBox.classList.remove("wrong"), 600);
  }

  const handlers = {
    text: showText,
    prompt: (args) => setPrompt(String(args[0] || "")),
    echo: (args, kwargs) => setHidden(Boolean("hidden" in kwargs ? kwargs.hidden : args[0])),
    room_info: (args, kwargs) => showRoom(kwargs),
    "Room.WrongDir": wrongWay,
    room_wrongdir: wrongWay,
    char_items_list: itemsEvent("list"),
    char_items_add: itemsEvent("add"),
    char_items_remove: itemsEvent("remove"),
    char_items_update: itemsEvent("update"),
    char_vitals: showVitals,
    logged_in: () => setStatus("connected, logged in", "ok"),
    connection_close: (args, kwargs) => link.serverClosed(kwargs.restarting, args[0]),
    ajax_keepalive: () => link.send(null, "keepalive"),
  };

  function receive(data) {
    if (!Array.isArray(data) || typeof data[0] !== "string") return;
    const handler = handlers[data[0]];
    if (handler) handler(data[1] || [], data[2] || {});
  }

  // ------------------------------------------------------------------ transports

  function wsUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // Evennia's `csessid&cuid&browser`, with no csessid: the secret travels in a header
    return `${scheme}//${location.host}/ws?&${cuid}&${encodeURIComponent(browser)}`;
  }

  function WebsocketTransport(events) {
    // throws where the browser has no WebSocket or refuses to make one: see connect()
    let socket = new WebSocket(wsUrl(), ["v1.evennia.com", `hearth.secret.${csessid}`]);
    socket.onopen = () => events.open("websocket");
    socket.onmessage = (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      receive(data);
    };
    socket.onclose = () => { socket = null; events.closed(); };
    return {
      send(message) { if (socket && socket.readyState === 1) socket.send(JSON.stringify(message)); },
      close() { if (socket) socket.close(1000, "the player closed the page"); },
    };
  }

  function AjaxTransport(events) {
    let alive = true;
    let chain = Promise.resolve(); // inputs go one after another, in order

    function post(fields, timeout) {
      const body = new URLSearchParams({ csessid, cuid, ...fields });
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(), timeout);
      return fetch("/webclientdata", { method: "POST", body, signal: ctl.signal, cache: "no-store" })
        .then((r) => {
          clearTimeout(timer);
          if (r.status === 410) throw new Error("gone");
          if (!r.ok) throw new Error(`HTTP ${r.status}`);
          return r.json();
        });
    }

    function fail() {
      if (!alive) return;
      alive = false;
      events.closed();
    }

    function poll() {
      if (!alive) return;
      post({ mode: "receive", batch: "1" }, 60000).then((data) => {
        if (Array.isArray(data) && Array.isArray(data[0])) data.forEach(receive);
        else receive(data);
        poll();
      }, fail);
    }

    post({ mode: "init", browserstr: browser }, 20000).then(() => {
      events.open("ajax");
      poll();
    }, fail);

    return {
      send(message, mode) {
        const fields = { mode: mode || "input", data: JSON.stringify(message || "") };
        chain = chain.then(() => post(fields, 30000)).catch(fail);
      },
      close() {
        alive = false;
        navigator.sendBeacon("/webclientdata",
          new URLSearchParams({ mode: "close", csessid, cuid }));
      },
    };
  }

  // ------------------------------------------------------------------ the connection

  const link = {
    kind: query.has("ajax") ? "ajax" : "websocket",
    wsEverOpened: false,
    transport: null,
    open: false,
    attempt: 0,
    generation: 0, // events of an older transport are ignored
    opens: 0, // connections opened in this page's life (tests read it)
    timer: null,
    closedByServer: false,
    restarting: false,

    connect() {
      clearInterval(this.timer);
      this.timer = null;
      this.closedByServer = false;
      setStatus(this.attempt ? "reconnecting…" : "connecting…", "warn");
      const generation = ++this.generation;
      const events = {
        open: (how) => { if (generation === this.generation) this.opened(how); },
        closed: () => { if (generation === this.generation) this.closed(); },
      };
      if (this.kind === "websocket") {
        try {
          this.transport = WebsocketTransport(events);
          return;
        } catch (e) { // no WebSocket, or its constructor threw: long polling instead
          note("No websocket; using long polling instead.");
          this.kind = "ajax";
        }
      }
      this.transport = AjaxTransport(events);
    },

    opened(how) {
      this.open = true;
      this.opens += 1;
      if (how === "websocket") this.wsEverOpened = true;
      if (this.attempt || this.restarting) note("Connected again.");
      this.attempt = 0;
      this.restarting = false;
      document.body.dataset.transport = how;
      setStatus("connected", "ok");
      setHidden(false);
      setPrompt("");
      this.send(["Core.Supports.Set", SUPPORTS, {}]); // Room.Info, Char.Items for the panel
    },

    serverClosed(restarting, reason) {
      this.closedByServer = true;
      this.restarting = Boolean(restarting);
      if (this.restarting) setStatus("the game is restarting", "warn");
    },

    closed() {
      const wasOpen = this.open;
      this.open = false;
      this.transport = null;
      if (!wasOpen && this.kind === "websocket" && !this.wsEverOpened) {
        note("No websocket; using long polling instead.");
        this.kind = "ajax"; // a proxy or browser that will not do websockets
        this.connect();
        return;
      }
      if (this.closedByServer && !this.restarting) {
        setStatus("disconnected — press Enter to connect again", "warn");
        return;
      }
      if (wasOpen && !this.restarting) note("The connection was lost.");
      this.retry();
    },

    retry() {
      let left = DELAYS[Math.min(this.attempt, DELAYS.length - 1)];
      this.attempt += 1;
      const tick = () => {
        setStatus(`${this.restarting ? "the game is restarting; " : ""}reconnecting in ${left} s`, "warn");
        if (left-- <= 0) this.connect();
      };
      tick();
      this.timer = setInterval(tick, 1000);
    },

    send(message, mode) {
      if (this.open && this.transport) this.transport.send(message, mode);
    },
  };

  // ------------------------------------------------------------------ input

  const history = [];
  let historyAt = 0;
  let draft = "";

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const line = input.value;
    input.value = "";
    if (!link.open) {
      if (!link.transport && !link.timer) { link.attempt = 0; link.connect(); }
      return;
    }
    setPrompt(""); // a prompt is a question, and this line answers it
    if (input.type === "password") {
      note("(hidden)", "echo");
      skipBlank = true;
    } else {
      note(line, "echo");
      if (line && history[history.length - 1] !== line) history.push(line);
      if (history.length > HISTORY) history.shift();
    }
    historyAt = history.length;
    link.send(["text", [line], {}]);
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      if (input.type === "password" || !history.length) return;
      event.preventDefault();
      if (historyAt === history.length) draft = input.value;
      historyAt = Math.max(0, Math.min(history.length, historyAt + (event.key === "ArrowUp" ? -1 : 1)));
      input.value = historyAt === history.length ? draft : history[historyAt];
      input.setSelectionRange(input.value.length, input.value.length);
    } else if (event.key === "PageUp" || event.key === "PageDown") {
      event.preventDefault();
      output.scrollBy(0, (event.key === "PageUp" ? -0.9 : 0.9) * output.clientHeight);
    }
  });

  // Typing anywhere goes to the input line; Escape leaves the output to be read.
  document.addEventListener("keydown", (event) => {
    if (document.activeElement !== input && event.key.length === 1 &&
        !event.ctrlKey && !event.metaKey && !event.altKey) {
      input.focus();
    }
  });

  window.hearth = { link, history }; // for tests and the curious
  link.connect();
  input.focus();
})();
