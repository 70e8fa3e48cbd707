"""Telegram commands: long polling ``getUpdates`` of the bot API (TELEGRAM_API_URL), in a thread.

Only messages from the chats of CONTROL_TELEGRAM_CHATS are obeyed; others are ignored and
logged without their content. A message older than the replay window (sent while the bot
was down, say) is ignored too. Commands: /status /pause /resume /cancel_all /flatten /reload;
the answer is sent back to the chat with ``sendMessage``. The token (MM_TELEGRAM_TOKEN) is
part of every request's URL: it is never logged (failures log the exception class only).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Dict, Mapping, Optional, Sequence

import requests

from ..log import register_secret
from .channels import telegram_token
from .commands import Busy, CommandQueue
from .control import COMMAND_TIMEOUT_S, CONTROL_WINDOW_S
from .notify import hide_in_http_logs

log = logging.getLogger("market_maker.ops")

POLL_TIMEOUT_S = 25  # the long poll: Telegram holds the request this long when nothing comes
COMMANDS = {"/pause": "pause", "/resume": "resume", "/cancel_all": "cancel-all", "/flatten": "flatten",
            "/reload": "reload"}


class TelegramCommands:
    def __init__(self, commands: CommandQueue, api_url: str, token: str, chats: Sequence[int],
                 poll_timeout: int = POLL_TIMEOUT_S, clock: Any = time.time):
        self.commands = commands
        self.base = f"{api_url.rstrip('/')}/bot{token}"
        register_secret(token)
        hide_in_http_logs()
        self.chats = frozenset(chats)
        self.poll_timeout = poll_timeout
        self.clock = clock
        self.offset: Optional[int] = None
        self.session = requests.Session()
        self.session.trust_env = False
        self.ignored = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telegram-commands", daemon=True)

    @classmethod
    def from_settings(cls, commands: CommandQueue, settings: Any, environ: Mapping[str, str]) -> "TelegramCommands":
        token = telegram_token(environ, "CONTROL_TELEGRAM_CHATS")
        return cls(commands, settings.TELEGRAM_API_URL, token, settings.CONTROL_TELEGRAM_CHATS)

    def __repr__(self) -> str:
        return f"TelegramCommands(chats={sorted(self.chats)})"

    def start(self) -> None:
        self._thread.start()
        log.info("Telegram commands from chats %s", ", ".join(str(c) for c in sorted(self.chats)))

    def stop(self) -> None:
        self._stop.set()
        self.session.close()
        self._thread.join(5)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                updates = self._get_updates()
                failures = 0
            except (requests.RequestException, ValueError) as exc:
                failures += 1
                if self._stop.is_set():
                    return
                log.warning("Telegram getUpdates failed (%s); retrying", type(exc).__name__)
                self._stop.wait(min(60.0, 0.5 * 2 ** min(failures, 7)))
                continue
            for update in updates:
                self.offset = max(self.offset or 0, int(update.get("update_id", 0)) + 1)
                try:
                    self.handle(update)
                except Exception:  # one odd update must not end the commands
                    log.exception("Telegram update could not be handled")

    def _get_updates(self) -> Sequence[Dict[str, Any]]:
        params: Dict[str, Any] = {"timeout": self.poll_timeout, "allowed_updates": json.dumps(["message"])}
        if self.offset is not None:
            params["offset"] = self.offset
        resp = self.session.get(f"{self.base}/getUpdates", params=params, timeout=self.poll_timeout + 10)
        if resp.status_code != 200:
            raise ValueError(f"HTTP {resp.status_code}")
        body = resp.json()
        if not isinstance(body, dict) or not body.get("ok") or not isinstance(body.get("result"), list):
            raise ValueError("not a getUpdates answer")
        return [u for u in body["result"] if isinstance(u, dict)]

    def handle(self, update: Dict[str, Any]) -> None:
        message = update.get("message") or {}
        chat = (message.get("chat") or {}).get("id")
        text = message.get("text")
        if chat not in self.chats:
            self.ignored += 1
            log.warning("Telegram: ignored a message from a chat not in CONTROL_TELEGRAM_CHATS")
            return
        if not isinstance(text, str) or not isinstance(message.get("date"), int):
            return
        if abs(self.clock() - message["date"]) > CONTROL_WINDOW_S:
            log.warning("Telegram: ignored a command older than %ds", CONTROL_WINDOW_S)
            return
        word = text.strip().split()[0].split("@")[0] if text.strip() else ""
        if word == "/status":
            self.reply(chat, status_text(self.commands.status()))
            return
        name = COMMANDS.get(word)
        if name is None:
            self.reply(chat, "Commands: /status /pause /resume /cancel_all /flatten /reload")
            return
        try:
            result = self.commands.submit(name, f"Telegram chat {chat}").result(COMMAND_TIMEOUT_S)
        except Busy as exc:
            result = {"ok": False, "error": str(exc)}
        except Exception:  # the bot did not run it in time
            result = {"ok": False, "error": "queued; the bot has not run it yet"}
        self.reply(chat, f"{word}: " + json.dumps(result, sort_keys=True))

    def reply(self, chat: int, text: str) -> None:
        try:
            resp = self.session.post(f"{self.base}/sendMessage", json={"chat_id": chat, "text": text[:4000]},
                                     timeout=10)
            if resp.status_code >= 300:
                log.warning("Telegram sendMessage answered HTTP %d", resp.status_code)
        except requests.RequestException as exc:
            log.warning("Telegram sendMessage failed (%s)", type(exc).__name__)


def status_text(status: Dict[str, Any]) -> str:
    pos, pnl, health = status.get("positions") or {}, status["pnl"], status["health"]
    return (f"{status['symbol']}: {'paused (' + status['paused'] + ')' if status['paused'] else 'quoting'}; "
            f"connected {health['connected']}; net position {pos.get('net')}; "
            f"{len(status['open_orders'])} open orders; realised PnL {pnl['realised']}, unrealised "
            f"{pnl['unrealised']}, equity {pnl['equity']}")
