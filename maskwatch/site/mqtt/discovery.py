"""Home Assistant MQTT discovery: ``<discovery_prefix>/sensor/<prefix>_<camera>_<what>/config`` (retained).

For each camera: its compliance, the masked share of person-time, its state and the people in view
per label, as sensors of one device named after the camera, all reading ``<prefix>/available``.
The publisher (:class:`maskwatch.site.mqtt.MqttPublisher`) sends them on every connect when
``[mqtt] discovery`` is true. Moved here from ``maskwatch.site.publisher``.

>>> from maskwatch.site.config import MqttSettings
>>> configs = discovery_configs(MqttSettings(host="b", prefix="site/a"), ["door"])
>>> sorted(configs)[0], configs["homeassistant/sensor/site_a_door_state/config"]["state_topic"]
('homeassistant/sensor/site_a_door_compliance/config', 'site/a/door/state')
"""

from __future__ import annotations

from collections.abc import Iterable

from maskwatch import LABELS, __version__
from maskwatch.site.config import MqttSettings


def discovery_configs(settings: MqttSettings, cameras: Iterable[str]) -> dict[str, dict]:
    """Home Assistant MQTT discovery: topic -> config, for each camera's compliance, counts and state.

    Every sensor belongs to a device named after the camera and reads ``<prefix>/available``.
    """
    prefix, node = settings.prefix, settings.prefix.replace("/", "_")
    configs: dict[str, dict] = {}
    for camera in cameras:
        device = {"identifiers": [f"{node}_{camera}"], "name": camera, "manufacturer": "maskwatch",
                  "model": "maskwatch camera", "sw_version": __version__}
        common = {"availability_topic": f"{prefix}/available", "payload_available": "online",
                  "payload_not_available": "offline", "device": device,
                  "origin": {"name": "maskwatch", "sw_version": __version__}}
        sensors = {
            "compliance": {
                "name": "Mask compliance", "state_topic": f"{prefix}/{camera}/compliance",
                "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:face-mask",
                # the topic carries 0..1 or "None" (nobody decided in the interval): HA shows unknown
                "value_template": "{{ (value | float * 100) | round(1) if value != 'None' else None }}",
            },
            "state": {"name": "Camera state", "state_topic": f"{prefix}/{camera}/state",
                      "icon": "mdi:cctv"},
            # time-weighted: the with_mask share of the person-time of each closed interval
            "masked_time": {
                "name": "Masked share of person-time", "state_topic": f"{prefix}/{camera}/intervals",
                "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:timer-check",
                "value_template": "{{ (value_json.masked_time_share * 100) | round(1) "
                                  "if value_json.masked_time_share is not none else None }}",
            },
        }
        for label in LABELS:
            sensors[label] = {
                "name": f"People in view {label.replace('_', ' ')}", "state_topic": f"{prefix}/{camera}/{label}",
                "unit_of_measurement": "people", "state_class": "measurement", "icon": "mdi:account-group",
            }
        for what, sensor in sensors.items():
            unique = f"{node}_{camera}_{what}"
            configs[f"{settings.discovery_prefix}/sensor/{unique}/config"] = {**sensor, "unique_id": unique, **common}
    return configs
