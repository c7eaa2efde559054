"""A site: many cameras, one history database, MQTT (``maskwatch serve``, ``aggregate``, ``report``).

Modules: ``secrets`` (credentials from the TOML, the environment or a file), ``config``
(``site.toml``: ``[[cameras]]``, ``[mqtt]`` as ``MqttSettings``, ``[db]``), ``history`` (the
SQLAlchemy history database, also the MQTT outbox), ``mqtt`` (MQTT in Frigate's topic shape:
``client``, the ``outbox`` pump, ``retained`` state, Home Assistant ``discovery``; ``publisher``
re-exports its old names), ``serve`` (one supervised worker process per camera), ``aggregate``
(broker -> one database), ``report`` (compliance per camera per day), ``retention`` (old
snapshots and recordings). Everything a camera produces reaches them through the sink protocol
(:mod:`maskwatch.sinks.base`).
"""
