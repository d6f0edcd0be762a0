"""Control messages: what steers a running core, and the signed envelope that carries them.

A sender builds a body (:data:`ControlBody`, tagged by ``action``), signs it into a
:class:`ControlEnvelope` (:func:`core.runtime.control_signing.sign_control`) and publishes it
on ``<ns>:control``; the core verifies the envelope, reads the body and records a
:class:`ControlAudit` entry for every message, applied or not.
"""

from __future__ import annotations

from typing import Any

from core.messages.base import Message
from core.messages.context import AdaptationChange

CONTROL_VERSION = 1


class ControlEnvelope(Message, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The wire form: ``sig`` is HMAC-SHA256 of the other fields under the control key.

    ``body`` stays plain data here: the signature covers it exactly as sent, extra fields
    included, and it is read as a :data:`ControlBody` only once the signature verifies.
    """

    v: int
    sender: str
    issued_ns: int
    nonce: str
    body: dict[str, Any]
    sig: str


class _ControlBody(Message, frozen=True, kw_only=True, omit_defaults=True, tag_field="action"):
    # ``caller``: the API's authenticated token name, when the API sent it.
    caller: str | None = None


class ReloadControl(_ControlBody, frozen=True, kw_only=True, tag="reload"):
    """Reload the active set from the registry; ``model`` and ``version`` say what changed."""

    model: str | None = None
    version: str | None = None


class WeightsControl(_ControlBody, frozen=True, kw_only=True, tag="weights"):
    """Set strategy weights (bounded by the core's own limits); ``changes`` says why."""

    weights: dict[str, float]
    changes: list[AdaptationChange] | None = None


class HaltControl(_ControlBody, frozen=True, kw_only=True, tag="halt"):
    """Stop new risk; with ``flatten``, close the positions too."""

    flatten: bool = False
    reason: str | None = None


class ResumeControl(_ControlBody, frozen=True, kw_only=True, tag="resume"):
    """Let the core trade again after a halt."""


ControlBody = ReloadControl | WeightsControl | HaltControl | ResumeControl
"""Every control message a core acts on, told apart by ``action``."""
CONTROL_ACTIONS = ("reload", "weights", "halt", "resume")


class ControlAudit(Message, frozen=True, kw_only=True):
    """What a core did with one control message (``<ns>:control:audit``)."""

    core: str
    at_ns: int
    sender: str
    action: str
    outcome: str
