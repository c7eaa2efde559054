"""Moved: the MQTT publisher is the package :mod:`maskwatch.site.mqtt` (``client``, ``outbox``,
``retained``, ``discovery``) and ``MqttSettings`` / ``topic_safe`` are :mod:`maskwatch.site.config`'s.
Kept so that imports written against earlier versions still work; new code imports from there.

Patch a constant where it is used: ``maskwatch.site.mqtt.outbox.REFUSED_RETRY_S``, not this
module's copy. Log records come from the ``maskwatch.site.mqtt.*`` loggers.
"""

from maskwatch.site.config import TOPIC_LEVEL, MqttSettings, _prefix_safe, topic_safe  # noqa: F401 - re-exported
from maskwatch.site.mqtt import MqttPublisher  # noqa: F401 - re-exported
from maskwatch.site.mqtt.client import (  # noqa: F401 - re-exported
    RECONNECT_MAX_S,
    RECONNECT_MIN_S,
    ConnectionLog,
    make_client,
)
from maskwatch.site.mqtt.outbox import ACK_TIMEOUT_S, MAX_IN_FLIGHT, POLL_S, REFUSED_RETRY_S  # noqa: F401
from maskwatch.site.mqtt.retained import STATES, _rate_text  # noqa: F401 - re-exported
