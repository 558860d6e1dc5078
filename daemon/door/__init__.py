"""What runs on the door: ``facegate run``.

``service`` is the main loop over the pipeline stages (daemon/frames -> faces ->
quality -> embeddings -> matching -> liveness -> decision -> events). ``sync`` is its
broker side (or ``Standalone`` without one): ``link``, the door's MQTT client, and
``admission``, which decides which received records the gallery may apply (the site
manifest's gate). ``health`` counts and times. The enrollment server is daemon/server/.
"""
