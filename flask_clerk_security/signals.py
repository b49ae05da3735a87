"""Audit signals (blinker, as Flask and Flask-Login use them). Connect handlers to feed a SIEM or metrics.

Every signal is sent with the app as sender and keyword data that never holds a token or a secret. A ``route``
is the request path (``request.path``); receivers of the others read it from ``flask.request``, as the default
audit handler (:mod:`.audit`) does for every record.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A request was signed out for a reason (``reason``: Clerk's reason string).
authentication_failed = _signals.signal("authentication-failed")
#: A signed-in request lacked what ``require()`` asked (``user_id``, ``session_id``, ``requirement``).
authorization_denied = _signals.signal("authorization-denied")
#: A session's factors were too old for ``require(reverification=...)`` (``user_id``, ``session_id``, ``level``).
reverification_required = _signals.signal("reverification-required")
#: A cookie-authenticated write came from another origin (``origin``, ``reason``).
csrf_rejected = _signals.signal("csrf-rejected")
#: A response carried a configured secret and was replaced (``key``: the config key, never its value; ``route``,
#: ``method``).
secret_leak_blocked = _signals.signal("secret-leak-blocked")
#: A webhook delivery was verified and dispatched (``event_id``, ``event_type``).
webhook_received = _signals.signal("webhook-received")
#: A webhook delivery was refused (``reason``).
webhook_rejected = _signals.signal("webhook-rejected")
#: A webhook delivery was already processed and was acknowledged without running handlers (``event_id``).
webhook_replayed = _signals.signal("webhook-replayed")
#: A request went over a rate limit (``key``, ``limit``, ``route``).
rate_limit_exceeded = _signals.signal("rate-limit-exceeded")
