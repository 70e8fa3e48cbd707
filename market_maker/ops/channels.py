"""Notification channels: what NOTIFY_URLS names, where each posts and the JSON it posts.

``discord://`` and ``slack://`` take their incoming-webhook URL from MM_DISCORD_WEBHOOK /
MM_SLACK_WEBHOOK (``discord://NAME``: MM_DISCORD_WEBHOOK_NAME, for several of them);
``telegram://CHAT_ID`` posts ``sendMessage`` to TELEGRAM_API_URL with the bot token of
MM_TELEGRAM_TOKEN; an ``https://`` URL gets a generic JSON post, with
``Authorization: Bearer $MM_WEBHOOK_TOKEN`` when that variable is set. A webhook URL or token
is a secret: it lives only in the environment and in the ``url``/``headers`` of a post,
never in a payload, a label or a log line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence, Tuple
from urllib.parse import urlsplit

from ..settings import SettingsError

ENV_DISCORD, ENV_SLACK, ENV_TELEGRAM, ENV_WEBHOOK_TOKEN = ("MM_DISCORD_WEBHOOK", "MM_SLACK_WEBHOOK",
                                                           "MM_TELEGRAM_TOKEN", "MM_WEBHOOK_TOKEN")
_TELEGRAM_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}")
# the longest text each service takes in one message
MAX_TEXT = {"discord": 2000, "slack": 3000, "telegram": 4096, "webhook": 8000}


@dataclass(frozen=True)
class Post:
    url: str
    json: Dict[str, Any]
    headers: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Channel:
    """One destination. ``label`` names it in logs (no secret in it)."""

    kind: str  # discord | slack | telegram | webhook
    label: str
    url: str
    chat_id: int = 0
    token: str = field(default="", repr=False)

    def __repr__(self) -> str:  # the URL and token are secrets
        return f"Channel({self.label})"

    @property
    def secrets(self) -> Tuple[str, ...]:
        """The token, and a webhook's URL and path (an HTTP library's log line shows the path alone)."""
        found = [self.token]
        if self.kind in ("discord", "slack"):
            parts = urlsplit(self.url)
            found += [self.url, parts.path + ("?" + parts.query if parts.query else "")]
        return tuple(s for s in found if len(s) > 1)

    def post(self, text: str, events: Sequence[Mapping[str, Any]] = (), source: str = "") -> Post:
        """The HTTP post carrying ``text`` (cut to the service's limit)."""
        most = MAX_TEXT[self.kind]
        if len(text) > most:
            text = text[:most - 20] + "\n...(shortened)"
        if self.kind == "discord":
            return Post(self.url, {"content": text})
        if self.kind == "slack":
            return Post(self.url, {"text": text})
        if self.kind == "telegram":
            return Post(f"{self.url}/bot{self.token}/sendMessage", {"chat_id": self.chat_id, "text": text})
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return Post(self.url, {"source": source, "text": text, "events": list(events)}, headers)


def _webhook_env(kind: str, name: str) -> str:
    base = ENV_DISCORD if kind == "discord" else ENV_SLACK
    return f"{base}_{name.upper()}" if name else base


def _http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError when out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def telegram_token(environ: Mapping[str, str], setting: str) -> str:
    token = environ.get(ENV_TELEGRAM, "")
    if not token:
        raise SettingsError(f"{setting}: Telegram needs the bot token in the environment variable {ENV_TELEGRAM}")
    if not _TELEGRAM_TOKEN.fullmatch(token):
        raise SettingsError(f"{setting}: {ENV_TELEGRAM} is not a Telegram bot token (digits, a colon, then 20 to "
                            f"100 of A-Z a-z 0-9 _ -)")
    return token


def channels_from(urls: Sequence[str], environ: Mapping[str, str], telegram_api: str) -> List[Channel]:
    """NOTIFY_URLS -> channels; a missing or malformed environment variable raises a SettingsError naming it."""
    channels = []
    for url in urls:
        scheme, _, rest = url.partition("://")
        if scheme in ("discord", "slack"):
            env = _webhook_env(scheme, rest)
            hook = environ.get(env, "")
            if not hook:
                raise SettingsError(f"NOTIFY_URLS has {url!r}: set its webhook URL in the environment variable {env}")
            if not _http_url(hook):
                raise SettingsError(f"NOTIFY_URLS has {url!r}: the environment variable {env} is not an http(s) "
                                    f"URL naming a host")
            channels.append(Channel(scheme, f"{scheme}:{rest}" if rest else scheme, hook))
        elif scheme == "telegram":
            token = telegram_token(environ, f"NOTIFY_URLS has {url!r}")
            channels.append(Channel("telegram", f"telegram:{rest}", telegram_api.rstrip("/"), int(rest), token))
        else:
            host = urlsplit(url).hostname or "?"
            channels.append(Channel("webhook", f"webhook:{host}", url, token=environ.get(ENV_WEBHOOK_TOKEN, "")))
    return channels
