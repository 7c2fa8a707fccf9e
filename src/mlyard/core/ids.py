"""Identifiers: random ids, API tokens, and Azure-style adjective_noun names."""

from __future__ import annotations

import secrets
import uuid

_ADJECTIVES = ("amber", "brave", "calm", "dreamy", "eager", "frosty", "gentle", "happy", "icy",
               "jolly", "keen", "lively", "mellow", "nimble", "olive", "plucky", "quiet", "rapid",
               "silly", "tender", "upbeat", "vivid", "witty", "zesty")
_NOUNS = ("apple", "badger", "cloud", "dinghy", "engine", "falcon", "garden", "harbor", "island",
          "jackal", "kettle", "lemon", "mango", "needle", "otter", "pepper", "quill", "river",
          "sponge", "tiger", "umbrella", "violin", "walrus", "yacht")


def new_id() -> str:
    return uuid.uuid4().hex


def new_token() -> str:
    """A fresh API token: a recognisable prefix plus 256 random bits."""
    return "myd_" + secrets.token_urlsafe(32)


def friendly_name() -> str:
    """A job-style name such as ``brave_otter_1a2b3c4d``."""
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}_{secrets.token_hex(4)}"
